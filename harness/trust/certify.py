"""Reproducibility certificates: in-toto Statements in DSSE envelopes, signed with harness keys.

The statement's subjects are the image (by the sha256 of its ID, the digest of its
configuration; and, when it was pushed, by its registry manifest digest, the subject
`cosign verify-attestation` matches) and every artifact that was reproduced; its
predicate is harness's own versioned schema: experiment, code commit, constraints and
lock hashes, seed, profile, observed switches, the hosts that reproduced it, the runs
compared and the verdict per artifact, and each counted host's own signed attestation of
its runs. `harness certify` builds it only from the document :mod:`harness.trust.evidence`
rebuilds out of run records it checked, never from a saved summary as it stands; hosts
are counted by the keys that signed their runs. Signatures cover DSSE's pre-authentication
encoding of the payload, so neither the payload nor its type can be changed without
breaking them; several signers may sign the same payload, and a verifier asks for a
threshold of trusted ones.

Verification follows DSSE, not harness's own byte layout: any conformant envelope (other
field order or spacing, URL-safe base64, unknown fields, another tool's key ids) verifies
when enough of its signatures verify under trusted keys, since the signatures cover the
payload and its type and nothing else. Key ids are unauthenticated hints: each signature
is checked against the trusted keys, and each key counts once. Everything read from the
file is bounded (size, nesting, duplicate keys refused), and the signed statement is
checked for the shape the gate relies on before any of it is used.

References: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md and
https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import atomic, untrusted
from harness.config import STATE_FOLDER
from harness.digests import sha256_file
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError
from harness.runs import records
from harness.trust import canonical as trust_canonical
from harness.trust import dsse, evidence, keys

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://harness.dev/reproducibility/v1"
PREDICATE_SCHEMA = "harness.certificate/v1"
PAYLOAD_TYPE = dsse.PAYLOAD_TYPE
CERTIFICATES = STATE_FOLDER / "certificates"
# A certificate names every artifact; even tens of thousands of them fit well within this.
CERTIFICATE_LIMIT = 32 << 20
# Registry references that name an image's manifest: REPOSITORY@sha256:HEX.
MANIFEST_REFERENCE = re.compile(r"(?P<repository>[^\s@]+)@sha256:(?P<digest>[0-9a-f]{64})")


class CertificateError(dsse.EnvelopeError):
    """The certificate does not verify: an answer ("no"), not trouble."""

    exit_code = EXIT_DIFFERS
    default_hint = "do not deploy this image on the strength of this certificate"


# -- statement and envelope ------------------------------------------------------------


def statement(verification: Mapping[str, Any], manifests: Sequence[str] = ()) -> dict[str, Any]:
    """The in-toto Statement for a successful verification document (the one
    :func:`harness.trust.evidence.gather` rebuilt from checked runs).

    ``manifests`` are the image's registry references (``REPOSITORY@sha256:HEX``): each
    becomes a subject too, the one a registry's attestation tools match an image by.
    """
    require_reproducible(verification)
    image = verification.get("image")
    environment = verification.get("python_environment")
    if image is None:
        subjects = [_environment_subject(environment, manifests)]
    else:
        subjects = [_image_subject(image), *_manifest_subjects(image, manifests)]
    for experiment in verification["experiments"]:
        for artifact in experiment["artifacts"]:
            subjects.append(
                {
                    "name": f"{experiment['name']}/{artifact['path']}",
                    "digest": {"sha256": artifact["sha256"]},
                    "annotations": {"kind": "artifact", "size": artifact["size"]},
                }
            )
    predicate = {
        "schema": PREDICATE_SCHEMA,
        "harness_version": harness.__version__,
        "certified_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verification": verification["id"],
        # container: an image isolated every run. host: no image did; the runs name the
        # Python environment they ran in, and never share a quorum with image runs.
        "executor": "container" if image is not None else "host",
        "image": None
        if image is None
        else {
            "reference": image["reference"],
            "id": image["id"],
            "variant": image["variant"],
            # The commit the runs were made from (images no longer carry one: a commit
            # that changes only code rebuilds nothing).
            "revision": (verification.get("source") or {}).get("commit")
            or image.get("labels", {}).get("org.opencontainers.image.revision"),
            "base_digest": image.get("labels", {}).get("org.opencontainers.image.base.digest"),
        },
        "python_environment": environment,
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
        # The hosts that counted, by what they computed on: bit for bit within a class.
        "device_classes": device_classes(verification["hosts"]),
        # What vouches for the runs: each counted host's signed attestation of one of its
        # runs, which a verifier checks again with keys of its own choosing.
        "evidence": verification.get("evidence"),
        "experiments": [
            {
                "name": e["name"],
                "entry": e["entry"],
                "command": e["command"],
                "parameters": e["parameters"],
                "observed": e["observed"],
                # What varied, and why the others did not (see evidence.verified_document).
                "variations": e.get("variations"),
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


def require_reproducible(verification: Mapping[str, Any]) -> None:
    """Refuse a verification that itself says the result did not reproduce."""
    if verification.get("verdict") != "reproducible":
        failing = [
            str(e.get("name"))
            for e in verification.get("experiments", [])
            if isinstance(e, dict) and not e.get("reproducible")
        ]
        raise CertificateError(
            f"cannot certify: not reproducible: {', '.join(failing) or 'no experiment verified'}",
            "fix the experiments `harness verify` named, then verify again",
        )


def _image_subject(image: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": image["reference"],
        "digest": {"sha256": str(image["id"]).removeprefix("sha256:")},
        "annotations": {"kind": "image", "variant": image["variant"]},
    }


def _manifest_subjects(image: Mapping[str, Any], manifests: Sequence[str]) -> list[dict[str, Any]]:
    subjects = []
    for reference in manifests:
        match = MANIFEST_REFERENCE.fullmatch(reference)
        if match is None:
            raise ConfigError(
                f"{reference!r} is not a registry reference by digest",
                "give REPOSITORY@sha256:<64 hex>, as `docker image inspect --format "
                "'{{index .RepoDigests 0}}' IMAGE` prints it",
            )
        subjects.append(
            {
                "name": match["repository"],
                "digest": {"sha256": match["digest"]},
                "annotations": {"kind": "image-manifest", "image": image["id"]},
            }
        )
    return subjects


def _environment_subject(environment: object, manifests: Sequence[str]) -> dict[str, Any]:
    """The subject of a result of the host executor: the Python environment's digest."""
    if not isinstance(environment, Mapping) or not environment.get("digest"):
        raise CertificateError(
            "cannot certify: the verification names neither an image nor a Python environment",
            "verify again with this version of harness",
        )
    if manifests:
        raise ConfigError(
            "--image-digest: these runs used the host executor, so there is no image",
            "leave out --image-digest",
        )
    return {
        "name": "python-environment",
        "digest": {"sha256": str(environment["digest"]).removeprefix("sha256:")},
        "annotations": {
            "kind": "python-environment",
            "python": environment.get("python"),
            "isolation": "none",
        },
    }


