"""What a cluster node saw of one run, written on the node for the node's own key to sign.

A run's record is written by the machine that submitted the job, so a signature there
vouches only for that machine. When a SLURM host names a ``node_key``, the batch script,
once the experiment has exited, runs ``python -m harness.runtime.node_statement JOB
STATUS``: it writes an in-toto Statement of what this node itself saw (its name and job id
as SLURM set them, the run id, the digest of the Python environment it ran in, the exit
status, and the sha256 of every output file as hashed here) and the bytes DSSE signs (its
pre-authentication encoding), which ``openssl`` then signs with the node's key. The
submitting machine checks that statement against the files it brought back and the job
SLURM says ran (:mod:`harness.trust.node_attestation`).

Standard library only, like the rest of the runtime: the node's environment is the
project's, which may hold no cryptography.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

from harness.runtime import environment

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://harness.dev/slurm-node-run/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# The files the job leaves for the submitting machine, beside the run's other files.
PAYLOAD = "node-statement.json"
PAE = "node-statement.pae"
SIGNATURE = "node-statement.sig"
# Far more nested output folders than any run makes.
_DEPTH = 32


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: the bytes the node's key signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def canonical(document: object) -> bytes:
    """The one form harness signs JSON in: keys sorted, no spaces, ASCII, no NaN."""
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def statement(
    *, node: str, job_id: str, run_id: str, environment_digest: str, exit_code: int, outputs: Path
) -> dict[str, object]:
    """The statement: the environment and every output file as subjects, the rest as
    predicate."""
    subjects: list[dict[str, object]] = [
        {
            "name": "python-environment",
            "digest": {"sha256": environment_digest.removeprefix("sha256:")},
        }
    ]
    subjects += [
        {"name": f"artifacts/{path}", "digest": {"sha256": digest}}
        for path, digest in output_digests(outputs)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "node": node,
            "job_id": job_id,
            "run_id": run_id,
            "python_environment": environment_digest,
            "exit_code": exit_code,
        },
    }


def output_digests(outputs: Path) -> list[tuple[str, str]]:
    """Every regular file under ``outputs`` (relative path, sha256), sorted; links and
    special files are left out (the submitting machine refuses them anyway), so a link
    never makes the node hash a file of its own."""
    found: list[tuple[str, str]] = []
    if not outputs.is_dir() or outputs.is_symlink():
        return found
    for folder, folders, files in os.walk(outputs, followlinks=False):
        depth = len(Path(folder).relative_to(outputs).parts)
        if depth >= _DEPTH:
            folders.clear()
        for name in files:
            path = Path(folder) / name
            digest = _sha256(path)
            if digest is not None:
                found.append((path.relative_to(outputs).as_posix(), digest))
    return sorted(found)


def _sha256(path: Path) -> str | None:
    """The file's sha256, read without following a link; None for anything not a regular
    file."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(handle, "rb") as reading:
        if not stat.S_ISREG(os.fstat(reading.fileno()).st_mode):
            return None
        hashed = hashlib.sha256()
        for block in iter(lambda: reading.read(1 << 20), b""):
            hashed.update(block)
    return hashed.hexdigest()


def write(job: Path, exit_code: int) -> None:
    """Write the statement and its encoding into the job's folder (each renamed into
    place, so a link left there is replaced, never written through)."""
    spec = json.loads((job / "spec.json").read_text(encoding="utf-8"))
    node = os.environ.get("SLURMD_NODENAME", "")
    job_id = os.environ.get("SLURM_JOB_ID", "")
    if not node or not job_id:
        raise SystemExit("node_statement: SLURMD_NODENAME and SLURM_JOB_ID must be set (a job)")
    described = environment.describe()
    payload = canonical(
        statement(
            node=node,
            job_id=job_id,
            run_id=str(spec["run_id"]),
            environment_digest=str(described["digest"]),
            exit_code=exit_code,
            outputs=Path(str(spec["output"])),
        )
    )
    # Only openssl writes the signature, after this: none from before may stand for it.
    (job / SIGNATURE).unlink(missing_ok=True)
    for name, data in ((PAYLOAD, payload), (PAE, pae(PAYLOAD_TYPE, payload))):
        temporary = job / f".{name}.partial"
        temporary.unlink(missing_ok=True)
        temporary.write_bytes(data)
        temporary.replace(job / name)


if __name__ == "__main__":
    write(Path(sys.argv[1]), int(sys.argv[2]))
