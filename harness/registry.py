"""A container registry, spoken to over its HTTP API (OCI distribution), with the stdlib.

The engine pushes and pulls images; what it cannot do is put other things beside an image
in the registry (attestations, referrers) or read them back without pulling. This module
does only that: read and write manifests and blobs by digest, and ask for referrers. It
needs no engine, so a deployer's verify command needs nothing but the registry.

Everything a registry sends is hostile until checked: every blob and every manifest read
by digest is hashed and refused when its bytes are not that digest, and every answer is
read within a size bound. Registries on loopback are spoken to over plain HTTP (as the
Docker engine treats 127.0.0.0/8 as insecure by default), every other one over HTTPS.
Credentials come from the Docker client's configuration (``$DOCKER_CONFIG/config.json``,
``auths``), as `docker login` writes them, and are sent only to the registry they were
written for (or to the token service it names).

Reference: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import untrusted
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
# Manifests are small JSON documents; registries themselves refuse those over 4 MiB.
MANIFEST_LIMIT = 4 << 20
TIMEOUT_S = 60
DOCKER_HUB = "registry-1.docker.io"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class RegistryError(HarnessError):
    """The registry could not be reached, or refused or failed a request."""

    default_hint = "check the registry's address, that it is up, and `docker login` to it"


class NotInRegistry(HarnessError):
    """What was asked for is not in the registry: an answer, not trouble."""

    exit_code = EXIT_DIFFERS


@dataclass(frozen=True)
class Reference:
    """``HOST[:PORT]/REPOSITORY`` with a ``:TAG`` or ``@sha256:HEX``."""

    registry: str
    repository: str
    digest: str | None = None
    tag: str | None = None

    @property
    def name(self) -> str:
        """The reference as the engine and other tools write it, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


def parse(text: str, *, digest_required: bool = False) -> Reference:
    """A registry reference; the first component is the registry when it looks like a host."""
    name, at, digest = text.partition("@")
    tag = None
    if not at:
        head, colon, tail = name.rpartition(":")
        if colon and "/" not in tail:
            name, tag = head, tail
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "docker.io", name if slash else f"library/{name}"
    why = None
    if at and not _DIGEST.fullmatch(digest):
        why = "its digest is not sha256:<64 hex>"
    elif tag is not None and not _TAG.fullmatch(tag):
        why = f"its tag {tag!r} is not a valid tag"
    elif not _REPOSITORY.fullmatch(repository):
        why = f"its repository {repository!r} is not a valid name (lower case, digits, . _ - /)"
    elif digest_required and not at:
        why = "it names no digest"
    if why is not None:
        raise ConfigError(
            f"{text!r} is not a registry reference by digest: {why}"
            if digest_required
            else f"{text!r} is not a registry reference: {why}",
            "write REGISTRY/NAME@sha256:<64 hex>"
            if digest_required
            else "write REGISTRY/NAME, e.g. registry.example.com/ml/model",
        )
    return Reference(registry, repository, digest if at else None, tag)


