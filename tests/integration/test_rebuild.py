"""Real rebuilds: the CPU image comes out bit for bit the same, and a planted difference is named.

The CPU check is the one heavy test here (a build without the cache, which must give the
session's CPU image again, and one read of the image); the planted case builds one small
layer on top of the base image, twice.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import docker
from click.testing import CliRunner

from harness import vcs
from harness.cli.package import package
from harness.config import load_config
from harness.engine import Engine
from harness.images import build, rebuild
from tests.conftest import REPOSITORY
from tests.integration.conftest import image_name

PLANTED = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN set -eu; \\
    date +%s%N > /build-time.txt; \\
    mkdir -p /var/log/planted /opt/demo/demo-1.0.dist-info; \\
    date +%s%N > /var/log/planted/build.log; \\
    date +%s%N > /opt/demo/demo-1.0.dist-info/RECORD; \\
    echo 'x = 1' > /opt/demo/x.py; \\
    python3 -m py_compile /opt/demo/x.py
"""


def check_repositories(image: str) -> list[str]:
    """Repositories the rebuild check of ``image`` may have left behind (should be none)."""
    client = docker.DockerClient(base_url=os.environ.get("HARNESS_DOCKER_HOST"))
    try:
        tags = [tag for item in client.images.list() for tag in item.tags]
    finally:
        client.close()
    return [tag for tag in tags if tag.startswith(f"{image}-check-")]


def test_the_cpu_image_rebuilds_bit_for_bit(engine: Engine, cpu_image: dict[str, Any]) -> None:
    config = load_config(REPOSITORY)
    # The session's CPU image (built, or found from an earlier build of the same inputs, from
    # whatever cache that build had) stands for the first build: one build without the
    # cache, the frameworks tier and every pin's layer included, must give it bit for bit.
    result = rebuild.check(engine, build.plan(config, "cpu"), against=cpu_image["image_id"])
    print(result.summary())
    assert result.exit_code == 0, "\n".join(result.report_lines())
    assert result.first_built_before
    assert result.first.image_id == cpu_image["image_id"] == result.second.image_id
    assert result.second.seconds > 0
    assert result.first.content_digest == result.second.content_digest
    # base, then the heavy frameworks tier's (torch and TensorFlow, user), a layer for each
    # of the 10 other large pins (stacked by harness from their normal form), then the
    # small pins and harness's runtime: every part was built again, and agrees.
    assert len(result.first.diff_ids) == 15
    assert result.summary().startswith(f"{config.image}:cpu is reproducible")
    files = result.files
    venv = "opt/harness/venv/"
    assert files[venv + "bin/python"].entry.kind == "symlink"
    # Every module was compiled (and still the two builds agree), the frameworks and
    # harness's runtime alike; nothing recorded the build-time path of harness's wheel.
    site = venv + "lib/python3.11/site-packages/"
    assert site + "numpy/__pycache__/__init__.cpython-311.pyc" in files
    assert site + "__pycache__/six.cpython-311.pyc" in files  # a small pin's
    assert site + "harness/runtime/__pycache__/__init__.cpython-311.pyc" in files
    assert not [p for p in files if p.endswith("direct_url.json")]
    epoch = build.source_date_epoch(vcs.source_state(REPOSITORY))
    above_base = [located.entry.mtime for located in files.values() if located.layer > 0]
    assert max(above_base) <= epoch
    assert check_repositories(config.image) == []


def test_a_planted_build_time_is_found_and_named(engine: Engine, repository_copy: Path) -> None:
    (repository_copy / "Dockerfile").write_text(PLANTED)
    config = load_config(repository_copy, {"image": image_name("planted")})
    result = rebuild.check(engine, build.plan(config, "cpu"))
    text = "\n".join(result.report_lines())
    assert result.exit_code == 1, text
    causes = {cause: [d.path for d in items] for cause, items in result.by_cause.items()}
    assert causes[rebuild.REAL_CONTENT] == ["build-time.txt"]
    assert causes[rebuild.LOGS_AND_CACHES] == ["var/log/planted/build.log"]
    assert causes[rebuild.INSTALLER_METADATA] == ["opt/demo/demo-1.0.dist-info/RECORD"]
    assert "opt/demo/__pycache__/x.cpython-311.pyc" in causes[rebuild.BYTECODE]
    assert "opt/demo/x.py" in causes[rebuild.MTIME_ONLY]
    assert "/build-time.txt: content, mtime (layer 1)" in text
    assert "layer 1 differs (RUN set -eu;" in text
    assert result.first.diff_ids[0] == result.second.diff_ids[0]  # the base
    document: Any = result.as_dict()
    assert document["differences"]["real content"]["files"][0]["path"] == "build-time.txt"
    assert check_repositories(image_name("planted")) == []


def test_the_built_image_carries_the_commit_time_not_the_clock(
    engine: Engine, cpu_image: dict[str, Any]
) -> None:
    attributes = engine.image_attributes(cpu_image["image_id"])
    assert attributes is not None
    created = dt.datetime.fromisoformat(attributes["Created"].replace("Z", "+00:00"))
    label = cpu_image["labels"]["org.opencontainers.image.created"]
    assert created.strftime("%Y-%m-%dT%H:%M:%SZ") == label
    assert not attributes.get("Container")
    assert not attributes.get("Parent")
    history = engine.history(cpu_image["image_id"])
    assert history[0]["CreatedBy"].startswith("LABEL io.harness.build-input.sha256=")


def test_package_builds_the_same_wheel_twice(tmp_path: Path) -> None:
    result = CliRunner().invoke(package, ["--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    first, second, summary = result.output.splitlines()[-3:]
    assert first.split()[0] == second.split()[0]
    assert "is reproducible" in summary
    assert [p.name for p in tmp_path.iterdir()] == [first.split()[-1]]
