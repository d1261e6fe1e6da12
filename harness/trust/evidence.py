"""What `harness certify` signs: claims rebuilt from run records it checked itself.

A saved verification (``.harness/verifications/*.json``) is a summary anyone who can write
the project can forge: committed to the repository, named to sort last, it once made
harness sign "reproduced on 5 of 5 hosts" for an image that never ran. So certify reads
it only as an index of run ids, and signs nothing it says. In this process it:

- refuses a verification git tracks (a result is made on a machine, never committed);
- reads every run it names from ``.harness/runs/`` (a run that is not there: the summary
  was copied from elsewhere), re-hashes every artifact against its record, and checks
  each run's attestation against the host keys the certifier trusts (unsigned runs only
  when allowed, and the statement then says so);
- regroups the runs by the key that signed them (a host is a key, not a name; a SLURM run
  whose node signed what it saw, with a key trusted here, counts under the node's key, see
  :mod:`harness.trust.node_attestation`), runs every comparison again under the
  project's policies, and counts the hosts that agree;
- refuses, in one line, a summary whose claims (verdicts, hosts, artifacts, image) the
  runs do not bear out: it was edited.

The statement is then built from these recomputed facts alone, with each counted host's
signed attestation inside it, so that a verifier can count the distinct keys that vouched
for the result with keys of its own choosing (see :func:`check_signed_hosts`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import commands, untrusted
from harness.compare.tree import compare_paths
from harness.config import STATE_FOLDER, Config, Experiment
from harness.errors import HarnessError
from harness.fleet.collect import experiment_of
from harness.runs import records, variations
from harness.runs.host_executor import NEEDS_A_CONTAINER
from harness.trust import attest, canonical, dsse, keys, node_attestation

# Where verify and collect save verifications (harness.runs.verify.FOLDER).
FOLDER = STATE_FOLDER / "verifications"
CONTROL = "control"
AGREED = "agreed"
DIFFERS = "differs"
INCOMPLETE = "incomplete"
FAILED = "failed"


class Unfounded(HarnessError):
    """A verification whose claims its runs do not bear out: trouble, never certified."""

    default_hint = "verify (or collect) again on this machine, then certify that verification"


@dataclass
class Run:
    """One run named by the verification, as checked here."""

    run_id: str
    folder: Path
    record: dict[str, Any]
    signer: attest.Signer
    # The host it counts as: ("key", KEYID) or ("unsigned", NAME).
    identity: tuple[str, str]
    attestation: dict[str, Any] | None


@dataclass
class HostFacts:
    identity: tuple[str, str]
    name: str
    status: str
    device_class: str
    runs: dict[str, list[str]] = field(default_factory=dict)
    reason: str | None = None

    @property
    def counted(self) -> bool:
        return self.status in (CONTROL, AGREED)

    def as_dict(self) -> dict[str, Any]:
        kind, value = self.identity
        return {
            "name": self.name,
            "keyid": value if kind == "key" else None,
            "signed": kind == "key",
            "status": self.status,
            "reason": self.reason,
            "device_class": self.device_class,
            "runs": self.runs,
        }


def gather(
    config: Config,
    path: Path,
    summary: Mapping[str, Any],
    trusted: Sequence[keys.PublicKey],
    *,
    allow_unsigned: bool,
    image_on_engine: Callable[[str], bool | None],
) -> dict[str, Any]:
    """The verification document certify may sign, rebuilt from checked runs.

    ``image_on_engine(id)`` says whether the engine here holds an image (None: no engine
    was asked, or it did not answer).
    """
    _refuse_committed(config.project_root, path)
    # The id is the summary's word: shown and kept only when it is a plain name.
    given = summary.get("id")
    summary_id = given if isinstance(given, str) and records.RUN_ID.fullmatch(given) else path.stem
    name = f"verification {summary_id}"
    runs = {run_id: _checked_run(config, name, run_id, trusted, allow_unsigned)
            for run_id in _named_runs(name, summary)}  # fmt: skip
    if not runs:
        raise Unfounded(f"{name} names no run, so nothing vouches for it")
    first = next(iter(runs.values())).record
    _same_settings(name, runs.values(), first)
    experiments = _experiments(summary)
    control_identity = runs[experiments[0][1][0]].identity
    names = _names(runs.values())
    recomputed: list[dict[str, Any]] = []
    hosts: dict[tuple[str, str], HostFacts] = {}
    for identity in dict.fromkeys(run.identity for run in runs.values()):
        member = next(r for r in runs.values() if r.identity == identity)
        hosts[identity] = HostFacts(
            identity,
            names[identity],
            CONTROL if identity == control_identity else AGREED,
            records.device_class(member.record),
        )
    for experiment_name, control_ids, check_ids in experiments:
        recomputed.append(
            _judge(config, name, experiment_name, (control_ids, check_ids), runs=runs, hosts=hosts)
        )
    facts = list(hosts.values())
    _name_shared_keys(facts, runs.values())
    _compare_claims(name, summary, facts, runs, recomputed)
    pinned = _image_check(name, first, facts, image_on_engine)
    counted = [h for h in facts if h.counted]
    return {
        "schema": "harness.verification/v1",
        "id": summary_id,
        "verdict": "reproducible",
        "image": None
        if first.get("image") is None
        else {
            "reference": first["image"]["reference"],
            "id": first["image"]["id"],
            "variant": first["image"]["variant"],
            "labels": {},
        },
        "python_environment": first.get("python_environment"),
        "seed": first["seed"],
        "profile": first["profile"],
        "threads": first["threads"],
        "variations": sorted(_varied(runs.values())),
        "source": first.get("source"),
        "constraints_sha256": first.get("constraints_sha256"),
        "lock_sha256": first.get("lock_sha256"),
        "hosts": [h.as_dict() for h in facts],
        "quorum": {
            "agreed": [h.name for h in counted],
            "of": len(facts),
            "text": f"{len(counted)} of {len(facts)}",
            "signers": [h.identity[1] for h in counted if h.identity[0] == "key"],
            "unsigned": [h.name for h in counted if h.identity[0] != "key"],
        },
        "experiments": recomputed,
        "evidence": {
            "image": pinned,
            "attestations": _host_attestations(runs.values(), counted),
        },
    }


# -- reading the runs -----------------------------------------------------------------------


def _refuse_committed(project_root: Path, path: Path) -> None:
    """A verification is made on a machine by verify or collect, never taken from git."""
    try:
        listed = commands.call(
            ["git", "ls-files", "--", str(path.resolve())],
            cwd=project_root,
            timeout=commands.GIT_S,
            hint="check the repository with `git status`",
        )
    except commands.CommandMissing:
        return
    if listed.returncode == 0 and listed.stdout.strip():
        raise Unfounded(
            f"{path.name} is committed to the repository: a verification is made by `harness "
            "verify` or `harness collect` on this machine, never taken from a commit",
            "verify or collect here, then certify that verification",
        )


def _named_runs(name: str, summary: Mapping[str, Any]) -> list[str]:
    """Every run id the summary names, each a plain folder name."""
    named: list[object] = []
    for experiment in _list(summary.get("experiments")):
        named.extend(_list(experiment.get("control_runs")) if isinstance(experiment, dict) else ())
        for check in _list(experiment.get("checks")) if isinstance(experiment, dict) else ():
            named.append(check.get("run_id") if isinstance(check, dict) else check)
    for host in _list(summary.get("hosts")):
        runs = host.get("runs") if isinstance(host, dict) else None
        for listed in (runs or {}).values() if isinstance(runs, dict) else ():
            named.extend(_list(listed))
    for run_id in named:
        if not isinstance(run_id, str) or not records.RUN_ID.fullmatch(run_id):
            raise Unfounded(f"{name} names a run that is no plain run id: {str(run_id)[:60]!r}")
    return list(dict.fromkeys(str(r) for r in named))


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _checked_run(
    config: Config,
    name: str,
    run_id: str,
    trusted: Sequence[keys.PublicKey],
    allow_unsigned: bool,
) -> Run:
    folder = records.runs_root(config.project_root) / run_id
    if folder.is_symlink() or not folder.is_dir():
        raise Unfounded(
            f"run {run_id} that {name} names is not in {records.RUNS}: the verification was "
            "copied from elsewhere, or its runs were removed"
        )
    try:
        record = records.read(folder)
        records.check_foreign(record, folder)
        if record["run_id"] != run_id:
            raise Unfounded(f"the record in {records.RUNS}/{run_id} is of run {record['run_id']}")
        present = records.artifacts(folder / records.ARTIFACTS) if record["artifacts"] else []
        signer = attest.verify(folder, record, trusted)
        # A SLURM node that signed what it saw, with a key trusted here, is the run's host.
        node = node_attestation.vouching(folder, record, trusted)
    except HarnessError as error:
        raise Unfounded(f"{name}: run {run_id}: {error.message}", error.hint) from None
    listed = [{k: a[k] for k in ("path", "size", "sha256")} for a in record["artifacts"]]
    if [{k: a[k] for k in ("path", "size", "sha256")} for a in present] != listed:
        raise Unfounded(
            f"{name}: the artifacts of run {run_id} no longer have the bytes its record names",
            "run the experiment again; do not certify changed artifacts",
        )
    if node is not None:
        return Run(run_id, folder, record, signer, ("key", node[0]), node[1])
    if signer.unsigned and not allow_unsigned:
        raise Unfounded(
            f"{name}: run {run_id} is signed by no host key trusted here, so nothing vouches "
            "for where it ran",
            "sign runs with each host's key (--sign-key, $HARNESS_HOST_KEY) and trust those "
            "keys (--trusted-key PUB), or pass --allow-unsigned (the certificate says so)",
        )
    identity = ("unsigned", _host_name(record)) if signer.keyid is None else ("key", signer.keyid)
    attestation = None
    if not signer.unsigned:
        raw = untrusted.read_bytes(
            folder / attest.ATTESTATION,
            limit=attest.ATTESTATION_LIMIT,
            what="the attestation",
            follow_symlinks=False,
        )
        attestation = canonical.loads(raw, what="the attestation")
    return Run(run_id, folder, record, signer, identity, attestation)


def _host_name(record: Mapping[str, Any]) -> str:
    name = record.get("host")
    return name if isinstance(name, str) and name else "unknown"


def _names(runs: Sequence[Run] | Any) -> dict[tuple[str, str], str]:
    """Each host's shown name: the one its records give, with its key id where two share it."""
    given: dict[tuple[str, str], str] = {}
    for run in runs:
        given.setdefault(run.identity, _host_name(run.record))
    taken = list(given.values())
    return {
        identity: shown
        if taken.count(shown) == 1
        else f"{shown} [{identity[1][:12] if identity[0] == 'key' else 'unsigned'}]"
        for identity, shown in given.items()
    }


