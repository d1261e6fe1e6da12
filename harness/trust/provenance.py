"""Build provenance, signed and checked: where it is kept, which key signs it, what a
verifier compares it with.

Every image harness builds gets its SLSA provenance (see :mod:`harness.images.provenance`)
in a DSSE envelope under ``.harness/provenance/IMAGE_ID.intoto.json``, beside the
certificates, and wherever ``harness build --provenance PATH`` asks. It is signed by the
key that signs this host's runs (``$HARNESS_HOST_KEY``, else ``harness.key`` in the keys
folder: the key ``certify`` signs with by default). A build on a machine without a key
still writes it, with no signature: a developer's laptop must be able to build, and an
envelope nobody signed is refused by every verifier, so it cannot pass for evidence. A
signed statement is never replaced by an unsigned one.

A verifier trusts the statement only when a key it trusts signed it, and then checks it
against the image in hand: the subject must be that image's ID (or its registry manifest
digest), and every input the image carries as a label (base digest, Dockerfile and
constraints sha256, harness's version, the build input) must be the one the statement
names. Where the project's constraints file is the one the image was built from, each
wheel's sha256 must be one that file pins for that package.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import atomic, untrusted
from harness.config import STATE_FOLDER
from harness.digests import sha256_file
from harness.errors import EXIT_DIFFERS, HarnessError
from harness.images import build as build_module
from harness.images import lock
from harness.images import provenance as statements
from harness.trust import canonical, dsse, keys

PROVENANCE = STATE_FOLDER / "provenance"
# A statement names every wheel: thousands fit well within this.
PROVENANCE_LIMIT = 8 << 20
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"


class ProvenanceError(dsse.EnvelopeError):
    """The provenance does not vouch for this image: an answer ("no"), not trouble."""

    exit_code = EXIT_DIFFERS
    default_hint = "do not deploy this image on the strength of this provenance"


def path_for(project_root: Path, image_id: str) -> Path:
    return project_root / PROVENANCE / f"{image_id.removeprefix('sha256:')}.intoto.json"


def seal(statement: Mapping[str, Any], key: keys.PrivateKey | None) -> dict[str, Any]:
    """The statement in a DSSE envelope, signed by ``key``; with no key, one with no
    signature (which no verifier accepts)."""
    if key is not None:
        return dsse.seal(statement, key)
    return {
        "payloadType": dsse.PAYLOAD_TYPE,
        "payload": base64.b64encode(canonical.dumps(statement)).decode(),
        "signatures": [],
    }


@dataclass(frozen=True)
class Recorded:
    path: Path
    signed: bool
    # False when a signed statement was already there and kept (no key signed this one).
    written: bool = True
    copies: tuple[Path, ...] = field(default=())


def record(
    project_root: Path,
    statement: Mapping[str, Any],
    key: keys.PrivateKey | None,
    *,
    also: Sequence[Path] = (),
) -> Recorded:
    """Write the image's provenance under ``.harness/provenance/`` (and to ``also``)."""
    image_id = "sha256:" + str(statement["subject"][0]["digest"]["sha256"])
    path = path_for(project_root, image_id)
    kept = key is None and _signed(path)
    if kept:
        text = path.read_text(encoding="utf-8")
    else:
        text = json.dumps(seal(statement, key), indent=2, sort_keys=True) + "\n"
        atomic.write_text(path, text)
    for copy in also:
        atomic.write_text(copy, text)
    return Recorded(path, signed=key is not None or kept, written=not kept, copies=tuple(also))


def _signed(path: Path) -> bool:
    """Whether ``path`` holds an envelope with at least one signature."""
    if not os.path.lexists(path):
        return False
    try:
        document = read(path)
    except HarnessError:
        return False
    return bool(document.get("signatures"))


def read(path: Path) -> dict[str, Any]:
    """The envelope in ``path``, read within bounds, never through a link."""
    what = f"the provenance {path}"
    try:
        raw = untrusted.read_bytes(path, limit=PROVENANCE_LIMIT, what=what, follow_symlinks=False)
    except FileNotFoundError:
        raise HarnessError(
            f"no provenance at {path}", "build the image with harness (`harness build`)"
        ) from None
    except untrusted.UntrustedInputError as error:
        raise HarnessError(error.message, "give the provenance file harness wrote") from None
    return parse(raw, what)


