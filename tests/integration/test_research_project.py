"""A research repository as its authors wrote it, with harness installed from its wheel.

The project has a requirements.txt, a training script run as a ``command`` that seeds
nothing itself, reads its data by a path relative to where it is run, saves its settings
with that path made absolute, and logs through a library that names its files after the
time (as TensorBoard does). Each friction a new user met on such repositories is a step
here, on the real engine: every Python process of the command is seeded, the
time-stamped logs are named as the only thing that moved (with the line to add), the
variation that moves the settings is named with its evidence (the project at another
path), a write into the read-only project names the output folder, and the fixed project
reaches a verified certificate. ``harness gc`` then removes a superseded image of the project and
keeps the current one and another project's.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.engine import Engine
from tests.integration.test_own_project import (  # noqa: F401 - the fixture, by name
    Tool,
    commit,
    image_name,
    new_project,
    tool,
)

TBLOG = '''\
"""A logger as training libraries write them: an event file and a log named after the time."""
import os
import socket
import time


class Writer:
    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        stamp = time.time()
        self.events = open(
            os.path.join(folder, f"events.out.tfevents.{int(stamp)}.{socket.gethostname()}"), "a"
        )
        self.log = open(os.path.join(os.path.dirname(folder),
                                     time.strftime("train-%Y%m%d-%H%M%S.log")), "a")

    def scalar(self, tag, value, step):
        self.events.write(f"{time.time()} {tag} {step} {value}\\n")
        self.log.write(f"{time.time():.6f} {time.ctime()} step {step}: {tag} {value:.6f}\\n")
'''

TRAIN = '''\
"""Fit a linear model by stochastic gradient descent, seeding nothing itself."""
import json
import os
import random
from pathlib import Path

import numpy as np

import tblog

DATA = "data/train.csv"
data = np.loadtxt(DATA, delimiter=",", skiprows=1)
features, target = data[:, :-1], data[:, -1]
weights = np.random.randn(features.shape[1])
output = Path(os.environ.get("HARNESS_OUTPUT", "out"))
# The run's settings, saved as many scripts save them: with the data's absolute path.
settings = {"data": os.path.abspath(DATA), "steps": 300}
(output / "settings.json").write_text(json.dumps(settings))
log = tblog.Writer(str(output / "runs"))
for step in range(300):
    row = random.randrange(len(features))
    weights -= 0.01 * (features[row] @ weights - target[row]) * features[row]
    log.scalar("loss", float(((features @ weights - target) ** 2).mean()), step)
np.save(output / "weights.npy", weights)
'''


def _research_repository(root: Path) -> Path:
    project = new_project(root, "sgd-study", ["numpy>=2.0"])
    (project / "requirements.txt").write_text("numpy>=2.0\n")
    (project / "tblog.py").write_text(TBLOG)
    (project / "train.py").write_text(TRAIN)
    (project / "data").mkdir()
    rows = ["a,b,c,y"] + [
        f"{i % 7},{(i * 3) % 5},{i % 2},{(i % 7) * 0.5 + i % 2}" for i in range(60)
    ]
    (project / "data" / "train.csv").write_text("\n".join(rows) + "\n")
    return project


def _set_experiments(project: Path, name: str, tables: str) -> None:
    """Replace the experiment init wrote (its training script) with the project's own."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("[tool.harness.experiments.")
    end = text.find("\n[", start + 1)
    rest = "" if end == -1 else text[end:]
    text = text[:start] + tables + rest
    pyproject.write_text(text.replace('image = "sgd-study"', f'image = "{name}"'))


def _add_lines(project: Path, experiment: str, lines: str) -> None:
    pyproject = project / "pyproject.toml"
    header = f"[tool.harness.experiments.{experiment}]\n"
    pyproject.write_text(pyproject.read_text().replace(header, header + lines))


