"""Building a variant's image from its Dockerfile and hashed constraints.

The build context is assembled in a temporary folder, never from the project tree: the
Dockerfile (the project's own, else harness's, see :mod:`harness.images.dockerfiles`), the
variant's constraints, the one wheel of each pin (linked from the wheel cache, which
downloads only what it lacks, see :mod:`harness.images.wheelcache`), harness's own wheel (from
the harness that runs, see :mod:`harness.images.runtime_wheel`), and the CA bundle. Inside, pip
installs with ``--require-hashes --no-deps --no-index``, so the image holds exactly the
pinned bytes or the build fails, and the build needs no network.

A build leaves the engine holding its image, its frameworks (see
:mod:`harness.images.frameworks`) and the install stage of its latest build (the small pins
and harness's runtime, tens of megabytes, kept for the engine's cache: see
:mod:`harness.images.stagecache`), and nothing else: the images of the frameworks' build
steps (an install stage holds the wheels and a second copy of every installed file, as
much again as the image) and the image as the engine built it, before its configuration
was rewritten, are removed once the image is finished. What makes the next build fast is
the wheel cache and the layer cache, and for the small pins that one kept stage.

Every input of the build is folded into one digest stored as a label. A rebuild whose
inputs are unchanged finds the image harness built from them and returns at once, without
sending a multi-gigabyte context to the engine; the label alone is not enough, since an
image built on top of this one inherits it (see :mod:`harness.images.built`).

The images are reproducible: two builds of the same inputs give the same image ID. The
Dockerfiles set every file time themselves (SOURCE_DATE_EPOCH, passed as a build
argument, comes from what the image holds, never from the project's commit: see
:func:`image_epoch`; a commit that changes only the project's code rebuilds nothing),
and once the engine has built the image harness writes its configuration again without
the times and container IDs the engine stamps into it, labels included (see
:mod:`harness.images.config`). `harness build --check` proves it (see
:mod:`harness.images.rebuild`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

import harness
from harness import progress, vcs
from harness.config import Config, Variant
from harness.digests import sha256_file
from harness.engine import PODMAN, ContainerEngine
from harness.errors import BuildError, ConfigError, HashMismatch
from harness.images import built as builtimages
from harness.images import config as imageconfig
from harness.images import (
    dockerfiles,
    frameworks,
    layers,
    lock,
    provenance,
    runtime_wheel,
    stagecache,
    wheelcache,
    wheeltags,
)
from harness.images.base import BaseImage, ensure_base
from harness.images.dockerfiles import Dockerfile, choose
from harness.images.pin import Pin

LABEL_BUILD_INPUT = builtimages.LABEL_BUILD_INPUT
LABEL_VARIANT = "io.harness.variant"
LABEL_CONSTRAINTS = "io.harness.constraints.sha256"
LABEL_LOCK = "io.harness.lock.sha256"
LABEL_VERSION = "io.harness.version"
# Which Dockerfile built the image: "project:PATH" or "harness:NAME", and its sha256.
LABEL_DOCKERFILE = "io.harness.dockerfile"
LABEL_DOCKERFILE_SHA256 = "io.harness.dockerfile.sha256"
# Present only on images whose layers harness rewrote (build(..., rewrite_layers=True)).
LABEL_LAYERS = "io.harness.layers"
DEFAULT_INDEX_URL = "https://pypi.org/simple"


@dataclass(frozen=True)
class BuildResult:
    reference: str
    image_id: str
    variant: str
    cached: bool
    seconds: float
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    # The image's SLSA provenance statement, unsigned (see harness.images.provenance).
    provenance: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "image_id": self.image_id,
            "variant": self.variant,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "size": self.size,
            "labels": dict(self.labels),
        }


def image_reference(config: Config, variant: Variant) -> str:
    return f"{config.image}:{variant.name}"


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build needs that can be checked before the engine is contacted."""

    config: Config
    variant: Variant
    pins: Sequence[Pin]
    ca_bundle: bytes
    # The harness whose runtime the image gets (its checkout, or its installed copy).
    harness_source: runtime_wheel.HarnessSource
    dockerfile: Dockerfile

    @property
    def target(self) -> wheeltags.Target:
        """The image's Python and platform, as the wheels of its pins must fit them."""
        return wheeltags.Target.parse(self.config.python, self.config.platform)

    @property
    def wheel_sources(self) -> wheelcache.Sources:
        """Where the pins' wheels are found: the index, and the wheel folders the variant
        may use."""
        config = self.config
        return wheelcache.Sources(
            config.index_url or DEFAULT_INDEX_URL,
            config.find_links if self.variant.find_links else (),
            config.ca_bundle,
        )


