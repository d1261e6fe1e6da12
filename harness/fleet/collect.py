"""`harness collect`: gather run records made elsewhere and judge the hosts against each other.

CI legs, remote machines and Kubernetes Jobs each leave run folders (``record.json``,
``artifacts/``, ``log.txt``, ``meta/``, and the host's signed ``attestation.intoto.json``)
or, for Jobs, what the runtime wrote (see
:func:`harness.fleet.k8s.job_output.record_from_job_output`). Every upload is hostile until
checked: each must be signed by a host key this machine trusts (see
:mod:`harness.trust.attest`; unsigned ones count only when the user allows them), stay
under a size cap (a sparse file counts at its full size), hold a readable record whose
artifacts have the bytes it names, and, when it says it succeeded, every output its
experiment declares. Only then is anything copied into ``.harness/runs/``, atomically.

A SLURM run may bring its node's signed statement of what the node saw
(``node.intoto.json``, see :mod:`harness.trust.node_attestation`). It travels with the run
once it is a bounded regular file, no link, a DSSE envelope of a node statement of this
very run, whoever signed it; one that is not is left behind, said in one line, and the
run still comes in on its own checks, counted as whoever signed its record.

Hosts are counted as `harness certify` counts them, never by the names records give
themselves: a run whose node statement a trusted node key signed counts under that key
(the node is its host); any other under the key that signed its record. Runs signed by
one key are one host whatever they call themselves, and two keys are two hosts even under
one name. Every host's runs are then compared with the control host's, as `harness verify
--hosts` does, and the result is saved as a verification, from whose runs `harness certify`
rebuilds and checks every claim.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.compare.names import printable
from harness.compare.tree import compare_paths
from harness.config import Config, Experiment
from harness.digests import sha256_file
from harness.errors import ConfigError, HarnessError
from harness.fleet import crosshost
from harness.fleet.hosts import Host
from harness.fleet.k8s import job_output
from harness.images.build import BuildResult
from harness.runs import records
from harness.runs.host_executor import PythonEnvironment
from harness.runs.run import RunResult
from harness.runs.verify import Check, ExperimentVerification, Verification, nothing_to_compare
from harness.trust import attest, keys, node_attestation

# What one run folder may bring in, all files together, at their full size: far above
# any model an experiment here writes, far below a disk filled by one upload.
DEFAULT_MAX_BYTES = 8 << 30
# A refusal read from hostile files is shown in one line of at most this many characters.
_SHOWN_REFUSAL = 300


@dataclass(frozen=True)
class Policy:
    """What the collecting machine accepts: the host keys it trusts, whether unsigned runs
    may count, and how large one run folder may be."""

    trusted: tuple[keys.PublicKey, ...] = ()
    allow_unsigned: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    # Public keys SLURM nodes made and keep (`harness keys nodes`): like ``trusted``, they
    # make a node that signed its statement of a run that run's host, as certify counts.
    node_keys: tuple[keys.PublicKey, ...] = ()


@dataclass(frozen=True)
class NodeStatement:
    """The node statement beside a run from elsewhere: carried with it, or left behind."""

    # The node the run's record names.
    node: str
    # The envelope that travels with the run; None when it was left behind.
    document: Mapping[str, Any] | None = field(default=None, repr=False)
    # The trusted key that signed it: the run's host.
    keyid: str | None = None
    # The key id its signature gives, which proves nothing until a trusted key verifies it.
    named_key: str | None = None
    # Why it was left behind.
    refused: str | None = None

    @property
    def carried(self) -> bool:
        return self.document is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "carried": self.carried,
            "key": self.keyid or self.named_key,
            "trusted": self.keyid is not None,
            "refused": self.refused,
        }


@dataclass(frozen=True)
class Collected:
    run: RunResult
    # "copied", or "present" when the same record was already here.
    how: str
    # The trusted key that signed the run, or unsigned (counted only when allowed).
    signer: attest.Signer = attest.UNSIGNED
    node: NodeStatement | None = None

    @property
    def host(self) -> attest.Signer:
        """The key the run counts under: the trusted node key that signed its node's
        statement, else the key that signed its record (certify counts it the same way)."""
        if self.node is not None and self.node.keyid is not None:
            return attest.Signer(self.node.keyid)
        return self.signer

    def note(self) -> str | None:
        """One line when the run's node statement was left behind, saying how it counts."""
        if self.node is None or self.node.refused is None:
            return None
        counted = (
            f"the key that signed its record ({self.signer.keyid[:16]})"
            if self.signer.keyid is not None
            else "an unsigned host, by the name its record gives"
        )
        return (
            f"{self.node.refused}; left behind: run {self.run.run_id} counts as {counted}, "
            f"not as node {self.node.node}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "how": self.how,
            "signer": self.signer.keyid,
            "host_key": self.host.keyid,
            "node_statement": None if self.node is None else self.node.as_dict(),
        }


