"""Framework switches: set on import, read back, and violations when an experiment turns one off.

torch and TensorFlow are not installed on the host, so stand-ins with the same surface are
written into a temporary folder and imported for real, through the post-import hook. The
real frameworks are exercised by the integration tests inside the image.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest

from harness.runtime import frameworks, hooks
from harness.runtime.frameworks import Settings, Switchboard, compare

# Stand-ins for torch, TensorFlow and Keras: the calls harness makes, keeping state that
# the tests (and experiments in the runner tests) can inspect and change. Their defaults
# are the opposite of what harness sets, so that every switch must be set to pass.
FAKE_PACKAGES = {
    "torch/__init__.py": '''
"""Stand-in for torch: the determinism surface only."""
from types import SimpleNamespace

_state = {"deterministic": False, "warn_only": False, "seed": 67280421310721,
          "threads": 8, "interop": 8, "interop_set": False}


def _set_deterministic_algorithms(mode, *, warn_only=False):
    _state["deterministic"] = bool(mode)
    _state["warn_only"] = bool(warn_only)


_C = SimpleNamespace(_set_deterministic_algorithms=_set_deterministic_algorithms)


def use_deterministic_algorithms(mode, *, warn_only=False):
    _set_deterministic_algorithms(mode, warn_only=warn_only)


def are_deterministic_algorithms_enabled():
    return _state["deterministic"]


def is_deterministic_algorithms_warn_only_enabled():
    return _state["warn_only"]


def manual_seed(seed):
    _state["seed"] = seed


def initial_seed():
    return _state["seed"]


def set_num_threads(count):
    _state["threads"] = count


def get_num_threads():
    return _state["threads"]


def set_num_interop_threads(count):
    if _state["interop_set"]:
        raise RuntimeError("Error: cannot set number of interop threads after parallel work "
                           "has started or set_num_interop_threads called")
    _state["interop_set"] = True
    _state["interop"] = count


def get_num_interop_threads():
    return _state["interop"]


cuda = SimpleNamespace(is_available=lambda: False, is_initialized=lambda: False)

from torch import backends  # noqa: E402
''',
    "torch/backends/__init__.py": "from torch.backends import cpu, cudnn\n",
    "torch/backends/cudnn.py": "deterministic = False\nbenchmark = True\n",
    "torch/backends/cpu.py": (
        "CAPABILITY = 'AVX2'\n\n\ndef get_cpu_capability():\n    return CAPABILITY\n"
    ),
    "tensorflow/__init__.py": '''
"""Stand-in for TensorFlow 2.21, which imports Keras while it initializes."""
from types import SimpleNamespace

import keras  # Keras finishes before TensorFlow does, seeing TensorFlow half-initialized
from tensorflow.python.framework import config as _config

_state = {"seed": None, "intra": 0, "inter": 0}


def _set_seed(seed):
    _state["seed"] = seed


def _setter(key):
    def set_threads(count):
        _state[key] = count
    return set_threads


random = SimpleNamespace(set_seed=_set_seed)
config = SimpleNamespace(
    experimental=SimpleNamespace(
        enable_op_determinism=_config.enable_op_determinism,
        disable_op_determinism=_config.disable_op_determinism,
    ),
    threading=SimpleNamespace(
        set_intra_op_parallelism_threads=_setter("intra"),
        set_inter_op_parallelism_threads=_setter("inter"),
        get_intra_op_parallelism_threads=lambda: _state["intra"],
        get_inter_op_parallelism_threads=lambda: _state["inter"],
    ),
)
''',
    "tensorflow/python/__init__.py": "",
    "tensorflow/python/framework/__init__.py": "",
    "tensorflow/python/framework/config.py": """
_enabled = [False]


def enable_op_determinism():
    _enabled[0] = True


def disable_op_determinism():
    _enabled[0] = False


def is_op_determinism_enabled():
    return _enabled[0]
