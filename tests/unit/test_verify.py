"""`harness verify` with runs at once, on the real engine code over an in-memory Docker.

What must hold whatever the number of jobs: the same document in the same order, however
the runs finish; runs bounded per host; and Ctrl-C leaving no container on any engine
and no record ``running``.
"""

from __future__ import annotations

import _thread
import json
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests.exceptions

from harness import interrupt, parallel
from harness.cli.state import State
from harness.cli.trust import conclude
from harness.config import Config, Experiment, load_config
from harness.engine import Engine
from harness.errors import EngineUnavailable, HarnessError
from harness.fleet.hosts import Host
from harness.images.build import BuildResult
from harness.runs import records, verify
from harness.runs.run import RunRequest
from harness.runs.variations import select
from harness.ui import UI
from tests.unit.fake_docker import Behaviour, FakeClient, Ran

PYPROJECT = """\
[project]
name = "overlap"
version = "0"

[tool.harness]
image = "overlap"
host-name = "a"

[tool.harness.experiments.steady]
entry = "overlap:steady"
outputs = ["weights.bin"]

[tool.harness.experiments.zoned]
entry = "overlap:zoned"
outputs = ["weights.bin"]

[tool.harness.experiments.broken]
entry = "overlap:broken"
outputs = ["weights.bin"]

[tool.harness.experiments.silent]
entry = "overlap:silent"
"""
IMAGE = BuildResult("overlap:cpu", f"sha256:{'ab' * 32}", "cpu", True, 0.0, 1)


@pytest.fixture(autouse=True)
def _forget_interrupts() -> Iterator[None]:
    yield
    interrupt.reset()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)  # the container's user reads it
    (project / "pyproject.toml").write_text(PYPROJECT)
    return load_config(project)


def _outputs(experiment: str, environment: Mapping[str, str]) -> dict[str, bytes]:
    if experiment in ("broken", "silent"):
        # broken never writes its declared output: the run fails; silent names no
        # outputs and writes none: the run succeeds with no artifact.
        return {}
    zone = environment.get("TZ", "") if experiment == "zoned" else ""
    return {"weights.bin": f"{experiment} {zone}".encode()}


def later_first(experiment: str, environment: Mapping[str, str]) -> Ran:
    """Runs with more variations finish first; the zoned experiment is the slowest."""
    seconds = 0.25 - 0.02 * len(environment) + (0.1 if experiment == "zoned" else 0.0)
    return max(seconds, 0.01), _outputs(experiment, environment)


def _request(experiment: Experiment) -> RunRequest:
    return RunRequest(experiment, seed=0, profile="strict", threads=1)


def _verify(config: Config, client: FakeClient, jobs: int, *names: str) -> verify.Verification:
    return verify.verify(
        Engine(client, "fake-a"),  # type: ignore[arg-type]
        config,
        IMAGE,
        [config.experiment(name) for name in names],
        variations=select("timezone,locale,hashseed"),
        base=_request,
        jobs=jobs,
    )


def _shape(document: dict[str, Any]) -> list[Any]:
    """A verification document without what differs between any two verifications."""
    return [
        (
            e["name"],
            e["reproducible"],
            e["failure"] and re.sub(r" \d{8}-\d{6}-\S+", "", e["failure"]),
            e["culprits"],
            [(c["label"], c["variations"], c["agrees"], c["moved"]) for c in e["checks"]],
            [(a["path"], a["sha256"], a["verdict"]) for a in e["artifacts"]],
        )
        for e in document["experiments"]
    ]


def test_the_document_is_the_same_whatever_ran_at_once_and_finished_first(
    config: Config,
) -> None:
    names = ("steady", "zoned", "broken")
    one = FakeClient(later_first)
    alone = _verify(config, one, 1, *names).as_dict(config)
    many = FakeClient(later_first)
    together = _verify(config, many, 4, *names).as_dict(config)
    assert one.most_at_once == 1
    assert many.most_at_once == 4
    assert _shape(together) == _shape(alone)
    steady, zoned, broken = _shape(together)
    assert steady[1:4] == (True, None, [])
    assert [check[0] for check in steady[4]] == [
        "control run 2",
        "all variations (timezone, locale, hashseed)",
    ]
    # The zoned experiment moves with the time zone only: found by trying each alone.
    assert zoned[3] == ["timezone"]
    assert [check[0] for check in zoned[4]] == [
        "control run 2",
        "all variations (timezone, locale, hashseed)",
        "variation timezone",
        "variation locale",
        "variation hashseed",
    ]
    assert broken[2].startswith(
        "the control run 1 run failed: declared output 'weights.bin' matches no file"
    )
    # A failed first control run stops the round: with one job, nothing after it started.
    started = [
        c for c in one.containers.created if "broken" in c.options["labels"]["io.harness.run-id"]
    ]
    assert len(started) == 1


