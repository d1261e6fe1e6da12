"""Certificates: forgery and mix-ups fail with a clear reason; intact ones verify."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import certify, records
from harness.errors import ConfigError, HarnessError

IMAGE_ID = "sha256:" + "ab" * 32


def verification(project: Path) -> dict[str, Any]:
    """A successful verification document whose first control run exists in ``project``."""
    artifacts = project / records.RUNS / "run-1" / records.ARTIFACTS
    artifacts.mkdir(parents=True)
    (artifacts / "model.npy").write_bytes(b"weights")
    listed = records.artifacts(artifacts)
    return {
        "schema": "harness.verification/v1",
        "id": "20260101-000000-aaaaaa",
        "verdict": "reproducible",
        "image": {"reference": "harness:cpu", "id": IMAGE_ID, "variant": "cpu", "labels": {}},
        "seed": 0,
        "profile": "strict",
        "threads": 1,
        "variations": ["hostname"],
        "control_runs": 2,
        "source": {"commit": "c0ffee", "dirty": False, "diff_sha256": None},
        "constraints_sha256": "11" * 32,
        "lock_sha256": "22" * 32,
        "hosts": [{"engine": {"version": "20.10"}, "fingerprint": {}}],
        "experiments": [
            {
                "name": "train",
                "entry": "pkg:train",
                "command": None,
                "parameters": {},
                "reproducible": True,
                "control_runs": ["run-1", "run-2"],
                "checks": [{"run_id": "run-2"}],
                "artifacts": [{**a, "policy": "bitwise", "verdict": "identical"} for a in listed],
                "observed": {"numpy": {}},
            }
        ],
    }


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def certificate(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "cert.intoto.json"
    certify.write(path, certify.envelope(certify.statement(verification(tmp_path)), key))
    return path


def check(path: Path, keys: list[Ed25519PrivateKey], threshold: int = 1) -> certify.Verified:
    raw, document = certify.read_envelope(path)
    return certify.verify_envelope(raw, document, [k.public_key() for k in keys], threshold)


def test_an_intact_certificate_verifies(
    certificate: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    verified = check(certificate, [key])
    assert verified.image_id == IMAGE_ID
    statement = verified.statement
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert [s["name"] for s in statement["subject"]] == ["harness:cpu", "train/model.npy"]
    assert statement["predicate"]["experiments"][0]["artifacts"][0]["verdict"] == "identical"
    certify.check_image(verified, IMAGE_ID)
    certify.check_artifacts(verified, tmp_path)


def test_every_single_byte_change_is_refused(certificate: Path, key: Ed25519PrivateKey) -> None:
    original = certificate.read_bytes()
    for position in range(len(original)):
        tampered = bytearray(original)
        tampered[position] = (tampered[position] + 1) % 256
        certificate.write_bytes(bytes(tampered))
        with pytest.raises(certify.CertificateError):
            check(certificate, [key])
    certificate.write_bytes(original)
    check(certificate, [key])


def test_a_wrong_key_does_not_count(certificate: Path) -> None:
    with pytest.raises(certify.CertificateError, match="0 trusted signature"):
        check(certificate, [Ed25519PrivateKey.generate()])


def test_a_re_signed_payload_from_another_key_is_refused(
    certificate: Path, key: Ed25519PrivateKey
) -> None:
    _, document = certify.read_envelope(certificate)
    forged = copy.deepcopy(document)
    forged["signatures"][0]["sig"] = document["signatures"][0]["sig"][:-4] + "AAA="
    certify.write(certificate, forged)
    with pytest.raises(certify.CertificateError):
        check(certificate, [key])


def test_threshold_counts_distinct_trusted_signers(
    certificate: Path, key: Ed25519PrivateKey
) -> None:
    second = Ed25519PrivateKey.generate()
    with pytest.raises(certify.CertificateError, match=r"1 trusted signature.*2 required"):
        check(certificate, [key, second], threshold=2)
    _, document = certify.read_envelope(certificate)
    certify.write(certificate, certify.add_signature(document, second))
    certify.write(certificate, certify.add_signature(certify.read_envelope(certificate)[1], second))
    verified = check(certificate, [key, second], threshold=2)
    assert len(verified.signers) == 2


def test_a_certificate_for_another_image_is_refused(
    certificate: Path, key: Ed25519PrivateKey
) -> None:
    verified = check(certificate, [key])
    with pytest.raises(certify.CertificateError, match="is for image sha256:abababababab"):
        certify.check_image(verified, "sha256:" + "cd" * 32)


def test_a_changed_artifact_is_refused(
    certificate: Path, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    (tmp_path / records.RUNS / "run-1" / records.ARTIFACTS / "model.npy").write_bytes(b"weightz")
    with pytest.raises(certify.CertificateError, match=r"model\.npy of run run-1"):
        certify.check_artifacts(check(certificate, [key]), tmp_path)


def test_an_unreproduced_verification_cannot_be_certified(tmp_path: Path) -> None:
    document = verification(tmp_path)
    document["verdict"] = "not reproducible"
    document["experiments"][0]["reproducible"] = False
    with pytest.raises(certify.CertificateError, match="not reproducible: train"):
        certify.statement(document)


def test_corrupt_json_is_a_refusal_and_a_missing_file_is_trouble(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(certify.CertificateError, match="not valid JSON"):
        certify.read_envelope(tmp_path / "bad.json")
    with pytest.raises(HarnessError) as caught:
        certify.read_envelope(tmp_path / "missing.json")
    assert caught.value.exit_code == 2


def test_generated_keys_are_private_and_never_overwritten(tmp_path: Path) -> None:
    pair = certify.generate_keys(tmp_path / "keys", "ci")
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    assert certify.key_id(certify.load_public_key(pair.public)) == pair.keyid
    assert certify.key_id(certify.load_private_key(pair.private).public_key()) == pair.keyid
    with pytest.raises(HarnessError, match="already exists"):
        certify.generate_keys(tmp_path / "keys", "ci")
    with pytest.raises(certify.KeyFileError, match="not an unencrypted PEM private key"):
        certify.load_private_key(pair.public)


def test_keys_default_outside_the_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(certify.KEYS_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert certify.keys_dir() == tmp_path / "harness" / "keys"


def test_settings_are_validated(tmp_path: Path) -> None:
    settings = certify.settings(
        {"trusted-keys": ["ci.pub"], "threshold": 2, "require": True}, tmp_path
    )
    assert settings == certify.Settings((tmp_path / "ci.pub",), 2, True)
    with pytest.raises(ConfigError, match="unknown key 'keys'"):
        certify.settings({"keys": []}, tmp_path)
    with pytest.raises(ConfigError, match="threshold must be"):
        certify.settings({"threshold": 0}, tmp_path)


def test_the_payload_is_what_was_signed(certificate: Path) -> None:
    document = json.loads(certificate.read_text())
    assert document["payloadType"] == "application/vnd.in-toto+json"
    assert certificate.read_bytes() == certify.canonical(document)
