from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness import vcs
from harness.config import Config, load_config
from harness.digests import sha256_file
from harness.engine import ImageInfo
from harness.images import build, dockerfiles, runtime_wheel
from harness.images.base import BaseImage
from harness.vcs import SourceState
from tests.unit.fake_docker import EngineDouble


class FakeHarness(runtime_wheel.HarnessSource):
    """A harness whose wheel is a few bytes, so that no test runs `uv build`."""

    def wheel(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        wheel = out_dir / "harness-1.2.3-py3-none-any.whl"
        wheel.write_bytes(b"wheel")
        return wheel


def plan_of(config: Config, variant: str = "cpu") -> build.BuildPlan:
    chosen = config.variant(variant)
    return build.BuildPlan(
        config,
        chosen,
        [],
        b"",
        FakeHarness("checkout", config.project_root),
        dockerfiles.choose(chosen, config.project_root),
    )


PIP_HASH_REPORT = (
    "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have "
    "updated the package versions, please update the hashes. Otherwise, examine the package "
    "contents carefully; someone may have tampered with them.\n"
    "    absl-py==2.5.1 from https://files.example/absl_py-2.5.1-py3-none-any.whl "
    "(from -r /tmp/harness/constraints.txt (line 2)):\n"
    "        Expected sha256 0000\n"
    "             Got        286e\n"
)


def test_hash_mismatch_watcher_names_the_package() -> None:
    watcher = build.HashMismatchWatcher()
    for line in ["Collecting absl-py==2.5.1", *PIP_HASH_REPORT.splitlines()]:
        watcher.feed(line)
    assert watcher.packages == ["absl-py==2.5.1"]


def test_watcher_ignores_pins_outside_a_hash_report() -> None:
    watcher = build.HashMismatchWatcher()
    watcher.feed("    absl-py==2.5.1 from https://example/absl.whl")
    assert watcher.packages == []


def test_build_input_digest_moves_with_every_input() -> None:
    inputs: dict[str, object] = {
        "dockerfile": b"FROM x",
        "constraints": b"a==1",
        "harness_source": "abc",
        "ca_bundle": b"",
        "buildargs": {"BASE_IMAGE": "sha256:1"},
        "labels": {"a": "1"},
    }
    reference = build.build_input_digest(**inputs)  # type: ignore[arg-type]
    assert reference == build.build_input_digest(**inputs)  # type: ignore[arg-type]
    changes: dict[str, object] = {
        "dockerfile": b"FROM y",
        "constraints": b"a==2",
        "harness_source": "abd",
        "ca_bundle": b"pem",
        "buildargs": {"BASE_IMAGE": "sha256:2"},
        "labels": {"a": "2"},
    }
    for key, value in changes.items():
        assert build.build_input_digest(**{**inputs, key: value}) != reference, key  # type: ignore[arg-type]


def test_labels_carry_oci_and_harness_keys(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "constraints.txt").write_text("numpy==2 --hash=sha256:aa\n")
    (project / "uv.lock").write_text("version = 1\n")
    monkeypatch.setattr(
        vcs,
        "source_state",
        lambda _root: SourceState("c0ffee", True, "d1ff", "https://git.example/demo", 86400),
    )
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    config = load_config(project, environ={})
    base = BaseImage("harness-base:bookworm-python3.11", "sha256:base", "sha256:base", None, False)
    labels = build.image_labels(config, config.variant("cpu"), base, 86400)
    # The commit is the run record's and the certificate's, not the image's: a label
    # holding it would make every commit a new image.
    assert "org.opencontainers.image.revision" not in labels
    assert labels["org.opencontainers.image.source"] == "https://git.example/demo"
    assert labels["org.opencontainers.image.created"] == "1970-01-02T00:00:00Z"
    assert labels["org.opencontainers.image.base.digest"] == "sha256:base"
    assert labels[build.LABEL_VARIANT] == "cpu"
    assert not [key for key in labels if "c0ffee" in labels[key] or "dirty" in key]
    assert labels[build.LABEL_CONSTRAINTS] == sha256_file(project / "constraints.txt")
    assert labels[build.LABEL_LOCK] == sha256_file(project / "uv.lock")


def test_source_date_epoch_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    state = SourceState("c", False, None, None, 1234)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert build.source_date_epoch(state) == 1234
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "99")
    assert build.source_date_epoch(state) == 99


