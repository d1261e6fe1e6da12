"""`harness certify` signs only what it rebuilt from checked runs; a forged, edited, copied
or committed verification is refused in one line, and hosts are counted as keys."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.cli.state import State
from harness.errors import EngineUnavailable
from harness.runs import records
from harness.trust import attest, keys
from tests.conftest import MINIMAL_PYPROJECT
from tests.unit.test_collect import IMAGE, make_run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    return folder


@pytest.fixture(params=keys.KEY_TYPES)
def pairs(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, keys.KeyPair]:
    """The certifier's key and two hosts' keys, all outside the project: every test here
    runs with keys of each type harness signs with."""
    return {
        n: keys.generate_keys(tmp_path / "keys", n, key_type=request.param)
        for n in ("certifier", "leg-1", "leg-2")
    }


def harness(project: Path, *arguments: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--project", str(project), *map(str, arguments)])
    return result.exit_code, result.stdout, result.stderr


def sign(folder: Path, pair: keys.KeyPair) -> None:
    attest.sign(folder, records.read(folder), keys.load_private_key(pair.private))


def collected(project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]) -> Path:
    """Two legs, each signed by its own key, collected into ``project``: the verification."""
    sign(make_run(tmp_path / "a", "vm", "demo", 1, b"\x01"), pairs["leg-1"])
    sign(make_run(tmp_path / "b", "vm", "demo", 2, b"\x01"), pairs["leg-2"])
    legs = ("--key", pairs["leg-1"].public, "--key", pairs["leg-2"].public)
    code, _, stderr = harness(project, "collect", tmp_path / "a", tmp_path / "b", *legs)
    assert code == 0, stderr
    (saved,) = (project / ".harness" / "verifications").glob("*.json")
    return saved


def certify(project: Path, pairs: dict[str, keys.KeyPair], *extra: str | Path) -> tuple[int, str]:
    code, stdout, stderr = harness(
        project,
        "certify",
        "--key",
        pairs["certifier"].private,
        "--trusted-key",
        pairs["leg-1"].public,
        "--trusted-key",
        pairs["leg-2"].public,
        *extra,
    )
    return code, stdout + stderr


def statement_of(certificate: Path) -> dict[str, Any]:
    envelope = json.loads(certificate.read_text())
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def test_the_certificate_counts_hosts_by_key_and_carries_their_attestations(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    collected(project, tmp_path, pairs)
    code, output = certify(project, pairs)
    assert code == 0, output
    assert "reproduced on 2 of 2 host(s), counted by key" in output
    (certificate,) = (project / ".harness" / "certificates").glob("*.intoto.json")
    predicate = statement_of(certificate)["predicate"]
    hosts = {h["keyid"]: h for h in predicate["hosts"]}
    assert set(hosts) == {pairs["leg-1"].keyid, pairs["leg-2"].keyid}
    assert {h["device_class"] for h in hosts.values()} == {"cpu"}
    assert predicate["quorum"]["signers"] == [pairs["leg-1"].keyid, pairs["leg-2"].keyid]
    assert predicate["quorum"]["unsigned"] == []
    assert len(predicate["evidence"]["attestations"]) == 2

    every = ("--key", pairs["certifier"].public, "--key", pairs["leg-1"].public)
    every = (*every, "--key", pairs["leg-2"].public)
    code, stdout, stderr = harness(
        project, "certificate", "verify", certificate, *every, "--min-hosts", "2"
    )
    assert code == 0, stderr
    assert "2 distinct trusted host key(s) vouch for runs of it" in stdout
    # Hosts whose keys the verifier does not trust do not count, whatever the certifier says.
    code, _, stderr = harness(
        project,
        "certificate",
        "verify",
        certificate,
        "--key",
        pairs["certifier"].public,
        "--key",
        pairs["leg-1"].public,
        "--min-hosts",
        "2",
    )
    assert code == 1
    assert "reproduced by 1 distinct host key(s) you trust, 2 required" in stderr


def test_two_names_one_key_is_one_host_in_the_certificate(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    sign(make_run(tmp_path / "a", "vm", "demo", 1, b"\x01"), pairs["leg-1"])
    sign(make_run(tmp_path / "b", "vm-2", "demo", 2, b"\x01"), pairs["leg-1"])
    code, _, stderr = harness(
        project, "collect", tmp_path / "a", tmp_path / "b", "--key", pairs["leg-1"].public
    )
    assert code == 0, stderr
    code, output = certify(project, pairs)
    assert code == 0, output
    assert "reproduced on 1 of 1 host(s)" in output
    (certificate,) = (project / ".harness" / "certificates").glob("*.intoto.json")
    code, stdout, stderr = harness(
        project,
        "certificate",
        "verify",
        certificate,
        "--key",
        pairs["certifier"].public,
        "--key",
        pairs["leg-1"].public,
        "--min-hosts",
        "1",
    )
    assert code == 0, stderr
    assert "1 of 1 host(s) agreed: vm (key" in stdout
    assert "vm, vm" not in stdout


FORGED_ID = "99999999-999999-ffffff"


def forged(project: Path, saved: Path, **changes: Any) -> Path:
    document = json.loads(saved.read_text())
    document.update(id=FORGED_ID, **changes)
    path = saved.with_name(f"{FORGED_ID}.json")  # sorts last: the default choice
    path.write_text(json.dumps(document))
    return path


def test_a_verification_committed_to_the_repository_is_never_certified(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    saved = collected(project, tmp_path, pairs)
    path = forged(project, saved)
    git = ["git", "-C", str(project), "-c", "user.name=x", "-c", "user.email=x@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-f", str(path)], check=True)
    subprocess.run([*git, "commit", "-qm", "results"], check=True)
    code, output = certify(project, pairs)
    assert code == 2
    assert f"{FORGED_ID}.json is committed to the repository" in output
    assert output.count("\n") == 1
    assert not (project / ".harness" / "certificates").exists()


def test_a_verification_copied_from_elsewhere_is_never_certified(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    saved = collected(project, tmp_path, pairs)
    document = json.loads(saved.read_text())
    document["experiments"][0]["control_runs"] = ["20250101-000000-demo-abcdef"]
    forged(project, saved, experiments=document["experiments"])
    code, output = certify(project, pairs)
    assert code == 2
    assert "run 20250101-000000-demo-abcdef that verification" in output
    assert "copied from elsewhere" in output


@pytest.mark.parametrize("edit", ["five hosts", "artifact", "image"])
def test_an_edited_verification_is_never_certified(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair], edit: str
) -> None:
    saved = collected(project, tmp_path, pairs)
    document = json.loads(saved.read_text())
    if edit == "five hosts":
        changes: dict[str, Any] = {"quorum": {"agreed": list("abcde"), "of": 5, "text": "5 of 5"}}
        expected = "claims 5 agreeing host(s), but its runs were made by 2 distinct host key(s)"
    elif edit == "artifact":
        document["experiments"][0]["artifacts"][0]["sha256"] = "00" * 32
        changes = {"experiments": document["experiments"]}
        expected = "names other artifacts for demo than its runs hold"
    else:
        changes = {"image": {**document["image"], "id": "sha256:" + "cd" * 32}}
        expected = "names image sha256:cdcdcdcdcdcd, but its runs ran"
    forged(project, saved, **changes)
    code, output = certify(project, pairs)
    assert code == 2, output
    assert expected in output
    assert output.count("\n") == 1


def test_an_artifact_changed_after_collection_is_never_certified(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    collected(project, tmp_path, pairs)
    (run,) = [f for f in (project / records.RUNS).iterdir() if records.read(f)["host"] == "vm"][:1]
    (run / records.ARTIFACTS / "weights.bin").write_bytes(b"\x09")
    code, output = certify(project, pairs)
    assert code == 2
    assert "no longer have the bytes its record names" in output


def test_a_control_run_that_differs_is_never_certified(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    saved = collected(project, tmp_path, pairs)
    extra = make_run(tmp_path / "c", "vm", "demo", 3, b"\x07")
    sign(extra, pairs["leg-1"])
    code, _, stderr = harness(
        project, "collect", tmp_path / "c", "--key", pairs["leg-1"].public, "--json"
    )
    assert code == 0, stderr
    document = json.loads(saved.read_text())
    document["experiments"][0]["checks"] = [{"run_id": extra.name}]
    forged(project, saved, experiments=document["experiments"])
    code, output = certify(project, pairs)
    assert code == 2
    assert f"its run {extra.name} differs" in output
    assert "edited or forged" in output


def test_unsigned_runs_need_the_flag_an_image_here_and_never_count_for_min_hosts(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run(tmp_path / "a", "vm", "demo", 1, b"\x01")
    make_run(tmp_path / "b", "vm-2", "demo", 2, b"\x01")
    code, _, stderr = harness(
        project, "collect", tmp_path / "a", tmp_path / "b", "--allow-unsigned"
    )
    assert code == 0, stderr
    code, output = certify(project, pairs)
    assert code == 2
    assert "is signed by no host key trusted here" in output

    def no_engine(self: State, config: Any) -> Any:
        raise EngineUnavailable("no engine here")

    monkeypatch.setattr(State, "engine", no_engine)
    code, output = certify(project, pairs, "--allow-unsigned")
    assert code == 2
    assert f"image {IMAGE[:19]} is not on this engine and no signed run vouches" in output

    class Engine:
        def image(self, reference: str) -> object:
            return object() if reference == IMAGE else None

    monkeypatch.setattr(State, "engine", lambda self, config: Engine())
    code, output = certify(project, pairs, "--allow-unsigned")
    assert code == 0, output
    assert "UNSIGNED" in output
    (certificate,) = (project / ".harness" / "certificates").glob("*.intoto.json")
    assert statement_of(certificate)["predicate"]["quorum"]["unsigned"] == ["vm", "vm-2"]
    code, _, stderr = harness(
        project,
        "certificate",
        "verify",
        certificate,
        "--key",
        pairs["certifier"].public,
        "--min-hosts",
        "1",
    )
    assert code == 1
    assert "it also names 2 unsigned host(s), which never count" in stderr


def test_a_host_whose_run_failed_is_named_and_not_counted(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    sign(make_run(tmp_path / "a", "vm", "demo", 1, b"\x01"), pairs["leg-1"])
    failed = make_run(tmp_path / "b", "vm-2", "demo", 2, b"\x01")
    record = records.read(failed)
    record["status"] = "failed"
    records.write(failed, record)
    sign(failed, pairs["leg-2"])
    legs = ("--key", pairs["leg-1"].public, "--key", pairs["leg-2"].public)
    code, _, stderr = harness(project, "collect", tmp_path / "a", tmp_path / "b", *legs)
    assert code == 1, stderr  # a host that failed: saved, not counted
    code, output = certify(project, pairs)
    assert code == 0, output
    assert "reproduced on 1 of 2 host(s), counted by key" in output
    assert f"host vm-2           failed (key {pairs['leg-2'].keyid[:16]}, cpu)" in output


def _emptied(folder: Path) -> Path:
    """The run with no artifact: what a script that wrote its results nowhere leaves."""
    (folder / records.ARTIFACTS / "weights.bin").unlink()
    record = records.read(folder)
    record["artifacts"] = []
    records.write(folder, record)
    return folder


def test_runs_with_no_artifact_are_never_certified(
    project: Path, tmp_path: Path, pairs: dict[str, keys.KeyPair]
) -> None:
    # Two hosts that agree on nothing at all would be "reproduced on 2 of 2 hosts".
    control = _emptied(make_run(tmp_path / "a", "vm", "demo", 1, b"\x01"))
    sign(control, pairs["leg-1"])
    sign(_emptied(make_run(tmp_path / "b", "vm", "demo", 2, b"\x01")), pairs["leg-2"])
    legs = ("--key", pairs["leg-1"].public, "--key", pairs["leg-2"].public)
    code, _, stderr = harness(project, "collect", tmp_path / "a", tmp_path / "b", *legs)
    assert code == 2
    assert "succeeded with no artifact (it wrote no file), so there is nothing to compare" in stderr
    # Saved as it is, it is still refused: certify judges the runs itself.
    (saved,) = (project / ".harness" / "verifications").glob("*.json")
    document = json.loads(saved.read_text())
    assert document["verdict"] == "not reproducible"
    forged(
        project,
        saved,
        verdict="reproducible",
        experiments=[
            {
                **document["experiments"][0],
                "reproducible": True,
                "failure": None,
                "unfinished": [],
                "control_runs": [control.name],
            }
        ],
    )
    code, output = certify(project, pairs)
    assert code == 2
    assert "which has no artifact: nothing was compared, so there is nothing to certify" in output
