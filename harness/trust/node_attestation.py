"""A cluster node's signed statement of a run, checked before it counts for anything.

A SLURM job's record is written by the machine that submitted it, so that machine's
signature proves only that it submitted the job. A host with ``node_key`` has each node
sign, with a key it keeps itself, what it saw of the run (see
:mod:`harness.runtime.node_statement`): its node name, the job id, the run id, the
environment's digest, the exit status and every output's sha256. That statement is
untrusted until checked, here, against what the submitting machine knows on its own:
the node SLURM says ran the job (``BatchHost``), the job id ``sbatch`` answered, the run
id harness chose, the environment the job described, and the bytes harness brought back
and hashed. A node that signs other bytes than it returned, another node's name, or a
statement from another job is refused.

Once checked, the statement is kept beside the run's record (``node.intoto.json``, a DSSE
envelope); `harness certify` counts the run under the node's key when it trusts that key,
and puts the envelope into the certificate, so that whoever verifies the certificate can
count distinct node keys with keys of their own choosing. `harness collect` carries the
statement with a run gathered from elsewhere once it passes the same checks against the
run's record (:func:`travels`), whoever signed it: trust is decided where hosts are
counted (:func:`vouched_by`), by collect and certify alike.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import atomic, untrusted
from harness.errors import HarnessError
from harness.runtime import node_statement
from harness.trust import canonical, dsse, keys

# Beside the run's record.
FILE = "node.intoto.json"
PREDICATE_TYPE = node_statement.PREDICATE_TYPE
# A statement names every output file: thousands of them at most.
PAYLOAD_LIMIT = 16 << 20
ENVELOPE_LIMIT = 32 << 20
# An ed25519 signature is 64 bytes, a DER ECDSA P-256 one at most 72.
SIGNATURE_LIMIT = 1024
# What a DSSE key id harness writes looks like: a sha256 in hex.
_KEY_ID = re.compile(r"[0-9a-f]{64}")


class NodeStatementError(HarnessError):
    """A node's statement that does not vouch for the run it came back with."""

    default_hint = "do not count this run; check the node and its key, then run it again"


@dataclass(frozen=True)
class Expected:
    """What the submitting machine knows of a run on its own, to hold a statement against."""

    node: str
    job_id: str
    run_id: str
    environment_digest: str
    exit_code: int | None
    # (path under the outputs, sha256) of every file harness brought back.
    artifacts: tuple[tuple[str, str], ...]

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> Expected:
        """What a finished SLURM run's record says (for certify, which checks again)."""
        slurm = record.get("slurm") if isinstance(record.get("slurm"), Mapping) else {}
        environment = record.get("python_environment")
        return cls(
            node=str((slurm or {}).get("node")),
            job_id=str((slurm or {}).get("job_id")),
            run_id=str(record.get("run_id")),
            environment_digest=str((environment or {}).get("digest"))
            if isinstance(environment, Mapping)
            else "",
            exit_code=record.get("exit_code"),
            artifacts=tuple(
                sorted((str(a["path"]), str(a["sha256"])) for a in record.get("artifacts") or ())
            ),
        )


def envelope(payload: bytes, signature: bytes, keyid: str = "") -> dict[str, Any]:
    """The DSSE envelope of a node's statement and the signature openssl made on the node."""
    return {
        "payloadType": dsse.PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }


def check(stated: object, expected: Expected) -> None:
    """Refuse a statement that says anything else than what harness knows of the run."""
    what = f"node {expected.node}'s statement of run {expected.run_id}"
    if not isinstance(stated, dict) or stated.get("predicateType") != PREDICATE_TYPE:
        raise NodeStatementError(f"{what} is not a harness node statement")
    predicate = stated.get("predicate")
    if not isinstance(predicate, dict):
        raise NodeStatementError(f"{what} has no predicate")
    for field, known, meaning in (
        ("node", expected.node, "SLURM ran the job on"),
        ("job_id", expected.job_id, "SLURM gave the job"),
        ("run_id", expected.run_id, "harness gave the run"),
        ("python_environment", expected.environment_digest, "the job described"),
        ("exit_code", expected.exit_code, "the job ended with"),
    ):
        said = predicate.get(field)
        if said != known:
            raise NodeStatementError(
                f"{what} names {field} {str(said)[:80]!r}, not the {known!r} {meaning} "
                "(a statement of another job, node or environment)"
            )
    subjects = stated.get("subject")
    wanted = [
        {
            "name": "python-environment",
            "digest": {"sha256": expected.environment_digest.removeprefix("sha256:")},
        },
        *(
            {"name": f"artifacts/{path}", "digest": {"sha256": digest}}
            for path, digest in expected.artifacts
        ),
    ]
    if subjects != wanted:
        raise NodeStatementError(
            f"{what} names other output bytes than the files harness brought back: "
            f"{_first_difference(subjects, wanted)}"
        )