def _name_shared_keys(facts: Sequence[HostFacts], runs: Any) -> None:
    """Say so where one key signed the runs of several SLURM nodes (the machine that
    submitted them): they count as one host, and the certificate says why."""
    for host in facts:
        nodes = sorted(
            {
                str((run.record.get("slurm") or {}).get("node"))
                for run in runs
                if run.identity == host.identity and run.record.get("executor") == "slurm"
            }
        )
        if len(nodes) > 1 and host.reason is None:
            host.reason = (
                f"one key signed the runs of nodes {', '.join(nodes)} (the machine that "
                "submitted them), so they count as one host; nodes that keep keys of their "
                "own (node_key) count apart"
            )


def _same_settings(name: str, runs: Any, first: Mapping[str, Any]) -> None:
    """Every run must have used the same image (or environment), seed, profile and threads."""
    for run in runs:
        for what, value, expected in (
            ("ran", records.isolation(run.record), records.isolation(first)),
            ("used seed", run.record["seed"], first["seed"]),
            ("used profile", run.record["profile"], first["profile"]),
            ("used threads", run.record["threads"], first["threads"]),
        ):
            if value != expected:
                raise Unfounded(
                    f"{name}: run {run.run_id} {what} {value}, not {expected} like the others"
                )


def _experiments(summary: Mapping[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    found = []
    for experiment in _list(summary.get("experiments")):
        if not isinstance(experiment, dict) or not isinstance(experiment.get("name"), str):
            raise Unfounded("the verification lists an experiment without a name")
        controls = [str(r) for r in _list(experiment.get("control_runs"))]
        checks = [
            str(c.get("run_id")) for c in _list(experiment.get("checks")) if isinstance(c, dict)
        ]
        if not controls:
            raise Unfounded(f"the verification names no control run of {experiment['name']}")
        found.append((experiment["name"], controls, checks))
    if not found:
        raise Unfounded("the verification lists no experiment")
    return found


def _declared(config: Config, record: Mapping[str, Any], name: str) -> Experiment:
    return config.experiments.get(name) or experiment_of(record)


# -- judging again --------------------------------------------------------------------------


def _judge(
    config: Config,
    name: str,
    experiment_name: str,
    listed: tuple[list[str], list[str]],
    *,
    runs: Mapping[str, Run],
    hosts: Mapping[tuple[str, str], HostFacts],
) -> dict[str, Any]:
    """Compare every run of one experiment with its first control run, mark the hosts that
    moved or lack a run, and return what the certificate states about the experiment."""
    control_ids, check_ids = listed
    reference = runs[control_ids[0]]
    if reference.record["status"] != "succeeded":
        raise Unfounded(f"{name} counts run {reference.run_id}, which {reference.record['status']}")
    if not reference.record["artifacts"]:
        # A statement of zero artifacts would certify that nothing was reproduced.
        raise Unfounded(
            f"{name} counts run {reference.run_id} of {experiment_name}, which has no "
            "artifact: nothing was compared, so there is nothing to certify",
            "name the experiment's results with outputs (or write them into the output "
            "folder), then verify again",
        )
    declared = _declared(config, reference.record, experiment_name)
    verdicts: dict[str, tuple[str, str]] = {}
    of_experiment = [r for r in runs.values() if r.record["experiment"] == experiment_name]
    if not set(control_ids) | set(check_ids) <= {r.run_id for r in of_experiment}:
        raise Unfounded(f"{name} lists runs of {experiment_name} that are of another experiment")
    for run in of_experiment:
        hosts[run.identity].runs.setdefault(experiment_name, []).append(run.run_id)
        if run is reference:
            continue
        failing = (
            _compare(config, declared, reference, run, verdicts)
            if run.record["status"] == "succeeded"
            else f"run {run.run_id} {run.record['status']}"
        )
        if failing is None:
            continue
        if run.run_id in control_ids or run.run_id in check_ids:
            raise Unfounded(
                f"{name} says {experiment_name} reproduced, but its run {run.run_id} "
                f"differs from {reference.run_id} ({failing}): it was edited or forged"
            )
        if run.record["status"] != "succeeded" and hosts[run.identity].status == AGREED:
            hosts[run.identity].status, hosts[run.identity].reason = FAILED, failing
            continue
        host = hosts[run.identity]
        if host.status == AGREED:
            host.status, host.reason = DIFFERS, f"{experiment_name}: {failing}"
        elif host.status == CONTROL and host.reason is None:
            # Another engine this key drove (verify --hosts from one machine).
            host.reason = f"its run {run.run_id} of {experiment_name} differs: {failing}"
    for host in hosts.values():
        if host.status == AGREED and experiment_name not in host.runs:
            host.status = INCOMPLETE
            host.reason = f"no run of {experiment_name} from this host"
    return {
        "name": declared.name,
        "entry": declared.entry,
        "command": list(declared.command) if declared.command else None,
        "parameters": dict(reference.record.get("parameters") or {}),
        "reproducible": True,
        "control_runs": control_ids,
        "checks": [{"run_id": run_id} for run_id in check_ids],
        "artifacts": [
            {
                **{k: a[k] for k in ("path", "sha256", "size")},
                "kind": a.get("kind", "bytes"),
                "policy": verdicts.get(a["path"], ("bitwise", ""))[0],
                "verdict": verdicts.get(a["path"], ("", "not compared"))[1],
            }
            for a in reference.record["artifacts"]
        ],
        "observed": reference.record.get("observed") or {},
        # From the checked runs; why the others were not made, from this project's own
        # configuration (a verification's account of it is a claim, never signed).
        "variations": variations.as_certified(
            config,
            declared,
            _varied(runs[run_id] for run_id in check_ids),
            cannot_make=() if reference.record.get("image") else NEEDS_A_CONTAINER,
        ),
    }


def _varied(checks: Iterable[Run]) -> set[str]:
    """The variations the runs were made under, as their records say (a container run's
    under container, a run without one at the top)."""
    return {
        str(name)
        for run in checks
        for name in _list(
            (run.record.get("container") or {}).get("variations") or run.record.get("variations")
        )
    }


def _compare(
    config: Config,
    experiment: Experiment,
    reference: Run,
    run: Run,
    verdicts: dict[str, tuple[str, str]],
) -> str | None:
    """Compare ``run`` with the reference under the project's policies; what moved, or None.

    The verdicts of runs on the reference's device class are what the certificate states
    per artifact (the first comparison's, as `harness verify` reports them).
    """
    mine = records.device_class(reference.record)
    theirs = records.device_class(run.record)
    policies = config.policies_between(experiment, mine, theirs)
    comparison = compare_paths(str(reference.folder), str(run.folder), policies=policies)
    moved = [a.path for a in comparison.artifacts if not a.passed]
    if mine == theirs:
        for artifact in comparison.artifacts:
            verdicts.setdefault(artifact.path, (artifact.policy, artifact.verdict))
    if moved or comparison.exit_code != 0:
        return f"{', '.join(moved) or 'artifacts'} moved"
    return None


def _compare_claims(
    name: str,
    summary: Mapping[str, Any],
    facts: Sequence[HostFacts],
    runs: Mapping[str, Run],
    recomputed: Sequence[Mapping[str, Any]],
) -> None:
    """Refuse a summary that claims more than its runs show: it was edited."""
    claimed = summary.get("quorum") if isinstance(summary.get("quorum"), dict) else {}
    agreed = _list((claimed or {}).get("agreed"))
    counted = [h for h in facts if h.counted]
    if len(agreed) > len(counted) and len(agreed) > _claimed_run_hosts(summary, runs):
        raise Unfounded(
            f"{name} claims {len(agreed)} agreeing host(s), but its runs were made by "
            f"{len(counted)} distinct host key(s): it was edited or forged"
        )
    for experiment in _list(summary.get("experiments")):
        mine = next((e for e in recomputed if e["name"] == experiment.get("name")), None)
        claimed_artifacts = {
            str(a.get("path")): a.get("sha256")
            for a in _list(experiment.get("artifacts"))
            if isinstance(a, dict)
        }
        actual = {a["path"]: a["sha256"] for a in (mine or {}).get("artifacts", [])}
        if mine is not None and claimed_artifacts and claimed_artifacts != actual:
            raise Unfounded(
                f"{name} names other artifacts for {mine['name']} than its runs hold: it was "
                "edited or forged"
            )
    image = summary.get("image")
    first = next(iter(runs.values())).record
    if isinstance(image, dict) and image.get("id") != (first.get("image") or {}).get("id"):
        raise Unfounded(
            f"{name} names image {str(image.get('id'))[:19]}, but its runs ran "
            f"{records.isolation(first)[1][:19]}: it was edited or forged"
        )


def _claimed_run_hosts(summary: Mapping[str, Any], runs: Mapping[str, Run]) -> int:
    """How many of the summary's agreeing hosts are backed by runs at all: a `verify
    --hosts` from one machine names several engines whose runs one key signed, which is
    honest, and is certified as that one key."""
    backed = 0
    for host in _list(summary.get("hosts")):
        if not isinstance(host, dict) or host.get("status") not in (CONTROL, AGREED):
            continue
        listed = host.get("runs") if isinstance(host.get("runs"), dict) else {}
        ids = [r for ids in (listed or {}).values() for r in _list(ids)]
        if ids and all(r in runs for r in ids):
            backed += 1
    return backed


def _image_check(
    name: str,
    first: Mapping[str, Any],
    facts: Sequence[HostFacts],
    image_on_engine: Callable[[str], bool | None],
) -> str:
    """How the image (or environment) is vouched for: by the engine here, or by the keys
    that signed runs of it; runs nobody signed of an image nobody has are refused."""
    kind, digest = records.isolation(first)
    signed = [h for h in facts if h.counted and h.identity[0] == "key"]
    if kind == "image" and not signed:
        if image_on_engine(digest):
            return f"image {digest} is on this engine"
        raise Unfounded(
            f"{name}: image {digest[:19]} is not on this engine and no signed run vouches "
            "that it ran",
            "certify where the image is, or from signed runs",
        )
    if not signed:
        return f"{kind} {digest} named by unsigned runs only"
    return f"{kind} {digest} named by runs signed by {len(signed)} host key(s)"


def _host_attestations(runs: Any, counted: Sequence[HostFacts]) -> list[dict[str, Any]]:
    """One signed attestation per counted host: the evidence a verifier re-checks."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    wanted = {h.identity for h in counted if h.identity[0] == "key"}
    for run in runs:
        if run.identity in wanted and run.attestation is not None:
            chosen.setdefault(run.identity, run.attestation)
    return list(chosen.values())


# -- checking a certificate's hosts ---------------------------------------------------------


def check_signed_hosts(
    statement: Mapping[str, Any], trusted: Sequence[keys.PublicKey], minimum: int | None
) -> tuple[list[str], str]:
    """The distinct trusted keys whose attestations inside the certificate vouch for a run
    it certifies of the certified image; refused when fewer than ``minimum``."""
    predicate = statement["predicate"]
    certified_runs = {r for e in predicate["experiments"] for r in e["runs"]}
    for host in _list(predicate.get("hosts")):
        if isinstance(host, dict) and host.get("status") in (CONTROL, AGREED):
            listed = host.get("runs") if isinstance(host.get("runs"), dict) else {}
            certified_runs.update(str(r) for ids in (listed or {}).values() for r in _list(ids))
    pinned = _pinned_digest(statement)
    evidence = predicate.get("evidence") if isinstance(predicate.get("evidence"), dict) else {}
    signers: list[str] = []
    for envelope in _list((evidence or {}).get("attestations")):
        if not isinstance(envelope, dict):
            continue
        try:
            opened = dsse.open_envelope(envelope, trusted, 1)
            stated = canonical.loads(opened.payload, what="a host attestation")
        except (dsse.EnvelopeError, untrusted.UntrustedInputError):
            continue
        record = stated.get("predicate") if isinstance(stated, dict) else None
        subjects = stated.get("subject") if isinstance(stated, dict) else None
        # A run's host signed its record, or a SLURM node signed what it saw of the run.
        by_node = isinstance(stated, dict) and stated.get("predicateType") == (
            node_attestation.PREDICATE_TYPE
        )
        if by_node:
            if not node_attestation.counts_for(stated, certified_runs):
                continue
        elif (
            not isinstance(record, dict)
            or record.get("run_id") not in certified_runs
            or record.get("status") != "succeeded"
        ):
            continue
        if not isinstance(subjects, list) or not any(
            isinstance(s, dict) and (s.get("digest") or {}).get("sha256") == pinned
            for s in subjects
        ):
            continue
        for signer in opened.signers:
            if signer not in signers:
                signers.append(signer)
    named = ", ".join(s[:16] for s in signers) or "none"
    line = f"{len(signers)} distinct trusted host key(s) vouch for runs of it: {named}"
    if minimum is not None and len(signers) < minimum:
        unsigned = _list((predicate.get("quorum") or {}).get("unsigned"))
        also = (
            f"; it also names {len(unsigned)} unsigned host(s), which never count"
            if unsigned
            else ""
        )
        raise dsse.EnvelopeError(
            f"the result was reproduced by {len(signers)} distinct host key(s) you trust, "
            f"{minimum} required{also}",
            "trust the hosts' public keys (--key PUB), or verify on more hosts and certify again",
        )
    return signers, line


def _pinned_digest(statement: Mapping[str, Any]) -> str | None:
    for subject in statement["subject"]:
        if subject.get("annotations", {}).get("kind") in ("image", "python-environment"):
            return str(subject["digest"]["sha256"])
    return None


def load_summary(project_root: Path, reference: str | None) -> tuple[Path, dict[str, Any]]:
    """A saved verification, read as the untrusted index it is: by id (or unique prefix),
    by path, or the newest; never through a link, never more than a document's size."""
    folder = project_root / FOLDER
    if reference and Path(reference).is_file():
        path = Path(reference)
    else:
        candidates = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if reference:
            candidates = [p for p in candidates if p.stem.startswith(reference)]
        if not candidates:
            raise HarnessError(
                f"no verification {reference or ''} in {FOLDER}".replace("  ", " "),
                "run `harness verify` or `harness collect` first",
            )
        if reference and len(candidates) > 1:
            raise HarnessError(
                f"{reference!r} matches {len(candidates)} verifications", "give more of the id"
            )
        path = candidates[-1]
    try:
        document = untrusted.load_json(path, what="the verification", follow_symlinks=False)
    except untrusted.UntrustedInputError as error:
        raise Unfounded(error.message) from None
    if not isinstance(document, dict) or document.get("schema") != "harness.verification/v1":
        raise Unfounded(f"{path} is not a harness.verification/v1 document")
    return path, document
