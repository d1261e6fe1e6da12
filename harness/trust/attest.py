"""Run attestations: each host signs its own runs, and a collector checks who signed.

A run record is the host's own account of a run, and a name in it ("host": "vm") is
whatever the record says. What makes it evidence is a signature by a key its host holds:
when a run finishes on a host with a key (``--sign-key``, ``$HARNESS_HOST_KEY``, or the
user's default key: see :func:`harness.trust.keys.host_key`), an in-toto Statement is
written beside its record (``attestation.intoto.json``), in a DSSE envelope signed by that
key. Its subjects are every artifact (sha256) and what pinned the software (the image's
ID, or the host executor's Python environment digest); its predicate is the record itself.

Whoever collects or certifies checks the attestation against the keys *they* trust: the
predicate must be exactly the record beside it and the subjects exactly its artifacts and
image, so a copied, renamed or edited run no longer verifies. Hosts are then counted by
distinct signing keys, never by the names records give themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import atomic, untrusted
from harness.errors import HarnessError
from harness.trust import canonical, dsse, keys

ATTESTATION = "attestation.intoto.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://harness.dev/run-record/v1"
# A record with thousands of artifacts, base64-encoded, signed a few times.
ATTESTATION_LIMIT = 32 << 20


class AttestationError(HarnessError):
    """A run's attestation is present but does not vouch for the run beside it."""

    default_hint = "download the run's folder again; do not count this run"


@dataclass(frozen=True)
class Signer:
    """Who vouches for a run: the key id of a trusted key, or nobody (``unsigned``)."""

    keyid: str | None

    @property
    def unsigned(self) -> bool:
        return self.keyid is None


UNSIGNED = Signer(None)


@dataclass
class _HostKey:
    key: keys.PrivateKey | None = None
    # Host name -> the key of that engine's runs (harness run --hosts), see keys.engine_keys.
    engines: dict[str, keys.PrivateKey] = field(default_factory=dict)


# This process's host key, set once by the command that starts runs (see :func:`use`);
# runs on other threads of the same command read it, so it is process-wide.
_host = _HostKey()


def use(key: keys.PrivateKey | None, engines: Mapping[str, keys.PrivateKey] | None = None) -> None:
    """Sign every run this process finishes with ``key`` (None: leave them unsigned), or,
    for a run on another engine named in ``engines``, with that engine's key."""
    _host.key = key
    _host.engines = dict(engines or {})


def statement(record: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement a host signs for a finished run."""
    subjects: list[dict[str, Any]] = [_pinned_subject(record)]
    for artifact in record.get("artifacts") or ():
        subjects.append(
            {
                "name": f"artifacts/{artifact['path']}",
                "digest": {"sha256": str(artifact["sha256"])},
            }
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(record),
    }


def _pinned_subject(record: Mapping[str, Any]) -> dict[str, Any]:
    image = record.get("image")
    if isinstance(image, Mapping) and image.get("id"):
        return {
            "name": f"image:{image.get('reference')}",
            "digest": {"sha256": str(image["id"]).removeprefix("sha256:")},
        }
    environment = record.get("python_environment") or {}
    return {
        "name": "python-environment",
        "digest": {"sha256": str(environment.get("digest", "")).removeprefix("sha256:")},
    }


def sign_finished(folder: Path, record: Mapping[str, Any]) -> None:
    """Sign a run that just finished, when this process has a host key; a run still
    ``running`` is never signed (nothing about it is final)."""
    # A SLURM run's host is the node SLURM names, but a key held here for that name would
    # only prove that this machine submitted the job: such runs are this machine's to sign
    # (the node signs with a key of its own, see harness.trust.node_attestation).
    engines = {} if record.get("executor") == "slurm" else _host.engines
    key = engines.get(str(record.get("host")), _host.key)
    if key is None or record.get("status") == "running":
        return
    sign(folder, record, key)


def sign(folder: Path, record: Mapping[str, Any], key: keys.PrivateKey) -> Path:
    """Write the run's attestation beside its record, signed by ``key``."""
    path = folder / ATTESTATION
    envelope = dsse.seal(statement(record), key)
    atomic.write_text(path, json.dumps(envelope, indent=2, sort_keys=True) + "\n")
    return path


def verify(folder: Path, record: Mapping[str, Any], trusted: Sequence[keys.PublicKey]) -> Signer:
    """Who vouches for the run in ``folder`` whose record is ``record``.

    No attestation: :data:`UNSIGNED`. One that a trusted key signed and that states exactly
    this record, its artifacts and its image: that key. Anything else (signed by no key
    trusted here, another record, edited subjects) is an :class:`AttestationError`.
    """
    path = folder / ATTESTATION
    if not os.path.lexists(path):
        return UNSIGNED
    what = f"the attestation of run {record.get('run_id')}"
    try:
        document = dsse.read_file(path, limit=ATTESTATION_LIMIT, what=what)
    except untrusted.UntrustedInputError as error:
        raise AttestationError(error.message) from None
    try:
        opened = dsse.open_envelope(document, trusted, 1)
    except dsse.EnvelopeError as error:
        named = _key_ids(document)
        raise AttestationError(
            f"{what} is signed by no key trusted here ({error.message}; it names key "
            f"{named or 'none'})",
            "trust that host's public key (--key PUB) if it is one of yours, or leave the run out",
        ) from None
    try:
        stated = canonical.loads(opened.payload, what=f"the payload of {what}")
    except untrusted.UntrustedInputError as error:
        raise AttestationError(error.message) from None
    if not isinstance(stated, dict) or stated.get("predicateType") != PREDICATE_TYPE:
        raise AttestationError(f"{what} is not a harness run attestation")
    expected = statement(record)
    if stated.get("predicate") != expected["predicate"]:
        raise AttestationError(
            f"{what} was signed for another record than the one beside it (edited, renamed "
            "or copied from another run)"
        )
    if stated.get("subject") != expected["subject"]:
        raise AttestationError(f"{what} names other artifacts or another image than its record")
    return Signer(opened.signers[0])


def _key_ids(document: Mapping[str, Any]) -> str:
    signatures = document.get("signatures")
    if not isinstance(signatures, list):
        return ""
    named = [str(s.get("keyid"))[:16] for s in signatures if isinstance(s, dict) and s.get("keyid")]
    return ", ".join(named[:3])
