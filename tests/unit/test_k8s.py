"""`harness k8s render` and the run record of a Job's output, without a cluster.

The rendered documents are checked for their structure; the initContainer's script and the
runtime are run here, on temporary folders standing in for the pod's volumes, to make a
Job's output folder as a cluster would leave it.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from harness.cli.fleet import k8s_group
from harness.cli.main import HarnessGroup, cli
from harness.cli.state import State
from harness.fleet.k8s import archive, job_output, manifests
from harness.runs import records
from harness.runs.records import CorruptRecord
from harness.runtime import determinism, spec
from harness.trust import keys
from harness.ui import UI
from tests.conftest import RUN_RECORD_SCHEMA

DIGEST = "sha256:" + "d1" * 32
IMAGE = f"registry.example/harness@{DIGEST}"
IMAGE_ID = "sha256:" + "1d" * 32
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

PYPROJECT = """\
[project]
name = "demo"
version = "0"

[tool.harness]
image = "demo"
seed = 7
threads = 2
timeout = 900

[tool.harness.experiments.demo]
entry = "demo_experiments.demo:train"
parameters = { steps = 3 }
outputs = ["model.bin", "metrics.json"]

[tool.harness.experiments.Shell_Check]
command = ["python", "-c", "print(1)"]
"""

EXPERIMENT = """\
import json


def train(output, seed, inputs, steps):
    (output / "model.bin").write_bytes(bytes([seed, steps]))
    (output / "metrics.json").write_text(json.dumps({"steps": steps}))
    return {"steps": steps, "seed": seed}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with an experiment, and what must never be shipped beside it; never in a
    git work tree, even when the temporary folder is inside one."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "project"
    (root / "demo_experiments").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "demo_experiments" / "__init__.py").write_text("")
    (root / "demo_experiments" / "demo.py").write_text(EXPERIMENT)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / ".harness" / "runs" / "old").mkdir(parents=True)
    (root / ".harness" / "runs" / "old" / "record.json").write_text("{}")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / ".venv" / "lib" / "site.py").write_text("")
    (root / "demo_experiments" / "__pycache__").mkdir()
    (root / "demo_experiments" / "__pycache__" / "demo.cpython-311.pyc").write_bytes(b"\0")
    return root


@click.group(cls=HarnessGroup)
@click.option("--project", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def group(ctx: click.Context, project: Path | None) -> None:
    """The CLI's group as `harness` builds it, holding only the k8s commands."""
    ctx.obj = State(project, {}, False, UI(quiet=True))


group.add_command(k8s_group)


def invoke(project: Path, *arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        group, ["--project", str(project), "k8s", "render", *arguments], catch_exceptions=False
    )
    return result.exit_code, result.stdout, result.stderr


def render(project: Path, *arguments: str) -> list[dict[str, Any]]:
    code, out, err = invoke(project, "--image", IMAGE, *arguments)
    assert code == 0, err
    return [d for d in yaml.safe_load_all(out) if d is not None]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["spec"]["template"]["spec"])


def container(job: dict[str, Any], name: str = "run") -> dict[str, Any]:
    spec_ = pod_spec(job)
    for found in [*spec_["containers"], *spec_.get("initContainers", [])]:
        if found["name"] == name:
            return dict(found)
    raise AssertionError(f"no container {name}")


def archive_of(documents: list[dict[str, Any]]) -> bytes:
    (config_map,) = of_kind(documents, "ConfigMap")
    return base64.b64decode(config_map["binaryData"][archive.ARCHIVE])


# -- the documents -------------------------------------------------------------------------


