"""The rebuild check's grouping and report, and the configuration harness writes."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.engine import ImageInfo
from harness.errors import BuildError
from harness.images import build, package, rebuild
from harness.images import config as imageconfig
from harness.images import filesystem as imagefs
from harness.images.built import LABEL_BUILD_INPUT
from harness.images.filesystem import Entry, Located
from tests.unit.fake_docker import EngineDouble


@pytest.mark.parametrize(
    ("path", "aspects", "cause"),
    [
        ("opt/venv/lib/python3.11/site-packages/numpy/__init__.py", ("mtime",), rebuild.MTIME_ONLY),
        ("usr/lib/python3.11/__pycache__/os.cpython-311.pyc", ("content",), rebuild.BYTECODE),
        ("opt/x/__pycache__", ("mode",), rebuild.BYTECODE),
        ("srv/legacy.pyo", ("content", "mtime"), rebuild.BYTECODE),
        ("site-packages/numpy-2.3.dist-info/RECORD", ("content",), rebuild.INSTALLER_METADATA),
        (
            "site-packages/harness-0.1.dist-info/direct_url.json",
            ("only in first",),
            rebuild.INSTALLER_METADATA,
        ),
        (
            "site-packages/pkg.egg-info/installed-files.txt",
            ("content",),
            rebuild.INSTALLER_METADATA,
        ),
        ("site-packages/x-1.dist-info/uv_cache.json", ("content",), rebuild.INSTALLER_METADATA),
        ("var/log/apt/history.log", ("content",), rebuild.LOGS_AND_CACHES),
        ("var/cache/debconf/templates.dat", ("content",), rebuild.LOGS_AND_CACHES),
        ("root/.cache/pip/http/a", ("only in second",), rebuild.LOGS_AND_CACHES),
        ("home/u/.cache/uv/archive-v0/x", ("content",), rebuild.LOGS_AND_CACHES),
        ("etc/ld.so.cache", ("content",), rebuild.LOGS_AND_CACHES),
        ("opt/app/build.log", ("content",), rebuild.LOGS_AND_CACHES),
        ("tmp/scratch", ("only in first",), rebuild.LOGS_AND_CACHES),
        ("build-time.txt", ("content", "mtime"), rebuild.REAL_CONTENT),
        ("site-packages/numpy-2.3.dist-info/METADATA", ("content",), rebuild.REAL_CONTENT),
        ("etc/passwd", ("mode",), rebuild.REAL_CONTENT),
        ("opt/tmpfile", ("content",), rebuild.REAL_CONTENT),
    ],
)
def test_classify(path: str, aspects: tuple[str, ...], cause: str) -> None:
    assert rebuild.classify(path, aspects) == cause


def located(sha: str = "aa", mtime: int = 0, mode: int = 0o644, layer: int = 1) -> Located:
    return Located(Entry("file", mode, 0, 0, 2, sha, mtime=mtime), layer)


def test_compare_files_lists_every_difference_with_its_cause_and_layer() -> None:
    first = {
        "same": located(),
        "stamp.txt": located("a1", mtime=5),
        "only-a": located(layer=2),
        "lib/x.pyc": located("c1", mtime=1),
        "times": located(mtime=1, layer=1),
        "perm": located(mode=0o600),
    }
    second = {
        "same": located(),
        "stamp.txt": located("b2", mtime=6),
        "only-b": located(layer=3),
        "lib/x.pyc": located("c2", mtime=1),
        "times": located(mtime=2, layer=2),
        "perm": located(mode=0o644),
    }
    found = {d.path: d for d in rebuild.compare_files(first, second)}
    assert set(found) == {"stamp.txt", "only-a", "only-b", "lib/x.pyc", "times", "perm"}
    assert found["stamp.txt"].aspects == ("content", "mtime")
    assert found["stamp.txt"].cause == rebuild.REAL_CONTENT
    assert found["only-a"].aspects == ("only in first",)
    assert found["only-a"].layer == 2
    assert found["only-b"].aspects == ("only in second",)
    assert found["lib/x.pyc"].cause == rebuild.BYTECODE
    assert (found["times"].cause, found["times"].layer) == (rebuild.MTIME_ONLY, 2)
    assert found["perm"].aspects == ("mode",)


def test_config_differences_name_dotted_paths() -> None:
    a = {
        "created": "1",
        "config": {"Env": ["A=1"], "Labels": {"x": "1"}},
        "rootfs": {"diff_ids": ["d1", "d2"]},
    }
    b = {
        "created": "2",
        "config": {"Env": ["A=1"], "Labels": {"x": "2", "y": "3"}},
        "rootfs": {"diff_ids": ["d1", "d3"]},
    }
    differing = rebuild.config_differences(json.dumps(a).encode(), json.dumps(b).encode())
    assert differing == ["config.Labels.x", "config.Labels.y", "created", "rootfs.diff_ids[1]"]


def report(image_id: str, content: str, diff_ids: tuple[str, ...]) -> rebuild.ImageReport:
    return rebuild.ImageReport(
        "default",
        image_id,
        content,
        "sha256:manifest",
        diff_ids,
        ("", "/bin/sh -c #(nop) COPY dir:abc in / ", "/bin/sh -c date > /stamp"),
        1234,
        60.0,
    )


def test_identical_builds_say_so_in_one_line_and_exit_0() -> None:
    image = report("sha256:" + "a" * 64, "sha256:" + "c" * 64, ("sha256:1", "sha256:2", "sha256:3"))
    result = rebuild.CheckResult("cpu", "harness:cpu", image, image)
    assert result.exit_code == 0
    lines = result.report_lines()
    assert len(lines) == 1
    assert "is reproducible" in lines[0]
    assert "sha256:aaaaaaaaaaaa" in lines[0]
    assert "1234 files" in lines[0]
    document = result.as_dict()
    assert document["identical"] is True
    assert json.loads(json.dumps(document))["images"][0]["content_digest"] == "sha256:" + "c" * 64


def test_differing_builds_group_the_files_by_cause_and_exit_1() -> None:
    first = report("sha256:" + "a" * 64, "sha256:" + "c" * 64, ("sha256:1", "sha256:2", "sha256:3"))
    second = report(
        "sha256:" + "b" * 64, "sha256:" + "d" * 64, ("sha256:1", "sha256:2", "sha256:4")
    )
    differences = [
        rebuild.FileDifference("stamp", rebuild.REAL_CONTENT, ("content", "mtime"), 2),
        *(rebuild.FileDifference(f"d{i}", rebuild.MTIME_ONLY, ("mtime",), 2) for i in range(30)),
    ]
    result = rebuild.CheckResult(
        "cpu", "harness:cpu", first, second, differences, ["rootfs.diff_ids[2]"]
    )
    assert result.exit_code == 1
    assert "31 files (1 real content, 30 mtime only)" in result.summary()
    lines = result.report_lines(limit=5)
    text = "\n".join(lines)
    assert "layer 2 differs (RUN date > /stamp)" in text
    assert "layer 1 differs" not in text
    assert "real content (1):\n  /stamp: content, mtime (layer 2)" in text
    assert "... and 25 more" in text
    assert text.index("real content") < text.index("mtime only")
    document = result.as_dict(limit=3)
    groups: Any = document["differences"]
    assert groups["mtime only"]["count"] == 30
    assert len(groups["mtime only"]["files"]) == 3
    assert groups["bytecode"]["count"] == 0
    assert [layer["same"] for layer in document["layers"]] == [True, True, False]  # type: ignore[attr-defined]


def test_same_content_but_different_images_is_still_a_difference() -> None:
    first = report("sha256:" + "a" * 64, "sha256:" + "c" * 64, ("sha256:1",))
    second = report("sha256:" + "b" * 64, "sha256:" + "c" * 64, ("sha256:2",))
    mtime = [rebuild.FileDifference("x", rebuild.MTIME_ONLY, ("mtime",), 0)]
    result = rebuild.CheckResult("cpu", "harness:cpu", first, second, mtime)
    assert result.exit_code == 1
    assert "same content sha256:cccccccccccc" in result.summary()
    only_config = rebuild.CheckResult("cpu", "harness:cpu", first, second, [], ["created"])
    assert "configuration only (created)" in only_config.summary()


def test_layer_steps_skip_empty_history_entries() -> None:
    config = {
        "history": [
            {"created_by": "import"},
            {"created_by": "ENV A=1", "empty_layer": True},
            {"created_by": "COPY x /"},
        ]
    }
    assert rebuild.layer_steps(json.dumps(config).encode()) == ("import", "COPY x /")


# -- the configuration harness writes --------------------------------------------------

ATTRIBUTES: dict[str, Any] = {
    "Id": "sha256:built",
    "Architecture": "amd64",
    "Os": "linux",
    "Created": "2026-11-26T07:27:39.251439346Z",
    "Container": "fe502c22cf52",
    "DockerVersion": "20.10.24",
    "Parent": "sha256:parent",
    "Config": {
        "Hostname": "fe502c22cf52",
        "User": "10001:10001",
        "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
        "Cmd": ["python"],
        "Image": "sha256:parent",
        "Volumes": None,
        "WorkingDir": "/tmp",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": {"io.harness.base.suite": "bookworm"},
        "AttachStdout": False,
    },
    "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]},
}
HISTORY = [
    {"created_by": "", "comment": "Imported from -", "empty_layer": False},
    {"created_by": "/bin/sh -c #(nop) COPY dir:x in / ", "comment": "", "empty_layer": False},
    {"created_by": '/bin/sh -c #(nop)  CMD ["python"]', "comment": "", "empty_layer": True},
]


# The same two steps as Docker's classic builder and Podman's buildah record them.
DOCKER_STEPS = [
    {
        "created_by": "/bin/sh -c #(nop) COPY dir:" + "a" * 64 + " in / ",
        "comment": "",
        "empty_layer": False,
    },
    {
        "created_by": "/bin/sh -c #(nop)  ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/bin",
        "comment": "",
        "empty_layer": True,
    },
]
BUILDAH_STEPS = [
    {
        "created_by": "/bin/sh -c #(nop) COPY dir:" + "b" * 64 + " in / ",
        "comment": "FROM localhost/harness-base:bookworm-python3.11",
        "empty_layer": False,
    },
    {
        "created_by": "/bin/sh -c #(nop) ENV VIRTUAL_ENV=/opt/venv     PATH=/opt/venv/bin:/usr/bin",
        "comment": "FROM 50fd6bab3a0c",
        "empty_layer": True,
    },
]


def test_docker_and_buildah_records_of_one_build_give_one_configuration() -> None:
    docker_env = {**ATTRIBUTES, "Config": {"Env": ["PATH=/opt/venv/bin:/usr/bin", "LANG=C"]}}
    buildah_env = {**ATTRIBUTES, "Config": {"Env": ["LANG=C", "PATH=/opt/venv/bin:/usr/bin"]}}
    from_docker = imageconfig.canonical_config(docker_env, DOCKER_STEPS, epoch=0, labels={})
    from_buildah = imageconfig.canonical_config(buildah_env, BUILDAH_STEPS, epoch=0, labels={})
    assert imageconfig.serialise(from_docker) == imageconfig.serialise(from_buildah)
    assert [entry["created_by"] for entry in from_docker["history"]] == [
        "/bin/sh -c #(nop) COPY dir in /",
        "/bin/sh -c #(nop) ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/bin",
    ]


def test_canonical_steps_keep_commands_and_comments_that_are_not_the_builders() -> None:
    run = '|1 SOURCE_DATE_EPOCH=1 /bin/sh -c pip  install  "a  b"'
    assert imageconfig.canonical_step(run) == run
    assert imageconfig.canonical_step("COPY dir:short in /") == "COPY dir:short in /"
    [kept] = imageconfig.canonical_config(
        ATTRIBUTES, [{"created_by": "", "comment": "Imported from -"}], epoch=0, labels={}
    )["history"]
    assert kept["comment"] == "Imported from -"


def test_canonical_config_keeps_what_runs_and_drops_the_builds_stamps() -> None:
    config = imageconfig.canonical_config(
        ATTRIBUTES, HISTORY, epoch=86400, labels={"b": "2", "a": "1"}
    )
    assert config["created"] == "1970-01-02T00:00:00Z"
    assert config["config"] == {
        "User": "10001:10001",
        "Env": ["LANG=C.UTF-8", "PATH=/usr/bin"],
        "Cmd": ["python"],
        "WorkingDir": "/tmp",
        "Labels": {"io.harness.base.suite": "bookworm", "a": "1", "b": "2"},
    }
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:l1", "sha256:l2"]}
    assert {entry["created"] for entry in config["history"]} == {"1970-01-02T00:00:00Z"}
    assert [bool(entry.get("empty_layer")) for entry in config["history"]] == [
        False,
        False,
        True,
        True,
    ]
    assert config["history"][-1]["created_by"] == "LABEL a=1 b=2"
    text = imageconfig.serialise(config).decode()
    for stamp in ("fe502c22cf52", "sha256:parent", "20.10.24", "2026-11-26"):
        assert stamp not in text


def test_canonical_config_depends_only_on_its_inputs() -> None:
    other = {
        **ATTRIBUTES,
        "Created": "2030-01-01T00:00:00Z",
        "Container": "0123",
        "Parent": "sha256:p2",
    }
    other["Config"] = {**ATTRIBUTES["Config"], "Hostname": "0123", "Image": "sha256:p2"}
    one = imageconfig.serialise(
        imageconfig.canonical_config(ATTRIBUTES, HISTORY, epoch=5, labels={})
    )
    two = imageconfig.serialise(imageconfig.canonical_config(other, HISTORY, epoch=5, labels={}))
    assert one == two
    later = imageconfig.serialise(
        imageconfig.canonical_config(ATTRIBUTES, HISTORY, epoch=6, labels={})
    )
    assert later != one


class FakeEngine(EngineDouble):
    """Answers the history and inspect calls layer_history makes."""

    def __init__(self, history: Sequence[Mapping[str, Any]], layers: Mapping[str, int]) -> None:
        self._history = history
        self._layers = layers

    def history(self, reference: str) -> list[Mapping[str, Any]]:
        return list(self._history)

    def image_attributes(self, reference: str) -> Mapping[str, Any] | None:
        if reference not in self._layers:
            return None
        return {"RootFS": {"Layers": [f"l{i}" for i in range(self._layers[reference])]}}


def history_item(image_id: str, created_by: str, size: int = 0) -> dict[str, Any]:
    return {"Id": image_id, "CreatedBy": created_by, "Size": size, "Comment": ""}


def test_layer_history_ties_steps_to_the_images_that_made_them() -> None:
    newest_first = [
        history_item("sha256:i4", '/bin/sh -c #(nop)  CMD ["python"]'),
        history_item("sha256:i3", "/bin/sh -c #(nop) WORKDIR /new"),  # made a folder: a layer
        history_item("sha256:i2", "/bin/sh -c #(nop) COPY dir:x in / "),  # only folders: size 0
        history_item("<missing>", "/bin/sh -c #(nop)  ENV A=1"),
        history_item("<missing>", "/bin/sh -c debootstrap", 100),
    ]
    engine = FakeEngine(newest_first, {"sha256:i2": 2, "sha256:i3": 3, "sha256:i4": 3})
    history = imageconfig.layer_history(engine, "sha256:i4", 3)
    assert history is not None
    assert [h["empty_layer"] for h in history] == [False, True, False, False, True]


def test_layer_history_says_when_it_cannot_tell() -> None:
    # Neither step is an image the engine holds, and the instructions suggest two layers
    # where the image has one: the history must then be read from the image itself.
    newest_first = [
        history_item("<missing>", "/bin/sh -c #(nop) COPY dir:x in / "),
        history_item("<missing>", "/bin/sh -c debootstrap", 100),
    ]
    engine = FakeEngine(newest_first, {})
    assert imageconfig.layer_history(engine, "sha256:x", 1) is None


def test_layer_history_takes_workdir_for_no_layer_when_the_count_agrees() -> None:
    # harness's Dockerfile ends with WORKDIR /tmp, a folder the image has: no layer. A
    # loaded image's steps are no images the engine holds, so the instruction decides.
    newest_first = [
        history_item("sha256:top", '/bin/sh -c #(nop)  CMD ["python"]'),
        history_item("<missing>", "/bin/sh -c #(nop) WORKDIR /tmp"),
        history_item("<missing>", "/bin/sh -c #(nop) COPY dir:x in / "),  # only folders
        history_item("<missing>", "/bin/sh -c debootstrap", 100),
    ]
    engine = FakeEngine(newest_first, {"sha256:top": 2})
    history = imageconfig.layer_history(engine, "sha256:top", 2)
    assert history is not None
    assert [h["empty_layer"] for h in history] == [False, False, True, True]


def test_instruction_reads_the_classic_builders_history() -> None:
    assert rebuild.instruction("/bin/sh -c #(nop)  ENV A=1") == "ENV A=1"
    assert rebuild.instruction("|2 A=1 B=2 /bin/sh -c pip install x") == "RUN pip install x"
    assert rebuild.instruction("") == ""


def test_config_only_archive_names_layers_it_does_not_carry() -> None:
    config = b'{"rootfs":{}}'
    archive = imageconfig.config_only_archive(config, 3)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    digest = imageconfig.image_id_of(config).split(":")[1]
    assert names == [f"{digest}.json", "manifest.json"]
    assert manifest[0]["Layers"] == ["0/layer.tar", "1/layer.tar", "2/layer.tar"]
    assert manifest[0]["RepoTags"] is None


class LoadingEngine(EngineDouble):
    """Records what finalise loads; the image exists once loaded."""

    def __init__(self) -> None:
        self.loaded: list[bytes] = []
        self.images: set[str] = set()

    def image_attributes(self, reference: str) -> Mapping[str, Any] | None:
        return ATTRIBUTES if reference == "sha256:built" else None

    def history(self, reference: str) -> list[Mapping[str, Any]]:
        return [
            history_item("sha256:built", '/bin/sh -c #(nop)  CMD ["python"]'),
            history_item("<missing>", "/bin/sh -c #(nop) COPY dir:x in / ", 10),
            history_item("<missing>", "", 100),
        ]

    def load(self, data: bytes | Iterable[bytes]) -> list[str]:
        archive = data if isinstance(data, bytes) else b"".join(data)
        self.loaded.append(archive)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            name = next(n for n in tar.getnames() if n != "manifest.json")
        self.images.add("sha256:" + name.removesuffix(".json"))
        return []

    def image(self, reference: str) -> ImageInfo | None:
        return ImageInfo(reference, (), {}, 0) if reference in self.images else None


def test_finalise_loads_the_configuration_once_and_returns_its_digest() -> None:
    engine = LoadingEngine()
    first = imageconfig.finalise(engine, "sha256:built", epoch=7, labels={"a": "1"})
    again = imageconfig.finalise(engine, "sha256:built", epoch=7, labels={"a": "1"})
    assert first == again
    assert len(engine.loaded) == 1  # the second found the image and loaded nothing
    expected = imageconfig.canonical_config(
        ATTRIBUTES,
        [
            {"created_by": "", "comment": "", "empty_layer": False},
            {
                "created_by": "/bin/sh -c #(nop) COPY dir:x in / ",
                "comment": "",
                "empty_layer": False,
            },
            {"created_by": '/bin/sh -c #(nop)  CMD ["python"]', "comment": "", "empty_layer": True},
        ],
        epoch=7,
        labels={"a": "1"},
    )
    assert first == imageconfig.image_id_of(imageconfig.serialise(expected))


# -- the wheel check -------------------------------------------------------------------


def wheel(path: Path, members: Mapping[str, tuple[bytes, tuple[int, ...]]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, (data, when) in members.items():
            archive.writestr(zipfile.ZipInfo(name, when), data)  # type: ignore[arg-type]
    return path


def test_wheel_differences_name_members_and_aspects(tmp_path: Path) -> None:
    day = (2020, 1, 1, 0, 0, 0)
    a = wheel(
        tmp_path / "a.whl", {"h/__init__.py": (b"x", day), "h/old.py": (b"", day), "R": (b"1", day)}
    )
    b = wheel(
        tmp_path / "b.whl",
        {"h/__init__.py": (b"x", (2021, 1, 1, 0, 0, 0)), "h/new.py": (b"", day), "R": (b"2", day)},
    )
    assert package.wheel_differences(a, b) == (
        "R: content",
        "h/__init__.py: time",
        "h/new.py: only in the second build",
        "h/old.py: only in the first build",
    )
    swapped = wheel(
        tmp_path / "c.whl", {"R": (b"1", day), "h/__init__.py": (b"x", day), "h/old.py": (b"", day)}
    )
    assert package.wheel_differences(a, swapped) == ("the order of the members",)


def test_package_result_verdicts() -> None:
    same = package.PackageResult("h.whl", "ab", "ab")
    assert (same.exit_code, same.identical) == (0, True)
    assert "is reproducible" in same.summary()
    differs = package.PackageResult("h.whl", "ab", "cd", ("R: content",))
    assert differs.exit_code == 1
    assert "R: content" in differs.summary()
    assert differs.as_dict()["sha256"] == ["ab", "cd"]


def test_imagefs_and_rebuild_agree_on_the_file_view() -> None:
    # The check compares what read_saved merges: a located entry per path.
    entry = Entry("file", 0o644, 0, 0, 1, "aa")
    assert rebuild.compare_files({"x": Located(entry, 0)}, {"x": Located(entry, 0)}) == []
    assert imagefs.content_digest({"x": Located(entry, 0)}) == imagefs.content_digest(
        {"x": Located(entry, 5)}
    )


# -- the check's orchestration ---------------------------------------------------------


class RecordingEngine(EngineDouble):
    """Records the tags and removals of a check; holds images only by tag."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.calls: list[tuple[str, str]] = []

    def tag(self, image_id: str, reference: str) -> None:
        self.calls.append(("tag", reference))

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        self.calls.append(("remove", reference))
        return True