def _first_difference(subjects: object, wanted: list[dict[str, Any]]) -> str:
    said = {
        str(s.get("name")): (s.get("digest") or {}).get("sha256")
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    }
    known = {str(s["name"]): s["digest"]["sha256"] for s in wanted}
    for name in sorted(set(said) | set(known)):
        if said.get(name) != known.get(name):
            if name not in known:
                return f"it names {name}, which did not come back"
            if name not in said:
                return f"it does not name {name}"
            return f"{name} has sha256 {str(said[name])[:12]}... there, {known[name][:12]}... here"
    return "they are listed differently"


def opened(document: Mapping[str, Any], trusted: Sequence[keys.PublicKey]) -> tuple[str, object]:
    """The key id of the trusted key that signed the envelope, and its statement; an
    :class:`dsse.EnvelopeError` when none did."""
    done = dsse.open_envelope(document, trusted, 1)
    return done.signers[0], canonical.loads(done.payload, what="a node's statement")


def payload_of(document: Mapping[str, Any]) -> object:
    """The statement an envelope carries, not yet vouched for by any key."""
    _, payload, _ = dsse.parts(document)
    return canonical.loads(payload, what="a node's statement")


def write(folder: Path, document: Mapping[str, Any]) -> None:
    atomic.write_text(folder / FILE, json.dumps(document, indent=2, sort_keys=True) + "\n")


def vouching(
    folder: Path, record: Mapping[str, Any], trusted: Sequence[keys.PublicKey]
) -> tuple[str, dict[str, Any]] | None:
    """The trusted node key that vouches for a SLURM run, and its envelope; None when the
    run has no node statement or no key trusted here signed it (it then counts as
    whoever signed its record). A statement a trusted key signed that does not match the
    run is a :class:`NodeStatementError`: the run or the statement was changed."""
    if record.get("executor") != "slurm" or not os.path.lexists(folder / FILE):
        return None
    document = read(folder, record)
    keyid = vouched_by(document, record, trusted)
    return None if keyid is None else (keyid, document)


def read(folder: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope beside a run's record, read as untrusted input (bounded, a regular
    file, never through a link, one JSON object); not yet opened nor checked."""
    what = f"the node statement of run {record.get('run_id')}"
    try:
        return dsse.read_file(folder / FILE, limit=ENVELOPE_LIMIT, what=what)
    except untrusted.UntrustedInputError as error:
        raise NodeStatementError(error.message) from None


def vouched_by(
    document: Mapping[str, Any], record: Mapping[str, Any], trusted: Sequence[keys.PublicKey]
) -> str | None:
    """The trusted key that signed the envelope, once what it states matches the run's
    record; None when no key trusted here signed it. This is the one place a node's
    statement makes a key the run's host: certify and collect both ask it."""
    try:
        keyid, stated = opened(document, trusted)
    except dsse.EnvelopeError:
        return None
    except untrusted.UntrustedInputError as error:
        raise NodeStatementError(error.message) from None
    check(stated, Expected.of_record(record))
    return keyid


def travels(folder: Path, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The node statement in a run folder from elsewhere, fit to travel with the run:
    read as untrusted input, a DSSE envelope with at least one signature, a harness node
    statement, and of this very run (node, job, run id, environment, exit status and
    every artifact as its record names them). None when the folder holds none; a
    :class:`NodeStatementError` saying why when it may not travel.

    Whose key signed it is not asked here: a statement signed by a key not trusted here
    travels all the same, and whoever counts hosts decides with keys of their own
    (:func:`vouched_by`)."""
    if not os.path.lexists(folder / FILE):
        return None
    run_id = record.get("run_id")
    if record.get("executor") != "slurm":
        raise NodeStatementError(
            f"run {run_id} ran on no SLURM node (executor {str(record.get('executor'))[:40]}), "
            "so no node's statement can vouch for it"
        )
    document = read(folder, record)
    try:
        stated = payload_of(document)
        signatures = dsse.parts(document)[2]
    except (dsse.EnvelopeError, untrusted.UntrustedInputError) as error:
        raise NodeStatementError(
            f"the node statement of run {run_id} is no DSSE envelope of a statement: "
            f"{error.message}"
        ) from None
    if not signatures:
        raise NodeStatementError(f"the node statement of run {run_id} carries no signature")
    check(stated, Expected.of_record(record))
    return document


def named_key(document: Mapping[str, Any]) -> str | None:
    """The key id the envelope's first signature gives: whose key it says signed it, a
    hint that proves nothing until a trusted key verifies the signature."""
    signatures = document.get("signatures")
    first = signatures[0] if isinstance(signatures, list) and signatures else None
    keyid = first.get("keyid") if isinstance(first, dict) else None
    # Shown to the user: only what a key id can look like, never whatever the file says.
    return keyid if isinstance(keyid, str) and _KEY_ID.fullmatch(keyid) else None


def counts_for(stated: Mapping[str, Any], certified_runs: set[str]) -> bool:
    """Whether a node statement inside a certificate vouches for one of its runs that
    ended well (the certificate checks its subjects against the pinned environment)."""
    predicate = stated.get("predicate")
    return (
        stated.get("predicateType") == PREDICATE_TYPE
        and isinstance(predicate, dict)
        and predicate.get("run_id") in certified_runs
        and predicate.get("exit_code") == 0
    )
