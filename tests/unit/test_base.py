from __future__ import annotations

from pathlib import Path

from harness.config import load_config
from harness.images import base


def test_apt_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert base.apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_apt_mirror_from_one_line_sources_with_options(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# a comment\n"
        "deb [arch=amd64 signed-by=/k/x.gpg] https://other.example/apt stable main\n"
        "deb [signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
    )
    assert base.apt_mirror(tmp_path) == "http://mirror.example/debian/"


def test_no_mirror_found(tmp_path: Path) -> None:
    assert base.apt_mirror(tmp_path) is None


def test_strip_volatile_empties_caches_and_logs(tmp_path: Path) -> None:
    for relative in (
        "var/lib/apt/lists/a",
        "var/log/apt/history.log",
        "var/cache/apt/pkgcache.bin",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "machine-id").write_text("1234\n")
    (tmp_path / "etc" / "keep.conf").write_text("keep")
    base.strip_volatile(tmp_path)
    assert list((tmp_path / "var/lib/apt/lists").iterdir()) == []
    assert list((tmp_path / "var/log").iterdir()) == []
    assert (tmp_path / "etc" / "machine-id").read_text() == ""
    assert (tmp_path / "etc" / "keep.conf").read_text() == "keep"


def test_base_reference_is_shared_and_pinned_bases_are_used_as_given(project: Path) -> None:
    config = load_config(project, environ={})
    assert base.base_reference(config) == "harness-base:bookworm-python3.11"
    pinned = "debian:bookworm@sha256:" + "b" * 64
    assert base.base_reference(load_config(project, {"base": pinned}, environ={})) == pinned
