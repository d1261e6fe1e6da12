"""SLURM as a place to run and verify: a project made from scratch, run as batch jobs on a
real two-node cluster (scripts/slurm.sh: nodes n1 and n2 on this machine), verified
across both nodes, and jobs that fail or are cancelled ending their records with the
cause.

The cluster is started (or reused) by the script; where it cannot be started (no root, no
packages) these tests skip and say why, except in CI, where they must run. A job past its
time limit is left to the unit tests: SLURM's least limit is a minute, and it notices
within another thirty seconds.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import REPOSITORY, RUN_RECORD_SCHEMA
from tests.integration.conftest import harness

SCRIPT = REPOSITORY / "scripts" / "slurm.sh"

EXPERIMENTS = """\
import random
import time


def fit(output, seed, inputs):
    rng = random.Random(seed)
    (output / "weights.txt").write_text(" ".join(f"{rng.random():.17g}" for _ in range(1000)))
    return {"first": rng.random()}


def boom(output, seed, inputs):
    raise ValueError("the data is not there")


def slow(output, seed, inputs):
    time.sleep(300)
"""


@pytest.fixture(scope="module")
def cluster() -> str:
    """The two-node cluster, started by scripts/slurm.sh (or found running)."""
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        why = f"SLURM could not be started: {started.stderr.strip().splitlines()[-1:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return started.stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cluster: str) -> Path:
    root = tmp_path_factory.mktemp("slurm-project")
    # The nodes run uv from the job's PATH: the one beside this Python when it is there.
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    (root / "pyproject.toml").write_text(
        '[project]\nname = "tiny"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n\n[dependency-groups]\nexperiments = []\n\n"
        '[tool.harness.experiments.train]\nentry = "tiny_train:fit"\noutputs = ["weights.txt"]\n\n'
        '[tool.harness.experiments.boom]\nentry = "tiny_train:boom"\noutputs = ["weights.txt"]\n\n'
        '[tool.harness.experiments.slow]\nentry = "tiny_train:slow"\noutputs = ["weights.txt"]\n\n'
        f'[tool.harness.hosts.cluster]\nkind = "slurm"\npartition = "debug"\ntime = "5"\n'
        f"uv = {json.dumps(uv)}\n\n"
        # The same cluster, its nodes signing what they saw with keys of their own (the
        # nodes share this machine's disk: a file each).
        f'[tool.harness.hosts.signed]\nkind = "slurm"\npartition = "debug"\ntime = "5"\n'
        f"uv = {json.dumps(uv)}\n"
        f"node_key = {json.dumps(str(root.parent / 'node-disk' / '{node}.key'))}\n"
    )
    (root / "tiny_train.py").write_text(EXPERIMENTS)
    locked = harness("lock", cwd=root)
    assert locked.returncode == 0, locked.stderr
    identity = ["-c", "user.name=Owner", "-c", "user.email=owner@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".harness/\n")
    subprocess.run(["git", *identity, "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", *identity, "-C", str(root), "commit", "-qm", "work"], check=True)
    return root


def _record(project: Path, run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (project / ".harness" / "runs" / run_id / "record.json").read_text()
    )
    return document


def _records(project: Path, experiment: str) -> list[dict[str, Any]]:
    runs = project / ".harness" / "runs"
    found = sorted(runs.glob(f"*-{experiment}-*/record.json")) if runs.is_dir() else []
    return [json.loads(path.read_text()) for path in found]


@pytest.fixture(scope="module")
def keys_folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This machine's keys (its own key signs the runs it submits), outside the project."""
    folder = tmp_path_factory.mktemp("keys")
    env = {"HARNESS_KEYS_DIR": str(folder)}
    made = harness("keys", "generate", env=env)
    assert made.returncode == 0, made.stderr
    return env


