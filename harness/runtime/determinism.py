"""The environment a run needs before its interpreter starts, as a pure function.

Thread pools (OpenMP, MKL, OpenBLAS, TensorFlow's), the CPU code paths the libraries
dispatch to and Python's hash seed are read once, when each library or the interpreter
starts. Setting them from inside the run is too late, so the host passes them to the
container; this module computes them and checks what a run actually saw. The host imports
it, so it depends on the standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PROFILES = ("strict", "portable")
# PYTHONHASHSEED accepts 0..2**32-1, and numpy's legacy global seed the same range: one
# seed feeds both, so it must fit both.
MAX_SEED = 2**32 - 1
_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")

# strict: the same hardware kind gives identical bytes.
# - The thread counts are pinned because reductions split over a different number of
#   threads add in a different order (2 -> 1 threads changed torch weights' bytes).
# - MKL_DYNAMIC=FALSE keeps MKL from running fewer threads than asked, which it otherwise
#   decides from the machine (physical cores), not from the run.
# - TF_DETERMINISTIC_OPS and TF_CUDNN_DETERMINISTIC make TensorFlow pick deterministic
#   kernels from its first op, before the runtime can call enable_op_determinism().
# - CUBLAS_WORKSPACE_CONFIG is required by torch.use_deterministic_algorithms on CUDA
#   (cuBLAS otherwise picks reduction strategies per stream); it is harmless on CPU.
# - TORCHINDUCTOR_DETERMINISTIC: torch.compile's Inductor without autotuning by timing;
#   torch.use_deterministic_algorithms sets it too, but only once Inductor is imported.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
# The variables that switch the frameworks' deterministic kernels on; a run made with the
# switches deliberately off (to show what they are worth) leaves exactly these out.
_SWITCHES = {
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    "TORCHINDUCTOR_DETERMINISTIC": "1",
}
_STRICT = {
    "MKL_DYNAMIC": "FALSE",
    **_SWITCHES,
}
# portable: also pins the CPU code paths, so hosts with different CPUs agree. Libraries
# dispatch at run time to the widest vector instructions the CPU has, and AVX-512 kernels
# accumulate in a different order than AVX2 ones (forcing AVX2 on an AVX-512 CPU changed
# torch and TensorFlow bytes). AVX2 is the floor: every x86-64 server CPU since 2015 has it.
# - ATEN_CPU_CAPABILITY: torch's own vectorised kernels.
# - ONEDNN_MAX_CPU_ISA: oneDNN, which torch uses for convolutions.
# - TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's oneDNN kernels off; its Eigen kernels are
#   compiled for a fixed instruction set and do not dispatch on the CPU.
# - XLA_FLAGS: XLA compiles for the host CPU, and Keras compiles model.fit with XLA when
#   it can (jit_compile="auto").
# - MKL_CBWR=COMPATIBLE rather than AVX2: Intel documents the AVX2 branch as reproducible
#   on Intel CPUs only; on AMD it silently falls back to the AUTO branch, which is exactly
#   the mixed fleet this profile is for. COMPATIBLE is the one branch documented to agree
#   on Intel and compatible CPUs. It costs MKL speed (about 2.5x on a small sgemm), and
#   only in this profile. MKL_ENABLE_INSTRUCTIONS caps MKL's other dispatch at AVX2.
# - OPENBLAS_CORETYPE: OpenBLAS's kernels (numpy's and scipy's BLAS); Haswell is its
#   AVX2 core.
_PORTABLE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}
# Every variable environment() may set, for whoever records or clears them.
VARIABLES = tuple(
    sorted({"PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES", *_THREAD_VARIABLES, *_STRICT, *_PORTABLE})
)


def environment(
    seed: int, profile: str, threads: int, device: str, *, switches: bool = True
) -> dict[str, str]:
    """The variables to set before the run's interpreter starts.

    ``device`` is ``cpu``, ``cuda`` or ``cuda:N``. A CPU run hides the GPUs
    (``CUDA_VISIBLE_DEVICES`` empty): experiments commonly take a GPU when one is visible,
    and a run asked for on the CPU must not change its arithmetic because the host has one.
    ``switches=False`` leaves the determinism switches' variables out: only for measuring
    what the switches are worth, never for a run that is verified or certified.
    """
    if profile not in PROFILES:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown determinism profile {profile!r}: known profiles are {known}")
    validate(seed=seed, threads=threads, device=device)
    count = str(threads)
    variables = {"PYTHONHASHSEED": str(seed)}
    variables.update(dict.fromkeys(_THREAD_VARIABLES, count))
    variables.update(_STRICT)
    if not switches:
        for name in _SWITCHES:
            del variables[name]
    if profile == "portable":
        variables.update(_PORTABLE)
    if device == "cpu":
        variables["CUDA_VISIBLE_DEVICES"] = ""
    return dict(sorted(variables.items()))


def validate(*, seed: object, threads: object, device: object) -> None:
    """Raise ValueError naming the first of seed, threads and device that is out of range."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, not {seed!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, not {threads!r}")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")


def check_environment(expected: Mapping[str, str], seen: Mapping[str, str]) -> list[str]:
    """One line for each expected variable that the run did not see with its value."""
    problems = []
    for name, value in sorted(expected.items()):
        actual = seen.get(name)
        if actual is None:
            problems.append(f"{name} was not set (expected {value!r})")
        elif actual != value:
            problems.append(f"{name} was {actual!r} (expected {value!r})")
    return problems
