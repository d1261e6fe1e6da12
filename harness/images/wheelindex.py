"""Reading what a package index or a wheel page offers: file names, URLs and sha256s.

The wheel cache (see :mod:`harness.images.wheelcache`) needs to know, for a pin, which files
exist and where to fetch them. An index answers the "simple" repository API: PEP 691's
JSON where it speaks it (PyPI does), PEP 503's HTML otherwise, with the sha256 in each
link's fragment. A ``find-links`` URL is a flat HTML page of links. Everything read here
comes from another machine: a listing is bounded in size, a file name must be a plain
wheel name (no folder, no ``..``), and a link is kept only when it is http(s).
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from harness import untrusted
from harness.errors import HarnessError

# The largest listing read: PyPI's page of torch, every version and platform, is a few MB.
LISTING_LIMIT = 64 << 20
_JSON = "application/vnd.pypi.simple.v1+json"
_ACCEPT = f"{_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Seconds to wait for an index to answer; downloads stream with the same read timeout.
TIMEOUT = 60


class WheelSourceError(HarnessError):
    """An index or wheel page cannot be read."""

    default_hint = (
        "check index-url / find-links and the network (`harness doctor`), and that the "
        "CA bundle is right for networks that intercept TLS"
    )


@dataclass(frozen=True)
class Offered:
    """One file a source offers: its name, where to get it, its sha256 when stated, and the
    Pythons it installs on when stated (PEP 503's data-requires-python: a ``py3`` wheel's
    tags say nothing of the version)."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None = None


def redact(url: str) -> str:
    """The URL without credentials, fit for a message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def project_url(index_url: str, name: str) -> str:
    """The page of ``name`` (already canonical) in a simple-API index."""
    return f"{index_url.rstrip('/')}/{name}/"


def read_listing(session: requests.Session, url: str, *, missing_ok: bool = True) -> list[Offered]:
    """The files a simple-API project page or a flat find-links page lists.

    A page that does not exist (404) is an empty listing when ``missing_ok``: an index
    that lacks the project simply offers nothing.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise WheelSourceError(
            f"cannot read {redact(url)}: only http and https indexes are read",
            "serve the index over http(s), or put its wheels in a find-links folder",
        )
    try:
        with session.get(
            url, headers={"Accept": _ACCEPT}, timeout=TIMEOUT, stream=True
        ) as response:
            if response.status_code == 404 and missing_ok:
                return []
            response.raise_for_status()
            body = _read_bounded(response, url)
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            base = response.url or url
    except requests.RequestException as error:
        raise WheelSourceError(f"cannot read {redact(url)}: {_reason(error)}") from None
    if kind == _JSON:
        return list(_from_json(body, base))
    return list(_from_html(body.decode("utf-8", "replace"), base))


def _read_bounded(response: requests.Response, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(1 << 16):
        size += len(chunk)
        if size > LISTING_LIMIT:
            raise WheelSourceError(
                f"the listing at {redact(url)} is larger than {LISTING_LIMIT >> 20} MB",
                "point index-url at a simple-API index",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _from_json(body: bytes, base: str) -> Iterator[Offered]:
    try:
        document = untrusted.parse_json(body, what=f"the index page {redact(base)}")
    except untrusted.UntrustedInputError as error:
        raise WheelSourceError(error.message) from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list):
        raise WheelSourceError(f"the index page {redact(base)} lists no files")
    for item in files:
        if not isinstance(item, dict):
            continue
        filename, url, hashes = item.get("filename"), item.get("url"), item.get("hashes")
        if not isinstance(filename, str) or not isinstance(url, str):
            continue
        digest = hashes.get("sha256") if isinstance(hashes, dict) else None
        offered = _offered(filename, urljoin(base, url), digest, item.get("requires-python"))
        if offered is not None:
            yield offered


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        # Each link with its data-requires-python (entities already decoded).
        self.hrefs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            named = dict(attrs)
            href = named.get("href")
            if href:
                self.hrefs.append((href, named.get("data-requires-python")))


def _from_html(text: str, base: str) -> Iterator[Offered]:
    parser = _Links()
    parser.feed(text)
    for href, requires_python in parser.hrefs:
        url = urljoin(base, href)
        parts = urlsplit(url)
        digest = None
        fragment = parts.fragment
        if fragment.startswith("sha256="):
            digest = fragment.removeprefix("sha256=")
        filename = unquote(parts.path.rsplit("/", 1)[-1])
        offered = _offered(
            filename, urlunsplit(parts._replace(fragment="")), digest, requires_python
        )
        if offered is not None:
            yield offered


def _offered(filename: str, url: str, digest: Any, requires_python: Any = None) -> Offered | None:
    """A listed file, or None for one that is no wheel, has an unsafe name or link."""
    if not filename.endswith(".whl") or not safe_filename(filename):
        return None
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    sha256 = digest.lower() if isinstance(digest, str) and _SHA256.match(digest.lower()) else None
    stated = requires_python if isinstance(requires_python, str) and requires_python else None
    return Offered(filename, url, sha256, stated)


def installs_on(offered: Offered, python: tuple[int, int]) -> bool:
    """Whether ``offered`` states nothing against a Python X.Y (an unreadable statement
    counts as none: the resolver, which reads the wheel itself, has the last word)."""
    if offered.requires_python is None:
        return True
    try:
        specifier = SpecifierSet(offered.requires_python)
    except InvalidSpecifier:
        return True
    return specifier.contains(f"{python[0]}.{python[1]}", prereleases=True)


def safe_filename(filename: str) -> bool:
    """Whether a name from elsewhere may name a file here: one plain component."""
    return (
        0 < len(filename) <= 255
        and "/" not in filename
        and "\\" not in filename
        and "\0" not in filename
        and filename not in (".", "..")
        and not filename.startswith(".")
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    text = " ".join(str(error).split())
    return text.rsplit("Caused by ", 1)[-1].strip("()'\"")[:200]


__all__ = ["LISTING_LIMIT", "Offered", "WheelSourceError", "project_url", "read_listing", "redact"]
