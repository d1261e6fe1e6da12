"""`harness collect` of SLURM runs: each node's signed statement travels with its run.

The runs are made by test_slurm's fake cluster, whose job signs what it saw with the key
of node n1 or n2 (test_slurm_node_keys), and signed here by the submitting machine's key;
then their folders are copied, as a cluster's shared folder is copied back, and collected
into another project. Each way a statement could be wrong is one test: it is left behind
in one line, and the run still comes in, counted as whoever signed its record.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.runs import records
from harness.runtime import node_statement
from harness.trust import attest, keys, node_attestation
from tests.unit import test_slurm, test_slurm_node_keys
from tests.unit.test_collect import make_run
from tests.unit.test_slurm import line
from tests.unit.test_slurm_node_keys import SIGNING_JOB, said

# The fake cluster, its project and its nodes' keys, as fixtures of this module too.
fake = test_slurm.fake
project = test_slurm.project
signing = test_slurm_node_keys.signing


@pytest.fixture
def submitting(tmp_path: Path) -> keys.KeyPair:
    """The key of the machine that submitted the jobs and signed their records."""
    return keys.generate_keys(tmp_path / "submitting", "harness")


@pytest.fixture
def download(
    fake: Path,
    project: Path,
    signing: dict[str, keys.PublicKey],
    submitting: keys.KeyPair,
    tmp_path: Path,
) -> dict[str, Path]:
    """One run on n1 and one on n2, each with its node's statement, copied off the
    cluster into a download folder: node name -> its run folder there."""
    attest.use(keys.load_private_key(submitting.private))
    said(fake)
    made = {"n1": test_slurm.run(project)}
    (fake / "said.json").write_text(json.dumps({"node": "n2", "key": "n2"}))
    test_slurm.answer(fake, line("COMPLETED", "n2"), job=SIGNING_JOB)
    made["n2"] = test_slurm.run(project)
    attest.use(None)
    copied = {}
    for node, result in made.items():
        assert result.status == "succeeded", result.record
        assert (result.folder / node_attestation.FILE).is_file()
        copied[node] = tmp_path / "download" / result.run_id
        shutil.copytree(result.folder, copied[node], symlinks=True)
    return copied


@pytest.fixture
def elsewhere(project: Path, tmp_path: Path) -> Path:
    """Another checkout of the project, where the runs are collected."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    shutil.copy(project / "pyproject.toml", folder / "pyproject.toml")
    return folder


def collect(project: Path, *arguments: str | Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        cli, ["--project", str(project), "collect", "--json", *map(str, arguments)]
    )
    document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, document, result.stderr


def statements(document: dict[str, Any]) -> dict[str, Any]:
    """Each collected run's node statement, by run id, as --json lists it."""
    return {entry["run_id"]: entry["node_statement"] for entry in document["collected"]}


def forget_node_keys() -> None:
    """No node key is kept on the collecting machine."""
    shutil.rmtree(keys.keys_dir() / keys.NODES_FOLDER)


def resign(folder: Path, key: Path, **changes: Any) -> None:
    """Replace the run's node statement with one of the run signed by ``key``, its
    predicate changed as asked (``predicateType`` replaces the statement's type)."""
    record = records.read(folder)
    stated: dict[str, Any] = node_statement.statement(
        node=str(record["slurm"]["node"]),
        job_id=str(record["slurm"]["job_id"]),
        run_id=str(record["run_id"]),
        environment_digest=str(record["python_environment"]["digest"]),
        exit_code=int(record["exit_code"]),
        outputs=folder / records.ARTIFACTS,
    )
    if "predicateType" in changes:
        stated["predicateType"] = changes.pop("predicateType")
    stated["predicate"].update(changes)  # type: ignore[union-attr]
    payload = node_statement.canonical(stated)
    private = keys.load_private_key(key)
    signature = keys.sign(private, node_statement.pae(node_statement.PAYLOAD_TYPE, payload))
    envelope = node_attestation.envelope(payload, signature, keys.key_id(keys.public_of(private)))
    (folder / node_attestation.FILE).unlink()
    node_attestation.write(folder, envelope)


