"""Node-held keys on SLURM hosts: each node signs what it saw, harness checks it.

The job is played by the fake SLURM commands of test_slurm (a fake job writes what a
node would); the statement it leaves is made with harness's runtime and signed with a key
of the test's choosing, so that every way a node or a job could lie is one test. One
test runs the batch script's own signing lines and the key job with the real ``openssl``
and checks the result with harness's keys module.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.fleet import collect, hosts
from harness.fleet.slurm import node_keys, script
from harness.fleet.slurm.settings import SlurmSettings
from harness.runs.host_executor import staged_runtime
from harness.runtime import node_statement
from harness.trust import attest, dsse, evidence, keys, node_attestation
from tests.conftest import REPOSITORY, RUN_RECORD_SCHEMA
from tests.unit import test_slurm
from tests.unit.test_slurm import DIGEST, GOOD_JOB, answer, line, run

# test_slurm's fake SLURM commands and project, as fixtures of this module too.
fake = test_slurm.fake
project = test_slurm.project

# A fake job that does what a node with a key does: the environment, the output, the log,
# then the statement of what it saw, signed. $FAKE_SLURM/said.json changes what it states,
# which key signs, and what it does to its output afterwards.
SIGNING_JOB = f"""#!{sys.executable}
import json, os, sys
from pathlib import Path
sys.path.insert(0, {str(REPOSITORY)!r})
from harness.runtime import node_statement as ns
from harness.trust import keys
fake = Path(os.environ["FAKE_SLURM"])
said = json.loads((fake / "said.json").read_text())
Path("environment.json").write_text(json.dumps({{"digest": {DIGEST!r}, "python": "3.11",
    "distributions": []}}))
Path("out/weights.txt").write_text("0.5 0.25\\n")
Path("log.txt").write_text("ran\\n")
spec = json.loads(Path("spec.json").read_text())
payload = ns.canonical(ns.statement(
    node=said.get("node", "n1"),
    job_id=said.get("job_id", "7"),
    run_id=said.get("run_id", spec["run_id"]),
    environment_digest=said.get("digest", {DIGEST!r}),
    exit_code=0,
    outputs=Path("out"),
))
if said.get("key") == "empty":
    Path(ns.PAYLOAD).write_bytes(payload)
    Path(ns.SIGNATURE).write_bytes(b"")
elif said.get("key") != "none":
    key = keys.load_private_key(fake / (said.get("key", "n1") + ".key"))
    Path(ns.PAYLOAD).write_bytes(payload)
    Path(ns.SIGNATURE).write_bytes(keys.sign(key, ns.pae(ns.PAYLOAD_TYPE, payload)))
if "then" in said:
    Path("out/weights.txt").write_text(said["then"])
"""


@pytest.fixture
def signing(fake: Path, project: Path) -> dict[str, keys.PublicKey]:
    """The cluster's nodes n1 and n2 keep keys (in the fake folder, standing for each
    node's disk); their public keys are kept here, as `harness keys nodes` keeps them."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'node_key = "{fake}/{{node}}.key"\n')
    kept = keys.nodes_dir(project, "cluster")
    found = {}
    for node in ("n1", "n2", "stranger"):
        pair = keys.generate_keys(fake, node)
        found[node] = keys.load_public_key(pair.public)
        if node != "stranger":
            kept.mkdir(parents=True, exist_ok=True)
            shutil.copy(pair.public, kept / f"{node}.pub")
    return found


def said(fake: Path, **what: str) -> None:
    (fake / "said.json").write_text(json.dumps(what))
    answer(fake, line("COMPLETED", "n1"), job=SIGNING_JOB)


