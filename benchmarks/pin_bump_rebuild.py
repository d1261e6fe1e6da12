"""How long `harness build` takes after one pin changed, against a plain docker build.

In a copy of this project, the CPU image is built once (which fills the wheel cache and
the layer cache, and makes, or finds, the frameworks images of its large pins: the heavy
tier with torch and TensorFlow, and a layer of each other large pin stacked on it), then
each pin named is moved, alone, to another version of it (a pin of the constraints' body,
so the declared requirements and the lock header stay as they are), and harness builds
again:

- a large pin beside the frameworks (scipy, the default first: 35 MB, below the heavy
  tier): scipy alone is installed, as a layer of its own; the layers of the other large
  pins come from the layer cache, only those above scipy's are sent to the engine again,
  the image's install stage (small pins, harness's runtime) comes from the engine's cache
  as the last build left it, and the images before and after share the heavy tier's
  layers on disk (printed: the layers both images hold once);
- a small pure-Python pin (six, the default second): that one wheel, the frameworks
  unchanged, the small pins and harness's runtime installed on them.

Each pin is moved from the constraints the build before it had (the first build's, as
the large pin's bump puts them back), so each bump is one pin moved since the last build,
as a user's is: the engine keeps the install stage of an image's latest build only.

The baseline, measured in the same run on the same base image, is a plain `docker build
--no-cache` of the same constraints with a Dockerfile that installs them from the index
(pip --require-hashes), as images were built before the wheel cache.
Goal: every ratio <= 0.25.

Run: `.venv/bin/python benchmarks/pin_bump_rebuild.py [PIN...]` (default: scipy six). It
removes the images it built; the wheel cache keeps what it downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from packaging.utils import parse_wheel_filename

from harness import config as harness_config
from harness.images import lock, wheelindex, wheeltags
from harness.images.build import DEFAULT_INDEX_URL

REPOSITORY = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("pyproject.toml", "uv.lock", "constraints.txt", "build-constraints.txt")
PLAIN_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG INDEX_URL
COPY ca-bundle.crt constraints.txt /tmp/plain/
COPY wheels/ /tmp/plain/wheels/
RUN if [ -s /tmp/plain/ca-bundle.crt ]; then export PIP_CERT=/tmp/plain/ca-bundle.crt; fi; \\
    python3 -m venv /tmp/installer && python3 -m venv --without-pip /opt/venv && \\
    /tmp/installer/bin/pip --python /opt/venv/bin/python install --no-cache-dir \\
        --no-deps --require-hashes --only-binary=:all: --disable-pip-version-check \\
        --progress-bar off --index-url "$INDEX_URL" --find-links /tmp/plain/wheels \\
        -r /tmp/plain/constraints.txt
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started, result.stdout, result.stderr


def other_version(name: str, version: str, index_url: str) -> tuple[str, str]:
    """Another released version of ``name`` with a wheel the image takes, and its sha256
    (every wheel of that version that fits, so that the build picks as pip would)."""
    ranking = wheeltags.Ranking(wheeltags.Target.parse("3.11", "x86_64-manylinux_2_36"))
    with requests.Session() as session:
        listing = wheelindex.read_listing(session, wheelindex.project_url(index_url, name))
    fitting = [o for o in listing if o.sha256 and ranking.rank(o.filename) is not None]
    versions = sorted({parse_wheel_filename(o.filename)[1] for o in fitting}, reverse=True)
    for found in versions:
        if str(found) != version and not found.is_prerelease:
            best = ranking.best(
                o.filename for o in fitting if parse_wheel_filename(o.filename)[1] == found
            )
            sha256 = next(o.sha256 for o in fitting if o.filename == best)
            return str(found), str(sha256)
    sys.exit(f"the index offers no other version of {name} with a wheel for the image")


def bump(constraints: Path, name: str, index_url: str) -> str:
    """Move ``name``'s pin to another version in the constraints' body; returns the line."""
    text = constraints.read_text()
    pins = {pin.name: pin for pin in lock.parse_constraints(text)}
    if name not in pins:
        sys.exit(f"{name} is not pinned in {constraints.name}")
    version, sha256 = other_version(name, pins[name].version, index_url)
    pattern = re.compile(
        rf"^{re.escape(name)}=={re.escape(pins[name].version)}(?: \\\n\s+--hash=\S+)+",
        re.MULTILINE | re.IGNORECASE,
    )
    line = f"{name}=={version} \\\n    --hash=sha256:{sha256}"
    bumped, count = pattern.subn(line, text)
    if count != 1:
        sys.exit(f"cannot find the pin of {name} in {constraints.name}")
    constraints.write_text(bumped)
    return f"{name} {pins[name].version} -> {version}"


def frameworks_built(stderr: str) -> list[str]:
    """The frameworks images a build made (not those it found)."""
    return re.findall(r"building (harness-frameworks:[0-9a-f]+):", stderr)


def layers(image: str) -> list[str]:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", image],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found: list[str] = json.loads(result.stdout)
    return found


def shared_layers(mine: list[str], first: list[str]) -> str:
    """The layers two images hold once on disk: their common first layers."""
    common = 0
    while common < min(len(mine), len(first)) and mine[common] == first[common]:
        common += 1
    return f"{common} of {len(mine)} layers shared with the first image"


def plain_build(
    project: Path, context: Path, config: harness_config.Config, first: dict[str, Any], tag: str
) -> float:
    """A plain `docker build --no-cache` of the project's constraints: the baseline."""
    index_url = config.index_url or DEFAULT_INDEX_URL
    (context / "wheels").mkdir(parents=True)
    shutil.copy2(project / "constraints.txt", context / "constraints.txt")
    bundle = config.ca_bundle.read_bytes() if config.ca_bundle else b""
    (context / "ca-bundle.crt").write_bytes(bundle)  # for networks that intercept TLS
    (context / "Dockerfile").write_text(PLAIN_DOCKERFILE)
    pins = lock.parse_constraints((project / "constraints.txt").read_text())
    wanted = {(pin.name, pin.version) for pin in pins}
    for wheel_folder in config.find_links:  # e.g. the local CPU build of torch
        for wheel in Path(wheel_folder).glob("*.whl"):
            wheel_name, version, _, _ = parse_wheel_filename(wheel.name)
            if (wheel_name, str(version)) in wanted:
                shutil.copy2(wheel, context / "wheels" / wheel.name)
    base = first["labels"]["org.opencontainers.image.base.name"]
    plain = [
        "docker", "build", "--no-cache", "--force-rm", "-q", "-t", f"{tag}:plain",
        "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"INDEX_URL={index_url}",
        str(context),
    ]  # fmt: skip
    seconds, _, _ = timed(plain, context, dict(os.environ))
    return seconds