@dataclass(frozen=True)
class _Found:
    """A run folder from elsewhere, checked: its record and the files that will be copied."""

    folder: Path
    record: dict[str, Any]
    # Relative POSIX path -> sha256, for every file that is copied in.
    files: Mapping[str, str]
    signer: attest.Signer = attest.UNSIGNED
    node: NodeStatement | None = None

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    @property
    def fingerprint(self) -> str:
        """What makes two copies of a run the same run: the record, every file's bytes and
        the node statement that travels with it."""
        statement = None if self.node is None else self.node.document
        document = {"record": self.record, "files": dict(self.files), "node": statement}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


# What a run folder holds that is copied in; anything else beside it is left where it is.
_COPIED = (records.LOG, "spec.json", records.ARTIFACTS, records.META, attest.ATTESTATION)
# Folders searched for runs below each folder given (CI downloads nest two or three deep).
_SEARCH_DEPTH = 8
# Files of one run folder: far more than any experiment writes, far fewer than an attack.
_MAX_FILES = 100_000


def collect(
    config: Config, sources: Sequence[Path], policy: Policy | None = None
) -> list[Collected]:
    """Check every run found under ``sources``, then copy them into the project's runs folder.

    Everything is checked before anything is copied: a bad run anywhere refuses the whole
    collection and leaves ``.harness/runs/`` as it was.
    """
    policy = policy or Policy()
    project_root = config.project_root
    by_id: dict[str, _Found] = {}
    for source in sources:
        if not source.is_dir():
            raise HarnessError(f"{source} is not a folder", "give folders that hold run records")
        for folder in _run_folders(source):
            found = _checked(folder, policy)
            _check_outputs(config, found)
            first = by_id.get(found.run_id)
            if first is None:
                by_id[found.run_id] = found
            elif first.fingerprint != found.fingerprint:
                raise HarnessError(
                    f"run {found.run_id} was collected twice with different contents "
                    f"(in {first.folder} and {folder})",
                    "two legs claim one run id: collect only the copy you trust",
                )
    if not by_id:
        raise HarnessError(
            f"no run record under {', '.join(str(s) for s in sources)}",
            "give the folders CI jobs uploaded (each run is a folder with record.json)",
        )
    root = records.runs_root(project_root)
    present = {
        run_id: _statement_here(root, found, policy)
        for run_id, found in by_id.items()
        if _already_here(root, found)
    }
    return [
        _present(root, found, present[run_id]) if run_id in present else _copy_in(root, found)
        for run_id, found in by_id.items()
    ]


def _run_folders(source: Path) -> Iterator[Path]:
    """Run folders and Job outputs under ``source``, in a stable order, without descending
    into one once found, nor following links, nor going deeper than a download nests."""
    top = len(source.parts)
    for current, folders, _files in os.walk(source):
        here = Path(current)
        if (here / records.RECORD).is_file() or (here / records.META / "spec.json").is_file():
            folders.clear()
            yield here
            continue
        if len(here.parts) - top >= _SEARCH_DEPTH:
            folders.clear()
        folders.sort()