def fake_check(
    monkeypatch: pytest.MonkeyPatch,
    ids: list[str],
    engines: tuple[RecordingEngine, RecordingEngine | None],
    against: str | None = None,
) -> tuple[rebuild.CheckResult, list[str]]:
    plan = SimpleNamespace(
        config=SimpleNamespace(image="demo"), variant=SimpleNamespace(name="cpu")
    )
    prepared = SimpleNamespace(
        reference="demo:cpu",
        build_plan=plan,
        base=SimpleNamespace(id="sha256:base"),
        build_input="input",
    )
    numbers = iter(range(len(ids)))
    reads: list[str] = []

    def build_image(engine: Any, _prepared: Any, **options: Any) -> build.FreshImage:
        assert options["no_cache"] is True
        number = next(numbers)
        steps = (f"step{number}a", f"step{number}b")
        return build.FreshImage(ids[number], steps[-1], steps, 1.0)

    def read_image(engine: Any, image_id: str) -> imagefs.SavedImage:
        reads.append(image_id)
        layer = imagefs.Layer("sha256:l", 1, {"f": Entry("file", 0o644, 0, 0, 1, image_id)})
        config = json.dumps({"history": [{"created_by": "RUN x"}]}).encode()
        return imagefs.SavedImage(config, [layer], imagefs.merge([layer]))

    monkeypatch.setattr(build, "prepare", lambda *_a, **_k: prepared)
    monkeypatch.setattr(build, "build_image", build_image)
    monkeypatch.setattr(rebuild, "read_image", read_image)
    monkeypatch.setattr(rebuild, "ship_image", lambda *_a, **_k: None)
    result = rebuild.check(
        engines[0],
        plan,  # type: ignore[arg-type]
        other_engine=engines[1],
        against=against,
    )
    return result, reads