def parse(raw: bytes, what: str) -> dict[str, Any]:
    try:
        document = untrusted.parse_json(raw, what=what)
    except untrusted.UntrustedInputError as error:
        raise ProvenanceError(f"{error.message}: not a DSSE envelope") from None
    if not isinstance(document, dict):
        raise ProvenanceError(f"{what} is not a DSSE envelope")
    return document


def statement_of(document: Mapping[str, Any], what: str = "the provenance") -> dict[str, Any]:
    """The statement inside an envelope, signed or not, with its shape checked (for
    re-signing what this machine already checked; verifiers use :func:`open_signed`)."""
    try:
        _, payload, _ = dsse.parts(document)
    except dsse.EnvelopeError as error:
        raise ProvenanceError(f"{what}: {error.message}") from None
    return _checked_statement(payload, what)


def open_signed(
    document: Mapping[str, Any], trusted: Sequence[keys.PublicKey], what: str = "the provenance"
) -> tuple[dict[str, Any], list[str]]:
    """The statement, once a trusted key signed it, and the key ids that did."""
    if not document.get("signatures"):
        raise ProvenanceError(
            f"{what} is not signed (it was built where harness had no key)",
            "create a key (`harness keys generate`) and build again, or certify with --push, "
            "which signs it",
        )
    try:
        opened = dsse.open_envelope(document, trusted, 1)
    except dsse.EnvelopeError as error:
        raise ProvenanceError(
            f"{what} is signed by no key trusted here ({error.message})"
        ) from None
    return _checked_statement(opened.payload, what), opened.signers


def _checked_statement(payload: bytes, what: str) -> dict[str, Any]:
    try:
        statement = canonical.loads(payload, what=f"the payload of {what}")
    except untrusted.UntrustedInputError as error:
        raise ProvenanceError(error.message) from None
    if not isinstance(statement, dict) or statement.get("_type") != statements.STATEMENT_TYPE:
        raise ProvenanceError(f"{what} is not an in-toto Statement v1")
    if statement.get("predicateType") != statements.PREDICATE_TYPE:
        raise ProvenanceError(
            f"{what} has predicate type {statement.get('predicateType')!r}, not SLSA provenance v1"
        )
    subjects = statement.get("subject")
    predicate = statement.get("predicate")
    if (
        not isinstance(subjects, list)
        or not subjects
        or not all(
            isinstance(s, dict)
            and isinstance(s.get("digest"), dict)
            and isinstance(s["digest"].get("sha256"), str)
            for s in subjects
        )
    ):
        raise ProvenanceError(f"{what} names no subject by sha256")
    definition = predicate.get("buildDefinition") if isinstance(predicate, dict) else None
    dependencies = definition.get("resolvedDependencies") if isinstance(definition, dict) else None
    if not isinstance(dependencies, list) or not all(
        isinstance(d, dict) and isinstance(d.get("digest"), dict) for d in dependencies
    ):
        raise ProvenanceError(f"{what} has no resolved dependencies")
    return statement


def with_subject(statement: Mapping[str, Any], name: str, digest: str) -> dict[str, Any]:
    """The statement with one more subject (a registry manifest digest), once."""
    hexdigest = digest.removeprefix("sha256:")
    subjects = [dict(s) for s in statement["subject"]]
    if not any(s["digest"].get("sha256") == hexdigest for s in subjects):
        subjects.append({"name": name, "digest": {"sha256": hexdigest}})
    return {**statement, "subject": subjects}