def _checked(folder: Path, policy: Policy) -> _Found:
    """The run in ``folder`` with every file it will bring in checked.

    Its record must be well formed (a run id that is a plain folder name, an image, artifact
    paths inside ``artifacts/``); the folder may hold only plain files and folders, no
    links, within the size cap; ``artifacts/`` must hold exactly the files the record
    lists, each with the size and sha256 the record names; and a trusted host key must
    have signed it, unless unsigned runs are allowed.
    """
    record = _record_of(folder)
    records.check_foreign(record, folder)
    signer = _signer(folder, record, policy)
    node = _node_statement(folder, record, policy)
    _refuse_unsigned(folder, record, signer, node, policy)
    entries_of: list[Path] = []
    for name in _COPIED:
        path = folder / name
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            entries = records.regular_files(path, what=f"{name}/ file")
        elif stat.S_ISREG(mode):
            entries = [path]
        else:
            raise records.CorruptRecord(
                f"{path} is not a regular file or folder (a link, device or pipe)",
                "download the run's records again; do not certify from these",
            )
        entries_of.extend(entries)
        if len(entries_of) > _MAX_FILES:
            raise records.CorruptRecord(f"{folder} holds more than {_MAX_FILES} files")
    # Sizes first, from each file's status: st_size is what a copy writes out, however few
    # blocks a sparse file takes here; nothing is hashed past the cap.
    total = sum(entry.lstat().st_size for entry in entries_of)
    if total > policy.max_bytes:
        raise records.CorruptRecord(
            f"run {record['run_id']} in {folder} holds {total} bytes, more than the "
            f"{policy.max_bytes} a run may bring in",
            "raise the cap with --max-size if this run is yours, or leave it out",
        )
    files = {entry.relative_to(folder).as_posix(): sha256_file(entry) for entry in entries_of}
    _check_artifacts(folder, record, files)
    return _Found(folder, record, files, signer, node)


def _signer(folder: Path, record: Mapping[str, Any], policy: Policy) -> attest.Signer:
    """The trusted key that signed the run's record, or unsigned."""
    try:
        return attest.verify(folder, record, policy.trusted)
    except attest.AttestationError as error:
        raise attest.AttestationError(
            f"run {record['run_id']} in {folder}: {error.message}", error.hint
        ) from None


def _node_statement(
    folder: Path, record: Mapping[str, Any], policy: Policy
) -> NodeStatement | None:
    """The run's node statement, checked as the hostile input it is: carried when it is a
    statement of this run (whoever signed it), left behind with the reason when not.

    The envelope read once is what is checked and what is written into the copy, so no
    other bytes can take its place in between. It is bounded on its own (see
    :data:`node_attestation.ENVELOPE_LIMIT`), apart from the run's size cap.
    """
    slurm = record.get("slurm")
    node = printable(str(slurm.get("node") if isinstance(slurm, Mapping) else None)[:64])
    try:
        document = node_attestation.travels(folder, record)
        if document is None:
            return None
        keyid = node_attestation.vouched_by(document, record, (*policy.trusted, *policy.node_keys))
    except node_attestation.NodeStatementError as error:
        return NodeStatement(node, refused=printable(error.message)[:_SHOWN_REFUSAL])
    return NodeStatement(node, document, keyid, node_attestation.named_key(document))


def _refuse_unsigned(
    folder: Path,
    record: Mapping[str, Any],
    signer: attest.Signer,
    node: NodeStatement | None,
    policy: Policy,
) -> None:
    """A run no trusted key vouches for (neither its record's signer nor its node's)
    comes in only when unsigned runs are allowed."""
    vouched = node is not None and node.keyid is not None
    if signer.unsigned and not vouched and not policy.allow_unsigned:
        left = (
            f" (its node statement was left behind: {node.refused})"
            if node is not None and node.refused is not None
            else " (no node key trusted here signed its node statement)"
            if node is not None
            else ""
        )
        raise attest.AttestationError(
            f"run {record['run_id']} in {folder} is not signed by any host key, so nothing "
            f"vouches for where it ran{left}",
            "sign runs on each host (`harness run --sign-key KEY` or $HARNESS_HOST_KEY), or "
            "pass --allow-unsigned to count them anyway (the certificate will say so)",
        )


def _check_outputs(config: Config, found: _Found) -> None:
    """A run that says it succeeded must hold every output its experiment declares."""
    record = found.record
    experiment = config.experiments.get(str(record["experiment"]))
    if experiment is None or record["status"] != "succeeded":
        return
    # The artifacts folder holds exactly the files the record lists, none of them a link
    # (checked before): the declared globs are matched there as `harness run` matches them.
    artifacts = found.folder / records.ARTIFACTS
    for pattern in experiment.outputs:
        try:
            present = artifacts.is_dir() and any(artifacts.glob(pattern))
        except (ValueError, NotImplementedError):
            raise ConfigError(
                f"output {pattern!r} of experiment {experiment.name} is not a relative glob",
                f"fix outputs under [tool.harness.experiments.{experiment.name}]",
            ) from None
        if not present:
            raise records.CorruptRecord(
                f"run {record['run_id']} in {found.folder} says it succeeded but holds no "
                f"output matching {pattern!r}, which experiment {experiment.name} declares",
                "collect the leg's whole run folder, or rerun the experiment there",
            )


