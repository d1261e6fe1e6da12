"""verify names the variation that breaks or moves a result, with its evidence, and says
when only logs or event files moved, with the line that sets them aside.

The engine is the in-memory Docker of the other verify tests: what a run writes depends on
the environment its container was given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from harness.config import Config, load_config
from harness.engine import Engine
from harness.runs import noise, verify
from harness.runs.variations import select
from tests.unit.fake_docker import FakeClient, Ran
from tests.unit.test_verify import IMAGE, _request

PYPROJECT = """\
[project]
name = "culprits"
version = "0"

[tool.harness]
image = "culprits"
host-name = "a"

[tool.harness.experiments.fragile]
entry = "culprits:fragile"
outputs = ["weights.bin"]

[tool.harness.experiments.logger]
entry = "culprits:logger"

[tool.harness.experiments.both]
entry = "culprits:both"
outputs = ["weights.bin", "events.out.tfevents.*"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)
    (project / "pyproject.toml").write_text(PYPROJECT)
    return load_config(project)


def behaviour(experiment: str, environment: Mapping[str, str]) -> Ran:
    if experiment == "fragile":
        # Under the C locale it writes nothing: the run fails.
        return 0.01, {} if environment.get("LC_ALL") == "C" else {"weights.bin": b"w"}
    if experiment == "both" and environment.get("LC_ALL") == "C":
        return 0.01, {}  # fails under the C locale, and logs noise otherwise
    # The same weights every time, and an event file named after the run, as TensorBoard
    # names it after the time and the host.
    stamp = environment["HARNESS_RUN_ID"].rsplit("-", 1)[-1]
    return 0.01, {"weights.bin": b"w", f"events.out.tfevents.17334{stamp}.host": stamp.encode()}


def _verify(config: Config, name: str, jobs: int) -> verify.ExperimentVerification:
    verification = verify.verify(
        Engine(FakeClient(behaviour), "fake-a"),  # type: ignore[arg-type]
        config,
        IMAGE,
        [config.experiment(name)],
        variations=select("timezone,locale,hashseed"),
        base=_request,
        jobs=jobs,
    )
    return verification.experiments[0]


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_combined_run_that_fails_is_tried_per_variation_and_the_culprit_named(
    config: Config, jobs: int
) -> None:
    outcome = _verify(config, "fragile", jobs)
    assert not outcome.reproducible
    assert outcome.culprits == ["locale"]
    assert outcome.failure is not None
    assert outcome.failure.startswith("fails under locale: declared output 'weights.bin'")
    assert outcome.failure.endswith("(the locale: give files an encoding, sort without the locale)")
    # The control runs finished, and every single-variation run is kept, failed or not.
    assert len(outcome.controls) == 2
    document = outcome.as_dict(config)
    assert [(c["label"], c["status"]) for c in document["checks"]] == [
        ("control run 2", "succeeded"),
        ("all variations (timezone, locale, hashseed)", "failed"),
        ("variation timezone", "succeeded"),
        ("variation locale", "failed"),
        ("variation hashseed", "succeeded"),
    ]
    assert document["evidence"] == {"locale": outcome.failure}


def test_when_only_event_files_move_verify_gives_the_line_to_add(config: Config) -> None:
    outcome = _verify(config, "logger", 2)
    assert outcome.culprits == [verify.RERUN]
    assert outcome.hint is not None
    assert 'exclude = ["events.out.tfevents.*"] under [tool.harness.experiments.logger]' in (
        outcome.hint
    )


def test_the_failure_evidence_names_the_path_and_what_it_points_to() -> None:
    error = "FileNotFoundError: [Errno 2] No such file or directory: '/harness/project/data/x.csv'"
    run = verify.RunResult("r", Path("r"), {"status": "failed", "error": error})
    assert verify.fails_under("workdir", run) == (
        "fails under workdir: FileNotFoundError '/harness/project/data/x.csv' (the folder the "
        "project lies in: name files relative to the project, never by its absolute path, in "
        "what the run reads and in what it writes)"
    )


