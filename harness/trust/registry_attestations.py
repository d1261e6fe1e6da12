"""Certificates and provenance stored beside an image in its registry, and checked there.

A deployer admits an image by its registry digest with nothing but the registry and a
public key, so harness stores what vouches for an image where the image is, in the two
layouts tools look in:

- cosign's: the tag ``sha256-<manifest hex>.att`` in the image's repository holds an OCI
  image manifest whose layers are DSSE envelopes (media type
  ``application/vnd.dsse.envelope.v1+json``), each annotated with
  ``dev.cosignproject.cosign/signature: ""`` and its ``predicateType``; this is what
  `cosign verify-attestation` and `cosign download attestation` read. A layer of another
  predicate type already there (someone else's attestation) is kept; one of the same type
  is replaced, as ``cosign attest --replace`` does.
- OCI 1.1 referrers: one manifest per envelope whose ``subject`` is the image manifest,
  with ``artifactType`` the DSSE media type. A registry with the referrers API indexes them
  itself (it answers the push with ``OCI-Subject``); for one without, the referrers tag
  ``sha256-<manifest hex>`` holds the index, as the distribution specification's fallback
  asks.

Whatever a registry holds is hostile until checked: annotations are hints, never trusted.
Each envelope must be signed by keys the verifier trusts and its signed statement must be
about this image: the certificate's image subject, and the provenance's, must be the
image ID the manifest names (the digest of its configuration), so a copy of another
image's attestations under this digest is refused. The provenance is then checked against
the labels in that configuration, read from the registry and checked against its digest.

References: https://github.com/sigstore/cosign/blob/main/specs/ATTESTATION_SPEC.md and
https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from harness import atomic, untrusted
from harness import registry as registry_module
from harness.cleanup import cleanup
from harness.engine import ContainerEngine
from harness.errors import ConfigError, HarnessError
from harness.fleet.shipping import drop_tag
from harness.images import provenance as provenance_statements
from harness.registry import OCI_INDEX, OCI_MANIFEST, Manifest, Reference, Registry
from harness.trust import certify, dsse, keys, provenance

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE = "predicateType"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
# cosign's attestation images carry this configuration (go-containerregistry's empty image
# with the layers' digests as diff IDs): the layers are stored uncompressed.
_ZERO_TIME = "0001-01-01T00:00:00Z"
ENVELOPE_LIMIT = certify.CERTIFICATE_LIMIT
CONFIG_LIMIT = 8 << 20
# Bounds on what a hostile registry can make a verifier fetch.
MAX_LAYERS = 64
MAX_REFERRERS = 64
T = TypeVar("T")


def cosign_tag(digest: str) -> str:
    """The tag cosign reads an image's attestations from: ``sha256-<hex>.att``."""
    return f"{digest.replace(':', '-')}.att"


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for registries without the referrers API."""
    return digest.replace(":", "-")


@dataclass(frozen=True)
class Attestation:
    """A DSSE envelope's bytes and the predicate type of the statement it carries."""

    predicate_type: str
    envelope: bytes


@dataclass(frozen=True)
class Attached:
    cosign: str
    referrers: tuple[str, ...]
    # Whether the registry indexed the referrers itself (OCI 1.1 referrers API).
    referrers_api: bool


def _layer(digest: str, size: int, predicate_type: str) -> dict[str, Any]:
    return {
        "mediaType": DSSE_MEDIA_TYPE,
        "size": size,
        "digest": digest,
        "annotations": {COSIGN_SIGNATURE: "", PREDICATE_TYPE: predicate_type},
    }


def attach(
    registry: Registry, repository: str, image: Manifest, attestations: Sequence[Attestation]
) -> Attached:
    """Store ``attestations`` of ``image`` (its manifest, read from this repository) in
    cosign's layout and as OCI 1.1 referrers."""
    new_layers = [
        _layer(registry.put_blob(repository, a.envelope), len(a.envelope), a.predicate_type)
        for a in attestations
    ]
    replaced = {a.predicate_type for a in attestations}
    existing = registry.manifest(repository, cosign_tag(image.digest))
    kept = [
        layer
        for layer in (_layers(existing) if existing is not None else [])
        if (layer.get("annotations") or {}).get(PREDICATE_TYPE) not in replaced
    ]
    layers = [*kept, *new_layers]
    config = json.dumps(
        {
            "architecture": "",
            "config": {},
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "size": len(config),
            "digest": registry.put_blob(repository, config),
        },
        "layers": layers,
    }
    tag = cosign_tag(image.digest)
    registry.put_manifest(repository, tag, manifest, OCI_MANIFEST)
    referrers, api = _attach_referrers(registry, repository, image, new_layers)
    return Attached(f"{registry.registry}/{repository}:{tag}", tuple(referrers), api)


