"""The wheel cache against a real (local) HTTP index: what it asks, keeps and refuses."""

from __future__ import annotations

import hashlib
import html
import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.images import wheelcache, wheelindex, wheeltags
from harness.images.pin import Pin

TARGET = wheeltags.Target.parse("3.11", "x86_64-manylinux_2_36")
BEST = "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
OLDER_TAG = "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
MAC = "numpy-2.4.6-cp311-cp311-macosx_14_0_arm64.whl"
SIX = "six-1.17.0-py2.py3-none-any.whl"
SIX_NEXT = "six-1.18.0-py2.py3-none-any.whl"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Index:
    """A simple-API index served over HTTP from memory; it records every request."""

    files: dict[str, bytes] = field(default_factory=dict)
    # Bytes served in place of a file's own (a lying mirror).
    served_instead: dict[str, bytes] = field(default_factory=dict)
    html: bool = False
    # Filename -> the Pythons it installs on, as the page states it.
    requires_python: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def add(self, filename: str, data: bytes | None = None) -> str:
        content = data if data is not None else filename.encode() * 3
        self.files[filename] = content
        return sha(content)

    def listing(self, project: str) -> tuple[str, bytes] | None:
        names = [n for n in self.files if n.split("-")[0].replace("_", "-") == project]
        if not names:
            return None
        if self.html:
            links = "".join(
                f'<a href="../../files/{n}#sha256={sha(self.files[n])}"{self._stated(n)}>{n}</a>'
                for n in names
            )
            return "text/html", f"<html><body>{links}</body></html>".encode()
        document = {
            "meta": {"api-version": "1.0"},
            "name": project,
            "files": [
                {
                    "filename": n,
                    "url": f"../../files/{n}",
                    "hashes": {"sha256": sha(self.files[n])},
                    **(
                        {"requires-python": self.requires_python[n]}
                        if n in self.requires_python
                        else {}
                    ),
                }
                for n in names
            ],
        }
        return "application/vnd.pypi.simple.v1+json", json.dumps(document).encode()

    def _stated(self, filename: str) -> str:
        stated = self.requires_python.get(filename)
        return f' data-requires-python="{html.escape(stated)}"' if stated else ""


@pytest.fixture
def index() -> Iterator[Index]:
    served = Index()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            parts = self.path.strip("/").split("/")
            body: bytes | None = None
            kind = "application/octet-stream"
            if parts[0] == "simple" and len(parts) == 2:
                found = served.listing(parts[1])
                if found is not None:
                    kind, body = found
            elif parts[0] == "files" and len(parts) == 2 and parts[1] in served.files:
                body = served.served_instead.get(parts[1], served.files[parts[1]])
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for serve_forever to next check its flag: half a second by default,
    # paid by every test that uses the index.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def pin(name: str, version: str, *hashes: str, marker: str = "") -> Pin:
    return Pin(name, version, tuple(f"sha256:{h}" for h in hashes), marker)


def provide(
    cache: wheelcache.WheelCache, pins: list[Pin], index: Index, folder: Path, **sources: object
) -> wheelcache.Provided:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = wheelcache.Sources(index.url, **sources)  # type: ignore[arg-type]
    return cache.provide(pins, TARGET, chosen, folder)


