"""Attestations beside an image in a registry: references, cosign's layout, referrers, and
the checks a verifier makes, against an in-memory registry (the real one is in
tests/integration/test_registry_attestations.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import registry as registry_module
from harness.errors import ConfigError
from harness.images import build
from harness.registry import Manifest, Reference, Registry
from harness.trust import certify, provenance, registry_attestations
from tests.unit.test_provenance import labels, statement

REPOSITORY = "ml/model"


class MemoryRegistry(Registry):
    """The registry API's semantics, in memory: blobs and manifests by digest, tags."""

    def __init__(self, *, referrers_api: bool = False) -> None:
        super().__init__("127.0.0.1:5000")
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}
        self.referrers_api = referrers_api

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        digest = reference if reference.startswith("sha256:") else self.tags.get(reference)
        if digest is None or digest not in self.manifests:
            return None
        data, media_type = self.manifests[digest]
        return Manifest(data, media_type, digest)

    def put_manifest(
        self, repository: str, reference: str, document: Mapping[str, Any], media_type: str
    ) -> tuple[str, Mapping[str, str]]:
        body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        digest = registry_module.digest_of(body)
        self.manifests[digest] = (body, media_type)
        if not reference.startswith("sha256:"):
            self.tags[reference] = digest
        subject = "subject" in document and self.referrers_api
        return digest, {"OCI-Subject": document["subject"]["digest"]} if subject else {}

    def referrers(self, repository: str, digest: str) -> dict[str, Any] | None:
        if not self.referrers_api:
            return None
        found = []
        for manifest_digest, (data, media_type) in self.manifests.items():
            document = json.loads(data)
            if (document.get("subject") or {}).get("digest") == digest:
                found.append(
                    {
                        "mediaType": media_type,
                        "digest": manifest_digest,
                        "size": len(data),
                        "artifactType": document.get("artifactType"),
                    }
                )
        return {"schemaVersion": 2, "mediaType": registry_module.OCI_INDEX, "manifests": found}

    def blob(self, repository: str, digest: str, *, limit: int) -> bytes:
        if digest not in self.blobs:
            raise registry_module.NotInRegistry(f"no blob {digest}")
        return self.blobs[digest]

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = registry_module.digest_of(data)
        self.blobs[digest] = data
        return digest

    def push_image(self, image_labels: Mapping[str, str]) -> tuple[Reference, str]:
        """An image as the engine pushes it: its configuration (whose digest is the image
        ID) and a manifest naming it; the reference by digest and the image ID."""
        config = json.dumps({"config": {"Labels": dict(image_labels)}}).encode()
        image_id = self.put_blob(REPOSITORY, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": registry_module.DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": image_id},
            "layers": [],
        }  # fmt: skip
        pushed, _ = self.put_manifest(
            REPOSITORY, "latest", manifest, registry_module.DOCKER_MANIFEST
        )
        return Reference(self.registry, REPOSITORY, pushed), image_id


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def certificate_of(image_id: str, manifest: str, key: Ed25519PrivateKey) -> bytes:
    """A certificate envelope for ``image_id``, the shape certify writes."""
    document = {
        "_type": certify.STATEMENT_TYPE,
        "subject": [
            {"name": "demo:cpu", "digest": {"sha256": image_id.removeprefix("sha256:")},
             "annotations": {"kind": "image", "variant": "cpu"}},
            {"name": "registry/ml/model", "digest": {"sha256": manifest.removeprefix("sha256:")},
             "annotations": {"kind": "image-manifest"}},
        ],
        "predicateType": certify.PREDICATE_TYPE,
        "predicate": {"experiments": [], "seed": 0},
    }  # fmt: skip
    return certify.canonical(certify.envelope(document, key))


def published(
    registry: MemoryRegistry,
    key: Ed25519PrivateKey,
    image_labels: Mapping[str, str] | None = None,
) -> tuple[Reference, str]:
    """An image pushed with its certificate and provenance attached, as certify --push does."""
    pushed, image_id = registry.push_image(labels() if image_labels is None else image_labels)
    image = registry.manifest(REPOSITORY, str(pushed.digest))
    assert image is not None
    built = provenance.with_subject(statement(image_id=image_id), pushed.name, str(pushed.digest))
    registry_attestations.attach(
        registry,
        REPOSITORY,
        image,
        [
            registry_attestations.Attestation(
                certify.PREDICATE_TYPE, certificate_of(image_id, str(pushed.digest), key)
            ),
            registry_attestations.Attestation(
                "https://slsa.dev/provenance/v1",
                json.dumps(provenance.seal(built, key)).encode(),
            ),
        ],
    )
    return pushed, image_id