def _attach_referrers(
    registry: Registry,
    repository: str,
    image: Manifest,
    layers: Sequence[Mapping[str, Any]],
) -> tuple[list[str], bool]:
    empty = registry.put_blob(repository, EMPTY_JSON)
    subject = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.data)}
    descriptors: list[dict[str, Any]] = []
    api = True
    for layer in layers:
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": DSSE_MEDIA_TYPE,
            "config": {"mediaType": OCI_EMPTY, "size": len(EMPTY_JSON), "digest": empty},
            "layers": [dict(layer)],
            "subject": subject,
            "annotations": {PREDICATE_TYPE: layer["annotations"][PREDICATE_TYPE]},
        }
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        digest = registry_module.digest_of(body)
        _, headers = registry.put_manifest(repository, digest, manifest, OCI_MANIFEST)
        api = api and any(name.lower() == "oci-subject" for name in headers)
        descriptors.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(body),
                "artifactType": DSSE_MEDIA_TYPE,
                "annotations": manifest["annotations"],
            }
        )
    if not api:
        _update_referrers_tag(registry, repository, image.digest, descriptors)
    return [str(d["digest"]) for d in descriptors], api


def _update_referrers_tag(
    registry: Registry,
    repository: str,
    digest: str,
    descriptors: Sequence[Mapping[str, Any]],
) -> None:
    """The fallback for registries without the referrers API: the index under the tag
    ``sha256-<hex>`` lists every referrer; ours replace those of the same predicate type."""
    tag = referrers_tag(digest)
    existing = registry.manifest(repository, tag)
    entries = _manifests(existing) if existing is not None else []
    replaced = {d["annotations"][PREDICATE_TYPE] for d in descriptors}
    kept = [
        entry
        for entry in entries
        if (entry.get("annotations") or {}).get(PREDICATE_TYPE) not in replaced
    ]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*kept, *descriptors]}
    registry.put_manifest(repository, tag, index, OCI_INDEX)


def _layers(manifest: Manifest) -> list[dict[str, Any]]:
    layers = manifest.document().get("layers")
    if not isinstance(layers, list):
        return []
    return [layer for layer in layers if isinstance(layer, dict)][:MAX_LAYERS]


def _manifests(index: Manifest) -> list[dict[str, Any]]:
    entries = index.document().get("manifests")
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict)][:MAX_REFERRERS]


# -- reading and checking --------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """The envelopes stored for an image, and where each came from."""

    image: Manifest
    envelopes: list[tuple[str, bytes]] = field(default_factory=list)


def fetch(registry: Registry, reference: Reference) -> Found:
    """Every DSSE envelope stored for the image ``reference`` names (by digest): in
    cosign's tag, then among its referrers (the API, else the referrers tag)."""
    digest_named = reference.digest or ""
    repository = reference.repository
    image = registry.manifest(repository, digest_named)
    if image is None:
        raise certify.CertificateError(
            f"the registry has no image {reference}", "check the name and the digest"
        )
    layers: list[tuple[str, Mapping[str, Any]]] = []
    cosign = registry.manifest(repository, cosign_tag(digest_named))
    if cosign is not None:
        layers += [(f"the cosign tag {cosign_tag(digest_named)}", la) for la in _layers(cosign)]
    index = registry.referrers(repository, digest_named)
    entries = (
        [] if index is None else [e for e in index.get("manifests") or [] if isinstance(e, dict)]
    )
    if index is None:
        fallback = registry.manifest(repository, referrers_tag(digest_named))
        entries = _manifests(fallback) if fallback is not None else []
    for entry in entries[:MAX_REFERRERS]:
        digest = str(entry.get("digest") or "")
        if entry.get("artifactType") != DSSE_MEDIA_TYPE or not digest.startswith("sha256:"):
            continue
        referrer = registry.manifest(repository, digest)
        if referrer is not None:
            layers += [(f"the referrer {digest[:19]}", la) for la in _layers(referrer)]
    envelopes: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for where, layer in layers:
        digest = str(layer.get("digest") or "")
        if layer.get("mediaType") != DSSE_MEDIA_TYPE or digest in seen:
            continue
        seen.add(digest)
        envelopes.append((where, registry.blob(repository, digest, limit=ENVELOPE_LIMIT)))
        if len(envelopes) == MAX_LAYERS:
            break  # a registry cannot make a verifier download without end
    return Found(image, envelopes)


