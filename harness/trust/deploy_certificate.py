"""The deploy image's certificate: one signed statement a deployer checks.

It binds three things that were separate: the deploy image (by its ID), the certified
experiment image it is built on, and the project's wheel (by sha256), to the reproduced
results. It is harness's reproducibility statement of the experiment image, carried
over whole (its subjects, the hosts, their signed attestations, every artifact's
verdict), with two subjects added first, the deploy image (``deploy-image``) and the
wheel (``wheel``), and a ``deployment`` section in the predicate that holds the
experiment image's own certificate, signatures included. So ``harness certificate verify
CERT --image IMAGE:cpu-deploy`` checks the image in hand against the deploy image, and
the experiment certificate inside is verified again with the verifier's own keys: a
deploy certificate is never worth more than the certificate it was made from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import harness
from harness.digests import sha256_file
from harness.errors import ConfigError
from harness.images.deploy import DeployImage
from harness.trust import certify, keys

DEPLOY_IMAGE = "deploy-image"
WHEEL = "wheel"


def statement(
    experiment: certify.Verified,
    envelope: Mapping[str, Any],
    deploy: DeployImage,
    *,
    wheel_reproduced: bool,
) -> dict[str, Any]:
    """The deploy image's statement, from the verified experiment certificate ``envelope``."""
    inner = experiment.statement
    if deploy.built_on != experiment.image_id:
        raise certify.CertificateError(
            f"the deploy image is built on {deploy.built_on[:19]}, "
            f"not on the certified {experiment.image_id[:19]}"
        )
    subjects = [
        {
            "name": deploy.reference,
            "digest": {"sha256": deploy.image_id.removeprefix("sha256:")},
            "annotations": {
                "kind": DEPLOY_IMAGE,
                "variant": deploy.variant,
                "built_on": deploy.built_on,
            },
        },
        {
            "name": deploy.wheel,
            "digest": {"sha256": deploy.wheel_sha256},
            "annotations": {"kind": WHEEL},
        },
        *inner["subject"],
    ]
    predicate = {
        **inner["predicate"],
        "harness_version": harness.__version__,
        "certified_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "deployment": {
            "image": {
                "reference": deploy.reference,
                "id": deploy.image_id,
                "built_on": deploy.built_on,
                "layer": deploy.layer,
                "files": deploy.files,
            },
            "wheel": {
                "name": deploy.wheel,
                "sha256": deploy.wheel_sha256,
                # Built twice here with the same bytes (False: given, not rebuilt).
                "reproduced": wheel_reproduced,
            },
            "experiment_certificate": dict(envelope),
        },
    }
    return {**inner, "subject": subjects, "predicate": predicate}


def is_deployment(verified: certify.Verified) -> bool:
    return "deployment" in verified.statement["predicate"]


def _subject(verified: certify.Verified, kind: str) -> Mapping[str, Any]:
    found: list[Mapping[str, Any]] = [
        s for s in verified.statement["subject"] if s["annotations"].get("kind") == kind
    ]
    if len(found) != 1:
        raise certify.CertificateError(f"the deploy certificate names {len(found)} {kind} subjects")
    return found[0]


def check(
    verified: certify.Verified, trusted: list[keys.PublicKey], wheel: Path | None = None
) -> None:
    """A deploy certificate's bindings: the experiment certificate inside verifies with
    ``trusted`` and certifies the image the deploy image is built on, with the same
    results; the wheel subject is the one in the deployment (and ``wheel``, when given)."""
    if not is_deployment(verified):
        if wheel is not None:
            raise ConfigError(
                "--wheel: this is an experiment image's certificate, which holds no wheel",
                "give the deploy image's certificate (`harness deploy` writes it)",
            )
        return
    deployment = verified.statement["predicate"]["deployment"]
    if not isinstance(deployment, dict) or not all(
        isinstance(deployment.get(key), dict)
        for key in ("image", "wheel", "experiment_certificate")
    ):
        raise certify.CertificateError("the deploy certificate's deployment section is malformed")
    image = _subject(verified, DEPLOY_IMAGE)
    built_on = str(image["annotations"].get("built_on"))
    if (
        "sha256:" + str(image["digest"]["sha256"]) != deployment["image"].get("id")
        or deployment["image"].get("built_on") != built_on
    ):
        raise certify.CertificateError("the deploy image subject and its deployment disagree")
    inner = certify.verify_envelope(deployment["experiment_certificate"], trusted, 1)
    if "deployment" in inner.statement["predicate"] or inner.image_id != built_on:
        raise certify.CertificateError(
            f"the experiment certificate inside is not for {built_on[:19]}, "
            "the image the deploy image is built on"
        )
    outer_subjects = verified.statement["subject"]
    if any(subject not in outer_subjects for subject in inner.statement["subject"]) or (
        inner.statement["predicate"].get("experiments")
        != verified.statement["predicate"].get("experiments")
    ):
        raise certify.CertificateError(
            "the deploy certificate's results are not those of the experiment certificate inside"
        )
    verified.checks.append(
        f"the experiment certificate inside verifies: image {built_on[:19]}, signed by "
        f"{', '.join(s[:16] for s in inner.signers)}"
    )
    wheel_subject = _subject(verified, WHEEL)
    sha = str(wheel_subject["digest"]["sha256"])
    if deployment["wheel"].get("sha256") != sha:
        raise certify.CertificateError("the wheel subject and its deployment disagree")
    if wheel is not None:
        if not wheel.is_file():
            raise ConfigError(f"--wheel: {wheel} is not a file", "give the wheel's path")
        if sha256_file(wheel) != sha:
            raise certify.CertificateError(
                f"the wheel {wheel.name} is not the certified one "
                f"({wheel_subject['name']}, sha256 {sha[:16]})",
                "deploy the certified wheel, or make and certify a deploy image for this one",
            )
        verified.checks.append(f"wheel {wheel.name} is the certified one (sha256 {sha[:16]})")
    verified.checks.append(
        f"deploy image {image['digest']['sha256'][:12]} = certified image {built_on[7:19]} "
        f"+ {wheel_subject['name']}"
    )