@pytest.mark.parametrize(
    ("paths", "line"),
    [
        (
            ["runs/Dec06_10-15-00_host/events.out.tfevents.1733480100.host.1.0", "train.log"],
            'exclude = ["events.out.tfevents.*", "*.log"]',
        ),
        (["logs/metrics-20261206-101500.csv"], 'exclude = ["logs/metrics-*.csv"]'),
        # CatBoost's telemetry folder: time left, times per iteration, its own event file.
        (
            [
                "catboost_info/catboost_training.json",
                "catboost_info/learn/events.out.tfevents",
                "catboost_info/time_left.tsv",
                "logs/12_06_2026_17_12_28.log",
            ],
            'exclude = ["catboost_info", "*.log"]',
        ),
    ],
)
def test_log_like_files_get_an_exact_exclude_line(paths: list[str], line: str) -> None:
    hint = noise.only_noise_moved("train", paths)
    assert hint is not None
    assert line in hint


def test_a_moved_result_is_not_noise() -> None:
    assert noise.only_noise_moved("train", ["model.pt", "train.log"]) is None


def test_noise_and_a_breaking_variation_are_named_in_one_verify(config: Config) -> None:
    outcome = _verify(config, "both", 2)
    assert outcome.culprits == [verify.RERUN, "locale"]
    assert outcome.hint is not None and "events.out.tfevents.*" in outcome.hint
    assert outcome.failure is not None
    assert outcome.failure.startswith("fails under locale: ")


def _run_at(folder: Path, project: str) -> verify.RunResult:
    """A run folder whose spec says where its project lay."""
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({"project": project}))
    return verify.RunResult(folder.name, folder, {"status": "succeeded"})


def _checkpoints(tmp_path: Path, b_value: str, *, tensor: str = "identical") -> verify.Check:
    """A Lightning checkpoint as a run elsewhere rewrites it: ModelCheckpoint's paths."""
    from harness.compare.model import (  # noqa: PLC0415 - the report's parts, for this test
        ArtifactResult,
        ComparisonResult,
        Entry,
        Side,
        TensorResult,
    )

    checkpoint = ArtifactResult("lightning_logs/epoch=2.ckpt", "pt", "differs", "bitwise")
    checkpoint.tensors.append(TensorResult("state_dict/net.0.weight", tensor))  # type: ignore[arg-type]
    where = 'callbacks["ModelCheckpoint{...}"]/dirpath'
    checkpoint.add_entry(Entry(where, "differs", "/harness/project/lightning_logs", b_value))
    comparison = ComparisonResult(Side("a", "a"), Side("b", "b"), None, None, [checkpoint])
    moved = _run_at(tmp_path / "moved", "/harness/elsewhere/moved-project")
    return verify.Check("variation workdir", ("workdir",), moved, comparison)


def test_a_file_holding_only_the_project_s_path_is_named_so(tmp_path: Path) -> None:
    control = _run_at(tmp_path / "control", "/harness/project")
    moved = "/harness/elsewhere/moved-project/lightning_logs"
    evidence = verify.moves_under("workdir", _checkpoints(tmp_path / "1", moved), control)
    assert evidence.startswith(
        "moves under workdir: lightning_logs/epoch=2.ckpt (only the project's path it holds "
        "differs, in dirpath; all else is identical."
    )
    # The fix where the path does not matter: the line to paste, and the flag.
    assert evidence.endswith(
        'leave the variation out: vary = ["all", "-workdir"] under '
        "[tool.harness.experiments.NAME] in pyproject.toml, or --vary=all,-workdir for one "
        "verify)"
    )
    # Anything else that moved (another string, a tensor) gets the general evidence.
    for check in (
        _checkpoints(tmp_path / "2", "/harness/elsewhere/moved-project/other"),
        _checkpoints(tmp_path / "3", moved, tensor="differs"),
    ):
        assert "only the project's path" not in verify.moves_under("workdir", check, control)
        assert "never by its absolute path" in verify.moves_under("workdir", check, control)