def test_a_node_that_signs_what_it_returned_vouches_for_the_run(
    fake: Path,
    project: Path,
    signing: dict[str, keys.PublicKey],
) -> None:
    said(fake)
    result = run(project)
    assert result.status == "succeeded", result.record
    assert result.record["slurm"]["node_key"] == keys.key_id(signing["n1"])
    jsonschema.validate(result.record, RUN_RECORD_SCHEMA)
    # The statement kept beside the record vouches for the run under the node's key alone.
    keyid, envelope = node_attestation.vouching(result.folder, result.record, [signing["n1"]])  # type: ignore[misc]
    assert keyid == keys.key_id(signing["n1"])
    assert node_attestation.vouching(result.folder, result.record, [signing["n2"]]) is None
    # The script the job ran signs on the node after the experiment, with the node's key.
    submitted = (result.folder / "job.sh").read_text()
    assert f'key="{fake}/${{SLURMD_NODENAME}}.key"' in submitted
    assert "exec env -i" not in submitted and 'exit "$status"' in submitted
    # A record changed afterwards no longer matches what the node signed.
    changed = {**result.record, "exit_code": 1}
    with pytest.raises(node_attestation.NodeStatementError, match="exit_code"):
        node_attestation.vouching(result.folder, changed, [signing["n1"]])
    assert envelope["signatures"][0]["keyid"] == keyid


@pytest.mark.parametrize(
    ("what", "refused"),
    [
        # The node signs one digest and returns other bytes.
        ({"then": "0.5 0.26\n"}, "other output bytes than the files harness brought back"),
        # It names another node than the one SLURM ran the job on (BatchHost).
        ({"node": "n2"}, "names node 'n2', not the 'n1' SLURM ran the job on"),
        # A statement of another job, or of another run, replayed.
        ({"job_id": "6"}, "names job_id '6', not the '7' SLURM gave the job"),
        ({"run_id": "20260101-000000-train-aaaaaa"}, "names run_id"),
        # Another environment than the one the job described.
        ({"digest": "sha256:" + "cd" * 32}, "names python_environment"),
        # The key of another node, or of no node at all.
        ({"key": "n2"}, "signed with the key of node n2, not its own"),
        ({"key": "stranger"}, "not signed by node n1's key"),
        # No statement at all, though the host names a node_key.
        ({"key": "none"}, "signed no statement of what it saw"),
        # openssl could not sign (no key there): it leaves an empty signature.
        ({"key": "empty"}, "signed no statement of what it saw"),
    ],
)
def test_a_statement_that_does_not_match_the_run_fails_it(
    fake: Path,
    project: Path,
    signing: dict[str, keys.PublicKey],
    what: dict[str, str],
    refused: str,
) -> None:
    said(fake, **what)
    result = run(project)
    assert result.status == "failed"
    assert refused in result.record["error"]
    assert result.record["artifacts"] == []
    assert not (result.folder / node_attestation.FILE).exists()


def test_a_node_whose_key_is_not_kept_here_is_carried_for_a_certifier_to_check(
    fake: Path,
    project: Path,
    signing: dict[str, keys.PublicKey],
) -> None:
    (keys.nodes_dir(project, "cluster") / "n1.pub").unlink()
    said(fake)
    result = run(project)
    assert result.status == "succeeded", result.record
    assert result.record["slurm"]["node_key"] is None
    vouched = node_attestation.vouching(result.folder, result.record, [signing["n1"]])
    assert vouched is not None and vouched[0] == keys.key_id(signing["n1"])


def test_a_key_held_here_for_a_node_never_signs_its_runs(
    fake: Path, project: Path, tmp_path: Path
) -> None:
    own = keys.generate_keys(tmp_path / "keys", "harness")
    held = keys.generate_keys(tmp_path / "keys" / "hosts", "n1")
    attest.use(keys.load_private_key(own.private), {"n1": keys.load_private_key(held.private)})
    answer(fake, line("COMPLETED", "n1"), job=GOOD_JOB)
    result = run(project)
    assert result.status == "succeeded"
    # The run counts as this machine's, which submitted it, not as node n1's.
    signer = attest.verify(
        result.folder,
        result.record,
        [keys.load_public_key(own.public), keys.load_public_key(held.public)],
    )
    assert signer.keyid == own.keyid


