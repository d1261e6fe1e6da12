"""Reproducibility certificates: in-toto Statements in DSSE envelopes, signed with ed25519.

The statement's subjects are the image (by the sha256 of its ID, the digest of its
configuration) and every artifact that was reproduced; its predicate is harness's own
versioned schema: experiment, code commit, constraints and lock hashes, seed, profile,
observed switches, the hosts that reproduced it, the runs compared and the verdict per
artifact. Signatures cover DSSE's pre-authentication encoding of the payload, so neither
the payload nor its type can be changed without breaking them; several signers may sign
the same payload, and a verifier asks for a threshold of trusted ones.

The certificate file is written in one canonical form and verification insists on it,
so that any change to the file, even one that leaves the JSON meaning intact, is refused.

References: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md and
https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import harness
from harness import atomic, records
from harness.digests import sha256_file
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://harness.dev/reproducibility/v1"
PREDICATE_SCHEMA = "harness.certificate/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
CERTIFICATES = Path(".harness") / "certificates"
KEYS_ENV = "HARNESS_KEYS_DIR"


class CertificateError(HarnessError):
    """The certificate does not verify: an answer ("no"), not trouble."""

    exit_code = EXIT_DIFFERS
    default_hint = "do not deploy this image on the strength of this certificate"


class KeyFileError(HarnessError):
    """A key file is missing, unreadable or of the wrong kind."""

    default_hint = "create one with `harness keys generate`"


# -- keys ------------------------------------------------------------------------------


def keys_dir() -> Path:
    """Where keys live by default: never inside a project, so never inside a run's mounts."""
    configured = os.environ.get(KEYS_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "harness" / "keys"


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 of the raw public key: the DSSE keyid that names who signed."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    keyid: str


def generate_keys(folder: Path, name: str) -> KeyPair:
    """Write NAME.key (mode 0600, PKCS#8 PEM) and NAME.pub (SubjectPublicKeyInfo PEM)."""
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise HarnessError(
                f"{path} already exists", "choose another --name, or remove the old pair"
            )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    handle = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(private_pem)
    atomic.write_bytes(public_path, public_pem)
    return KeyPair(private_path, public_path, key_id(key.public_key()))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise KeyFileError(f"cannot read the private key {path}: {error.strerror}") from None
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an ed25519 key", "harness signs with ed25519 keys only")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise KeyFileError(f"cannot read the public key {path}: {error.strerror}") from None
    except ValueError:
        raise KeyFileError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(
            f"{path} is not an ed25519 public key", "use a key from `harness keys generate`"
        )
    return key


# -- statement and envelope ------------------------------------------------------------


def statement(verification: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement for a successful verification document."""
    if verification.get("verdict") != "reproducible":
        failing = [
            e["name"] for e in verification.get("experiments", []) if not e.get("reproducible")
        ]
        raise CertificateError(
            f"cannot certify: not reproducible: {', '.join(failing) or 'no experiment verified'}",
            "fix the experiments `harness verify` named, then verify again",
        )
    image = verification["image"]
    subjects: list[dict[str, Any]] = [
        {
            "name": image["reference"],
            "digest": {"sha256": image["id"].removeprefix("sha256:")},
            "annotations": {"kind": "image", "variant": image["variant"]},
        }
    ]
    for experiment in verification["experiments"]:
        for artifact in experiment["artifacts"]:
            subjects.append(
                {
                    "name": f"{experiment['name']}/{artifact['path']}",
                    "digest": {"sha256": artifact["sha256"]},
                    "annotations": {"kind": "artifact", "size": artifact["size"]},
                }
            )
    labels = image.get("labels", {})
    predicate = {
        "schema": PREDICATE_SCHEMA,
        "harness_version": harness.__version__,
        "certified_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verification": verification["id"],
        "image": {
            "reference": image["reference"],
            "id": image["id"],
            "variant": image["variant"],
            "revision": labels.get("org.opencontainers.image.revision"),
            "base_digest": labels.get("org.opencontainers.image.base.digest"),
        },
        "source": verification.get("source"),
        "constraints_sha256": verification.get("constraints_sha256"),
        "lock_sha256": verification.get("lock_sha256"),
        "seed": verification["seed"],
        "profile": verification["profile"],
        "threads": verification["threads"],
        "variations": verification["variations"],
        "hosts": verification["hosts"],
        # Which hosts reproduced the control's artifacts, of how many were asked.
        "quorum": verification.get("quorum"),
        "experiments": [
            {
                "name": e["name"],
                "entry": e["entry"],
                "command": e["command"],
                "parameters": e["parameters"],
                "observed": e["observed"],
                "runs": [*e["control_runs"], *(c["run_id"] for c in e["checks"])],
                "control_runs": e["control_runs"],
                "artifacts": [
                    {k: a[k] for k in ("path", "sha256", "size", "kind", "policy", "verdict")}
                    for a in e["artifacts"]
                ],
                "verdict": "reproducible",
            }
            for e in verification["experiments"]
        ],
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def canonical(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def envelope(statement_: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    payload = json.dumps(statement_, sort_keys=True, separators=(",", ":")).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}
        ],
    }


def add_signature(document: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The envelope with one more signature over the same payload (a second runner's)."""
    payload = _decode(document["payload"], "payload")
    keyid = key_id(key.public_key())
    signatures = [s for s in document["signatures"] if s.get("keyid") != keyid]
    signatures.append(
        {
            "keyid": keyid,
            "sig": base64.b64encode(key.sign(pae(document["payloadType"], payload))).decode(),
        }
    )
    return {**document, "signatures": sorted(signatures, key=lambda s: str(s["keyid"]))}


def write(path: Path, document: Mapping[str, Any]) -> None:
    atomic.write_bytes(path, canonical(document))


# -- verification ----------------------------------------------------------------------


@dataclass
class Verified:
    statement: dict[str, Any]
    signers: list[str]
    checks: list[str] = field(default_factory=list)

    @property
    def image_id(self) -> str:
        for subject in self.statement["subject"]:
            if (subject.get("annotations") or {}).get("kind") == "image":
                return "sha256:" + str(subject["digest"]["sha256"])
        raise CertificateError("the statement names no image")


def read_envelope(path: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise HarnessError(
            f"cannot read the certificate {path}: {error.strerror}", "check the path"
        ) from None
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CertificateError(f"{path} is not valid JSON: the certificate is corrupt") from None
    if not isinstance(document, dict):
        raise CertificateError(f"{path} is not a DSSE envelope")
    return raw, document


def verify_envelope(
    raw: bytes,
    document: Mapping[str, Any],
    trusted: Sequence[Ed25519PublicKey],
    threshold: int,
) -> Verified:
    """Check the envelope's form, its signatures against ``trusted`` keys, and the statement."""
    payload, signatures = _checked_form(raw, document)
    by_id = {key_id(key): key for key in trusted}
    signers: list[str] = []
    for signature in signatures:
        key = by_id.get(str(signature["keyid"]))
        if key is None:
            continue  # signed by a key this verifier does not trust: it does not count
        try:
            key.verify(_decode(signature["sig"], "signature"), pae(PAYLOAD_TYPE, payload))
        except InvalidSignature:
            raise CertificateError(
                f"the signature of key {str(signature['keyid'])[:16]} does not match the payload"
            ) from None
        if signature["keyid"] not in signers:
            signers.append(str(signature["keyid"]))
    if len(signers) < threshold:
        raise CertificateError(
            f"{len(signers)} trusted signature(s), {threshold} required",
            "collect signatures from more runners (`harness certificate sign`) or pass their keys",
        )
    try:
        statement_ = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CertificateError("the signed payload is not JSON") from None
    if not isinstance(statement_, dict) or statement_.get("_type") != STATEMENT_TYPE:
        raise CertificateError("the payload is not an in-toto Statement v1")
    if statement_.get("predicateType") != PREDICATE_TYPE:
        raise CertificateError(
            f"predicate type {statement_.get('predicateType')!r} is not harness's"
        )
    subjects = statement_.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise CertificateError("the statement names no subject")
    return Verified(
        statement_, signers, [f"{len(signers)} of {threshold} required signature(s) valid"]
    )


def _checked_form(raw: bytes, document: Mapping[str, Any]) -> tuple[bytes, list[dict[str, Any]]]:
    """The payload and signatures of an envelope whose every byte is as harness wrote it."""
    if raw != canonical(document):
        raise CertificateError("the certificate file is not in its canonical form: it was edited")
    if set(document) != {"payloadType", "payload", "signatures"}:
        raise CertificateError(f"not a DSSE envelope (fields: {', '.join(sorted(document))})")
    if document["payloadType"] != PAYLOAD_TYPE:
        raise CertificateError(f"payload type {document['payloadType']!r} is not {PAYLOAD_TYPE!r}")
    signatures = document["signatures"]
    if not isinstance(signatures, list) or not all(
        isinstance(s, dict) and set(s) == {"keyid", "sig"} for s in signatures
    ):
        raise CertificateError("the signatures are malformed")
    return _decode(document["payload"], "payload"), signatures


def check_image(verified: Verified, image_id: str) -> None:
    if image_id != verified.image_id:
        raise CertificateError(
            f"the certificate is for image {verified.image_id[:19]}, not {image_id[:19]}",
            "use the image the certificate names, or certify this one",
        )
    verified.checks.append(f"image {image_id[:19]} is the certified one")


def check_hosts(verified: Verified, minimum: int) -> None:
    """The certified result must have been reproduced on at least ``minimum`` hosts."""
    quorum = verified.statement["predicate"].get("quorum") or {}
    agreed = [str(name) for name in quorum.get("agreed") or ()]
    total = quorum.get("of", len(agreed))
    if len(agreed) < minimum:
        raise CertificateError(
            f"the result was reproduced on {len(agreed)} of {total} host(s), {minimum} required",
            "verify on more hosts (`harness verify --hosts ...`) and certify again",
        )
    verified.checks.append(
        f"reproduced on {len(agreed)} of {total} host(s): {', '.join(agreed) or 'none named'}"
    )


def check_artifacts(verified: Verified, project_root: Path) -> None:
    """Every artifact of a certified run that is here must still have the certified bytes."""
    checked = 0
    for experiment in verified.statement["predicate"]["experiments"]:
        for run_id in experiment["runs"]:
            artifacts = records.runs_root(project_root) / run_id / records.ARTIFACTS
            if not artifacts.is_dir():
                continue
            for artifact in experiment["artifacts"]:
                path = artifacts / artifact["path"]
                if not path.is_file() or sha256_file(path) != artifact["sha256"]:
                    raise CertificateError(
                        f"artifact {artifact['path']} of run {run_id} no longer has the certified "
                        f"sha256 {artifact['sha256'][:16]}",
                        "the artifact was changed after certification; do not trust it",
                    )
                checked += 1
    verified.checks.append(f"{checked} local artifact file(s) match the certificate")


def _decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise CertificateError(f"the {what} is not a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise CertificateError(f"the {what} is not valid base64") from None
    # Non-canonical base64 (stray bits in the last character) decodes to the same bytes:
    # refuse it, so that no byte of the certificate can change unnoticed.
    if base64.b64encode(data).decode() != text:
        raise CertificateError(f"the {what} is not in canonical base64")
    return data


def certificate_path(project_root: Path, image_id: str) -> Path:
    """Where `harness certify --tag` keeps the certificate of an image."""
    return project_root / CERTIFICATES / f"{image_id.removeprefix('sha256:')}.intoto.json"


@dataclass(frozen=True)
class Settings:
    """[tool.harness.certify]: the keys a verifier trusts, how many must sign, and whether
    `harness run` refuses an image without a certificate that verifies."""

    trusted_keys: tuple[Path, ...] = ()
    threshold: int = 1
    require: bool = False


def settings(table: Mapping[str, Any], project_root: Path) -> Settings:
    where = "[tool.harness.certify]"
    unknown = set(table) - {"trusted-keys", "threshold", "require"}
    if unknown:
        raise ConfigError(
            f"unknown key {sorted(unknown)[0]!r} in {where}", "use trusted-keys, threshold, require"
        )
    keys = table.get("trusted-keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{where} trusted-keys must be a list of paths", 'write ["keys/ci.pub"]')
    threshold = table.get("threshold", 1)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise ConfigError(f"{where} threshold must be a whole number >= 1", "write threshold = 2")
    require = table.get("require", False)
    if not isinstance(require, bool):
        raise ConfigError(f"{where} require must be true or false", "write require = true")
    return Settings(tuple(project_root / k for k in keys), threshold, require)