def test_identical_builds_are_read_once_and_everything_made_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = RecordingEngine("default")
    result, reads = fake_check(monkeypatch, ["sha256:same", "sha256:same"], (engine, None))
    assert result.exit_code == 0
    assert reads == ["sha256:same"]
    removed = [reference for call, reference in engine.calls if call == "remove"]
    tags = [reference for call, reference in engine.calls if call == "tag"]
    assert len(tags) == 2
    assert all(tag.startswith("demo-check-") for tag in tags)
    # Each build's tag, then its step images newest first (a child before its parent).
    assert removed == [tags[0], "step0b", "step0a", tags[1], "step1b", "step1a"]


def test_two_engines_each_clean_up_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = RecordingEngine("default"), RecordingEngine("tcp://other")
    result, reads = fake_check(monkeypatch, ["sha256:one", "sha256:two"], (first, second))
    assert result.exit_code == 1
    assert reads == ["sha256:one", "sha256:two"]
    assert result.second.engine == "tcp://other"
    assert [d.path for d in result.by_cause[rebuild.REAL_CONTENT]] == ["f"]
    assert ("remove", "step1a") in second.calls
    assert ("remove", "step1a") not in first.calls


class HoldingEngine(RecordingEngine):
    """An engine that also holds images built before, with their build-input labels."""

    def __init__(self, where: str, held: dict[str, str]) -> None:
        super().__init__(where)
        self.held = held

    def image(self, reference: str) -> ImageInfo | None:
        if reference not in self.held:
            return None
        labels = {LABEL_BUILD_INPUT: self.held[reference]}
        return ImageInfo(reference, (), labels, 0)