def run_folders_under(sources: Sequence[Path]) -> list[Path]:
    """Every run folder (or Job output) under ``sources``, found as collect finds them."""
    found: list[Path] = []
    for source in sources:
        if not source.is_dir():
            raise HarnessError(f"{source} is not a folder", "give folders that hold run records")
        found.extend(_run_folders(source))
    return found


def record_of(folder: Path) -> dict[str, Any]:
    """The run's record: its record.json, or one made from what a Job's runtime wrote."""
    return _record_of(folder)


def _record_of(folder: Path) -> dict[str, Any]:
    if (folder / records.RECORD).is_file():
        return records.read(folder)
    return job_output.record_from_job_output(folder)


def _check_artifacts(folder: Path, record: Mapping[str, Any], files: Mapping[str, str]) -> None:
    """The artifacts folder must hold exactly what the record lists, byte for byte."""
    prefix = f"{records.ARTIFACTS}/"
    present = {name.removeprefix(prefix): digest for name, digest in files.items()
               if name.startswith(prefix)}  # fmt: skip
    listed = {str(a["path"]): a for a in record["artifacts"]}

    def corrupt(what: str) -> records.CorruptRecord:
        return records.CorruptRecord(
            f"run {record['run_id']} in {folder}: {what}",
            "download the run's records again; do not certify from these",
        )

    for path, artifact in listed.items():
        if path not in present or present[path] != artifact["sha256"]:
            raise corrupt(
                f"artifact {path} is missing or does not have the sha256 its record names"
            )
        size = (folder / records.ARTIFACTS / path).stat().st_size
        if size != artifact["size"]:
            raise corrupt(f"artifact {path} has {size} bytes, its record says {artifact['size']}")
    extra = sorted(set(present) - set(listed))
    if extra:
        raise corrupt(f"artifact {extra[0]} is not listed in its record")


def _already_here(root: Path, found: _Found) -> bool:
    """Whether the run is already collected; a different record under its id is refused."""
    target = root / found.run_id
    if not os.path.lexists(target):
        return False
    try:
        same = records.read(target) == found.record
    except HarnessError:
        same = False
    if not same:
        raise HarnessError(
            f"run {found.run_id} is already in {records.RUNS} with another record",
            "the two copies disagree: remove the one you do not trust",
        )
    return True


def _copy_in(root: Path, found: _Found) -> Collected:
    target = root / found.run_id
    root.mkdir(parents=True, exist_ok=True)
    # Copied beside its final place, then renamed: a crash leaves no half run behind.
    partial = root / f".{target.name}.partial-{secrets.token_hex(3)}"
    try:
        partial.mkdir()
        for name, digest in found.files.items():
            _copy_file(found.folder / name, partial / name, digest)
        if found.node is not None and found.node.document is not None:
            node_attestation.write(partial, found.node.document)
        records.write(partial, found.record)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    run = RunResult(target.name, target, dict(found.record))
    return Collected(run, "copied", found.signer, found.node)


def _statement_here(root: Path, found: _Found, policy: Policy) -> NodeStatement | None:
    """The node statement that counts for a run already collected: the one already there
    (certify reads it), else the one that came now; refused when the two differ, or when
    the one there no longer matches its run."""
    target = root / found.run_id
    if not os.path.lexists(target / node_attestation.FILE):
        return found.node
    here = _node_statement(target, found.record, policy)
    if here is not None and here.refused is not None:
        raise HarnessError(
            f"run {found.run_id} in {records.RUNS} holds a node statement that does not "
            f"vouch for it: {here.refused}",
            f"remove {records.RUNS}/{found.run_id} and collect the run again",
        )
    if here is None or (found.node is not None and found.node.carried and here != found.node):
        raise HarnessError(
            f"run {found.run_id} is already in {records.RUNS} with another node statement",
            "the two copies disagree: remove the one you do not trust",
        )
    return here


def _present(root: Path, found: _Found, node: NodeStatement | None) -> Collected:
    """A run already collected, with the node statement that came now when it had none."""
    target = root / found.run_id
    statement = None if node is None else node.document
    if statement is not None and not os.path.lexists(target / node_attestation.FILE):
        node_attestation.write(target, statement)
    return Collected(RunResult(found.run_id, target, found.record), "present", found.signer, node)


