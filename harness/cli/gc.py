"""`harness gc`: remove the project's images that nothing names any more.

The choice of images is :mod:`harness.images.gc`'s; this module prints it and asks the
engine to act.
"""

from __future__ import annotations

import click

from harness.cli.options import json_option
from harness.cli.state import State
from harness.images import gc


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@json_option("what was removed and kept")
@click.pass_obj
def gc_command(state: State, *, dry_run: bool, as_json: bool) -> None:
    """Remove this project's images that no run record, verification or certificate
    names and that are not the current build; print the space freed. The provenance
    of each image removed goes with it (.harness/provenance/ID.intoto.json), and so does
    that of an image gone already that no document names and harness did not build on
    another engine.

    Only images harness built for this project (by their labels: the build input, and
    the title IMAGE (VARIANT) of one of its variants) are candidates; other projects'
    images, and an image someone tagged outside IMAGE:, are never touched.

    \b
      harness gc --dry-run     what would go, and why the rest stays
      harness gc               remove it
    """
    from harness.engine import Engine  # noqa: PLC0415  # the docker SDK is slow to import

    config = state.config()
    engine = Engine.connect(config.docker_host)
    images = gc.project_images(engine, config)
    collected = gc.collect(engine, images, dry_run=dry_run, project_root=config.project_root)
    if as_json:
        state.ui.json({"dry_run": dry_run, **collected.as_dict()})
        return
    verb = "would remove" if dry_run else "removed"
    for image in collected.removed:
        tags = f" ({', '.join(image.tags)})" if image.tags else ""
        state.ui.result(f"{verb:<12} {image.image_id[7:19]} {image.variant:<6}{tags}")
    for image in collected.kept:
        why = image.kept_because
        state.ui.result(f"{'kept':<12} {image.image_id[7:19]} {image.variant:<6} {why}")
    for path in collected.provenance:
        state.ui.result(f"{verb:<12} {path.relative_to(config.project_root)}")
    if dry_run:
        listed = sum(image.size for image in collected.removed)
        state.ui.result(
            f"{len(collected.removed)} image(s) to remove (at most {_size(listed)}, less what "
            f"they share with kept images); {len(collected.kept)} kept"
        )
    else:
        state.ui.result(
            f"removed {len(collected.removed)} image(s), freed {_size(collected.freed or 0)}; "
            f"{len(collected.kept)} kept"
        )
