"""harness's frameworks image: the large pins of a variant, installed once and shared.

Installing torch, TensorFlow and their big dependencies is most of an image's build (about
two minutes for the CPU image), yet they are what changes least: a project moves a small
helper pin, or harness's own runtime, far more often. So an image built from a Dockerfile
that declares ``ARG FRAMEWORKS_IMAGE`` (harness's own do) is built in two parts:

- the frameworks image (``Dockerfile.frameworks``): the base, the venv holding every pin
  whose wheel is :data:`LARGE_WHEEL_BYTES` or more, installed and compiled, and the image's
  user. harness keeps it, named ``harness-frameworks:<input>``, and finds it again by its
  input: the base image's ID, the Dockerfile and the large pins' lines with the hash of the
  one wheel each installs. Any project whose large pins are the same shares it;
- the image itself, ``FROM`` it, adding the other pins (seconds of wheels) and harness's
  runtime. It shares the frameworks' layers, so they take no second copy on disk.

The large pins themselves are laid in two ways. The heavy ones, whose wheels are
:data:`HEAVY_WHEEL_BYTES` or more (torch, TensorFlow, the ``nvidia-*`` CUDA runtime:
gigabytes, minutes to install), are the first tier, built from ``Dockerfile.frameworks``
with the environment and the image's user. Each of the other large pins (NumPy, SciPy,
scikit-learn: tens of megabytes) is a layer of its own on that tier, heaviest first, at
most :data:`MAX_LAYERS` of them (the lightest share the last). A layer's files are
installed alone (``Dockerfile.frameworks-layer``: the pin into an empty tree, compiled),
so they depend on the base and that pin only: harness keeps each layer in normal form in
its layer cache (see :mod:`harness.images.layers`) and stacks them onto the tier itself.
Moving SciPy then installs SciPy alone, and only the layers above it are sent to the
engine again; torch is not installed again, and projects that pin the same heavy wheels
(the same torch build) share the first tier's layers on disk, whatever else they pin.
A check run in the stacked image proves it holds exactly the large pins, each file its
distribution records present: the same environment one install of them all gives.

Which pins are large is a matter of their wheels' sizes, so it is fixed by the pins alone
(the wheel each pin installs is fixed by its hash): two builds of the same constraints
split them alike, and the image is reproducible as before. The image holds exactly the
files one install of every pin would give; only their layers differ.

This module decides the split, lays out the frameworks build's context and finds the
frameworks images nothing is built on any more (``harness cache prune`` removes them);
building one on an engine is :mod:`harness.images.build`'s work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.images import dockerfiles
from harness.images.wheelcache import Choice, Provided

if TYPE_CHECKING:  # the docker SDK is slow to import, and `harness cache` needs it only to prune
    from harness.engine import ContainerEngine

# The repository the frameworks images are named in; the tag is their input's first hex.
REPOSITORY = "harness-frameworks"
# A wheel this large or larger goes into the frameworks image. At 1 MiB the CPU image's
# constraints put 12 pins there (torch, TensorFlow, SciPy, NumPy, scikit-learn, sympy,
# keras, networkx, pygments and the like: 99% of the bytes and most of the modules to
# compile) and leave 34 small ones (6 MB of wheels) to every image build.
LARGE_WHEEL_BYTES = 1 << 20
# A wheel this large or larger goes into the first tier. torch's CPU build (about 180 MB),
# tensorflow-cpu (about 250 MB) and the CUDA runtime's nvidia-* wheels are above it; SciPy
# (35 MB), NumPy (16 MB) and scikit-learn (13 MB) below.
HEAVY_WHEEL_BYTES = 64 << 20
# The most layers the other large pins get (the CPU image has 10 such pins, the CUDA one
# a few more): each layer is one more lower folder for the engine's storage driver (Docker's
# overlay2 takes at most 128 in all), and one more step to stack.
MAX_LAYERS = 12
ARGUMENT = dockerfiles.FRAMEWORKS_ARGUMENT


@dataclass(frozen=True)
class Split:
    """A variant's wheels, by where they are installed. ``large`` is heaviest first (then
    by name): the order of the layers, fixed by the pins alone."""

    large: tuple[Choice, ...]
    small: tuple[Choice, ...]
    # Those of ``large`` that go into the first tier.
    heavy: tuple[Choice, ...] = ()

    def tiers(self) -> list[tuple[Choice, ...]]:
        """The frameworks' parts, lowest first: the heavy pins (the first tier, never left
        out, even without a pin: it holds the environment and the image's user that every
        image is built on), then each other large pin's layer, the lightest sharing the
        last when there are more than :data:`MAX_LAYERS`."""
        rest = [c for c in self.large if c not in self.heavy]
        alone = rest[: MAX_LAYERS - 1] if len(rest) > MAX_LAYERS else rest
        layers: list[tuple[Choice, ...]] = [(choice,) for choice in alone]
        if len(rest) > len(alone):
            layers.append(tuple(rest[len(alone) :]))
        return [self.heavy, *layers]


def split(provided: Provided) -> Split:
    """Divide the wheels a build context holds by size: large ones into the frameworks,
    heaviest first, the heavy among them into its first tier."""
    sizes = {path.name: path.stat().st_size for path in provided.files}
    by_weight = sorted(provided.choices, key=lambda c: (-sizes[c.filename], c.name))
    large = tuple(c for c in by_weight if sizes[c.filename] >= LARGE_WHEEL_BYTES)
    small = tuple(c for c in provided.choices if sizes[c.filename] < LARGE_WHEEL_BYTES)
    heavy = tuple(c for c in large if sizes[c.filename] >= HEAVY_WHEEL_BYTES)
    return Split(large, small, heavy)


def requirements(choices: Iterable[Choice]) -> str:
    """Hashed requirement lines for pip, one per wheel, sorted by name: exactly these files."""
    lines = sorted(f"{c.name}=={c.version} --hash=sha256:{c.sha256}\n" for c in choices)
    return "".join(lines)


def input_digest(*, dockerfile: bytes, base_id: str, requirement_lines: str) -> str:
    """What the frameworks image is made from, as one digest: its name and cache key."""
    document = {
        "dockerfile": hashlib.sha256(dockerfile).hexdigest(),
        "base": base_id,
        "requirements": hashlib.sha256(requirement_lines.encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def reference(digest: str) -> str:
    return f"{REPOSITORY}:{digest[:16]}"


@dataclass(frozen=True)
class Context:
    """One frameworks build's context, laid out, and its input digest."""

    folder: Path
    digest: str
    pins: int
    # Whether it is a layer stacked on the tier (its files installed alone, FROM scratch)
    # rather than the tier itself, built on the base.
    on_previous: bool = False
    # A layer's pins, for its history line and the check of the stacked image.
    choices: tuple[Choice, ...] = ()


