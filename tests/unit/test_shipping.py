from __future__ import annotations

import pytest

from harness import shipping
from harness.engine import ImageInfo
from harness.errors import EngineError
from tests.unit.fake_docker import EngineDouble

IMAGE = "sha256:" + "ab" * 32


class Engine(EngineDouble):
    """An engine's images and tags, as much as shipping through a registry touches."""

    def __init__(self, where: str, tags: dict[str, str], *, push_fails: bool = False) -> None:
        self.where = where
        self.tags = dict(tags)  # tag -> image ID
        self.push_fails = push_fails
        self.pulled: list[str] = []

    def image(self, reference: str) -> ImageInfo | None:
        image_id = self.tags.get(reference, reference)
        names = tuple(t for t, i in self.tags.items() if i == image_id)
        if image_id not in self.tags.values() and reference not in self.pulled:
            return None
        return ImageInfo(image_id, names, {}, 1)

    def tag(self, image_id: str, reference: str) -> None:
        self.tags[reference] = image_id

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        return self.tags.pop(reference, None) is not None

    def push(self, reference: str) -> str:
        if self.push_fails:
            raise EngineError("denied")
        return "sha256:" + "cd" * 32

    def pull(self, reference: str) -> ImageInfo:
        self.pulled.append(reference)
        return ImageInfo(IMAGE, (), {}, 1)


def test_the_tag_made_for_the_push_is_gone_afterwards() -> None:
    control = Engine("control", {"demo:cpu": IMAGE})
    host = Engine("host", {})
    pulled = shipping.through_registry(
        control,
        host,
        image_id=IMAGE,
        reference="demo:cpu",
        registry="registry.example/team",
    )
    assert pulled == "registry.example/team/demo@sha256:" + "cd" * 32
    assert control.tags == {"demo:cpu": IMAGE}


def test_a_failed_push_leaves_no_stray_tag_either() -> None:
    control = Engine("control", {"demo:cpu": IMAGE}, push_fails=True)
    with pytest.raises(shipping.ShipError):
        shipping.through_registry(
            control,
            Engine("host", {}),
            image_id=IMAGE,
            reference="demo:cpu",
            registry="registry.example/team",
        )
    assert control.tags == {"demo:cpu": IMAGE}


def test_an_image_s_only_name_is_kept_so_the_image_is_not_removed() -> None:
    engine = Engine("control", {"registry.example/team/demo:abababababab": IMAGE})
    shipping.drop_tag(engine, IMAGE, "registry.example/team/demo:abababababab")
    assert engine.tags == {"registry.example/team/demo:abababababab": IMAGE}