def dependency(statement: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for entry in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        if entry.get("name") == name:
            return entry  # type: ignore[no-any-return]
    return None


def check_image(
    statement: Mapping[str, Any],
    image_id: str,
    labels: Mapping[str, str],
    *,
    project_root: Path | None = None,
) -> list[str]:
    """Refuse a statement that is not about image ``image_id`` with these ``labels``;
    returns what was checked, one line each."""
    hexdigest = image_id.removeprefix("sha256:")
    if not any(s["digest"]["sha256"] == hexdigest for s in statement["subject"]):
        named = ", ".join(str(s["digest"]["sha256"])[:12] for s in statement["subject"])
        raise ProvenanceError(
            f"the provenance is for image sha256:{named}, not {image_id[:19]}",
            "use the provenance of this image, or build it with harness",
        )
    checks = [f"provenance subject is image {image_id[:19]}"]
    expected = {
        statements.BASE_IMAGE: labels.get(BASE_DIGEST_LABEL),
        statements.DOCKERFILE: labels.get(build_module.LABEL_DOCKERFILE_SHA256),
        statements.CONSTRAINTS: labels.get(build_module.LABEL_CONSTRAINTS),
    }
    for name, label in expected.items():
        stated = dependency(statement, name)
        digest = None if stated is None else str(stated["digest"].get("sha256"))
        if label is None:
            continue
        if digest != label.removeprefix("sha256:"):
            raise ProvenanceError(
                f"the provenance names {name} sha256 {str(digest)[:12]}, the image was built "
                f"from {label.removeprefix('sha256:')[:12]}"
            )
    checks.append("base image, Dockerfile and constraints digests match the image's labels")
    predicate = statement["predicate"]
    stated_labels = predicate["buildDefinition"].get("internalParameters", {}).get("labels") or {}
    differing = sorted(k for k, v in stated_labels.items() if labels.get(k) != v)
    if differing:
        raise ProvenanceError(
            f"the provenance states other image labels than the image has: {', '.join(differing)}"
        )
    version = labels.get(build_module.LABEL_VERSION)
    builder = str((predicate.get("runDetails") or {}).get("builder", {}).get("id"))
    if version is not None and builder != statements.builder_id(version):
        raise ProvenanceError(
            f"the provenance names builder {builder}, the image was built by harness {version}"
        )
    checks.append(f"builder {builder}")
    if project_root is not None:
        checks.extend(_check_wheels(statement, labels, project_root))
    return checks


def _check_wheels(
    statement: Mapping[str, Any], labels: Mapping[str, str], project_root: Path
) -> list[str]:
    """Each wheel's sha256 against the pins of the project's constraints file, when that
    file is the one the image was built from (else nothing here can recompute them)."""
    stated = dependency(statement, statements.CONSTRAINTS)
    name = str(stated.get("uri") or "") if stated is not None else ""
    path = project_root / name
    if not name or "/" in name or not path.is_file() or path.is_symlink():
        return []
    if sha256_file(path) != labels.get(build_module.LABEL_CONSTRAINTS):
        return [f"wheels not recomputed: {name} changed since the image was built"]
    pins = {
        pin.name: {h.removeprefix("sha256:") for h in pin.hashes}
        for pin in lock.parse_constraints(path.read_text(encoding="utf-8"), name)
    }
    wheels = 0
    for entry in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        uri = str(entry.get("uri") or "")
        if not uri.startswith(statements.WHEEL_URI_PREFIX) or entry.get("name") == (
            statements.HARNESS_RUNTIME
        ):
            continue
        package = uri.removeprefix(statements.WHEEL_URI_PREFIX).partition("@")[0]
        if str(entry["digest"].get("sha256")) not in pins.get(package, set()):
            raise ProvenanceError(
                f"the provenance names wheel {entry.get('name')} with a sha256 {name} does not "
                f"pin for {package}"
            )
        wheels += 1
    return [f"{wheels} wheel(s) carry sha256 digests {name} pins"]


def record_build(
    project_root: Path,
    statement: Mapping[str, Any],
    say: Callable[[str], None],
    *,
    also: Sequence[Path] = (),
) -> Recorded | None:
    """Record a build's provenance, signed with this host's key when it has one."""
    if not statement:
        return None
    key = keys.host_key(project_root, None)
    recorded = record(project_root, statement, key, also=also)
    if not recorded.written:
        say("no key to sign the image's provenance: the signed one already recorded is kept")
    elif not recorded.signed:
        say(
            "the image's provenance is written unsigned: there is no key to sign it "
            f"(`harness keys generate`, or ${keys.HOST_KEY_ENV})"
        )
    return recorded