def assemble(folder: Path, image_context: Path, wheels: Split, *, base_id: str) -> list[Context]:
    """Lay out the frameworks builds in ``folder``: the first tier, then each layer, and
    leave the image's context the rest.

    The large wheels move from the image context's ``wheels/`` into their build's (they
    are links to the wheel cache, so nothing is copied), and each context's
    ``constraints.txt`` names only the wheels it holds. A layer's input is the base, its
    Dockerfile and its pins: not the tier, nor the layers below, which its files do not
    depend on (see :func:`stacked_digest` for the image they make together).
    """
    contexts: list[Context] = []
    for number, tier in enumerate(wheels.tiers()):
        first = not contexts
        dockerfile = dockerfiles.frameworks_text() if first else dockerfiles.frameworks_layer_text()
        lines = requirements(tier)
        tier_folder = folder / str(number)
        (tier_folder / "wheels").mkdir(parents=True)
        (tier_folder / "Dockerfile").write_bytes(dockerfile)
        (tier_folder / "constraints.txt").write_text(lines)
        _move(tier, image_context / "wheels", tier_folder / "wheels")
        digest = input_digest(dockerfile=dockerfile, base_id=base_id, requirement_lines=lines)
        contexts.append(Context(tier_folder, digest, len(tier), not first, tier))
    (image_context / "constraints.txt").write_text(requirements(wheels.small))
    return contexts


def stacked_digest(tier: str, layers: Sequence[str]) -> str:
    """The input of the frameworks image a tier and its layers make: their inputs, in order."""
    document = {"tier": tier, "layers": list(layers)}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _move(choices: Sequence[Choice], source: Path, target: Path) -> None:
    # Both folders are in the build's one temporary folder: a rename moves each link.
    for choice in choices:
        (source / choice.filename).replace(target / choice.filename)


@dataclass(frozen=True)
class Unused:
    """A frameworks image no other image on the engine is built on."""

    reference: str
    image_id: str
    size: int

    def as_dict(self) -> dict[str, object]:
        return {"reference": self.reference, "id": self.image_id, "size": self.size}


def unused(engine: ContainerEngine) -> list[Unused]:
    """The frameworks images whose layers no other image the engine holds starts with.

    An image built on a frameworks image (kept under a tag, or untagged and still named
    by a run's record) holds its layers: removing the frameworks image then frees
    nothing, and the next build of those pins would need it. One that nothing starts
    with holds gigabytes for no image, as when every image built on it is gone, or its
    large pins moved on. A later build that needs it builds it again.
    """
    from harness.engine import layer_ids  # noqa: PLC0415  # with an engine, docker is imported

    everything = {attributes["Id"]: attributes for attributes in engine.every_image_attributes()}
    layers = {image_id: layer_ids(attributes) for image_id, attributes in everything.items()}
    found: list[Unused] = []
    for image_id, attributes in everything.items():
        names = [t for t in attributes.get("RepoTags") or () if t.startswith(f"{REPOSITORY}:")]
        own = layers[image_id]
        used = any(
            len(theirs) > len(own) and theirs[: len(own)] == own for theirs in layers.values()
        )
        if names and not used:
            size = int(attributes.get("Size") or 0)
            found.extend(Unused(name, image_id, size) for name in sorted(names))
    return found