def test_references_parse_as_the_engine_writes_them() -> None:
    parsed = registry_module.parse(
        "127.0.0.1:5000/ml/model@sha256:" + "0f" * 32, digest_required=True
    )
    assert (parsed.registry, parsed.repository) == ("127.0.0.1:5000", "ml/model")
    assert registry_module.parse("ghcr.io/o/m:v1").tag == "v1"
    assert registry_module.parse("ubuntu").repository == "library/ubuntu"
    assert registry_module.is_loopback("127.0.0.1:5000")
    assert registry_module.is_loopback("localhost:5000")
    assert not registry_module.is_loopback("registry.example.com")
    for wrong in ("127.0.0.1:5000/ml/model", "r.io/m@sha256:abc", "r.io/Upper@sha256:" + "0" * 64):
        with pytest.raises(ConfigError, match="not a registry reference by digest"):
            registry_module.parse(wrong, digest_required=True)


def test_cosign_s_layout_holds_dsse_layers_annotated_as_cosign_reads_them(
    key: Ed25519PrivateKey,
) -> None:
    registry = MemoryRegistry()
    pushed, _image_id = published(registry, key)
    tag = registry_attestations.cosign_tag(str(pushed.digest))
    assert tag == f"sha256-{str(pushed.digest).removeprefix('sha256:')}.att"
    attestations = registry.manifest(REPOSITORY, tag)
    assert attestations is not None
    layers = attestations.document()["layers"]
    assert [layer["mediaType"] for layer in layers] == [registry_attestations.DSSE_MEDIA_TYPE] * 2
    assert all(layer["annotations"]["dev.cosignproject.cosign/signature"] == "" for layer in layers)
    assert {layer["annotations"]["predicateType"] for layer in layers} == {
        certify.PREDICATE_TYPE,
        "https://slsa.dev/provenance/v1",
    }
    # Without the referrers API, the referrers tag lists them.
    index = registry.manifest(REPOSITORY, str(pushed.digest).replace(":", "-"))
    assert index is not None
    assert len(index.document()["manifests"]) == 2


def test_attaching_again_replaces_the_same_predicate_type_and_keeps_others(
    key: Ed25519PrivateKey,
) -> None:
    registry = MemoryRegistry()
    pushed, _image_id = published(registry, key)
    image = registry.manifest(REPOSITORY, str(pushed.digest))
    assert image is not None
    foreign = registry_attestations.Attestation("https://spdx.dev/Document", b"{}")
    registry_attestations.attach(registry, REPOSITORY, image, [foreign])
    published(registry, key)
    tag = registry_attestations.cosign_tag(str(pushed.digest))
    manifest = registry.manifest(REPOSITORY, tag)
    assert manifest is not None
    types = [la["annotations"]["predicateType"] for la in manifest.document()["layers"]]
    assert sorted(types) == sorted(
        ["https://spdx.dev/Document", certify.PREDICATE_TYPE, "https://slsa.dev/provenance/v1"]
    )


@pytest.mark.parametrize("referrers_api", [False, True])
def test_verification_reads_both_from_the_registry(
    key: Ed25519PrivateKey, referrers_api: bool
) -> None:
    registry = MemoryRegistry(referrers_api=referrers_api)
    pushed, image_id = published(registry, key)
    verified = registry_attestations.verify(registry, pushed, [key.public_key()], 1)
    assert verified.certificate.image_id == image_id
    assert any("provenance subject is image" in line for line in verified.checks)


def test_only_referrers_are_enough(key: Ed25519PrivateKey) -> None:
    registry = MemoryRegistry(referrers_api=True)
    pushed, image_id = published(registry, key)
    del registry.tags[registry_attestations.cosign_tag(str(pushed.digest))]
    verified = registry_attestations.verify(registry, pushed, [key.public_key()], 1)
    assert verified.certificate.image_id == image_id


def test_no_attestation_is_a_one_line_refusal(key: Ed25519PrivateKey) -> None:
    registry = MemoryRegistry()
    pushed, _ = registry.push_image(labels())
    with pytest.raises(certify.CertificateError, match="no attestation of") as caught:
        registry_attestations.verify(registry, pushed, [key.public_key()], 1)
    assert "\n" not in caught.value.one_line()


def test_an_untrusted_key_is_refused(key: Ed25519PrivateKey) -> None:
    registry = MemoryRegistry()
    pushed, _image_id = published(registry, key)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(certify.CertificateError, match=r"0 trusted signature\(s\), 1 required"):
        registry_attestations.verify(registry, pushed, [other], 1)


def test_another_image_s_attestations_are_refused(key: Ed25519PrivateKey) -> None:
    registry = MemoryRegistry()
    certified, _ = published(registry, key)
    found = registry_attestations.fetch(registry, certified)
    other, _ = registry.push_image({**labels(), "org.opencontainers.image.title": "other"})
    image = registry.manifest(REPOSITORY, str(other.digest))
    assert image is not None
    registry_attestations.attach(
        registry,
        REPOSITORY,
        image,
        [
            registry_attestations.Attestation(_predicate_type(raw), raw)
            for _, raw in found.envelopes
        ],
    )
    with pytest.raises(certify.CertificateError, match="the certificate is for image"):
        registry_attestations.verify(registry, other, [key.public_key()], 1)


