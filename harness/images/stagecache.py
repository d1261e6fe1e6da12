"""An image's install stage, kept on the engine between builds of that image.

harness's Dockerfiles install the small pins and harness's runtime in a stage built on the
base, then copy its trees onto the frameworks image. That stage depends on the base and the
small pins alone: when only a large pin moved, the next build would install and compile
every small pin again (most of such a rebuild) to get the same files. So the stage's images
stay on the engine, and the engine's own cache gives them to the next build, which then
only copies; harness still removes every other step's image.

Kept, they would pile up, one stage per change of the small pins or of harness: so each
image reference keeps the stage of its latest build only. The images kept for a reference
are written down here, per engine; the next build of that reference removes those it no
longer uses (newest first; the engine refuses to remove one that another build or image
still uses, and it stays). `harness build --no-cache` keeps nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from harness import atomic, untrusted
from harness.engine import PODMAN, ContainerEngine

SCHEMA = "harness.kept-stages/v1"
_INDEX_LIMIT = 4 << 20
_KEPT_PER_ENGINE = 200


def index_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness" / "kept-stages.json"


def keep(engine: ContainerEngine, reference: str, stage: Sequence[str]) -> None:
    """Keep ``stage`` (the install stage's images of the build just finished, oldest
    first) for ``reference``, and remove what its earlier builds kept that still exists."""
    index = _read()
    engine_id = _engine_id(engine)
    entries: dict[str, list[object]] = dict(index.get(engine_id, {}))
    earlier = [str(i) for i in entries.pop(reference, []) if isinstance(i, str)]
    survivors: list[str] = []
    for image in reversed(earlier):
        if image in stage or not engine.remove_unused_image(image):
            survivors.insert(0, image)
    # Still there: a part of the new stage's chain (its cache hits), or in use elsewhere.
    kept = [i for i in survivors if i not in stage and engine.image(i) is not None]
    combined: list[object] = [*kept, *stage]
    if combined:
        entries[reference] = combined
    index[engine_id] = dict(list(entries.items())[-_KEPT_PER_ENGINE:])
    atomic.write_text(index_path(), json.dumps({"schema": SCHEMA, "engines": index}, indent=1))


def _engine_id(engine: ContainerEngine) -> str:
    # As harness.images.built names engines: Podman's ID changes with every request.
    info = engine.info()
    if engine.product == PODMAN:
        return f"podman:{info.get('Name')}:{info.get('DockerRootDir')}"
    return str(info.get("ID") or engine.where)


def _read() -> dict[str, dict[str, list[object]]]:
    try:
        document = untrusted.load_json(index_path(), what="the kept stages", limit=_INDEX_LIMIT)
    except (FileNotFoundError, untrusted.UntrustedInputError):
        return {}
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        return {}
    engines = document.get("engines")
    if not isinstance(engines, dict):
        return {}
    return {
        engine: {ref: ids for ref, ids in entries.items() if isinstance(ids, list)}
        for engine, entries in engines.items()
        if isinstance(entries, dict)
    }