def is_loopback(registry: str) -> bool:
    host = urllib.parse.urlsplit(f"//{registry}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str

    def document(self) -> dict[str, Any]:
        try:
            parsed = untrusted.parse_json(self.data, what=f"the manifest {self.digest[:19]}")
        except untrusted.UntrustedInputError as error:
            raise RegistryError(error.message, "the registry sent something else") from None
        if not isinstance(parsed, dict):
            raise RegistryError(f"the manifest {self.digest[:19]} is not a JSON object")
        return parsed


class Registry:
    """One registry host; requests authenticate as the Docker client's login says."""

    def __init__(self, registry: str, *, timeout: float = TIMEOUT_S) -> None:
        self.registry = registry
        host = DOCKER_HUB if registry == "docker.io" else registry
        scheme = "http" if is_loopback(registry) else "https"
        self.base = f"{scheme}://{host}/v2/"
        self.timeout = timeout
        self._authorization: str | None = None

    # -- manifests ------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest ``reference`` (a tag or a digest) names, or None when there is none.

        Read by digest, its bytes must be that digest."""
        status, headers, body = self._request(
            "GET",
            f"{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            limit=MANIFEST_LIMIT,
            missing_ok=True,
        )
        if status == 404:
            return None
        digest = digest_of(body)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"the registry sent a manifest whose digest is {digest[:19]}, not {reference[:19]}",
                "the registry (or something between) changed it; do not trust it",
            )
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(body, media_type, digest)

    def put_manifest(
        self, repository: str, reference: str, document: Mapping[str, Any], media_type: str
    ) -> tuple[str, Mapping[str, str]]:
        """Store a manifest under ``reference`` (a tag, or its own digest); returns its
        digest and the registry's answer's headers."""
        body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        _, headers, _ = self._request(
            "PUT",
            f"{repository}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
        )
        return digest_of(body), headers

    def referrers(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The referrers API's index for ``digest``, or None where the registry has no
        such API (OCI distribution 1.1; older registries answer 404)."""
        status, _, body = self._request(
            "GET",
            f"{repository}/referrers/{digest}",
            headers={"Accept": OCI_INDEX},
            limit=MANIFEST_LIMIT,
            missing_ok=True,
        )
        if status == 404:
            return None
        try:
            index = untrusted.parse_json(body, what=f"the referrers of {digest[:19]}")
        except untrusted.UntrustedInputError:
            return None
        return index if isinstance(index, dict) else None

    # -- blobs ----------------------------------------------------------------------------

    def blob(self, repository: str, digest: str, *, limit: int) -> bytes:
        """The blob ``digest``, checked against it."""
        status, _, body = self._request(
            "GET", f"{repository}/blobs/{digest}", limit=limit, missing_ok=True
        )
        if status == 404:
            raise NotInRegistry(
                f"the registry has no blob {digest[:19]} in {repository}",
                "push the image and its attestations again",
            )
        if digest_of(body) != digest:
            raise RegistryError(
                f"the registry sent a blob whose bytes are not {digest[:19]}",
                "the registry (or something between) changed it; do not trust it",
            )
        return body

    def put_blob(self, repository: str, data: bytes) -> str:
        """Store ``data`` as a blob (a monolithic upload) unless it is there; its digest."""
        digest = digest_of(data)
        status, _, _ = self._request(
            "HEAD", f"{repository}/blobs/{digest}", limit=0, missing_ok=True
        )
        if status == 200:
            return digest
        _, headers, _ = self._request("POST", f"{repository}/blobs/uploads/", data=b"")
        location = headers.get("Location")
        if not location:
            raise RegistryError(f"the registry gave no upload location for {repository}")
        separator = "&" if "?" in location else "?"
        upload = urllib.parse.urljoin(self.base, location)
        self._request(
            "PUT",
            f"{upload}{separator}digest={urllib.parse.quote(digest)}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return digest

    # -- requests -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = MANIFEST_LIMIT,
        missing_ok: bool = False,
    ) -> tuple[int, Mapping[str, str], bytes]:
        url = path if "://" in path else self.base + path
        if urllib.parse.urlsplit(url).netloc != urllib.parse.urlsplit(self.base).netloc:
            raise RegistryError(f"the registry sent an upload to another host: {url}")
        for attempt in range(2):
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            # http(s) only: the base is built from one, and other hosts are refused above.
            request = urllib.request.Request(url, data=data, headers=sent, method=method)  # noqa: S310
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    return response.status, dict(response.headers), _read(response, limit)
            except urllib.error.HTTPError as error:
                with error:
                    reason = _registry_reason(error)
                if error.code == 401 and attempt == 0:
                    self._authorization = self._authorize(error.headers.get("WWW-Authenticate"))
                    if self._authorization:
                        continue
                if error.code == 404 and missing_ok:
                    return 404, dict(error.headers), b""
                raise RegistryError(
                    f"the registry {self.registry} answered {error.code} to {method} "
                    f"{urllib.parse.urlsplit(url).path}: {reason}",
                    "`docker login` to it when it wants credentials"
                    if error.code in (401, 403)
                    else None,
                ) from None
            except (urllib.error.URLError, OSError) as error:
                why = getattr(error, "reason", error)
                raise RegistryError(f"cannot reach the registry {self.registry}: {why}") from None
        raise RegistryError(f"the registry {self.registry} refused the credentials")

    def _authorize(self, challenge: str | None) -> str | None:
        """The Authorization header a 401's challenge asks for: Basic with the Docker
        client's credentials, or a Bearer token from the service the registry names."""
        if not challenge:
            return None
        scheme, _, rest = challenge.partition(" ")
        credentials = _docker_credentials(self.registry)
        if scheme.lower() == "basic":
            return f"Basic {credentials}" if credentials else None
        if scheme.lower() != "bearer":
            return None
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        realm = fields.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            return None
        query = urllib.parse.urlencode(
            {k: v for k, v in fields.items() if k in ("service", "scope")}
        )
        request = urllib.request.Request(f"{realm}?{query}")  # noqa: S310 (checked: http(s))
        if credentials:
            request.add_header("Authorization", f"Basic {credentials}")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                answer = untrusted.parse_json(_read(response, 1 << 20), what="a registry token")
        except (urllib.error.URLError, OSError, untrusted.UntrustedInputError):
            return None
        token = (
            answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        )
        return f"Bearer {token}" if isinstance(token, str) else None


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects (a registry's blob store) lose the Authorization meant for the registry
    when they lead to another host."""

    def redirect_request(  # noqa: PLR0917 (urllib's signature)
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        redirected = super().redirect_request(req, fp, code, msg, headers, newurl)
        if redirected is not None and (
            urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            redirected.headers.pop("Authorization", None)
            redirected.unredirected_hdrs.pop("Authorization", None)
        return redirected


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def _read(response: Any, limit: int) -> bytes:
    body: bytes = response.read(limit + 1)
    if len(body) > limit:
        raise RegistryError(f"the registry's answer is larger than {limit} bytes; refused")
    return body


def _registry_reason(error: urllib.error.HTTPError) -> str:
    """The registry's own error code and message, when it sent the usual JSON."""
    try:
        document = json.loads(error.read(64 << 10) or b"{}")
        first = (document.get("errors") or [{}])[0]
        return f"{first.get('code', '')} {first.get('message', '')}".strip() or str(error.reason)
    except (ValueError, AttributeError, OSError):
        return str(error.reason)


def _docker_credentials(registry: str) -> str | None:
    """base64(user:password) that `docker login REGISTRY` stored, if it stored one in the
    file itself (credential helpers are the Docker client's business, not read here)."""
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        document = untrusted.load_json(folder / "config.json", what="the Docker client's config")
    except (FileNotFoundError, untrusted.UntrustedInputError):
        return None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    names = [registry, f"https://{registry}", f"https://{registry}/v1/"]
    if registry == "docker.io":
        names.append("https://index.docker.io/v1/")
    for name in names:
        entry = auths.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                base64.b64decode(entry["auth"], validate=True)
            except ValueError:
                return None
            return str(entry["auth"])
    return None
