"""Verification under variations and certification, on the real engine."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.engine import Engine
from harness.runs import records
from harness.trust import attest
from harness.trust.keys import key_id, load_public_key
from tests.conftest import REPOSITORY, copy_project_files
from tests.integration.conftest import harness, image_name

# The image `harness certify --tag` tags in the examples' test: this repository's CPU image.
REPOSITORY_IMAGE = "harness:cpu"

PLANTED = '''\
"""Experiments whose artifacts depend on what a reproducible one must ignore."""

import socket
import time
from pathlib import Path


def hostname(output: Path, seed: int, inputs: dict) -> None:
    (output / "host.txt").write_text(socket.gethostname())


def clock(output: Path, seed: int, inputs: dict) -> None:
    (output / "time.txt").write_text(str(time.time_ns()))


def hash_order(output: Path, seed: int, inputs: dict) -> None:
    words = {f"feature-{i}" for i in range(40)}
    (output / "order.txt").write_text(",".join(words))


def steady(output: Path, seed: int, inputs: dict) -> None:
    (output / "value.txt").write_text(str(seed * 7))
'''

PLANTED_EXPERIMENTS = """
[tool.harness.experiments.planted-hostname]
entry = "planted:hostname"

[tool.harness.experiments.planted-clock]
entry = "planted:clock"

[tool.harness.experiments.planted-hashseed]
entry = "planted:hash_order"

