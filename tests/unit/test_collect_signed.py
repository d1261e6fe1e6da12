"""`harness collect` of signed runs: hosts are keys, uploads prove their substance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.runs import records
from harness.trust import attest, keys
from tests.conftest import MINIMAL_PYPROJECT
from tests.unit.test_collect import make_run

DECLARED = (
    MINIMAL_PYPROJECT
    + """
[tool.harness.experiments.demo]
entry = "experiments.demo:main"
outputs = ["weights.bin", "metrics.json"]
"""
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    return folder


@pytest.fixture
def host_keys(tmp_path: Path) -> dict[str, keys.KeyPair]:
    """Each CI leg's own key pair, outside the project."""
    return {name: keys.generate_keys(tmp_path / "keys", name) for name in ("leg-1", "leg-2")}


def signed_run(
    leg: Path, host: str, number: int, weights: bytes, pair: keys.KeyPair, **extra: Any
) -> Path:
    folder = make_run(leg, host, "demo", number, weights, **extra)
    attest.sign(folder, records.read(folder), keys.load_private_key(pair.private))
    return folder


def collect(project: Path, *arguments: str | Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        cli, ["--project", str(project), "collect", "--json", *map(str, arguments)]
    )
    document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, document, result.stderr


def trusting(*pairs: keys.KeyPair) -> list[str]:
    return [argument for pair in pairs for argument in ("--key", str(pair.public))]


