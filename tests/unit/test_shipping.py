from __future__ import annotations

import threading

import pytest

from harness.engine import ImageInfo
from harness.errors import EngineError, EngineUnavailable
from harness.fleet import shipping
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


class _GoneAfterPush(Engine):
    """An engine whose push is refused, and which stops answering before the untag."""

    def image(self, reference: str) -> ImageInfo | None:
        raise EngineUnavailable("lost the Docker engine at control: connection refused")


def test_a_failed_untag_does_not_hide_why_the_push_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    control = _GoneAfterPush("control", {"demo:cpu": IMAGE}, push_fails=True)
    with pytest.raises(shipping.ShipError, match="denied"):
        shipping.through_registry(
            control,
            Engine("host", {}),
            image_id=IMAGE,
            reference="demo:cpu",
            registry="registry.example/team",
        )
    assert "removing the tag registry.example/team/demo:abababababab failed too" in caplog.text


OTHER = "sha256:" + "ef" * 32


@pytest.mark.parametrize("mode", ["auto", "stream", "registry"])
def test_a_host_whose_tag_names_another_image_is_refused_and_its_tag_kept(mode: str) -> None:
    control = Engine("control", {"demo:cpu": IMAGE})
    host = Engine("host", {"demo:cpu": OTHER})
    with pytest.raises(shipping.ImageMismatch) as raised:
        shipping.ship(
            control,
            host,
            image_id=IMAGE,
            reference="demo:cpu",
            host="gpu-box",
            mode=mode,
            registry="registry.example/team",
        )
    assert host.tags == {"demo:cpu": OTHER}
    assert host.pulled == []  # refused before anything moved
    line = raised.value.one_line()
    assert "host gpu-box holds demo:cpu as sha256:efefefefefef" in line
    assert "docker rmi demo:cpu" in line


def test_a_host_holding_the_image_under_another_image_s_name_is_refused() -> None:
    host = Engine("host", {"demo:cpu": OTHER, "kept:latest": IMAGE})
    with pytest.raises(shipping.ImageMismatch):
        shipping.ship(
            Engine("control", {"demo:cpu": IMAGE}),
            host,
            image_id=IMAGE,
            reference="demo:cpu",
            host="gpu-box",
        )
    assert host.tags["demo:cpu"] == OTHER


class _PushMeanwhile(Engine):
    """A control engine on which another host's shipment runs during the first push, and
    whose push needs its tag until it ends (as the engine reads the image by it)."""

    def __init__(self) -> None:
        super().__init__("control", {"demo:cpu": IMAGE})
        self.other: threading.Thread | None = None
        self.pushes = 0

    def push(self, reference: str) -> str:
        self.pushes += 1
        if self.other is None:
            self.other = threading.Thread(target=ship_through, args=(self,))
            self.other.start()
            self.other.join(timeout=0.5)  # done by now, unless it waits for this push
        if reference not in self.tags:
            raise EngineError(f"tag does not exist: {reference}")
        return super().push(reference)


def ship_through(control: Engine) -> str:
    return shipping.through_registry(
        control,
        Engine("host", {}),
        image_id=IMAGE,
        reference="demo:cpu",
        registry="registry.example/team",
    )


def test_hosts_shipped_to_at_once_do_not_untag_each_other_s_push() -> None:
    control = _PushMeanwhile()
    ship_through(control)
    assert control.other is not None
    control.other.join(timeout=5)
    assert control.pushes == 2
    assert control.tags == {"demo:cpu": IMAGE}  # and no stray push tag