def test_an_image_built_before_stands_for_the_first_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = HoldingEngine("default", {"sha256:kept": "input"})
    result, reads = fake_check(monkeypatch, ["sha256:kept"], (engine, None), against="sha256:kept")
    # One build without the cache, which gave the image in hand: read once, and reproducible.
    assert result.exit_code == 0
    assert result.first_built_before
    assert result.summary().startswith(
        "demo:cpu is reproducible: a build without cache gave the image built before"
    )
    assert reads == ["sha256:kept"]
    assert (result.first.seconds, result.second.seconds) == (0.0, 1.0)
    # Only what the check built goes, never the image it was given.
    tags = [reference for call, reference in engine.calls if call == "tag"]
    removed = [reference for call, reference in engine.calls if call == "remove"]
    assert len(tags) == 1
    assert removed == [tags[0], "step0b", "step0a"]
    # And a rebuild that differs from it is reported like two builds that differ.
    differs, _ = fake_check(monkeypatch, ["sha256:new"], (engine, None), against="sha256:kept")
    assert differs.exit_code == 1
    assert [d.path for d in differs.by_cause[rebuild.REAL_CONTENT]] == ["f"]


def test_an_image_of_other_inputs_cannot_stand_for_the_first_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = HoldingEngine("default", {"sha256:other": "another input"})
    with pytest.raises(BuildError, match="was not built from the inputs of demo:cpu"):
        fake_check(monkeypatch, ["sha256:x"], (engine, None), against="sha256:other")
    with pytest.raises(BuildError, match="is not on default"):
        fake_check(monkeypatch, ["sha256:x"], (engine, None), against="sha256:gone")
    assert engine.calls == []  # nothing was built