[tool.harness.experiments.steady]
entry = "planted:steady"
# Its own choice of variations (as a comma-separated string), which verify reads when no
# --vary is given.
vary = "all, -cpus"
"""


@pytest.fixture(scope="module")
def planted_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("planted-project")
    folder.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    copy_project_files(folder)
    pyproject = folder / "pyproject.toml"
    text = pyproject.read_text().replace('image = "harness"', f'image = "{image_name("planted")}"')
    pyproject.write_text(text + PLANTED_EXPERIMENTS)
    (folder / "planted.py").write_text(PLANTED)
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two runners' key pairs, kept outside any project: runner-a's ed25519, runner-b's
    ECDSA P-256, so that both types sign, co-sign and certify on the real engine."""
    folder = tmp_path_factory.mktemp("keys")
    for name, kind in (("runner-a", "ed25519"), ("runner-b", "ecdsa-p256")):
        result = harness(
            "keys", "generate", "--name", name, "--type", kind,
            env={"HARNESS_KEYS_DIR": str(folder)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    return {"dir": str(folder), "a": str(folder / "runner-a"), "b": str(folder / "runner-b")}


def verify_json(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    result = harness("verify", "--json", *arguments, cwd=cwd, env=env)
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, document, result.stderr


@pytest.mark.parametrize(
    ("experiment", "culprit"),
    [
        ("planted-hostname", "hostname"),
        ("planted-hashseed", "hashseed"),
        ("planted-clock", "rerun"),
    ],
)
def test_planted_nondeterminism_is_found_and_named(
    planted_project: Path, experiment: str, culprit: str
) -> None:
    code, document, stderr = verify_json(experiment, cwd=planted_project)
    assert code == 1, stderr
    (result,) = document["experiments"]
    assert result["reproducible"] is False
    assert result["culprits"] == [culprit]
    assert result["reports"], "the compare report of what moved"
    moved = {
        a["path"]
        for r in result["reports"]
        for a in r["comparison"]["artifacts"]
        if not a["passed"]
    }
    assert moved


def test_a_steady_experiment_verifies_under_the_variations_it_configures(
    planted_project: Path,
) -> None:
    code, document, stderr = verify_json("steady", cwd=planted_project)
    assert code == 0, stderr
    (result,) = document["experiments"]
    assert result["reproducible"] is True
    assert document["variations"] == [
        "hostname", "timezone", "locale", "user", "workdir", "env", "hashseed"
    ]  # fmt: skip
    assert result["variations"] == {
        "varied": document["variations"],
        "left_out": {"cpus": "experiment config"},
        "chosen_by": "experiment config",
        "asked": ["all", "-cpus"],
    }
    assert [c["variations"] for c in result["checks"]][1] == document["variations"]


@pytest.fixture
def certified_tags_removed(engine: Engine) -> Iterator[None]:
    """`certify --tag` adds IMAGE:certified-<id> to this repository's CPU image: the tags
    the test added go after it (only the tags: the image keeps its own name)."""
    image = REPOSITORY_IMAGE
    before = set(found.tags) if (found := engine.image(image)) else set()
    yield
    after = engine.image(image)
    for tag in sorted(set(after.tags) - before) if after else ():
        if ":certified-" in tag:
            engine.remove_unused_image(tag)
            assert engine.image(tag) is None, f"{tag} is still there"


@pytest.mark.usefixtures("certified_tags_removed")
def test_the_examples_verify_certify_and_the_certificate_is_checked(
    engine: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    # This host signs its runs with runner a's key; certify checks them against it.
    code, document, stderr = verify_json(
        cwd=REPOSITORY, env={"HARNESS_HOST_KEY": f"{keys['a']}.key"}
    )
    assert code == 0, stderr
    assert {e["name"] for e in document["experiments"]} == {"sklearn", "torch", "tensorflow"}
    assert all(e["reproducible"] for e in document["experiments"])

    certificate = tmp_path / "examples.intoto.json"
    signed = harness(
        "certify", "--verification", document["id"], "--key", f"{keys['a']}.key",
        "--output", str(certificate), "--tag", "--json",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    tag = json.loads(signed.stdout)["tag"]
    assert engine.image(tag) is not None
    assert keys["dir"] not in certificate.read_text()

    def verify_certificate(*extra: str) -> Any:
        return harness("certificate", "verify", str(certificate), *extra)

    ok = verify_certificate("--key", f"{keys['a']}.pub", "--image", tag)
    assert ok.returncode == 0, ok.stderr

    wrong_key = verify_certificate("--key", f"{keys['b']}.pub")
    assert wrong_key.returncode == 1
    assert "0 trusted signature(s), 1 required" in wrong_key.stderr

    other_image = verify_certificate(
        "--key", f"{keys['a']}.pub", "--image", "harness-base:bookworm-python3.11"
    )
    assert other_image.returncode == 1
    assert "the certificate is for image" in other_image.stderr

    two = verify_certificate(
        "--key", f"{keys['a']}.pub", "--key", f"{keys['b']}.pub", "--threshold", "2"
    )
    assert two.returncode == 1
    # A co-signer checks the payload and the signature already there before adding its own.
    cosign = harness(
        "certificate",
        "sign",
        str(certificate),
        "--key",
        f"{keys['b']}.key",
        "--trusted-key",
        f"{keys['a']}.pub",
    )
    assert cosign.returncode == 0, cosign.stderr
    two = verify_certificate(
        "--key", f"{keys['a']}.pub", "--key", f"{keys['b']}.pub", "--threshold", "2"
    )
    assert two.returncode == 0, two.stderr

    original = certificate.read_bytes()
    middle = len(original) // 2
    certificate.write_bytes(
        original[:middle] + bytes([original[middle] ^ 1]) + original[middle + 1 :]
    )
    tampered = verify_certificate("--key", f"{keys['a']}.pub")
    assert tampered.returncode == 1
    certificate.write_bytes(original)

    statement = json.loads(verify_certificate("--key", f"{keys['a']}.pub", "--json").stdout)[
        "statement"
    ]
    run_id = statement["predicate"]["experiments"][0]["control_runs"][0]
    name = statement["predicate"]["experiments"][0]["artifacts"][0]["path"]
    artifact = REPOSITORY / ".harness" / "runs" / run_id / "artifacts" / name
    kept = artifact.read_bytes()
    artifact.chmod(0o644)
    try:
        artifact.write_bytes(kept[:-1] + bytes([kept[-1] ^ 1]))
        changed = verify_certificate("--key", f"{keys['a']}.pub")
        assert changed.returncode == 1
        assert "no longer has the certified sha256" in changed.stderr
    finally:
        artifact.write_bytes(kept)


def test_runs_signed_in_containers_are_certified_from_their_evidence(
    planted_project: Path, keys: dict[str, str], tmp_path: Path
) -> None:
    """Host a signs its runs in real containers; certifier b counts them only when it
    trusts a, and a verifier counts host a only when it trusts a too."""
    host = {"HARNESS_HOST_KEY": f"{keys['a']}.key"}
    code, document, stderr = verify_json(
        "steady", "--vary", "hostname", "--runs", "2", cwd=planted_project, env=host
    )
    assert code == 0, stderr
    (experiment,) = document["experiments"]
    run_ids = {*experiment["control_runs"], *(c["run_id"] for c in experiment["checks"])}
    assert len(run_ids) == 3  # two control runs, one with the hostname varied
    public_a = load_public_key(Path(f"{keys['a']}.pub"))
    for run_id in run_ids:
        folder = planted_project / ".harness" / "runs" / run_id
        assert attest.verify(folder, records.read(folder), [public_a]).keyid == key_id(public_a)

    certificate = tmp_path / "steady.intoto.json"
    certify = ("certify", "--verification", document["id"], "--key", f"{keys['b']}.key")
    certify = (*certify, "--output", str(certificate))
    untrusted_host = harness(*certify, cwd=planted_project)
    assert untrusted_host.returncode == 2
    assert "is signed by no key trusted here" in untrusted_host.stderr
    model_signature = tmp_path / "steady.sig"
    signed = harness(
        *certify, "--trusted-key", f"{keys['a']}.pub", "--model-signature", str(model_signature),
        cwd=planted_project,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert "reproduced on 1 of 1 host(s), counted by key" in signed.stdout
    # What varied, from the signed runs; the rest accounted for by the project's
    # configuration (cpus) or the command line that asked for hostname alone.
    payload = json.loads(certificate.read_text())["payload"]
    (stated,) = json.loads(base64.b64decode(payload))["predicate"]["experiments"]
    assert stated["variations"]["varied"] == ["hostname"]
    assert stated["variations"]["left_out"]["cpus"] == "experiment config"
    assert stated["variations"]["left_out"]["workdir"] == "command line"
    # OpenSSF Model Signing's own verifier checks the model folder a container wrote.
    model = planted_project / ".harness" / "runs" / experiment["control_runs"][0] / "artifacts"
    checked = subprocess.run(
        [
            sys.executable, "-m", "model_signing", "verify", "key",
            "--signature", str(model_signature), "--public_key", f"{keys['b']}.pub", str(model),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Verification succeeded" in checked.stdout

    def verify_certificate(*extra: str) -> Any:
        return harness("certificate", "verify", str(certificate), *extra, cwd=planted_project)

    counted = verify_certificate(
        "--key", f"{keys['b']}.pub", "--key", f"{keys['a']}.pub", "--min-hosts", "1"
    )
    assert counted.returncode == 0, counted.stderr
    assert "1 distinct trusted host key(s) vouch for runs of it" in counted.stdout
    uncounted = verify_certificate("--key", f"{keys['b']}.pub", "--min-hosts", "1")
    assert uncounted.returncode == 1
    assert "reproduced by 0 distinct host key(s) you trust, 1 required" in uncounted.stderr


def test_run_refuses_an_image_without_a_certificate(
    planted_project: Path, keys: dict[str, str]
) -> None:
    (planted_project / "ci.pub").write_bytes(Path(f"{keys['a']}.pub").read_bytes())
    pyproject = planted_project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + '\n[tool.harness.certify]\ntrusted-keys = ["ci.pub"]\n'
    )
    # The machine trusts the key (outside the project); the project's list only narrows it.
    trusted = {"HARNESS_TRUSTED_KEYS": f"{keys['a']}.pub"}
    result = harness("run", "steady", "--require-certificate", cwd=planted_project, env=trusted)
    assert result.returncode == 1, result.stderr
    assert "has no certificate" in result.stderr
