"""`harness build --check`: build a variant twice without the cache and compare the images.

Each build runs from scratch (optionally the second on another engine) and is finalised
as `harness build` finalises it. The two images are then read back file by file, and the
report gives each one's image ID, layer diff IDs, manifest digest and content digest (see
:mod:`harness.images.filesystem`). Identical image IDs mean bit-for-bit identical images; otherwise
the files that differ are listed, grouped by the usual causes, like a diffoscope that
knows what a Python image is made of:

- mtime only: same content, type, mode and owner; only the time differs;
- bytecode: ``.pyc`` files and ``__pycache__`` folders, written by whoever imported or
  compiled with the build's clock in the header;
- installer metadata: what installers write beside a distribution (RECORD, INSTALLER,
  REQUESTED, direct_url.json, uv's cache keys);
- logs and caches: package managers' logs, caches and scratch space;
- real content: everything else, which is a difference in what the image does.

The report's exit code follows diff: 0 identical, 1 not. Everything the check created
(its tags, the images of its builds) is removed before it returns, whatever happened.

An image already built from the same plan can stand for the first build: one build without
the cache then has to give that image, bit for bit. That claims as much as two fresh
builds (the image in hand was itself built from the same inputs, at another time, from
whatever cache it had), at half the cost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from harness.cleanup import cleanup
from harness.engine import PODMAN, ContainerEngine
from harness.errors import EXIT_DIFFERS, EXIT_SAME, BuildError
from harness.fleet import shipping
from harness.images import build
from harness.images import filesystem as imagefs
from harness.images.built import LABEL_BUILD_INPUT

MTIME_ONLY = "mtime only"
BYTECODE = "bytecode"
INSTALLER_METADATA = "installer metadata"
LOGS_AND_CACHES = "logs and caches"
REAL_CONTENT = "real content"
# In the order a report lists them: what changes behaviour first.
CAUSES = (REAL_CONTENT, INSTALLER_METADATA, BYTECODE, LOGS_AND_CACHES, MTIME_ONLY)

_INSTALLER_FILES = frozenset(
    {
        "RECORD",
        "INSTALLER",
        "REQUESTED",
        "direct_url.json",
        "uv_cache.json",
        "installed-files.txt",
        "SOURCES.txt",
    }
)
_DIST_INFO_SUFFIXES = (".dist-info", ".egg-info")
# Folders whose content is logs, caches or scratch space wherever they appear at the root.
_CACHE_FOLDERS = (
    "var/log",
    "var/cache",
    "var/tmp",
    "tmp",
    "run",
    "var/lib/apt/lists",
    "root/.cache",
)
_CACHE_PARTS = frozenset({".cache", "pip-cache", "uv-cache", ".uv-cache"})
_CACHE_NAMES = frozenset(
    {"ld.so.cache", "aux-cache", "pip-selfcheck.json", "CACHEDIR.TAG", "status-old"}
)
_CACHE_SUFFIXES = (".log", "-old")
# How many paths each cause lists in the JSON document and on the terminal.
JSON_LIMIT = 1000
TEXT_LIMIT = 20


def classify(path: str, aspects: Sequence[str]) -> str:
    """The likely cause of a difference in ``path`` in the given aspects."""
    if set(aspects) == {"mtime"}:
        return MTIME_ONLY
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    if name.endswith((".pyc", ".pyo")) or "__pycache__" in parts:
        return BYTECODE
    if len(parts) >= 2 and parts[-2].endswith(_DIST_INFO_SUFFIXES) and name in _INSTALLER_FILES:
        return INSTALLER_METADATA
    if (
        any(path == folder or path.startswith(folder + "/") for folder in _CACHE_FOLDERS)
        or _CACHE_PARTS.intersection(parts)
        or name in _CACHE_NAMES
        or name.endswith(_CACHE_SUFFIXES)
    ):
        return LOGS_AND_CACHES
    return REAL_CONTENT


@dataclass(frozen=True)
class FileDifference:
    path: str
    cause: str
    # "only in first", "only in second", or what differs: type, content, mode, owner,
    # target, device, xattrs, mtime.
    aspects: tuple[str, ...]
    # The layer (from 0) that holds the path: in the image that has it, or the later of
    # the two.
    layer: int

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "aspects": list(self.aspects), "layer": self.layer}


def compare_files(
    first: Mapping[str, imagefs.Located], second: Mapping[str, imagefs.Located]
) -> list[FileDifference]:
    """Every path that differs between two merged file systems, in path order."""
    found = []
    for path in sorted(first.keys() | second.keys()):
        a, b = first.get(path), second.get(path)
        if a is None and b is not None:
            aspects: tuple[str, ...] = ("only in second",)
            layer = b.layer
        elif b is None and a is not None:
            aspects, layer = ("only in first",), a.layer
        elif a is not None and b is not None:
            # The later of the two layers holding it is the one whose step made it differ.
            aspects, layer = a.entry.differences(b.entry), max(a.layer, b.layer)
            if not aspects:
                continue
        else:  # pragma: no cover - the path came from one of the two
            continue
        found.append(FileDifference(path, classify(path, aspects), aspects, layer))
    return found


def config_differences(first: bytes, second: bytes) -> list[str]:
    """Dotted names of the configuration fields that differ (list items by index)."""
    differing: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(a.keys() | b.keys()):
                walk(a.get(key), b.get(key), f"{where}.{key}" if where else key)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{where}[{index}]")
        elif a != b:
            differing.append(where)

    walk(json.loads(first), json.loads(second), "")
    return differing


@dataclass(frozen=True)
class ImageReport:
    """One of the two builds: where it ran and what it gave."""

    engine: str
    image_id: str
    content_digest: str
    manifest_digest: str
    diff_ids: tuple[str, ...]
    # The build step (Dockerfile instruction) that made each layer.
    steps: tuple[str, ...]
    files: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "image_id": self.image_id,
            "content_digest": self.content_digest,
            "manifest_digest": self.manifest_digest,
            "layers": list(self.diff_ids),
            "files": self.files,
            "build_seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class CheckResult:
    variant: str
    reference: str
    first: ImageReport
    second: ImageReport
    differences: Sequence[FileDifference] = ()
    configuration: Sequence[str] = ()
    # The first image's files, for callers that look further (not part of the report).
    files: Mapping[str, imagefs.Located] = field(default_factory=dict, repr=False, compare=False)
    # Whether the first image was one built before (see check's ``against``).
    first_built_before: bool = False
    by_cause: Mapping[str, list[FileDifference]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[FileDifference]] = {cause: [] for cause in CAUSES}
        for difference in self.differences:
            grouped[difference.cause].append(difference)
        object.__setattr__(self, "by_cause", grouped)

    @property
    def identical(self) -> bool:
        return self.first.image_id == self.second.image_id

    @property
    def same_content(self) -> bool:
        return self.first.content_digest == self.second.content_digest

    @property
    def exit_code(self) -> int:
        return EXIT_SAME if self.identical else EXIT_DIFFERS

    def summary(self) -> str:
        """One line: the verdict and the digests that prove it."""
        if self.identical:
            image = self.first
            how = (
                "a build without cache gave the image built before"
                if self.first_built_before
                else "two builds without cache gave the same image"
            )
            return (
                f"{self.reference} is reproducible: {how} "
                f"{_short(image.image_id)} (content {_short(image.content_digest)}, "
                f"{image.files} files, {len(image.diff_ids)} layers)"
            )
        counts = ", ".join(
            f"{len(items)} {cause}" for cause, items in self.by_cause.items() if items
        )
        images = f"images {_short(self.first.image_id)} and {_short(self.second.image_id)}"
        if not self.differences:
            return (
                f"{self.reference} is not reproducible: {images} differ in their "
                f"configuration only ({', '.join(self.configuration[:5])})"
            )
        content = (
            f"same content {_short(self.first.content_digest)}"
            if self.same_content
            else f"content {_short(self.first.content_digest)} and "
            f"{_short(self.second.content_digest)}"
        )
        return (
            f"{self.reference} is not reproducible: {images} differ in "
            f"{len(self.differences)} files ({counts}); {content}"
        )

    def report_lines(self, limit: int = TEXT_LIMIT) -> list[str]:
        """The summary, then (when the images differ) what differs, grouped by cause."""
        lines = [self.summary()]
        if self.identical:
            return lines
        for number, image in ((1, self.first), (2, self.second)):
            lines.append(
                f"  image {number}: {image.image_id} on {image.engine}, content "
                f"{image.content_digest}, manifest {image.manifest_digest}"
            )
        for index, a, b in self._layer_pairs():
            if a != b:
                lines.append(f"  layer {index} differs ({self._step(index)}): {a} vs {b}")
        for cause, items in self.by_cause.items():
            if not items:
                continue
            lines.append(f"{cause} ({len(items)}):")
            for difference in items[:limit]:
                lines.append(
                    f"  /{difference.path}: {', '.join(difference.aspects)} "
                    f"(layer {difference.layer})"
                )
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")
        if self.configuration:
            lines.append(f"configuration ({len(self.configuration)}):")
            lines += [f"  {name}" for name in self.configuration[:limit]]
        return lines

    def as_dict(self, limit: int = JSON_LIMIT) -> dict[str, object]:
        return {
            "variant": self.variant,
            "reference": self.reference,
            "identical": self.identical,
            "same_content": self.same_content,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "images": [self.first.as_dict(), self.second.as_dict()],
            "layers": [
                {"index": index, "first": a, "second": b, "same": a == b, "step": self._step(index)}
                for index, a, b in self._layer_pairs()
            ],
            "differences": {
                cause: {
                    "count": len(items),
                    "files": [item.as_dict() for item in items[:limit]],
                }
                for cause, items in self.by_cause.items()
            },
            "configuration": list(self.configuration),
        }

    def _layer_pairs(self) -> Iterator[tuple[int, str, str]]:
        a, b = self.first.diff_ids, self.second.diff_ids
        for index in range(max(len(a), len(b))):
            yield index, a[index] if index < len(a) else "", b[index] if index < len(b) else ""

    def _step(self, layer: int) -> str:
        steps = self.first.steps if layer < len(self.first.steps) else self.second.steps
        text = instruction(steps[layer] if layer < len(steps) else "") or "base"
        return text if len(text) <= 60 else text[:57] + "..."


def instruction(created_by: str) -> str:
    """A history entry as the Dockerfile instruction it came from.

    The classic builder records "/bin/sh -c #(nop) COPY ..." for instructions that run
    nothing and "|N ARG=value ... /bin/sh -c COMMAND" for a RUN with build arguments.
    """
    shell = "/bin/sh -c "
    if "#(nop) " in created_by:
        return created_by.split("#(nop) ", 1)[1].strip()
    if shell in created_by:
        return "RUN " + created_by.split(shell, 1)[1].strip()
    return created_by.strip()


def layer_steps(config: bytes) -> tuple[str, ...]:
    """The history's command for each layer, in layer order."""
    history = json.loads(config).get("history") or []
    return tuple(str(h.get("created_by", "")) for h in history if not h.get("empty_layer"))


