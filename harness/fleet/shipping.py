"""Putting the control's image on another host, by digest, and refusing any other image.

An image is identified by its ID: the sha256 of its configuration, which names every
layer by content. Whatever way the image travels, the host must end up holding that ID,
or nothing runs there:

- already there: nothing moves (an inspect, a few milliseconds);
- ``registry``: pushed to the configured registry (only layers it lacks), pulled on the
  host by the manifest digest the push returned, so the registry cannot substitute
  another image, then checked by ID; the tag made for the push is removed again on the
  control, where it would only be a stray name;
- ``stream``: ``docker save`` on the control streamed into ``docker load`` on the host;
- ``never``: the host is provisioned by others; the image it holds under the control's
  reference must have the control's ID.

Whatever the way, a host that holds the control's reference as another image is refused
before anything moves: the name is someone's image there, and harness never moves it.

``auto`` uses the registry where one is configured and the stream otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from harness.cleanup import cleanup
from harness.engine import ContainerEngine
from harness.errors import HarnessError

_CHUNK = 1 << 20
# A lock per (engine, pushed tag), see through_registry.
_pushes: dict[str, threading.Lock] = {}
_pushes_lock = threading.Lock()


class ImageMismatch(HarnessError):
    """A host holds another image than the one the control built: it must not run."""

    default_hint = "ship the control's image there (ship = auto) or remove the stale one"


class ShipError(HarnessError):
    """The image could not be put on the host."""

    default_hint = "check the registry with `docker push` by hand, or set ship = 'stream'"


@dataclass(frozen=True)
class Shipment:
    method: str  # present, registry, stream or never
    seconds: float
    # The registry reference the host pulled (REPOSITORY@sha256:...), when it went that way.
    pulled: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"method": self.method, "seconds": round(self.seconds, 3), "pulled": self.pulled}


def ship(
    source: ContainerEngine,
    target: ContainerEngine,
    *,
    image_id: str,
    reference: str,
    host: str,
    mode: str = "auto",
    registry: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Shipment:
    """Make ``target`` hold image ``image_id`` under ``reference``; returns how it went.

    A host whose ``reference`` names another image is refused before anything moves:
    that name is someone's image there, and harness never moves it.
    """
    started = time.monotonic()
    named = target.image(reference)
    if mode == "never":
        if named is None:
            raise ShipError(
                f"host {host} has no image {reference} and ship = 'never'",
                f"pull {reference} on {host}, or let harness ship it (ship = auto)",
            )
        _check_id(named.id, image_id, reference, host)
        return Shipment("never", time.monotonic() - started)
    if named is not None:
        _check_id(named.id, image_id, reference, host)
    if target.image(image_id) is not None:
        _name(target, image_id, reference, host)
        return Shipment("present", time.monotonic() - started)
    if mode == "registry" or (mode == "auto" and registry):
        if not registry:
            raise ShipError(
                f"host {host} ships through a registry but none is configured",
                "set registry in [tool.harness] (or HARNESS_REGISTRY), or ship = 'stream'",
            )
        pulled = through_registry(
            source, target, image_id=image_id, reference=reference, registry=registry, say=say
        )
        _check_id(_id_of(target, pulled, host), image_id, pulled, host)
        _name(target, image_id, reference, host)
        return Shipment("registry", time.monotonic() - started, pulled)
    stream(source, target, image_id, say)
    _check_id(_id_of(target, image_id, host), image_id, reference, host)
    _name(target, image_id, reference, host)
    return Shipment("stream", time.monotonic() - started)


def through_registry(
    source: ContainerEngine,
    target: ContainerEngine,
    *,
    image_id: str,
    reference: str,
    registry: str,
    say: Callable[[str], None] = lambda _: None,
) -> str:
    """Push from ``source``, pull by digest on ``target``; returns the pulled reference."""
    repository = f"{registry}/{reference.rpartition(':')[0] or reference}"
    # One tag per image ID: concurrent pushes of different builds never move each other's tag.
    pushed = f"{repository}:{image_id.removeprefix('sha256:')[:12]}"
    # Hosts shipped to at once push the same tag: one at a time, or the first to finish
    # would untag the image under the others' pushes (the second push only checks that the
    # registry holds every layer).
    with _one_push_at_a_time(f"{source.where} {pushed}"):
        source.tag(image_id, pushed)
        say(f"pushing {image_id[:19]} to {repository}")
        # Untagging that fails after a failed push must not hide why the push failed.
        with cleanup(f"removing the tag {pushed}", partial(drop_tag, source, image_id, pushed)):
            try:
                digest = source.push(pushed)
            except HarnessError as error:
                raise ShipError(error.message, error.hint) from None
    pulled = f"{repository}@{digest}"
    say(f"pulling {pulled} on {target.where}")
    try:
        target.pull(pulled)
    except HarnessError as error:
        raise ShipError(
            f"host at {target.where} cannot pull {pulled}: {error.message}",
            "the host must reach the registry as this machine does (same address, "
            "credentials from `docker login` on that host)",
        ) from None
    return pulled


def _one_push_at_a_time(key: str) -> threading.Lock:
    with _pushes_lock:
        return _pushes.setdefault(key, threading.Lock())


def drop_tag(engine: ContainerEngine, image_id: str, tag: str) -> None:
    """Remove a tag harness added only to push, so that no stray name is left behind.

    The engine cannot untag an image's last name without removing the image, so a tag
    that is the image's only name stays: the image is still someone's.
    """
    info = engine.image(image_id)
    if info is not None and tag in info.tags and any(t != tag for t in info.tags):
        engine.remove_unused_image(tag)


def stream(
    source: ContainerEngine,
    target: ContainerEngine,
    image_id: str,
    say: Callable[[str], None] = lambda _: None,
) -> None:
    """Copy an image between engines, ``docker save`` streamed into ``docker load``.

    Every layer crosses, even those the target holds (callers skip images it holds): use
    a registry for large images that change little.
    """
    say(f"copying {image_id[:19]} from {source.where} to {target.where} (save/load)")
    with source.save(image_id) as saved:
        target.load(iter(lambda: saved.read(_CHUNK), b""))


def _id_of(target: ContainerEngine, reference: str, host: str) -> str:
    info = target.image(reference)
    if info is None:
        raise ShipError(f"host {host} does not list {reference} after shipping it")
    return info.id


def _check_id(found: str, expected: str, reference: str, host: str) -> None:
    if found != expected:
        raise ImageMismatch(
            f"host {host} holds {reference} as {found[:19]}, not {expected[:19]} as the "
            "control does; refusing to run another image there or to move its name",
            f"remove or rename that image on {host} (`docker rmi {reference}` there), or "
            "run with another image name (image in [tool.harness])",
        )


def _name(target: ContainerEngine, image_id: str, reference: str, host: str) -> None:
    """Tag the image on the host as on the control, so people there find it by name; a
    name that came to mean another image meanwhile is refused, never moved."""
    info = target.image(reference)
    if info is None:
        target.tag(image_id, reference)
    else:
        _check_id(info.id, image_id, reference, host)
