"""The frameworks' layers: each large pin's files kept in normal form, and stacked by harness.

An engine's layer is bound to the layers below it (its ID in the engine is the chain of
every diff ID up to it), so a Dockerfile that installs one pin per step installs every pin
above a moved one again. Each layer's files, though, depend on the base and its own pins
only (they are installed alone, into an empty tree: see ``Dockerfile.frameworks-layer``).
So harness builds a layer once, takes it out of the engine as an archive in the normal form
of :func:`harness.images.filesystem.normalise_layer` (sorted, times 0, owners by number:
the same bytes from every build of it), keeps it in the layer cache, and makes the
frameworks image itself: the tier's configuration with the layers' diff IDs added,
written canonically and loaded. The engine receives only the layers whose chain it does
not hold (those above a moved pin); the image ID is the digest of that configuration, so
the same pins give the same image on every engine.

Layout, under ``$HARNESS_LAYER_CACHE`` (default ``$XDG_CACHE_HOME/harness/layers``)::

    DIGEST.tar    the layer of the build input DIGEST, in normal form (read-only)
    DIGEST.json   its diff ID, size and pins

Entries are written whole or not at all (renamed into place), read only when their size
and diff ID are as recorded, and the least recently used go once the folder holds more
than :data:`LIMIT_BYTES`: a lost entry costs one install of its pins.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness import atomic, untrusted
from harness.engine import ContainerEngine, layer_ids
from harness.errors import BuildError, EngineError
from harness.images import config as imageconfig
from harness.images import filesystem as imagefs
from harness.images.wheelcache import Choice

ENV = "HARNESS_LAYER_CACHE"
SCHEMA = "harness.frameworks-layer/v1"
# The cache keeps at most this much; the least recently used layers go first.
LIMIT_BYTES = 16 << 30
# The comment of a stacked layer's history entry.
HISTORY_COMMENT = "harness frameworks layer"
_ENTRY_LIMIT = 1 << 20
# A workspace this old is an interrupted build's: prune removes it.
_STALE_WORKSPACE_SECONDS = 3600
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def cache_root() -> Path:
    """Where the cache lives: ``$HARNESS_LAYER_CACHE``, else the user's cache folder."""
    configured = os.environ.get(ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness" / "layers"


@dataclass(frozen=True)
class Layer:
    """One layer in the cache: the input it was built from, and its archive."""

    digest: str
    diff_id: str
    size: int
    path: Path
    pins: tuple[str, ...]

    def history_line(self) -> str:
        return f"harness layer: {' '.join(self.pins)}"


def pin_lines(choices: Iterable[Choice]) -> tuple[str, ...]:
    return tuple(sorted(f"{c.name}=={c.version}" for c in choices))


class LayerCache:
    """The folder of kept layers (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, digest: str) -> Layer | None:
        """The layer built from ``digest``, if it is kept whole; marked as just used."""
        if not _DIGEST.match(digest):
            return None
        entry, archive = self.root / f"{digest}.json", self.root / f"{digest}.tar"
        try:
            document = untrusted.load_json(
                entry, what="the layer cache's entry", limit=_ENTRY_LIMIT, follow_symlinks=False
            )
            status = archive.lstat()
        except (OSError, untrusted.UntrustedInputError):
            return None
        if (
            not isinstance(document, dict)
            or document.get("schema") != SCHEMA
            or not archive.is_file()
            or archive.is_symlink()
            or status.st_size != document.get("size")
            or not isinstance(document.get("diff_id"), str)
        ):
            return None
        pins = tuple(str(pin) for pin in document.get("pins") or ())
        os.utime(entry)  # the prune's "last used"
        return Layer(digest, document["diff_id"], status.st_size, archive, pins)

    def store(self, digest: str, archive: Path, diff_id: str, pins: Sequence[str]) -> Layer:
        """Move the normal-form ``archive`` (on the same file system) into the cache."""
        self.root.mkdir(parents=True, exist_ok=True)
        size = archive.stat().st_size
        target = self.root / f"{digest}.tar"
        archive.chmod(0o444)
        archive.replace(target)
        document = {"schema": SCHEMA, "diff_id": diff_id, "size": size, "pins": list(pins)}
        atomic.write_text(self.root / f"{digest}.json", json.dumps(document, sort_keys=True))
        self.prune(keep={digest})
        return Layer(digest, diff_id, size, target, tuple(pins))

    def workspace(self) -> tempfile.TemporaryDirectory[str]:
        """A temporary folder beside the cache, so that a finished archive is renamed in."""
        self.root.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=".tmp-", dir=self.root)

    def prune(self, keep: Iterable[str] = (), limit: int = LIMIT_BYTES) -> list[str]:
        """Remove the least recently used layers until the cache holds ``limit`` at most."""
        kept = set(keep)
        entries = []
        for entry in self.root.glob("*.json"):
            archive = entry.with_suffix(".tar")
            try:
                entries.append((entry.stat().st_mtime, entry, archive, archive.stat().st_size))
            except OSError:
                continue
        total = sum(size for *_, size in entries)
        removed = []
        for _, entry, archive, size in sorted(entries):
            if total <= limit:
                break
            if entry.stem in kept:
                continue
            entry.unlink(missing_ok=True)
            archive.unlink(missing_ok=True)
            total -= size
            removed.append(entry.stem)
        return removed

    def prune_unused(self, unused_for: float | None) -> tuple[int, int]:
        """Remove the layers no build used for ``unused_for`` seconds (None: every one),
        and workspaces an interrupted build left; returns how many layers, how many bytes."""
        now = time.time()
        removed = size = 0
        for entry in sorted(self.root.glob("*.json")):
            archive = entry.with_suffix(".tar")
            try:
                used = entry.stat().st_mtime
                held = archive.stat().st_size if archive.is_file() else 0
            except OSError:
                continue
            if unused_for is None or now - used > unused_for:
                entry.unlink(missing_ok=True)
                archive.unlink(missing_ok=True)
                removed += 1
                size += held
        for leftover in self.root.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if now - leftover.stat().st_mtime > _STALE_WORKSPACE_SECONDS:
                    shutil.rmtree(leftover, ignore_errors=True)
        return removed, size


def open_cache() -> LayerCache:
    return LayerCache(cache_root())


def take(engine: ContainerEngine, image_id: str, workspace: Path) -> tuple[str, Path]:
    """The one layer of the image ``image_id`` (built FROM scratch), in normal form in
    ``workspace``: its diff ID and file."""
    layers = imageconfig.normalised_layers(engine, image_id, workspace, 0)
    if len(layers) != 1:
        raise BuildError(
            f"the frameworks layer {image_id[:19]} has {len(layers)} layers, not one",
            "its Dockerfile must install FROM scratch with one COPY",
        )
    diff_id, path, _ = layers[0]
    return diff_id, path


def stacked_config(
    engine: ContainerEngine, tier_id: str, layers: Sequence[Layer], labels: Mapping[str, str]
) -> bytes:
    """The configuration of the tier ``tier_id`` with ``layers`` on it, canonical."""
    attributes = engine.image_attributes(tier_id)
    if attributes is None:
        raise EngineError(f"the frameworks image {tier_id} has disappeared from the engine")
    diff_ids = layer_ids(attributes)
    history = imageconfig.layer_history(engine, tier_id, len(diff_ids))
    if history is None:
        history = imageconfig.saved_history(engine, tier_id)
    history = [
        *history,
        *({"created_by": layer.history_line(), "comment": HISTORY_COMMENT} for layer in layers),
    ]
    return imageconfig.serialise(
        imageconfig.canonical_config(
            attributes,
            history,
            epoch=0,
            labels=labels,
            diff_ids=[*diff_ids, *(layer.diff_id for layer in layers)],
        )
    )


def held_prefix(engine: ContainerEngine, diff_ids: Sequence[str]) -> int:
    """How many of ``diff_ids``, from the first, some image on the engine starts with:
    the engine holds that chain of layers, and needs none of their files again."""
    longest = 0
    for attributes in engine.every_image_attributes():
        theirs = layer_ids(attributes)
        common = 0
        while common < min(len(theirs), len(diff_ids)) and theirs[common] == diff_ids[common]:
            common += 1
        longest = max(longest, common)
    return longest


def stack(
    engine: ContainerEngine,
    tier_id: str,
    layers: Sequence[Layer],
    labels: Mapping[str, str],
    say: Callable[[str], None] = lambda _: None,
) -> str:
    """Load the frameworks image of ``layers`` on the tier ``tier_id``; returns its ID.

    Only the layers whose chain the engine lacks travel: the engine looks each layer up by
    its chain before it would open the layer's file, so the manifest names the others'
    files without the archive holding them.
    """
    config = stacked_config(engine, tier_id, layers, labels)
    image_id = imageconfig.image_id_of(config)
    if engine.image(image_id) is not None:
        return image_id
    document = json.loads(config)
    diff_ids: list[str] = document["rootfs"]["diff_ids"]
    below = len(diff_ids) - len(layers)
    held = max(below, held_prefix(engine, diff_ids))
    sent = [(index, layers[index - below]) for index in range(held, len(diff_ids))]
    say(
        f"stacking {len(layers)} layers of large pins on the frameworks tier "
        f"({len(sent)} sent to the engine, {sum(layer.size for _, layer in sent) >> 20} MiB)"
    )
    digest = image_id.split(":", 1)[1]
    manifest = imageconfig.serialise(
        [
            {
                "Config": f"{digest}.json",
                "RepoTags": None,
                "Layers": [f"{index}/layer.tar" for index in range(len(diff_ids))],
            }
        ]
    )
    with ExitStack() as files:
        members: list[tuple[str, IO[bytes] | bytes, int]] = [
            (f"{index}/layer.tar", files.enter_context(layer.path.open("rb")), layer.size)
            for index, layer in sent
        ]
        members += [
            (f"{digest}.json", config, len(config)),
            ("manifest.json", manifest, len(manifest)),
        ]
        engine.load(imagefs.tar_stream(members))
    if engine.image(image_id) is None:
        raise EngineError(f"the engine did not keep the stacked frameworks image {image_id}")
    return image_id


# Run in the stacked image: its environment holds exactly the large pins, once each, and
# every file their RECORDs name. Standard library only (the image has nothing else yet).
_CHECK = """\
import importlib.metadata as metadata, json, re, sys
site, expected = sys.argv[1], json.loads(sys.argv[2])
found = {}
problems = []
for dist in metadata.distributions(path=[site]):
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
    found.setdefault(name, []).append(dist.version)
    if name in expected:
        missing = [str(f) for f in dist.files or () if not f.locate().exists()]
        if missing:
            problems.append(f"{name}: {len(missing)} recorded files missing, e.g. {missing[0]}")
for name, version in sorted(expected.items()):
    if found.get(name) != [version]:
        problems.append(f"{name}=={version}: found {found.get(name) or 'nothing'}")
problems += [f"{name} is installed but not pinned" for name in sorted(set(found) - set(expected))]
print("; ".join(problems))
sys.exit(1 if problems else 0)
"""


def check(engine: ContainerEngine, image_id: str, python: str, pins: Iterable[Choice]) -> None:
    """Prove the stacked image's environment is the one an install of ``pins`` gives."""
    site = f"/opt/harness/venv/lib/python{python}/site-packages"
    expected = {re.sub(r"[-_.]+", "-", c.name).lower(): c.version for c in pins}
    result = engine.run(
        image_id,
        ["/opt/harness/venv/bin/python", "-I", "-S", "-c", _CHECK, site, json.dumps(expected)],
        timeout=300,
    )
    if result.exit_code != 0:
        raise BuildError(
            "the frameworks image stacked from its layers is not the environment its "
            f"pins make: {result.output.strip()[-2000:]}",
            "build again with --no-cache; if it persists, two large pins install the same files",
        )