def main() -> None:
    names = sys.argv[1:] or ["scipy", "six"]
    tag = f"harness-bench-pin-bump-{os.getpid()}"
    env = {**os.environ, "HARNESS_IMAGE": tag}
    results: list[tuple[str, float, list[str], str]] = []
    with tempfile.TemporaryDirectory(prefix="harness-pin-bump-") as folder:
        project = Path(folder) / "project"
        project.mkdir()
        for file in PROJECT_FILES:
            shutil.copy2(REPOSITORY / file, project / file)
        config = harness_config.load_config(project)
        index_url = config.index_url or DEFAULT_INDEX_URL
        build = [sys.executable, "-m", "harness", "build", "--variant", "cpu", "--json"]
        made: list[str] = []
        original = (project / "constraints.txt").read_text()
        try:
            _, out, err = timed(build, project, env)  # fills the wheel cache (may download)
            first = json.loads(out)
            made.append(first["image_id"])
            made += frameworks_built(err)
            first_layers = layers(first["image_id"])
            for name in names:
                (project / "constraints.txt").write_text(original)
                change = bump(project / "constraints.txt", name, index_url)
                seconds, out, err = timed(build, project, env)
                image_id = json.loads(out)["image_id"]
                made.append(image_id)
                rebuilt = frameworks_built(err)
                made += rebuilt
                shared = shared_layers(layers(image_id), first_layers)
                results.append((change, seconds, rebuilt, shared))
                print(f"bumped {change}: {seconds:.1f} s; {shared}", flush=True)

            plain_seconds = plain_build(project, Path(folder) / "plain", config, first, tag)
            made.append(f"{tag}:plain")
        finally:
            for image in reversed(made):
                subprocess.run(["docker", "rmi", image], capture_output=True, check=False)
            subprocess.run(["docker", "rmi", f"{tag}:cpu"], capture_output=True, check=False)

    print(f"plain docker build --no-cache:     {plain_seconds:7.1f} s")
    for change, seconds, rebuilt, shared in results:
        tiers = f"rebuilt {', '.join(rebuilt)}" if rebuilt else "frameworks unchanged"
        print(f"harness build after {change}: {seconds:7.1f} s  ({tiers}; {shared})")
        print(
            f"  ratio:                           {seconds / plain_seconds:7.2f}x  (goal <= 0.25x)"
        )


if __name__ == "__main__":
    main()
