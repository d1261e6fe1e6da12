"""The wheel cache: every pinned wheel downloaded once, kept by its sha256, shared by all builds.

A build used to download every wheel from inside the engine's build container, every
time: the download was most of a cold build, and a changed pin fetched gigabytes again.
Now harness fetches the pinned wheels on this machine, into a folder shared by every
project and variant, and hands them to the build in its context; harness's Dockerfiles
install from there with ``--no-index``, so a build needs no network at all.

Same image with or without a warm cache. The image may only depend on the constraints,
never on what happens to be cached, so which file of a pin goes in is decided by the rule
pip applies inside the image (of the files whose sha256 the pin names, the one whose tag
the image's Python prefers, see :mod:`harness.images.wheeltags`), from what the index and the
wheel folders offer; the decision is written down and later builds read it instead of
asking again. A cold and a warm build put the same files, under the same names, into the
same context.

Checked. A file enters the cache only once its sha256 is the pinned one (computed while
it streams in, then renamed into place, so a reader never sees half a file), and pip
checks it again inside the build (``--require-hashes``); a build that still finds a
mismatch evicts the bad copies. Names from an index are single, plain wheel names.

Layout, under ``$HARNESS_WHEEL_CACHE`` (default ``$XDG_CACHE_HOME/harness/wheels``)::

    files/AB/ABCDEF.../NAME.whl   the wheel whose sha256 is ABCDEF... (read-only)
    choices/KEY.json              which file a pin (name, version, hashes) resolves to
                                  for an image's Python and platform
    tmp/                          downloads in progress

The folder's times say when an entry was last used: ``harness cache prune`` removes
what no build used for a while. The location is the machine's, never a project's: a
project's configuration cannot point harness at a folder to write into or prune.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from packaging.markers import InvalidMarker, Marker
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from harness import atomic, progress, untrusted
from harness.digests import sha256_file
from harness.errors import ConfigError, HarnessError
from harness.images import wheelindex, wheeltags
from harness.images.pin import Pin
from harness.images.wheelindex import Offered

ENV = "HARNESS_WHEEL_CACHE"
SCHEMA = "harness.wheel-choice/v1"
DEFAULT_INDEX_URL = "https://pypi.org/simple"
# The largest wheel accepted: the biggest CUDA wheels are under 2 GB.
WHEEL_LIMIT = 8 << 30
# Downloads at a time: enough to fill a link with many small wheels beside a large one.
PARALLEL_DOWNLOADS = 6
# Leftovers of an interrupted download are removed by prune once this old.
_STALE_TMP_SECONDS = 3600
_CHUNK = 1 << 20
_CHOICE_LIMIT = 64 << 10


class WheelCacheError(HarnessError):
    """A pinned wheel cannot be found, fetched or checked."""

    default_hint = (
        "run `harness lock` for the image's Python and platform, or put the wheel in a "
        "find-links folder"
    )


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where the cache lives: ``$HARNESS_WHEEL_CACHE``, else the user's cache folder."""
    env = os.environ if environ is None else environ
    configured = env.get(ENV)
    if configured:
        return Path(configured).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness" / "wheels"


@dataclass(frozen=True)
class Choice:
    """The one file of a pin that goes into images for one Python and platform."""

    name: str
    version: str
    sha256: str
    filename: str
    # Where it can be fetched when it is not cached ("" when it came from a folder).
    url: str = ""


@dataclass(frozen=True)
class Sources:
    """Where pins' files are looked for: a simple-API index, and extra wheel folders or pages."""

    index_url: str = DEFAULT_INDEX_URL
    find_links: tuple[str, ...] = ()
    ca_bundle: Path | None = None

    def describe(self) -> str:
        named = [
            wheelindex.redact(self.index_url),
            *(wheelindex.redact(f) for f in self.find_links),
        ]
        return ", ".join(named)


@dataclass(frozen=True)
class Provided:
    """What :meth:`WheelCache.provide` put in a folder, and what it cost."""

    choices: tuple[Choice, ...]
    downloaded: int = 0
    downloaded_bytes: int = 0
    seconds: float = 0.0
    files: tuple[Path, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Stats:
    root: Path
    wheels: int
    size: int
    choices: int
    oldest_use: float | None
    newest_use: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.root),
            "wheels": self.wheels,
            "bytes": self.size,
            "choices": self.choices,
            "oldest_use": self.oldest_use,
            "newest_use": self.newest_use,
        }


@dataclass(frozen=True)
class Pruned:
    wheels: int
    size: int
    kept: int

    def as_dict(self) -> dict[str, object]:
        return {"removed_wheels": self.wheels, "removed_bytes": self.size, "kept_wheels": self.kept}


