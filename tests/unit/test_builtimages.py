"""Cache hits are images harness built, never images that merely carry its label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.engine import ImageInfo
from harness.images import build, dockerfiles, runtime_wheel
from harness.images import built as builtimages
from harness.images.base import BaseImage
from tests.unit.fake_docker import EngineDouble

INPUT = "11" * 32


class FakeEngine(EngineDouble):
    """Images by ID with their labels and layers; records what was tagged."""

    where = "fake"

    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, str] = {}

    def add(self, image_id: str, layers: list[str], build_input: str = INPUT) -> None:
        self.images[image_id] = {
            "Id": image_id,
            "Config": {"Labels": {builtimages.LABEL_BUILD_INPUT: build_input}},
            "RootFS": {"Type": "layers", "Layers": layers},
            "Size": 1,
        }

    def info(self) -> dict[str, str]:
        return {"ID": "engine-1"}

    def image_attributes(self, reference: str) -> dict[str, Any] | None:
        return self.images.get(self.tags.get(reference, reference))

    def image(self, reference: str) -> ImageInfo | None:
        attributes = self.image_attributes(reference)
        return ImageInfo.from_attrs(attributes) if attributes else None

    def tag(self, image_id: str, reference: str) -> None:
        self.tags[reference] = image_id


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_only_a_remembered_image_with_its_layers_is_found() -> None:
    engine = FakeEngine()
    engine.add("sha256:built", ["sha256:l1", "sha256:l2"])
    # A derived image (FROM the built one) inherits the label, not the index entry.
    engine.add("sha256:derived", ["sha256:l1", "sha256:l2", "sha256:l3"])
    assert builtimages.find(engine, INPUT) is None
    builtimages.remember(engine, INPUT, "sha256:built")
    found = builtimages.find(engine, INPUT)
    assert found is not None and found.id == "sha256:built"
    # Another engine's index says nothing about this one.
    engine.info = lambda: {"ID": "engine-2"}  # type: ignore[method-assign]
    assert builtimages.find(engine, INPUT) is None


def test_a_changed_or_removed_image_is_no_hit() -> None:
    engine = FakeEngine()
    engine.add("sha256:built", ["sha256:l1"])
    builtimages.remember(engine, INPUT, "sha256:built")
    engine.images["sha256:built"]["RootFS"]["Layers"] = ["sha256:other"]
    assert builtimages.find(engine, INPUT) is None
    del engine.images["sha256:built"]
    assert builtimages.find(engine, INPUT) is None


def test_a_corrupt_index_is_an_empty_one() -> None:
    builtimages.index_path().parent.mkdir(parents=True)
    builtimages.index_path().write_text("[" * 100_000)
    engine = FakeEngine()
    engine.add("sha256:built", ["sha256:l1"])
    assert builtimages.find(engine, INPUT) is None
    builtimages.remember(engine, INPUT, "sha256:built")
    assert builtimages.find(engine, INPUT) is not None


def test_build_rebuilds_rather_than_adopt_a_labelled_image_it_did_not_build(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine()
    # What `docker build` of "FROM demo:cpu" + one layer leaves, tagged as the variant.
    engine.add("sha256:derived", ["sha256:l1", "sha256:extra"])
    engine.tags["demo:cpu"] = "sha256:derived"
    config = load_config(project, environ={})
    variant = config.variant("cpu")
    plan = build.BuildPlan(
        config,
        variant,
        [],
        b"",
        runtime_wheel.HarnessSource("checkout", project),
        dockerfiles.choose(variant, project),
    )
    prepared = build.Prepared(
        plan,
        BaseImage("harness-base:test", "sha256:base", "sha256:base", None, False),
        {},
        {build.LABEL_BUILD_INPUT: INPUT},
        "demo:cpu",
        0,
    )
    monkeypatch.setattr(build, "prepare", lambda *_, **__: prepared)
    built: list[str] = []

    def build_image(*_: object, **__: object) -> build.FreshImage:
        engine.add("sha256:fresh", ["sha256:l1"])
        built.append("sha256:fresh")
        return build.FreshImage("sha256:fresh", "sha256:raw", (), 1.0)

    monkeypatch.setattr(build, "build_image", build_image)
    result = build.build(engine, plan)
    assert (result.image_id, result.cached, built) == ("sha256:fresh", False, ["sha256:fresh"])
    assert engine.tags["demo:cpu"] == "sha256:fresh"
    again = build.build(engine, plan)
    assert (again.image_id, again.cached, len(built)) == ("sha256:fresh", True, 1)
    # Both the build and the cache hit carry the image's provenance, about that image.
    for each in (result, again):
        assert each.provenance["subject"][0]["digest"] == {"sha256": "fresh"}
        assert each.provenance["predicateType"] == "https://slsa.dev/provenance/v1"