def _copy_file(source: Path, target: Path, digest: str) -> None:
    """Copy one checked file, never through a link, and insist it still has its bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    handle = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(handle, "rb") as reading, target.open("xb") as writing:
        for block in iter(lambda: reading.read(1 << 20), b""):
            hasher.update(block)
            writing.write(block)
    if hasher.hexdigest() != digest:
        raise records.CorruptRecord(
            f"{source} changed while it was being collected",
            "collect again once nothing writes to the downloaded folders",
        )


# -- judging ---------------------------------------------------------------------------


def host_of(record: Mapping[str, Any]) -> str:
    """The host a run ran on: its name, or for old records the engine's address."""
    name = record.get("host")
    if isinstance(name, str) and name:
        return name
    return str((record.get("engine") or {}).get("where") or "unknown")


def verification(
    config: Config,
    runs: Sequence[RunResult],
    *,
    control: str | None = None,
    signers: Mapping[str, attest.Signer] | None = None,
) -> Verification:
    """Compare every host's runs with the control host's (default: the first run's host).

    A host is the key its runs count under (``signers``: run id -> that key, see
    :attr:`Collected.host`: a trusted node key before the key that signed the record);
    unsigned runs, where allowed, are grouped by the name their records give.
    """
    signers = signers or {}
    grouped_hosts: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        grouped_hosts.setdefault(_identity(run, signers), []).append(run)
    names = _host_names(grouped_hosts)
    by_host = {names[identity]: group for identity, group in grouped_hosts.items()}
    signer_of = {names[identity]: identity for identity in grouped_hosts}
    control_name = (
        _control_name(control, names, grouped_hosts) or names[_identity(runs[0], signers)]
    )
    if control_name not in by_host:
        raise ConfigError(
            f"no collected run comes from host {control_name!r}",
            f"choose one of: {', '.join(by_host)}",
        )
    control_runs = by_host.pop(control_name)
    first = control_runs[0].record
    pinned_by = records.isolation(first)
    mixed = next((r for r in control_runs if records.isolation(r.record) != pinned_by), None)
    if mixed is not None:
        raise ConfigError(
            f"the control host {control_name}'s runs were pinned by different things "
            f"({_pinned_text(pinned_by)} and {_pinned_text(records.isolation(mixed.record))})",
            "collect the runs of one image (or one host environment) at a time",
        )
    image: BuildResult | None = None
    environment: PythonEnvironment | None = None
    if pinned_by[0] == "image":
        image = BuildResult(
            str(first["image"]["reference"]),
            pinned_by[1],
            str(first["image"]["variant"]),
            True,
            0.0,
            0,
            {},
        )
    else:
        described = first.get("python_environment") or {}
        environment = PythonEnvironment(Path(str(described.get("executable"))), described)
    experiments: list[ExperimentVerification] = []
    references: dict[str, RunResult] = {}
    grouped: dict[str, list[RunResult]] = {}
    for run in control_runs:
        grouped.setdefault(str(run.record["experiment"]), []).append(run)
    for name, group in grouped.items():
        result = _control_verification(config, name, group)
        experiments.append(result)
        if result.reproducible and result.controls:
            references[name] = result.controls[0]
    outcomes = [
        crosshost.control_outcome(
            _host(control_name, first), {name: list(group) for name, group in grouped.items()}
        )
    ]
    for name, host_runs in by_host.items():
        outcomes.append(_judge_host(config, name, host_runs, references, pinned_by))
    for outcome in outcomes:
        kind, value = signer_of[outcome.host.name]
        outcome.signer = value if kind == "key" else "unsigned"
    return Verification(
        id=f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        image=image,
        environment=environment,
        variations=[],
        control_runs=max(len(group) for group in grouped.values()),
        experiments=experiments,
        seed=int(first["seed"]),
        profile=str(first["profile"]),
        threads=int(first["threads"]),
        hosts=outcomes,
    )


def _control_verification(
    config: Config, name: str, group: Sequence[RunResult]
) -> ExperimentVerification:
    experiment = config.experiments.get(name) or experiment_of(group[0].record)
    outcome = ExperimentVerification(experiment)
    succeeded = [run for run in group if run.status == "succeeded"]
    if len(succeeded) < len(group):
        failed = next(run for run in group if run.status != "succeeded")
        outcome.failure = (
            f"the control run {failed.run_id} {failed.status}: {failed.record.get('error')}"
        )
    if not succeeded:
        return outcome
    if not succeeded[0].record["artifacts"]:
        nothing_to_compare(outcome, "control run", succeeded[0])
        return outcome
    outcome.controls.append(succeeded[0])
    for number, run in enumerate(succeeded[1:], start=2):
        comparison = compare_paths(
            str(succeeded[0].folder), str(run.folder), policies=config.policies_for(experiment)
        )
        outcome.controls.append(run)
        outcome.checks.append(Check(f"control run {number}", (), run, comparison))
    return outcome