def read_image(engine: ContainerEngine, image_id: str) -> imagefs.SavedImage:
    """The image's configuration and file listing, streamed from ``docker save``."""
    with engine.save(image_id) as stream:
        return imagefs.read_saved(stream)


def ship_image(
    source: ContainerEngine,
    target: ContainerEngine,
    image_id: str,
    say: Callable[[str], None] = lambda _: None,
) -> None:
    """Copy an image from one engine to another (save streamed into load) unless it is there."""
    if target.image(image_id) is not None:
        return
    shipping.stream(source, target, image_id, say)
    # Saved by ID, it arrives untagged; named as on the source, it is not mistaken for
    # something left over, and the target's own builds find it.
    info = source.image(image_id)
    for tag in info.tags if info else ():
        if target.image(tag) is None:
            target.tag(image_id, tag)


def check(
    engine: ContainerEngine,
    build_plan: build.BuildPlan,
    *,
    other_engine: ContainerEngine | None = None,
    rewrite_layers: bool = False,
    against: str | None = None,
    say: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
) -> CheckResult:
    """Build the planned variant twice without the cache and compare the two images.

    With ``other_engine`` the second build runs there, from the same base image (copied
    over when that engine lacks it), so the check covers two hosts. ``against``, the ID of
    an image of ``engine`` built from the same plan, stands for the first build: the one
    build without the cache is compared with it (and it is never removed).
    """
    second_engine = other_engine or engine
    # Podman's layers are always rewritten; against it, the other build rewrites its too,
    # else the check would only find the two layer forms apart.
    rewrite_layers = rewrite_layers or PODMAN in (engine.product, second_engine.product)
    prepared = build.prepare(engine, build_plan, say, rewrite_layers=rewrite_layers)
    if other_engine is not None:
        ship_image(engine, other_engine, prepared.base.id, say)
    repository = f"{build_plan.config.image}-check-{uuid.uuid4().hex[:8]}"
    built: list[tuple[ContainerEngine, build.FreshImage, str]] = []
    before = [] if against is None else [(engine, _built_before(engine, prepared, against), "")]

    def discard() -> None:
        for target, fresh, tag in built:
            target.remove_unused_image(tag)
            build.discard_leftovers(target, fresh)

    # What the check built goes; failing to remove it must not hide a failed build.
    with cleanup("removing the check's images", discard):
        for number, target in enumerate((engine, second_engine), start=1):
            if before and number == 1:
                say(f"build 1 of 2 of {prepared.reference} is {against} (built before)")
                continue
            say(
                f"build {number} of 2 of {prepared.reference}, without the cache, on {target.where}"
            )
            fresh = build.build_image(
                target,
                prepared,
                no_cache=True,
                rewrite_layers=rewrite_layers,
                say=say,
                on_line=on_line,
            )
            tag = f"{repository}:{number}"
            target.tag(fresh.image_id, tag)
            built.append((target, fresh, tag))
        return _compare(prepared, [*before, *built], say, first_built_before=bool(before))