def test_statements_travel_and_each_trusted_node_is_a_host(
    elsewhere: Path,
    download: dict[str, Path],
    signing: dict[str, keys.PublicKey],
    submitting: keys.KeyPair,
    tmp_path: Path,
) -> None:
    code, document, stderr = collect(elsewhere, download["n1"].parent, "--key", submitting.public)
    assert code == 0, stderr
    # One key signed both records, but each node signed its own statement with a key kept
    # here: two hosts, named by their nodes, counted by the nodes' keys.
    assert document["quorum"]["text"] == "2 of 2"
    assert sorted((h["name"], h["signer"]) for h in document["hosts"]) == [
        ("n1", keys.key_id(signing["n1"])),
        ("n2", keys.key_id(signing["n2"])),
    ]
    listed = statements(document)
    for node, folder in download.items():
        assert listed[folder.name] == {
            "node": node,
            "carried": True,
            "key": keys.key_id(signing[node]),
            "trusted": True,
            "refused": None,
        }
        kept = elsewhere / records.RUNS / folder.name / node_attestation.FILE
        assert json.loads(kept.read_text()) == json.loads(
            (folder / node_attestation.FILE).read_text()
        )
    entry = document["collected"][0]
    assert entry["signer"] == submitting.keyid and entry["host_key"] != submitting.keyid
    assert "2 node statement(s) came with their runs, 2 signed by a node key" in stderr
    # certify, on the runs collected, counts the hosts the same way.
    assert certified_quorum(elsewhere, tmp_path, submitting.public) == "2 of 2"


def test_a_statement_no_key_here_trusts_travels_and_counts_at_certify_time(
    elsewhere: Path,
    download: dict[str, Path],
    signing: dict[str, keys.PublicKey],
    submitting: keys.KeyPair,
    tmp_path: Path,
) -> None:
    forget_node_keys()
    code, document, stderr = collect(elsewhere, download["n1"].parent, "--key", submitting.public)
    assert code == 0, stderr
    # Nothing here vouches for the nodes: both runs count as the machine that signed them.
    assert document["quorum"]["text"] == "1 of 1"
    assert document["hosts"][0]["signer"] == submitting.keyid
    for node, folder in download.items():
        listed = statements(document)[folder.name]
        # The key its signature names, unproven here.
        assert listed["carried"] and not listed["trusted"]
        assert listed["key"] == keys.key_id(signing[node])
        assert (elsewhere / records.RUNS / folder.name / node_attestation.FILE).is_file()
    assert "0 signed by a node key trusted here" in stderr
    # Whoever certifies with the nodes' keys counts the nodes.
    public = tmp_path / "nodes"
    public.mkdir()
    for node in ("n1", "n2"):
        (public / f"{node}.pub").write_bytes(keys.public_pem(signing[node]))
    trusted = (submitting.public, public / "n1.pub", public / "n2.pub")
    assert certified_quorum(elsewhere, tmp_path, *trusted) == "2 of 2"


def test_a_node_key_given_on_the_command_line_vouches_as_a_kept_one(
    elsewhere: Path,
    download: dict[str, Path],
    submitting: keys.KeyPair,
    fake: Path,
) -> None:
    forget_node_keys()
    code, document, stderr = collect(
        elsewhere, download["n1"].parent, "--key", submitting.public,
        "--key", fake / "n1.pub", "--key", fake / "n2.pub",
    )  # fmt: skip
    assert code == 0, stderr
    assert document["quorum"]["text"] == "2 of 2"