def test_hosts_are_the_keys_that_signed(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    one, two = host_keys["leg-1"], host_keys["leg-2"]
    signed_run(tmp_path / "a", "ubuntu-24.04", 1, b"\x01", one)
    signed_run(tmp_path / "b", "ubuntu-22.04", 2, b"\x01", two)
    code, document, stderr = collect(project, tmp_path / "a", tmp_path / "b", *trusting(one, two))
    assert code == 0, stderr
    assert document["quorum"]["text"] == "2 of 2"
    assert [(h["name"], h["signer"]) for h in document["hosts"]] == [
        ("ubuntu-24.04", one.keyid),
        ("ubuntu-22.04", two.keyid),
    ]
    # The attestation travels with the run.
    assert len(list((project / records.RUNS).glob(f"*/{attest.ATTESTATION}"))) == 2


def test_one_key_under_two_names_is_one_host(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    one = host_keys["leg-1"]
    signed_run(tmp_path / "a", "vm", 1, b"\x01", one)
    signed_run(tmp_path / "b", "vm-again", 2, b"\x01", one)
    code, document, stderr = collect(project, tmp_path / "a", tmp_path / "b", *trusting(one))
    assert code == 0, stderr
    assert document["quorum"]["text"] == "1 of 1"
    assert document["hosts"][0]["signer"] == one.keyid


def test_two_keys_under_one_name_are_two_hosts_named_apart(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    one, two = host_keys["leg-1"], host_keys["leg-2"]
    signed_run(tmp_path / "a", "vm", 1, b"\x01", one)
    signed_run(tmp_path / "b", "vm", 2, b"\x01", two)
    code, document, stderr = collect(project, tmp_path / "a", tmp_path / "b", *trusting(one, two))
    assert code == 0, stderr
    assert document["quorum"]["text"] == "2 of 2"
    names = [h["name"] for h in document["hosts"]]
    assert names == [f"vm [{one.keyid[:12]}]", f"vm [{two.keyid[:12]}]"]


def test_one_run_copied_under_another_name_is_refused(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    one = host_keys["leg-1"]
    run = signed_run(tmp_path / "a", "vm", 1, b"\x01", one)
    copy = tmp_path / "b" / "20261126-100009-demo-000009"
    shutil.copytree(run, copy)
    record = json.loads((copy / records.RECORD).read_text())
    record.update(host="vm-2", run_id=copy.name)
    (copy / records.RECORD).write_text(json.dumps(record))
    code, _, stderr = collect(project, tmp_path / "a", tmp_path / "b", *trusting(one))
    assert code == 2
    assert "signed for another record than the one beside it" in stderr
    assert stderr.count("\n") == 1
    assert not (project / ".harness").exists()


def test_unsigned_runs_count_only_when_allowed_and_say_so(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    make_run(tmp_path / "a", "vm", "demo", 1, b"\x01")
    code, _, stderr = collect(project, tmp_path / "a")
    assert code == 2
    assert "is not signed by any host key" in stderr
    assert "--allow-unsigned" in stderr
    code, document, stderr = collect(project, tmp_path / "a", "--allow-unsigned")
    assert code == 0, stderr
    assert document["hosts"][0]["signer"] == "unsigned"


def test_a_run_signed_by_a_key_not_trusted_here_is_refused(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    signed_run(tmp_path / "a", "vm", 1, b"\x01", host_keys["leg-2"])
    for flags in ([], ["--allow-unsigned"], trusting(host_keys["leg-1"])):
        code, _, stderr = collect(project, tmp_path / "a", *flags)
        assert code == 2
        assert "is signed by no key trusted here" in stderr


def test_trust_comes_from_this_machine_never_from_the_project(
    project: Path,
    tmp_path: Path,
    host_keys: dict[str, keys.KeyPair],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pair = host_keys["leg-1"]
    signed_run(tmp_path / "a", "vm", 1, b"\x01", pair)
    # A key the project carries cannot be made trusted through the machine's setting.
    inside = project / "trusted"
    inside.mkdir()
    shutil.copy(pair.public, inside / "leg.pub")
    monkeypatch.setenv(keys.TRUSTED_ENV, str(inside))
    code, _, stderr = collect(project, tmp_path / "a")
    assert code == 2
    assert "is inside the project" in stderr
    # This user's trusted folder, outside the project, is where trust comes from.
    monkeypatch.delenv(keys.TRUSTED_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    keys.trusted_dir().mkdir(parents=True)
    shutil.copy(pair.public, keys.trusted_dir() / "leg.pub")
    code, document, stderr = collect(project, tmp_path / "a")
    assert code == 0, stderr
    assert document["hosts"][0]["signer"] == pair.keyid


def test_a_succeeded_run_without_its_declared_outputs_is_refused(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    (project / "pyproject.toml").write_text(DECLARED)
    pair = host_keys["leg-1"]
    run = make_run(tmp_path / "a", "vm", "demo", 1, b"\x01")
    (run / records.ARTIFACTS / "weights.bin").unlink()
    record = records.read(run)
    record["artifacts"] = []  # "succeeded" with nothing to show
    records.write(run, record)
    attest.sign(run, record, keys.load_private_key(pair.private))
    code, _, stderr = collect(project, tmp_path / "a", *trusting(pair))
    assert code == 2
    assert "says it succeeded but holds no output matching 'weights.bin'" in stderr
    assert not (project / ".harness").exists()


def test_a_sparse_artifact_counts_at_its_full_size(
    project: Path, tmp_path: Path, host_keys: dict[str, keys.KeyPair]
) -> None:
    run = make_run(tmp_path / "a", "vm", "demo", 1, b"\x01")
    sparse = run / records.ARTIFACTS / "weights.bin"
    with sparse.open("r+b") as stream:
        stream.truncate(2 << 30)  # 2 GiB, next to no blocks on disk
    assert sparse.stat().st_blocks * 512 < 1 << 20
    code, _, stderr = collect(project, tmp_path / "a", "--allow-unsigned", "--max-size", "1G")
    assert code == 2
    assert f"holds {2 << 30} bytes" in stderr
    assert f"more than the {1 << 30} a run may bring in" in stderr
    assert not (project / ".harness").exists()


@pytest.mark.parametrize("size", ["lots", "1.5G", "-1"])
def test_a_size_cap_that_is_no_size_is_a_usage_error(
    project: Path, tmp_path: Path, size: str
) -> None:
    make_run(tmp_path / "a", "vm", "demo", 1, b"\x01")
    code, _, stderr = collect(project, tmp_path / "a", "--allow-unsigned", "--max-size", size)
    assert code == 2
    assert "is not a size" in stderr
