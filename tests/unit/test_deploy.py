"""The deploy image's checks and its certificate, without an engine."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.digests import sha256_file
from harness.errors import BuildError, ConfigError
from harness.images import deploy, wheel_layer
from harness.images.pin import Pin
from harness.trust import certify, deploy_certificate
from tests.unit.test_certify import IMAGE_ID, verification
from tests.unit.test_wheel_layer import make_wheel

DEPLOY_ID = "sha256:" + "cd" * 32


def test_unmet_requirements_name_what_the_pins_lack(tmp_path: Path) -> None:
    facts = wheel_layer.facts(
        make_wheel(
            tmp_path,
            requires=(
                "numpy>=2.0",
                "pandas",
                "scipy<1",
                "pywin32; sys_platform == 'win32'",
                "rich; extra == 'cli'",
                "tomli; python_version < '3.11'",
            ),
        )
    )
    pins = [Pin("NumPy", "2.1.0", ()), Pin("scipy", "1.14.0", ())]
    assert deploy.unmet_requirements(facts, pins, "3.13", "x86_64-manylinux_2_36") == [
        "pandas (not pinned)",
        "scipy<1 (pinned 1.14.0)",
    ]


@pytest.mark.parametrize(
    ("name", "fits"),
    [
        ("bikes-1.0-py3-none-any.whl", True),
        ("bikes-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", True),
        ("bikes-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", False),
        ("bikes-1.0-cp313-cp313-macosx_14_0_arm64.whl", False),
    ],
)
def test_a_wheel_the_image_would_not_install_is_refused(name: str, *, fits: bool) -> None:
    if fits:
        deploy.require_fitting_wheel(Path(name), "3.13", "x86_64-manylinux_2_36")
    else:
        with pytest.raises(BuildError, match=r"does not fit the image's Python 3\.13"):
            deploy.require_fitting_wheel(Path(name), "3.13", "x86_64-manylinux_2_36")


def _deploy_image(wheel: Path, built_on: str = IMAGE_ID) -> deploy.DeployImage:
    return deploy.DeployImage(
        "bikes:cpu-deploy", DEPLOY_ID, built_on, "cpu", wheel.name, sha256_file(wheel),
        "sha256:" + "ef" * 32, 8,
    )  # fmt: skip


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Ed25519PrivateKey, dict[str, Any], Path]:
    """A deploy certificate made from an experiment certificate, and its wheel."""
    key = Ed25519PrivateKey.generate()
    experiment_envelope = certify.envelope(certify.statement(verification(tmp_path)), key)
    experiment = certify.verify_envelope(experiment_envelope, [key.public_key()], 1)
    wheel = make_wheel(tmp_path)
    statement = deploy_certificate.statement(
        experiment, experiment_envelope, _deploy_image(wheel), wheel_reproduced=True
    )
    return key, certify.envelope(statement, key), wheel


def test_a_deploy_certificate_binds_the_deploy_image_the_certified_one_and_the_wheel(
    signed: tuple[Ed25519PrivateKey, dict[str, Any], Path],
) -> None:
    key, document, wheel = signed
    verified = certify.verify_envelope(document, [key.public_key()], 1)
    assert verified.image_id == DEPLOY_ID  # the image a deployer has in hand
    certify.check_image(verified, DEPLOY_ID)
    with pytest.raises(certify.CertificateError, match="is for image"):
        certify.check_image(verified, IMAGE_ID)
    deploy_certificate.check(verified, [key.public_key()], wheel)
    assert any("experiment certificate inside verifies" in line for line in verified.checks)
    assert any("is the certified one" in line for line in verified.checks)


def test_another_wheel_does_not_verify(
    tmp_path: Path, signed: tuple[Ed25519PrivateKey, dict[str, Any], Path]
) -> None:
    key, document, _ = signed
    (tmp_path / "changed").mkdir()
    changed = make_wheel(tmp_path / "changed", code="def main():\n    return 2\n")
    verified = certify.verify_envelope(document, [key.public_key()], 1)
    with pytest.raises(certify.CertificateError, match="is not the certified one"):
        deploy_certificate.check(verified, [key.public_key()], changed)


def test_the_experiment_certificate_inside_must_verify_with_the_verifiers_keys(
    tmp_path: Path, signed: tuple[Ed25519PrivateKey, dict[str, Any], Path]
) -> None:
    key, _, wheel = signed
    # The deploy statement is signed by a key the verifier trusts, but the experiment
    # certificate inside was signed by one it does not.
    stranger = Ed25519PrivateKey.generate()
    inner = certify.envelope(certify.statement(verification(tmp_path / "p")), stranger)
    experiment = certify.verify_envelope(inner, [stranger.public_key()], 1)
    outer = certify.envelope(
        deploy_certificate.statement(
            experiment, inner, _deploy_image(wheel), wheel_reproduced=True
        ),
        key,
    )
    verified = certify.verify_envelope(outer, [key.public_key()], 1)
    with pytest.raises(certify.CertificateError):
        deploy_certificate.check(verified, [key.public_key()])


def test_results_that_differ_from_the_certificate_inside_are_refused(
    signed: tuple[Ed25519PrivateKey, dict[str, Any], Path],
) -> None:
    key, document, _ = signed
    verified = certify.verify_envelope(document, [key.public_key()], 1)
    statement = copy.deepcopy(verified.statement)
    statement["predicate"]["experiments"][0]["artifacts"][0]["sha256"] = "00" * 32
    forged = certify.verify_envelope(certify.envelope(statement, key), [key.public_key()], 1)
    with pytest.raises(certify.CertificateError, match="not those of the experiment"):
        deploy_certificate.check(forged, [key.public_key()])


def test_a_deploy_image_on_another_image_cannot_be_certified(
    tmp_path: Path, signed: tuple[Ed25519PrivateKey, dict[str, Any], Path]
) -> None:
    key, _, wheel = signed
    experiment_envelope = certify.envelope(certify.statement(verification(tmp_path / "q")), key)
    experiment = certify.verify_envelope(experiment_envelope, [key.public_key()], 1)
    with pytest.raises(certify.CertificateError, match="built on"):
        deploy_certificate.statement(
            experiment,
            experiment_envelope,
            _deploy_image(wheel, built_on="sha256:" + "99" * 32),
            wheel_reproduced=True,
        )


def test_wheel_on_an_experiment_certificate_is_a_usage_error(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    experiment = certify.verify_envelope(
        certify.envelope(certify.statement(verification(tmp_path)), key), [key.public_key()], 1
    )
    deploy_certificate.check(experiment, [key.public_key()])  # nothing to check
    with pytest.raises(ConfigError, match="holds no wheel"):
        deploy_certificate.check(experiment, [key.public_key()], tmp_path / "x.whl")