def test_a_tampered_certificate_is_refused(
    key: Ed25519PrivateKey,
) -> None:
    registry = MemoryRegistry()
    pushed, image_id = published(registry, key)
    image = registry.manifest(REPOSITORY, str(pushed.digest))
    assert image is not None
    envelope = json.loads(certificate_of(image_id, str(pushed.digest), key))
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["seed"] = 1234
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    tampered = registry_attestations.Attestation(
        certify.PREDICATE_TYPE, json.dumps(envelope).encode()
    )
    registry_attestations.attach(registry, REPOSITORY, image, [tampered])
    with pytest.raises(certify.CertificateError, match=r"0 trusted signature\(s\)"):
        registry_attestations.verify(registry, pushed, [key.public_key()], 1)


def test_provenance_naming_other_inputs_than_the_image_s_configuration_is_refused(
    key: Ed25519PrivateKey,
) -> None:
    # The image in the registry was built from another Dockerfile than the provenance says.
    other = {**labels(), build.LABEL_DOCKERFILE_SHA256: "00" * 32}
    pushed, _ = published(registry := MemoryRegistry(), key, image_labels=other)
    with pytest.raises(provenance.ProvenanceError, match="Dockerfile"):
        registry_attestations.verify(registry, pushed, [key.public_key()], 1)


def _predicate_type(raw: bytes) -> str:
    return str(json.loads(base64.b64decode(json.loads(raw)["payload"]))["predicateType"])


def test_push_re_signs_unsigned_provenance_once_checked_against_the_image(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    image_id = "sha256:" + "ab" * 32
    provenance.record(tmp_path, statement(image_id=image_id), None)
    checked = registry_attestations.provenance_to_publish(
        tmp_path, image_id, labels(), [key.public_key()]
    )
    pushed = Reference("127.0.0.1:5000", REPOSITORY, "sha256:" + "ee" * 32)
    raw = registry_attestations.seal_for(tmp_path, checked, pushed, key)
    opened, _ = provenance.open_signed(json.loads(raw), [key.public_key()])
    assert [s["digest"]["sha256"] for s in opened["subject"]] == ["ab" * 32, "ee" * 32]
    assert provenance.read(provenance.path_for(tmp_path, image_id))["signatures"]
    # Provenance another image's labels contradict is never re-signed.
    with pytest.raises(provenance.ProvenanceError, match="Dockerfile"):
        registry_attestations.provenance_to_publish(
            tmp_path,
            image_id,
            {**labels(), build.LABEL_DOCKERFILE_SHA256: "00" * 32},
            [key.public_key()],
        )


def test_push_refuses_provenance_signed_by_a_key_not_trusted_here(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    image_id = "sha256:" + "ab" * 32
    provenance.record(tmp_path, statement(image_id=image_id), Ed25519PrivateKey.generate())
    with pytest.raises(provenance.ProvenanceError, match="no key trusted here"):
        registry_attestations.provenance_to_publish(
            tmp_path, image_id, labels(), [key.public_key()]
        )


def test_a_co_signed_certificate_replaces_the_one_in_the_registry(
    key: Ed25519PrivateKey,
) -> None:
    registry = MemoryRegistry()
    pushed, image_id = published(registry, key)
    second = Ed25519PrivateKey.generate()
    document = json.loads(certificate_of(image_id, str(pushed.digest), key))
    cosigned = certify.add_signature(document, second)
    trusted = [key.public_key(), second.public_key()]
    with pytest.raises(certify.CertificateError, match=r"1 trusted signature\(s\), 2 required"):
        registry_attestations.verify(registry, pushed, trusted, 2)
    verified, _ = registry_attestations.attach_certificate(registry, pushed, cosigned, trusted)
    assert len(verified.signers) == 2
    assert len(registry_attestations.verify(registry, pushed, trusted, 2).certificate.signers) == 2


def test_a_certificate_not_naming_the_manifest_digest_or_of_another_image_is_not_attached(
    key: Ed25519PrivateKey,
) -> None:
    registry = MemoryRegistry()
    pushed, image_id = published(registry, key)
    unmatched = json.loads(certificate_of(image_id, "sha256:" + "00" * 32, key))
    with pytest.raises(certify.CertificateError, match="does not name the manifest digest"):
        registry_attestations.attach_certificate(registry, pushed, unmatched, [key.public_key()])
    other = json.loads(certificate_of("sha256:" + "cd" * 32, str(pushed.digest), key))
    with pytest.raises(certify.CertificateError, match="the certificate is for image"):
        registry_attestations.attach_certificate(registry, pushed, other, [key.public_key()])
