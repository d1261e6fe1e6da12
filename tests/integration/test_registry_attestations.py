"""Certified images in a real registry (Debian's docker-registry on loopback): `certify
--push` stores the certificate and the provenance beside the image in cosign's layout and
as OCI referrers, and `certificate verify --image REGISTRY/NAME@sha256:...` checks them
from the registry alone, outside any project."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import registry as registry_module
from harness.engine import Engine
from harness.images import provenance as provenance_statements
from harness.trust import certify, registry_attestations
from tests.conftest import REPOSITORY, copy_project_files
from tests.integration.conftest import harness, image_name

SCRIPTS = REPOSITORY / "scripts"
BASE = "harness-base:bookworm-python3.11"
STEADY = """\
from pathlib import Path


def steady(output: Path, seed: int, inputs: dict) -> None:
    (output / "value.txt").write_text(str(seed * 7))
"""


def _script(*arguments: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in arguments], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("registry")
    address = _script(SCRIPTS / "registry.sh", "start", state, str(_free_port()))
    try:
        yield address
    finally:
        _script(SCRIPTS / "registry.sh", "stop", state)


IMAGE = image_name("attest-e2e")
# Where the pushes go in the registry: their local tags are this session's names.
REPOSITORY_PATH = image_name("registry")


@pytest.fixture(scope="module")
def pushed(
    tmp_path_factory: pytest.TempPathFactory, registry: str, engine: Engine
) -> Iterator[dict[str, Any]]:
    """A project verified and certified with --push: its keys and the pushed reference."""
    keys = tmp_path_factory.mktemp("keys")
    env = {"HARNESS_KEYS_DIR": str(keys)}
    generated = harness("keys", "generate", env=env)
    assert generated.returncode == 0, generated.stderr
    project = tmp_path_factory.mktemp("attested-project")
    project.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    copy_project_files(project)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text().replace('image = "harness"', f'image = "{IMAGE}"')
    pyproject.write_text(text + '\n[tool.harness.experiments.steady]\nentry = "steady:steady"\n')
    (project / "steady.py").write_text(STEADY)
    verified = harness("verify", "steady", "--vary", "none", cwd=project, env=env)
    assert verified.returncode == 0, verified.stderr
    certified = harness(
        "certify", "--push", f"{registry}/{REPOSITORY_PATH}/attest", "--json", cwd=project, env=env
    )
    assert certified.returncode == 0, certified.stderr
    document = json.loads(certified.stdout)
    try:
        yield {
            "public": keys / "harness.pub",
            "reference": document["pushed"],
            "document": document,
            "project": project,
        }
    finally:
        engine.remove_unused_image(f"{IMAGE}:cpu")


def verify_in_registry(reference: str, public: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return harness("certificate", "verify", "--image", reference, "--key", str(public), cwd=cwd)


def _push(engine: Engine, image: str, repository: str) -> str:
    """Push ``image`` to ``repository`` by hand (no attestation); its reference by digest."""
    info = engine.image(image)
    assert info is not None
    tag = f"{repository}:bare"
    engine.tag(info.id, tag)
    try:
        return f"{repository}@{engine.push(tag)}"
    finally:
        engine.remove_unused_image(tag)


def test_the_certified_image_verifies_from_the_registry_alone(
    pushed: dict[str, Any], tmp_path: Path
) -> None:
    # Outside any project: nothing but the registry and the public key.
    ok = verify_in_registry(pushed["reference"], pushed["public"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "verifies: certified and built as its provenance says" in ok.stdout
    assert "provenance subject is image" in ok.stdout

    other_key = tmp_path / "other"
    generated = harness("keys", "generate", "--dir", str(other_key))
    assert generated.returncode == 0, generated.stderr
    refused = verify_in_registry(pushed["reference"], other_key / "harness.pub", tmp_path)
    assert refused.returncode == 1
    assert "0 trusted signature(s), 1 required" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_registry_holds_cosign_s_layout_and_oci_referrers(pushed: dict[str, Any]) -> None:
    reference = registry_module.parse(pushed["reference"], digest_required=True)
    registry = registry_module.Registry(reference.registry)
    digest = str(reference.digest)
    attestations = registry.manifest(reference.repository, f"{digest.replace(':', '-')}.att")
    assert attestations is not None
    manifest = attestations.document()
    assert manifest["mediaType"] == registry_module.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    kinds = {}
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        assert layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
        envelope = json.loads(registry.blob(reference.repository, layer["digest"], limit=1 << 25))
        statement = json.loads(base64.b64decode(envelope["payload"]))
        assert statement["predicateType"] == layer["annotations"]["predicateType"]
        # cosign verify-attestation matches the manifest digest among the subjects.
        assert digest.removeprefix("sha256:") in [
            s["digest"]["sha256"] for s in statement["subject"]
        ]
        kinds[statement["predicateType"]] = statement
    assert set(kinds) == {certify.PREDICATE_TYPE, provenance_statements.PREDICATE_TYPE}
    dependencies = kinds[provenance_statements.PREDICATE_TYPE]["predicate"]["buildDefinition"][
        "resolvedDependencies"
    ]
    assert any(d["name"] == "base-image" for d in dependencies)
    assert sum(d.get("uri", "").startswith("pkg:pypi/") for d in dependencies) > 10

    # Distribution 2.8 has no referrers API: the referrers tag lists them instead.
    assert registry.referrers(reference.repository, digest) is None
    index = registry.manifest(reference.repository, digest.replace(":", "-"))
    assert index is not None
    entries = index.document()["manifests"]
    assert {e["annotations"]["predicateType"] for e in entries} == set(kinds)
    for entry in entries:
        referrer = registry.manifest(reference.repository, entry["digest"])
        assert referrer is not None
        assert referrer.document()["subject"]["digest"] == digest
        assert referrer.document()["artifactType"] == "application/vnd.dsse.envelope.v1+json"


def test_the_local_gate_checks_the_provenance_kept_beside_the_certificate(
    pushed: dict[str, Any],
) -> None:
    project = pushed["project"]
    certificate = pushed["document"]["certificate"]
    image = pushed["document"]["image"]
    checked = harness(
        "certificate", "verify", certificate, "--key", str(pushed["public"]), "--image", image,
        cwd=project,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert f"ok  provenance subject is image {image[:19]}" in checked.stdout
    assert "wheel(s) carry sha256 digests constraints.txt pins" in checked.stdout


def test_a_co_signed_certificate_is_attached_in_place_of_the_first(
    pushed: dict[str, Any], tmp_path: Path
) -> None:
    second = tmp_path / "second"
    assert harness("keys", "generate", "--dir", str(second)).returncode == 0
    copy = tmp_path / "certificate.intoto.json"
    copy.write_bytes(Path(pushed["document"]["certificate"]).read_bytes())
    trust = ("--key", str(pushed["public"]), "--key", str(second / "harness.pub"))
    both = ("--image", pushed["reference"], *trust, "--threshold", "2")
    assert harness("certificate", "verify", *both, cwd=tmp_path).returncode == 1
    signed = harness(
        "certificate", "sign", str(copy), "--key", str(second / "harness.key"),
        "--trusted-key", str(pushed["public"]), cwd=pushed["project"],
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    attached = harness(
        "certificate", "attach", str(copy), "--image", pushed["reference"], *trust, cwd=tmp_path
    )
    assert attached.returncode == 0, attached.stderr
    verified = harness("certificate", "verify", *both, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "2 of 2 required signature(s) valid" in verified.stdout


def test_an_image_without_attestations_is_refused_in_one_line(
    engine: Engine, registry: str, pushed: dict[str, Any], tmp_path: Path
) -> None:
    bare = _push(engine, BASE, f"{registry}/{REPOSITORY_PATH}/bare")
    missing = verify_in_registry(bare, pushed["public"], tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"harness: no attestation of {bare} in the registry")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_another_image_s_attestations_are_refused(
    engine: Engine, registry: str, pushed: dict[str, Any], tmp_path: Path
) -> None:
    """The certified image's certificate and provenance copied beside another image."""
    certified = registry_module.parse(pushed["reference"], digest_required=True)
    source = registry_module.Registry(certified.registry)
    found = registry_attestations.fetch(source, certified)
    other = registry_module.parse(_push(engine, BASE, f"{registry}/{REPOSITORY_PATH}/copied"))
    image = source.manifest(other.repository, str(other.digest))
    assert image is not None
    copies = [
        registry_attestations.Attestation(_predicate_type(raw), raw) for _, raw in found.envelopes
    ]
    registry_attestations.attach(source, other.repository, image, copies)
    refused = verify_in_registry(str(other), pushed["public"], tmp_path)
    assert refused.returncode == 1
    assert "the certificate is for image" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_tampered_attestation_is_refused(pushed: dict[str, Any], tmp_path: Path) -> None:
    """Last in this module: it replaces the certificate in the registry with an edited one."""
    reference = registry_module.parse(pushed["reference"], digest_required=True)
    registry = registry_module.Registry(reference.registry)
    found = registry_attestations.fetch(registry, reference)
    (raw,) = [raw for _, raw in found.envelopes if _predicate_type(raw) == certify.PREDICATE_TYPE]
    envelope = json.loads(raw)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["seed"] = 1234
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    registry_attestations.attach(
        registry,
        reference.repository,
        found.image,
        [registry_attestations.Attestation(certify.PREDICATE_TYPE, json.dumps(envelope).encode())],
    )
    refused = verify_in_registry(str(reference), pushed["public"], tmp_path)
    assert refused.returncode == 1
    assert "0 trusted signature(s), 1 required" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def _predicate_type(raw: bytes) -> str:
    return str(json.loads(base64.b64decode(json.loads(raw)["payload"]))["predicateType"])
