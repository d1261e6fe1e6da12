"""Each framework's seeds and determinism switches: set on import, read back after the run.

The callbacks run from the post-import hook (see ``hooks``), right after a framework's
first import. After the experiment the same switches are read back, and every one that no
longer holds the value set (an experiment that turned one off) becomes a violation.
Frameworks are reached only through modules already imported, typed as ``Any``: none of
them is a dependency of harness.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# The frameworks whose switches are set and read back, in the order they are reported.
FRAMEWORKS = ("numpy", "torch", "tensorflow")

# How a switch is named in a violation: the call or attribute an experiment would use.
LABELS = {
    ("torch", "deterministic_algorithms"): "torch.use_deterministic_algorithms",
    (
        "torch",
        "deterministic_algorithms_warn_only",
    ): "torch.use_deterministic_algorithms(warn_only)",
    ("torch", "cudnn_deterministic"): "torch.backends.cudnn.deterministic",
    ("torch", "cudnn_benchmark"): "torch.backends.cudnn.benchmark",
    ("torch", "num_threads"): "torch.get_num_threads()",
    ("torch", "num_interop_threads"): "torch.get_num_interop_threads()",
    ("torch", "cpu_capability"): "torch.backends.cpu.get_cpu_capability()",
    ("torch", "inductor_deterministic"): "torch._inductor.config.deterministic",
    ("tensorflow", "op_determinism"): "tf.config.experimental.enable_op_determinism",
    ("tensorflow", "intra_op_threads"): "tf.config.threading intra-op threads",
    ("tensorflow", "inter_op_threads"): "tf.config.threading inter-op threads",
}


@dataclass(frozen=True)
class Settings:
    """What the run asked for: the seed, the thread count and the determinism profile."""

    seed: int
    threads: int
    profile: str = "strict"
    # False only to measure what the switches are worth: seeds and thread counts are still
    # set, the deterministic-kernel switches stay at the frameworks' defaults.
    switches: bool = True


def compare(
    framework: str, expected: Mapping[str, object], observed: Mapping[str, object]
) -> list[str]:
    """One line for each switch whose observed value differs from the value set."""
    problems = []
    for key, want in expected.items():
        if key not in observed:
            continue
        got = observed[key]
        if got == want and type(got) is type(want):
            continue
        label = LABELS.get((framework, key), f"{framework} {key}")
        if isinstance(want, bool) and isinstance(got, bool):
            problems.append(f"{label} was turned {'on' if got else 'off'}")
        else:
            problems.append(f"{label} is {got!r} (expected {want!r})")
    return problems


class Switchboard:
    """Sets each framework's seeds and switches when it is imported, and reads them back.

    A framework whose switches cannot be set (an API that moved, a thread pool already
    started) does not stop its import: the failure becomes a violation instead.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.expected: dict[str, dict[str, object]] = {}
        self.problems: list[str] = []
        self._done: set[str] = set()
        self._keras_seeded = False

    def callbacks(self) -> dict[str, Callable[[ModuleType], None]]:
        """The post-import callbacks, by module name."""
        return {
            "numpy": self._guarded("numpy", self._numpy),
            "torch": self._guarded("torch", self._torch),
            "tensorflow": self._guarded("tensorflow", self._tensorflow),
            "keras": self._guarded("keras", self._keras),
        }

    @property
    def imported(self) -> frozenset[str]:
        """The watched modules whose callback ran."""
        return frozenset(self._done)

    def _guarded(
        self, name: str, apply: Callable[[ModuleType], None]
    ) -> Callable[[ModuleType], None]:
        def callback(module: ModuleType) -> None:
            self._done.add(name)
            try:
                apply(module)
            except Exception as error:
                # A violation, never an exception raised into the experiment's import.
                self.problems.append(f"could not set {name}'s switches: {_one_line(error)}")

        return callback

    def _numpy(self, numpy: Any) -> None:
        numpy.random.seed(self.settings.seed)
        self.expected["numpy"] = {}

    def _torch(self, torch: Any) -> None:
        threads = self.settings.threads
        switches: dict[str, object] = {
            "deterministic_algorithms": True,
            "deterministic_algorithms_warn_only": False,
            "cudnn_deterministic": True,
            "cudnn_benchmark": False,
        }
        expected: dict[str, object] = {
            **(switches if self.settings.switches else {}),
            "num_threads": threads,
            "num_interop_threads": threads,
        }
        if self.settings.switches:
            expected["inductor_deterministic"] = True
        if self.settings.profile == "portable":
            # ATEN_CPU_CAPABILITY=avx2 caps torch's kernels; a CPU without AVX2 falls
            # below the cap, and its results differ from the AVX2 hosts'.
            expected["cpu_capability"] = "AVX2"
        self.expected["torch"] = expected
        # manual_seed seeds the CPU generator and every CUDA device's.
        torch.manual_seed(self.settings.seed)
        if self.settings.switches:
            _deterministic_algorithms(torch)
            cudnn: Any = importlib.import_module("torch.backends.cudnn")
            cudnn.deterministic = True
            cudnn.benchmark = False
        torch.set_num_threads(threads)
        # The inter-op pool can be sized once, before any parallel work; torch raises on
        # a second call even with the same size, so only a different size is set.
        if torch.get_num_interop_threads() != threads:
            torch.set_num_interop_threads(threads)

    def _tensorflow(self, tf: Any) -> None:
        threads = self.settings.threads
        expected: dict[str, object] = {"intra_op_threads": threads, "inter_op_threads": threads}
        if self.settings.switches:
            expected["op_determinism"] = True
        self.expected["tensorflow"] = expected
        tf.random.set_seed(self.settings.seed)
        if self.settings.switches:
            tf.config.experimental.enable_op_determinism()
        # The thread pools are sized when TensorFlow's runtime starts, which importing
        # does not do: right after the import is the last moment these calls work.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self._seed_keras()

    def _keras(self, _: Any) -> None:
        self._seed_keras()

    def _seed_keras(self) -> None:
        # keras.utils.set_random_seed also resets Keras's global SeedGenerator, which
        # initializers without an explicit seed draw from. TensorFlow and Keras import
        # each other: whichever finishes second seeds Keras, when both are complete.
        if self._keras_seeded or "keras" not in self._done:
            return
        keras: Any = sys.modules["keras"]
        if "tensorflow" not in self._done and keras.config.backend() == "tensorflow":
            return
        self._keras_seeded = True
        keras.utils.set_random_seed(self.settings.seed)

    def observe(self) -> tuple[dict[str, dict[str, object]], list[str]]:
        """The switches of every framework imported, and the violations among them."""
        observed: dict[str, dict[str, object]] = {}
        violations = list(self.problems)
        for name in FRAMEWORKS:
            module = sys.modules.get(name)
            if name not in self._done or module is None:
                continue
            try:
                values = _READERS[name](module, self.settings)
            except Exception as error:
                violations.append(f"could not read {name}'s switches back: {_one_line(error)}")
                continue
            observed[name] = values
            violations.extend(compare(name, self.expected.get(name, {}), values))
            if name == "numpy":
                violations.extend(_blas_threads(values, self.settings.threads))
        return observed, violations