def device_classes(hosts: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The hosts that counted towards the quorum, grouped by the class of device they ran
    on (``cpu`` or a GPU class): a certificate says which GPUs its result holds on."""
    grouped: dict[str, list[str]] = {}
    for host in hosts:
        if host.get("status") in ("control", "agreed"):
            grouped.setdefault(str(host.get("device_class") or "unknown"), []).append(
                str(host.get("name"))
            )
    return grouped


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature actually covers."""
    return dsse.pae(payload_type, payload)


def canonical(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def envelope(statement_: Mapping[str, Any], key: keys.PrivateKey) -> dict[str, Any]:
    return dsse.seal(statement_, key)


def add_signature(document: Mapping[str, Any], key: keys.PrivateKey) -> dict[str, Any]:
    """The envelope with one more signature over the same payload (a second runner's).

    The caller has verified ``document`` (:func:`verify_envelope` with
    ``every_signature``): this only adds (see :func:`dsse.add_signature`).
    """
    with _as_certificate_error():
        return dsse.add_signature(document, key)


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
        """The certified image: a deploy image's certificate certifies the deploy image
        (the one a deployer has in hand), which it lists before the image it is built on."""
        for kind in ("deploy-image", "image"):
            for subject in self.statement["subject"]:
                if subject["annotations"].get("kind") == kind:
                    return "sha256:" + str(subject["digest"]["sha256"])
        environment = self.environment_digest
        if environment is not None:
            raise CertificateError(
                "the certificate is for runs of the host executor, which no image isolated "
                f"(Python environment {environment[:19]})",
                "check the environment instead: its digest is in the record of each run",
            )
        raise CertificateError("the statement names no image")

    @property
    def environment_digest(self) -> str | None:
        """The Python environment's digest when the result came from the host executor."""
        for subject in self.statement["subject"]:
            if subject["annotations"].get("kind") == "python-environment":
                return "sha256:" + str(subject["digest"]["sha256"])
        return None

    @property
    def pinned_by(self) -> str:
        """What pinned the certified runs' software, as a line to print."""
        environment = self.environment_digest
        if environment is not None:
            return f"host environment {environment} (no image isolated the runs)"
        return f"image {self.image_id}"


def read_envelope(path: Path) -> dict[str, Any]:
    """The envelope in ``path``, read within bounds; a missing or unreadable file is
    trouble, a file that is not an envelope is a certificate that does not verify."""
    try:
        raw = untrusted.read_bytes(path, limit=CERTIFICATE_LIMIT, what="the certificate")
    except FileNotFoundError:
        raise HarnessError(f"the certificate {path} does not exist", "check the path") from None
    except untrusted.UntrustedInputError as error:
        raise HarnessError(error.message, "give the certificate file harness wrote") from None
    try:
        document = untrusted.parse_json(raw, what=f"the certificate {path}")
    except untrusted.UntrustedInputError as error:
        raise CertificateError(f"{error.message}: the certificate is corrupt") from None
    if not isinstance(document, dict):
        raise CertificateError(f"{path} is not a DSSE envelope")
    return document


def verify_envelope(
    document: Mapping[str, Any],
    trusted: Sequence[keys.PublicKey],
    threshold: int,
    *,
    every_signature: bool = False,
) -> Verified:
    """Check the envelope's signatures against ``trusted`` keys, then the statement.

    At least ``threshold`` distinct trusted keys must have signed; a signature that does
    not verify neither counts nor spoils the others, except with ``every_signature`` (for
    co-signing, which vouches for the whole envelope), where it is refused.
    """
    with _as_certificate_error():
        opened = dsse.open_envelope(document, trusted, threshold, every_signature=every_signature)
    return Verified(
        _statement_of(opened.payload),
        opened.signers,
        [f"{len(opened.signers)} of {threshold} required signature(s) valid"],
    )


@contextlib.contextmanager
def _as_certificate_error() -> Iterator[None]:
    try:
        yield
    except dsse.EnvelopeError as error:
        raise CertificateError(error.message, error.hint) from None


def _statement_of(payload: bytes) -> dict[str, Any]:
    """The signed statement, with the shape every later check relies on verified first."""
    try:
        statement_ = trust_canonical.loads(payload, what="the signed payload")
    except untrusted.UntrustedInputError as error:
        raise CertificateError(error.message) from None
    if not isinstance(statement_, dict) or statement_.get("_type") != STATEMENT_TYPE:
        raise CertificateError("the payload is not an in-toto Statement v1")
    if statement_.get("predicateType") != PREDICATE_TYPE:
        raise CertificateError(
            f"predicate type {statement_.get('predicateType')!r} is not harness's"
        )
    subjects = statement_.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise CertificateError("the statement names no subject")
    for subject in subjects:
        if not (
            isinstance(subject, dict)
            and isinstance(subject.get("digest"), dict)
            and isinstance(subject["digest"].get("sha256"), str)
            and isinstance(subject.setdefault("annotations", {}), dict)
        ):
            raise CertificateError("a subject of the statement has no sha256 digest")
    _check_predicate(statement_.get("predicate"))
    return statement_


def _check_predicate(predicate: object) -> None:
    """The predicate fields the gate reads: experiments, their runs and artifacts."""
    experiments = predicate.get("experiments") if isinstance(predicate, dict) else None
    if not isinstance(experiments, list):
        raise CertificateError("the statement's predicate lists no experiments")
    for experiment in experiments:
        runs = experiment.get("runs") if isinstance(experiment, dict) else None
        artifacts = experiment.get("artifacts") if isinstance(experiment, dict) else None
        if not (
            isinstance(runs, list)
            and all(isinstance(r, str) and records.RUN_ID.fullmatch(r) for r in runs)
            and isinstance(artifacts, list)
            and all(
                isinstance(a, dict)
                and records.safe_relative(a.get("path")) is not None
                and isinstance(a.get("sha256"), str)
                for a in artifacts
            )
        ):
            raise CertificateError(
                "the statement's experiments name runs or artifacts outside their folders"
            )


def check_image(verified: Verified, image_id: str) -> None:
    if image_id != verified.image_id:
        raise CertificateError(
            f"the certificate is for image {verified.image_id[:19]}, not {image_id[:19]}",
            "use the image the certificate names, or certify this one",
        )
    verified.checks.append(f"image {image_id[:19]} is the certified one")


def check_hosts(verified: Verified, trusted: Sequence[keys.PublicKey], minimum: int | None) -> None:
    """Count the hosts behind the result as distinct keys, never names: the host
    attestations inside the certificate that keys trusted here verify. With ``minimum``,
    fewer is a refusal."""
    predicate = verified.statement["predicate"]
    quorum = predicate.get("quorum") or {}
    agreed = list(dict.fromkeys(str(name) for name in quorum.get("agreed") or ()))
    unsigned = [str(name) for name in quorum.get("unsigned") or ()]
    with _as_certificate_error():
        _, line = evidence.check_signed_hosts(verified.statement, trusted, minimum)
    verified.checks.append(line)
    hosts = {str(h.get("name")): h for h in predicate.get("hosts") or () if isinstance(h, dict)}
    shown = [
        f"{name} (key {str(hosts.get(name, {}).get('keyid') or '')[:12] or 'none'}, "
        f"{hosts.get(name, {}).get('device_class') or 'unknown'}"
        f"{', unsigned' if name in unsigned else ''})"
        for name in agreed
    ]
    verified.checks.append(
        f"the certifier states {len(agreed)} of {quorum.get('of', len(agreed))} host(s) "
        f"agreed: {', '.join(shown) or 'none named'}"
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
                if (
                    path.is_symlink()
                    or not path.is_file()
                    or sha256_file(path) != artifact["sha256"]
                ):
                    raise CertificateError(
                        f"artifact {artifact['path']} of run {run_id} no longer has the certified "
                        f"sha256 {artifact['sha256'][:16]}",
                        "the artifact was changed after certification; do not trust it",
                    )
                checked += 1
    verified.checks.append(f"{checked} local artifact file(s) match the certificate")


def certificate_path(project_root: Path, image_id: str) -> Path:
    """Where `harness certify --tag` keeps the certificate of an image."""
    return project_root / CERTIFICATES / f"{image_id.removeprefix('sha256:')}.intoto.json"


@dataclass(frozen=True)
class Settings:
    """[tool.harness.certify]: the keys the project accepts (a filter on the keys the
    verifier trusts, never an addition: see :mod:`harness.trust.keys`), how many must sign (at
    least; a command line may ask for more), and whether `harness run` refuses an image
    without a certificate that verifies."""

    trusted_keys: tuple[Path, ...] = ()
    threshold: int = 1
    require: bool = False


def settings(table: Mapping[str, Any], project_root: Path) -> Settings:
    """The settings of ``[tool.harness.certify]``, whose shape the schema checked."""
    keys = table.get("trusted-keys", [])
    return Settings(
        tuple(project_root / key for key in keys),
        table.get("threshold", 1),
        table.get("require", False),
    )
