from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import cache as cache_cli
from harness.cli.main import cli
from harness.errors import EngineUnavailable
from harness.images import wheelcache
from tests.unit.fake_docker import EngineDouble


def invoke(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(arguments), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def cached_wheel(root: Path, name: str, data: bytes, age_days: float) -> Path:
    digest = wheelcache.hashlib.sha256(data).hexdigest()
    entry = root / "files" / digest[:2] / digest
    entry.mkdir(parents=True)
    (entry / name).write_bytes(data)
    when = time.time() - age_days * 86400
    os.utime(entry, (when, when))
    return entry


def test_cache_shows_where_how_many_and_how_large(_own_wheel_cache: Path) -> None:
    cached_wheel(_own_wheel_cache, "six-1.17.0-py3-none-any.whl", b"x" * 1000, 1)
    code, out, _ = invoke("cache", "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["path"], shown["wheels"], shown["bytes"]) == (str(_own_wheel_cache), 1, 1000)
    code, out, _ = invoke("cache")
    assert "1 wheels" in out


def test_prune_removes_wheels_unused_for_the_given_age(_own_wheel_cache: Path) -> None:
    old = cached_wheel(_own_wheel_cache, "six-1.16.0-py3-none-any.whl", b"old", 40)
    new = cached_wheel(_own_wheel_cache, "six-1.17.0-py3-none-any.whl", b"new", 1)
    code, out, _ = invoke("cache", "prune", "--wheels-only", "--json")
    assert code == 0
    assert json.loads(out) == {
        "removed_wheels": 1,
        "removed_bytes": 3,
        "kept_wheels": 1,
        "frameworks_images": [],
        "frameworks_layers": {"removed": 0, "size": 0},
    }
    assert not old.exists() and new.exists()
    code, out, _ = invoke("cache", "prune", "--wheels-only", "--unused-for", "2d")
    assert code == 0 and new.exists()
    code, out, _ = invoke("cache", "prune", "--wheels-only", "--all")
    assert code == 0 and not new.exists()


def test_an_age_that_is_no_age_is_trouble_with_the_fix() -> None:
    code, _, err = invoke("cache", "prune", "--unused-for", "soon")
    assert code == 2
    assert "30d, 12h or 90m" in err


def image(image_id: str, layers: list[str], *tags: str) -> dict[str, Any]:
    return {"Id": image_id, "RepoTags": list(tags), "RootFS": {"Layers": layers}, "Size": 7}


class Images(EngineDouble):
    """An engine holding given images; removing one takes it away."""

    def __init__(self, *images: dict[str, Any]) -> None:
        self.images = list(images)
        self.removed: list[str] = []

    def every_image_attributes(self) -> list[Mapping[str, Any]]:
        return list(self.images)

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        self.removed.append(reference)
        return True


def test_prune_removes_the_frameworks_images_no_image_is_built_on(
    _own_wheel_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Images(
        # In use: an image (tagged or not) starts with its layers.
        image("sha256:f1", ["l0", "l1"], "harness-frameworks:aaaa"),
        image("sha256:i1", ["l0", "l1", "l2", "l3"]),
        # Unused: its pins moved on, and the image built on it was removed.
        image("sha256:f2", ["l0", "l9"], "harness-frameworks:bbbb"),
        # Another image sharing only the base is no user of it.
        image("sha256:b", ["l0"], "harness-base:bookworm"),
        # Not a frameworks image, however unused.
        image("sha256:x", ["l7"], "someone:else"),
    )
    monkeypatch.setattr(cache_cli, "_engine", lambda _ctx: engine)
    code, out, _ = invoke("cache", "prune", "--json")
    assert code == 0
    assert json.loads(out)["frameworks_images"] == [
        {"reference": "harness-frameworks:bbbb", "id": "sha256:f2", "size": 7}
    ]
    assert engine.removed == ["harness-frameworks:bbbb"]
    code, out, _ = invoke("cache", "prune")
    assert "frameworks images no image is built on: harness-frameworks:bbbb" in out


def test_prune_without_an_engine_is_trouble_and_keeps_the_wheels(
    _own_wheel_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = cached_wheel(_own_wheel_cache, "six-1.16.0-py3-none-any.whl", b"old", 40)

    def unreachable(_ctx: object) -> EngineDouble:
        raise EngineUnavailable("cannot reach the Docker engine", "start it")

    monkeypatch.setattr(cache_cli, "_engine", unreachable)
    code, _, err = invoke("cache", "prune")
    assert code == 2
    assert "cannot reach the Docker engine" in err
    assert old.exists()