def test_a_research_repository_reaches_a_verified_certificate(
    tool: Tool,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    engine: Engine,
) -> None:
    project = _research_repository(tmp_path / "study")
    tool.ok("init", cwd=project)
    name = image_name("research")
    _set_experiments(
        project,
        name,
        '[tool.harness.experiments.train]\ncommand = ["python", "train.py"]\n\n'
        '[tool.harness.experiments.writer]\ncommand = ["python", "-c", '
        "\"open('model.npy', 'wb').write(b'w')\"]\n\n"
        '[tool.harness.experiments.printer]\ncommand = ["python", "-c", '
        "\"import sys; print('loss 0.25'); sys.stderr.write('a warning')\"]\n"
        'stdout = "stdout.txt"\n',
    )
    tool.ok("lock", cwd=project)
    commit(project)
    built = tool.build(project)

    # The script seeds nothing; its Python process was seeded on startup, and says so.
    (record,) = json.loads(tool.ok("run", "train", "--json", cwd=project).stdout)
    assert record["seeding"]["how"] == "startup hook"
    assert record["seeding"]["python_processes"] == 1
    assert "numpy" in record["observed"]

    # A write next to the code runs unchanged, in the run's writable view of the project:
    # the project itself never changes, and with no outputs named the file is an artifact.
    (written,) = json.loads(tool.ok("run", "writer", "--json", cwd=project).stdout)
    assert [artifact["path"] for artifact in written["artifacts"]] == ["model.npy"]
    assert not (project / "model.npy").exists()

    # A script that prints its results and writes no file: what it prints is kept.
    (printed,) = json.loads(tool.ok("run", "printer", "--json", cwd=project).stdout)
    assert [artifact["path"] for artifact in printed["artifacts"]] == ["stdout.txt"]
    kept_output = project / ".harness" / "runs" / printed["run_id"] / "artifacts" / "stdout.txt"
    assert kept_output.read_text() == "loss 0.25\n"

    # Only the time-stamped logs moved: verify says so, with the line to add. The data,
    # read by a path relative to where the script is run, is found under every variation.
    varied = ("--vary", "workdir,hashseed,timezone")
    noisy = tool("verify", "train", *varied, cwd=project)
    assert noisy.returncode == 1, noisy.stderr
    assert "only log or event files moved" in noisy.stdout
    assert 'exclude = ["events.out.tfevents.*", "*.log"]' in noisy.stdout, noisy.stdout
    _add_lines(project, "train", 'exclude = ["events.out.tfevents.*", "*.log"]\n')

    # Now the settings move with the project's path; verify names the variation, with the
    # evidence.
    moving = tool("verify", "train", *varied, "--json", cwd=project)
    assert moving.returncode == 1, moving.stderr
    (experiment,) = json.loads(moving.stdout)["experiments"]
    assert experiment["culprits"] == ["workdir"]
    evidence = experiment["evidence"]["workdir"]
    assert evidence.startswith(
        "moves under workdir: settings.json (only the project's path it holds differs, in "
        "$.data; all else is identical."
    )
    assert "Save paths relative to the project" in evidence
    # Or leave the variation out: the line to paste, kept from the choice made here.
    assert (
        'vary = ["hashseed", "timezone"] under [tool.harness.experiments.train] in '
        "pyproject.toml, or --vary=hashseed,timezone for one verify"
    ) in evidence
    labels = [check["label"] for check in experiment["checks"]]
    assert labels[-3:] == ["variation workdir", "variation hashseed", "variation timezone"]

    # The fix the evidence names; then the certificate.
    train = project / "train.py"
    train.write_text(train.read_text().replace("os.path.abspath(DATA)", "DATA"))
    commit(project)
    verified = tool("verify", "train", *varied, "--json", cwd=project)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (experiment,) = json.loads(verified.stdout)["experiments"]
    assert [a["path"] for a in experiment["artifacts"]] == ["settings.json", "weights.npy"]
    certified = json.loads(
        tool.ok("certify", "--key", str(tool.keys / "runner.key"), "--json", cwd=project).stdout
    )
    checked = tool.ok(
        "certificate", "verify", certified["certificate"],
        "--key", str(tool.keys / "runner.pub"), "--image", built["reference"],
        cwd=project,
    )  # fmt: skip
    assert "certificate verifies" in checked.stdout
    run_folder = project / ".harness" / "runs" / experiment["control_runs"][0]
    kept = json.loads((run_folder / "record.json").read_text())["unlisted"]
    assert {Path(entry["path"]).suffix for entry in kept} >= {".log"}

    _garbage_is_collected(tool, project, engine, built["reference"])


def _child_image(engine: Engine, folder: Path, parent: str, labels: dict[str, str]) -> str:
    """An image built on ``parent`` (inheriting its labels), with ``labels`` over them."""
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {parent}\n")
    return engine.build(folder, labels=labels)


def _garbage_is_collected(installed: Tool, project: Path, engine: Engine, current: str) -> None:
    """A superseded image of the project goes; the current one and another's stay."""
    superseded = _child_image(
        engine, project.parent / "superseded", current, {"io.harness.test": "superseded"}
    )
    others = _child_image(
        engine,
        project.parent / "others",
        current,
        {"org.opencontainers.image.title": "other (cpu)"},
    )
    try:
        listed = json.loads(installed.ok("gc", "--dry-run", "--json", cwd=project).stdout)
        assert [image["id"] for image in listed["removed"]] == [superseded]
        assert engine.image(superseded) is not None  # a dry run removes nothing
        kept = {image["id"]: image["kept_because"] for image in listed["kept"]}
        current_id = engine.image(current)
        assert current_id is not None and kept[current_id.id] == "the current build"
        assert others not in kept
        collected = installed.ok("gc", cwd=project)
        assert "removed 1 image(s), freed" in collected.stdout
        assert engine.image(superseded) is None
        assert engine.image(others) is not None
        assert engine.image(current) is not None
    finally:
        for image in (superseded, others):
            engine.remove_unused_image(image)
