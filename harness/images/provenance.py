"""What an image was built from, as SLSA build provenance v1 (an in-toto Statement).

Deployers check images with tools that read SLSA provenance, not harness's labels, so every
image harness builds gets a statement in that format: its subject is the image (the sha256
of its ID, the digest of its configuration); its ``resolvedDependencies`` name the base
image by digest, the Dockerfile, the constraints file and every wheel installed with its
sha256, the source commit, and the digest of harness's own files (whose wheel the image
installs); the builder is harness at its version. Everything in it comes from the inputs the
build already checked (the pins' hashes, the wheel cache's choice for each pin), and the
parts an image carries as labels (base digest, Dockerfile and constraints sha256, harness's
version, the build input) are what a verifier compares it with again (see
:mod:`harness.trust.provenance`, which signs and checks it).

This module only builds the statement: it is pure data, so it is tested without an engine.

References: https://slsa.dev/spec/v1.0/provenance and
https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import harness
from harness import vcs
from harness.images import wheelindex
from harness.images.wheelcache import Choice

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# What a harness image build is: its external parameters are those below, its steps the
# Dockerfile's, installing only the pinned wheels from a context harness assembled.
BUILD_TYPE = "https://harness.dev/image-build/v1"
BUILDER = "https://harness.dev/builder/harness"

# The names of the dependencies a verifier compares with the image's labels.
BASE_IMAGE = "base-image"
DOCKERFILE = "Dockerfile"
CONSTRAINTS = "constraints"
SOURCE = "source"
HARNESS_RUNTIME = "harness-runtime"
CA_BUNDLE = "ca-bundle"
WHEEL_URI_PREFIX = "pkg:pypi/"


def builder_id(version: str | None = None) -> str:
    return f"{BUILDER}@{version or harness.__version__}"


def statement(
    *,
    reference: str,
    image_id: str,
    variant: str,
    labels: Mapping[str, str],
    base_reference: str,
    base_digest: str,
    dockerfile_label: str,
    dockerfile_sha256: str,
    constraints_name: str,
    constraints_sha256: str,
    harness_source: str,
    ca_bundle_sha256: str,
    wheels: Sequence[Choice],
    source: vcs.SourceState,
    parameters: Mapping[str, Any],
    build_input: str,
    finished: dt.datetime | None = None,
) -> dict[str, Any]:
    """The SLSA provenance statement of image ``image_id`` (``sha256:HEX``)."""
    dependencies: list[dict[str, Any]] = [
        {
            "name": BASE_IMAGE,
            "uri": base_reference,
            "digest": {"sha256": base_digest.removeprefix("sha256:")},
        },
        {
            "name": DOCKERFILE,
            "uri": dockerfile_label,
            "digest": {"sha256": dockerfile_sha256},
        },
        {
            "name": CONSTRAINTS,
            "uri": constraints_name,
            "digest": {"sha256": constraints_sha256},
        },
    ]
    if source.commit:
        commit: dict[str, Any] = {
            "name": SOURCE,
            "digest": {"gitCommit": source.commit},
            "annotations": {"dirty": source.dirty},
        }
        if source.origin:
            commit["uri"] = f"git+{source.origin}@{source.commit}"
        dependencies.append(commit)
    dependencies.append(
        {
            "name": HARNESS_RUNTIME,
            "uri": f"{WHEEL_URI_PREFIX}harness@{harness.__version__}",
            "digest": {"sha256": harness_source.removeprefix("sha256:")},
            "annotations": {"digest_of": "harness's source files, built into its wheel"},
        }
    )
    if ca_bundle_sha256:
        dependencies.append({"name": CA_BUNDLE, "digest": {"sha256": ca_bundle_sha256}})
    for wheel in sorted(wheels, key=lambda w: w.name):
        dependencies.append(
            {
                "name": wheel.filename,
                "uri": f"{WHEEL_URI_PREFIX}{wheel.name}@{wheel.version}",
                "digest": {"sha256": wheel.sha256},
            }
        )
    when = (finished or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": reference, "digest": {"sha256": image_id.removeprefix("sha256:")}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"variant": variant, "image": reference, **parameters},
                # The image's labels as harness wrote them: what a verifier compares again.
                "internalParameters": {"labels": dict(sorted(labels.items()))},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": builder_id(), "version": {"harness": harness.__version__}},
                "metadata": {"invocationId": build_input, "finishedOn": when},
            },
        },
    }


def external_parameters(
    *, python: str, platform: str, index_url: str, find_links: bool, rewrite_layers: bool
) -> dict[str, Any]:
    """The build's parameters a user chose: the index without credentials, and whether
    extra wheel folders were offered (their paths are this machine's, not the build's)."""
    return {
        "python": python,
        "platform": platform,
        "index_url": wheelindex.redact(index_url),
        "find_links": find_links,
        "rewrite_layers": rewrite_layers,
    }
