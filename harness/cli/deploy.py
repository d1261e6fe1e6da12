"""`harness deploy`: the deploy image (the certified image plus the project's wheel) and
its certificate, in one step after `harness certify`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import json_option
from harness.cli.state import State
from harness.config import STATE_FOLDER
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError
from harness.images import build as build_module
from harness.images import built as builtimages
from harness.images import deploy as deploy_module
from harness.images.package import check_project_wheel
from harness.trust import certify, deploy_certificate, gate, keys

# Where the certified wheel is kept, beside the deploy certificate.
WHEELS = STATE_FOLDER / "dist"


@click.command("deploy")
@click.option("--variant", default="cpu", show_default=True, help="The certified image's variant.")
@click.option(
    "--certificate",
    "certificate_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The experiment image's certificate (default: that of the variant's current image).",
)
@click.option(
    "--wheel",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The project's wheel (default: built twice now, as `harness package` does; the two "
    "must be identical).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key that signs (default: harness.key in the keys folder).",
)
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Public key that may have signed the experiment certificate (repeatable; default: "
    f"${keys.TRUSTED_ENV} or ~/.config/harness/trusted/*.pub; the signing key always counts).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Certificate file (default: .harness/certificates/DEPLOY_IMAGE_ID.intoto.json).",
)
@json_option("the deploy image and its certificate")
@click.pass_obj
def deploy_command(
    state: State,
    *,
    variant: str,
    certificate_file: Path | None,
    wheel: Path | None,
    key: Path | None,
    trusted: tuple[Path, ...],
    output: Path | None,
    as_json: bool,
) -> None:
    """Make the image to deploy, the certified image plus the project's wheel, and certify it.

    The experiment image's certificate is verified first; the wheel is built twice with
    hashed build constraints and must come out the same; its dependencies must be pinned
    in the certified image. harness writes the wheel's layer itself on top of the certified
    image, unchanged, so the same certified image and wheel give the same image ID; it
    writes it twice to check. A container of the image, without network, must find the
    package. The certificate (in-toto, DSSE, ed25519) binds the deploy image's ID to the
    certified image, the wheel's sha256 and the reproduced results, and holds the
    experiment certificate.

    \b
      harness verify && harness certify && harness deploy
      harness certificate verify .harness/certificates/ID.intoto.json --key KEY.pub \\
          --image IMAGE:cpu-deploy

    Exit 0 when made and certified, 1 when the wheel's two builds differ, 2 on trouble.
    """
    config = state.config()
    chosen = config.variant(variant)
    engine = state.engine(config)
    private = keys.load_private_key(key or keys.keys_dir(config.project_root) / keys.DEFAULT_KEY)
    settings = certify.settings(config.table("certify"), config.project_root)
    trusted_keys = [
        keys.public_of(private),
        *gate.trusted_keys(config, trusted, settings, required=False),
    ]
    current: str | None = None
    if certificate_file is None:
        prepared = build_module.prepare(
            engine, build_module.plan(config, chosen.name), state.ui.say
        )
        found = builtimages.find(engine, prepared.build_input)
        if found is None:
            raise HarnessError(
                f"the {chosen.name} image of the current inputs (constraints, Dockerfile, "
                "harness's runtime) is not built, so no certificate covers it",
                "run `harness build`, `harness verify` and `harness certify` first",
            )
        current = found.id
        certificate_file = certify.certificate_path(config.project_root, found.id)
        if not certificate_file.is_file():
            raise HarnessError(
                f"the {chosen.name} image {found.id[:19]} has no certificate at "
                f"{certificate_file.relative_to(config.project_root)}",
                "verify and certify it first (`harness verify && harness certify`)",
            )
    envelope = certify.read_envelope(certificate_file)
    experiment = certify.verify_envelope(envelope, trusted_keys, settings.threshold)
    if deploy_certificate.is_deployment(experiment):
        raise ConfigError(
            f"{certificate_file} is a deploy image's certificate",
            "give the experiment image's certificate (`harness certify` writes it)",
        )
    if current is not None:
        certify.check_image(experiment, current)
    state.ui.say(f"the certificate of image {experiment.image_id[:19]} verifies")

    wheel_reproduced = wheel is None
    if wheel is None:
        state.ui.say("building the project's wheel twice (uv build, hashed build constraints)")
        packaged = check_project_wheel(config, config.project_root / WHEELS)
        if not packaged.identical or packaged.kept is None:
            state.ui.result(packaged.summary())
            raise click.exceptions.Exit(EXIT_DIFFERS)
        wheel = packaged.kept
    image = deploy_module.build(
        engine, config, chosen, experiment.image_id, wheel, say=state.ui.say
    )
    document = certify.envelope(
        deploy_certificate.statement(
            experiment, envelope, image, wheel_reproduced=wheel_reproduced
        ),
        private,
    )
    path = output or certify.certificate_path(config.project_root, image.image_id)
    certify.write(path, document)
    if as_json:
        state.ui.json({**image.as_dict(), "certificate": str(path)})
        return
    state.ui.result(
        f"{image.reference} {image.image_id} (image {image.built_on[:19]} + {image.wheel})"
    )
    state.ui.result(f"certificate {path}")
