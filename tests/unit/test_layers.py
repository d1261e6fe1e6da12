"""The layer cache and the stacking of the frameworks' layers, on an engine that records
what it is sent."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from harness.engine import CommandResult
from harness.errors import BuildError
from harness.images import config as imageconfig
from harness.images import layers
from harness.images.wheelcache import Choice
from tests.unit.test_builtimages import FakeEngine

TIER = "sha256:" + "7" * 64


@pytest.fixture
def cache(tmp_path: Path) -> layers.LayerCache:
    return layers.LayerCache(tmp_path / "layers")


def kept(cache: layers.LayerCache, name: str, data: bytes = b"files") -> layers.Layer:
    digest = name * 64 if len(name) == 1 else name
    with cache.workspace() as work:
        archive = Path(work) / "layer.tar"
        archive.write_bytes(data)
        return cache.store(digest, archive, f"sha256:diff-{name}", [f"{name}==1"])


def test_a_stored_layer_is_found_by_its_input_and_a_damaged_one_is_not(
    cache: layers.LayerCache,
) -> None:
    stored = kept(cache, "a")
    found = cache.get("a" * 64)
    assert found == stored
    assert found.pins == ("a==1",)
    assert not os.access(found.path, os.W_OK) or os.geteuid() == 0
    assert [p.name for p in cache.root.iterdir() if p.name.startswith(".tmp-")] == []
    # Cut short (the size is not the recorded one), or its entry unreadable: built again.
    found.path.chmod(0o644)
    found.path.write_bytes(b"file")
    assert cache.get("a" * 64) is None
    kept(cache, "b")
    (cache.root / f"{'b' * 64}.json").write_text("{")
    assert cache.get("b" * 64) is None
    assert cache.get("../etc") is None


def test_the_least_recently_used_layers_go_past_the_limit(cache: layers.LayerCache) -> None:
    for number, name in enumerate("abc"):
        kept(cache, name, b"x" * 10)
        os.utime(cache.root / f"{name * 64}.json", (1000 + number, 1000 + number))
    cache.get("a" * 64)  # used now: the newest
    assert cache.prune(limit=20) == ["b" * 64]
    assert cache.get("a" * 64) is not None
    assert cache.get("c" * 64) is not None


class LoadingEngine(FakeEngine):
    """Holds a tier and whatever is loaded; records the archives' members."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[list[str]] = []
        self.runs: list[list[str]] = []
        self.check_output = ""
        self.images[TIER] = {
            "Id": TIER,
            "Architecture": "amd64",
            "Os": "linux",
            "Config": {"Labels": {"io.harness.build-input.sha256": "tier"}},
            "RootFS": {"Type": "layers", "Layers": ["sha256:base", "sha256:torch"]},
            "Size": 1,
        }

    def history(self, reference: str) -> list[dict[str, Any]]:
        return [
            {"Id": reference, "CreatedBy": "LABEL x", "Comment": "harness build", "Size": 0},
            {"Id": "<missing>", "CreatedBy": "COPY torch", "Size": 10},
            {"Id": "<missing>", "CreatedBy": "base", "Size": 10},
        ]

    def every_image_attributes(self) -> list[dict[str, Any]]:
        return list(self.images.values())

    def load(self, data: bytes | Iterable[bytes]) -> list[str]:
        raw = data if isinstance(data, bytes) else b"".join(data)
        with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
            members = {m.name: archive.extractfile(m).read() for m in archive}  # type: ignore[union-attr]
        self.loaded.append(sorted(name for name in members if name.endswith("layer.tar")))
        manifest = json.loads(members["manifest.json"])[0]
        config = members[manifest["Config"]]
        image_id = imageconfig.image_id_of(config)
        document = json.loads(config)
        self.images[image_id] = {
            "Id": image_id,
            "Config": document["config"],
            "RootFS": {"Type": "layers", "Layers": document["rootfs"]["diff_ids"]},
            "Size": 1,
        }
        return [image_id]

    def run(self, image: str, command: Any, **_: Any) -> CommandResult:
        self.runs.append([image, *command])
        return CommandResult(1 if self.check_output else 0, self.check_output)


