"""``python -m harness.runtime SPEC`` end to end, in a subprocess, as the container runs it.

Each test writes a tiny experiment into a temporary project, a spec pointing at it and at
temporary output and meta folders, and reads back the artifacts and ``runtime.json``.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import pytest

from harness.runtime import determinism, runner
from harness.runtime.runner import jsonable, metrics_of, recorded_environment
from tests.unit.test_runtime_frameworks import write_fakes

SEED = 3

PROBE = '''
"""Experiments probing the runtime from the inside."""
import json
import math
import os
import random
import sys
import time

NUMPY_BEFORE = "numpy" in sys.modules


def seeded(output, seed, inputs, scale=1):
    import numpy
    (output / "draws.json").write_text(json.dumps({"numpy": numpy.random.random()}))
    return {
        "numpy_imported_before_experiment": NUMPY_BEFORE,
        "numpy_draw": float(numpy.random.random()) * scale,
        "python_draw": random.random(),
        "hash": hash("harness"),
        "seed": seed,
        "inputs": {name: str(path) for name, path in inputs.items()},
        "output": str(output),
        "numpy_scalar": numpy.float32(0.5),
        "not_a_number": math.nan,
    }


def crash(output, seed, inputs):
    raise ValueError("boom\\nsecond line")


def exits(output, seed, inputs, code=0):
    sys.exit(code)


def unserializable(output, seed, inputs):
    return {"model": object()}


def returns_a_list(output, seed, inputs):
    return [1, 2]


def turns_switches_off(output, seed, inputs):
    import tensorflow
    import torch
    torch.backends.cudnn.benchmark = True
    tensorflow.config.experimental.disable_op_determinism()
    import keras
    return {"keras_seeds": keras.SEEDS, "torch_seed": torch.initial_seed()}


def hang(output, seed, inputs):
    (output / "ready").write_text("")
    try:
        time.sleep(60)
    except Exception:  # an experiment's broad except must not swallow the stop
        return {"swallowed": True}
    return {}
'''


@dataclass
class Run:
    returncode: int
    stderr: str
    record: dict[str, Any]
    output: Path
    meta: Path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    return folder


def host_environment(
    *, seed: int = SEED, profile: str = "strict", threads: int = 1
) -> dict[str, str]:
    """This process's environment, less anything that steers a run, plus what the host sets."""
    base = {
        name: value
        for name, value in os.environ.items()
        if name not in determinism.VARIABLES and name != "PYTHONPATH"
    }
    return {**base, **determinism.environment(seed, profile, threads, "cpu")}


def write_spec(project: Path, **changes: Any) -> Path:
    root = project.parent
    spec: dict[str, Any] = {
        "schema": "harness.run-spec/v1",
        "run_id": "probe-0001",
        "experiment": "probe",
        "entry": "probe:seeded",
        "command": None,
        "parameters": {},
        "seed": SEED,
        "profile": "strict",
        "threads": 1,
        "device": "cpu",
        "project": str(project),
        "output": str(root / "out"),
        "meta": str(root / "meta"),
        "inputs": {},
    }
    spec.update(changes)
    (root / "meta").mkdir(exist_ok=True)
    path = root / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def start(
    project: Path, environment: dict[str, str] | None = None, **changes: Any
) -> subprocess.Popen[str]:
    spec = write_spec(project, **changes)
    return subprocess.Popen(
        [sys.executable, "-m", "harness.runtime", str(spec)],
        cwd=project,  # where harness starts the runtime: the project (its view)
        env=host_environment() if environment is None else environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], project: Path) -> Run:
    _, stderr = process.communicate(timeout=60)
    meta = project.parent / "meta"
    record = json.loads((meta / "runtime.json").read_text())
    return Run(process.returncode, stderr, record, project.parent / "out", meta)


def run(project: Path, environment: dict[str, str] | None = None, **changes: Any) -> Run:
    return finish(start(project, environment, **changes), project)


