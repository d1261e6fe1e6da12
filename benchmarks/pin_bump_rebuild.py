"""How long `harness build` takes after one small pin changed, against a plain docker build.

In a copy of this project, the CPU image is built once (which fills the wheel cache and
makes, or finds, the frameworks image of its large pins), then one small pure-Python pin
of the constraints (a dependency of a dependency, so the declared requirements and the
lock header stay as they are) is moved to another version of it, and harness builds
again: it downloads that one wheel, finds the frameworks image unchanged, and installs
the small pins and its runtime on it. The baseline, measured in the same run on the same
base image, is a plain `docker build --no-cache` of the same bumped constraints with a
Dockerfile that installs them from the index (pip --require-hashes), as images were built
before the wheel cache.
Goal: ratio <= 0.2.

Run: `.venv/bin/python benchmarks/pin_bump_rebuild.py [PIN]` (default: six). It removes
the images it built; the wheel cache keeps what it downloaded.
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

import requests
from packaging.utils import parse_wheel_filename

from harness import config as harness_config
from harness.images import lock, wheelindex
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


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started, result.stdout


def other_version(name: str, version: str, index_url: str) -> tuple[str, str]:
    """Another released version of ``name`` with a pure-Python wheel, and that wheel's sha256."""
    with requests.Session() as session:
        listing = wheelindex.read_listing(session, wheelindex.project_url(index_url, name))
    for offer in sorted(listing, key=lambda o: o.filename, reverse=True):
        _, found, _, tags = parse_wheel_filename(offer.filename)
        pure = any(tag.platform == "any" and tag.abi == "none" for tag in tags)
        if pure and str(found) != version and offer.sha256 and not found.is_prerelease:
            return str(found), offer.sha256
    sys.exit(f"the index offers no other pure-Python version of {name}")


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


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "six"
    tag = f"harness-bench-pin-bump-{os.getpid()}"
    env = {**os.environ, "HARNESS_IMAGE": tag}
    with tempfile.TemporaryDirectory(prefix="harness-pin-bump-") as folder:
        project = Path(folder) / "project"
        project.mkdir()
        for file in PROJECT_FILES:
            shutil.copy2(REPOSITORY / file, project / file)
        config = harness_config.load_config(project)
        index_url = config.index_url or DEFAULT_INDEX_URL
        build = [sys.executable, "-m", "harness", "-q", "build", "--variant", "cpu", "--json"]
        made: list[str] = []
        try:
            _, out = timed(build, project, env)  # fills the wheel cache (and may download)
            first = json.loads(out)
            made.append(first["image_id"])
            change = bump(project / "constraints.txt", name, index_url)
            rebuild_seconds, out = timed(build, project, env)
            made.append(json.loads(out)["image_id"])
            print(f"bumped {change}; harness build after the bump: {rebuild_seconds:.1f} s")

            context = Path(folder) / "plain"
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
            plain_seconds, _ = timed(plain, context, env)
            made.append(f"{tag}:plain")
        finally:
            for image in reversed(made):
                subprocess.run(["docker", "rmi", image], capture_output=True, check=False)
            subprocess.run(["docker", "rmi", f"{tag}:cpu"], capture_output=True, check=False)

    print(f"harness build after the bump:      {rebuild_seconds:7.1f} s")
    print(f"plain docker build --no-cache:     {plain_seconds:7.1f} s")
    ratio = rebuild_seconds / plain_seconds
    print(f"  ratio:                           {ratio:7.2f}x  (goal <= 0.2x)")


if __name__ == "__main__":
    main()
