"""The checks a certificate gate makes: which keys it trusts, whether an image in hand is
certified, and whether a certified experiment reproduces when run again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.compare.tree import compare_paths
from harness.config import Config
from harness.engine import Engine
from harness.errors import HarnessError
from harness.images.build import BuildResult
from harness.runs import records
from harness.runs import run as run_module
from harness.trust import certify, keys
from harness.ui import prefixed


def trusted_keys(
    config: Config,
    command_line: Sequence[Path],
    settings: certify.Settings,
    *,
    required: bool = True,
) -> list[keys.PublicKey]:
    """The keys a gate trusts: the command line's or this machine's, narrowed by the
    project's list (see :mod:`harness.trust.keys`); none at all is an error when ``required``."""
    try:
        return keys.trusted_keys(config.project_root, command_line, settings.trusted_keys)
    except HarnessError as error:
        if required or error.message != keys.NO_TRUSTED_KEY:
            raise
        return []


def rerun(
    engine: Engine, config: Config, verified: certify.Verified, say: Callable[[str], None]
) -> None:
    """Run each certified experiment again on the certified image; refuse on any change."""
    predicate = verified.statement["predicate"]
    info = engine.image(verified.image_id)
    if info is None:
        raise HarnessError(
            f"the engine has no image {verified.image_id[:19]}", "pull the certified image first"
        )
    image = BuildResult(
        predicate["image"]["reference"],
        info.id,
        predicate["image"]["variant"],
        True,
        0.0,
        info.size,
        info.labels,
    )
    for certified in predicate["experiments"]:
        experiment = config.experiment(certified["name"])
        request = run_module.RunRequest(
            experiment, predicate["seed"], predicate["profile"], predicate["threads"]
        )
        result = run_module.run_experiment(
            engine, config, image, request, say=prefixed(say, experiment.name)
        )
        if result.status != "succeeded":
            raise certify.CertificateError(
                f"the rerun of {experiment.name} {result.status}: {result.record.get('error')}"
            )
        compare_rerun(config, certified, result)
        verified.checks.append(f"{experiment.name} reproduced again in run {result.run_id}")


def compare_rerun(config: Config, certified: dict[str, Any], result: run_module.RunResult) -> None:
    """Refuse a rerun whose artifacts differ from the certified ones under their policies."""
    digests = result.digests
    for artifact in certified["artifacts"]:
        if digests.get(artifact["path"]) == artifact["sha256"]:
            continue
        reference = records.runs_root(config.project_root) / certified["control_runs"][0]
        if artifact["policy"] != "bitwise" and reference.is_dir():
            comparison = compare_paths(
                str(reference), str(result.folder), policies={artifact["path"]: artifact["policy"]}
            )
            if all(a.passed for a in comparison.artifacts if a.path == artifact["path"]):
                continue
        raise certify.CertificateError(
            f"the rerun's {certified['name']}/{artifact['path']} differs from the certified one"
        )


def require_certificates(config: Config, images: dict[str, BuildResult]) -> None:
    """`harness run --require-certificate`: refuse images whose certificate does not verify."""
    settings = certify.settings(config.table("certify"), config.project_root)
    trusted = trusted_keys(config, (), settings)
    for image in images.values():
        path = certify.certificate_path(config.project_root, image.image_id)
        if not path.is_file():
            raise certify.CertificateError(
                f"image {image.reference} ({image.image_id[:19]}) has no certificate at {path}",
                "verify and certify it first (`harness verify && harness certify`)",
            )
        document = certify.read_envelope(path)
        certify.check_image(
            certify.verify_envelope(document, trusted, settings.threshold), image.image_id
        )
