"""DSSE envelopes: sign a payload, add a co-signer, and count the trusted keys that signed.

Certificates and the attestations each host makes of its runs are both DSSE envelopes
around an in-toto Statement; this module is what they share. Signatures cover DSSE's
pre-authentication encoding of the payload and its type, so neither can change without
breaking them; key ids are unauthenticated hints, so each signature is checked against
every trusted key until one verifies it, and each key counts once.

Two rules keep a verifier from being talked out of a valid result: a signature that does
not verify (however it names itself) is skipped, never fatal, so that an extra bad one
cannot hide the good ones; and co-signing replaces only the co-signer's own earlier
signature, found by verifying it, never by its key id hint, which anyone can copy.

Reference: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import untrusted
from harness.errors import EXIT_DIFFERS, HarnessError
from harness.trust import canonical, keys

PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Far more co-signers than any quorum needs; each signature is tried against every
# trusted key, so the count bounds the work a hostile envelope can cause.
MAX_SIGNATURES = 64


class EnvelopeError(HarnessError):
    """The envelope does not verify: an answer ("no"), not trouble."""

    exit_code = EXIT_DIFFERS


def read_file(path: Path, *, limit: int, what: str) -> dict[str, Any]:
    """The envelope a run folder holds, read as untrusted input: bounded, never through a
    link, canonical JSON. :class:`untrusted.UntrustedInputError` when it cannot be read or
    is no envelope; each caller says what that means for the run."""
    raw = untrusted.read_bytes(path, limit=limit, what=what, follow_symlinks=False)
    document = canonical.loads(raw, what=what)
    if not isinstance(document, dict):
        raise untrusted.UntrustedInputError(what, "is not a DSSE envelope")
    return document


@dataclass(frozen=True)
class Opened:
    """What an envelope says once enough trusted keys vouched for it."""

    payload: bytes
    # Key ids of the distinct trusted keys whose signatures verified, in envelope order.
    signers: list[str]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def seal(document: Any, key: keys.PrivateKey) -> dict[str, Any]:
    """An envelope around the canonical bytes of ``document``, signed by ``key``.

    A document JSON parsers would read two ways is refused (see :mod:`canonical`).
    """
    try:
        payload = canonical.dumps(document)
    except canonical.NotCanonical as error:
        raise HarnessError(
            f"refusing to sign a statement that {error.reason}",
            "make every value finite and every string valid Unicode",
        ) from None
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [_signature(key, PAYLOAD_TYPE, payload)],
    }


def _signature(key: keys.PrivateKey, payload_type: str, payload: bytes) -> dict[str, str]:
    return {
        "keyid": keys.key_id(keys.public_of(key)),
        "sig": base64.b64encode(keys.sign(key, pae(payload_type, payload))).decode(),
    }


def add_signature(document: Mapping[str, Any], key: keys.PrivateKey) -> dict[str, Any]:
    """The envelope with ``key``'s signature over the same payload.

    Every other signature is kept as it is, whatever key id it gives; only one that
    verifies under ``key`` itself (its own earlier signature) is replaced. The caller has
    verified the envelope first (:func:`open_envelope` with ``every_signature``).
    """
    payload_type, payload, signatures = parts(document)
    message = pae(payload_type, payload)
    public = keys.public_of(key)
    kept = [
        {"keyid": str(s.get("keyid") or ""), "sig": base64.b64encode(raw).decode()}
        for s in signatures
        if not keys.signs(public, raw := decode(s["sig"], "signature"), message)
    ]
    kept.append(_signature(key, payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": sorted(kept, key=lambda s: (s["keyid"], s["sig"])),
    }


def open_envelope(
    document: Mapping[str, Any],
    trusted: Sequence[keys.PublicKey],
    threshold: int,
    *,
    every_signature: bool = False,
) -> Opened:
    """The payload, once at least ``threshold`` distinct trusted keys signed it.

    A signature no trusted key made is skipped: it neither counts nor hides the others.
    With ``every_signature`` (co-signing vouches for the whole envelope) it is refused.
    """
    payload_type, payload, signatures = parts(document)
    message = pae(payload_type, payload)
    by_id = {keys.key_id(key): key for key in trusted}
    signers: list[str] = []
    # Signatures naming a trusted key that do not verify: said when too few others did.
    mismatched: list[str] = []
    for number, signature in enumerate(signatures, start=1):
        hinted = str(signature.get("keyid") or "")
        signer = _signer(by_id, hinted, decode(signature["sig"], "signature"), message)
        if signer is None:
            if every_signature:
                raise EnvelopeError(
                    f"signature {number} (key id {hinted[:16] or 'none'}) is by no trusted key "
                    "or does not match the payload, so this signer cannot vouch for it",
                    "pass the public key of every runner that signed (--trusted-key PUB)",
                )
            if hinted in by_id:
                mismatched.append(hinted)
            continue
        if signer not in signers:
            signers.append(signer)
    if len(signers) < threshold:
        why = (
            f" (the signature naming trusted key {mismatched[0][:16]} does not match the payload)"
            if mismatched
            else ""
        )
        raise EnvelopeError(
            f"{len(signers)} trusted signature(s), {threshold} required{why}",
            "collect signatures from more runners (`harness certificate sign`) or pass their keys",
        )
    return Opened(payload, signers)


def _signer(
    by_id: Mapping[str, keys.PublicKey], hinted: str, signature: bytes, message: bytes
) -> str | None:
    """The trusted key that made ``signature``: the one its key id names first, then any."""
    order = ([hinted] if hinted in by_id else []) + [k for k in by_id if k != hinted]
    return next((k for k in order if keys.signs(by_id[k], signature, message)), None)


def parts(document: Mapping[str, Any]) -> tuple[str, bytes, list[dict[str, Any]]]:
    """payloadType, the payload's bytes and the signatures of a DSSE JSON envelope.

    Fields DSSE does not define are ignored, as the envelope specification asks.
    """
    payload_type = document.get("payloadType")
    if not isinstance(payload_type, str) or "payload" not in document:
        raise EnvelopeError("not a DSSE envelope (payloadType and payload are required)")
    if payload_type != PAYLOAD_TYPE:
        raise EnvelopeError(f"payload type {payload_type!r} is not {PAYLOAD_TYPE!r}")
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("sig"), str)
        and isinstance(s.get("keyid", ""), str | None)
        for s in signatures
    ):
        raise EnvelopeError("the signatures are malformed")
    if len(signatures) > MAX_SIGNATURES:
        raise EnvelopeError(
            f"the envelope carries {len(signatures)} signatures, more than {MAX_SIGNATURES}"
        )
    return payload_type, decode(document["payload"], "payload"), signatures


def decode(text: object, what: str) -> bytes:
    """Base64, standard or URL-safe, as DSSE allows; the bytes are what signatures cover."""
    if not isinstance(text, str):
        raise EnvelopeError(f"the {what} is not a base64 string")
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"the {what} is not valid base64") from None
