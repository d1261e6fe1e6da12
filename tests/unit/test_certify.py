"""Certificates: forgery and mix-ups fail with a clear reason; intact ones verify."""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from harness.errors import ConfigError, HarnessError
from harness.runs import records
from harness.trust import certify, keys
from harness.trust.keys import PrivateKey

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


def new_key(kind: str) -> PrivateKey:
    """A fresh private key of type ``kind`` (``keys generate --type``)."""
    if kind == keys.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return Ed25519PrivateKey.generate()


@pytest.fixture(params=keys.KEY_TYPES)
def key(request: pytest.FixtureRequest) -> PrivateKey:
    """The certifier's key: every test here runs with each key type harness signs with."""
    return new_key(request.param)


@pytest.fixture
def certificate(tmp_path: Path, key: PrivateKey) -> Path:
    path = tmp_path / "cert.intoto.json"
    certify.write(path, certify.envelope(certify.statement(verification(tmp_path)), key))
    return path


def check(path: Path, keys: list[PrivateKey], threshold: int = 1) -> certify.Verified:
    document = certify.read_envelope(path)
    return certify.verify_envelope(document, [k.public_key() for k in keys], threshold)


def test_an_intact_certificate_verifies(certificate: Path, key: PrivateKey, tmp_path: Path) -> None:
    verified = check(certificate, [key])
    assert verified.image_id == IMAGE_ID
    statement = verified.statement
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert [s["name"] for s in statement["subject"]] == ["harness:cpu", "train/model.npy"]
    assert statement["predicate"]["experiments"][0]["artifacts"][0]["verdict"] == "identical"
    certify.check_image(verified, IMAGE_ID)
    certify.check_artifacts(verified, tmp_path)


def test_no_single_byte_change_alters_what_verifies(certificate: Path, key: PrivateKey) -> None:
    """A changed byte is refused, or (in what DSSE leaves unauthenticated: spacing, a key id
    hint, base64's unused bits) leaves the verified statement and signers exactly as they were.
    """
    original = certificate.read_bytes()
    reference = check(certificate, [key])
    refused = 0
    for position in range(len(original)):
        tampered = bytearray(original)
        tampered[position] = (tampered[position] + 1) % 256
        certificate.write_bytes(bytes(tampered))
        try:
            verified = check(certificate, [key])
        except HarnessError:
            refused += 1
            continue
        assert (verified.statement, verified.signers) == (reference.statement, reference.signers)
    # Every byte of the payload and the signature is covered: nearly all changes are refused.
    assert refused > 0.9 * len(original)
    certificate.write_bytes(original)
    check(certificate, [key])


def test_a_wrong_key_does_not_count(certificate: Path) -> None:
    with pytest.raises(certify.CertificateError, match="0 trusted signature"):
        check(certificate, [Ed25519PrivateKey.generate()])


def test_a_re_signed_payload_from_another_key_is_refused(
    certificate: Path, key: PrivateKey
) -> None:
    document = certify.read_envelope(certificate)
    forged = copy.deepcopy(document)
    forged["signatures"][0]["sig"] = document["signatures"][0]["sig"][:-4] + "AAA="
    certify.write(certificate, forged)
    with pytest.raises(certify.CertificateError):
        check(certificate, [key])


def test_threshold_counts_distinct_trusted_signers(certificate: Path, key: PrivateKey) -> None:
    second = Ed25519PrivateKey.generate()
    with pytest.raises(certify.CertificateError, match=r"1 trusted signature.*2 required"):
        check(certificate, [key, second], threshold=2)
    document = certify.read_envelope(certificate)
    certify.write(certificate, certify.add_signature(document, second))
    certify.write(certificate, certify.add_signature(certify.read_envelope(certificate), second))
    verified = check(certificate, [key, second], threshold=2)
    assert len(verified.signers) == 2


def test_a_certificate_for_another_image_is_refused(certificate: Path, key: PrivateKey) -> None:
    verified = check(certificate, [key])
    with pytest.raises(certify.CertificateError, match="is for image sha256:abababababab"):
        certify.check_image(verified, "sha256:" + "cd" * 32)


def test_a_changed_artifact_is_refused(certificate: Path, key: PrivateKey, tmp_path: Path) -> None:
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


def test_settings_are_the_table_with_its_defaults(tmp_path: Path) -> None:
    settings = certify.settings(
        {"trusted-keys": ["ci.pub"], "threshold": 2, "require": True}, tmp_path
    )
    assert settings == certify.Settings((tmp_path / "ci.pub",), 2, True)
    assert certify.settings({}, tmp_path) == certify.Settings((), 1, False)


def test_the_payload_is_what_was_signed(certificate: Path) -> None:
    document = json.loads(certificate.read_text())
    assert document["payloadType"] == "application/vnd.in-toto+json"
    assert certificate.read_bytes() == certify.canonical(document)


# -- attacks on the file -----------------------------------------------------------------


def _resigned_payload(document: dict[str, Any], edit: Any) -> dict[str, Any]:
    """The envelope with its payload decoded, edited and encoded again, signatures kept."""
    statement = json.loads(base64.b64decode(document["payload"]))
    edit(statement)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return {**document, "payload": base64.b64encode(payload).decode()}


def test_an_edited_payload_re_encoded_is_refused(certificate: Path, key: PrivateKey) -> None:
    def claim_three_hosts(statement: dict[str, Any]) -> None:
        statement["predicate"]["quorum"] = {"agreed": ["a", "b", "c"], "of": 3}

    edited = _resigned_payload(certify.read_envelope(certificate), claim_three_hosts)
    certify.write(certificate, edited)
    with pytest.raises(certify.CertificateError, match="does not match the payload"):
        check(certificate, [key])