def test_one_job_per_node_and_experiment_with_the_other_documents(project: Path) -> None:
    documents = render(project, "--node", "node-a", "--node", "node-b.example.com")
    assert [d["kind"] for d in documents] == [
        "ConfigMap",
        "NetworkPolicy",
        "Job",
        "Job",
        "Job",
        "Job",
        "Pod",
    ]
    jobs = of_kind(documents, "Job")
    pairs = {
        (
            j["metadata"]["annotations"]["harness.dev/experiment"],
            pod_spec(j)["nodeSelector"]["kubernetes.io/hostname"],
        )
        for j in jobs
    }
    assert pairs == {
        (experiment, node)
        for experiment in ("demo", "Shell_Check")
        for node in ("node-a", "node-b.example.com")
    }
    names = [j["metadata"]["name"] for j in jobs]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= 63
        assert DNS_LABEL.fullmatch(name), name
    for job in jobs:
        labels = job["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "harness"
        assert labels["harness.dev/node"] == pod_spec(job)["nodeSelector"]["kubernetes.io/hostname"]
        assert job["spec"]["template"]["metadata"]["labels"] == labels
        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["activeDeadlineSeconds"] == 900
        assert "ttlSecondsAfterFinished" not in job["spec"]
    assert {j["metadata"]["labels"]["harness.dev/experiment"] for j in jobs} == {
        "demo",
        "Shell_Check",
    }


def test_names_stay_valid_for_long_and_odd_experiment_and_node_names() -> None:
    name = manifests.job_name(
        "A Very_Long experiment/name " * 4, "node-" + "x" * 58, "20260101-run"
    )
    assert len(name) <= 63
    assert DNS_LABEL.fullmatch(name)
    assert manifests.job_name("ÄÖ", "n", "r").startswith("n-")


def test_pods_are_locked_down_like_harness_run(project: Path) -> None:
    documents = render(project, "demo", "--node", "node-a")
    (job,) = of_kind(documents, "Job")
    spec_ = pod_spec(job)
    assert spec_["restartPolicy"] == "Never"
    assert spec_["hostname"] == "harness"
    assert spec_["automountServiceAccountToken"] is False
    assert spec_["enableServiceLinks"] is False
    assert spec_["securityContext"] == {
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": True,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for name in ("run", "unpack"):
        assert container(job, name)["securityContext"] == {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    (policy,) = of_kind(documents, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]
    assert "egress" not in policy["spec"]
    selected = policy["spec"]["podSelector"]["matchLabels"]
    assert selected.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    (gather,) = of_kind(documents, "Pod")
    assert selected.items() <= gather["metadata"]["labels"].items()


def test_volumes_and_mounts(project: Path) -> None:
    documents = render(project, "demo", "--node", "node-a", "--claim", "runs")
    (job,) = of_kind(documents, "Job")
    (config_map,) = of_kind(documents, "ConfigMap")
    name = job["metadata"]["name"]
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert volumes["project"]["emptyDir"] == {}
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert volumes["records"]["persistentVolumeClaim"] == {"claimName": "runs"}
    mounts = {m["mountPath"]: m for m in container(job)["volumeMounts"]}
    assert mounts["/harness/spec.json"] == {
        "name": "config",
        "mountPath": "/harness/spec.json",
        "subPath": f"{name}.spec.json",
        "readOnly": True,
    }
    assert mounts["/harness/source"]["readOnly"] is True
    # The writable view of the project the runtime lays out, in memory like a local run's.
    assert mounts["/harness/project"]["name"] == "project-view"
    assert volumes["project-view"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert mounts["/harness/out"]["subPath"] == f"{name}/artifacts"
    assert mounts["/harness/meta"]["subPath"] == f"{name}/meta"
    assert mounts["/tmp"]["name"] == "tmp"
    assert container(job)["command"] == [
        "python",
        "-P",
        "-m",
        "harness.runtime",
        "/harness/spec.json",
    ]
    init_mounts = {m["mountPath"]: m for m in container(job, "unpack")["volumeMounts"]}
    assert init_mounts["/harness/source"].get("readOnly") is not True
    assert init_mounts["/harness/meta"]["subPath"] == f"{name}/meta"
    assert f"{name}.spec.json" in config_map["data"]
    assert f"{name}.job.json" in config_map["data"]
    (gather,) = of_kind(documents, "Pod")
    assert gather["metadata"]["name"] == "harness-gather"
    assert gather["spec"]["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "runs",
        "readOnly": True,
    }
    assert gather["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] is True


def test_every_container_pulls_the_image_by_digest(project: Path) -> None:
    documents = render(project, "--node", "node-a")
    images = {
        c["image"]
        for d in documents
        if d["kind"] in ("Job", "Pod")
        for c in [
            *(pod_spec(d) if d["kind"] == "Job" else d["spec"])["containers"],
            *(pod_spec(d) if d["kind"] == "Job" else d["spec"]).get("initContainers", []),
        ]
    }
    assert images == {IMAGE}


def test_environment_is_the_determinism_environment_and_the_spec_matches(project: Path) -> None:
    documents = render(project, "--node", "node-a")
    (config_map,) = of_kind(documents, "ConfigMap")
    jobs = of_kind(documents, "Job")
    assert len(jobs) == 2, "one Job per experiment on the node"
    for job in jobs:
        name = job["metadata"]["name"]
        run_id = job["metadata"]["annotations"]["harness.dev/run-id"]
        env = {e["name"]: e["value"] for e in container(job)["env"]}
        assert env == {
            **determinism.environment(7, "strict", 2, "cpu"),
            "HOME": "/tmp",
            "HARNESS_RUN_ID": run_id,
        }
        document = json.loads(config_map["data"][f"{name}.spec.json"])
        parsed = spec.parse(document)
        assert re.fullmatch(r"[0-9]{8}-[0-9]{6}-.+-[0-9a-f]{6}", parsed.run_id)
        assert parsed.run_id == run_id
        assert (parsed.seed, parsed.threads, parsed.profile, parsed.device) == (
            7,
            2,
            "strict",
            "cpu",
        )
        assert (document["project"], document["output"], document["meta"]) == (
            "/harness/project",
            "/harness/out",
            "/harness/meta",
        )
        if parsed.experiment == "demo":
            assert parsed.entry == "demo_experiments.demo:train"
            assert dict(parsed.parameters) == {"steps": 3}
        else:
            assert parsed.command == ("python", "-c", "print(1)")
        facts = json.loads(config_map["data"][f"{name}.job.json"])
        assert facts["environment"] == env
        assert facts["image"] == {
            "reference": IMAGE,
            "id": DIGEST,
            "digest": DIGEST,
            "variant": "cpu",
        }


def test_gpus_and_selectors_as_asked(project: Path) -> None:
    documents = render(
        project,
        "demo",
        "--node",
        "gpu-1",
        "--gpus",
        "2",
        "--variant",
        "cuda",
        "--selector",
        "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3",
        "--image-id",
        IMAGE_ID,
    )
    (job,) = of_kind(documents, "Job")
    assert pod_spec(job)["nodeSelector"] == {
        "kubernetes.io/hostname": "gpu-1",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert container(job)["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    env = {e["name"]: e["value"] for e in container(job)["env"]}
    assert "CUDA_VISIBLE_DEVICES" not in env
    (config_map,) = of_kind(documents, "ConfigMap")
    name = job["metadata"]["name"]
    assert json.loads(config_map["data"][f"{name}.spec.json"])["device"] == "cuda"
    facts = json.loads(config_map["data"][f"{name}.job.json"])
    assert facts["image"]["id"] == IMAGE_ID
    assert facts["image"]["variant"] == "cuda"
    assert facts["container"]["gpu_count"] == 2


def test_cpu_runs_ask_for_no_gpu(project: Path) -> None:
    (job,) = of_kind(render(project, "demo", "--node", "n"), "Job")
    assert "resources" not in container(job)


def test_defaults_come_from_the_k8s_table(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        PYPROJECT.replace("timeout = 900\n", "")
        + '\n[tool.harness.k8s]\nnodes = ["node-a", "node-b"]\nnamespace = "ml"\n'
        'claim = "results"\nselectors = { disktype = "ssd" }\n'
    )
    documents = render(project, "demo", "--selector", "zone=a")
    assert all(d["metadata"]["namespace"] == "ml" for d in documents)
    jobs = of_kind(documents, "Job")
    assert [pod_spec(j)["nodeSelector"] for j in jobs] == [
        {"kubernetes.io/hostname": node, "disktype": "ssd", "zone": "a"}
        for node in ("node-a", "node-b")
    ]
    assert all("activeDeadlineSeconds" not in j["spec"] for j in jobs)
    volumes = {v["name"]: v for v in pod_spec(jobs[0])["volumes"]}
    assert volumes["records"]["persistentVolumeClaim"]["claimName"] == "results"
    # The command line replaces the configured nodes.
    assert len(of_kind(render(project, "demo", "--node", "other"), "Job")) == 1


def test_output_file_and_header(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "runs.yaml"
    code, out, _ = invoke(project, "--image", IMAGE, "--node", "n", "-o", str(target))
    assert code == 0
    assert "wrote" in out
    text = target.read_text()
    assert text.startswith("# Generated by `harness k8s render`")
    assert f"kubectl apply --server-side -f {target}" in text
    assert "kubectl cp harness-gather:/records ./collected" in text
    assert "harness collect collected/*" in text
    assert len([d for d in yaml.safe_load_all(text) if d]) == 5


# -- the project archive -------------------------------------------------------------------


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_archive_is_deterministic_and_holds_only_the_source(project: Path) -> None:
    first = archive_of(render(project, "--node", "n"))
    for path in project.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))  # other times, same contents
    second = archive_of(render(project, "--node", "n"))
    assert first == second
    assert gzip.decompress(first)  # a plain gzip stream
    assert first[4:8] == b"\0\0\0\0"  # no time in the gzip header
    found = members(first)
    assert sorted(found) == [
        "demo_experiments",
        "demo_experiments/__init__.py",
        "demo_experiments/demo.py",
        "pyproject.toml",
        "run.sh",
    ]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname for m in found.values())
    assert found["run.sh"].mode == 0o755
    assert found["demo_experiments/demo.py"].mode == 0o644
    assert found["demo_experiments"].isdir()


def test_a_git_project_ships_what_harness_run_shows_its_container(
    project: Path, tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / ".gitignore").write_text("ignored.txt\n")
    (project / "untracked.py").write_text("")
    (project / "ignored.txt").write_text("")
    (project / "private.key").write_text("")
    (project / "private.key").chmod(0o600)  # the container's user could not read it
    found = members(archive_of(render(project, "--node", "n")))
    assert {"untracked.py", "ignored.txt", ".gitignore"} <= set(found)
    assert "private.key" not in found
    assert not any(name.startswith((".git/", ".harness", ".venv")) for name in found)


def test_links_inside_are_shipped_as_files_and_others_are_not(project: Path) -> None:
    (project / "alias.py").symlink_to("demo_experiments/demo.py")
    (project / "outside").symlink_to(project.parent)
    (project / "elsewhere.txt").symlink_to(project.parent / "nowhere.txt")
    found = members(archive_of(render(project, "--node", "n")))
    assert found["alias.py"].isfile()
    assert "elsewhere.txt" not in found
    assert not any(name.startswith("outside") for name in found)


def test_a_configmap_over_the_limit_is_refused(project: Path) -> None:
    (project / "weights.bin").write_bytes(os.urandom(1_100_000))
    code, _, err = invoke(project, "--image", IMAGE, "--node", "n")
    assert code == 2
    assert err.count("\n") == 1
    assert "over Kubernetes' limit" in err


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "pyproject_extra", "message"),
    [
        (["--image", "registry.example/harness:cpu", "--node", "n"], "", "not pinned by digest"),
        (
            ["--image", IMAGE, "--node", "n"],
            "\n[tool.harness.k8s]\nnode = 'x'\n",
            "[tool.harness.k8s]",
        ),
        (["--image", IMAGE], "", "no node to run on"),
        (["--image", IMAGE, "--node", "n", "--gpus", "1"], "", "need the cuda variant"),
        (["--image", IMAGE, "--node", "n", "--selector", "zone"], "", "not KEY=VALUE"),
        (["--image", IMAGE, "--node", "Bad Node"], "", "not a valid kubernetes.io/hostname"),
        (["--image", IMAGE, "--node", "n", "--image-id", "abc"], "", "--image-id"),
        (["--image", IMAGE, "--node", "n", "--namespace", "Bad_NS"], "", "namespace"),
        (["--image", IMAGE, "--node", "n", "missing"], "", "unknown experiment 'missing'"),
    ],
)
def test_refusals_are_one_line_with_exit_2(
    project: Path, arguments: list[str], pyproject_extra: str, message: str
) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT + pyproject_extra)
    code, out, err = invoke(project, *arguments)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err
    assert "fix:" in err


def test_an_experiment_with_inputs_is_refused(project: Path) -> None:
    (project / "data.csv").write_text("1\n")
    (project / "pyproject.toml").write_text(
        PYPROJECT
        + '\n[tool.harness.experiments.fit]\nentry = "m:f"\ninputs = { data = "data.csv" }\n'
    )
    code, _, err = invoke(project, "--image", IMAGE, "--node", "n")
    assert code == 2
    assert err.count("\n") == 1
    assert "'fit' has inputs (data)" in err
    assert "not shipped to clusters" in err
    # The others can still be rendered by name.
    assert render(project, "demo", "--node", "n")


def test_help_teaches_what_is_rendered_and_how_to_use_it() -> None:
    result = CliRunner().invoke(group, ["k8s", "render", "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    text = result.stdout
    for phrase in (
        "ConfigMap",
        "NetworkPolicy",
        "Job",
        "harness-gather",
        "kubectl apply --server-side -f",
        "kubectl cp",
        "harness collect",
        "inputs",
        "[tool.harness.k8s]",
    ):
        assert phrase in text, phrase


# -- a Job's output as a run record ----------------------------------------------------------


def run_job(project: Path, tmp_path: Path, *arguments: str) -> tuple[Path, dict[str, Any]]:
    """Render one Job and do what its pod does, on local folders: the initContainer's
    script, then the runtime. Returns the Job's folder on the claim and the Job."""
    documents = render(project, "demo", "--node", "node-a", *arguments)
    (job,) = of_kind(documents, "Job")
    (config_map,) = of_kind(documents, "ConfigMap")
    name = job["metadata"]["name"]
    config = tmp_path / "config"
    config.mkdir()
    for key, value in config_map["data"].items():
        (config / key).write_text(value)
    (config / archive.ARCHIVE).write_bytes(archive_of(documents))
    unpacked, folder = tmp_path / "unpacked", tmp_path / "claim" / name
    (folder / "meta").mkdir(parents=True)
    init = container(job, "unpack")["command"]
    assert init[:3] == ["python", "-I", "-c"]
    subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            init[3],
            str(config),
            str(unpacked),
            str(folder / "meta"),
            name,
        ],
        env={**os.environ, "HARNESS_NODE_NAME": "node-a"},
        check=True,
    )
    assert (unpacked / "demo_experiments" / "demo.py").read_text() == EXPERIMENT
    # The same spec, at this machine's paths for the pod's mounts.
    local = json.loads((folder / "meta" / "spec.json").read_text())
    view = tmp_path / "view"
    view.mkdir()
    local.update(
        project=str(view),
        project_source=str(unpacked),
        output=str(folder / "artifacts"),
        meta=str(folder / "meta"),
    )
    (tmp_path / "spec.json").write_text(json.dumps(local))
    host = {
        k: v
        for k, v in os.environ.items()
        if k not in determinism.VARIABLES and k != "PYTHONPATH" and not k.startswith("HARNESS_")
    }
    env = {**host, **{e["name"]: e["value"] for e in container(job)["env"]}}
    subprocess.run(
        [sys.executable, "-P", "-m", "harness.runtime", str(tmp_path / "spec.json")],
        cwd=view,
        env=env,
        capture_output=True,
        check=True,
    )
    return folder, job


def test_a_finished_job_makes_a_valid_succeeded_record(project: Path, tmp_path: Path) -> None:
    folder, job = run_job(project, tmp_path, "--image-id", IMAGE_ID)
    record = job_output.record_from_job_output(folder)
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    assert record["status"] == "succeeded"
    assert record["exit_code"] == 0
    assert record["error"] is None
    assert record["run_id"] == job["metadata"]["annotations"]["harness.dev/run-id"]
    assert record["host"] == "node-a"
    assert record["engine"] == {"where": "kubernetes", "version": None}
    assert record["image"] == {
        "reference": IMAGE,
        "id": IMAGE_ID,
        "digest": DIGEST,
        "variant": "cpu",
    }
    assert record["environment"] == {e["name"]: e["value"] for e in container(job)["env"]}
    assert record["container"]["node_name"] == "node-a"
    assert record["container"]["network"] == "none"
    assert record["container"]["timeout_s"] == 900
    assert record["metrics"] == {"steps": 3, "seed": 7}
    assert record["violations"] == []
    assert [a["path"] for a in record["artifacts"]] == ["metrics.json", "model.bin"]
    assert record["artifacts"] == records.artifacts(folder / "artifacts")
    assert "experiment_s" in record["timings"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["timings"]["started_at"])
    assert (record["seed"], record["threads"], record["parameters"]) == (7, 2, {"steps": 3})


def test_a_missing_declared_output_fails_the_record(project: Path, tmp_path: Path) -> None:
    folder, _ = run_job(project, tmp_path)
    (folder / "artifacts" / "model.bin").unlink()
    (folder / "log.txt").write_text("training\ndone\n")
    record = job_output.record_from_job_output(folder)
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    assert record["status"] == "failed"
    assert record["error"] == "declared output 'model.bin' was not written"
    assert record["log_tail"] == ["training", "done"]


def test_the_runtime_s_failure_and_interruption_are_kept(project: Path, tmp_path: Path) -> None:
    folder, _ = run_job(project, tmp_path)
    report_path = folder / "meta" / "runtime.json"
    report = json.loads(report_path.read_text())
    report.update(status="failed", exit_code=1, error="ValueError: diverged")
    report_path.write_text(json.dumps(report))
    record = job_output.record_from_job_output(folder)
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    assert (record["status"], record["exit_code"], record["error"]) == (
        "failed",
        1,
        "ValueError: diverged",
    )
    report.update(status="interrupted", exit_code=143, error="terminated by SIGTERM")
    report_path.write_text(json.dumps(report))
    record = job_output.record_from_job_output(folder)
    jsonschema.validate(record, RUN_RECORD_SCHEMA)
    assert (record["status"], record["error"]) == ("aborted", "terminated by SIGTERM")


def test_a_folder_that_is_not_a_job_output_is_corrupt(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorruptRecord, match=r"not a Job's output: no meta/spec.json"):
        job_output.record_from_job_output(empty)

    folder, _ = run_job(project, tmp_path)
    report = (folder / "meta" / "runtime.json").read_text()
    (folder / "meta" / "runtime.json").unlink()
    with pytest.raises(CorruptRecord, match=r"no meta/runtime.json") as caught:
        job_output.record_from_job_output(folder)
    assert "kubectl describe job" in caught.value.one_line()

    (folder / "meta" / "runtime.json").write_text(report[:40])
    with pytest.raises(CorruptRecord, match="cannot be read"):
        job_output.record_from_job_output(folder)

    other = json.loads(report)
    other["run_id"] = "20260101-000000-demo-000000"
    (folder / "meta" / "runtime.json").write_text(json.dumps(other))
    with pytest.raises(CorruptRecord, match="is the report of run"):
        job_output.record_from_job_output(folder)

    (folder / "meta" / "runtime.json").write_text(report)
    (folder / "meta" / "job.json").write_text("[]")
    with pytest.raises(CorruptRecord, match="not a JSON object"):
        job_output.record_from_job_output(folder)


def test_a_job_s_meta_folder_left_as_a_link_is_never_followed(
    project: Path, tmp_path: Path
) -> None:
    # The container owned meta/: it may leave it as a link to a folder of this machine
    # whose JSON would then become the record.
    folder, _ = run_job(project, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (folder / "meta").rename(elsewhere)
    (folder / "meta").symlink_to(elsewhere)
    with pytest.raises(CorruptRecord, match="cannot be read"):
        job_output.record_from_job_output(folder)


def test_collect_turns_gathered_job_outputs_into_run_records(project: Path, tmp_path: Path) -> None:
    folder, job = run_job(project, tmp_path, "--image-id", IMAGE_ID)
    collect = ["--project", str(project), "collect", "--json", str(tmp_path / "claim")]
    unsigned = CliRunner().invoke(cli, collect)
    assert unsigned.exit_code == 2
    assert "is not signed by any host key" in unsigned.stderr
    # The node signs what its Job wrote, with its own key, before the folder leaves it.
    node = keys.generate_keys(tmp_path / "node-keys", "node-a")
    signed = CliRunner().invoke(
        cli, ["attest", str(tmp_path / "claim"), "--sign-key", str(node.private)]
    )
    assert signed.exit_code == 0, signed.stderr
    assert "1 run(s) signed" in signed.stdout
    result = CliRunner().invoke(cli, [*collect, "--key", str(node.public)])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["quorum"]["agreed"] == ["node-a"]
    run_id = job["metadata"]["annotations"]["harness.dev/run-id"]
    collected = records.read(project / ".harness" / "runs" / run_id)
    assert collected == job_output.record_from_job_output(folder)


def test_the_memory_limit_of_local_runs_bounds_the_jobs_too(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_MEMORY", "6g")
    (job,) = of_kind(render(project, "demo", "--node", "n"), "Job")
    assert container(job)["resources"] == {"limits": {"memory": "6Gi"}}
    assert container(job)["securityContext"]["allowPrivilegeEscalation"] is False
    assert [manifests.kubernetes_quantity(m) for m in ("512m", "64k", "1000", "2G")] == [
        "512Mi",
        "64Ki",
        "1000",
        "2Gi",
    ]