def test_only_the_layers_above_what_the_engine_holds_are_sent(
    cache: layers.LayerCache,
) -> None:
    engine = LoadingEngine()
    scipy, numpy = kept(cache, "s"), kept(cache, "n")
    labels = {"io.harness.build-input.sha256": "stacked"}
    first = layers.stack(engine, TIER, [scipy, numpy], labels)
    # Nothing above the tier was held: both layers travel, each under its place.
    assert engine.loaded[-1] == ["2/layer.tar", "3/layer.tar"]
    assert engine.images[first]["RootFS"]["Layers"] == [
        "sha256:base",
        "sha256:torch",
        "sha256:diff-s",
        "sha256:diff-n",
    ]
    assert engine.images[first]["Config"]["Labels"]["io.harness.build-input.sha256"] == "stacked"
    # The same layers again: the same image ID, and nothing is loaded.
    assert layers.stack(engine, TIER, [scipy, numpy], labels) == first
    assert len(engine.loaded) == 1
    # numpy moved: scipy's chain is held, only numpy's layer travels.
    moved = layers.stack(engine, TIER, [scipy, kept(cache, "m")], labels)
    assert moved != first
    assert engine.loaded[-1] == ["3/layer.tar"]
    # scipy moved: every layer above it travels again.
    layers.stack(engine, TIER, [kept(cache, "t"), numpy], labels)
    assert engine.loaded[-1] == ["2/layer.tar", "3/layer.tar"]


def test_the_stacked_history_names_each_layers_pins(cache: layers.LayerCache) -> None:
    engine = LoadingEngine()
    config = json.loads(layers.stacked_config(engine, TIER, [kept(cache, "s")], {}))
    added = config["history"][-1]
    assert added["created_by"] == "harness layer: s==1"
    assert added["comment"] == layers.HISTORY_COMMENT
    assert "empty_layer" not in added
    assert config["created"] == "1970-01-01T00:00:00Z"


def test_the_check_names_what_the_stacked_environment_lacks() -> None:
    engine = LoadingEngine()
    pins = [Choice("Scikit_Learn", "1.9.1", "aa" * 32, "x.whl")]
    layers.check(engine, "sha256:img", "3.11", pins)
    image, python, *_, site, expected = engine.runs[-1]
    assert (image, python) == ("sha256:img", "/opt/harness/venv/bin/python")
    assert site == "/opt/harness/venv/lib/python3.11/site-packages"
    assert json.loads(expected) == {"scikit-learn": "1.9.1"}
    engine.check_output = "scikit-learn==1.9.1: found nothing\n"
    with pytest.raises(BuildError, match=r"scikit-learn==1\.9\.1: found nothing"):
        layers.check(engine, "sha256:img", "3.11", pins)


def test_prune_removes_the_layers_unused_for_the_given_age(cache: layers.LayerCache) -> None:
    kept(cache, "a", b"old")
    kept(cache, "b", b"newer")
    os.utime(cache.root / f"{'a' * 64}.json", (1000, 1000))
    stale = cache.root / ".tmp-interrupted"
    stale.mkdir()
    os.utime(stale, (1000, 1000))
    assert cache.prune_unused(30 * 86400) == (1, 3)
    assert cache.get("a" * 64) is None and cache.get("b" * 64) is not None
    assert not stale.exists()
    assert cache.prune_unused(None) == (1, 5)
    assert list(cache.root.iterdir()) == []


def test_the_cache_is_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(layers.ENV, str(tmp_path / "mine"))
    assert layers.open_cache().root == tmp_path / "mine"
    monkeypatch.delenv(layers.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert layers.cache_root() == tmp_path / "xdg" / "harness" / "layers"
