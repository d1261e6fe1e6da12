"""Cross-host runs on real engines: a second dockerd on this machine and a loopback registry.

The second engine is another host in every way that matters here: its own images,
containers and volumes, reached through its own socket, and its runs get their files by
copy (as an ssh:// or tcp:// host would), not by bind mounts.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.engine import Engine
from harness.fleet import shipping
from tests.conftest import REPOSITORY, copy_project_files
from tests.integration.conftest import harness, image_name

SCRIPTS = REPOSITORY / "scripts"
HANG = """\
import time


def main(output, seed, inputs):
    time.sleep(600)
"""


def _script(*arguments: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in arguments], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def second_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("engine-b")
    url = _script(SCRIPTS / "second-engine.sh", "start", state)
    try:
        yield url
        other = Engine.connect(url)
        assert other.containers_owned() == []
        assert other.volumes_owned() == []
    finally:
        _script(SCRIPTS / "second-engine.sh", "stop", state)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("registry")
    address = _script(SCRIPTS / "registry.sh", "start", state, str(_free_port()))
    try:
        yield f"{address}/{image_name('registry')}"
    finally:
        _script(SCRIPTS / "registry.sh", "stop", state)


@pytest.fixture(scope="module")
def readonly_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("registry-readonly")
    address = _script(SCRIPTS / "registry.sh", "start", state, str(_free_port()), "readonly")
    try:
        yield f"{address}/{image_name('registry')}"
    finally:
        _script(SCRIPTS / "registry.sh", "stop", state)


def _project(folder: Path, hosts: str, image: str = "harness") -> Path:
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    copy_project_files(folder)
    shutil.copytree(REPOSITORY / "experiments", folder / "experiments")
    pyproject = folder / "pyproject.toml"
    text = pyproject.read_text().replace('image = "harness"', f'image = "{image}"')
    pyproject.write_text(text + "\n[tool.harness.hosts]\n" + hosts)
    return folder


@pytest.fixture(scope="module")
def two_hosts(
    tmp_path_factory: pytest.TempPathFactory,
    second_engine: str,
    registry: str,
    cpu_image: dict[str, Any],
) -> dict[str, Any]:
    """The built-in examples verified on this engine and the second one, shipped by registry."""
    project = _project(tmp_path_factory.mktemp("two-hosts"), f'b = {{ url = "{second_engine}" }}\n')
    keys = tmp_path_factory.mktemp("host-keys")
    env = {"HARNESS_REGISTRY": registry, "HARNESS_HOST_NAME": "a", "HARNESS_KEYS_DIR": str(keys)}
    # This machine's key signs its runs; hosts/b.key signs the runs on engine b.
    assert harness("keys", "generate", env=env).returncode == 0
    made = harness("keys", "generate", "--dir", str(keys / "hosts"), "--name", "b", env=env)
    assert made.returncode == 0, made.stderr
    result = harness(
        "verify", "--json", "--vary", "none", "--runs", "1", "--hosts", "local,b",
        cwd=project, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"project": project, "env": env, "keys": keys, "document": json.loads(result.stdout)}


def test_examples_reproduce_on_two_engines_shipped_by_digest(
    two_hosts: dict[str, Any], second_engine: str, registry: str
) -> None:
    document = two_hosts["document"]
    assert document["verdict"] == "reproducible"
    assert document["quorum"]["agreed"] == ["a", "b"]
    assert document["quorum"]["text"] == "2 of 2"
    hosts = {host["name"]: host for host in document["hosts"]}
    assert hosts["a"]["status"] == "control"
    assert hosts["b"]["status"] == "agreed", hosts["b"]["reason"]
    shipment = hosts["b"]["shipment"]
    assert shipment["method"] in {"registry", "present"}
    if shipment["method"] == "registry":
        assert shipment["pulled"].startswith(f"{registry}/harness@sha256:")
    # The second engine holds the control's image, by ID, and ran it with copied files.
    image_id = document["image"]["id"]
    assert Engine.connect(second_engine).image(image_id) is not None
    runs = two_hosts["project"] / ".harness" / "runs"
    for experiment in ("sklearn", "torch", "tensorflow"):
        (control_run,) = hosts["a"]["runs"][experiment]
        (other_run,) = hosts["b"]["runs"][experiment]
        control = json.loads((runs / control_run / "record.json").read_text())
        other = json.loads((runs / other_run / "record.json").read_text())
        assert (control["host"], other["host"]) == ("a", "b")
        assert (control["container"]["files"], other["container"]["files"]) == ("bind", "copy")
        assert other["engine"]["where"] == second_engine
        assert other["image"]["id"] == control["image"]["id"] == image_id
        assert other["status"] == "succeeded"
        assert {a["path"]: a["sha256"] for a in other["artifacts"]} == {
            a["path"]: a["sha256"] for a in control["artifacts"]
        }


def test_the_certificate_names_both_hosts(two_hosts: dict[str, Any], tmp_path: Path) -> None:
    project, env, keys = two_hosts["project"], two_hosts["env"], two_hosts["keys"]
    certificate = tmp_path / "two.intoto.json"
    result = harness("certify", "--output", str(certificate), cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    both = ("--key", str(keys / "harness.pub"), "--key", str(keys / "hosts" / "b.pub"))
    checked = harness(
        "certificate", "verify", str(certificate), *both, "--min-hosts", "2", "--json",
        cwd=project, env=env,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    verified = json.loads(checked.stdout)
    predicate = verified["statement"]["predicate"]
    assert predicate["quorum"]["agreed"] == ["a", "b"]
    assert {host["name"] for host in predicate["hosts"]} == {"a", "b"}
    assert "2 distinct trusted host key(s) vouch for runs of it" in " ".join(verified["checks"])
    # Hosts are keys: a verifier that trusts only this machine's key counts one.
    one = harness(
        "certificate", "verify", str(certificate), *both[:2], "--min-hosts", "2",
        cwd=project, env=env,
    )  # fmt: skip
    assert one.returncode == 1
    assert "reproduced by 1 distinct host key(s) you trust, 2 required" in one.stderr


def test_ctrl_c_stops_the_runs_on_every_host_and_records_each_aborted(
    two_hosts: dict[str, Any], second_engine: str, engine: Engine, tmp_path: Path
) -> None:
    project = _project(tmp_path / "project", f'b = {{ url = "{second_engine}" }}\n')
    (project / "hang.py").write_text(HANG)
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write('\n[tool.harness.experiments.hang]\nentry = "hang:main"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "verify", "hang", "--vary", "none", "--runs", "1",
         "--hosts", "local,b"],
        cwd=project,
        env={**os.environ, **two_hosts["env"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    runs = project / ".harness" / "runs"
    deadline = time.monotonic() + 120
    # A run's log is opened once its container has started: then one runs on each host.
    while len(list(runs.glob("*/log.txt"))) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the runs' containers never started"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr
    stored = [json.loads(path.read_text()) for path in sorted(runs.glob("*/record.json"))]
    assert sorted((r["host"], r["status"]) for r in stored) == [("a", "aborted"), ("b", "aborted")]
    other = Engine.connect(second_engine)
    assert other.containers_owned() == []
    assert other.volumes_owned() == []  # the copied files' volumes went with the run
    client = docker.from_env()
    for record in stored:
        label = f"io.harness.run-id={record['run_id']}"
        assert client.containers.list(all=True, filters={"label": label}) == []


def test_an_unreachable_host_keeps_the_others_results_and_certifies_1_of_2(
    tmp_path: Path, cpu_image: dict[str, Any]
) -> None:
    gone = f"unix://{tmp_path}/no-engine.sock"
    project = _project(tmp_path / "project", f'gone = "{gone}"\n')
    keys = tmp_path / "keys"
    env = {"HARNESS_HOST_NAME": "a", "HARNESS_KEYS_DIR": str(keys)}
    result = harness("run", "sklearn", "--hosts", "local,gone", cwd=project, env=env)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("harness: 1 of 2 host(s) could not take part (gone)")
    assert "cannot reach the Docker engine" in error
    runs = list((project / ".harness" / "runs").iterdir())
    assert len(runs) == 1
    assert json.loads((runs[0] / "record.json").read_text())["status"] == "succeeded"
    # The key comes after the run: what this machine made unsigned counts only when allowed.
    assert harness("keys", "generate", env=env).returncode == 0
    certificate = tmp_path / "one.intoto.json"
    unsigned = harness("certify", "--output", str(certificate), cwd=project, env=env)
    assert unsigned.returncode == 2
    assert "is signed by no host key trusted here" in unsigned.stderr
    allowed = harness(
        "certify", "--output", str(certificate), "--allow-unsigned", cwd=project, env=env
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "reproduced on 1 of 1 host(s), counted by key" in allowed.stdout
    public = str(keys / "harness.pub")
    one = harness("certificate", "verify", str(certificate), "--key", public, cwd=project, env=env)
    assert one.returncode == 0, one.stderr
    assert "1 of 1 host(s) agreed: a (key none, cpu, unsigned)" in one.stdout
    two = harness(
        "certificate", "verify", str(certificate), "--key", public, "--min-hosts", "1",
        cwd=project, env=env,
    )  # fmt: skip
    assert two.returncode == 1
    assert "it also names 1 unsigned host(s), which never count" in two.stderr


def test_a_host_holding_another_image_is_refused_before_running(
    two_hosts: dict[str, Any], second_engine: str, tmp_path: Path
) -> None:
    other = Engine.connect(second_engine)
    stale = image_name("stale")
    impostor = _tiny_image(other, f"{stale}:cpu")
    try:
        project = _project(
            tmp_path / "project",
            f'stale = {{ url = "{second_engine}", ship = "never" }}\n',
            image=stale,
        )
        result = harness(
            "run", "sklearn", "--json", "--hosts", "local,stale", cwd=project,
            env={"HARNESS_HOST_NAME": "a"},
        )  # fmt: skip
        assert result.returncode == 2
        error = result.stderr.strip().splitlines()[-1]
        assert f"host stale holds {stale}:cpu as " + impostor[:19] in error
        assert "refusing to run another image there" in error
        records = json.loads(result.stdout)
        assert [r["host"] for r in records] == ["a"]  # nothing ran on the stale host
    finally:
        other.remove_image(f"{stale}:cpu")


def test_streaming_ships_by_id_and_an_unchanged_image_is_not_sent_again(
    engine: Engine, second_engine: str
) -> None:
    other = Engine.connect(second_engine)
    reference = f"{image_name('ship-' + uuid.uuid4().hex[:8])}:1"
    image_id = _tiny_image(engine, reference)
    try:
        first = shipping.ship(
            engine, other, image_id=image_id, reference=reference, host="b", mode="stream"
        )
        assert first.method == "stream"
        held = other.image(reference)
        assert held is not None
        assert held.id == image_id
        again = shipping.ship(
            engine, other, image_id=image_id, reference=reference, host="b", mode="stream"
        )
        assert again.method == "present"
    finally:
        engine.remove_image(reference)
        other.remove_image(reference)


def test_a_registry_that_rejects_the_push_is_reported(
    engine: Engine, second_engine: str, readonly_registry: str
) -> None:
    other = Engine.connect(second_engine)
    reference = f"{image_name('ship-' + uuid.uuid4().hex[:8])}:1"
    image_id = _tiny_image(engine, reference)
    try:
        with pytest.raises(shipping.ShipError) as caught:
            shipping.ship(
                engine,
                other,
                image_id=image_id,
                reference=reference,
                host="b",
                mode="registry",
                registry=readonly_registry,
            )
        assert "the registry refused the push" in caught.value.message
        assert other.image(image_id) is None
    finally:
        for tag in engine.image(image_id).tags if engine.image(image_id) else ():
            engine.remove_image(tag)


def test_collect_gathers_legs_and_refuses_a_corrupt_artifact(
    two_hosts: dict[str, Any], tmp_path: Path
) -> None:
    runs = two_hosts["project"] / ".harness" / "runs"
    hosts = {host["name"]: host for host in two_hosts["document"]["hosts"]}
    legs = []
    for name in ("a", "b"):
        leg = tmp_path / "downloaded" / f"harness-runs-{name}"
        for run_ids in hosts[name]["runs"].values():
            for run_id in run_ids:
                shutil.copytree(runs / run_id, leg / run_id)
        legs.append(str(leg))
    fresh = _project(tmp_path / "fresh", "")
    trusted = ("--key", str(two_hosts["keys"] / "harness.pub"))
    trusted = (*trusted, "--key", str(two_hosts["keys"] / "hosts" / "b.pub"))
    result = harness("collect", "--json", *legs, *trusted, cwd=fresh)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["quorum"]["text"] == "2 of 2"
    assert len(list((fresh / ".harness" / "runs").iterdir())) == 6
    # Collecting again finds the same runs already there.
    assert harness("collect", *legs, *trusted, cwd=fresh).returncode == 0

    corrupt = Path(legs[1])
    model = next(corrupt.glob("*-torch-*/artifacts/model.pt"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    spoiled = _project(tmp_path / "spoiled", "")
    refused = harness("collect", *legs, *trusted, cwd=spoiled)
    assert refused.returncode == 2
    assert "artifact model.pt is missing or does not have the sha256" in refused.stderr


def _tiny_image(engine: Engine, reference: str) -> str:
    """A one-file image no other engine holds (its file is random)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = uuid.uuid4().hex.encode()
        info = tarfile.TarInfo("token")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "rootfs.tar"
        archive.write_bytes(buffer.getvalue())
        return engine.import_rootfs(archive, reference, [])
