"""Which pinned wheels are CUDA runtime: decided by what they hold, not by their name.

NVIDIA publishes the CUDA libraries as ``nvidia-*`` wheels (nvidia-cublas-cu12, ...), but
it publishes other things under that prefix too: ``nvidia-ml-py`` is the pure-Python NVML
bindings that ``pynvml`` pulls in, and a CPU image can hold it without harm. A CPU image
must not carry CUDA libraries, so a pin counts as CUDA runtime when its wheel holds them:

1. where the pinned wheel lies in the wheel cache, its file list says so (a shared library
   of CUDA's, ``libcublas.so.12`` and the like; only the zip's directory is read);
2. else the index's listing of the pinned files: a pure wheel (``py3-none-any``) holds no
   shared library at all, while a platform wheel of such a name is taken to hold them
   (the CUDA wheels are gigabytes, too many to fetch only to look inside);
3. where neither can be read (no cache, no network), the name decides, as it must.

Only the ``nvidia-`` names are looked at: the frameworks' own CUDA builds are told by
their version's local label (see :mod:`harness.images.device_pins`).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

from harness.images import wheelindex
from harness.images.pin import Pin
from harness.images.wheelcache import WheelCache

CANDIDATE_PREFIX = "nvidia-"
# The CUDA toolkit's shared libraries, as the nvidia-* wheels hold them (nvidia/*/lib/).
CUDA_LIBRARY = re.compile(
    r"(^|/)lib(cuda\w*|cublas\w*|cudnn\w*|cufft\w*|cufile\w*|curand\w*|cusolver\w*|"
    r"cusparse\w*|nccl\w*|nvrtc\w*|nvJitLink\w*|cupti\w*|nvToolsExt\w*|nvshmem\w*|"
    r"nvperf\w*|npp\w*|nvjpeg\w*|nvblas\w*|cudss\w*|nvpl\w*)\.so(\.[0-9.]+)?$",
    re.IGNORECASE,
)
# A wheel's directory is read, never its contents; a hostile file cannot make it long.
MAX_MEMBERS = 200_000


def holds_cuda_libraries(wheel: Path) -> bool:
    """Whether the wheel file at ``wheel`` holds a CUDA shared library."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return True  # unreadable: what it holds cannot clear it
    return any(CUDA_LIBRARY.search(name) for name in names[:MAX_MEMBERS])


def is_pure(filename: str) -> bool:
    """A wheel for any platform holds no compiled code (its tag ends in ``-any``)."""
    return filename.endswith("-any.whl")


def by_name(pin: Pin) -> bool:
    """The last resort, where no file of the pin can be read."""
    return pin.name.startswith(CANDIDATE_PREFIX)


class CudaContent:
    """Decides, once per pin, whether its wheel is CUDA runtime (see the module's order)."""

    def __init__(
        self,
        cache: WheelCache,
        index_url: str,
        ca_bundle: Path | None = None,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self.cache = cache
        self.index_url = index_url
        self.ca_bundle = ca_bundle
        self._session_factory = session_factory
        self._session: requests.Session | None = None
        self._known: dict[tuple[str, str], bool] = {}

    def __call__(self, pin: Pin) -> bool:
        if not pin.name.startswith(CANDIDATE_PREFIX):
            return False
        key = (pin.name, pin.version)
        if key not in self._known:
            self._known[key] = self._decide(pin)
        return self._known[key]

    def _decide(self, pin: Pin) -> bool:
        if not _sha256s(pin.hashes):
            return by_name(pin)  # no file is named: none can be looked at
        cached = self._cached_files(pin)
        if cached:
            return any(not is_pure(path.name) and holds_cuda_libraries(path) for path in cached)
        listed = self._listed_files(pin)
        if listed:
            return not all(is_pure(name) for name in listed)
        return by_name(pin)

    def _cached_files(self, pin: Pin) -> list[Path]:
        found: list[Path] = []
        for digest in _sha256s(pin.hashes):
            folder = self.cache.entry(digest)
            if folder.is_dir() and not folder.is_symlink():
                found += [
                    path
                    for path in sorted(folder.iterdir())
                    if path.name.endswith(".whl") and path.is_file() and not path.is_symlink()
                ]
        return found

    def _listed_files(self, pin: Pin) -> list[str]:
        try:
            offers = wheelindex.read_listing(
                self._open_session(), wheelindex.project_url(self.index_url, pin.name)
            )
        except wheelindex.WheelSourceError:
            return []
        pinned = set(_sha256s(pin.hashes))
        return [
            offer.filename
            for offer in offers
            if offer.sha256 in pinned and offer.filename.endswith(".whl")
        ]

    def _open_session(self) -> requests.Session:
        if self._session is None:
            self._session = self._session_factory()
            if self.ca_bundle is not None:
                self._session.verify = str(self.ca_bundle)
        return self._session


def _sha256s(hashes: Sequence[str]) -> list[str]:
    return [
        text.removeprefix("sha256:").lower()
        for text in hashes
        if text.startswith("sha256:") and re.fullmatch(r"[0-9a-fA-F]{64}", text[7:])
    ]


__all__ = ["CANDIDATE_PREFIX", "CUDA_LIBRARY", "CudaContent", "by_name", "holds_cuda_libraries"]