""",
    "keras/__init__.py": '''
"""Stand-in for Keras 3 on the TensorFlow backend."""
from types import SimpleNamespace

import tensorflow

SEEDS = []


def _set_random_seed(seed):
    tensorflow.random.set_seed(seed)  # fails while TensorFlow is still initializing
    SEEDS.append(seed)


utils = SimpleNamespace(set_random_seed=_set_random_seed)
config = SimpleNamespace(backend=lambda: "tensorflow")
''',
}


def write_fakes(folder: Path) -> Path:
    """Write the stand-in packages into ``folder``; returns it, for sys.path."""
    for relative, text in FAKE_PACKAGES.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return folder


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(write_fakes(tmp_path)))
    # use_deterministic_algorithms' stand-in path sets this for Inductor; keep it local.
    monkeypatch.setenv("TORCHINDUCTOR_DETERMINISTIC", "unset by the test")
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.fixture
def board() -> Iterator[Switchboard]:
    switchboard = Switchboard(Settings(seed=5, threads=3))
    finder = hooks.install(switchboard.callbacks())
    yield switchboard
    hooks.uninstall(finder)


def test_torch_switches_are_set_on_its_first_import(fakes: Path, board: Switchboard) -> None:
    torch: Any = importlib.import_module("torch")
    assert torch._state == {
        "deterministic": True,
        "warn_only": False,
        "seed": 5,
        "threads": 3,
        "interop": 3,
        "interop_set": True,
    }
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    # Inductor's config reads this when first imported; it is not imported for it.
    assert os.environ["TORCHINDUCTOR_DETERMINISTIC"] == "1"
    observed, violations = board.observe()
    assert violations == []
    assert observed["torch"] == {
        "deterministic_algorithms": True,
        "deterministic_algorithms_warn_only": False,
        "cudnn_deterministic": True,
        "cudnn_benchmark": False,
        "num_threads": 3,
        "num_interop_threads": 3,
        "cpu_capability": "AVX2",
        "initial_seed": 5,
    }


def test_switches_an_experiment_turned_off_are_violations(fakes: Path, board: Switchboard) -> None:
    torch: Any = importlib.import_module("torch")
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(12)
    _, violations = board.observe()
    assert violations == [
        "torch.use_deterministic_algorithms was turned off",
        "torch.backends.cudnn.benchmark was turned on",
        "torch.get_num_threads() is 12 (expected 3)",
    ]


def test_a_switch_that_cannot_be_set_is_a_violation_not_an_import_error(
    fakes: Path, board: Switchboard
) -> None:
    torch_init = fakes / "torch" / "__init__.py"
    torch_init.write_text(torch_init.read_text().replace("def manual_seed(seed):", "def _x(seed):"))
    torch: Any = importlib.import_module("torch")
    assert not hasattr(torch, "manual_seed")
    _, violations = board.observe()
    assert violations[0].startswith("could not set torch's switches: AttributeError:")


def test_an_interop_pool_already_sized_is_left_alone_when_it_matches(fakes: Path) -> None:
    torch: Any = importlib.import_module("torch")
    torch.set_num_interop_threads(3)
    switchboard = Switchboard(Settings(seed=1, threads=3))
    finder = hooks.install(switchboard.callbacks())  # torch is imported: applied at once
    hooks.uninstall(finder)
    assert switchboard.observe()[1] == []
    other = Switchboard(Settings(seed=1, threads=2))
    hooks.uninstall(hooks.install(other.callbacks()))
    _, violations = other.observe()
    assert violations[0].startswith("could not set torch's switches: RuntimeError:")
    assert "torch.get_num_interop_threads() is 3 (expected 2)" in violations


def test_the_portable_profile_expects_torch_on_its_avx2_kernels(fakes: Path) -> None:
    (fakes / "torch" / "backends" / "cpu.py").write_text(
        "def get_cpu_capability():\n    return 'AVX512'\n"
    )
    portable = Switchboard(Settings(seed=0, threads=1, profile="portable"))
    finder = hooks.install(portable.callbacks())
    try:
        importlib.import_module("torch")
    finally:
        hooks.uninstall(finder)
    assert portable.observe()[1] == [
        "torch.backends.cpu.get_cpu_capability() is 'AVX512' (expected 'AVX2')"
    ]


@pytest.mark.parametrize("first", ["tensorflow", "keras"])
def test_tensorflow_and_keras_are_seeded_whichever_is_imported_first(
    fakes: Path, board: Switchboard, first: str
) -> None:
    importlib.import_module(first)
    tf: Any = sys.modules["tensorflow"]
    keras: Any = sys.modules["keras"]
    assert keras.SEEDS == [5], "Keras seeded once, after both finished importing"
    assert tf._state == {"seed": 5, "intra": 3, "inter": 3}
    observed, violations = board.observe()
    assert violations == []
    assert observed["tensorflow"] == {
        "op_determinism": True,
        "intra_op_threads": 3,
        "inter_op_threads": 3,
    }
    tf.config.experimental.disable_op_determinism()
    assert board.observe()[1] == ["tf.config.experimental.enable_op_determinism was turned off"]


def test_numpy_gets_the_global_seed(board: Switchboard) -> None:
    # numpy is already imported in this process, so install() applied the seed at once.
    first = numpy.random.random()
    numpy.random.seed(5)
    assert first == numpy.random.random()
    observed, _ = board.observe()
    assert observed["numpy"]["version"] == numpy.__version__
    assert isinstance(observed["numpy"]["blas"], list)


def test_only_imported_frameworks_are_read_back() -> None:
    switchboard = Switchboard(Settings(seed=0, threads=1))
    assert switchboard.observe() == ({}, [])


def test_compare_words_booleans_as_turned_on_or_off_and_values_as_expected() -> None:
    expected = {"cudnn_benchmark": False, "num_threads": 1, "deterministic_algorithms": True}
    assert compare("torch", expected, expected) == []
    observed = {"cudnn_benchmark": True, "num_threads": 4, "deterministic_algorithms": False}
    assert compare("torch", expected, observed) == [
        "torch.backends.cudnn.benchmark was turned on",
        "torch.get_num_threads() is 4 (expected 1)",
        "torch.use_deterministic_algorithms was turned off",
    ]
    assert compare("torch", {"num_threads": 1}, {}) == [], "unread switches are not guessed"
    assert compare("other", {"flag": 1}, {"flag": True}) == ["other flag is True (expected 1)"]


def test_blas_pools_running_other_thread_counts_are_violations() -> None:
    values = {
        "blas": [
            {"prefix": "libscipy_openblas", "version": "0.3.30", "num_threads": 4},
            {"prefix": "libmkl_rt", "version": None, "num_threads": 1},
        ]
    }
    assert frameworks._blas_threads(values, 1) == [
        "BLAS libscipy_openblas 0.3.30 runs 4 threads (expected 1)"
    ]
