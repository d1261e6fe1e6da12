"""`harness gc`: only this project's images that nothing names go; everything else stays."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.config import Config, load_config
from harness.engine import ImageInfo
from harness.images import built, gc
from harness.images.built import LABEL_BUILD_INPUT
from harness.trust import provenance
from tests.unit.fake_docker import EngineDouble

PYPROJECT = """\
[project]
name = "demo"
version = "0"

[tool.harness]
image = "demo"
"""


def _image(number: int, *, title: str = "demo (cpu)", tags: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "Id": f"sha256:{number:064x}",
        "RepoTags": list(tags),
        "Size": 1000 * number,
        "Config": {
            "Labels": {
                LABEL_BUILD_INPUT: "b" * 64,
                "io.harness.variant": "cpu",
                "org.opencontainers.image.title": title,
            }
        },
    }


class Images(EngineDouble):
    def __init__(self, images: list[dict[str, Any]]) -> None:
        self.images = {image["Id"]: image for image in images}
        self.removed: list[str] = []

    def every_image_attributes(self) -> list[Mapping[str, Any]]:
        return list(self.images.values())

    def image(self, reference: str) -> ImageInfo | None:
        for attributes in self.images.values():
            if reference in attributes["RepoTags"]:
                return ImageInfo.from_attrs(attributes)
        return None

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        self.removed.append(reference)
        return bool(self.images.pop(reference, None))

    def layers_size(self) -> int:
        return sum(int(image["Size"]) for image in self.images.values())


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return load_config(tmp_path)


def _write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def test_only_unnamed_superseded_images_of_this_project_go(config: Config) -> None:
    root = config.project_root / ".harness"
    _write(root / "runs" / "r1" / "record.json", {"image": {"id": f"sha256:{2:064x}"}})
    _write(root / "verifications" / "v1.json", {"image": {"id": f"sha256:{3:064x}"}})
    statement = json.dumps({"subject": [{"digest": {"sha256": f"{4:064x}"}}]})
    _write(
        root / "certificates" / "other-name.json",
        {"payload": base64.b64encode(statement.encode()).decode()},
    )
    engine = Images(
        [
            _image(1, tags=("demo:cpu",)),  # the current build
            _image(2),  # named by a run record
            _image(3),  # named by a verification
            _image(4),  # named by a certificate
            _image(5),  # superseded, named by nothing
            _image(6, tags=("mine:v1",)),  # tagged by someone on purpose
            _image(7, title="other (cpu)"),  # another project's
        ]
    )
    images = gc.project_images(engine, config)
    dry = gc.collect(engine, images, dry_run=True)
    assert [image.image_id for image in dry.removed] == [f"sha256:{5:064x}"]
    assert engine.removed == []
    reasons = {image.image_id[-1]: image.kept_because for image in dry.kept}
    assert reasons["1"] == "the current build"
    assert reasons["2"].startswith("named by a run record")
    assert reasons["3"].startswith("named by a verification")
    assert reasons["4"].startswith("named by a certificate")
    assert reasons["6"] == "also tagged mine:v1"
    assert "7" not in reasons  # not this project's: not even listed
    done = gc.collect(engine, images)
    assert engine.removed == [f"sha256:{5:064x}"]
    assert done.freed == 5000
    assert f"sha256:{7:064x}" in engine.images


class _Engine(Images):
    """Images on an engine with an ID, for the build index to tell engines apart."""

    def info(self) -> Mapping[str, Any]:
        return {"ID": "this-engine"}


def test_provenance_goes_with_its_image_and_when_its_image_is_gone(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = config.project_root
    state = root / ".harness"

    def provenance_of(number: int) -> Path:
        path = provenance.path_for(root, f"sha256:{number:064x}")
        _write(path, {"payload": ""})
        return path

    _write(state / "runs" / "r1" / "record.json", {"image": {"id": f"sha256:{2:064x}"}})
    current = provenance_of(1)  # its image is the current build
    named = provenance_of(2)  # its image is named by a run record
    superseded = provenance_of(5)  # its image goes now
    orphan = provenance_of(8)  # its image is gone already, named by nothing
    named_gone = provenance_of(9)  # gone, but a certificate names it: evidence, kept
    statement = json.dumps({"subject": [{"digest": {"sha256": f"{9:064x}"}}]})
    _write(
        state / "certificates" / "c.json",
        {"payload": base64.b64encode(statement.encode()).decode()},
    )
    elsewhere = provenance_of(10)  # built on another engine, which may still hold it
    index = {
        "schema": built.SCHEMA,
        "engines": {"podman:box:/x": {"b": {"id": f"sha256:{10:064x}"}}},
    }
    _write(built.index_path(), index)
    unrelated = state / "provenance" / "notes.txt"
    unrelated.write_text("mine")
    # A link named like provenance: the link goes, never the file it points at.
    target = tmp_path / "precious.json"
    target.write_text("{}")
    link = provenance.path_for(root, f"sha256:{11:064x}")
    link.symlink_to(target)

    engine = _Engine([_image(1, tags=("demo:cpu",)), _image(2), _image(5)])
    images = gc.project_images(engine, config)
    dry = gc.collect(engine, images, dry_run=True, project_root=root)
    assert dry.provenance == sorted([superseded, orphan, link])
    assert superseded.exists()  # a dry run removes nothing
    done = gc.collect(engine, images, project_root=root)
    assert engine.removed == [f"sha256:{5:064x}"]
    assert done.provenance == sorted([superseded, orphan, link])
    assert done.as_dict()["provenance_removed"] == [str(path) for path in done.provenance]
    for path in (current, named, named_gone, elsewhere, unrelated, target):
        assert path.exists(), path
    for path in (superseded, orphan):
        assert not path.exists()
    assert not link.is_symlink()
    # Nothing more to remove the second time; no provenance folder at all is fine too.
    assert gc.collect(engine, gc.project_images(engine, config), project_root=root).provenance == []
    assert gc.stale_provenance(engine, tmp_path / "elsewhere") == []


def test_an_image_the_engine_refuses_to_remove_keeps_its_provenance(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = provenance.path_for(config.project_root, f"sha256:{5:064x}")
    _write(path, {})

    class InUse(_Engine):
        def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
            return False

    engine = InUse([_image(5)])
    done = gc.collect(engine, gc.project_images(engine, config), project_root=config.project_root)
    assert done.removed == []
    assert done.provenance == []
    assert path.exists()


def test_a_provenance_folder_that_is_a_link_is_never_emptied(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    orphan = elsewhere / f"{8:064x}.intoto.json"
    _write(orphan, {})
    (config.project_root / ".harness").mkdir()
    (config.project_root / ".harness" / "provenance").symlink_to(elsewhere)
    engine = _Engine([])
    assert gc.collect(engine, [], project_root=config.project_root).provenance == []
    assert orphan.exists()