def test_a_deeply_nested_certificate_is_refused_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(certify.CertificateError, match="nests deeper than"):
        certify.read_envelope(path)


def test_duplicate_keys_are_refused(tmp_path: Path, certificate: Path) -> None:
    text = certificate.read_text()
    path = tmp_path / "twice.json"
    path.write_text(text.replace('"payload":', '"payload": "", "payload":', 1))
    with pytest.raises(certify.CertificateError, match="names the key 'payload' twice"):
        certify.read_envelope(path)


@pytest.mark.parametrize("kind", ["fifo", "device", "large", "folder"])
def test_files_that_are_no_certificate_are_trouble_and_read_nothing(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "cert.json"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "large":
        with path.open("wb") as stream:  # sparse: no disk used
            stream.truncate(certify.CERTIFICATE_LIMIT + 1)
    else:
        path.mkdir()
    with pytest.raises(HarnessError) as caught:
        certify.read_envelope(path)
    assert caught.value.exit_code == 2
    assert str(path) in caught.value.one_line()


def test_a_statement_naming_runs_outside_their_folder_is_refused(
    tmp_path: Path, key: PrivateKey
) -> None:
    statement = certify.statement(verification(tmp_path))
    statement["predicate"]["experiments"][0]["runs"] = ["../../etc"]
    path = tmp_path / "cert.json"
    certify.write(path, certify.envelope(statement, key))
    with pytest.raises(certify.CertificateError, match="outside their folders"):
        check(path, [key])


# -- interoperability with the reference implementations ---------------------------------


def _sslib_key(key: PrivateKey) -> Any:
    return SSlibKey.from_crypto(key.public_key())


def test_securesystemslib_verifies_harness_envelopes_with_a_key_it_loads_itself(
    certificate: Path, key: PrivateKey
) -> None:
    envelope = Envelope.from_dict(json.loads(certificate.read_text()))
    accepted = envelope.verify([_sslib_key(key)], threshold=1)
    assert list(accepted) == [keys.key_id(key.public_key())]
    assert envelope.pae() == certify.pae(envelope.payload_type, envelope.payload)


def test_harness_verifies_an_envelope_securesystemslib_signed(
    tmp_path: Path, key: PrivateKey
) -> None:
    payload = json.dumps(certify.statement(verification(tmp_path))).encode()  # its own layout
    envelope = Envelope(payload, certify.PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(key))
    path = tmp_path / "sslib.json"
    path.write_text(json.dumps(envelope.to_dict()))  # other order, other spacing
    verified = check(path, [key])
    assert verified.image_id == IMAGE_ID
    # A key id other tools compute differently is only a hint.
    document = envelope.to_dict()
    document["signatures"][0]["keyid"] = "another tool's id"
    path.write_text(json.dumps(document))
    assert check(path, [key]).signers == [keys.key_id(key.public_key())]


def test_any_conformant_encoding_verifies(certificate: Path, key: PrivateKey) -> None:
    document = certify.read_envelope(certificate)
    payload = base64.b64decode(document["payload"])
    conformant = {
        # No keyid (optional in DSSE), URL-safe base64 without padding, fields reordered.
        "signatures": [
            {"sig": s["sig"].replace("+", "-").replace("/", "_")} for s in document["signatures"]
        ],
        "payload": base64.urlsafe_b64encode(payload).decode().rstrip("="),
        "payloadType": document["payloadType"],
        "x-unknown": "ignored, as DSSE asks",
    }
    certificate.write_text(json.dumps(conformant, separators=(",", ":")))
    assert check(certificate, [key]).statement == json.loads(payload)


def test_the_statement_validates_as_in_toto_v1(tmp_path: Path) -> None:
    document = certify.statement(
        verification(tmp_path), ["registry.example/ml/harness@sha256:" + "ef" * 32]
    )
    message = json_format.ParseDict(
        {"type" if k == "_type" else k: v for k, v in document.items()},
        statement_pb2.Statement(),  # type: ignore[attr-defined]
    )
    Statement.copy_from_pb(message).validate()


def test_a_registry_digest_becomes_the_subject_cosign_matches(
    tmp_path: Path, key: PrivateKey
) -> None:
    manifest = "ef" * 32
    document = certify.statement(
        verification(tmp_path), [f"registry.example/ml/h@sha256:{manifest}"]
    )
    pushed = [s for s in document["subject"] if s["annotations"]["kind"] == "image-manifest"]
    assert pushed == [
        {
            "name": "registry.example/ml/h",
            "digest": {"sha256": manifest},
            "annotations": {"kind": "image-manifest", "image": IMAGE_ID},
        }
    ]
    path = tmp_path / "cert.json"
    certify.write(path, certify.envelope(document, key))
    assert check(path, [key]).image_id == IMAGE_ID  # the gate still checks the image ID
    with pytest.raises(ConfigError, match="not a registry reference by digest"):
        certify.statement(verification(tmp_path / "again"), ["harness:cpu"])


def test_a_host_named_twice_is_counted_once(certificate: Path, key: PrivateKey) -> None:
    """An older statement listing one host twice never reads "2 of 1 host(s): vm, vm"."""

    statement = json.loads(base64.b64decode(certify.read_envelope(certificate)["payload"]))
    statement["predicate"]["quorum"] = {"agreed": ["vm", "vm"], "of": 1}
    document = certify.envelope(statement, key)
    verified = certify.verify_envelope(document, [key.public_key()], 1)
    certify.check_hosts(verified, [key.public_key()], None)
    assert "the certifier states 1 of 1 host(s) agreed: vm (key none, unknown)" in verified.checks
    with pytest.raises(certify.CertificateError, match="by 0 distinct host key"):
        certify.check_hosts(verified, [key.public_key()], 1)
