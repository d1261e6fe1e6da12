"""A command experiment's Python processes are seeded and switched like an entry, and a
failed command says why in one line taken from its output.

The runtime runs for real in a fresh interpreter, as in the image; torch is the stand-in
of the framework tests, imported for real through the startup hook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runtime import explain, runner, startup
from harness.runtime.runner import import_roots
from tests.unit.test_runtime_frameworks import write_fakes
from tests.unit.test_runtime_runner import PROBE, SEED, Run, host_environment, run

TRAIN = """
import json, multiprocessing, os, random, subprocess, sys
import torch

def draw(queue):
    import random
    queue.put(random.random())

if __name__ == "__main__":
    out = os.environ["HARNESS_OUTPUT"]
    child = subprocess.run(
        [sys.executable, "-c", "import random; print(random.random())"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    context = multiprocessing.get_context("spawn")  # how DataLoader workers may start
    queue = context.Queue()
    worker = context.Process(target=draw, args=(queue,))
    worker.start()
    spawned = queue.get(timeout=60)
    worker.join()
    with open(os.path.join(out, "draws.json"), "w") as stream:
        json.dump({"main": random.random(), "child": float(child), "worker": spawned,
                   "torch_seed": torch.initial_seed()}, stream)
"""


def _seeded_draw() -> float:
    import random  # noqa: PLC0415

    generator = random.Random(SEED)  # noqa: S311 - the generator the run seeds
    return generator.random()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    return folder


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    return write_fakes(tmp_path / "fakes")


def _command_run(project: Path, fakes: Path, command: list[str], **changes: object) -> Run:
    environment = {**host_environment(), "PYTHONPATH": str(fakes)}
    return run(project, environment, entry=None, command=command, **changes)


def test_a_python_command_and_every_python_process_it_starts_are_seeded_and_switched(
    project: Path, fakes: Path
) -> None:
    (project / "train.py").write_text(TRAIN)
    result = _command_run(project, fakes, [sys.executable, "train.py"])
    assert result.returncode == 0, result.stderr
    draws = json.loads((result.output / "draws.json").read_text())
    # The program, a subprocess and a spawned worker each start from the run's seed.
    assert draws == {
        "main": _seeded_draw(),
        "child": _seeded_draw(),
        "worker": _seeded_draw(),
        "torch_seed": SEED,
    }
    record = result.record
    assert record["seeding"]["how"] == "startup hook"
    assert record["seeding"]["python_processes"] >= 3
    # Read back from the program itself, as for an entry.
    assert record["observed"]["torch"]["deterministic_algorithms"] is True
    assert record["observed"]["torch"]["num_threads"] == 1
    assert record["violations"] == []


def test_a_command_that_turns_a_switch_off_is_a_violation(project: Path, fakes: Path) -> None:
    code = "import torch; torch.use_deterministic_algorithms(False)"
    result = _command_run(project, fakes, [sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.record["violations"] == ["torch.use_deterministic_algorithms was turned off"]


def test_a_command_that_is_not_python_gets_the_environment_seeds_and_says_so(
    project: Path, fakes: Path
) -> None:
    command = ["sh", "-c", 'echo "$PYTHONHASHSEED" > "$HARNESS_OUTPUT/hashseed"']
    result = _command_run(project, fakes, command)
    assert result.returncode == 0, result.stderr
    assert (result.output / "hashseed").read_text().strip() == str(SEED)
    seeding = result.record["seeding"]
    assert (seeding["how"], seeding["python_processes"]) == ("environment only", 0)
    assert "switches could not" in seeding["note"]


def test_an_entry_records_its_own_seeding(project: Path) -> None:
    result = run(project)
    assert result.record["seeding"] == {"how": "entry", "python_processes": 1, "note": None}


def test_a_failed_command_quotes_the_last_traceback_line(project: Path, fakes: Path) -> None:
    (project / "train.py").write_text(
        "print('epoch 1: error rate 0.5')\nopen('data/x.csv').read()\n"
    )
    result = _command_run(project, fakes, [sys.executable, "train.py"])
    assert result.returncode == 1
    assert result.record["error"] == (
        "command exited with status 1: FileNotFoundError: [Errno 2] No such file or "
        "directory: 'data/x.csv'"
    )
    # The output still reaches the log, in full.
    assert "Traceback (most recent call last):" in result.stderr


def test_a_failed_program_that_is_not_python_quotes_its_error_line(
    project: Path, fakes: Path
) -> None:
    command = ["sh", "-c", "echo step 1; echo 'fatal: no checkpoint found' >&2; echo done; exit 4"]
    result = _command_run(project, fakes, command)
    assert result.returncode == 4
    assert result.record["error"] == "command exited with status 4: fatal: no checkpoint found"


def test_a_write_into_the_read_only_project_names_the_output_folder(
    project: Path, fakes: Path
) -> None:
    code = "raise OSError(30, 'Read-only file system', 'checkpoints/model.pt')"
    result = _command_run(project, fakes, [sys.executable, "-c", code])
    assert result.returncode == 1
    error = result.record["error"]
    assert "Read-only file system: 'checkpoints/model.pt'" in error
    assert "$HARNESS_OUTPUT (the output folder)" in error


def test_an_entry_that_writes_into_the_read_only_project_names_the_output_folder(
    project: Path,
) -> None:
    (project / "ro.py").write_text(
        "def fit(output, seed, inputs):\n"
        "    raise OSError(30, 'Read-only file system', 'model.pt')\n"
    )
    result = run(project, entry="ro:fit")
    assert "output folder passed as output=" in result.record["error"]


def test_the_hook_does_nothing_outside_harness(tmp_path: Path) -> None:
    code = "import sys; print('harness.runtime.startup' in sys.modules)"
    environment = {k: v for k, v in os.environ.items() if k != startup.VARIABLE}
    environment["PYTHONPATH"] = str(startup.SITE)
    shown = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "False"
    assert startup.activate({}) is False


def test_reports_are_read_within_bounds(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "1.json").write_text(json.dumps({"started": 2.0, "observed": {"b": {}}}))
    (reports / "2.json").write_text(json.dumps({"started": 1.0, "observed": {"a": {}}}))
    (reports / "3.json").write_text("not json")
    (reports / "4.json").symlink_to("/etc/passwd")
    (reports / "5.json").write_text("x" * (startup.MAX_REPORT_BYTES + 1))
    found = startup.collect(reports)
    assert [report["observed"] for report in found] == [{"a": {}}, {"b": {}}]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [
                "epoch 1",
                "Traceback (most recent call last):",
                '  File "train.py", line 3, in <module>',
                "    load()",
                "    ^^^^^^",
                "KeyError: 'lr'",
                "",
                "During handling of the above exception, another exception occurred:",
                "",
                "Traceback (most recent call last):",
                '  File "train.py", line 5, in <module>',
                "ValueError: no learning rate",
                "wandb: finished",
            ],
            "ValueError: no learning rate",
        ),
        (["loading", "Error: CUDA out of memory", "cleanup done"], "Error: CUDA out of memory"),
        (["all fine", "exiting"], None),
    ],
)
def test_the_explaining_line(lines: list[str], expected: str | None) -> None:
    assert explain.explaining_line(lines) == expected


def test_a_download_without_network_names_the_fix() -> None:
    # torchvision's MNIST(download=True) in a run: each mirror fails, then its own error.
    tail = [
        "Downloading https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "Failed to download (trying next):",
        "<urlopen error [Errno -3] Temporary failure in name resolution>",
        "Traceback (most recent call last):",
        '  File "main.py", line 3, in <module>',
        "RuntimeError: Error downloading train-images-idx3-ubyte.gz",
    ]
    message = runner.command_failure(1, tail)
    assert message.startswith(
        "command exited with status 1: RuntimeError: Error downloading train-images-idx3-ubyte.gz "
        "(fix: a run has no network"
    )
    assert "download=False" in message
    assert "(fix:" not in runner.command_failure(1, tail[3:])


def test_an_entry_whose_download_had_no_network_names_the_fix() -> None:
    error = RuntimeError("We couldn't load the model")
    error.__cause__ = OSError("[Errno -3] Temporary failure in name resolution")
    message = runner._raised(error)
    assert message.startswith("RuntimeError: We couldn't load the model (fix: a run has no network")
    assert "(fix:" not in runner._raised(ValueError("bad shape"))


def test_the_runtime_sets_aside_what_outputs_does_not_name(project: Path, fakes: Path) -> None:
    code = (
        "import os, pathlib; out = pathlib.Path(os.environ['HARNESS_OUTPUT']); "
        "(out / 'runs' / 'x').mkdir(parents=True); "
        "(out / 'runs' / 'x' / 'events.out.tfevents.1.host').write_text('e'); "
        "(out / 'model.pt').write_text('w')"
    )
    result = _command_run(
        project, fakes, [sys.executable, "-c", code], outputs=["model.pt"], exclude=[]
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in result.output.iterdir()) == ["model.pt"]
    assert (result.meta / "unlisted" / "runs" / "x" / "events.out.tfevents.1.host").is_file()
    assert "set aside 1 file(s)" in result.stderr


def test_a_command_of_a_src_layout_imports_its_package_as_an_entry_would(tmp_path: Path) -> None:
    # `python -m bikes` where the package is src/bikes: the template's MLproject says
    # `PYTHONPATH=src python -m bikes`, which would drop the seeding hook's folder.
    (tmp_path / "src" / "bikes").mkdir(parents=True)
    parts = startup.python_path("/runtime", import_roots(tmp_path)).split(os.pathsep)
    assert parts == [str(startup.SITE), "/runtime", str(tmp_path), str(tmp_path / "src")]
    # A src/ that is itself a package is imported from the root, not put on the path.
    (tmp_path / "src" / "__init__.py").write_text("")
    assert str(tmp_path / "src") not in startup.python_path(None, import_roots(tmp_path)).split(
        os.pathsep
    )
