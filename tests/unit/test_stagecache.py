"""Each image keeps the install stage of its latest build, and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.engine import ImageInfo
from harness.images import stagecache
from tests.unit.fake_docker import EngineDouble


class Chain(EngineDouble):
    """Images with parents: one with a child (or in ``busy``) cannot be removed."""

    where = "fake"

    def __init__(self) -> None:
        self.parent: dict[str, str | None] = {}
        self.busy: set[str] = set()
        self.removed: list[str] = []

    def info(self) -> dict[str, str]:
        return {"ID": "engine-1"}

    def add(self, *chain: str) -> None:
        below = None
        for image in chain:
            self.parent.setdefault(image, below)
            below = image

    def image(self, reference: str) -> ImageInfo | None:
        if reference not in self.parent:
            return None
        return ImageInfo(reference, (), {}, 1)

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        children = [i for i, p in self.parent.items() if p == reference]
        if reference not in self.parent or children or reference in self.busy:
            return False
        del self.parent[reference]
        self.removed.append(reference)
        return True


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def test_a_new_stage_replaces_the_last_one_of_that_image() -> None:
    engine = Chain()
    engine.add("venv", "pins-a", "runtime-a")
    stagecache.keep(engine, "demo:cpu", ["pins-a", "runtime-a"])
    assert engine.removed == []
    # harness changed: the pins' step came from the cache, the runtime's is new.
    engine.add("venv", "pins-a", "runtime-b")
    stagecache.keep(engine, "demo:cpu", ["runtime-b"])
    assert engine.removed == ["runtime-a"]
    # A small pin moved: everything the stage held before goes, newest first.
    engine.add("venv", "pins-c", "runtime-c")
    stagecache.keep(engine, "demo:cpu", ["pins-c", "runtime-c"])
    assert engine.removed == ["runtime-a", "runtime-b", "pins-a"]
    assert set(engine.parent) == {"venv", "pins-c", "runtime-c"}


def test_another_image_s_stage_and_an_image_in_use_stay() -> None:
    engine = Chain()
    engine.add("venv", "pins-a")
    stagecache.keep(engine, "demo:cpu", ["pins-a"])
    engine.add("venv", "pins-b")
    stagecache.keep(engine, "other:cpu", ["pins-b"])
    assert engine.removed == []
    engine.busy.add("pins-a")
    engine.add("venv", "pins-c")
    stagecache.keep(engine, "demo:cpu", ["pins-c"])
    assert engine.removed == []
    # Still written down: it goes once nothing uses it.
    engine.busy.clear()
    stagecache.keep(engine, "demo:cpu", ["pins-c"])
    assert engine.removed == ["pins-a"]
    assert "pins-b" in engine.parent


def test_a_stage_taken_whole_from_the_cache_stays() -> None:
    """A build whose frameworks alone moved reuses every image of the stage: removing them
    as the last build's would empty the cache the next build needs."""
    engine = Chain()
    engine.add("venv", "pins-a", "runtime-a")
    stagecache.keep(engine, "demo:cpu", ["pins-a", "runtime-a"])
    stagecache.keep(engine, "demo:cpu", ["pins-a", "runtime-a"])
    assert engine.removed == []
    engine.add("venv", "pins-b")
    stagecache.keep(engine, "demo:cpu", ["pins-b"])
    assert engine.removed == ["runtime-a", "pins-a"]