def _judge_host(
    config: Config,
    name: str,
    runs: Sequence[RunResult],
    references: Mapping[str, RunResult],
    pinned_by: tuple[str, str],
) -> crosshost.HostOutcome:
    outcome = crosshost.HostOutcome(_host(name, runs[0].record), crosshost.AGREED)
    other = next((r for r in runs if records.isolation(r.record) != pinned_by), None)
    if other is not None:
        theirs = records.isolation(other.record)
        outcome.status = crosshost.REFUSED
        outcome.reason = f"run {other.run_id} used {_pinned_text(theirs)}, not the control's " + (
            _pinned_text(pinned_by)
            if theirs[0] == pinned_by[0]
            else f"{_pinned_text(pinned_by)}: host-executor and image runs never share a quorum"
        )
        outcome.runs = {str(r.record["experiment"]): [r] for r in runs}
        return outcome
    for run in runs:
        experiment = str(run.record["experiment"])
        reference = references.get(experiment)
        if reference is None:
            outcome.runs.setdefault(experiment, []).append(run)
            continue  # nothing reproduced on the control to compare with
        declared = config.experiments.get(experiment) or experiment_of(run.record)
        crosshost.judge(outcome, config, declared, reference, run)
    missing = sorted(set(references) - set(outcome.runs))
    if missing and outcome.status == crosshost.AGREED:
        outcome.status = crosshost.FAILED
        outcome.reason = f"no run of {', '.join(missing)} was collected from {name}"
    return outcome


def _identity(run: RunResult, signers: Mapping[str, attest.Signer]) -> tuple[str, str]:
    """What a host is: the key that signed the run, or for an unsigned run its name."""
    signer = signers.get(run.run_id, attest.UNSIGNED)
    return ("unsigned", host_of(run.record)) if signer.keyid is None else ("key", signer.keyid)


def _host_names(
    groups: Mapping[tuple[str, str], Sequence[RunResult]],
) -> dict[tuple[str, str], str]:
    """A name for each host: the one its records give, with the key's id when two hosts
    (two keys, or a key and unsigned runs) give the same one."""
    given = {identity: host_of(group[0].record) for identity, group in groups.items()}
    taken = list(given.values())
    return {
        identity: name
        if taken.count(name) == 1
        else f"{name} [{identity[1][:12] if identity[0] == 'key' else 'unsigned'}]"
        for identity, name in given.items()
    }


def _control_name(
    control: str | None,
    names: Mapping[tuple[str, str], str],
    groups: Mapping[tuple[str, str], Sequence[RunResult]],
) -> str | None:
    """The host ``--control`` names: by its shown name, the name its records give, or a
    prefix of its key id."""
    if control is None:
        return None
    for identity, name in names.items():
        if control in (name, host_of(groups[identity][0].record)) or (
            identity[0] == "key" and len(control) >= 8 and identity[1].startswith(control)
        ):
            return name
    return control


def _pinned_text(pinned_by: tuple[str, str]) -> str:
    kind, digest = pinned_by
    return f"{'image' if kind == 'image' else 'host environment'} {digest[:19]}"


def _host(name: str, record: Mapping[str, Any]) -> Host:
    where = (record.get("engine") or {}).get("where")
    files = (record.get("container") or {}).get("files") or "bind"
    return Host(name, where if isinstance(where, str) else None, ship="never", files=files)


def experiment_of(record: Mapping[str, Any]) -> Experiment:
    """An experiment this project does not declare, as its record describes it."""
    command = record.get("command")
    image = record.get("image")
    # A run without an image (host executor, SLURM) names no variant: its device does.
    variant = (
        str(image["variant"])
        if isinstance(image, Mapping) and image.get("variant")
        else "cuda"
        if record.get("device") == "cuda"
        else "cpu"
    )
    return Experiment(
        name=str(record["experiment"]),
        entry=record.get("entry"),
        command=tuple(command) if command else None,
        parameters=dict(record.get("parameters") or {}),
        inputs={},
        outputs={},
        variant=variant,
    )