def image_environment(target: wheeltags.Target) -> dict[str, str]:
    """PEP 508 marker values of the image's interpreter (glibc Linux, CPython)."""
    version = f"{target.python[0]}.{target.python[1]}"
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{version}.0",
        "os_name": "posix",
        "platform_machine": target.arch,
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": f"{version}.0",
        "python_version": version,
        "sys_platform": "linux",
        "extra": "",
    }


def applies(pin: Pin, target: wheeltags.Target) -> bool:
    """Whether pip inside the image installs ``pin`` (its marker holds there)."""
    if not pin.marker:
        return True
    try:
        return Marker(pin.marker).evaluate(image_environment(target))
    except InvalidMarker:
        return True  # the build's pip judges it, and says so if it is wrong


class WheelCache:
    """The cache folder, and the one way wheels get in and out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sessions = threading.local()

    # -- layout -----------------------------------------------------------------------

    def entry(self, sha256: str) -> Path:
        return self.root / "files" / sha256[:2] / sha256

    def cached(self, choice: Choice) -> Path | None:
        """The cached file of ``choice``, or None when it is not (completely) there."""
        path = self.entry(choice.sha256) / choice.filename
        return path if path.is_file() and not path.is_symlink() else None

    def _choice_path(self, pin: Pin, target: wheeltags.Target, folders: bool) -> Path:
        key = json.dumps(
            {
                "name": pin.name,
                "version": pin.version,
                "hashes": sorted(_hex(h) for h in pin.hashes),
                "python": list(target.python),
                "arch": target.arch,
                "glibc": list(target.glibc),
                "folders": folders,
            },
            sort_keys=True,
        )
        return self.root / "choices" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    # -- the build's side ---------------------------------------------------------------

    def provide(
        self,
        pins: Sequence[Pin],
        target: wheeltags.Target,
        sources: Sources,
        folder: Path,
        *,
        say: Callable[[str], None] = lambda _: None,
    ) -> Provided:
        """Put the file of every pin that applies to the image into ``folder``.

        Asks the sources only for pins never resolved before, downloads only files not
        cached, and links (or copies) the cached files into ``folder``.
        """
        started = time.monotonic()
        wanted = [pin for pin in pins if applies(pin, target)]
        folders = local_folders(sources.find_links)
        choices: dict[str, Choice] = {}
        unresolved: list[Pin] = []
        for pin in wanted:
            known = self._read_choice(pin, target, bool(sources.find_links))
            if known is None:
                unresolved.append(pin)
            else:
                choices[pin.name] = known
        if unresolved:
            say(f"finding {len(unresolved)} pinned wheels in {sources.describe()}")
            found = progress.during("finding wheels", self._resolve, unresolved, target, sources)
            for choice in found:
                choices[choice.name] = choice
        missing = [c for c in choices.values() if self.cached(c) is None]
        downloaded_bytes = 0
        if missing:
            say(f"fetching {len(missing)} of {len(choices)} wheels into the wheel cache")
            downloaded_bytes = progress.during(
                f"fetching {len(missing)} wheels", self._fetch, missing, folders, sources
            )
        files = []
        for pin in wanted:
            choice = choices[pin.name]
            path = self.cached(choice)
            if path is None:  # pragma: no cover - _fetch raises rather than leave a gap
                raise WheelCacheError(f"{choice.filename} vanished from the wheel cache")
            link_or_copy(path, folder / choice.filename)
            _touch(path.parent)
            files.append(folder / choice.filename)
        seconds = time.monotonic() - started
        if missing:
            say(
                f"fetched {len(missing)} wheels ({downloaded_bytes / 1e6:.0f} MB) in "
                f"{seconds:.1f} s; {len(choices) - len(missing)} came from the cache"
            )
        return Provided(
            tuple(choices[p.name] for p in wanted),
            len(missing),
            downloaded_bytes,
            seconds,
            tuple(files),
        )

    def known(
        self, pins: Sequence[Pin], target: wheeltags.Target, sources: Sources
    ) -> list[Choice]:
        """The file :meth:`provide` chose for each pin that applies to the image, as far as
        the cache remembers it (a pin it never resolved is left out); nothing is fetched."""
        wanted = [pin for pin in pins if applies(pin, target)]
        found = (self._read_choice(pin, target, bool(sources.find_links)) for pin in wanted)
        return [choice for choice in found if choice is not None]

    def evict_corrupt(self, choices: Iterable[Choice]) -> list[str]:
        """Remove cached files whose bytes are not their sha256; returns their names."""
        evicted = []
        for choice in choices:
            path = self.cached(choice)
            if path is not None and sha256_file(path) != choice.sha256:
                shutil.rmtree(path.parent, ignore_errors=True)
                evicted.append(choice.filename)
        return evicted

    # -- choosing -------------------------------------------------------------------------

    def _read_choice(self, pin: Pin, target: wheeltags.Target, folders: bool) -> Choice | None:
        path = self._choice_path(pin, target, folders)
        try:
            document = untrusted.load_json(path, what="a wheel choice", limit=_CHOICE_LIMIT)
        except (FileNotFoundError, untrusted.UntrustedInputError):
            return None
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            return None
        fields = {key: document.get(key) for key in ("sha256", "filename", "url")}
        if not all(isinstance(value, str) for value in fields.values()):
            return None
        choice = Choice(
            pin.name,
            pin.version,
            str(fields["sha256"]),
            str(fields["filename"]),
            str(fields["url"]),
        )
        # A record is a hint from disk: it must still name a file the pin allows.
        if not _fits(choice, pin, wheeltags.Ranking(target)):
            return None
        _touch(path)
        return choice

    def _write_choice(
        self, pin: Pin, target: wheeltags.Target, folders: bool, choice: Choice
    ) -> None:
        document = {
            "schema": SCHEMA,
            "name": choice.name,
            "version": choice.version,
            "sha256": choice.sha256,
            "filename": choice.filename,
            "url": choice.url,
        }
        atomic.write_text(
            self._choice_path(pin, target, folders), json.dumps(document, indent=1) + "\n"
        )

    def _resolve(
        self, pins: Sequence[Pin], target: wheeltags.Target, sources: Sources
    ) -> list[Choice]:
        ranking = wheeltags.Ranking(target)
        local = _folder_offers(pins, local_folders(sources.find_links))
        pages = [f for f in sources.find_links if _is_page(f)]
        flat: list[Offered] = []
        for page in pages:
            flat += wheelindex.read_listing(self._session(sources), page)
        with ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS) as pool:
            listings = list(
                pool.map(
                    lambda pin: wheelindex.read_listing(
                        self._session(sources), wheelindex.project_url(sources.index_url, pin.name)
                    ),
                    pins,
                )
            )
        chosen = []
        folders = bool(sources.find_links)
        for pin, listing in zip(pins, listings, strict=True):
            offers = [*local.get(pin.name, []), *flat, *listing]
            choice = choose(pin, offers, ranking)
            if choice is None:
                choice = self._probe_unlisted_hashes(pin, flat, target, sources)
            if choice is None:
                raise WheelCacheError(
                    f"no wheel of {pin.name}=={pin.version} with a pinned sha256 fits Python "
                    f"{target.python[0]}.{target.python[1]} on {target.platforms()[0]} in "
                    f"{sources.describe()}"
                )
            self._write_choice(pin, target, folders, choice)
            chosen.append(choice)
        return chosen

    def _probe_unlisted_hashes(
        self,
        pin: Pin,
        offers: Sequence[Offered],
        target: wheeltags.Target,
        sources: Sources,
    ) -> Choice | None:
        """A find-links page that names no sha256 (a folder served as it is over HTTP, as
        ``python -m http.server`` or a plain web server lists it): the resolver read the
        files to hash them, so the build does the same. Candidates of the pinned release
        are fetched best tag first, as pip would take them, and the first whose bytes are
        pinned is kept in the cache; bytes that are not pinned are never kept."""
        allowed = {_hex(h) for h in pin.hashes}
        ranking = wheeltags.Ranking(target)
        candidates = sorted(
            (rank, offer.filename, offer.url)
            for offer in offers
            if offer.sha256 is None
            and _same_release(offer.filename, pin)
            and (rank := ranking.rank(offer.filename)) is not None
        )
        for _, filename, url in dict.fromkeys(candidates):
            scratch = self.root / "tmp" / uuid.uuid4().hex
            scratch.mkdir(parents=True)
            try:
                unverified = Choice(pin.name, pin.version, "", filename, url)
                digest = self._download_to(unverified, scratch / filename, sources)
                if digest not in allowed:
                    continue
                choice = Choice(pin.name, pin.version, digest, filename, url)
                (scratch / filename).chmod(0o444)
                destination = self.entry(digest)
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    scratch.rename(destination)
                except OSError:
                    if self.cached(choice) is None:  # not another build's same bytes
                        raise
                self._write_choice(pin, target, bool(sources.find_links), choice)
                return choice
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return None

    # -- fetching ---------------------------------------------------------------------

    def _fetch(self, choices: Sequence[Choice], folders: Sequence[str], sources: Sources) -> int:
        """Bring every choice into the cache; returns the bytes downloaded."""
        local = {c.sha256: c for c in choices if not c.url}
        remote = [c for c in choices if c.url]
        for choice in local.values():
            self._store_from_folder(choice, folders)
        if not remote:
            return 0
        with ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS) as pool:
            sizes = list(pool.map(lambda c: self._download(c, sources), remote))
        return sum(sizes)

    def _store_from_folder(self, choice: Choice, folders: Sequence[str]) -> None:
        for folder in folders:
            candidate = Path(folder) / choice.filename
            if candidate.is_file() and sha256_file(candidate) == choice.sha256:
                # A copy, not a link: the cache makes its files read-only, and a link would
                # change the mode of the file in the user's folder too.
                self._admit(choice, functools.partial(shutil.copyfile, candidate))
                return
        raise WheelCacheError(
            f"{choice.filename} (sha256 {choice.sha256[:12]}) is no longer in the wheel "
            f"folders {', '.join(folders) or '(none)'}",
            f"put it back, or remove {self.root / 'choices'} to choose again",
        )

    def _download(self, choice: Choice, sources: Sources) -> int:
        size = 0

        def fetch(target: Path) -> None:
            nonlocal size
            digest = self._download_to(choice, target, sources)
            size = target.stat().st_size
            if digest != choice.sha256:
                raise WheelCacheError(
                    f"{choice.filename} from {_host(choice.url)} has sha256 "
                    f"{digest[:12]}..., not the pinned {choice.sha256[:12]}...; "
                    "it was not kept",
                    "distrust the index or mirror that served it; if the constraints were "
                    "edited by hand, run `harness lock`",
                )

        self._admit(choice, fetch)
        return size

    def _download_to(self, choice: Choice, target: Path, sources: Sources) -> str:
        """Stream ``choice.url`` into ``target`` within the size bound; returns its sha256."""
        digest = hashlib.sha256()
        size = 0
        try:
            with self._session(sources).get(
                choice.url, stream=True, timeout=wheelindex.TIMEOUT
            ) as response:
                response.raise_for_status()
                with target.open("wb") as stream:
                    for chunk in response.iter_content(_CHUNK):
                        size += len(chunk)
                        if size > WHEEL_LIMIT:
                            raise WheelCacheError(
                                f"{choice.filename} from {_host(choice.url)} is larger than "
                                f"{WHEEL_LIMIT >> 30} GB",
                                "distrust the index that served it",
                            )
                        digest.update(chunk)
                        stream.write(chunk)
        except requests.RequestException as error:
            raise WheelCacheError(
                f"cannot download {choice.filename} from {_host(choice.url)}: "
                f"{wheelindex._reason(error)}",
                "check the network and index-url (`harness doctor`), then build again: "
                "what was downloaded is kept",
            ) from None
        return digest.hexdigest()

    def _admit(self, choice: Choice, produce: Callable[[Path], None]) -> None:
        """Produce the file in a scratch folder, then rename it into place as one step."""
        scratch = self.root / "tmp" / uuid.uuid4().hex
        scratch.mkdir(parents=True)
        try:
            produce(scratch / choice.filename)
            (scratch / choice.filename).chmod(0o444)
            destination = self.entry(choice.sha256)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                scratch.rename(destination)
            except OSError:
                # Another build put it there first: same sha256, same bytes; keep theirs.
                if self.cached(choice) is None:
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _session(self, sources: Sources) -> requests.Session:
        session: requests.Session | None = getattr(self._sessions, "session", None)
        if session is None:
            session = requests.Session()
            if sources.ca_bundle is not None:
                session.verify = str(sources.ca_bundle)
            self._sessions.session = session
        return session

    # -- harness cache ------------------------------------------------------------------

    def entries(self) -> list[tuple[Path, int, float]]:
        """Every cached wheel: (file, size, last use)."""
        found: list[tuple[Path, int, float]] = []
        files = self.root / "files"
        if not files.is_dir():
            return []
        for prefix in sorted(files.iterdir()):
            if not prefix.is_dir() or prefix.is_symlink():
                continue
            for entry in sorted(prefix.iterdir()):
                if not entry.is_dir() or entry.is_symlink():
                    continue
                wheels = [p for p in entry.iterdir() if p.suffix == ".whl" and p.is_file()]
                size = sum(p.lstat().st_size for p in wheels)
                found.extend((p, size, entry.stat().st_mtime) for p in wheels[:1])
        return found

    def stats(self) -> Stats:
        entries = self.entries()
        uses = [used for _, _, used in entries]
        choices = self.root / "choices"
        return Stats(
            self.root,
            len(entries),
            sum(size for _, size, _ in entries),
            len(list(choices.glob("*.json"))) if choices.is_dir() else 0,
            min(uses) if uses else None,
            max(uses) if uses else None,
        )

    def prune(self, *, unused_for: float | None) -> Pruned:
        """Remove wheels (and choices) no build used for ``unused_for`` seconds; None: all.

        Only folders of the cache's own layout are touched: a file that is not a wheel
        entry stays where it is.
        """
        now = time.time()
        removed = size = kept = 0
        for path, entry_size, used in self.entries():
            if unused_for is None or now - used > unused_for:
                shutil.rmtree(path.parent, ignore_errors=True)
                removed += 1
                size += entry_size
            else:
                kept += 1
        choices = self.root / "choices"
        if choices.is_dir():
            for record in choices.glob("*.json"):
                with contextlib.suppress(OSError):
                    if unused_for is None or now - record.stat().st_mtime > unused_for:
                        record.unlink()
        scratch = self.root / "tmp"
        if scratch.is_dir():
            for leftover in scratch.iterdir():
                with contextlib.suppress(OSError):
                    if now - leftover.stat().st_mtime > _STALE_TMP_SECONDS:
                        shutil.rmtree(leftover, ignore_errors=True)
        return Pruned(removed, size, kept)


def choose(pin: Pin, offers: Iterable[Offered], ranking: wheeltags.Ranking) -> Choice | None:
    """The file pip in the image would install for ``pin`` among ``offers``, or None."""
    allowed = {_hex(h) for h in pin.hashes}
    by_name: dict[str, Offered] = {}
    for offer in offers:
        if offer.sha256 is None or offer.sha256 not in allowed:
            continue
        if not _same_release(offer.filename, pin):
            continue
        by_name.setdefault(offer.filename, offer)
    best = ranking.best(by_name)
    if best is None:
        return None
    offer = by_name[best]
    url = "" if offer.url.startswith("file:") else offer.url
    return Choice(pin.name, pin.version, offer.sha256 or "", offer.filename, url)


def local_folders(find_links: Iterable[str]) -> tuple[str, ...]:
    """The wheel folders among find-links entries: paths, and file:// URLs (a folder
    offered as a URL is read as the folder it is, as the resolver reads it)."""
    folders = []
    for entry in find_links:
        if entry.startswith("file://"):
            folders.append(unquote(urlsplit(entry).path))
        elif "://" not in entry:
            folders.append(entry)
    return tuple(folders)


def _is_page(entry: str) -> bool:
    return "://" in entry and not entry.startswith("file://")


def _folder_offers(pins: Sequence[Pin], folders: Sequence[str]) -> dict[str, list[Offered]]:
    """Wheels in local folders whose name and version a pin names, with their sha256."""
    wanted = {(pin.name, pin.version): pin.name for pin in pins}
    found: dict[str, list[Offered]] = {}
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            continue
        for wheel in sorted(path.glob("*.whl")):
            try:
                name, version, _, _ = parse_wheel_filename(wheel.name)
            except InvalidWheelFilename:
                continue
            key = (canonicalize_name(name), str(version))
            if key in wanted and wheel.is_file():
                offer = Offered(wheel.name, wheel.resolve().as_uri(), sha256_file(wheel))
                found.setdefault(wanted[key], []).append(offer)
    return found


def _fits(choice: Choice, pin: Pin, ranking: wheeltags.Ranking) -> bool:
    return (
        choice.sha256 in {_hex(h) for h in pin.hashes}
        and wheelindex.safe_filename(choice.filename)
        and _same_release(choice.filename, pin)
        and ranking.rank(choice.filename) is not None
        and (not choice.url or urlsplit(choice.url).scheme in ("http", "https"))
    )


def _same_release(filename: str, pin: Pin) -> bool:
    try:
        name, version, _, _ = parse_wheel_filename(filename)
        return canonicalize_name(name) == pin.name and version == Version(pin.version)
    except (InvalidWheelFilename, InvalidVersion):
        return False


def _hex(pinned: str) -> str:
    return pinned.removeprefix("sha256:").lower()


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the index"


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (no bytes copied), else a copy."""
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def open_cache() -> WheelCache:
    root = cache_root()
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"the wheel cache {root} is not a folder",
            f"point {ENV} at a folder, or remove that file",
        )
    return WheelCache(root)


__all__ = [
    "ENV",
    "Choice",
    "Provided",
    "Sources",
    "WheelCache",
    "WheelCacheError",
    "cache_root",
    "choose",
    "open_cache",
]
