"""What a Python environment holds, for runs that no image isolated.

A run in a container is pinned by its image digest. A run with the host executor (a GPU
machine or a cluster node without Docker) has only the Python environment it was given, so
its record names that environment instead: every installed distribution with its version
and the sha256 of its ``RECORD`` (the list of its files with their own sha256, written by the
installer), and one digest over them all. Two environments with the same digest hold the
same distributions with the same files, as far as their installers recorded them.

``python -m harness.runtime.environment`` prints the description as JSON; the host runs it
with the environment's own interpreter. Standard library only, like the rest of the runtime.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import re
import sys

SCHEMA = "harness.python-environment/v1"


def describe() -> dict[str, object]:
    """This interpreter and the distributions it can import."""
    distributions = sorted(
        (_distribution(found) for found in importlib.metadata.distributions()),
        key=lambda entry: (str(entry["name"]), str(entry["version"]), str(entry["files_sha256"])),
    )
    return {
        "schema": SCHEMA,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "digest": digest(distributions),
        "distributions": distributions,
    }


def digest(distributions: list[dict[str, object]]) -> str:
    """One sha256 over the sorted (name, version, files) entries."""
    text = json.dumps(distributions, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _distribution(found: importlib.metadata.Distribution) -> dict[str, object]:
    name = found.metadata["Name"] or "unknown"
    # RECORD lists every installed file with its hash; an environment without one for a
    # distribution (installed by a tool that writes none) is described by its METADATA.
    record = found.read_text("RECORD")
    if record is None:
        text, kind = found.read_text("METADATA") or "", "METADATA"
    else:
        text, kind = "\n".join(sorted(_content_lines(record))), "RECORD"
    return {
        "name": re.sub(r"[-_.]+", "-", name).lower(),
        "version": found.version,
        "files_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "from": kind,
    }


def _content_lines(record: str) -> list[str]:
    """The RECORD lines that describe what the distribution is, not where or how it was
    installed: scripts outside site-packages (their first line names the environment's
    interpreter), bytecode (compiled on the machine, stamped with its times) and the
    installer's own files (INSTALLER, REQUESTED, direct_url.json, RECORD itself)."""
    kept = []
    for line in record.splitlines():
        path = line.split(",", 1)[0]
        if not path or path.startswith("../") or path.endswith(".pyc"):
            continue
        if ".dist-info/" in path and path.rsplit("/", 1)[-1] in _INSTALLER_FILES:
            continue
        kept.append(line)
    return kept


_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})


if __name__ == "__main__":
    json.dump(describe(), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
