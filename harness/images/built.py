"""Which images harness itself built: the only images a build may take as a cache hit.

A label proves nothing about who built an image: an image built ``FROM harness:cpu``
inherits every label of it, the build-input digest included, and would otherwise pass
for an unchanged rebuild, get the tag, and be what every later run and shipment uses.
So each image harness finishes is written down here, per engine: its build input, its
ID and its layers. A cache hit is an image of that index that the engine still holds
with the same ID, the same layers and the build-input label; anything else is rebuilt.

The index lives in the user's cache folder (``$XDG_CACHE_HOME/harness``), outside every
project. Losing it costs one rebuild, which gives the same image ID again (the builds are
reproducible), and writes it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness import atomic, untrusted
from harness.engine import PODMAN, ContainerEngine, ImageInfo, layer_ids

SCHEMA = "harness.built-images/v1"
# Label that names an image's build input (the same as harness.images.build's, which imports this).
LABEL_BUILD_INPUT = "io.harness.build-input.sha256"
# Entries kept per engine: the newest win; older inputs are rebuilt if ever built again.
_KEPT_PER_ENGINE = 200
_INDEX_LIMIT = 8 << 20


def index_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness" / "built-images.json"


def find(engine: ContainerEngine, build_input: str) -> ImageInfo | None:
    """The image harness built on this engine from ``build_input``, if it is still there
    as it was built; None otherwise."""
    entry = _read().get(_engine_id(engine), {}).get(build_input)
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    attributes = engine.image_attributes(entry["id"])
    if attributes is None:
        return None
    info = ImageInfo.from_attrs(attributes)
    if info.id != entry["id"] or info.labels.get(LABEL_BUILD_INPUT) != build_input:
        return None
    if layer_ids(attributes) != entry.get("layers"):
        return None
    return info


def remember(engine: ContainerEngine, build_input: str, image_id: str) -> None:
    """Write down that harness built ``image_id`` from ``build_input`` on this engine."""
    attributes = engine.image_attributes(image_id)
    if attributes is None:
        return
    index = _read()
    engine_id = _engine_id(engine)
    entries = dict(index.get(engine_id, {}))
    entries.pop(build_input, None)
    entries[build_input] = {"id": image_id, "layers": layer_ids(attributes)}
    index[engine_id] = dict(list(entries.items())[-_KEPT_PER_ENGINE:])
    atomic.write_text(index_path(), json.dumps({"schema": SCHEMA, "engines": index}, indent=1))


def built_elsewhere(engine: ContainerEngine) -> set[str]:
    """The IDs of the images the index says harness built on engines other than this one."""
    here = _engine_id(engine)
    return {
        str(entry["id"])
        for engine_id, entries in _read().items()
        if engine_id != here
        for entry in entries.values()
        if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }


def _engine_id(engine: ContainerEngine) -> str:
    """The engine's own ID, which survives restarts and differs between engines.

    Podman answers each request with a new random ID; its store (host name and storage
    root) is what stays, so that names it.
    """
    info = engine.info()
    if engine.product == PODMAN:
        return f"podman:{info.get('Name')}:{info.get('DockerRootDir')}"
    return str(info.get("ID") or engine.where)


def _read() -> dict[str, dict[str, Any]]:
    """The index, or an empty one when it is missing or unreadable (a rebuild repairs it)."""
    try:
        document = untrusted.load_json(
            index_path(), what="the built-images index", limit=_INDEX_LIMIT
        )
    except (FileNotFoundError, untrusted.UntrustedInputError):
        return {}
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        return {}
    engines = document.get("engines")
    if not isinstance(engines, dict):
        return {}
    return {k: v for k, v in engines.items() if isinstance(v, dict)}
