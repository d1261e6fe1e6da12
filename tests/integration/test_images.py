"""Real builds: the images hold exactly the pinned distributions, and bad inputs fail clearly."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from harness.digests import sha256_file
from harness.engine import Engine
from harness.images import lock
from tests.conftest import REPOSITORY
from tests.integration.conftest import build_json, harness, image_name, run_python

INSTALLED = """
import importlib.metadata as m, json, os
print(json.dumps({
    "uid": os.getuid(),
    "dists": {d.metadata["Name"].lower().replace("_", "-"): d.version for d in m.distributions()},
}))
"""

FRAMEWORKS = """
import json, numpy, sklearn, torch, tensorflow
print(json.dumps({
    "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
    "torch": torch.__version__, "tensorflow": tensorflow.__version__,
    "cuda": torch.version.cuda,
}))
"""


def pins(name: str) -> dict[str, str]:
    text = (REPOSITORY / name).read_text()
    return {p.name: p.version for p in lock.parse_constraints(text, name)}


def test_cpu_image_holds_exactly_the_pinned_distributions(
    engine: Engine, cpu_image: dict[str, Any]
) -> None:
    facts = run_python(engine, cpu_image["reference"], INSTALLED)
    expected = pins("constraints.txt")
    installed = {name: version for name, version in facts["dists"].items() if name != "harness"}
    assert installed == expected
    assert "harness" in facts["dists"]
    assert facts["uid"] == 10001


def test_cpu_image_imports_the_pinned_frameworks(engine: Engine, cpu_image: dict[str, Any]) -> None:
    versions = run_python(engine, cpu_image["reference"], FRAMEWORKS)
    expected = pins("constraints.txt")
    assert versions["numpy"] == expected["numpy"]
    assert versions["scikit-learn"] == expected["scikit-learn"]
    assert versions["torch"] == expected["torch"]
    assert versions["torch"].endswith("+cpu")
    assert versions["tensorflow"] == expected["tensorflow-cpu"]
    assert versions["cuda"] is None


BYTECODE = """
import importlib.util, json, torch
cached = importlib.util.cache_from_source(torch.__file__)
with open(cached, "rb") as stream:
    header = stream.read(16)
