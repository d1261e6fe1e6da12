"""The image configuration harness writes after a build, so that the image ID is reproducible.

The engine's classic builder stamps the clock into an image's configuration: ``created``
and every history entry's time, the ID of the container each step ran in (as
``container``, ``container_config`` and a hostname), the parent image's ID (itself
time-stamped), and the engine's version. The image ID is the sha256 of that document, so
two builds of identical layers still get two IDs.

:func:`finalise` writes the configuration again from what matters (architecture, OS, the
run settings, labels, the layers' diff IDs and the history's commands), with every time
set to SOURCE_DATE_EPOCH, serialised canonically, and loads it. The load carries only the
configuration: the engine already holds the layers, so it neither receives nor rereads a
byte of them, and the step costs well under a second whatever the image's size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from harness.engine import PODMAN, ContainerEngine, layer_ids
from harness.errors import EngineError
from harness.images import filesystem as imagefs

# Members of a saved image at most this large that are not named as layers are read
# whole (manifest, configuration, index); larger ones can only be layers.
_SMALL_MEMBER = 16 << 20
# buildah notes each step's parent ("FROM <image>", the parent named by an ID of the moment
# or a registry of its own) in the step's comment; Docker's builder leaves it empty.
_BUILDER_COMMENT = re.compile(r"FROM \S+\Z")
# How a COPY or ADD step names its source in the history: kind and content digest.
_SOURCE_DIGEST = re.compile(r"(dir|file|multi):[0-9a-f]{64}\Z")
# Labels a builder stamps on every image it makes (Podman's buildah names its version):
# they describe the tool, not the image, and would make the same files two images.
_BUILDER_LABELS = frozenset({"io.buildah.version"})
# The run settings an image carries (OCI image config "config"); the rest of the engine's
# container config (Hostname, Image, Attach*, Tty...) describes the build's containers.
_RUN_SETTINGS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
)
# Dockerfile instructions that only change the configuration; the classic builder records
# them as "#(nop)" steps that add no layer.
# The comment of the step finalise adds for the labels (see canonical_config).
_LABEL_STEP_COMMENT = "harness build"


_METADATA_INSTRUCTIONS = frozenset(
    {
        "ARG",
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        # Adds a layer only when it makes a folder the image lacks (harness's /tmp is
        # there); the layer count checked at the end catches a WORKDIR that did.
        "WORKDIR",
    }
)


def rfc3339(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def serialise(document: Any) -> bytes:
    """The canonical bytes of a configuration (or manifest): sorted keys, no spaces."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_id_of(config: bytes) -> str:
    return "sha256:" + hashlib.sha256(config).hexdigest()


