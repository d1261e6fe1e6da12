"""`harness gc`: the project's images that nothing names any more, and removing them.

Every rebuild moves the tag ``IMAGE:VARIANT`` to a new image and leaves the old one
untagged, holding its layers: a morning of edits leaves gigabytes of superseded images.
An image is still needed while the project's current build uses it or a run record, a
verification or a certificate of the project names it (``certificate verify --rerun`` and
``harness compare`` go back to it). Everything else of this project goes; images of other
projects and images harness did not build are never candidates.

An image is this project's when its labels say harness built it (the build-input label)
for one of the project's variants under the project's image name (the OCI title
``IMAGE (VARIANT)`` that every build writes). An image that also carries a tag outside
``IMAGE:`` was tagged by someone else on purpose and is kept.

Each build also leaves the image's provenance (``.harness/provenance/ID.intoto.json``): it
goes with its image, and so does one whose image is gone already, unless a document names
that image (the provenance is then evidence for it) or harness built it on another engine
(that engine may still hold it; see :mod:`harness.images.built`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import untrusted
from harness.config import STATE_FOLDER, Config
from harness.engine import ContainerEngine
from harness.images import built
from harness.images.built import LABEL_BUILD_INPUT

_TITLE = "org.opencontainers.image.title"
_VARIANT = "io.harness.variant"
_DIGEST = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
# Saved documents are read within these bounds: a folder of thousands of runs stays cheap.
_DOCUMENT_LIMIT = 16 << 20
# Where each build leaves its image's provenance, in a file named by the image's ID (see
# harness.trust.provenance.path_for, which writes it).
PROVENANCE = STATE_FOLDER / "provenance"
_PROVENANCE_NAME = re.compile(r"([0-9a-f]{64})\.intoto\.json")


@dataclass(frozen=True)
class ProjectImage:
    """An image of this project on the engine, and why it is kept (None: it can go)."""

    image_id: str
    tags: tuple[str, ...]
    variant: str
    size: int
    kept_because: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.image_id,
            "tags": list(self.tags),
            "variant": self.variant,
            "size": self.size,
            "kept_because": self.kept_because,
        }


def project_images(engine: ContainerEngine, config: Config) -> list[ProjectImage]:
    """Every image of this project the engine holds, each with why it is kept, if it is."""
    named = named_image_ids(config.project_root)
    current = {
        info.id
        for variant in config.variants
        if (info := engine.image(f"{config.image}:{variant}")) is not None
    }
    found = []
    for attributes in engine.every_image_attributes():
        labels = (attributes.get("Config") or {}).get("Labels") or {}
        variant = str(labels.get(_VARIANT) or "")
        if not _of_project(labels, config, variant):
            continue
        image_id = str(attributes["Id"])
        tags = tuple(attributes.get("RepoTags") or ())
        foreign = [tag for tag in tags if not tag.startswith(f"{config.image}:")]
        if image_id in current:
            why: str | None = "the current build"
        elif image_id in named:
            why = f"named by {named[image_id]}"
        elif foreign:
            why = f"also tagged {foreign[0]}"
        else:
            why = None
        found.append(ProjectImage(image_id, tags, variant, int(attributes.get("Size") or 0), why))
    return sorted(found, key=lambda image: (image.kept_because is not None, image.image_id))


def _of_project(labels: dict[str, str], config: Config, variant: str) -> bool:
    return (
        bool(labels.get(LABEL_BUILD_INPUT))
        and variant in config.variants
        and labels.get(_TITLE) == f"{config.image} ({variant})"
    )


def named_image_ids(project_root: Path) -> dict[str, str]:
    """Image IDs (``sha256:HEX``) that the project's run records, verifications and
    certificates name, each with the first document that names it."""
    named: dict[str, str] = {}
    state = project_root / STATE_FOLDER
    for kind, pattern in (
        ("a run record", "runs/*/record.json"),
        ("a verification", "verifications/*.json"),
        ("a certificate", "certificates/*.json"),
    ):
        for path in sorted(state.glob(pattern)):
            for image_id in _image_ids(path):
                named.setdefault(image_id, f"{kind} ({path.relative_to(project_root)})")
    return named


def _image_ids(path: Path) -> Iterator[str]:
    """Every sha256 a document holds, as an image ID: an over-approximation that can only
    keep an image, never remove one a document names. A certificate's statement is the
    base64 payload of its envelope, decoded first."""
    try:
        document = untrusted.load_json(path, what="a saved document", limit=_DOCUMENT_LIMIT)
    except (OSError, untrusted.UntrustedInputError):
        return
    texts = [path.name, json.dumps(document)]
    payload = document.get("payload") if isinstance(document, dict) else None
    if isinstance(payload, str):
        with contextlib.suppress(ValueError):
            texts.append(base64.b64decode(payload + "==").decode("utf-8", "replace"))
    for text in texts:
        yield from (f"sha256:{digest}" for digest in _DIGEST.findall(text))


@dataclass(frozen=True)
class Collected:
    removed: list[ProjectImage]
    kept: list[ProjectImage]
    freed: int | None
    # Provenance files removed (or, on a dry run, that would be).
    provenance: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "removed": [image.as_dict() for image in self.removed],
            "kept": [image.as_dict() for image in self.kept],
            "freed_bytes": self.freed,
            "provenance_removed": [str(path) for path in self.provenance],
        }


def collect(
    engine: ContainerEngine,
    images: Iterable[ProjectImage],
    *,
    dry_run: bool = False,
    project_root: Path | None = None,
) -> Collected:
    """Remove the images nothing keeps (with the untagged build steps that served only
    them); an image a container still uses stays. ``freed`` is the change in the engine's
    layer bytes (None on a dry run). With ``project_root``, the provenance of each image
    removed goes too, and that of images gone already (see :func:`stale_provenance`)."""
    images = list(images)
    kept = [image for image in images if image.kept_because is not None]
    candidates = [image for image in images if image.kept_because is None]
    if dry_run:
        going = [image.image_id for image in candidates]
        stale = stale_provenance(engine, project_root, going) if project_root else []
        return Collected(candidates, kept, None, stale)
    before = engine.layers_size()
    removed = []
    for image in candidates:
        if engine.remove_unused_image(image.image_id, prune=True):
            removed.append(image)
        else:
            kept.append(
                ProjectImage(
                    image.image_id,
                    image.tags,
                    image.variant,
                    image.size,
                    "the engine refused (a container uses it)",
                )
            )
    freed = max(0, before - engine.layers_size())
    removed_provenance = []
    if project_root is not None:
        going = [image.image_id for image in removed]
        for path in stale_provenance(engine, project_root, going):
            try:
                path.unlink(missing_ok=True)  # a link goes itself, never what it points at
            except OSError:
                continue  # not ours to remove (another user's file): it stays, unlisted
            removed_provenance.append(path)
    return Collected(removed, kept, freed, removed_provenance)


def stale_provenance(
    engine: ContainerEngine, project_root: Path, removed: Iterable[str] = ()
) -> list[Path]:
    """The project's provenance files whose image is in ``removed``, or is neither on the
    engine, nor named by a run record, verification or certificate of the project, nor
    built by harness on another engine. Files not named like an image's provenance are
    never listed, nor anything under a state or provenance folder that is a link (a
    repository could point one at files elsewhere)."""
    folder = project_root / PROVENANCE
    if folder.parent.is_symlink() or folder.is_symlink():
        return []
    found: dict[str, Path] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                match = _PROVENANCE_NAME.fullmatch(entry.name)
                if match and not entry.is_dir(follow_symlinks=False):
                    found[f"sha256:{match[1]}"] = Path(entry.path)
    except OSError:
        return []  # no provenance folder yet
    if not found:
        return []
    going = set(removed)
    on_engine = {str(attributes.get("Id")) for attributes in engine.every_image_attributes()}
    named = named_image_ids(project_root)
    elsewhere = built.built_elsewhere(engine)
    return sorted(
        path
        for image_id, path in found.items()
        if image_id in going
        or (image_id not in on_engine and image_id not in named and image_id not in elsewhere)
    )