def _certified(project: Path, verification: str, env: dict[str, str], *more: str) -> Any:
    """The quorum of the certificate `harness certify` makes of a verification."""
    output = project / ".harness" / f"certificate-{verification}.json"
    certified = harness(
        "certify", "--verification", verification, "--output", str(output), *more,
        cwd=project, env=env,
    )  # fmt: skip
    assert certified.returncode == 0, certified.stderr
    envelope = json.loads(output.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return output, statement["predicate"]


def test_a_project_verifies_across_two_nodes(project: Path, keys_folder: dict[str, str]) -> None:
    result = harness(
        "verify", "train", "--hosts", "cluster", "--runs", "1", "--vary", "none", "--json",
        cwd=project, env=keys_folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verification = json.loads(result.stdout)
    assert verification["quorum"]["text"] == "2 of 2"
    assert sorted(verification["quorum"]["agreed"]) == ["n1", "n2"]
    assert verification["executor"] == "host"
    runs = [
        run for host in verification["hosts"] for group in host["runs"].values() for run in group
    ]
    records = [_record(project, run_id) for run_id in runs]
    # Each run's host is the node SLURM ran its job on.
    assert sorted(record["host"] for record in records) == ["n1", "n2"]
    assert all(record["host"] == record["slurm"]["node"] for record in records)
    assert all(record["slurm"]["state"] == "COMPLETED" for record in records)
    for record in records:
        jsonschema.validate(record, RUN_RECORD_SCHEMA)
    # One environment, made from the constraints, pinned every run.
    digests = {record["python_environment"]["digest"] for record in records}
    assert len(digests) == 1
    assert verification["python_environment"]["digest"] in digests
    script = (project / ".harness" / "runs" / runs[0] / "job.sh").read_text()
    assert "#SBATCH --partition=debug" in script
    assert "--require-hashes" in script
    # The jobs' copies are gone; what counts came back into the run folders.
    assert not any((project / ".harness" / "slurm" / "jobs" / run).exists() for run in runs)
    # Every run was signed by the machine that submitted it: one key, so one host counts,
    # whatever names the records give.
    _, certified = _certified(project, verification["id"], keys_folder)
    assert certified["quorum"]["text"] == "1 of 1"
    (host,) = certified["hosts"]
    assert "one key signed the runs of nodes n1, n2" in host["reason"]


def test_nodes_that_keep_keys_are_counted_by_their_keys(
    project: Path, keys_folder: dict[str, str]
) -> None:
    made = harness("keys", "nodes", "signed", cwd=project, env=keys_folder)
    assert made.returncode == 0, made.stderr
    public = Path(keys_folder["HARNESS_KEYS_DIR"]) / "nodes" / "signed"
    assert sorted(path.name for path in public.iterdir()) == ["n1.pub", "n2.pub"]
    # Each key was made on its node and stays there, readable by its owner alone.
    for node in ("n1", "n2"):
        assert (project.parent / "node-disk" / f"{node}.key").stat().st_mode & 0o077 == 0
    result = harness(
        "verify", "train", "--hosts", "signed", "--runs", "1", "--vary", "none", "--json",
        cwd=project, env=keys_folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verification = json.loads(result.stdout)
    runs = [r for host in verification["hosts"] for group in host["runs"].values() for r in group]
    for run_id in runs:
        record = _record(project, run_id)
        assert record["slurm"]["node_key"], record["slurm"]
        assert (project / ".harness" / "runs" / run_id / "node.intoto.json").is_file()
    trusted = [f"--trusted-key={public / 'n1.pub'}", f"--trusted-key={public / 'n2.pub'}"]
    certificate, certified = _certified(project, verification["id"], keys_folder, *trusted)
    # Copied off the cluster and collected elsewhere, the runs keep their nodes' statements,
    # and the nodes their keys count as two hosts there too.
    elsewhere = project.parent / "elsewhere"
    (elsewhere / "copied").mkdir(parents=True)
    shutil.copy(project / "pyproject.toml", elsewhere)
    for run_id in runs:
        shutil.copytree(project / ".harness" / "runs" / run_id, elsewhere / "copied" / run_id)
    submitter = Path(keys_folder["HARNESS_KEYS_DIR"]) / "harness.pub"
    collected = harness(
        "collect", "copied", "--key", str(submitter), "--json", cwd=elsewhere, env=keys_folder
    )
    assert collected.returncode == 0, collected.stderr
    gathered = json.loads(collected.stdout)
    assert gathered["quorum"]["text"] == "2 of 2"
    assert all(
        run["node_statement"]["carried"] and run["node_statement"]["trusted"]
        for run in gathered["collected"]
    )
    assert certified["quorum"]["text"] == "2 of 2"
    assert len(set(certified["quorum"]["signers"])) == 2
    assert sorted(host["name"] for host in certified["hosts"]) == ["n1", "n2"]
    # Whoever verifies the certificate counts the node keys they trust themselves.
    certifier = Path(keys_folder["HARNESS_KEYS_DIR"]) / "harness.pub"
    both = harness(
        "certificate", "verify", str(certificate), "--key", str(certifier),
        "--key", str(public / "n1.pub"), "--key", str(public / "n2.pub"), "--min-hosts", "2",
        cwd=project, env=keys_folder,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    one = harness(
        "certificate", "verify", str(certificate), "--key", str(certifier),
        "--key", str(public / "n1.pub"), "--min-hosts", "2",
        cwd=project, env=keys_folder,
    )  # fmt: skip
    assert one.returncode == 1, one.stderr
    assert "1 distinct host key(s) you trust, 2 required" in one.stderr


def test_a_failing_job_ends_its_record_with_the_cause(project: Path) -> None:
    result = harness("run", "boom", "--hosts", "cluster", "--json", cwd=project)
    assert result.returncode == 1, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["status"] == "failed"
    assert "ValueError: the data is not there" in record["error"]
    job = record["slurm"]["job_id"]
    assert f"SLURM job {job} FAILED on {record['slurm']['node']}" in record["error"]
    assert record["host"] in ("n1", "n2")


def _running_job(project: Path, process: subprocess.Popen[str]) -> tuple[str, str]:
    """The run id and job id of the slow run once its job runs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for record in _records(project, "slow"):
            job = record.get("slurm", {}).get("job_id")
            if record["status"] == "running" and job:
                shown = subprocess.run(
                    ["scontrol", "show", "job", "-o", job],
                    check=False,
                    capture_output=True,
                    text=True,
                )
                if "JobState=RUNNING" in shown.stdout:
                    return record["run_id"], job
        time.sleep(0.3)
    process.kill()
    pytest.fail(f"the slow job did not start: {process.communicate()}")


def _start(project: Path, experiment: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", experiment, "--hosts", "cluster", *options],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_cancelled_job_and_ctrl_c_end_their_records_with_the_cause(project: Path) -> None:
    # Cancelled by someone else (an administrator, a pre-empting scheduler).
    process = _start(project, "slow")
    run_id, job = _running_job(project, process)
    subprocess.run(["scancel", job], check=True)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    record = _record(project, run_id)
    assert record["status"] == "aborted"
    assert record["error"].startswith(f"SLURM job {job} CANCELLED on ")
    assert record["artifacts"] == []

    # Ctrl-C: harness cancels the job, and the record says so.
    process = _start(project, "slow")
    run_id, job = _running_job(project, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    record = _record(project, run_id)
    assert record["status"] == "aborted"
    assert f"SLURM job {job} was cancelled" in record["error"]
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job], check=False, capture_output=True, text=True
    )
    assert "JobState=CANCELLED" in shown.stdout