def plan(config: Config, variant_name: str) -> BuildPlan:
    """Validate the variant, its Dockerfile, its constraints, the platform and the CA bundle."""
    variant = config.variant(variant_name)
    dockerfile = choose(variant, config.project_root)
    pins = lock.require_fresh(config, variant)
    built = BuildPlan(
        config, variant, pins, _ca_bundle_bytes(config), runtime_wheel.locate(), dockerfile
    )
    _ = built.target  # a platform no wheel can be chosen for fails here, before the engine
    return built


@dataclass(frozen=True)
class Prepared:
    """A planned build made concrete against an engine: its base, arguments and labels."""

    build_plan: BuildPlan
    base: BaseImage
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    reference: str
    epoch: int
    # The digest of harness's files the labels were computed from (see runtime_wheel).
    source: str = ""

    @property
    def build_input(self) -> str:
        return self.labels[LABEL_BUILD_INPUT]


@dataclass(frozen=True)
class FreshImage:
    """An image just built and finalised, and what the engine's build left beside it."""

    image_id: str
    # The image as the engine built it, before its configuration was rewritten.
    built_id: str
    # Every image the build's steps made, oldest first (built_id last; never a base image,
    # never one a step took from the engine's cache): removed once the image is finished.
    step_images: tuple[str, ...]
    seconds: float
    # The images of its install stage, kept for the engine's cache (see stagecache).
    install_stage: tuple[str, ...] = ()


def discard_leftovers(engine: ContainerEngine, fresh: FreshImage) -> None:
    """Remove what the build of ``fresh`` made besides the finished image.

    The finished image holds every layer it needs (its configuration was loaded onto the
    layers the engine already had), so this frees the install stage and leaves the image
    whole. Newest first: an image with a child cannot go before the child; one that is
    still in use (a tag, a child, a container) stays.
    """
    for leftover in reversed(fresh.step_images):
        if leftover != fresh.image_id:
            engine.remove_unused_image(leftover)