def test_without_a_node_key_nothing_changes(fake: Path, project: Path) -> None:
    answer(fake, line("COMPLETED", "n1"), job=GOOD_JOB)
    result = run(project)
    assert result.status == "succeeded"
    assert "node_key" not in result.record["slurm"]
    assert "exec env -i" in (result.folder / "job.sh").read_text()
    assert not (result.folder / node_attestation.FILE).exists()


def test_a_certificate_counts_a_node_statement_for_its_run(
    fake: Path,
    project: Path,
    signing: dict[str, keys.PublicKey],
) -> None:
    said(fake)
    result = run(project)
    _, envelope = node_attestation.vouching(result.folder, result.record, [signing["n1"]])  # type: ignore[misc]
    statement = _certificate(result.run_id, DIGEST.removeprefix("sha256:"), envelope)
    signers, _ = evidence.check_signed_hosts(statement, [signing["n1"], signing["n2"]], 1)
    assert signers == [keys.key_id(signing["n1"])]
    # Not for a run the certificate does not name, nor for another environment.
    other = _certificate("20260101-000000-train-aaaaaa", DIGEST.removeprefix("sha256:"), envelope)
    with pytest.raises(dsse.EnvelopeError):
        evidence.check_signed_hosts(other, [signing["n1"]], 1)
    with pytest.raises(dsse.EnvelopeError):
        evidence.check_signed_hosts(
            _certificate(result.run_id, "ef" * 32, envelope), [signing["n1"]], 1
        )
    # Nor under a key the verifier does not trust.
    with pytest.raises(dsse.EnvelopeError):
        evidence.check_signed_hosts(statement, [signing["n2"]], 1)


def _certificate(run_id: str, digest: str, envelope: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": [{"digest": {"sha256": digest}, "annotations": {"kind": "python-environment"}}],
        "predicate": {
            "experiments": [{"runs": [run_id]}],
            "hosts": [],
            "evidence": {"attestations": [envelope]},
        },
    }


# -- with the real openssl ------------------------------------------------------------------


def _host(tmp_path: Path, node_key: str) -> hosts.Host:
    settings = SlurmSettings(partition="debug", workdir=tmp_path, node_key=node_key)
    return hosts.Host("cluster", None, ship="never", files="copy", gpus=False, slurm=settings)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("key_type", [keys.ED25519, keys.ECDSA_P256])