def canonical_config(
    attributes: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    *,
    epoch: int,
    labels: Mapping[str, str],
    diff_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The configuration harness writes for an image the engine describes.

    ``attributes`` is what ``docker image inspect`` says, ``history`` the entries, oldest
    first, each with ``created_by``, ``comment`` and ``empty_layer``. ``labels`` are added
    to those the image inherits. ``diff_ids`` replaces the layers (after a rewrite).
    """
    settings = dict(attributes.get("Config") or {})
    run = {key: settings[key] for key in _RUN_SETTINGS if settings.get(key)}
    if run.get("Env"):
        # Docker keeps a variable where the base image first set it, buildah moves one
        # that a step changes to the end: the same environment in two orders. Each name
        # is set once, so sorted by name it means the same, whichever engine built it.
        run["Env"] = sorted(run["Env"], key=lambda item: str(item).partition("=")[0])
    inherited = {
        key: value
        for key, value in (settings.get("Labels") or {}).items()
        if key not in _BUILDER_LABELS
    }
    merged = {**inherited, **labels}
    if merged:
        run["Labels"] = merged
    created = rfc3339(epoch)
    entries: list[dict[str, Any]] = []
    for item in history:
        entry: dict[str, Any] = {
            "created": created,
            "created_by": canonical_step(str(item.get("created_by", ""))),
        }
        comment = str(item.get("comment") or "")
        if comment and not _BUILDER_COMMENT.match(comment):
            entry["comment"] = comment
        if item.get("empty_layer"):
            entry["empty_layer"] = True
        entries.append(entry)
    if labels:
        entries.append(
            {
                "created": created,
                "created_by": "LABEL " + " ".join(f"{k}={labels[k]}" for k in sorted(labels)),
                "comment": _LABEL_STEP_COMMENT,
                "empty_layer": True,
            }
        )
    config: dict[str, Any] = {
        "architecture": attributes.get("Architecture") or "amd64",
        "os": attributes.get("Os") or "linux",
        "created": created,
        "config": run,
        "rootfs": {
            "type": "layers",
            "diff_ids": list(diff_ids or layer_ids(attributes)),
        },
        "history": entries,
    }
    if attributes.get("Variant"):
        config["variant"] = attributes["Variant"]
    if attributes.get("Author"):
        config["author"] = attributes["Author"]
    return config


def canonical_step(created_by: str) -> str:
    """A history step's command in the one form every engine's builder can be brought to.

    An instruction that runs nothing is written "#(nop)  CMD ..." by Docker's classic
    builder and "#(nop) CMD ..." by buildah, which also keeps an ENV's line continuations
    as runs of spaces. A COPY or ADD names its source by a digest of the build context
    that each builder computes its own way ("COPY dir:<digest> in /"); the layer's diff
    ID already pins those files, so only the kind of source is kept. Steps that ran a
    command are left as they are: both builders write them alike.
    """
    head, marker, instruction = created_by.partition("#(nop)")
    if not marker:
        return created_by
    words = instruction.split()
    if (
        len(words) >= 4
        and words[0] in ("COPY", "ADD")
        and words[-2] == "in"
        and _SOURCE_DIGEST.match(words[1])
    ):
        words[1] = words[1].partition(":")[0]
    return f"{head}#(nop) {' '.join(words)}"


def _looks_empty(created_by: str, size: int, comment: str = "") -> bool:
    """Whether a history step the engine cannot tie to an image added no layer."""
    if size > 0:
        return False
    if comment == _LABEL_STEP_COMMENT and created_by.startswith("LABEL "):
        # The labels finalise gave an image this one is built on, a tier of frameworks
        # below another: no "#(nop)" marker, and no layer.
        return True
    marker = "#(nop) "
    if marker not in created_by:
        return False
    words = created_by.split(marker, 1)[1].split()
    return bool(words) and words[0].upper() in _METADATA_INSTRUCTIONS


def layer_history(
    engine: ContainerEngine, image_id: str, layer_count: int
) -> list[dict[str, Any]] | None:
    """The image's history, oldest first, with each step's empty_layer flag; None if unsure.

    The engine's history API leaves the flag out. Steps of a build made here are images
    the engine still holds, and a step added a layer exactly when its image has one more
    than the step before; steps it no longer holds are judged by their instruction.
    """
    entries: list[dict[str, Any]] = []
    count = 0
    for item in reversed(engine.history(image_id)):
        known = str(item.get("Id") or "")
        attributes = engine.image_attributes(known) if known.startswith("sha256:") else None
        if attributes is not None:
            layers = len(layer_ids(attributes))
            if layers not in (count, count + 1):
                return None
            empty = layers == count
        else:
            empty = _looks_empty(
                str(item.get("CreatedBy") or ""),
                int(item.get("Size") or 0),
                str(item.get("Comment") or ""),
            )
        count += 0 if empty else 1
        entries.append(
            {
                "created_by": str(item.get("CreatedBy") or ""),
                "comment": str(item.get("Comment") or ""),
                "empty_layer": empty,
            }
        )
    return entries if count == layer_count else None


def saved_history(engine: ContainerEngine, image_id: str) -> list[dict[str, Any]]:
    """The exact history, read from the configuration in ``docker save`` (slow: all layers)."""
    with engine.save(image_id) as stream:
        saved = imagefs.read_saved(stream, layers=False)
    document = json.loads(saved.config)
    return [
        {
            "created_by": item.get("created_by", ""),
            "comment": item.get("comment", ""),
            "empty_layer": bool(item.get("empty_layer")),
        }
        for item in document.get("history") or []
    ]


def config_only_archive(config: bytes, layer_count: int, tags: Sequence[str] = ()) -> bytes:
    """A ``docker load`` archive of a configuration whose layers the engine already holds.

    The engine looks each layer up by its chain of diff IDs before it would open the
    layer's file, so the manifest may name files the archive does not contain.
    """
    digest = hashlib.sha256(config).hexdigest()
    manifest = [
        {
            "Config": f"{digest}.json",
            "RepoTags": list(tags) or None,
            "Layers": [f"{index}/layer.tar" for index in range(layer_count)],
        }
    ]
    body = serialise(manifest)
    return b"".join(
        imagefs.tar_stream(
            [(f"{digest}.json", config, len(config)), ("manifest.json", body, len(body))]
        )
    )


def finalise(
    engine: ContainerEngine,
    image_id: str,
    *,
    epoch: int,
    labels: Mapping[str, str],
    rewrite_layers: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> str:
    """Give the built image ``image_id`` its canonical configuration; returns the new ID.

    With ``rewrite_layers`` every layer is also rewritten into the normal form of
    :func:`harness.images.filesystem.normalise_layer` (times clamped to ``epoch``): for Dockerfiles
    that do not set their files' times themselves. That path saves and loads the whole
    image, so it costs about as much as a build.
    """
    attributes = engine.image_attributes(image_id)
    if attributes is None:
        raise EngineError(f"the built image {image_id} has disappeared from the engine")
    diff_ids = layer_ids(attributes)
    history = layer_history(engine, image_id, len(diff_ids))
    if history is None:
        say("reading the exact build history from the saved image")
        history = saved_history(engine, image_id)
    # Podman's load wants every layer's file in the archive, so it takes the path that
    # carries them (and normalises them, as an engine-neutral form of the same files).
    if rewrite_layers or engine.product == PODMAN:
        return _rewrite(
            engine,
            image_id,
            attributes=attributes,
            history=history,
            epoch=epoch,
            labels=labels,
            say=say,
        )
    config = serialise(
        canonical_config(attributes, history, epoch=epoch, labels=labels, diff_ids=diff_ids)
    )
    new_id = image_id_of(config)
    if engine.image(new_id) is None:
        engine.load(config_only_archive(config, len(diff_ids)))
    if engine.image(new_id) is None:
        raise EngineError(f"the engine did not keep the finalised image {new_id}")
    return new_id


def _rewrite(
    engine: ContainerEngine,
    image_id: str,
    *,
    attributes: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    epoch: int,
    labels: Mapping[str, str],
    say: Callable[[str], None],
) -> str:
    say(f"rewriting the layers of {image_id[:19]} with every time clamped to {epoch}")
    with tempfile.TemporaryDirectory(prefix="harness-layers-") as folder:
        work = Path(folder)
        layers = normalised_layers(engine, image_id, work, epoch)
        config = serialise(
            canonical_config(
                attributes,
                history,
                epoch=epoch,
                labels=labels,
                diff_ids=[diff_id for diff_id, _, _ in layers],
            )
        )
        new_id = image_id_of(config)
        digest = new_id.split(":", 1)[1]
        manifest = serialise(
            [
                {
                    "Config": f"{digest}.json",
                    "RepoTags": None,
                    "Layers": [f"{index}/layer.tar" for index in range(len(layers))],
                }
            ]
        )
        with ExitStack() as files:
            members: list[tuple[str, IO[bytes] | bytes, int]] = [
                (f"{index}/layer.tar", files.enter_context(path.open("rb")), size)
                for index, (_, path, size) in enumerate(layers)
            ]
            members += [
                (f"{digest}.json", config, len(config)),
                ("manifest.json", manifest, len(manifest)),
            ]
            engine.load(imagefs.tar_stream(members))
    if engine.image(new_id) is None:
        raise EngineError(f"the engine did not keep the rewritten image {new_id}")
    return new_id


def normalised_layers(
    engine: ContainerEngine, image_id: str, work: Path, epoch: int
) -> list[tuple[str, Path, int]]:
    """Each layer of the image in normal form, in order: (diff ID, file, size)."""
    by_name: dict[str, tuple[str, Path, int]] = {}
    small: dict[str, bytes] = {}
    with engine.save(image_id) as stream, tarfile.open(fileobj=stream, mode="r|") as outer:
        for number, member in enumerate(outer):
            content = outer.extractfile(member) if member.isreg() else None
            if content is None:
                continue
            name = imagefs.clean_path(member.name)
            # Docker names layers N/layer.tar (legacy) or blobs/sha256/... (OCI); Podman
            # names them DIGEST.tar at the top. Whatever is not small is spooled and sniffed.
            if member.size > _SMALL_MEMBER or name.endswith(".tar") or name.startswith("blobs/"):
                raw = work / f"raw-{number}.tar"
                with raw.open("wb") as spooled:
                    imagefs.copy_stream(content, spooled)
                with raw.open("rb") as source, (work / f"{number}.tar").open("wb") as target:
                    head = source.read(tarfile.BLOCKSIZE)
                    source.seek(0)
                    if imagefs.sniff(head) != "tar":  # a blob that is JSON, not a layer
                        small[name] = source.read()
                        continue
                    diff_id, size = imagefs.normalise_layer(source, target, epoch)
                raw.unlink()
                by_name[name] = (diff_id, work / f"{number}.tar", size)
            else:
                small[name] = content.read()
    if "manifest.json" not in small:
        raise EngineError(f"saving {image_id} gave no manifest.json")
    manifest = json.loads(small["manifest.json"])[0]
    return [by_name[imagefs.clean_path(name)] for name in manifest["Layers"]]