def prepare(
    engine: ContainerEngine,
    build_plan: BuildPlan,
    say: Callable[[str], None] = lambda _: None,
    *,
    rewrite_layers: bool = False,
) -> Prepared:
    """Ensure the base image and derive the build's arguments and labels from the inputs.

    Rewritten layers are other bytes than the engine's, so the choice is an input too.
    Podman's layers are always rewritten (see :func:`harness.images.config.finalise`), so
    its images say so, as Docker's do when asked: the same inputs, the same image.
    """
    rewrite_layers = rewrite_layers or engine.product == PODMAN
    config, variant = build_plan.config, build_plan.variant
    base = ensure_base(engine, config, say)
    epoch = image_epoch(build_plan.harness_source)
    buildargs = {
        "BASE_IMAGE": base.id,
        "INDEX_URL": config.index_url or DEFAULT_INDEX_URL,
        "PYTHON_VERSION": config.python,
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    labels = image_labels(config, variant, base, epoch)
    labels[LABEL_DOCKERFILE] = build_plan.dockerfile.label
    labels[LABEL_DOCKERFILE_SHA256] = build_plan.dockerfile.sha256
    if rewrite_layers:
        labels[LABEL_LAYERS] = "rewritten"
    source = build_plan.harness_source.digest()
    labels[LABEL_BUILD_INPUT] = build_input_digest(
        dockerfile=build_plan.dockerfile.text,
        constraints=variant.constraints.read_bytes(),
        harness_source=source,
        ca_bundle=build_plan.ca_bundle,
        buildargs=buildargs,
        labels=labels,
    )
    return Prepared(
        build_plan, base, buildargs, labels, image_reference(config, variant), epoch, source
    )


def build(
    engine: ContainerEngine,
    build_plan: BuildPlan,
    *,
    no_cache: bool = False,
    rewrite_layers: bool = False,
    say: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
) -> BuildResult:
    """Build (or find, when its inputs are unchanged) the image of a planned variant.

    ``rewrite_layers`` also rewrites every layer with its times clamped (see
    :func:`harness.images.config.finalise`), for Dockerfiles that do not set them.
    """
    started = time.monotonic()
    variant = build_plan.variant
    unverifiable = lock.undigested(variant.constraints)
    if unverifiable is not None:
        say(f"warning: {unverifiable}: {lock.UNDIGESTED_FIX}")
    prepared = prepare(engine, build_plan, say, rewrite_layers=rewrite_layers)
    reference = prepared.reference

    if not no_cache:
        # Only an image harness itself built from these inputs, still as it was built:
        # never merely one whose label says so.
        found = builtimages.find(engine, prepared.build_input)
        if found is not None:
            engine.tag(found.id, reference)
            say(f"{reference} is up to date: its inputs are unchanged (cache hit)")
            return BuildResult(
                reference,
                found.id,
                variant.name,
                True,
                time.monotonic() - started,
                found.size,
                found.labels,
                provenance_statement(prepared, found.id, rewrite_layers=rewrite_layers),
            )

    fresh = build_image(
        engine,
        prepared,
        no_cache=no_cache,
        rewrite_layers=rewrite_layers,
        say=say,
        on_line=on_line,
    )
    builtimages.remember(engine, prepared.build_input, fresh.image_id)
    engine.tag(fresh.image_id, reference)
    discard_leftovers(engine, fresh)
    stagecache.keep(engine, reference, fresh.install_stage)
    info = engine.image(fresh.image_id)
    say(f"built {reference} ({fresh.image_id[:19]})")
    return BuildResult(
        reference,
        fresh.image_id,
        variant.name,
        False,
        time.monotonic() - started,
        info.size if info else 0,
        prepared.labels,
        provenance_statement(prepared, fresh.image_id, rewrite_layers=rewrite_layers),
    )


def provenance_statement(
    prepared: Prepared, image_id: str, *, rewrite_layers: bool
) -> dict[str, Any]:
    """The SLSA provenance of ``image_id``, built from ``prepared``: every wheel the wheel
    cache chose for a pin (the build installed exactly those, checked by their sha256)."""
    build_plan = prepared.build_plan
    config, variant = build_plan.config, build_plan.variant
    sources = build_plan.wheel_sources
    return provenance.statement(
        reference=prepared.reference,
        image_id=image_id,
        variant=variant.name,
        labels=prepared.labels,
        base_reference=prepared.base.reference,
        base_digest=prepared.base.digest,
        dockerfile_label=build_plan.dockerfile.label,
        dockerfile_sha256=build_plan.dockerfile.sha256,
        constraints_name=variant.constraints.name,
        constraints_sha256=prepared.labels.get(LABEL_CONSTRAINTS, ""),
        harness_source=prepared.source,
        ca_bundle_sha256=hashlib.sha256(build_plan.ca_bundle).hexdigest()
        if build_plan.ca_bundle
        else "",
        wheels=wheelcache.open_cache().known(build_plan.pins, build_plan.target, sources),
        source=vcs.source_state(config.project_root),
        parameters=provenance.external_parameters(
            python=config.python,
            platform=config.platform,
            index_url=sources.index_url,
            find_links=bool(sources.find_links),
            rewrite_layers=rewrite_layers,
        ),
        build_input=prepared.build_input,
    )


def build_image(
    engine: ContainerEngine,
    prepared: Prepared,
    *,
    no_cache: bool = False,
    rewrite_layers: bool = False,
    say: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
) -> FreshImage:
    """Run the engine's build of a prepared variant and finalise the image; tags nothing.

    A Dockerfile built on harness's frameworks image gets it first: found by its input,
    or built (see :mod:`harness.images.frameworks`), and named to the build by its ID.

    The labels are not given to the engine: the classic builder adds each as a step of
    its own, in a random order, and the labelled steps would carry the build-input label
    that finds images in the cache. They go into the configuration :func:`finalise`
    writes, so only finished images carry them.
    """
    started = time.monotonic()
    build_plan = prepared.build_plan
    buildargs = dict(prepared.buildargs)
    with tempfile.TemporaryDirectory(prefix="harness-build-") as folder:
        context = Path(folder) / "image"
        context.mkdir()
        say(f"assembling the build context of {prepared.reference}")
        provided = assemble_context(context, build_plan, epoch=prepared.epoch, say=say)
        if prepared.source and build_plan.harness_source.digest() != prepared.source:
            # The wheel would not be the source the labels name (and two builds of a
            # check would differ for a reason that is no fault of the build).
            raise BuildError(
                f"harness's files in {build_plan.harness_source.root} changed while the "
                "build was being prepared",
                "finish the edit, then build again",
            )
        if dockerfiles.builds_on_frameworks(build_plan.dockerfile.text):
            wheels = frameworks.split(provided)
            if engine.product == PODMAN or rewrite_layers:
                # Podman's load wants every layer's file, the tier's too, which harness
                # does not keep: its large pins stay in the one tier it builds. A build
                # whose layers are rewritten (the engine-neutral form) is built the same
                # way, so that Docker and Podman make one image from one project.
                wheels = frameworks.Split(wheels.large, wheels.small, wheels.large)
            layouts = frameworks.assemble(
                Path(folder) / "frameworks", context, wheels, base_id=prepared.base.id
            )
            # The tier on the base, the other large pins' layers stacked on it, the image
            # on the stack.
            tier, *pin_layers = layouts
            below = frameworks_image(
                engine, prepared, tier, provided, no_cache=no_cache, say=say, on_line=on_line
            )
            if pin_layers:
                below = stacked_frameworks(
                    engine,
                    prepared,
                    tier,
                    pin_layers,
                    provided,
                    tier_id=below,
                    no_cache=no_cache,
                    say=say,
                    on_line=on_line,
                )
            buildargs[frameworks.ARGUMENT] = below
            # The split rewrote constraints.txt and emptied wheels/ of the large ones.
            clamp_times(context, prepared.epoch)
        say(
            f"building {prepared.reference} from {build_plan.dockerfile.describe()} "
            f"on base {prepared.base.reference}"
        )
        # The install stage depends on the base and the small pins alone: kept for the
        # engine's cache, it makes a build whose frameworks alone moved copy, not install.
        install_stage: list[str] | None = None if no_cache else []
        built_id, steps = _engine_build(
            engine,
            context,
            buildargs=buildargs,
            provided=provided,
            variant=build_plan.variant,
            no_cache=no_cache,
            on_line=on_line,
            earlier_stages=install_stage,
        )
    image_id = imageconfig.finalise(
        engine,
        built_id,
        epoch=prepared.epoch,
        labels=prepared.labels,
        rewrite_layers=rewrite_layers,
        say=say,
    )
    return FreshImage(
        image_id, built_id, steps, time.monotonic() - started, tuple(install_stage or ())
    )


def frameworks_image(
    engine: ContainerEngine,
    prepared: Prepared,
    layout: frameworks.Context,
    provided: wheelcache.Provided,
    *,
    no_cache: bool = False,
    say: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
) -> str:
    """The ID of the frameworks tier ``layout`` describes: the one harness built from the
    same input on this engine, else a new build of it (always a new one with ``no_cache``).

    It is finalised like an image (times 0, so the same input gives the same ID), named
    ``harness-frameworks:<input>`` and written down as harness's own build; the build's
    steps go. Images built on it share its layers, so keeping it costs no disk of its own.
    """
    name = frameworks.reference(layout.digest)
    if not no_cache:
        found = builtimages.find(engine, layout.digest)
        if found is not None:
            engine.tag(found.id, name)
            say(f"the frameworks ({layout.pins} large pins) are in {name}")
            return found.id
    say(f"building {name}: the {layout.pins} heaviest pins, installed once for every image on them")
    started = time.monotonic()
    built_id, steps = _engine_build(
        engine,
        layout.folder,
        buildargs={"BASE_IMAGE": prepared.base.id},
        provided=provided,
        variant=prepared.build_plan.variant,
        no_cache=no_cache,
        on_line=on_line,
    )
    image_id = imageconfig.finalise(
        engine,
        built_id,
        epoch=0,
        labels={
            "org.opencontainers.image.title": f"harness frameworks ({layout.pins} pins)",
            LABEL_BUILD_INPUT: layout.digest,
        },
        say=say,
    )
    builtimages.remember(engine, layout.digest, image_id)
    engine.tag(image_id, name)
    discard_leftovers(engine, FreshImage(image_id, built_id, steps, 0.0))
    say(f"built {name} ({image_id[:19]}) in {time.monotonic() - started:.0f} s")
    return image_id


def stacked_frameworks(
    engine: ContainerEngine,
    prepared: Prepared,
    tier: frameworks.Context,
    layouts: Sequence[frameworks.Context],
    provided: wheelcache.Provided,
    *,
    tier_id: str,
    no_cache: bool = False,
    say: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
) -> str:
    """The ID of the frameworks image of the tier ``tier`` (built as ``tier_id``) with a
    layer per layout: the one harness made from the same inputs on this engine, else one
    stacked from the layer cache, whose missing layers are built (all with ``no_cache``).

    The stacked image is checked (its environment holds exactly the large pins), named
    ``harness-frameworks:<input>`` and written down as harness's own, as a tier is.
    """
    digest = frameworks.stacked_digest(tier.digest, [layout.digest for layout in layouts])
    name = frameworks.reference(digest)
    if not no_cache:
        found = builtimages.find(engine, digest)
        if found is not None:
            engine.tag(found.id, name)
            say(f"the frameworks' {len(layouts)} layers of large pins are in {name}")
            return found.id
    cache = layers.open_cache()
    kept: list[layers.Layer] = []
    for layout in layouts:
        layer = None if no_cache else cache.get(layout.digest)
        if layer is None:
            layer = frameworks_layer(
                engine, prepared, layout, provided, cache, no_cache=no_cache, on_line=on_line
            )
            say(f"installed {' '.join(layer.pins)} as a layer of its own")
        kept.append(layer)
    # Named last on its line: what a build used is the last frameworks image it names.
    say(f"building {name}: {len(kept)} layers of large pins on the frameworks tier")
    labels = {
        "org.opencontainers.image.title": f"harness frameworks ({tier.pins} + {len(kept)} layers)",
        LABEL_BUILD_INPUT: digest,
    }
    image_id = layers.stack(engine, tier_id, kept, labels, say=say)
    every_pin = [choice for layout in (tier, *layouts) for choice in layout.choices]
    layers.check(engine, image_id, prepared.build_plan.config.python, every_pin)
    builtimages.remember(engine, digest, image_id)
    engine.tag(image_id, name)
    return image_id


def frameworks_layer(
    engine: ContainerEngine,
    prepared: Prepared,
    layout: frameworks.Context,
    provided: wheelcache.Provided,
    cache: layers.LayerCache,
    *,
    no_cache: bool = False,
    on_line: Callable[[str], None] = lambda _: None,
) -> layers.Layer:
    """Install ``layout``'s pins alone (an image FROM scratch), keep its one layer in the
    layer cache, and leave nothing of the build on the engine."""
    built_id, steps = _engine_build(
        engine,
        layout.folder,
        buildargs={"BASE_IMAGE": prepared.base.id},
        provided=provided,
        variant=prepared.build_plan.variant,
        no_cache=no_cache,
        on_line=on_line,
    )
    try:
        with cache.workspace() as work:
            diff_id, archive = layers.take(engine, built_id, Path(work))
            return cache.store(layout.digest, archive, diff_id, layers.pin_lines(layout.choices))
    finally:
        # The layer lives on in the cache, and in the image it is stacked into.
        discard_leftovers(engine, FreshImage("", built_id, (*steps, built_id), 0.0))


def _engine_build(
    engine: ContainerEngine,
    context: Path,
    *,
    buildargs: Mapping[str, str],
    provided: wheelcache.Provided,
    variant: Variant,
    no_cache: bool,
    on_line: Callable[[str], None],
    earlier_stages: list[str] | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The engine's build of ``context``: the image it made and its steps' images.

    With ``earlier_stages``, the images of the stages before the last go there instead.

    A wheel pip refuses for its hash is named, and taken out of the wheel cache.
    """
    watcher = HashMismatchWatcher()
    # A build without the cache keeps nothing for the cache either.
    steps = StepImages(keep_base_steps=not no_cache)

    def each_line(line: str) -> None:
        watcher.feed(line)
        steps.feed(line)
        on_line(line)

    try:
        built_id = progress.during(
            f"building {context.name} ({variant.name})",
            engine.build,
            context,
            buildargs=buildargs,
            nocache=no_cache,
            on_line=each_line,
        )
    except BuildError as error:
        if watcher.packages:
            named = {canonicalize_name(p.split("==")[0]) for p in watcher.packages}
            evicted = wheelcache.open_cache().evict_corrupt(
                c for c in provided.choices if c.name in named
            )
            removed = f"; removed from the wheel cache: {', '.join(evicted)}" if evicted else ""
            raise HashMismatch(
                f"the {variant.name} build refused {', '.join(watcher.packages)}: "
                f"the wheel's sha256 is not the one pinned in {variant.constraints.name}"
                f"{removed}"
            ) from None
        raise error from None
    if earlier_stages is None:
        return built_id, tuple(steps.images)
    earlier_stages.extend(steps.before_last_stage())
    return built_id, tuple(i for i in steps.images if i not in earlier_stages)


class StepImages:
    """Collects, from the classic builder's output, the image each step made, oldest first.

    Each step ends with a line " ---> ID". A FROM step's ID is its base image, and a step
    that printed " ---> Using cache" took an image the engine already held (another
    build's): neither was made by this build, so both are left out, and removing what a
    build made never touches them.

    With ``keep_base_steps``, the steps of a stage before its first COPY or ADD are left
    out as well, into ``kept``: their images depend on the stage's base and the
    Dockerfile's text alone (no file of the context), so the engine's cache gives them to
    every later build on that base, and they are small (harness's own: an empty venv and
    the throwaway installer, about 25 MB, which took 4 of a rebuild's 12 seconds).
    """

    # Docker's classic builder writes "Step 2/9 : RUN ..." and " ---> 0123456789ab";
    # Podman's (buildah) "STEP 2/9: RUN ...", "--> 0123456789a" and "--> Using cache ID".
    _STEP = re.compile(r"^step \d+/\d+ ?: ", re.IGNORECASE)
    _FROM = re.compile(r"^step \d+/\d+ ?: FROM ", re.IGNORECASE)
    _CONTEXT = re.compile(r"^step \d+/\d+ ?: (COPY|ADD) ", re.IGNORECASE)
    _RESULT = re.compile(r"^ ?--?-> ([0-9a-f]{11,64})$")
    _CACHED = re.compile(r"^ ?--?-> Using cache\b")

    def __init__(self, *, keep_base_steps: bool = False) -> None:
        self.images: list[str] = []
        self.kept: list[str] = []
        # The stage (1 for the first FROM) each of ``images`` was made in, and how many.
        self.stage_of: dict[str, int] = {}
        self.stages = 0
        # The images steps took from the engine's cache, oldest first (with stage_of too).
        self.reused: list[str] = []
        self._keep_base_steps = keep_base_steps
        # Made and reused images alike, in the order of their steps.
        self._order: list[str] = []
        self._made_elsewhere = False
        self._cached = False
        self._before_context = False

    def before_last_stage(self) -> list[str]:
        """The images of the stages before the last (a multi-stage build's install
        stages), made or taken from the cache, oldest first."""
        return [image for image in self._order if self.stage_of[image] < self.stages]

    def feed(self, line: str) -> None:
        if self._FROM.match(line):
            self._made_elsewhere = True
            self._cached = False
            self._before_context = True
            self.stages += 1
        elif self._STEP.match(line):
            self._made_elsewhere = self._cached = False
            if self._CONTEXT.match(line):
                self._before_context = False
        elif self._CACHED.match(line):
            self._made_elsewhere = self._cached = True
        else:
            match = self._RESULT.match(line.rstrip())
            if match is None:
                return
            found = match.group(1)
            base_step = self._keep_base_steps and self._before_context
            if self._cached and not base_step and found not in self.reused:
                self.reused.append(found)
                self.stage_of.setdefault(found, self.stages)
                self._order.append(found)
            if self._made_elsewhere:
                return
            if self._keep_base_steps and self._before_context:
                if found not in self.kept:
                    self.kept.append(found)
            elif found not in self.images:
                self.images.append(found)
                self.stage_of[found] = self.stages
                self._order.append(found)


def image_labels(config: Config, variant: Variant, base: BaseImage, epoch: int) -> dict[str, str]:
    """OCI annotations plus harness's own, all derived from what the image holds (never
    the clock, never the project's commit: see :func:`image_epoch`)."""
    state = vcs.source_state(config.project_root)
    lock_file = config.project_root / lock.UV_LOCK
    # The source is a canonical public URL or absent (see harness.vcs): never how this
    # checkout was cloned, which would give one commit several image IDs.
    source = {"org.opencontainers.image.source": state.origin} if state.origin else {}
    return {
        "org.opencontainers.image.title": f"{config.image} ({variant.name})",
        **source,
        "org.opencontainers.image.created": dt.datetime.fromtimestamp(epoch, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "org.opencontainers.image.base.name": base.reference,
        "org.opencontainers.image.base.digest": base.digest,
        "org.opencontainers.image.version": harness.__version__,
        LABEL_VARIANT: variant.name,
        LABEL_VERSION: harness.__version__,
        LABEL_CONSTRAINTS: sha256_file(variant.constraints),
        LABEL_LOCK: sha256_file(lock_file) if lock_file.is_file() else "none",
    }


def image_epoch(harness_source: runtime_wheel.HarnessSource) -> int:
    """The time every date of the image is set to: SOURCE_DATE_EPOCH when set, else the
    commit time of harness's checkout when harness runs from one (its runtime is in the
    image, so its commit changes the image anyway), else 0.

    Never the project's commit: the image holds no project code (the project is mounted
    into each run), so a commit that changes only code must rebuild nothing. Which commit
    a run ran is in its record and in the certificate, not in the image."""
    if harness_source.kind == "checkout":
        return source_date_epoch(vcs.source_state(harness_source.root))
    return source_date_epoch(vcs.SourceState(None, False, None, None, None))


def source_date_epoch(state: vcs.SourceState) -> int:
    """SOURCE_DATE_EPOCH when set, else the commit's time: a build's dates never read the clock."""
    configured = os.environ.get("SOURCE_DATE_EPOCH")
    if configured and configured.isdigit():
        return int(configured)
    return state.commit_time or 0


def build_input_digest(
    *,
    dockerfile: bytes,
    constraints: bytes,
    harness_source: str,
    ca_bundle: bytes,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
) -> str:
    document = {
        "dockerfile": hashlib.sha256(dockerfile).hexdigest(),
        "constraints": hashlib.sha256(constraints).hexdigest(),
        "harness-source": harness_source,
        "ca-bundle": hashlib.sha256(ca_bundle).hexdigest(),
        "buildargs": dict(buildargs),
        "labels": dict(labels),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _ca_bundle_bytes(config: Config) -> bytes:
    if config.ca_bundle is None:
        return b""
    try:
        return config.ca_bundle.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"the CA bundle {config.ca_bundle} cannot be read: {error.strerror}",
            "fix ca-bundle / HARNESS_CA_BUNDLE, or unset it where TLS is not intercepted",
        ) from None


# -- the build context -----------------------------------------------------------------


def assemble_context(
    context: Path,
    build_plan: BuildPlan,
    *,
    epoch: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> wheelcache.Provided:
    """Lay out the build context; with ``epoch``, every file it made gets that time.

    The engine keeps a context file's time when a COPY puts it into an image, and the
    files here are fresh copies, so without this their time would be the build's.
    Wheels keep theirs: they are links to the wheel cache's files, and only the install
    stage, which is thrown away, ever holds them.
    """
    variant = build_plan.variant
    (context / "Dockerfile").write_bytes(build_plan.dockerfile.text)
    shutil.copyfile(variant.constraints, context / "constraints.txt")
    (context / "ca-bundle.crt").write_bytes(build_plan.ca_bundle)
    wheels = context / "wheels"
    wheels.mkdir()
    # COPY of an empty folder is fine for the engine, but an empty context folder can be
    # dropped by tools on the way; a marker keeps the layout fixed.
    (wheels / ".keep").write_text("")
    provided = wheelcache.open_cache().provide(
        build_plan.pins, build_plan.target, build_plan.wheel_sources, wheels, say=say
    )
    dist = context / "dist"
    wheel = build_plan.harness_source.wheel(dist)
    # By name and hash, not by file:// URL: pip then writes no direct_url.json, which would
    # name a path that exists only in the build's throwaway stage.
    _, version, _, _ = parse_wheel_filename(wheel.name)
    (dist / "harness-requirement.txt").write_text(
        f"harness=={version} --hash=sha256:{sha256_file(wheel)}\n"
    )
    if epoch is not None:
        clamp_times(context, epoch)
    return provided


def clamp_times(folder: Path, epoch: int) -> None:
    """Set the time of everything under ``folder`` (and of it) to ``epoch``; links excepted."""
    for path in [*folder.rglob("*"), folder]:
        status = path.lstat()
        if path.is_symlink() or (path.is_file() and status.st_nlink > 1):
            continue
        os.utime(path, (epoch, epoch))


class HashMismatchWatcher:
    """Spots pip's report of downloads whose sha256 differs from the pinned one."""

    _START = "DO NOT MATCH THE HASHES"
    _PACKAGE = re.compile(r"^\s+([A-Za-z0-9_.\-]+)==(\S+) from ")

    def __init__(self) -> None:
        self.reporting = False
        self.packages: list[str] = []

    def feed(self, line: str) -> None:
        if self._START in line:
            self.reporting = True
            return
        match = self._PACKAGE.match(line) if self.reporting else None
        if match:
            self.packages.append(f"{match.group(1)}=={match.group(2)}")