def test_openssl_on_the_node_signs_what_harness_verifies(tmp_path: Path, key_type: str) -> None:
    node_env = {"PATH": "/usr/bin:/bin", "SLURMD_NODENAME": "n1", "SLURM_JOB_ID": "12"}
    template = str(tmp_path / "node disk" / "{node}.key")
    host = _host(tmp_path, template)
    job = tmp_path / "job"
    (job / "out" / "deep").mkdir(parents=True)
    # The key job, pinned to its node, makes the key there (readable by its owner alone)
    # and leaves its public half.
    text = node_keys.key_script(host, job, "n1", key_type)
    assert "#SBATCH --nodelist=n1\n" in text and "#SBATCH --partition=debug\n" in text
    made = subprocess.run(
        ["sh", "-c", text],
        env=node_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    private = tmp_path / "node disk" / "n1.key"
    assert private.stat().st_mode & 0o077 == 0
    public = keys.public_from_pem((job / node_keys.PUBLIC).read_bytes(), "node.pub")
    assert keys.key_type_of(public) == key_type
    assert keys.key_id(public) == keys.key_id(keys.public_of(keys.load_private_key(private)))

    # The run's files, then the script's own signing lines, with the job's interpreter.
    (job / "out" / "weights.txt").write_bytes(b"\x00\x01weights")
    (job / "out" / "deep" / "more.txt").write_text("more")
    run_id = "20261206-120000-train-abcdef"
    (job / "spec.json").write_text(json.dumps({"run_id": run_id, "output": str(job / "out")}))
    environment = tmp_path / "env"
    (environment / "bin").mkdir(parents=True)
    (environment / "bin" / "python").symlink_to(sys.executable)
    with staged_runtime() as runtime:
        shutil.copytree(runtime, job / script.RUNTIME)
    lines = script._node_signs(template)
    signed = subprocess.run(
        ["sh", "-c", "set -eu\n" + f"job={job}\nenv={environment}\nstatus=0\n" + "\n".join(lines)],
        env=node_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    described = subprocess.run(
        [str(environment / "bin" / "python"), "-P", "-m", "harness.runtime.environment"],
        env={**node_env, "PYTHONPATH": str(job / script.RUNTIME)},
        capture_output=True,
        text=True,
        check=True,
    )
    digest = json.loads(described.stdout)["digest"]
    envelope = node_attestation.envelope(
        (job / node_statement.PAYLOAD).read_bytes(), (job / node_statement.SIGNATURE).read_bytes()
    )
    keyid, stated = node_attestation.opened(envelope, [public])
    assert keyid == keys.key_id(public)
    expected = node_attestation.Expected(
        node="n1",
        job_id="12",
        run_id=run_id,
        environment_digest=digest,
        exit_code=0,
        artifacts=tuple(
            sorted(
                (path, hashlib.sha256((job / "out" / path).read_bytes()).hexdigest())
                for path in ("weights.txt", "deep/more.txt")
            )
        ),
    )
    node_attestation.check(stated, expected)
    # The bytes openssl signed are DSSE's encoding, as harness's own DSSE module makes it.
    payload = (job / node_statement.PAYLOAD).read_bytes()
    assert (job / node_statement.PAE).read_bytes() == dsse.pae(dsse.PAYLOAD_TYPE, payload)
    # Another key of the same type does not verify it.
    stranger = keys.generate_keys(tmp_path / "other", "x", key_type=key_type)
    with pytest.raises(dsse.EnvelopeError):
        node_attestation.opened(envelope, [keys.load_public_key(stranger.public)])


def test_a_node_key_others_can_read_is_not_used(tmp_path: Path) -> None:
    host = _host(tmp_path, str(tmp_path / "{node}.key"))
    (tmp_path / "n1.key").write_text("not even a key")
    (tmp_path / "n1.key").chmod(0o644)
    (tmp_path / "job").mkdir()
    made = subprocess.run(
        ["sh", "-c", node_keys.key_script(host, tmp_path / "job", "n1", keys.ED25519)],
        env={"PATH": "/usr/bin:/bin", "SLURMD_NODENAME": "n1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 3
    assert "can be read or written by others" in made.stderr


@pytest.mark.parametrize("one_cpu", [False, True])
def test_the_script_signs_after_the_experiment_and_ends_with_its_status(
    tmp_path: Path, one_cpu: bool
) -> None:
    plan = test_slurm._plan(tmp_path)
    text = script.render(replace(plan, one_cpu=one_cpu, node_key="~/.harness/{node}.key"))
    assert subprocess.run(["sh", "-n"], input=text, text=True, check=False).returncode == 0
    assert "exec " not in text
    lines = text.splitlines()
    experiment = next(n for n, row in enumerate(lines) if "-m harness.runtime " in row)
    assert lines[experiment].endswith("2>&1 || status=$?")
    assert lines.index("status=0") < experiment < lines.index('exit "$status"')
    assert 'key="$HOME/.harness/${SLURMD_NODENAME}.key"' in lines
    assert lines[-1] == 'exit "$status"'


def test_a_key_path_is_the_nodes_own_in_the_script() -> None:
    assert script.node_key_in_shell("~/keys/{node}.key") == "$HOME/keys/${SLURMD_NODENAME}.key"
    assert script.node_key_in_shell("/etc/harness/node.key") == "/etc/harness/node.key"


def test_keys_nodes_needs_a_node_key(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--project", str(project), "keys", "nodes", "cluster"])
    assert result.exit_code == 2
    assert "names no node_key" in result.output and "node_key =" in result.output


# -- records without an image -------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "variant"),
    [
        ({"image": {"variant": "cuda"}, "device": "cuda"}, "cuda"),
        ({"image": None, "device": "cpu", "executor": "slurm"}, "cpu"),
        ({"image": None, "device": "cuda", "executor": "host"}, "cuda"),
    ],
)
def test_an_undeclared_experiment_is_read_from_any_record(
    record: dict[str, Any], variant: str
) -> None:
    experiment = collect.experiment_of({"experiment": "train", "entry": "m:f", **record})
    assert (experiment.name, experiment.variant) == ("train", variant)


# -- making the keys on the nodes -----------------------------------------------------------

# The fake job runs the key job's own script, as node n1 would (with the real openssl).
KEY_JOB = """#!/bin/sh
SLURMD_NODENAME=n1 sh ./job.sh
"""


def _keys_nodes(project: Path, *more: str) -> Any:
    return CliRunner().invoke(
        cli, ["--project", str(project), "keys", "nodes", "cluster", "--node", "n1", *more]
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_keys_nodes_keeps_the_public_key_the_node_made(
    fake: Path, project: Path, tmp_path: Path
) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'node_key = "{tmp_path}/disk/{{node}}.key"\n')
    answer(fake, line("COMPLETED", "n1"), job=KEY_JOB)
    made = _keys_nodes(project)
    assert made.exit_code == 0, made.output
    kept = keys.nodes_dir(project, "cluster") / "n1.pub"
    private = keys.load_private_key(tmp_path / "disk" / "n1.key")
    assert keys.key_id(keys.load_public_key(kept)) == keys.key_id(keys.public_of(private))
    assert "n1  new" in made.output
    # The key job's folder is gone.
    assert list((project / ".harness" / "slurm" / "keys").iterdir()) == []
    # Asked again, the node's key is the one kept.
    assert "n1  kept" in _keys_nodes(project).output
    # A node whose key was replaced is refused, unless told to keep the new one.
    (tmp_path / "disk" / "n1.key").unlink()
    replaced = _keys_nodes(project)
    assert replaced.exit_code == 2 and "its key was replaced" in replaced.output
    assert "n1  new" in _keys_nodes(project, "--force").output


def test_a_key_job_slurm_ran_on_another_node_gives_no_key(
    fake: Path, project: Path, tmp_path: Path
) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'node_key = "{tmp_path}/{{node}}.key"\n')
    answer(fake, line("COMPLETED", "n2"), job=KEY_JOB)
    made = _keys_nodes(project)
    assert made.exit_code == 2
    assert "ran on n2: its key is not node n1's" in made.output
    assert not keys.nodes_dir(project, "cluster").exists()


def test_a_key_that_signed_several_nodes_runs_says_they_count_as_one(tmp_path: Path) -> None:
    def signed(run_id: str, node: str, keyid: str) -> evidence.Run:
        record = {"executor": "slurm", "slurm": {"node": node}}
        return evidence.Run(run_id, tmp_path, record, attest.Signer(keyid), ("key", keyid), None)

    runs = [signed("a", "n1", "machine"), signed("b", "n2", "machine"), signed("c", "n3", "n3")]
    facts = [
        evidence.HostFacts(("key", "machine"), "n1", evidence.CONTROL, "cpu"),
        evidence.HostFacts(("key", "n3"), "n3", evidence.AGREED, "cpu"),
    ]
    evidence._name_shared_keys(facts, runs)
    assert facts[0].reason is not None and "nodes n1, n2" in facts[0].reason
    assert facts[1].reason is None