def test_a_successful_run_is_seeded_and_recorded(project: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = run(project, parameters={"scale": 2}, inputs={"data": str(data)})
    assert result.returncode == 0, result.stderr
    record = result.record
    assert record["schema"] == "harness.runtime/v1"
    assert record["run_id"] == "probe-0001"
    assert (record["status"], record["exit_code"], record["error"]) == ("succeeded", 0, None)
    assert record["violations"] == []

    numpy.random.seed(SEED)
    first, second = numpy.random.random(), numpy.random.random()
    metrics = record["metrics"]
    assert metrics["numpy_imported_before_experiment"] is False
    assert json.loads((result.output / "draws.json").read_text()) == {"numpy": first}
    assert metrics["numpy_draw"] == second * 2
    assert metrics["python_draw"] == random.Random(SEED).random()  # noqa: S311 - a seeded draw, not a secret
    assert metrics["seed"] == SEED
    assert metrics["inputs"] == {"data": str(data)}
    assert metrics["output"] == str(result.output)
    assert metrics["numpy_scalar"] == 0.5
    assert metrics["not_a_number"] == "NaN"

    assert record["observed"]["numpy"]["version"] == numpy.__version__
    assert record["environment"]["PYTHONHASHSEED"] == str(SEED)
    assert record["environment"]["OMP_NUM_THREADS"] == "1"
    assert record["fingerprint"]["schema"] == "harness.fingerprint/v1"
    timings = record["timings"]
    assert set(timings) == {"import_s", "experiment_s", "total_s"}
    assert 0 <= timings["import_s"] <= timings["total_s"]
    assert 0 <= timings["experiment_s"] <= timings["total_s"]
    assert sorted(path.name for path in result.meta.iterdir()) == ["runtime.json"]


def test_the_hash_seed_makes_hashes_agree_between_runs(project: Path) -> None:
    first = run(project).record["metrics"]["hash"]
    second = run(project).record["metrics"]["hash"]
    assert first == second


def test_a_crash_is_recorded_as_failed_with_its_error_line(project: Path) -> None:
    result = run(project, entry="probe:crash")
    assert result.returncode == 1
    record = result.record
    assert record["status"] == "failed"
    assert record["exit_code"] == 1
    assert record["error"] == "ValueError: boom second line"
    assert record["metrics"] is None
    assert record["timings"]["experiment_s"] is not None
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: boom" in result.stderr


def test_an_entry_whose_module_is_not_in_the_project_names_the_cause_and_the_fix(
    project: Path,
) -> None:
    result = run(project, entry="nowhere_to_be_found:train")
    assert result.returncode == 2
    assert result.record["status"] == "failed"
    assert result.record["error"] == (
        "the entry 'nowhere_to_be_found:train' names the module 'nowhere_to_be_found', which "
        "is not in the project (fix: correct the entry under [tool.harness.experiments.probe], "
        "or add nowhere_to_be_found.py (or the package nowhere_to_be_found/) under the "
        "project's root or its src/, where entries are imported from)"
    )
    assert result.record["timings"]["import_s"] is not None
    assert result.record["timings"]["experiment_s"] is None


def test_a_src_layout_imports(project: Path) -> None:
    """Packages under src/ (the "src layout") import as they would after `pip install -e .`."""
    package = project / "src" / "charmodel"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(
        "from charmodel import helpers\n\n"
        "def main(output, seed, inputs):\n    return {'value': helpers.VALUE}\n"
    )
    (package / "helpers.py").write_text("VALUE = 3\n")
    result = run(project, entry="charmodel.train:main")
    assert result.returncode == 0, result.stderr
    assert result.record["metrics"] == {"value": 3}


def test_a_command_script_in_a_src_layout_imports_the_package(project: Path) -> None:
    """`python scripts/train.py` in a project with src/pkg/ imports pkg, as an entry
    `pkg.train:main` does, without an install of the project (the image has none)."""
    package = project / "src" / "charmodel"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 3\n")
    scripts = project / "scripts"
    scripts.mkdir()
    (scripts / "train.py").write_text(
        "import os, pathlib, charmodel\n"
        "out = pathlib.Path(os.environ['HARNESS_OUTPUT'])\n"
        "(out / 'value.txt').write_text(str(charmodel.VALUE))\n"
    )
    result = run(project, entry=None, command=[sys.executable, str(scripts / "train.py")])
    assert result.returncode == 0, result.stderr
    assert (result.output / "value.txt").read_text() == "3"


def test_a_module_the_image_lacks_is_named_as_a_missing_dependency(project: Path) -> None:
    (project / "needs_pandas_like.py").write_text(
        "import not_installed_anywhere.io\n\ndef train(output, seed, inputs):\n    pass\n"
    )
    result = run(project, entry="needs_pandas_like:train")
    assert result.returncode == 2
    error = result.record["error"]
    assert error.startswith(
        "the experiment 'probe' imports 'not_installed_anywhere', which is neither in the "
        "image nor in the project (fix: add the distribution that provides it to the "
        "experiments dependency group"
    )
    assert "\n" not in error


def test_a_dependency_imported_while_the_experiment_runs_is_named_too(project: Path) -> None:
    (project / "late.py").write_text(
        "def train(output, seed, inputs):\n    import not_installed_anywhere\n"
    )
    result = run(project, entry="late:train")
    assert result.returncode == 1
    assert result.record["error"].startswith(
        "the experiment 'probe' imports 'not_installed_anywhere'"
    )


def test_an_entry_function_that_does_not_exist_lists_what_the_module_defines(
    project: Path,
) -> None:
    result = run(project, entry="probe:trian")
    assert result.returncode == 2
    assert result.record["error"].startswith(
        "the entry 'probe:trian' names 'trian', which module 'probe' does not define "
        "(it defines crash, exits, hang, returns_a_list, seeded)"
    )
    assert (
        "(fix: correct the entry under [tool.harness.experiments.probe]" in (result.record["error"])
    )
    assert result.record["timings"]["experiment_s"] is None


def test_an_entry_that_is_not_a_function_is_refused(project: Path) -> None:
    result = run(project, entry="probe:NUMPY_BEFORE")
    assert result.returncode == 2
    assert "the entry 'probe:NUMPY_BEFORE' is a bool, not a function" in result.record["error"]


@pytest.mark.parametrize(
    ("definition", "parameters", "cause"),
    [
        ("def wrong(data, seed):\n    pass\n", {}, "missing a required argument: 'data'"),
        ("def wrong(output, seed, inputs):\n    pass\n", {"steps": 3}, "'steps'"),
    ],
)
def test_an_entry_with_the_wrong_signature_is_refused_before_it_runs(
    project: Path, definition: str, parameters: dict[str, Any], cause: str
) -> None:
    (project / "shapes.py").write_text(definition)
    result = run(project, entry="shapes:wrong", parameters=parameters)
    assert result.returncode == 2
    error = result.record["error"]
    assert error.startswith("the entry 'shapes:wrong' cannot be called as harness calls it")
    assert cause in error
    assert "(fix: define it as def wrong(output, seed, inputs" in error
    assert result.record["timings"]["experiment_s"] is None


@pytest.mark.parametrize(("code", "status", "returncode"), [(0, "succeeded", 0), (4, "failed", 4)])
def test_sys_exit_in_an_experiment_keeps_its_status(
    project: Path, code: int, status: str, returncode: int
) -> None:
    result = run(project, entry="probe:exits", parameters={"code": code})
    assert result.returncode == returncode
    assert result.record["status"] == status


def test_metrics_that_json_cannot_hold_fail_the_run_naming_the_key(project: Path) -> None:
    result = run(project, entry="probe:unserializable")
    assert result.returncode == 1
    assert result.record["error"] == "TypeError: metrics.model is a object, which JSON cannot hold"


def test_a_return_value_that_is_not_a_mapping_is_no_metrics(project: Path) -> None:
    result = run(project, entry="probe:returns_a_list")
    assert result.returncode == 0
    assert result.record["metrics"] is None


def test_a_missing_input_is_trouble_before_the_experiment(project: Path, tmp_path: Path) -> None:
    result = run(project, inputs={"data": str(tmp_path / "absent")})
    assert result.returncode == 2
    assert result.record["error"] == f"inputs missing: data ({tmp_path / 'absent'})"
    assert not (result.output / "draws.json").exists()


def test_a_command_gets_the_spec_through_the_environment(project: Path, tmp_path: Path) -> None:
    code = (
        "import json, os, pathlib; "
        "names = ['HARNESS_OUTPUT', 'HARNESS_SEED', 'HARNESS_PARAMETERS', 'HARNESS_INPUTS', "
        "'PYTHONHASHSEED', 'OMP_NUM_THREADS']; "
        "out = pathlib.Path(os.environ['HARNESS_OUTPUT']); "
        "(out / 'seen.json').write_text(json.dumps({n: os.environ[n] for n in names}))"
    )
    data = tmp_path / "data"
    data.mkdir()
    result = run(
        project,
        entry=None,
        command=[sys.executable, "-c", code],
        parameters={"steps": 2, "name": "x"},
        inputs={"data": str(data)},
    )
    assert result.returncode == 0, result.stderr
    assert result.record["status"] == "succeeded"
    assert result.record["metrics"] is None
    assert result.record["observed"] == {}
    assert result.record["timings"]["import_s"] is None
    seen = json.loads((result.output / "seen.json").read_text())
    assert seen == {
        "HARNESS_OUTPUT": str(result.output),
        "HARNESS_SEED": str(SEED),
        "HARNESS_PARAMETERS": '{"name": "x", "steps": 2}',
        "HARNESS_INPUTS": json.dumps({"data": str(data)}),
        "PYTHONHASHSEED": str(SEED),
        "OMP_NUM_THREADS": "1",
    }


def test_a_command_s_standard_output_is_kept_where_its_experiment_says(project: Path) -> None:
    # A script that prints its results (a loss per step, a sample) and writes no file.
    code = (
        "import sys; print('step 0: loss 4.2'); sys.stderr.write('a warning\\n'); "
        "print('sample: hello')"
    )
    result = run(project, entry=None, command=[sys.executable, "-c", code], stdout="log/out.txt")
    assert result.returncode == 0, result.stderr
    assert result.record["status"] == "succeeded"
    kept = result.output / "log" / "out.txt"
    # Its standard error is not a result (warnings, progress bars).
    assert kept.read_text() == "step 0: loss 4.2\nsample: hello\n"
    # It is still passed on, as every command's output is.
    assert "a warning" in result.stderr


def test_a_kept_output_is_never_written_through_a_link(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    (project.parent / "out").mkdir()
    (project.parent / "out" / "stdout.txt").symlink_to(outside)
    result = run(
        project, entry=None, command=[sys.executable, "-c", "print(1)"], stdout="stdout.txt"
    )
    assert result.record["status"] == "failed"
    assert result.record["error"].startswith("cannot keep the standard output in stdout.txt")
    assert outside.read_text() == "untouched"


@pytest.mark.parametrize("stdout", ["../out.txt", "/tmp/out.txt", "a//b", 3])
def test_a_kept_output_outside_the_output_folder_is_refused(project: Path, stdout: object) -> None:
    result = run(project, entry=None, command=[sys.executable, "-c", "print(1)"], stdout=stdout)
    assert result.record["status"] == "failed"
    assert "stdout must be a relative path inside the output folder" in result.record["error"]


@pytest.mark.parametrize(
    ("command", "returncode", "error"),
    [
        ([sys.executable, "-c", "raise SystemExit(3)"], 3, "command exited with status 3"),
        (
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
            137,
            "command was killed by SIGKILL",
        ),
        (["no-such-program-anywhere"], 127, "command not found: no-such-program-anywhere"),
    ],
)
def test_a_failing_command_is_recorded_with_its_status(
    project: Path, command: list[str], returncode: int, error: str
) -> None:
    result = run(project, entry=None, command=command)
    assert result.returncode == returncode
    assert (result.record["status"], result.record["exit_code"]) == ("failed", returncode)
    assert result.record["error"] == error


def test_switches_an_experiment_turned_off_are_reported(project: Path, tmp_path: Path) -> None:
    fakes = write_fakes(tmp_path / "fakes")
    environment = {**host_environment(), "PYTHONPATH": str(fakes)}
    result = run(project, environment, entry="probe:turns_switches_off")
    assert result.returncode == 0, result.stderr
    record = result.record
    assert record["status"] == "succeeded"
    assert record["metrics"] == {"keras_seeds": [SEED], "torch_seed": SEED}
    assert record["violations"] == [
        "torch.backends.cudnn.benchmark was turned on",
        "tf.config.experimental.enable_op_determinism was turned off",
    ]
    assert record["observed"]["torch"]["cudnn_benchmark"] is True
    assert record["observed"]["torch"]["deterministic_algorithms"] is True
    assert record["observed"]["tensorflow"]["op_determinism"] is False
    assert "harness runtime: violation: torch.backends.cudnn.benchmark was turned on" in (
        result.stderr
    )


def test_an_environment_the_host_did_not_set_is_reported(project: Path) -> None:
    environment = {
        name: value
        for name, value in host_environment().items()
        if name not in ("PYTHONHASHSEED", "OMP_NUM_THREADS")
    }
    environment["MKL_NUM_THREADS"] = "8"
    result = run(project, environment)
    assert result.returncode == 0
    assert result.record["violations"] == [
        "MKL_NUM_THREADS was '8' (expected '1')",
        "OMP_NUM_THREADS was not set (expected '1')",
        f"PYTHONHASHSEED was not set (expected '{SEED}')",
    ]


def test_an_invalid_spec_is_trouble_and_still_recorded(project: Path) -> None:
    result = run(project, command=["python"])
    assert result.returncode == 2
    assert result.record["status"] == "failed"
    assert result.record["exit_code"] == 2
    assert result.record["run_id"] is None
    assert "exactly one of entry and command" in result.record["error"]


def test_a_spec_that_cannot_be_read_is_trouble(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "harness.runtime", str(tmp_path / "absent.json")],
        env=host_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 2
    assert "cannot read the run spec" in process.stderr


@pytest.mark.parametrize(
    ("signum", "returncode", "error"),
    [(signal.SIGTERM, 143, "terminated by SIGTERM"), (signal.SIGINT, 130, "interrupted by SIGINT")],
)
def test_a_stopped_run_is_recorded_as_interrupted(
    project: Path, signum: signal.Signals, returncode: int, error: str
) -> None:
    process = start(project, entry="probe:hang")
    ready = project.parent / "out" / "ready"
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the experiment never started"
        time.sleep(0.02)
    process.send_signal(signum)
    result = finish(process, project)
    assert result.returncode == returncode
    assert (result.record["status"], result.record["error"]) == ("interrupted", error)
    assert result.record["metrics"] is None


def test_jsonable_converts_scalars_and_names_what_it_cannot() -> None:
    value = {"a": numpy.float64(1.5), "b": [numpy.int64(2), (math.inf, -math.inf)], 3: True}
    assert jsonable(value, "metrics") == {"a": 1.5, "b": [2, ["Infinity", "-Infinity"]], "3": True}
    with pytest.raises(TypeError, match=r"metrics\.b\[0\] is a ndarray"):
        jsonable({"b": [numpy.zeros(3)]}, "metrics")
    with pytest.raises(TypeError, match="a key of type tuple"):
        jsonable({(1, 2): 0}, "metrics")
    assert metrics_of(None) is None
    assert metrics_of({"loss": numpy.float32(0.25)}) == {"loss": 0.25}


def test_recorded_environment_keeps_what_steers_a_run_only() -> None:
    every_variable_set = determinism.environment(0, "portable", 1, "cpu")
    assert recorded_environment(every_variable_set) == every_variable_set
    environ = {
        "OMP_NUM_THREADS": "1",
        "HARNESS_RUN_ID": "x",
        "PYTHONHASHSEED": "0",
        "CUDA_VISIBLE_DEVICES": "",
        "HOME": "/tmp",
        "HOSTNAME": "abc",
        "PATH": "/usr/bin",
    }
    assert recorded_environment(environ) == {
        "CUDA_VISIBLE_DEVICES": "",
        "HARNESS_RUN_ID": "x",
        "OMP_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
    }


def test_usage_without_a_spec_is_trouble(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main([]) == 2
    assert "usage: python -m harness.runtime SPEC" in capsys.readouterr().err


def test_signals_raise_during_the_experiment_and_are_ignored_while_recording() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with runner._SignalGuard() as guard:
        with pytest.raises(runner.Terminated):
            signal.raise_signal(signal.SIGTERM)
        guard.ignore()
        signal.raise_signal(signal.SIGTERM)  # ignored: the record is being written
        signal.raise_signal(signal.SIGINT)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_fingerprint_that_fails_is_recorded_as_its_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_: int | None) -> dict[str, object]:
        raise OSError("no /proc here")

    monkeypatch.setattr(runner.fingerprint, "capture", broken)
    assert runner._fingerprint(1) == {
        "schema": "harness.fingerprint/v1",
        "error": "OSError: no /proc here",
    }
    assert "OSError: no /proc here" in capsys.readouterr().err
