"""Keys the nodes keep: made on each node by a short job, and the statements they sign.

A host with ``node_key`` has each node sign what it saw of a run, with a key that never
leaves the node (see :mod:`harness.runtime.node_statement`). `harness keys nodes HOST`
makes those keys: one short job pinned to each node (``--nodelist``) makes the key where
``node_key`` says, with ``openssl`` and readable by its owner alone, unless one is there,
and leaves only its public half in the job's folder. harness keeps that public key as
``nodes/HOST/NODE.pub`` in the keys folder, after checking that SLURM ran the job on that
node; a key that changed since it was kept is refused rather than trusted in its place.

When a job of such a host comes back, :func:`take_in` holds the node's statement against
what harness knows on its own (:mod:`harness.trust.node_attestation`) and against the
public key kept for that node, and keeps the statement beside the record.
"""

from __future__ import annotations

import shlex
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import atomic, untrusted
from harness.config import Config
from harness.errors import ConfigError, HarnessError
from harness.fleet.hosts import Host
from harness.fleet.slurm import scheduler, script
from harness.fleet.slurm.settings import SlurmSettings
from harness.runs import records
from harness.runtime import node_statement
from harness.trust import dsse, keys, node_attestation

# What a key job may take: making a key is instant, but the job may queue.
_KEY_JOB_S = 60
PUBLIC = "node.pub"
# How each key type is made on the node.
_GENERATE = {
    keys.ED25519: "openssl genpkey -algorithm ed25519",
    keys.ECDSA_P256: "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
    "-pkeyopt ec_param_enc:named_curve",
}


@dataclass(frozen=True)
class NodeKey:
    node: str
    path: Path
    keyid: str
    # Whether that public key was already kept here.
    kept: bool


def node_key_of(host: Host) -> tuple[SlurmSettings, str]:
    """The host's settings and its ``node_key``, or trouble saying how to set one."""
    if host.slurm is None:
        raise ConfigError(f"host {host.name} is not a SLURM host", 'declare it with kind = "slurm"')
    if host.slurm.node_key is None:
        raise ConfigError(
            f"the SLURM host {host.name} names no node_key, so its nodes keep no key",
            f'add node_key = "/etc/harness/{{node}}.key" (a path on the nodes) under '
            f"[tool.harness.hosts.{host.name}]",
        )
    return host.slurm, host.slurm.node_key


def key_script(host: Host, job: Path, node: str, key_type: str) -> str:
    """The batch script that makes (or finds) the node's key and leaves its public half."""
    settings, node_key = node_key_of(host)
    options = script.sbatch_options(
        settings,
        job_name="harness-node-key",
        job=job,
        gpus=False,
        timeout_s=_KEY_JOB_S,
        node=node,
    )
    lines = ["#!/bin/sh", *(script.sbatch_line(option) for option in options)]
    lines += [
        f"# harness keys nodes {host.name}: the key node {node} signs its runs with.",
        "set -eu",
        f"job={shlex.quote(str(job))}",
        f'key="{script.node_key_in_shell(node_key)}"',
        'if [ ! -e "$key" ]; then',
        f'    (umask 077 && mkdir -p "$(dirname "$key")" && {_GENERATE[key_type]} -out "$key")',
        "fi",
        "# A key others can read may already have been copied: it is not used.",
        'if [ -n "$(find "$key" -perm /077)" ]; then',
        '    echo "$key can be read or written by others; chmod 600 it and make a new one" >&2',
        "    exit 3",
        "fi",
        f'openssl pkey -in "$key" -pubout >"$job/{PUBLIC}"',
    ]
    return "\n".join(lines) + "\n"


def fetch(
    config: Config,
    host: Host,
    nodes: Sequence[str],
    *,
    key_type: str,
    force: bool,
    say: Callable[[str], None] = lambda _: None,
) -> list[NodeKey]:
    """Make each node's key on the node (all jobs at once) and keep its public half."""
    settings, node_key = node_key_of(host)
    chosen = list(nodes) or scheduler.nodes(settings.partition)
    if not chosen:
        raise scheduler.SchedulerError(
            f"no node of {host.name} takes jobs now", "check the cluster with `sinfo -N`"
        )
    strange = next((node for node in chosen if not keys.KEY_NAME.fullmatch(node)), None)
    if strange is not None:
        raise ConfigError(f"{strange!r} is not a node name", "name a node `sinfo -N` lists")
    staging = settings.folder(config.project_root) / "keys"
    submitted: list[tuple[str, Path, str]] = []
    folders: list[Path] = []
    try:
        for node in chosen:
            job = staging / f"{node}-{uuid.uuid4().hex[:12]}"
            job.mkdir(parents=True, mode=0o700)
            folders.append(job)
            atomic.write_text(job / script.SCRIPT, key_script(host, job, node, key_type))
            job_id = scheduler.submit(job / script.SCRIPT, cwd=job)
            where = node_key.replace("{node}", node)
            say(f"[{node}] SLURM job {job_id} makes its key at {where}")
            submitted.append((node, job, job_id))
        return [
            _keep(config, host, node, job, scheduler.wait(job_id), force=force)
            for node, job, job_id in submitted
        ]
    except BaseException:
        # Stopped (trouble, Ctrl-C): no key job is left to run on its own.
        for _, _, job_id in submitted:
            scheduler.cancel(job_id)
        raise
    finally:
        for job in folders:
            shutil.rmtree(job, ignore_errors=True)


