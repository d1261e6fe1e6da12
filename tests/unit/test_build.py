from __future__ import annotations

from pathlib import Path

import pytest

from harness import build, lock
from harness.base import BaseImage
from harness.config import load_config
from harness.vcs import SourceState

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


def test_pinned_wheels_take_exact_name_and_version(tmp_path: Path) -> None:
    for name in (
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "Scikit_Learn-1.9.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "not-a-wheel.txt",
        "broken.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    pins = [
        lock.Pin("torch", "2.13.0+cpu", ("sha256:aa",)),
        lock.Pin("scikit-learn", "1.9.1", ("sha256:bb",)),
    ]
    found = build.pinned_wheels([str(tmp_path), "https://example/simple", "/does/not/exist"], pins)
    assert sorted(p.name for p in found) == [
        "Scikit_Learn-1.9.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ]
    # The CUDA variant pins the index's torch==2.13.0: the local +cpu build must not match.
    assert build.pinned_wheels([str(tmp_path)], [lock.Pin("torch", "2.13.0", ("sha256:cc",))]) == []


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
        build.vcs,
        "source_state",
        lambda _root: SourceState("c0ffee", True, "d1ff", "https://git.example/demo", 86400),
    )
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    config = load_config(project, environ={})
    base = BaseImage("harness-base:bookworm-python3.11", "sha256:base", "sha256:base", None, False)
    labels = build.image_labels(config, config.variant("cpu"), base)
    assert labels["org.opencontainers.image.revision"] == "c0ffee"
    assert labels["org.opencontainers.image.source"] == "https://git.example/demo"
    assert labels["org.opencontainers.image.created"] == "1970-01-02T00:00:00Z"
    assert labels["org.opencontainers.image.base.digest"] == "sha256:base"
    assert labels[build.LABEL_VARIANT] == "cpu"
    assert labels[build.LABEL_DIRTY] == "true"
    assert labels[build.LABEL_CONSTRAINTS] == lock.sha256_file(project / "constraints.txt")
    assert labels[build.LABEL_LOCK] == lock.sha256_file(project / "uv.lock")


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
    before = build.source_digest(tmp_path)
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert build.source_digest(tmp_path) == before
    (package / "a.py").write_text("x = 2\n")
    assert build.source_digest(tmp_path) != before


def test_dockerfiles_install_with_require_hashes_and_run_as_non_root() -> None:
    repository = Path(__file__).resolve().parents[2]
    for name in ("Dockerfile", "Dockerfile.cuda"):
        text = (repository / name).read_text()
        assert "--require-hashes" in text
        assert "--no-deps" in text
        assert "USER 10001:10001" in text
        assert "ARG BASE_IMAGE" in text
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in (repository / "Dockerfile.cuda").read_text()
