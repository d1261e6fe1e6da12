"""What an experiment container is: the plan, the options a run gives the engine from it,
and the pod a Kubernetes Job gets from it.

The expected engine options were taken from `harness run` as it was before the
container's settings moved into :mod:`harness.container`; they must not change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import container, owner
from harness.config import Config, load_config
from harness.container import Source
from harness.engine import ContainerSpec, Engine
from harness.fleet.k8s import manifests
from harness.fleet.k8s.settings import settings_from
from harness.images.build import BuildResult
from harness.runs import records, run
from harness.runs.variations import BY_NAME, setup_for
from harness.runtime import determinism
from tests.unit.fake_docker import FakeClient, Ran
from tests.unit.test_engine_containers import created_with

PYPROJECT = """\
[project]
name = "plan"
version = "0"

[tool.harness]
image = "plan"
memory = "6g"

[tool.harness.experiments.fit]
entry = "plan:fit"
outputs = ["weights.bin"]
inputs = { data = "data.csv" }
"""
IMAGE = BuildResult("plan:cpu", f"sha256:{'ab' * 32}", "cpu", True, 0.0, 1)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)  # the container's user reads it
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "data.csv").write_text("1\n")
    return load_config(project)


def _writes(_experiment: str, _environment: Mapping[str, str]) -> Ran:
    return 0.0, {"weights.bin": b"w"}


def _created(config: Config, request: run.RunRequest) -> tuple[dict[str, Any], run.RunResult]:
    """The create() options a run gave the engine, with this run's paths and id made
    stable, and the run's result."""
    client = FakeClient(_writes)
    result = run.run_experiment(Engine(client, "fake"), config, IMAGE, request)  # type: ignore[arg-type]
    (created,) = client.containers.created
    options = {k: v for k, v in created.options.items() if k != "name"}
    text = json.dumps(options, sort_keys=True)
    text = text.replace(str(config.project_root), "PROJECT").replace(result.run_id, "RUN")
    return json.loads(text), result


def _mount(source: str, target: str, read_only: bool) -> dict[str, Any]:
    return {
        "Source": source,
        "Target": target,
        "Type": "bind",
        "ReadOnly": read_only,
    }


def test_a_run_gives_the_engine_the_same_options_as_before(config: Config) -> None:
    request = run.RunRequest(config.experiment("fit"), seed=3, profile="strict", threads=2)
    options, result = _created(config, request)
    environment = {
        **determinism.environment(3, "strict", 2, "cpu"),
        "HOME": "/tmp",
        "HARNESS_RUN_ID": "RUN",
    }
    runs = "PROJECT/.harness/runs/RUN"
    assert options == {
        "cap_drop": ["ALL"],
        "environment": environment,
        # Which harness process started it: a later harness removes it once that is gone.
        "labels": {
            "io.harness.owned": "true",
            "io.harness.owner": owner.current().label(),
            "io.harness.run-id": "RUN",
        },
        "log_config": {"Config": {"max-file": "1", "max-size": str(64 << 20)}, "Type": "json-file"},
        "mem_limit": "6g",
        "memswap_limit": "6g",
        "mounts": [
            _mount("PROJECT", "/harness/source", True),
            _mount(f"{runs}/spec.json", "/harness/spec.json", True),
            _mount(f"{runs}/{records.ARTIFACTS}", "/harness/out", False),
            _mount(f"{runs}/{records.META}", "/harness/meta", False),
            _mount("PROJECT/data.csv", "/harness/inputs/data", True),
        ],
        "network_mode": "none",
        "pids_limit": 4096,
        "read_only": True,
        "security_opt": ["no-new-privileges:true"],
        "tmpfs": {
            "/tmp": "rw,nosuid,nodev,size=4g",
            "/harness/project": "rw,exec,nosuid,nodev,uid=10001,gid=10001,size=8g",
            "/harness/source/.harness": "ro,size=1k",
        },
        "user": "10001:10001",
        "hostname": "harness",
        "working_dir": "/harness/project",
    }
    assert result.status == "succeeded", result.record["error"]
    assert result.record["environment"] == {**environment, "HARNESS_RUN_ID": result.run_id}
    assert result.record["container"] == {
        "network": "none",
        "read_only_root": True,
        "user": "10001:10001",
        "hostname": "harness",
        "working_dir": "/harness/project",
        "cpuset": None,
        "variations": [],
        "cpus": None,
        "gpus": False,
        "timeout_s": None,
        "files": "bind",
        "labels": {"io.harness.run-id": result.run_id},
    }


def test_variations_reach_the_engine_as_before(config: Config) -> None:
    setup = setup_for(BY_NAME[name] for name in ("cpus", "user", "workdir", "env", "hashseed"))
    request = run.RunRequest(
        config.experiment("fit"), seed=3, profile="strict", threads=2, cpus=1.5, setup=setup
    )
    options, result = _created(config, request)
    # The project's view lies elsewhere, and the experiment stands in it.
    assert (options["user"], options["working_dir"], options["cpuset_cpus"]) == (
        "10002:10002",
        "/harness/elsewhere/moved-project",
        "0",
    )
    assert "/harness/elsewhere/moved-project" in options["tmpfs"]
    assert "/harness/project" not in options["tmpfs"]
    spec = json.loads((result.folder / "spec.json").read_text())
    assert spec["project"] == "/harness/elsewhere/moved-project"
    assert options["nano_cpus"] == 1_500_000_000
    assert "PYTHONHASHSEED" not in options["environment"]
    assert options["environment"]["HARNESS_NOISE"] == "1"
    assert result.record["container"]["variations"] == [
        "cpus",
        "user",
        "workdir",
        "env",
        "hashseed",
    ]


# -- the plan, without an engine -------------------------------------------------------------