def test_a_run_only_its_node_signed_needs_no_allow_unsigned(
    elsewhere: Path,
    download: dict[str, Path],
    signing: dict[str, keys.PublicKey],
) -> None:
    for folder in download.values():
        (folder / attest.ATTESTATION).unlink()
    code, document, stderr = collect(elsewhere, download["n1"].parent)
    assert code == 0, stderr
    assert document["quorum"]["text"] == "2 of 2"
    assert all(entry["signer"] is None for entry in document["collected"])
    assert sorted(h["signer"] for h in document["hosts"]) == sorted(
        keys.key_id(signing[node]) for node in ("n1", "n2")
    )
    # Without a trusted node key, nothing vouches for them.
    shutil.rmtree(elsewhere / ".harness")
    forget_node_keys()
    code, _, stderr = collect(elsewhere, download["n1"].parent)
    assert code == 2
    assert "is not signed by any host key" in stderr
    assert "no node key trusted here signed its node statement" in stderr
    assert stderr.count("\n") == 1


# -- statements left behind -----------------------------------------------------------------


def _link(folder: Path, download: dict[str, Path]) -> None:
    # A link to the node's own, valid, statement elsewhere: never followed.
    target = folder.parent.parent / "statement.json"
    (folder / node_attestation.FILE).rename(target)
    (folder / node_attestation.FILE).symlink_to(target)


def _oversized(folder: Path, download: dict[str, Path]) -> None:
    with (folder / node_attestation.FILE).open("r+b") as stream:
        stream.truncate(node_attestation.ENVELOPE_LIMIT + 1)  # sparse: no blocks written


def _fifo(folder: Path, download: dict[str, Path]) -> None:
    (folder / node_attestation.FILE).unlink()
    os.mkfifo(folder / node_attestation.FILE)


def _garbage(folder: Path, download: dict[str, Path]) -> None:
    (folder / node_attestation.FILE).write_bytes(b"\x00not json at all")


def _no_envelope(folder: Path, download: dict[str, Path]) -> None:
    (folder / node_attestation.FILE).write_text('{"payload": "e30=", "signatures": []}')


def _unsigned(folder: Path, download: dict[str, Path]) -> None:
    document = json.loads((folder / node_attestation.FILE).read_text())
    document["signatures"] = []
    (folder / node_attestation.FILE).write_text(json.dumps(document))


def _wrong_predicate(folder: Path, download: dict[str, Path]) -> None:
    fake = Path(os.environ["FAKE_SLURM"])
    resign(folder, fake / "n1.key", predicateType="https://harness.dev/run-record/v1")


def _other_runs(folder: Path, download: dict[str, Path]) -> None:
    # The statement n2 signed of its own run, put beside n1's.
    shutil.copy(download["n2"] / node_attestation.FILE, folder / node_attestation.FILE)


def _replayed(folder: Path, download: dict[str, Path]) -> None:
    # n1's own key, signing a statement of another run on the same node and job.
    fake = Path(os.environ["FAKE_SLURM"])
    resign(folder, fake / "n1.key", run_id="20260101-000000-train-aaaaaa")


def _other_bytes(folder: Path, download: dict[str, Path]) -> None:
    # n1's own key, signing another exit status than the one its record ends with.
    fake = Path(os.environ["FAKE_SLURM"])
    resign(folder, fake / "n1.key", exit_code=3)


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (_link, "is a symbolic link"),
        (_oversized, f"more than the {node_attestation.ENVELOPE_LIMIT} allowed"),
        (_fifo, "is not a regular file"),
        (_garbage, "is not valid JSON"),
        (_no_envelope, "is no DSSE envelope of a statement"),
        (_unsigned, "carries no signature"),
        (_wrong_predicate, "is not a harness node statement"),
        (_other_runs, "names node 'n2', not the 'n1' SLURM ran the job on"),
        (_replayed, "names run_id '20260101-000000-train-aaaaaa'"),
        (_other_bytes, "names exit_code '3', not the 0"),
    ],
)
def test_a_statement_that_fails_a_check_is_left_behind_and_the_run_still_comes(
    elsewhere: Path,
    download: dict[str, Path],
    submitting: keys.KeyPair,
    spoil: Any,
    why: str,
) -> None:
    spoiled = download["n1"]
    spoil(spoiled, download)
    code, document, stderr = collect(elsewhere, spoiled, "--key", submitting.public)
    assert code == 0, stderr
    listed = statements(document)[spoiled.name]
    assert not listed["carried"] and not listed["trusted"] and listed["key"] is None
    assert why in listed["refused"]
    # Said in one line, with what it means for counting: the run is the submitting
    # machine's, not node n1's.
    (said_line,) = [row for row in stderr.splitlines() if "left behind" in row]
    assert why in said_line
    assert f"counts as the key that signed its record ({submitting.keyid[:16]})" in said_line
    assert document["hosts"][0]["signer"] == submitting.keyid
    collected = elsewhere / records.RUNS / spoiled.name
    assert (collected / records.RECORD).is_file()
    assert not os.path.lexists(collected / node_attestation.FILE)


