"""Run attestations and the envelopes under them: strict payloads, signatures that cannot
hide each other, and a record that verifies only beside the run it was signed for."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from harness import untrusted
from harness.errors import HarnessError
from harness.runs import records
from harness.trust import attest, canonical, certify, dsse, keys
from tests.unit.test_certify import new_key, verification

IMAGE = "sha256:" + "ab" * 32


def signed_run(folder: Path, key: keys.PrivateKey, *, weights: bytes = b"\x01") -> dict[str, Any]:
    (folder / records.ARTIFACTS).mkdir(parents=True)
    (folder / records.ARTIFACTS / "weights.bin").write_bytes(weights)
    record = {
        "schema": records.SCHEMA,
        "run_id": folder.name,
        "status": "succeeded",
        "experiment": "demo",
        "seed": 0,
        "profile": "strict",
        "threads": 1,
        "host": "vm",
        "image": {"reference": "demo:cpu", "id": IMAGE, "variant": "cpu"},
        "metrics": {"loss": 0.25},
        "artifacts": records.artifacts(folder / records.ARTIFACTS),
    }
    records.write(folder, record)
    attest.sign(folder, record, key)
    return record


# -- strict payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), -float("inf"), "\ud800", {"\udfff": 1}]
)
def test_a_payload_parsers_disagree_on_is_never_signed(value: object) -> None:
    with pytest.raises(HarnessError, match="refusing to sign a statement that holds"):
        dsse.seal({"value": value}, Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    "text",
    ['{"v": NaN}', '{"v": Infinity}', '{"v": -Infinity}', '{"v": "\\ud800"}', '{"a":1,"a":2}'],
)
def test_a_signed_payload_parsers_disagree_on_is_refused(tmp_path: Path, text: str) -> None:
    """Validly signed, but JSON parsers would read it two ways: never acted on."""
    key = Ed25519PrivateKey.generate()
    payload = text.encode()
    document = {
        "payloadType": dsse.PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {
                "keyid": keys.key_id(key.public_key()),
                "sig": base64.b64encode(key.sign(dsse.pae(dsse.PAYLOAD_TYPE, payload))).decode(),
            }
        ],
    }
    with pytest.raises(certify.CertificateError, match=r"NaN|Infinity|surrogate|twice"):
        certify.verify_envelope(document, [key.public_key()], 1)
    with pytest.raises(untrusted.UntrustedInputError):
        canonical.loads(payload, what="payload")


def test_canonical_bytes_are_one_form() -> None:
    assert canonical.dumps({"b": [1, "é"], "a": None}) == b'{"a":null,"b":[1,"\\u00e9"]}'


# -- signatures never hide each other ----------------------------------------------------


def test_an_extra_bad_signature_naming_a_trusted_key_does_not_spoil_a_valid_one(
    tmp_path: Path,
) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = certify.envelope(certify.statement(verification(tmp_path)), key)
    forged = base64.b64encode(other.sign(b"something else")).decode()
    for position in (0, 1):
        tampered = json.loads(json.dumps(document))
        bad = {"keyid": keys.key_id(key.public_key()), "sig": forged}
        tampered["signatures"].insert(position, bad)
        verified = certify.verify_envelope(tampered, [key.public_key()], 1)
        assert verified.signers == [keys.key_id(key.public_key())]
    # Alone, the bad signature is named as the reason.
    document["signatures"] = [bad]
    with pytest.raises(certify.CertificateError, match="does not match the payload"):
        certify.verify_envelope(document, [key.public_key()], 1)


def test_co_signing_keeps_a_valid_signature_that_carries_the_signer_s_key_id(
    tmp_path: Path,
) -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = certify.envelope(certify.statement(verification(tmp_path)), first)
    # The first signer's signature names the second's key id: only a hint, and wrong.
    document["signatures"][0]["keyid"] = keys.key_id(second.public_key())
    cosigned = certify.add_signature(document, second)
    assert len(cosigned["signatures"]) == 2
    verified = certify.verify_envelope(cosigned, [first.public_key(), second.public_key()], 2)
    assert sorted(verified.signers) == sorted(keys.key_id(k.public_key()) for k in (first, second))
    # Signing again replaces only the co-signer's own earlier signature.
    again = certify.add_signature(cosigned, second)
    assert len(again["signatures"]) == 2
    assert certify.verify_envelope(again, [first.public_key(), second.public_key()], 2)


def test_one_key_signing_twice_counts_once(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    document = certify.envelope(certify.statement(verification(tmp_path)), key)
    document["signatures"].append(dict(document["signatures"][0], keyid="another hint"))
    with pytest.raises(certify.CertificateError, match="1 trusted signature"):
        certify.verify_envelope(document, [key.public_key()], 2)


# -- run attestations --------------------------------------------------------------------


def test_a_signed_run_verifies_and_names_its_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    folder = tmp_path / "run-1"
    signed_run(folder, key)
    signer = attest.verify(folder, records.read(folder), [key.public_key()])
    assert signer.keyid == keys.key_id(key.public_key())
    statement = json.loads(
        base64.b64decode(json.loads((folder / attest.ATTESTATION).read_text())["payload"])
    )
    assert statement["predicate"] == records.read(folder)
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == {
        "image:demo:cpu": "ab" * 32,
        "artifacts/weights.bin": records.read(folder)["artifacts"][0]["sha256"],
    }


def test_an_unsigned_run_is_unsigned(tmp_path: Path) -> None:
    folder = tmp_path / "run-1"
    signed_run(folder, Ed25519PrivateKey.generate())
    (folder / attest.ATTESTATION).unlink()
    assert attest.verify(folder, records.read(folder), []).unsigned


@pytest.mark.parametrize("change", ["host", "status", "artifact digest", "moved"])
def test_a_record_no_longer_the_signed_one_is_refused(tmp_path: Path, change: str) -> None:
    key = Ed25519PrivateKey.generate()
    folder = tmp_path / "run-1"
    record = signed_run(folder, key)
    if change == "host":
        record["host"] = "vm-2"  # one run counted again under another name
    elif change == "status":
        record["status"] = "failed"
    elif change == "artifact digest":
        record["artifacts"][0]["sha256"] = "00" * 32
    else:
        other = tmp_path / "run-2"
        signed_run(other, key, weights=b"\x02")
        shutil.copy(folder / attest.ATTESTATION, other / attest.ATTESTATION)
        folder, record = other, records.read(other)
    with pytest.raises(attest.AttestationError, match="another record"):
        attest.verify(folder, record, [key.public_key()])


def test_a_run_signed_by_a_key_not_trusted_here_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run-1"
    signed_run(folder, Ed25519PrivateKey.generate())
    with pytest.raises(attest.AttestationError, match="signed by no key trusted here"):
        attest.verify(folder, records.read(folder), [Ed25519PrivateKey.generate().public_key()])


def test_an_attestation_that_is_a_link_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    folder = tmp_path / "run-1"
    signed_run(folder, key)
    (folder / attest.ATTESTATION).rename(tmp_path / "elsewhere.json")
    (folder / attest.ATTESTATION).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(attest.AttestationError, match="symbolic link"):
        attest.verify(folder, records.read(folder), [key.public_key()])


def test_a_record_holding_nan_cannot_be_signed(tmp_path: Path) -> None:
    folder = tmp_path / "run-1"
    (folder / records.ARTIFACTS).mkdir(parents=True)
    record = {
        "run_id": "run-1",
        "status": "succeeded",
        "artifacts": [],
        "metrics": {"loss": float("nan")},
    }
    with pytest.raises(HarnessError, match="NaN"):
        attest.sign(folder, record, Ed25519PrivateKey.generate())
    assert not (folder / attest.ATTESTATION).exists()


@pytest.mark.parametrize("kind", keys.KEY_TYPES)
def test_securesystemslib_verifies_a_run_attestation_and_harness_one_it_signed(
    tmp_path: Path, kind: str
) -> None:
    key = new_key(kind)
    folder = tmp_path / "run-1"
    record = signed_run(folder, key)
    envelope = Envelope.from_dict(json.loads((folder / attest.ATTESTATION).read_text()))
    accepted = envelope.verify([SSlibKey.from_crypto(key.public_key())], threshold=1)
    assert list(accepted) == [keys.key_id(key.public_key())]
    # The other way: securesystemslib signs the statement in its own layout.
    theirs = Envelope(
        json.dumps(attest.statement(record), indent=1).encode(), dsse.PAYLOAD_TYPE, {}
    )
    theirs.sign(CryptoSigner(key))
    (folder / attest.ATTESTATION).write_text(json.dumps(theirs.to_dict()))
    assert attest.verify(folder, record, [key.public_key()]).keyid == keys.key_id(key.public_key())


def test_a_run_on_another_engine_is_signed_with_that_engine_s_key(tmp_path: Path) -> None:
    machine, engine_b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    attest.use(machine, {"b": engine_b})
    trusted = [machine.public_key(), engine_b.public_key()]
    for host, key in (("a", machine), ("b", engine_b)):
        folder = tmp_path / f"run-{host}"
        record = signed_run(folder, Ed25519PrivateKey.generate())
        (folder / attest.ATTESTATION).unlink()
        record["host"] = host
        records.write(folder, record)
        attest.sign_finished(folder, record)
        assert attest.verify(folder, record, trusted).keyid == keys.key_id(key.public_key())
    # A run still under way is never signed: nothing about it is final.
    running = tmp_path / "run-running"
    record = signed_run(running, machine)
    (running / attest.ATTESTATION).unlink()
    attest.sign_finished(running, {**record, "status": "running"})
    assert not (running / attest.ATTESTATION).exists()
