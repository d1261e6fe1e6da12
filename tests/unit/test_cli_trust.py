"""The trust commands on the command line: exit codes and refusals, without an engine."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.cli.main import cli
from harness.trust import certify, keys
from tests.conftest import MINIMAL_PYPROJECT
from tests.unit.test_certify import verification


@pytest.fixture(autouse=True)
def _machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(keys.KEYS_ENV, raising=False)
    monkeypatch.delenv(keys.TRUSTED_ENV, raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project beside (not around) the configuration home and the runners' keys."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    return folder


def harness(project: Path, *arguments: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--project", str(project), *map(str, arguments)])
    return result.exit_code, result.stderr


@pytest.fixture
def signed(project: Path, tmp_path: Path) -> tuple[Path, keys.KeyPair]:
    """A certificate in ``project`` signed by a first runner's key (kept outside it)."""
    first = keys.generate_keys(tmp_path / "runner-1", "harness")
    path = project / "cert.intoto.json"
    document = verification(project)
    document["quorum"] = {"agreed": ["runner-1"], "of": 1}
    statement = certify.statement(document)
    certify.write(path, certify.envelope(statement, keys.load_private_key(first.private)))
    return path, first


def test_co_signing_checks_every_existing_signature_first(
    project: Path, tmp_path: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    second = keys.generate_keys(tmp_path / "runner-2", "harness")
    # The first runner's key is not trusted here: nothing to vouch for.
    code, stderr = harness(project, "certificate", "sign", path, "--key", second.private)
    assert code == 1, stderr
    assert "is by no trusted key" in stderr
    assert len(json.loads(path.read_text())["signatures"]) == 1
    code, stderr = harness(
        project, "certificate", "sign", path, "--key", second.private,
        "--trusted-key", first.public,
    )  # fmt: skip
    assert code == 0, stderr
    code, stderr = harness(
        project, "certificate", "verify", path, "--key", first.public, "--key", second.public,
        "--threshold", "2",
    )  # fmt: skip
    assert code == 0, stderr


def test_an_edited_payload_is_not_co_signed(
    project: Path, tmp_path: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    document = json.loads(path.read_text())
    statement: dict[str, Any] = json.loads(base64.b64decode(document["payload"]))
    statement["predicate"]["quorum"] = {"agreed": ["a", "b", "c"], "of": 3}
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(document))
    before = path.read_bytes()
    second = keys.generate_keys(tmp_path / "runner-2", "harness")
    code, stderr = harness(
        project, "certificate", "sign", path, "--key", second.private,
        "--trusted-key", first.public,
    )  # fmt: skip
    assert code == 1
    assert "does not match the payload" in stderr
    assert path.read_bytes() == before


def test_the_project_cannot_widen_the_keys_a_gate_trusts(
    project: Path, tmp_path: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    (project / "first.pub").write_bytes(first.public.read_bytes())
    with (project / "pyproject.toml").open("a") as stream:
        stream.write('\n[tool.harness.certify]\ntrusted-keys = ["first.pub"]\n')
    # The project's list alone is no trust.
    code, stderr = harness(project, "certificate", "verify", path)
    assert code == 2
    assert "no trusted public key" in stderr
    # Nor does it add the first key to another that the command line gives.
    other = keys.generate_keys(tmp_path / "other", "harness")
    code, stderr = harness(project, "certificate", "verify", path, "--key", other.public)
    assert code == 2
    assert "may narrow the trusted keys but not add" in stderr
    code, stderr = harness(project, "certificate", "verify", path, "--key", first.public)
    assert code == 0, stderr


def test_the_project_can_raise_the_threshold_but_not_lower_it(
    project: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    with (project / "pyproject.toml").open("a") as stream:
        stream.write("\n[tool.harness.certify]\nthreshold = 2\n")
    code, stderr = harness(project, "certificate", "verify", path, "--key", first.public)
    assert code == 1
    assert "2 required" in stderr


def test_keys_are_never_generated_inside_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keys.KEYS_ENV, str(project / ".keys"))
    code, stderr = harness(project, "keys", "generate")
    assert code == 2
    assert "is inside the project" in stderr
    assert not (project / ".keys").exists()
    monkeypatch.delenv(keys.KEYS_ENV)
    code, stderr = harness(project, "keys", "generate", "--dir", project / "k")
    assert code == 2
    code, stderr = harness(project, "keys", "generate", "--name", "../escape")
    assert code == 2
    assert "is not a plain file name" in stderr


def test_signing_with_a_key_others_can_read_is_refused(
    project: Path, tmp_path: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    first.private.chmod(0o644)
    code, stderr = harness(
        project, "certificate", "sign", path, "--key", first.private, "--trusted-key", first.public
    )
    assert code == 2
    assert "chmod 600" in stderr


def test_generating_a_key_that_exists_says_where_it_is_and_succeeds(
    project: Path, tmp_path: Path
) -> None:
    """A scripted `keys generate` before every certify must not break the second time."""
    runner = CliRunner()
    first = runner.invoke(cli, ["--project", str(project), "keys", "generate"])
    assert first.exit_code == 0, first.stderr
    private = tmp_path / "config" / "harness" / "keys" / "harness.key"
    before = private.read_bytes()
    again = runner.invoke(cli, ["--project", str(project), "keys", "generate"])
    assert again.exit_code == 0, again.stderr
    assert f"private {private}" in again.stdout
    assert "already exists: kept (--force replaces it)" in again.stderr
    assert private.read_bytes() == before
    assert again.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]  # the same keyid
    forced = runner.invoke(cli, ["--project", str(project), "keys", "generate", "--force"])
    assert forced.exit_code == 0, forced.stderr
    assert private.read_bytes() != before
    assert forced.stdout.splitlines()[-1] != first.stdout.splitlines()[-1]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_keys_generate_takes_a_type_and_refuses_a_pair_of_another(
    project: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    arguments = ["--project", str(project), "keys", "generate", "--name", "cosign"]
    made = runner.invoke(cli, [*arguments, "--type", "ecdsa-p256"])
    assert made.exit_code == 0, made.stderr
    assert "type    ecdsa-p256" in made.stdout
    public = tmp_path / "config" / "harness" / "keys" / "cosign.pub"
    assert keys.key_type_of(keys.load_public_key(public)) == keys.ECDSA_P256
    other = runner.invoke(cli, [*arguments, "--type", "ed25519"])
    assert other.exit_code == 2
    assert "is ecdsa-p256, not ed25519" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    unknown = runner.invoke(cli, [*arguments, "--type", "rsa"])
    assert unknown.exit_code == 2
    assert "'rsa' is not one of 'ed25519', 'ecdsa-p256'" in unknown.stderr


def test_a_key_file_of_another_type_is_refused_in_one_line(
    project: Path, tmp_path: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    wrong = tmp_path / "p384.key"
    wrong.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    wrong.chmod(0o600)
    code, stderr = harness(
        project, "certificate", "sign", path, "--key", wrong, "--trusted-key", first.public
    )
    assert code == 2
    assert "is an elliptic-curve key on secp384r1, not an ed25519 or ECDSA P-256 key" in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    code, stderr = harness(project, "certificate", "verify", path, "--key", wrong)
    assert code == 2
    assert "is not a PEM public key" in stderr


def test_an_ecdsa_runner_co_signs_an_ed25519_certificate(
    project: Path, tmp_path: Path, signed: tuple[Path, keys.KeyPair]
) -> None:
    path, first = signed
    second = keys.generate_keys(tmp_path / "runner-2", "harness", key_type=keys.ECDSA_P256)
    for _ in range(2):
        code, stderr = harness(
            project, "certificate", "sign", path, "--key", second.private,
            "--trusted-key", first.public,
        )  # fmt: skip
        assert code == 0, stderr
    # Signing again replaced its own signature (found by verifying it, whatever its bytes).
    signatures = json.loads(path.read_text())["signatures"]
    assert sorted(s["keyid"] for s in signatures) == sorted([first.keyid, second.keyid])
    code, stderr = harness(
        project, "certificate", "verify", path, "--key", first.public, "--key", second.public,
        "--threshold", "2",
    )  # fmt: skip
    assert code == 0, stderr
