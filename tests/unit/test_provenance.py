"""SLSA provenance of built images: the statement, its signature, its checks against an image."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

import harness
from harness import vcs
from harness.images import build
from harness.images import provenance as statements
from harness.images.wheelcache import Choice
from harness.trust import keys, provenance

IMAGE_ID = "sha256:" + "ab" * 32
BASE = "sha256:" + "cd" * 32
WHEEL_SHA = "12" * 32
OTHER_SHA = "34" * 32
CONSTRAINTS = f"numpy==2.1.0 --hash=sha256:{WHEEL_SHA} --hash=sha256:{OTHER_SHA}\n".encode()


def labels() -> dict[str, str]:
    return {
        "org.opencontainers.image.base.digest": BASE,
        build.LABEL_DOCKERFILE_SHA256: "ef" * 32,
        build.LABEL_CONSTRAINTS: hashlib.sha256(CONSTRAINTS).hexdigest(),
        build.LABEL_VERSION: harness.__version__,
        build.LABEL_BUILD_INPUT: "99" * 32,
    }


def statement(wheel_sha: str = WHEEL_SHA, image_id: str = IMAGE_ID) -> dict[str, Any]:
    return statements.statement(
        reference="demo:cpu",
        image_id=image_id,
        variant="cpu",
        labels=labels(),
        base_reference="harness-base:bookworm-python3.11",
        base_digest=BASE,
        dockerfile_label="harness:Dockerfile",
        dockerfile_sha256="ef" * 32,
        constraints_name="constraints.txt",
        constraints_sha256=hashlib.sha256(CONSTRAINTS).hexdigest(),
        harness_source="sha256:" + "77" * 32,
        ca_bundle_sha256="",
        wheels=[Choice("numpy", "2.1.0", wheel_sha, "numpy-2.1.0-cp311-cp311-manylinux_2_17.whl")],
        source=vcs.SourceState("a" * 40, False, None, "https://example.org/team/demo", 0),
        parameters=statements.external_parameters(
            python="3.11",
            platform="x86_64-manylinux_2_36",
            index_url="https://user:secret@pypi.example/simple",
            find_links=True,
            rewrite_layers=False,
        ),
        build_input="99" * 32,
        finished=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_the_statement_is_slsa_provenance_v1_as_in_toto_attestation_reads_it() -> None:
    document = statement()
    parsed = json_format.ParseDict(
        {"type" if k == "_type" else k: v for k, v in document.items()},
        statement_pb2.Statement(),  # type: ignore[attr-defined]
    )
    Statement.copy_from_pb(parsed).validate()
    # The predicate has SLSA v1's shape exactly: an unknown field would fail to parse.
    predicate = json_format.ParseDict(
        document["predicate"],
        provenance_pb2.Provenance(),  # type: ignore[attr-defined]
    )
    for dependency in predicate.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dependency).validate()
    assert predicate.build_definition.build_type == statements.BUILD_TYPE
    assert predicate.run_details.builder.id == f"{statements.BUILDER}@{harness.__version__}"
    named = {d.name: d for d in predicate.build_definition.resolved_dependencies}
    assert named["base-image"].digest["sha256"] == BASE.removeprefix("sha256:")
    assert named["source"].digest["gitCommit"] == "a" * 40
    assert named["numpy-2.1.0-cp311-cp311-manylinux_2_17.whl"].digest["sha256"] == WHEEL_SHA
    assert named["Dockerfile"].digest["sha256"] == "ef" * 32
    assert document["subject"] == [{"name": "demo:cpu", "digest": {"sha256": "ab" * 32}}]
    # No credentials leave the machine inside a statement.
    assert "secret" not in json.dumps(document)


def test_signed_provenance_verifies_with_securesystemslib_and_with_harness(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    recorded = provenance.record(tmp_path, statement(), key)
    assert recorded.path == tmp_path / ".harness/provenance" / f"{'ab' * 32}.intoto.json"
    document = provenance.read(recorded.path)
    Envelope.from_dict(copy.deepcopy(document)).verify([SSlibKey.from_crypto(key.public_key())], 1)
    opened, signers = provenance.open_signed(document, [key.public_key()])
    assert signers == [keys.key_id(key.public_key())]
    checks = provenance.check_image(opened, IMAGE_ID, labels())
    assert checks[0].startswith("provenance subject is image")


def test_without_a_key_it_is_written_unsigned_and_no_verifier_accepts_it(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    recorded = provenance.record(tmp_path, statement(), None)
    assert not recorded.signed
    document = provenance.read(recorded.path)
    assert document["signatures"] == []
    with pytest.raises(provenance.ProvenanceError, match="not signed"):
        provenance.open_signed(document, [key.public_key()])


def test_an_unsigned_build_never_replaces_signed_provenance(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    signed = provenance.record(tmp_path, statement(), key)
    copy = tmp_path / "copy.intoto.json"
    again = provenance.record(tmp_path, statement(), None, also=[copy])
    assert not again.written
    assert provenance.read(signed.path)["signatures"]
    # The copy asked for is the signed provenance that was kept.
    assert copy.read_bytes() == signed.path.read_bytes()


def test_provenance_signed_by_another_key_or_edited_is_refused(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    document = provenance.seal(statement(), key)
    with pytest.raises(provenance.ProvenanceError, match="no key trusted here"):
        provenance.open_signed(document, [Ed25519PrivateKey.generate().public_key()])
    edited = json.loads(base64.b64decode(document["payload"]))
    edited["subject"][0]["digest"]["sha256"] = "00" * 32
    forged = {**document, "payload": base64.b64encode(json.dumps(edited).encode()).decode()}
    with pytest.raises(provenance.ProvenanceError):
        provenance.open_signed(forged, [key.public_key()])


def test_provenance_of_another_image_is_refused() -> None:
    with pytest.raises(provenance.ProvenanceError, match="not sha256:0000"):
        provenance.check_image(statement(), "sha256:" + "00" * 32, labels())


@pytest.mark.parametrize(
    ("label", "value", "named"),
    [
        ("org.opencontainers.image.base.digest", "sha256:" + "00" * 32, "base-image"),
        (build.LABEL_DOCKERFILE_SHA256, "00" * 32, "Dockerfile"),
        (build.LABEL_CONSTRAINTS, "00" * 32, "constraints"),
    ],
)
def test_provenance_naming_other_inputs_than_the_image_s_labels_is_refused(
    label: str, value: str, named: str
) -> None:
    changed = {**labels(), label: value}
    with pytest.raises(provenance.ProvenanceError, match=named):
        provenance.check_image(statement(), IMAGE_ID, changed)


def test_a_builder_of_another_version_is_refused() -> None:
    # Labels left out of the statement, so that only the builder's version differs.
    document = {**statement(), "predicate": _with_labels_removed(statement()["predicate"])}
    with pytest.raises(provenance.ProvenanceError, match=r"built by harness 0\.0\.1"):
        provenance.check_image(document, IMAGE_ID, {**labels(), build.LABEL_VERSION: "0.0.1"})


def _with_labels_removed(predicate: dict[str, Any]) -> dict[str, Any]:
    definition = {**predicate["buildDefinition"], "internalParameters": {"labels": {}}}
    return {**predicate, "buildDefinition": definition}


def test_wheels_are_recomputed_from_the_project_s_constraints(tmp_path: Path) -> None:
    (tmp_path / "constraints.txt").write_bytes(CONSTRAINTS)
    checks = provenance.check_image(statement(), IMAGE_ID, labels(), project_root=tmp_path)
    assert "1 wheel(s) carry sha256 digests constraints.txt pins" in checks
    forged = statement(wheel_sha="56" * 32)
    with pytest.raises(provenance.ProvenanceError, match="does not pin for numpy"):
        provenance.check_image(forged, IMAGE_ID, labels(), project_root=tmp_path)


def test_wheels_are_not_recomputed_from_constraints_changed_since_the_build(
    tmp_path: Path,
) -> None:
    (tmp_path / "constraints.txt").write_bytes(CONSTRAINTS + b"# edited\n")
    checks = provenance.check_image(statement(), IMAGE_ID, labels(), project_root=tmp_path)
    assert any("changed since the image was built" in line for line in checks)


def test_a_manifest_digest_joins_the_subjects_once() -> None:
    widened = provenance.with_subject(statement(), "registry/demo", "sha256:" + "ee" * 32)
    again = provenance.with_subject(widened, "registry/demo", "sha256:" + "ee" * 32)
    assert [s["digest"]["sha256"] for s in again["subject"]] == ["ab" * 32, "ee" * 32]