def test_a_statement_beside_a_run_no_slurm_node_made_is_left_behind(
    elsewhere: Path, tmp_path: Path
) -> None:
    run = make_run(tmp_path / "leg", "vm", "demo", 1, b"\x01")
    shutil.copy(
        Path(__file__).parent / "test_collect.py", run / node_attestation.FILE
    )  # any file: the run's executor refuses it first
    code, document, stderr = collect(elsewhere, tmp_path / "leg", "--allow-unsigned")
    assert code == 0, stderr
    assert "ran on no SLURM node" in statements(document)[run.name]["refused"]
    assert "counts as an unsigned host" in stderr


# -- collected again ----------------------------------------------------------------------


def test_a_statement_that_comes_later_joins_its_run(
    elsewhere: Path,
    download: dict[str, Path],
    submitting: keys.KeyPair,
    tmp_path: Path,
) -> None:
    first = download["n1"]
    without = tmp_path / "without" / first.name
    shutil.copytree(first, without)
    (without / node_attestation.FILE).unlink()
    code, document, stderr = collect(elsewhere, without.parent, "--key", submitting.public)
    assert code == 0, stderr
    assert statements(document)[first.name] is None
    collected = elsewhere / records.RUNS / first.name
    assert not collected.joinpath(node_attestation.FILE).exists()
    # The same run again, with its statement: it joins the run that is already here.
    code, document, stderr = collect(elsewhere, first.parent, "--key", submitting.public)
    assert code == 0, stderr
    assert document["quorum"]["text"] == "2 of 2"
    assert collected.joinpath(node_attestation.FILE).is_file()
    # And once more without it: the statement already here still counts.
    code, document, stderr = collect(elsewhere, without.parent, "--key", submitting.public)
    assert code == 0, stderr
    assert statements(document)[first.name]["trusted"]
    assert document["collected"][0]["how"] == "present"


def test_a_run_already_here_with_another_statement_is_refused(
    elsewhere: Path,
    download: dict[str, Path],
    submitting: keys.KeyPair,
    fake: Path,
) -> None:
    code, _, stderr = collect(elsewhere, download["n1"].parent, "--key", submitting.public)
    assert code == 0, stderr
    # The same run, its statement signed again by a key of no node.
    resign(download["n1"], fake / "stranger.key")
    code, _, stderr = collect(elsewhere, download["n1"].parent, "--key", submitting.public)
    assert code == 2
    assert "is already in .harness/runs with another node statement" in stderr
    assert stderr.count("\n") == 1


def certified_quorum(project: Path, scratch: Path, *trusted: Path) -> str:
    """Certify the runs collected in ``project``, trusting ``trusted`` host keys: the
    quorum the certificate states."""
    keys.generate_keys(keys.keys_dir(), keys.DEFAULT_KEY.removesuffix(".key"))
    certificate = scratch / "certificate.json"
    arguments = ["--project", str(project), "certify", "--output", str(certificate)]
    for key in trusted:
        arguments += ["--trusted-key", str(key)]
    certified = CliRunner().invoke(cli, arguments)
    assert certified.exit_code == 0, certified.output
    payload = json.loads(base64.b64decode(json.loads(certificate.read_text())["payload"]))
    return str(payload["predicate"]["quorum"]["text"])