def test_every_run_on_every_engine_is_stopped_by_ctrl_c_and_recorded_aborted(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forever(experiment: str, environment: Mapping[str, str]) -> Ran:
        return 3600.0, _outputs(experiment, environment)  # until removed

    # What is not stopped by then would be left running: fail soon rather than wait.
    monkeypatch.setattr(parallel, "_GRACE_S", 5.0)

    here, there = FakeClient(forever), FakeClient(forever)
    monkeypatch.setattr(Host, "connect", lambda _, timeout=600: Engine(there, "fake-b"))  # type: ignore[arg-type]

    def press_ctrl_c() -> None:
        for client in (here, here, there, there):  # two runs under way on each engine
            assert client.started.acquire(timeout=10)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        verify.verify(
            Engine(here, "fake-a"),  # type: ignore[arg-type]
            config,
            IMAGE,
            [config.experiment("steady"), config.experiment("zoned")],
            variations=select("all"),
            base=_request,
            other_hosts=[Host("b", "fake://b", files="bind")],
            jobs=2,
        )
    for client in (here, there):
        assert client.containers.live == {}
        assert len(client.containers.created) == 2  # the queued runs never started
    statuses = [record["status"] for _, record in records.all_records(config.project_root)]
    assert statuses == ["aborted"] * 4


def test_hosts_run_at_once_and_are_judged_against_the_control(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    meeting = threading.Barrier(2, timeout=10)

    def meet(experiment: str, environment: Mapping[str, str]) -> Ran:
        meeting.wait()  # only passes when a run on each host is under way at once
        return 0.0, _outputs(experiment, environment)

    def elsewhere(experiment: str, environment: Mapping[str, str]) -> Ran:
        seconds, outputs = meet(experiment, environment)
        return seconds, {name: data + b" elsewhere" for name, data in outputs.items()}

    there = FakeClient(elsewhere)
    monkeypatch.setattr(Host, "connect", lambda _, timeout=600: Engine(there, "fake-b"))  # type: ignore[arg-type]
    verification = verify.verify(
        Engine(FakeClient(meet), "fake-a"),  # type: ignore[arg-type]
        config,
        IMAGE,
        [config.experiment("steady")],
        variations=[],
        control_runs=1,
        base=_request,
        other_hosts=[Host("b", "fake://b", files="bind")],
        jobs=1,
    )
    control, other = verification.hosts
    assert (control.status, other.status) == ("control", "differs")
    assert other.moved == {"steady": ["weights.bin"]}
    assert other.shipment is not None and other.shipment.method == "present"


def test_a_lost_host_is_named_and_the_others_keep_their_results(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(_: Host, timeout: int = 600) -> Engine:
        raise EngineUnavailable("cannot reach the Docker engine at fake://b: refused")

    monkeypatch.setattr(Host, "connect", lost)
    verification = _verify_with_hosts(config, later_first)
    control, other = verification.hosts
    assert control.status == "control" and verification.reproducible
    assert other.status == "unreachable"
    assert "fake://b: refused" in str(other.reason)


def _verify_with_hosts(config: Config, behaviour: Behaviour) -> verify.Verification:
    return verify.verify(
        Engine(FakeClient(behaviour), "fake-a"),  # type: ignore[arg-type]
        config,
        IMAGE,
        [config.experiment("steady")],
        variations=[],
        base=_request,
        other_hosts=[Host("b", "fake://b", files="bind")],
    )


def test_another_host_is_judged_only_on_what_reproduced_on_the_control(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    there = FakeClient(later_first)
    monkeypatch.setattr(Host, "connect", lambda _, timeout=600: Engine(there, "fake-b"))  # type: ignore[arg-type]
    verification = verify.verify(
        Engine(FakeClient(later_first), "fake-a"),  # type: ignore[arg-type]
        config,
        IMAGE,
        [config.experiment("broken"), config.experiment("steady")],
        variations=[],
        base=_request,
        other_hosts=[Host("b", "fake://b", files="bind")],
    )
    other = verification.hosts[1]
    # Both ran there at once with the control's runs; only steady had a reference.
    assert len(there.containers.created) == 2
    assert other.status == "agreed"
    assert list(other.runs) == ["steady"]
    document = verification.as_dict(config)
    assert document["quorum"]["text"] == "2 of 2"
    assert document["verdict"] == "not reproducible"


def test_a_lost_engine_saves_what_finished_then_reports_the_trouble(config: Config) -> None:
    started = iter(range(100))

    def lost_at_the_second_run(experiment: str, environment: Mapping[str, str]) -> Ran:
        if next(started) == 1:
            raise requests.exceptions.ConnectionError("('Connection aborted.', EOF)")
        return 0.0, _outputs(experiment, environment)

    verification = _verify(config, FakeClient(lost_at_the_second_run), 1, "steady")
    assert verification.trouble is not None
    assert verification.trouble[:2] == ("steady", "control run 2")
    state = State(config.project_root, {}, False, UI(quiet=True))
    with pytest.raises(HarnessError) as raised:
        conclude(state, config, verification, as_json=True)
    assert raised.value.exit_code == 2
    message = raised.value.one_line()
    assert "steady: the control run 2 run could not finish: lost the Docker engine" in message
    assert "check the engine (`docker info`)" in message  # the engine error's own fix
    # Saved before the error, with the run that finished and those that did not.
    [saved] = (config.project_root / verify.FOLDER).glob("*.json")
    assert str(saved.relative_to(config.project_root)) in message
    [steady] = json.loads(saved.read_text())["experiments"]
    assert len(steady["control_runs"]) == 1
    assert steady["failure"].startswith("the control run 2 run could not finish: lost")
    assert [(u["label"], u["status"]) for u in steady["unfinished"]] == [
        ("control run 2", "lost"),
        ("all variations (timezone, locale, hashseed)", "not started"),
    ]
    statuses = [record["status"] for _, record in records.all_records(config.project_root)]
    assert sorted(statuses) == ["lost", "succeeded"]


def test_a_lost_engine_counts_no_host_and_keeps_the_run_ids_of_what_it_lost(
    config: Config,
) -> None:
    def lost(experiment: str, environment: Mapping[str, str]) -> Ran:
        raise requests.exceptions.ConnectionError("Response ended prematurely")

    verification = _verify(config, FakeClient(lost), 2, "steady")
    document = verification.as_dict(config)
    # Nothing finished: the control host agreed with nothing ("1 of 1" would be a lie).
    assert document["quorum"]["agreed"] == []
    assert document["quorum"]["text"] == "0 of 1"
    assert document["hosts"][0]["status"] == "unreachable"
    assert "lost the Docker engine" in document["hosts"][0]["reason"]
    [steady] = document["experiments"]
    lost_runs = [u for u in steady["unfinished"] if u["status"] == "lost"]
    assert lost_runs
    ended = {folder.name: record for folder, record in records.all_records(config.project_root)}
    for entry in lost_runs:
        assert entry["run_id"] in ended
        assert ended[entry["run_id"]]["status"] == "lost"


def test_a_control_run_with_no_artifact_is_trouble_never_reproducible(config: Config) -> None:
    # Comparing nothing would read "reproducible", and certify would sign it.
    verification = _verify(config, FakeClient(later_first), 2, "silent")
    [silent] = verification.experiments
    assert not silent.reproducible
    assert silent.checks == [] and silent.controls == []
    state = State(config.project_root, {}, False, UI(quiet=True))
    with pytest.raises(HarnessError) as raised:
        conclude(state, config, verification, as_json=True)
    assert raised.value.exit_code == 2
    message = raised.value.one_line()
    assert re.search(
        r"silent: its control run 1 \(\S+\) succeeded with no artifact \(it wrote no file\), "
        r"so there is nothing to compare",
        message,
    ), message
    assert "$HARNESS_OUTPUT" in message
    [saved] = (config.project_root / verify.FOLDER).glob("*.json")
    document = json.loads(saved.read_text())
    assert document["verdict"] == "not reproducible"
    assert [u["status"] for u in document["experiments"][0]["unfinished"]] == ["no artifact"]


def test_a_run_with_no_artifact_says_there_is_nothing_to_verify(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.cli.runs import _print_run  # noqa: PLC0415 - the line `harness run` prints

    record = {
        "experiment": "bigram",
        "command": ["python", "bigram.py"],
        "status": "succeeded",
        "artifacts": [],
        "timings": {"container_s": 1.0},
    }
    _print_run(UI(), verify.RunResult("r1", Path("r1"), record))
    assert (
        "0 artifacts  1.0 s, nothing to verify: write results into $HARNESS_OUTPUT, or keep "
        'what it prints with stdout = "stdout.txt" under [tool.harness.experiments.bigram]'
    ) in capsys.readouterr().out
    entry = {**record, "experiment": "fit", "command": None, "entry": "pkg.fit:main"}
    _print_run(UI(), verify.RunResult("r2", Path("r2"), entry))
    assert "nothing to verify: write results into output=" in capsys.readouterr().out