@dataclass
class RegistryVerified:
    certificate: certify.Verified
    provenance: dict[str, Any]
    checks: list[str]


def verify(
    registry: Registry,
    reference: Reference,
    trusted: Sequence[keys.PublicKey],
    threshold: int,
) -> RegistryVerified:
    """The certificate and provenance stored for ``reference``, each checked against the
    trusted keys and against the image the registry holds under that digest."""
    found = fetch(registry, reference)
    if not found.envelopes:
        raise certify.CertificateError(
            f"no attestation of {reference} in the registry (no tag "
            f"{cosign_tag(str(reference.digest))}, no OCI referrer)",
            "push the image with `harness certify --push REGISTRY/NAME`",
        )
    image_id, labels = _image_config(registry, reference, found.image)
    checks = [f"image manifest {found.image.digest[:19]} names image {image_id[:19]}"]
    certificate = _one_that_verifies(
        found.envelopes,
        certify.PREDICATE_TYPE,
        lambda document: _certificate(document, trusted, threshold, image_id),
    )
    provenance_statement = _one_that_verifies(
        found.envelopes,
        provenance_statements.PREDICATE_TYPE,
        lambda document: _provenance(document, trusted, image_id, labels),
    )
    checks += certificate.checks
    checks += provenance_statement[1]
    return RegistryVerified(certificate, provenance_statement[0], checks)


