"""Does a constraints file fit its variant's device? CUDA images hold CUDA, CPU images none.

A resolver only sees names and versions, and two facts make it pick the wrong build without
a word: PEP 440 lets ``torch==2.13.0`` match a local ``2.13.0+cpu`` wheel lying in an extra
wheel folder (and prefers it), and PyPI's default torch for Linux pulls gigabytes of
``nvidia-*`` wheels. So a CUDA image could hold no CUDA at all, and a CPU image could carry
CUDA libraries it cannot use. The pins are checked after every resolution (``harness
lock`` then refuses to write the file) and whenever a constraints file is read (``lock
--check``, ``doctor``, ``build``), each problem naming the package and the fix.

PyPI's CUDA-enabled frameworks bring the CUDA runtime as ``nvidia-*`` wheels; a CUDA
variant therefore needs at least one of them, and a CPU variant none. Whether a pin is one
is a question of what its wheel holds (CUDA's shared libraries), answered by
:mod:`harness.images.cuda_wheels`; NVIDIA's prefix also names pure-Python packages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from harness.images.pin import Pin

CUDA_RUNTIME_PREFIX = "nvidia-"
# Distributions published only as CPU builds: the CUDA variant must declare another.
CPU_ONLY = {
    "tensorflow-cpu": "tensorflow[and-cuda]",
    "tensorflow-intel": "tensorflow[and-cuda]",
    "intel-tensorflow": "tensorflow[and-cuda]",
    "xgboost-cpu": "xgboost",
}
# Libraries compiled against one torch build, released in step with torch: PyPI's are
# built against PyPI's CUDA torch, and beside a CPU torch their operators fail to load
# ("operator torchvision::nms does not exist"). Each torch build has its own (+cpu too).
TORCH_COMPANIONS = ("torchvision", "torchaudio")
# Frameworks that compute on a GPU only with the CUDA runtime beside them.
GPU_FRAMEWORKS = frozenset(
    {"torch", "tensorflow", "jax", "jaxlib", "cupy", "paddlepaddle-gpu", "xgboost"}
)
# Frameworks whose CPU build is a distribution of its own, not a +cpu local version.
CPU_DISTRIBUTIONS = {"tensorflow": "tensorflow-cpu", "xgboost": "xgboost-cpu"}


@dataclass(frozen=True)
class Mismatch:
    """One pin (or the lack of one) that does not fit the device, and what to do."""

    message: str
    fix: str

    def one_line(self) -> str:
        return f"{self.message} (fix: {self.fix})"


def local_label(version: str) -> str:
    """The local part of a version (``cpu`` of ``2.13.0+cpu``), lower case; "" for none."""
    try:
        return (Version(version).local or "").lower()
    except InvalidVersion:
        return ""


def by_name(pin: Pin) -> bool:
    """Whether a pin is CUDA runtime, judged by its name alone (where no file is at hand)."""
    return pin.name.startswith(CUDA_RUNTIME_PREFIX)


def mismatches(
    pins: Sequence[Pin],
    device: str,
    variant: str,
    source: str,
    *,
    holds_cuda: Callable[[Pin], bool] = by_name,
) -> list[Mismatch]:
    """Every way the pins of ``source`` do not fit ``device`` (empty when they do).

    ``holds_cuda`` says whether a pin's wheel is CUDA runtime; lock passes one that looks
    at what the wheel holds (see :mod:`harness.images.cuda_wheels`), so pure-Python
    packages under NVIDIA's prefix (nvidia-ml-py) fit a CPU image.
    """
    if device == "cuda":
        return _cuda_mismatches(pins, variant, source, holds_cuda)
    return _cpu_mismatches(pins, variant, source, holds_cuda)


def _cuda_mismatches(
    pins: Sequence[Pin], variant: str, source: str, holds_cuda: Callable[[Pin], bool]
) -> list[Mismatch]:
    table = f"[tool.harness.variants.{variant}]"
    found: list[Mismatch] = []
    for pin in pins:
        if local_label(pin.version).startswith("cpu"):
            found.append(
                Mismatch(
                    f"{source} pins {pin.name}=={pin.version}, a CPU-only build, for the "
                    f"{variant} variant",
                    f"set find-links = false under {table} (a local +cpu wheel matches "
                    f"{pin.name}=={Version(pin.version).public}) and drop any +cpu "
                    "replacement there, then run `harness lock`",
                )
            )
        elif pin.name in CPU_ONLY:
            found.append(
                Mismatch(
                    f"{source} pins {pin.name}, a CPU-only distribution, for the {variant} variant",
                    f"replace it under {table}: replace = {{ {pin.name.removesuffix('-cpu')} = "
                    f'"{CPU_ONLY[pin.name]}==..." }}, then run `harness lock`',
                )
            )
    if found or any(holds_cuda(pin) for pin in pins):
        return found
    frameworks = [
        pin for pin in pins if pin.name in GPU_FRAMEWORKS and not local_label(pin.version)
    ]
    if frameworks:
        names = ", ".join(f"{pin.name}=={pin.version}" for pin in frameworks)
        return [
            Mismatch(
                f"{source} holds no CUDA runtime wheel (nvidia-*): {names} was resolved "
                f"without CUDA for the {variant} variant",
                "resolve it from an index that serves its CUDA build (PyPI does; "
                f"find-links = false under {table}), then run `harness lock`",
            )
        ]
    if any(local_label(pin.version).startswith(("cu", "rocm")) for pin in pins):
        return []  # a framework's own CUDA build (torch 2.x+cu118 bundles its libraries)
    return [
        Mismatch(
            f"{source} holds no CUDA runtime wheel (nvidia-*): nothing the {variant} variant "
            "installs uses CUDA",
            "declare the framework that needs it (torch, tensorflow[and-cuda], "
            "jax[cuda12]) or build the cpu variant",
        )
    ]


def _cpu_mismatches(
    pins: Sequence[Pin], variant: str, source: str, holds_cuda: Callable[[Pin], bool]
) -> list[Mismatch]:
    table = f"[tool.harness.variants.{variant}]"
    cuda = [pin for pin in pins if holds_cuda(pin)]
    builds = [pin for pin in pins if local_label(pin.version).startswith(("cu", "rocm"))]
    found: list[Mismatch] = []
    if cuda:
        pulling = [pin for pin in pins if pin.name in GPU_FRAMEWORKS] or builds
        by = f" (pulled in by {', '.join(p.name for p in pulling)})" if pulling else ""
        example = pulling[0] if pulling else None
        replace = "a replace table"
        if example is not None and example.name in CPU_DISTRIBUTIONS:
            replace = (
                f'replace = {{ {example.name} = "{CPU_DISTRIBUTIONS[example.name]}=='
                f'{Version(example.version).public}" }}'
            )
        elif example is not None:
            replace = (
                f'replace = {{ {example.name} = "{example.name}=='
                f'{Version(example.version).public}+cpu" }}'
            )
        found.append(
            Mismatch(
                f"{source} pins {len(cuda)} CUDA runtime wheel(s) ({cuda[0].name}=="
                f"{cuda[0].version}, ...){by} that the {variant} variant's CPU image cannot use",
                f"install the CPU build: {replace} under {table}, with a wheel folder or "
                "index that has it (find-links, index-url), then run `harness lock`",
            )
        )
    found += [
        Mismatch(
            f"{source} pins {pin.name}=={pin.version}, a CUDA build, for the {variant} variant",
            f"replace it with its CPU build under {table}, then run `harness lock`",
        )
        for pin in builds
    ]
    return found + _companion_mismatches(pins, variant, source)


def _companion_mismatches(pins: Sequence[Pin], variant: str, source: str) -> list[Mismatch]:
    """torchvision or torchaudio from PyPI beside a CPU torch: built against another torch."""
    torch = next((pin for pin in pins if pin.name == "torch"), None)
    if torch is None or not local_label(torch.version).startswith("cpu"):
        return []
    return [
        Mismatch(
            f"{source} pins {pin.name}=={pin.version}, built against PyPI's CUDA torch, beside "
            f"torch=={torch.version} for the {variant} variant: its operators fail to load "
            f"there (operator {pin.name}::... does not exist)",
            f"lock its CPU build ({pin.name}=={Version(pin.version).public}+cpu): declare "
            f"{pin.name} in the experiments group if it is not, add a wheel folder or page "
            "that has that build (find-links, or index-url = "
            "https://download.pytorch.org/whl/cpu), then run `harness lock`",
        )
        for pin in pins
        if pin.name in TORCH_COMPANIONS and not local_label(pin.version).startswith("cpu")
    ]


__all__ = [
    "CPU_DISTRIBUTIONS",
    "CPU_ONLY",
    "CUDA_RUNTIME_PREFIX",
    "GPU_FRAMEWORKS",
    "TORCH_COMPANIONS",
    "Mismatch",
    "by_name",
    "mismatches",
]