def _keep(
    config: Config, host: Host, node: str, job: Path, info: scheduler.JobInfo, *, force: bool
) -> NodeKey:
    """The public key the job left, kept for ``node`` once SLURM says it ran there."""
    if info.state != "COMPLETED":
        said = _tail(job / script.JOB_LOG)
        raise HarnessError(
            f"the key job {info.job_id} for node {node} ended {info.state}{said}",
            "check that openssl is on the node and that node_key is a path it may write",
        )
    if info.node != node:
        raise HarnessError(
            f"the key job for node {node} ran on {info.node}: its key is not node {node}'s",
            "check the partition's nodes with `sinfo -N`",
        )
    data = untrusted.read_inside(job, PUBLIC, limit=keys.KEY_FILE_LIMIT, what="the node's key")
    public = keys.public_from_pem(data, f"the public key node {node} gave")
    keyid = keys.key_id(public)
    target = keys.nodes_dir(config.project_root, host.name) / f"{node}.pub"
    if target.is_file() and not target.is_symlink():
        kept = keys.key_id(keys.load_public_key(target))
        if kept == keyid:
            return NodeKey(node, target, keyid, kept=True)
        if not force:
            raise HarnessError(
                f"node {node} now signs with key {keyid[:16]}, not the {kept[:16]} kept in "
                f"{target}: its key was replaced",
                "find out why; pass --force to keep the new key instead",
            )
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic.write_bytes(target, keys.public_pem(public))
    return NodeKey(node, target, keyid, kept=False)


def _tail(log: Path) -> str:
    """The first line of what a job wrote on stderr (openssl's own say comes first), as
    ": ..." to add to a reason."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[0][:200]}" if lines else ""


# -- a job's statement, brought back --------------------------------------------------------


def take_in(
    job: Path,
    folder: Path,
    record: dict[str, Any],
    *,
    info: scheduler.JobInfo,
    exit_code: int,
    known: Mapping[str, keys.PublicKey],
) -> None:
    """Check the statement the node signed against the run harness brought back and the
    key kept for that node, and keep it beside the record (``slurm.node_key`` names the
    key that signed it; null when no key of that node is kept here, so only a certifier
    who trusts it can count it)."""
    node = str(info.node)
    what = f"node {node}'s statement"
    try:
        payload = untrusted.read_inside(
            job, node_statement.PAYLOAD, limit=node_attestation.PAYLOAD_LIMIT, what=what
        )
        signature = untrusted.read_inside(
            job,
            node_statement.SIGNATURE,
            limit=node_attestation.SIGNATURE_LIMIT,
            what=f"{what}'s signature",
        )
    except FileNotFoundError:
        payload = signature = b""
    # openssl leaves an empty signature when it could not sign (no key, say).
    if not payload or not signature:
        raise node_attestation.NodeStatementError(
            f"node {node} signed no statement of what it saw, though the host names a "
            f"node_key{_tail(folder / script.JOB_LOG)}",
            f"read {script.JOB_LOG} in the run's folder: the node needs openssl and its key "
            "(`harness keys nodes HOST` makes it)",
        )
    mine = known.get(node)
    document = node_attestation.envelope(
        payload, signature, keys.key_id(mine) if mine is not None else ""
    )
    environment = record.get("python_environment") or {}
    node_attestation.check(
        node_attestation.payload_of(document),
        node_attestation.Expected(
            node=node,
            job_id=info.job_id,
            run_id=str(record["run_id"]),
            environment_digest=str(environment.get("digest")),
            exit_code=exit_code,
            artifacts=tuple(
                (str(a["path"]), str(a["sha256"]))
                for a in records.artifacts(folder / records.ARTIFACTS)
            ),
        ),
    )
    signer = _signer(document, known)
    if signer is not None and signer != node:
        raise node_attestation.NodeStatementError(
            f"{what} is signed with the key of node {signer}, not its own"
        )
    if signer is None and mine is not None:
        raise node_attestation.NodeStatementError(
            f"{what} is not signed by node {node}'s key {keys.key_id(mine)[:16]}"
        )
    node_attestation.write(folder, document)
    record["slurm"]["node_key"] = keys.key_id(mine) if mine is not None else None


def _signer(document: Mapping[str, Any], known: Mapping[str, keys.PublicKey]) -> str | None:
    """The node whose kept key signed the statement, if any."""
    for name, public in known.items():
        try:
            dsse.open_envelope(document, [public], 1)
        except dsse.EnvelopeError:
            continue
        return name
    return None