def _deterministic_algorithms(torch: Any) -> None:
    """``torch.use_deterministic_algorithms(True)``, without importing Inductor for it.

    The public call also sets Inductor's deterministic flag, and importing Inductor's config
    to do so imports TorchDynamo: 2.5 s, as long again as importing torch. Inductor reads
    the same flag from TORCHINDUCTOR_DETERMINISTIC when it is first imported, so until it
    is, the variable covers Inductor and torch's own flag is set directly.
    """
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if "torch._inductor.config" in sys.modules or set_flag is None:
        torch.use_deterministic_algorithms(True)
        return
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
    set_flag(True, warn_only=False)


def _read_numpy(numpy: Any, _: Settings) -> dict[str, object]:
    # numpy has no switch to read back; what matters is the BLAS its matrix products use.
    return {"version": str(numpy.__version__), "blas": blas_libraries(numpy)}


def _read_torch(torch: Any, _: Settings) -> dict[str, object]:
    cudnn: Any = importlib.import_module("torch.backends.cudnn")
    cpu: Any = importlib.import_module("torch.backends.cpu")
    values: dict[str, object] = {
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_algorithms_warn_only": bool(
            torch.is_deterministic_algorithms_warn_only_enabled()
        ),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "cudnn_benchmark": bool(cudnn.benchmark),
        "num_threads": int(torch.get_num_threads()),
        "num_interop_threads": int(torch.get_num_interop_threads()),
        "cpu_capability": str(cpu.get_cpu_capability()),
        "initial_seed": int(torch.initial_seed()),
    }
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        values["inductor_deterministic"] = bool(getattr(inductor, "deterministic", False))
    if torch.cuda.is_initialized():
        values.update(_read_torch_cuda(torch, cudnn))
    return values