def _built_before(
    engine: ContainerEngine, prepared: build.Prepared, image_id: str
) -> build.FreshImage:
    """The image ``image_id`` as the first of the check's two, once its labels say it was
    built from the same inputs (another image would only be found to differ)."""
    info = engine.image(image_id)
    if info is None:
        raise BuildError(
            f"image {image_id} is not on {engine.where}", "build it first, or check without it"
        )
    if info.labels.get(LABEL_BUILD_INPUT) != prepared.build_input:
        raise BuildError(
            f"image {image_id} was not built from the inputs of {prepared.reference} "
            "(its build-input label differs)",
            "build the variant first, or check without it",
        )
    return build.FreshImage(info.id, info.id, (), 0.0)


def _compare(
    prepared: build.Prepared,
    built: Sequence[tuple[ContainerEngine, build.FreshImage, str]],
    say: Callable[[str], None],
    *,
    first_built_before: bool = False,
) -> CheckResult:
    (engine_a, fresh_a, _), (engine_b, fresh_b, _) = built
    say(f"reading {fresh_a.image_id[:19]} file by file")
    saved_a = read_image(engine_a, fresh_a.image_id)
    if fresh_a.image_id == fresh_b.image_id:
        # The same ID is the same configuration, hence the same layers: one read serves both.
        saved_b = saved_a
    else:
        say(f"reading {fresh_b.image_id[:19]} file by file")
        saved_b = read_image(engine_b, fresh_b.image_id)
    reports = [
        ImageReport(
            engine.where,
            fresh.image_id,
            saved.content_digest,
            saved.manifest_digest,
            tuple(saved.diff_ids),
            layer_steps(saved.config),
            len(saved.files),
            fresh.seconds,
        )
        for engine, fresh, saved in ((engine_a, fresh_a, saved_a), (engine_b, fresh_b, saved_b))
    ]
    same = saved_a is saved_b
    return CheckResult(
        prepared.build_plan.variant.name,
        prepared.reference,
        reports[0],
        reports[1],
        [] if same else compare_files(saved_a.files, saved_b.files),
        [] if same else config_differences(saved_a.config, saved_b.config),
        saved_a.files,
        first_built_before,
    )


def _short(digest: str) -> str:
    return digest[:19]