def test_the_plan_of_a_control_run(config: Config) -> None:
    request = run.RunRequest(config.experiment("fit"), seed=3, profile="strict", threads=2)
    plan = container.plan(request, image="img", run_id="r1", memory="6g")
    assert (plan.image, plan.command) == (
        "img",
        ("python", "-P", "-m", "harness.runtime", "/harness/spec.json"),
    )
    assert (plan.user, plan.user_ids, plan.working_dir, plan.hostname) == (
        "10001:10001",
        (10001, 10001),
        "/harness/project",
        "harness",
    )
    assert [(m.source, m.target, m.read_only, m.name) for m in plan.mounts] == [
        (Source.PROJECT, "/harness/source", True, None),
        (Source.SPEC, "/harness/spec.json", True, None),
        (Source.ARTIFACTS, "/harness/out", False, None),
        (Source.META, "/harness/meta", False, None),
        (Source.INPUT, "/harness/inputs/data", True, "data"),
    ]
    assert plan.tmpfs_at("/tmp").docker_options == "rw,nosuid,nodev,size=4g"
    assert plan.tmpfs_at("/harness/source/.harness").docker_options == "ro,size=1k"
    # The experiment's working directory is a writable view, the project stays read-only.
    assert plan.tmpfs_at("/harness/project").docker_options == (
        "rw,exec,nosuid,nodev,uid=10001,gid=10001,size=8g"
    )
    assert plan.confinement == container.Confinement(
        read_only_root=True,
        network=False,
        drop_capabilities=("ALL",),
        no_new_privileges=True,
        pids_limit=4096,
        log_limit=64 << 20,
    )
    assert (plan.memory, plan.cpus, plan.cpuset, plan.gpus) == ("6g", None, None, False)
    assert plan.labels == {"io.harness.run-id": "r1"}
    assert plan.environment == {
        **determinism.environment(3, "strict", 2, "cpu"),
        "HOME": "/tmp",
        "HARNESS_RUN_ID": "r1",
    }


def test_variations_change_only_what_they_name(config: Config) -> None:
    control = run.RunRequest(config.experiment("fit"), seed=3, profile="strict", threads=2)
    varied = replace(control, setup=setup_for(BY_NAME[n] for n in ("user", "hostname", "cpus")))
    before = container.plan(control, image="img", run_id="r1", memory=None)
    after = container.plan(varied, image="img", run_id="r1", memory=None)
    # The project's writable view belongs to whichever user runs the experiment.
    assert after.tmpfs_at("/harness/project").options[-2:] == ("uid=10002", "gid=10002")
    assert (
        replace(
            after,
            user=before.user,
            hostname=before.hostname,
            cpuset=None,
            tmpfs=before.tmpfs,
        )
        == before
    )
    assert (after.user, after.hostname, after.cpuset) == ("10002:10002", "reprotest-host", "0")


def test_a_gpu_run_gets_the_cuda_environment(config: Config) -> None:
    request = run.RunRequest(
        config.experiment("fit"), seed=3, profile="strict", threads=2, gpus=True
    )
    plan = container.plan(request, image="img", run_id="r1", memory=None)
    assert plan.gpus
    assert plan.environment == {
        **determinism.environment(3, "strict", 2, "cuda"),
        "HOME": "/tmp",
        "HARNESS_RUN_ID": "r1",
    }


def test_the_engine_confines_every_container_as_the_plan_says() -> None:
    options = created_with(ContainerSpec("image", ("true",)))
    assert options["cap_drop"] == list(container.CONFINED.drop_capabilities)
    assert options["security_opt"] == ["no-new-privileges:true"]
    assert options["pids_limit"] == container.CONFINED.pids_limit
    assert options["log_config"]["Config"]["max-size"] == str(container.CONFINED.log_limit)


# -- harness run and a Kubernetes Job agree ----------------------------------------------------


def test_run_and_k8s_give_the_experiment_the_same_container(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Jobs take no inputs yet; the project is in no git work tree.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(config.project_root.parent))
    (config.project_root / "pyproject.toml").write_text(
        PYPROJECT.replace('inputs = { data = "data.csv" }\n', "")
    )
    config = load_config(config.project_root)
    request = run.RunRequest(
        config.experiment("fit"), seed=config.seed, profile=config.profile, threads=config.threads
    )
    options, _ = _created(config, request)
    settings = settings_from({}, image=f"r/h@sha256:{'d1' * 32}", nodes=["n"])
    rendered = manifests.render(config, [config.experiment("fit")], settings)
    (job,) = [d for d in rendered.documents if d["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    security = main["securityContext"]
    user = pod["securityContext"]
    assert options["user"] == f"{user['runAsUser']}:{user['runAsGroup']}"
    size = options["tmpfs"]["/tmp"].rpartition("size=")[2]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": manifests.kubernetes_quantity(size)}
    assert options["read_only"] is security["readOnlyRootFilesystem"] is True
    assert options["cap_drop"] == security["capabilities"]["drop"]
    assert options["security_opt"] == ["no-new-privileges:true"]
    assert security["allowPrivilegeEscalation"] is False
    assert main["resources"]["limits"]["memory"] == manifests.kubernetes_quantity(
        options["mem_limit"]
    )
    assert (options["working_dir"], options["hostname"]) == (main["workingDir"], pod["hostname"])
    run_id = job["metadata"]["annotations"]["harness.dev/run-id"]
    env = {e["name"]: e["value"] for e in main["env"]}
    assert {**options["environment"], "HARNESS_RUN_ID": run_id} == env
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in main["volumeMounts"]}
    assert {m["Target"]: m["ReadOnly"] for m in options["mounts"]} == {
        k: v for k, v in mounts.items() if k not in ("/tmp", "/harness/project")
    }