def contents(folder: Path) -> dict[str, str]:
    return {p.name: sha(p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture
def cache(tmp_path: Path) -> wheelcache.WheelCache:
    return wheelcache.WheelCache(tmp_path / "cache")


def test_a_warm_cache_gives_the_same_files_without_a_single_request(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    pins = [
        pin("numpy", "2.4.6", index.add(OLDER_TAG), index.add(BEST), index.add(MAC)),
        pin("six", "1.17.0", index.add(SIX)),
    ]
    cold = provide(cache, pins, index, tmp_path / "cold")
    # The file pip in the image would take: the most specific tag among the pinned ones.
    assert [c.filename for c in cold.choices] == [BEST, SIX]
    assert cold.downloaded == 2
    assert sorted(r for r in index.requests if r.startswith("/files/")) == [
        f"/files/{BEST}",
        f"/files/{SIX}",
    ]
    index.requests.clear()
    warm = provide(cache, pins, index, tmp_path / "warm")
    assert index.requests == []
    assert warm.downloaded == 0
    assert contents(tmp_path / "warm") == contents(tmp_path / "cold")
    # The build context links the cache's file: no bytes copied, and it is read-only.
    linked = tmp_path / "warm" / BEST
    assert linked.stat().st_ino == (cache.entry(sha(index.files[BEST])) / BEST).stat().st_ino
    assert not os.access(cache.entry(sha(index.files[BEST])) / BEST, os.W_OK) or os.getuid() == 0


def test_bumping_one_pin_downloads_that_wheel_only(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    numpy = pin("numpy", "2.4.6", index.add(BEST))
    provide(cache, [numpy, pin("six", "1.17.0", index.add(SIX))], index, tmp_path / "one")
    index.requests.clear()
    provide(cache, [numpy, pin("six", "1.18.0", index.add(SIX_NEXT))], index, tmp_path / "two")
    assert index.requests == ["/simple/six/", f"/files/{SIX_NEXT}"]


def test_html_listings_are_read_too(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    index.html = True
    provided = provide(cache, [pin("numpy", "2.4.6", index.add(BEST))], index, tmp_path / "c")
    assert [c.filename for c in provided.choices] == [BEST]


def test_bytes_that_are_not_the_pinned_ones_are_refused_and_never_kept(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    pinned = index.add(SIX)
    index.served_instead[SIX] = b"something else"
    with pytest.raises(wheelcache.WheelCacheError) as raised:
        provide(cache, [pin("six", "1.17.0", pinned)], index, tmp_path / "c")
    assert SIX in raised.value.message
    assert "not the pinned" in raised.value.message
    assert cache.stats().wheels == 0
    assert not list((cache.root / "tmp").iterdir())


def test_a_pin_no_file_fits_names_the_pin_and_the_sources(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    with pytest.raises(wheelcache.WheelCacheError) as raised:
        provide(cache, [pin("numpy", "2.4.6", index.add(MAC))], index, tmp_path / "c")
    assert "numpy==2.4.6" in raised.value.message
    assert index.url in raised.value.message
    # A file the index offers whose sha256 the pin does not name is never taken.
    with pytest.raises(wheelcache.WheelCacheError):
        provide(cache, [pin("numpy", "2.4.6", "0" * 64)], index, tmp_path / "d")


def test_a_pin_whose_marker_fails_in_the_image_is_left_out(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    pins = [
        pin("six", "1.17.0", index.add(SIX)),
        pin("pywin32", "311", "1" * 64, marker='sys_platform == "win32"'),
    ]
    provided = provide(cache, pins, index, tmp_path / "c")
    assert [c.name for c in provided.choices] == ["six"]


def test_a_wheel_folder_serves_a_pin_and_keeps_its_own_file_as_it_was(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    local = folder / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    local.write_bytes(b"torch bytes")
    local.chmod(0o644)
    pins = [pin("torch", "2.13.0+cpu", sha(b"torch bytes"))]
    provided = provide(cache, pins, index, tmp_path / "c", find_links=(str(folder),))
    assert [c.filename for c in provided.choices] == [local.name]
    assert (local.stat().st_mode & 0o777) == 0o644
    assert (tmp_path / "c" / local.name).read_bytes() == b"torch bytes"


def test_a_choice_record_that_names_another_file_is_not_believed(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    numpy = pin("numpy", "2.4.6", index.add(BEST))
    provide(cache, [numpy], index, tmp_path / "one")
    (record,) = (cache.root / "choices").glob("*.json")
    document = json.loads(record.read_text())
    record.write_text(json.dumps({**document, "sha256": "f" * 64, "filename": "../../evil.whl"}))
    provided = provide(cache, [numpy], index, tmp_path / "two")
    assert [c.filename for c in provided.choices] == [BEST]


def test_listings_are_read_within_bounds(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wheelindex, "LISTING_LIMIT", 16)
    with pytest.raises(wheelindex.WheelSourceError) as raised:
        provide(cache, [pin("six", "1.17.0", index.add(SIX))], index, tmp_path / "c")
    assert "larger than" in raised.value.message


def test_unsafe_names_and_links_in_a_listing_are_dropped() -> None:
    page = (
        '<a href="https://x/files/..%2F..%2Fevil-1-py3-none-any.whl#sha256=' + "a" * 64 + '">1</a>'
        '<a href="file:///etc/six-1.17.0-py3-none-any.whl#sha256=' + "b" * 64 + '">2</a>'
        '<a href="https://x/files/six-1.17.0-py3-none-any.whl#sha256=' + "C" * 64 + '">3</a>'
    )
    offered = list(wheelindex._from_html(page, "https://x/simple/six/"))
    assert [(o.filename, o.sha256) for o in offered] == [("six-1.17.0-py3-none-any.whl", "c" * 64)]


def test_credentials_never_reach_a_message() -> None:
    assert wheelindex.redact("https://user:token@mirror.example:8443/simple") == (
        "https://mirror.example:8443/simple"
    )


def test_prune_removes_what_no_build_used_and_nothing_else(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    pins = [pin("numpy", "2.4.6", index.add(BEST)), pin("six", "1.17.0", index.add(SIX))]
    provide(cache, pins, index, tmp_path / "c")
    old = cache.entry(sha(index.files[BEST]))
    long_ago = time.time() - 40 * 86400
    os.utime(old, (long_ago, long_ago))
    stranger = cache.root / "files" / "notes.txt"
    stranger.write_text("mine")
    pruned = cache.prune(unused_for=30 * 86400)
    assert (pruned.wheels, pruned.kept) == (1, 1)
    assert pruned.size == len(index.files[BEST])
    assert not old.exists()
    assert stranger.exists()
    assert cache.prune(unused_for=None).wheels == 1
    assert cache.stats().wheels == 0


def test_a_corrupt_cached_file_is_evicted(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    provided = provide(cache, [pin("six", "1.17.0", index.add(SIX))], index, tmp_path / "c")
    (choice,) = provided.choices
    path = cache.cached(choice)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"rot")
    assert cache.evict_corrupt(provided.choices) == [SIX]
    assert cache.cached(choice) is None


def test_the_cache_is_the_machine_s_folder(tmp_path: Path) -> None:
    assert wheelcache.cache_root({wheelcache.ENV: str(tmp_path)}) == tmp_path
    assert wheelcache.cache_root({"XDG_CACHE_HOME": "/c"}) == Path("/c/harness/wheels")


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """A wheel folder served as a plain web server lists it: links without any sha256."""
    folder = tmp_path / "served"
    folder.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *arguments: Any, **keywords: Any) -> None:
            super().__init__(*arguments, directory=str(folder), **keywords)

        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()


def test_a_find_links_page_without_hashes_reaches_the_build(
    index: Index,
    cache: wheelcache.WheelCache,
    tmp_path: Path,
    served_folder: tuple[Path, str, list[str]],
) -> None:
    """The resolver hashes what such a page lists; the build did not, and stopped with
    "no wheel fits" for a CPU torch offered at a find-links URL."""
    folder, url, requested = served_folder
    cpu = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    (folder / cpu).write_bytes(b"the cpu torch")
    (folder / OLDER_TAG).write_bytes(b"numpy, but not the pinned bytes")
    pinned = pin("torch", "2.13.0+cpu", sha(b"the cpu torch"))
    provided = provide(cache, [pinned], index, tmp_path / "one", find_links=(url,))
    assert [c.filename for c in provided.choices] == [cpu]
    assert (tmp_path / "one" / cpu).read_bytes() == b"the cpu torch"
    requested.clear()
    provide(cache, [pinned], index, tmp_path / "two", find_links=(url,))
    assert requested == []  # chosen and cached once
    # Bytes that are not pinned are fetched to be hashed, refused, and never kept.
    numpy = pin("numpy", "2.4.6", sha(b"the real numpy"))
    with pytest.raises(wheelcache.WheelCacheError, match=r"no wheel of numpy==2\.4\.6"):
        provide(cache, [numpy], index, tmp_path / "three", find_links=(url,))
    assert not cache.entry(sha(b"numpy, but not the pinned bytes")).exists()


def test_a_file_url_is_read_as_the_folder_it_names(
    index: Index, cache: wheelcache.WheelCache, tmp_path: Path
) -> None:
    folder = tmp_path / "wheel folder"
    folder.mkdir()
    (folder / SIX).write_bytes(b"six")
    provided = provide(
        cache, [pin("six", "1.17.0", sha(b"six"))], index, tmp_path / "c",
        find_links=(folder.as_uri(),),
    )  # fmt: skip
    assert [c.filename for c in provided.choices] == [SIX]
    assert index.requests == ["/simple/six/"]