def _read_torch_cuda(torch: Any, cudnn: Any) -> dict[str, object]:
    """The switches that only act on a GPU, read back when the run used one.

    TF32 is not a determinism switch (TF32 kernels are as repeatable as FP32 ones) but it
    changes the bytes a matrix product gives on Ampere and newer GPUs and not on older ones,
    so two GPU classes can only agree when both ran with the same setting. The workspace
    variable is read from the process, where cuBLAS reads it, after the run: an experiment
    that changed it is seen.
    """
    return {
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(cudnn.allow_tf32),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cuda_initial_seed": int(torch.cuda.initial_seed()),
    }


def _read_tensorflow(tf: Any, _: Settings) -> dict[str, object]:
    # The public API can switch op determinism on and off but not read it; the function
    # that reads it lives in the module the public API re-exports from.
    config: Any = importlib.import_module("tensorflow.python.framework.config")
    return {
        "op_determinism": bool(config.is_op_determinism_enabled()),
        "intra_op_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_threads": int(tf.config.threading.get_inter_op_parallelism_threads()),
    }


_READERS: dict[str, Callable[[Any, Settings], dict[str, object]]] = {
    "numpy": _read_numpy,
    "torch": _read_torch,
    "tensorflow": _read_tensorflow,
}


def threadpools() -> list[dict[str, object]] | None:
    """The native thread pools loaded in this process (BLAS and OpenMP), per threadpoolctl;
    None when threadpoolctl is not installed. It imports only the standard library."""
    try:
        threadpoolctl: Any = importlib.import_module("threadpoolctl")
    except ImportError:
        return None
    keys = (
        "user_api",
        "internal_api",
        "prefix",
        "version",
        "num_threads",
        "architecture",
        "threading_layer",
    )
    pools = [
        {key: info[key] for key in keys if key in info} for info in threadpoolctl.threadpool_info()
    ]
    # threadpoolctl lists libraries in the order it finds them loaded, which varies.
    return sorted(pools, key=lambda pool: [str(pool.get(key)) for key in keys])


def blas_libraries(numpy: Any) -> list[dict[str, object]]:
    """The BLAS libraries loaded, or, without threadpoolctl, the one numpy was built with."""
    pools = threadpools()
    if pools is not None:
        return [pool for pool in pools if pool.get("user_api") == "blas"]
    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
    except Exception:  # numpy before 1.25 has no mode="dicts"
        return []
    return [{"internal_api": blas.get("name"), "version": blas.get("version")}]


def _blas_threads(values: Mapping[str, object], threads: int) -> list[str]:
    problems = []
    blas = values.get("blas")
    for library in blas if isinstance(blas, list) else []:
        count = library.get("num_threads")
        if isinstance(count, int) and count != threads:
            name = library.get("prefix") or library.get("internal_api")
            version = library.get("version")
            name = f"{name} {version}" if version else name
            problems.append(f"BLAS {name} runs {count} threads (expected {threads})")
    return problems


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