def test_source_digest_ignores_bytecode(tmp_path: Path) -> None:
    package = tmp_path / "harness"
    (package / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    before = runtime_wheel.source_digest(tmp_path)
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert runtime_wheel.source_digest(tmp_path) == before
    (package / "a.py").write_text("x = 2\n")
    assert runtime_wheel.source_digest(tmp_path) != before


def test_dockerfiles_install_with_require_hashes_and_run_as_non_root() -> None:
    for name in ("cpu", "cuda"):
        text = dockerfiles.builtin_text(name).decode()
        assert "--require-hashes" in text
        assert "--no-deps" in text
        assert "USER 10001:10001" in text
        assert "ARG BASE_IMAGE" in text
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in dockerfiles.builtin_text("cuda").decode()


BUILD_OUTPUT = """\
Step 1/8 : ARG BASE_IMAGE
Step 2/8 : FROM ${BASE_IMAGE} AS install
 ---> b67d025713ea
Step 3/8 : RUN pip install x
 ---> Running in 0c1d2e3f4a5b
Removing intermediate container 0c1d2e3f4a5b
 ---> 1111aaaa2222
Step 4/8 : RUN touch /out
 ---> Using cache
 ---> 3333bbbb4444
Step 5/8 : FROM ${BASE_IMAGE} AS empty
 ---> b67d025713ea
Step 6/8 : FROM ${BASE_IMAGE}
 ---> b67d025713ea
Step 7/8 : COPY --from=install /out/ /
 ---> 5555cccc6666
Step 8/8 : CMD ["python"]
 ---> 7777dddd8888
Successfully built 7777dddd8888
"""


def test_step_images_are_what_the_steps_made_never_a_base() -> None:
    steps = build.StepImages()
    for line in BUILD_OUTPUT.splitlines():
        steps.feed(line)
    # Each FROM's result is a base image the build did not make, and step 4 took its
    # image from the engine's cache.
    assert steps.images == ["1111aaaa2222", "5555cccc6666", "7777dddd8888"]


def test_steps_before_a_stage_s_first_copy_are_kept_for_the_cache_when_asked() -> None:
    steps = build.StepImages(keep_base_steps=True)
    for line in BUILD_OUTPUT.splitlines():
        steps.feed(line)
    # Step 3 depends on the base and the Dockerfile alone: a later build takes it from
    # the engine's cache. The final stage's COPY brings the context in: it goes.
    assert steps.kept == ["1111aaaa2222"]
    assert steps.images == ["5555cccc6666", "7777dddd8888"]


def test_the_stages_before_the_last_are_told_apart() -> None:
    """Their images (the install stage's) stay for the engine's cache: a build whose
    frameworks alone moved copies what they installed."""
    steps = build.StepImages()
    for line in BUILD_OUTPUT.splitlines():
        steps.feed(line)
    assert steps.stages == 3
    # Step 4's image came from the cache: not this build's to remove, but its stage's.
    assert steps.before_last_stage() == ["1111aaaa2222", "3333bbbb4444"]
    assert steps.images == ["1111aaaa2222", "5555cccc6666", "7777dddd8888"]


def test_harness_s_installer_step_comes_before_any_file_of_the_context() -> None:
    for name in ("cpu", "cuda"):
        install = dockerfiles.builtin_text(name).decode().split("\nFROM ")[1]
        steps = [line for line in install.splitlines() if line.startswith(("RUN", "COPY"))]
        assert steps[0].startswith("RUN python3 -m venv /tmp/installer"), name
        assert steps[1].startswith("COPY "), name


CACHED_OUTPUT = """\
Step 1/4 : FROM sha256:base AS install
 ---> 0000base0000
Step 2/4 : COPY constraints.txt /tmp/
 ---> Using cache
 ---> 1111aaaa2222
Step 3/4 : RUN pip install
 ---> Running in 9999eeee0000
Removing intermediate container 9999eeee0000
 ---> 3333bbbb4444
Step 4/4 : CMD ["python"]
 ---> Using cache
 ---> 7777dddd8888
Successfully built 7777dddd8888
"""


def test_step_images_leave_out_what_the_engine_s_cache_supplied() -> None:
    steps = build.StepImages()
    for line in CACHED_OUTPUT.splitlines():
        steps.feed(line)
    # Images a step took from the cache were made by another build: never ours to remove.
    assert steps.images == ["3333bbbb4444"]


class RemovingEngine(EngineDouble):
    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        self.removed.append(reference)
        return True


def test_a_build_s_leftovers_go_newest_first_and_the_image_stays() -> None:
    engine = RemovingEngine()
    fresh = build.FreshImage(
        "sha256:final", "7777dddd8888", ("1111aaaa2222", "3333bbbb4444", "7777dddd8888"), 1.0
    )
    build.discard_leftovers(engine, fresh)
    # The image as the engine built it (before its configuration was rewritten) goes too.
    assert engine.removed == ["7777dddd8888", "3333bbbb4444", "1111aaaa2222"]


def test_clamp_times_sets_every_time_but_leaves_linked_files_alone(tmp_path: Path) -> None:
    context = tmp_path / "context"
    (context / "wheels").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM x\n")
    user_wheel = tmp_path / "user.whl"
    user_wheel.write_bytes(b"wheel")
    (context / "wheels" / "user.whl").hardlink_to(user_wheel)
    before = user_wheel.stat().st_mtime
    build.clamp_times(context, 86400)
    assert (context / "Dockerfile").stat().st_mtime == 86400
    assert (context / "wheels").stat().st_mtime == 86400
    assert context.stat().st_mtime == 86400
    assert user_wheel.stat().st_mtime == before


def test_the_context_names_harness_by_version_and_hash(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (project / "constraints.txt").write_text("")
    config = load_config(project, environ={})
    plan = plan_of(config)
    context = project / "context"
    context.mkdir()
    build.assemble_context(context, plan, epoch=1000)
    requirement = (context / "dist" / "harness-requirement.txt").read_text()
    # Installed by name from a folder, pip writes no direct_url.json naming a build path.
    assert requirement.startswith("harness==1.2.3 --hash=sha256:")
    assert "file://" not in requirement
    assert (context / "dist" / "harness-1.2.3-py3-none-any.whl").stat().st_mtime == 1000


def final_stage(text: str) -> str:
    return text.rsplit("\nFROM ", 1)[1]


def test_dockerfiles_write_nothing_that_varies_between_builds() -> None:
    for name in ("cpu", "cuda"):
        text = dockerfiles.builtin_text(name).decode()
        # Both pip runs: no cache, and no bytecode of pip's (it compiles with the clock).
        assert text.count("--no-cache-dir --no-compile") == text.count("bin/pip ") == 2, name
        # Bytecode from compileall instead: hash-based, one process, a fixed hash seed,
        # for the frameworks and for harness's runtime.
        compiles = [line for line in text.splitlines() if "-m compileall" in line]
        assert len(compiles) == 2, name
        assert all("PYTHONHASHSEED=0" in line and "-j 1" in line for line in compiles), name
        # Nothing of the environment runs first (its .pth files would write bytecode with
        # the install's time), and bytecode already there is rewritten, never trusted.
        assert all(" -S -m compileall" in line and " -f " in line for line in compiles), name
        assert text.count("--invalidation-mode unchecked-hash") == 2, name
        # The frameworks come from the wheels harness put in the context, never the network.
        assert "--no-index --find-links /tmp/harness/wheels" in text, name
        assert "INDEX_URL" not in text, name
        assert "ARG SOURCE_DATE_EPOCH" in text, name
        assert 'touch -h -d "@$SOURCE_DATE_EPOCH"' in text, name
        assert "--no-index --find-links /tmp/harness/dist" in text, name
        assert "dist-info/RECORD" in text, name  # its line for the removed script goes
        final = final_stage(text)
        # The final stage runs nothing: no container, so no file the engine's mounts or a
        # started interpreter could leave behind; its copies each start at the root.
        assert "\nRUN " not in final, name
        copies = [line for line in final.splitlines() if line.startswith("COPY ")]
        assert copies, name
        assert all(line.endswith(" /") for line in copies), name


def test_the_frameworks_dockerfile_writes_nothing_that_varies_either() -> None:
    text = dockerfiles.frameworks_text().decode()
    assert text.count("--no-cache-dir --no-compile") == text.count("bin/pip ") == 1
    compiles = [line for line in text.splitlines() if "-m compileall" in line]
    assert len(compiles) == 1
    assert "PYTHONHASHSEED=0" in compiles[0]
    assert " -S -m compileall -qq -f -j 1" in compiles[0]
    assert "--no-index --find-links /tmp/harness/wheels" in text
    # Every time in what the image keeps is 0: the layers depend on the pins alone.
    assert text.count("touch -h -d @0") == 2
    final = final_stage(text)
    assert "\nRUN " not in final
    assert [line for line in final.splitlines() if line.startswith("COPY ")] == [
        "COPY --from=install /out/venv/ /",
        "COPY --from=install /out/users/ /",
    ]


def test_prepare_passes_source_date_epoch_and_keeps_every_label(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (project / "constraints.txt").write_text("")
    monkeypatch.setattr(
        vcs, "source_state", lambda _root: SourceState("c0ffee", False, None, None, 4242)
    )
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)

    class Engine(EngineDouble):
        def image(self, reference: str) -> ImageInfo:
            return ImageInfo("sha256:base", (reference,), {}, 0)

    config = load_config(project, environ={})
    plan = plan_of(config)
    prepared = build.prepare(Engine(), plan)
    assert prepared.epoch == 4242
    assert prepared.buildargs["SOURCE_DATE_EPOCH"] == "4242"
    assert prepared.buildargs["BASE_IMAGE"] == "sha256:base"
    assert prepared.reference == "demo:cpu"
    assert "org.opencontainers.image.revision" not in prepared.labels
    assert prepared.build_input == prepared.labels[build.LABEL_BUILD_INPUT]


def test_a_commit_that_changes_only_the_project_s_code_keeps_the_image(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "constraints.txt").write_text("")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)

    class Engine(EngineDouble):
        def image(self, reference: str) -> ImageInfo:
            return ImageInfo("sha256:base", (reference,), {}, 0)

    config = load_config(project, environ={})

    class Installed(runtime_wheel.HarnessSource):
        def digest(self) -> str:
            return "installed-harness"

    harness_source = Installed("installed", project / "site-packages")
    inputs = []
    for commit, when, dirty in (("c0ffee", 1000, False), ("beef00", 2000, True)):
        monkeypatch.setattr(
            vcs,
            "source_state",
            lambda _root, c=commit, t=when, d=dirty: SourceState(c, d, None, None, t),
        )
        plan = replace(plan_of(config), harness_source=harness_source)
        prepared = build.prepare(Engine(), plan)
        inputs.append((prepared.build_input, prepared.epoch, dict(prepared.buildargs)))
    assert inputs[0] == inputs[1]
    assert inputs[0][1] == 0