print(json.dumps({"flags": int.from_bytes(header[4:8], "little"), "cached": cached}))
"""


def test_cpu_image_holds_unchecked_hash_bytecode(engine: Engine, cpu_image: dict[str, Any]) -> None:
    facts = run_python(engine, cpu_image["reference"], BYTECODE)
    # PEP 552: bit 0 set, a hash-based .pyc; bit 1 clear, never checked against its source.
    assert facts["flags"] == 0b01, facts


def test_cpu_image_carries_the_labels(engine: Engine, cpu_image: dict[str, Any]) -> None:
    info = engine.image(cpu_image["image_id"])
    assert info is not None
    labels = info.labels
    for key in (
        "org.opencontainers.image.created",
        "org.opencontainers.image.base.digest",
    ):
        assert labels.get(key), key
    # The commit lives in run records and certificates: a label would rebuild every commit.
    assert "org.opencontainers.image.revision" not in labels
    # The source is a canonical public URL, or absent for a clone without a public remote.
    source = labels.get("org.opencontainers.image.source")
    assert source is None or re.fullmatch(r"https://[a-z0-9.-]+/[^@\s]+", source), source
    assert labels["io.harness.variant"] == "cpu"
    assert labels["io.harness.constraints.sha256"] == sha256_file(REPOSITORY / "constraints.txt")
    assert labels["io.harness.lock.sha256"] == sha256_file(REPOSITORY / "uv.lock")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"]
    )


def test_a_rebuild_with_nothing_changed_is_a_cache_hit(cpu_image: dict[str, Any]) -> None:
    again = build_json("--variant", "cpu")
    assert again["cached"] is True
    assert again["image_id"] == cpu_image["image_id"]


def test_a_flipped_hash_fails_the_build_naming_the_package(
    engine: Engine, cpu_image: dict[str, Any], repository_copy: Path
) -> None:
    path = repository_copy / "constraints.txt"
    first = lock.parse_constraints(path.read_text())[0]
    text = path.read_text()
    for digest in first.hashes:  # every file of that release, so no download can match
        algorithm, value = digest.split(":")
        flipped = value[:-1] + ("0" if value[-1] != "0" else "1")
        text = text.replace(digest, f"{algorithm}:{flipped}")
    path.write_text(text)

    result = harness(
        "build",
        "--variant",
        "cpu",
        cwd=repository_copy,
        env={"HARNESS_IMAGE": image_name("tampered")},
    )
    assert result.returncode == 2, result.stderr
    assert f"{first.name}=={first.version}" in result.stderr
    assert "sha256" in result.stderr
    assert engine.image(f"{image_name('tampered')}:cpu") is None


def test_a_failing_dockerfile_names_the_step_and_its_last_lines(
    engine: Engine, cpu_image: dict[str, Any], repository_copy: Path
) -> None:
    (repository_copy / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo checking the frobnicator && exit 3\n"
    )
    result = harness("build", cwd=repository_copy, env={"HARNESS_IMAGE": image_name("failing")})
    assert result.returncode == 2
    assert "build failed at Step 3/" in result.stderr
    assert "RUN echo checking the frobnicator" in result.stderr
    assert "checking the frobnicator" in result.stderr.split("last lines:")[1]
    assert "returned a non-zero code: 3" in result.stderr


def test_without_an_engine_the_error_says_how_to_start_one(tmp_path: Path) -> None:
    result = harness("build", env={"HARNESS_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "cannot reach the Docker engine" in result.stderr
    assert "start the Docker daemon" in result.stderr


def test_lock_check_is_current_then_names_an_added_dependency(repository_copy: Path) -> None:
    current = harness("lock", "--check", cwd=repository_copy)
    assert current.returncode == 0, current.stderr

    pyproject = repository_copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '    "tensorflow==2.21.0",\n', '    "tensorflow==2.21.0",\n    "pandas",\n'
        )
    )
    stale = harness("lock", "--check", cwd=repository_copy)
    assert stale.returncode == 1
    assert "constraints.txt: pandas is declared but not locked" in stale.stderr
    assert "constraints-cuda.txt: pandas is declared but not locked" in stale.stderr
    assert "uv.lock does not match" in stale.stderr


def test_doctor_reports_engine_and_base(cpu_image: dict[str, Any]) -> None:
    result = harness("doctor", "--json")
    document = json.loads(result.stdout)
    checks = {check["name"]: check for check in document["checks"]}
    assert checks["engine"]["ok"] is True
    assert checks["base image"]["ok"] is True
    assert checks["constraints"]["ok"] is True
    assert result.returncode == (0 if document["ok"] else 2)


@pytest.mark.heavy
def test_cuda_image_holds_pypi_torch_with_the_pinned_nvidia_wheels(engine: Engine) -> None:
    started = time.monotonic()
    built = build_json("--variant", "cuda")
    seconds = time.monotonic() - started
    expected = pins("constraints-cuda.txt")
    facts = run_python(engine, built["reference"], INSTALLED)
    installed = {name: version for name, version in facts["dists"].items() if name != "harness"}
    assert installed == expected
    nvidia = {name: version for name, version in installed.items() if name.startswith("nvidia-")}
    assert nvidia
    versions = run_python(engine, built["reference"], FRAMEWORKS)
    # The wheel's metadata says 2.13.0; torch itself adds the CUDA flavour (2.13.0+cu130).
    assert versions["torch"].split("+")[0] == expected["torch"]
    assert versions["cuda"] is not None
    assert versions["cuda"].split(".")[0] == expected["nvidia-cuda-runtime"].split(".")[0]
    print(
        f"cuda image: {built['size'] / 1e9:.2f} GB, "
        f"build {seconds:.0f} s (cached: {built['cached']})"
    )