def _image_config(
    registry: Registry, reference: Reference, image: Manifest
) -> tuple[str, dict[str, str]]:
    """The image ID the manifest names (its configuration's digest) and the image's labels."""
    document = image.document()
    config = document.get("config")
    if not isinstance(config, dict) or not str(config.get("digest", "")).startswith("sha256:"):
        raise certify.CertificateError(
            f"{reference} is not an image manifest (an index of platforms, or an artifact)",
            "give the digest of the image's own manifest",
        )
    digest = str(config["digest"])
    raw = registry.blob(reference.repository, digest, limit=CONFIG_LIMIT)
    try:
        parsed = untrusted.parse_json(raw, what=f"the configuration of {reference}")
    except untrusted.UntrustedInputError as error:
        raise certify.CertificateError(error.message) from None
    inner = parsed.get("config") if isinstance(parsed, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    if not isinstance(labels, dict):
        labels = {}
    return digest, {str(k): str(v) for k, v in labels.items()}


def _certificate(
    document: Mapping[str, Any],
    trusted: Sequence[keys.PublicKey],
    threshold: int,
    image_id: str,
) -> certify.Verified:
    verified = certify.verify_envelope(document, trusted, threshold)
    certify.check_image(verified, image_id)
    return verified


def _provenance(
    document: Mapping[str, Any],
    trusted: Sequence[keys.PublicKey],
    image_id: str,
    labels: Mapping[str, str],
) -> tuple[dict[str, Any], list[str]]:
    statement, signers = provenance.open_signed(document, trusted)
    checks = provenance.check_image(statement, image_id, labels)
    return statement, [f"provenance signed by {', '.join(s[:16] for s in signers)}", *checks]


def _one_that_verifies(
    envelopes: Sequence[tuple[str, bytes]],
    predicate_type: str,
    check: Callable[[dict[str, Any]], T],
) -> T:
    """The result of ``check`` on the first envelope of ``predicate_type`` that passes it.

    Which type an envelope carries is read from its payload (annotations are anyone's
    say); an envelope that fails does not hide one that passes; when none passes, the
    first failure is the answer."""
    failure: HarnessError | None = None
    candidates = 0
    for where, raw in envelopes:
        document = _envelope(raw)
        if document is None or _payload_type(document) != predicate_type:
            continue
        candidates += 1
        try:
            return check(document)
        except HarnessError as error:
            if failure is None:
                failure = type(error)(f"{where}: {error.message}", error.hint)
    what = "certificate" if predicate_type == certify.PREDICATE_TYPE else "provenance"
    if failure is not None:
        raise failure
    raise certify.CertificateError(
        f"no {what} among the {len(envelopes)} attestation(s) in the registry "
        f"(predicate type {predicate_type})",
        "push it with `harness certify --push REGISTRY/NAME`",
    )


def _envelope(raw: bytes) -> dict[str, Any] | None:
    try:
        document = untrusted.parse_json(raw, what="an attestation")
    except untrusted.UntrustedInputError:
        return None
    return document if isinstance(document, dict) else None


def _payload_type(document: Mapping[str, Any]) -> str | None:
    """The predicate type the (not yet verified) payload states, to pick the check."""
    try:
        _, payload, _ = dsse.parts(document)
        parsed = untrusted.parse_json(payload, what="an attestation's payload")
    except (HarnessError, untrusted.UntrustedInputError):
        return None
    return str(parsed.get("predicateType")) if isinstance(parsed, dict) else None


# -- publishing ---------------------------------------------------------------------------


def push_image(engine: ContainerEngine, image_id: str, repository: str) -> Reference:
    """Push ``image_id`` to ``repository`` (``REGISTRY/NAME``); its reference by digest.

    It goes under a tag made of its ID (so pushes of other images never move it); the
    tag is removed from the engine again, where it would only be a stray name."""
    target = registry_module.parse(repository)
    if target.digest or target.tag:
        raise ConfigError(
            f"--push {repository}: give the repository alone, without a tag or digest",
            "e.g. --push registry.example.com/ml/model",
        )
    pushed = f"{target.name}:{image_id.removeprefix('sha256:')[:12]}"
    engine.tag(image_id, pushed)
    with cleanup(f"removing the tag {pushed}", partial(drop_tag, engine, image_id, pushed)):
        digest = engine.push(pushed)
    return Reference(target.registry, target.repository, digest)


def provenance_to_publish(
    project_root: Path,
    image_id: str,
    labels: Mapping[str, str],
    trusted: Sequence[keys.PublicKey],
) -> dict[str, Any]:
    """The image's recorded provenance, checked against the image, to be re-signed by the
    certifier once its registry digest joins the subjects (see :func:`seal_for`).

    A signed one must verify under a key this machine trusts; an unsigned one (built where
    there was no key) is accepted because it is checked here against the image itself,
    which is what the certifier's signature then vouches for."""
    document = provenance.read(provenance.path_for(project_root, image_id))
    if document.get("signatures"):
        statement, _ = provenance.open_signed(document, trusted)
    else:
        statement = provenance.statement_of(document)
    provenance.check_image(statement, image_id, labels, project_root=project_root)
    return statement


def seal_for(
    project_root: Path,
    statement: Mapping[str, Any],
    pushed: Reference,
    key: keys.PrivateKey,
) -> bytes:
    """The provenance with the registry digest as a subject (the one cosign matches),
    signed with ``key``; kept as the image's provenance here too."""
    widened = provenance.with_subject(statement, pushed.name, str(pushed.digest))
    envelope = provenance.seal(widened, key)
    text = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    image_id = "sha256:" + str(statement["subject"][0]["digest"]["sha256"])
    atomic.write_text(provenance.path_for(project_root, image_id), text)
    return text.encode()


def publish(pushed: Reference, attestations: Sequence[Attestation]) -> Attached:
    """Store ``attestations`` beside the image ``pushed`` names in its registry."""
    registry = Registry(pushed.registry)
    image = registry.manifest(pushed.repository, str(pushed.digest))
    if image is None:
        raise registry_module.RegistryError(
            f"the registry does not list {pushed} that the engine just pushed",
            "check that the engine and harness reach the same registry",
        )
    return attach(registry, pushed.repository, image, attestations)


def attach_certificate(
    registry: Registry,
    reference: Reference,
    document: Mapping[str, Any],
    trusted: Sequence[keys.PublicKey],
) -> tuple[certify.Verified, Attached]:
    """Store a certificate (a co-signed one, say) beside the image ``reference`` names, in
    place of the one there; only once it verifies under ``trusted`` keys, is about the
    image the registry holds under that digest, and names that digest as a subject (the
    one cosign matches)."""
    image = registry.manifest(reference.repository, str(reference.digest))
    if image is None:
        raise certify.CertificateError(
            f"the registry has no image {reference}", "check the name and the digest"
        )
    image_id, _ = _image_config(registry, reference, image)
    verified = certify.verify_envelope(document, trusted, 1)
    certify.check_image(verified, image_id)
    manifest = str(reference.digest).removeprefix("sha256:")
    if not any(s["digest"]["sha256"] == manifest for s in verified.statement["subject"]):
        raise certify.CertificateError(
            f"the certificate does not name the manifest digest {str(reference.digest)[:19]} "
            "among its subjects, so cosign would not match it to the image",
            "certify with --push REGISTRY/NAME (or --image-digest REGISTRY/NAME@sha256:...)",
        )
    raw = certify.canonical(document)
    return verified, attach(
        registry, reference.repository, image, [Attestation(certify.PREDICATE_TYPE, raw)]
    )
