"""`harness verify`: does an experiment reproduce when what should not matter changes?

For each experiment: control runs (identical setup, fresh containers) must agree with each
other; then one run with every selected variation at once must agree with the control.
When it does not, each variation is tried alone to name the one(s) that move the artifacts,
as Debian's reprotest does. Artifacts agree when `harness compare` passes them under the
experiment's policies (bitwise by default).

The outcome is saved as a verification document under .harness/verifications/, which
`harness certify` turns into a signed certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from harness import atomic
from harness.compare.model import ComparisonResult
from harness.compare.report import to_dict
from harness.compare.tree import compare_paths
from harness.config import STATE_FOLDER, Config, Experiment
from harness.engine import ContainerEngine
from harness.errors import EngineUnavailable, HarnessError
from harness.fleet import crosshost
from harness.fleet.hosts import Host, local_host
from harness.images.build import BuildResult
from harness.parallel import Pool, Together, available_cores, default_jobs, gather
from harness.runs import records
from harness.runs.host_executor import PythonEnvironment, run_on_host
from harness.runs.run import RunRequest, RunResult, run_experiment
from harness.runs.variations import CONTROL, Variation, setup_for
from harness.ui import prefixed

SCHEMA = "harness.verification/v1"
FOLDER = STATE_FOLDER / "verifications"
# The culprit named when control runs already disagree: nothing harness varied moved the
# artifacts, so the experiment depends on the clock, unseeded randomness or outside state.
RERUN = "rerun"


@dataclass
class Check:
    """One comparison of a run against the first control run."""

    label: str
    variations: tuple[str, ...]
    run: RunResult
    comparison: ComparisonResult | None

    @property
    def agrees(self) -> bool:
        return self.comparison is not None and self.comparison.exit_code == 0

    def moved(self) -> list[str]:
        if self.comparison is None:
            return []
        return [a.path for a in self.comparison.artifacts if not a.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "run_id": self.run.run_id,
            "status": self.run.status,
            "variations": list(self.variations),
            "agrees": self.agrees,
            "moved": self.moved(),
        }


@dataclass(frozen=True)
class Unfinished:
    """A planned run that gave no result to judge: harness's trouble (the engine was lost,
    or refused the container), or a run not started once another one had failed."""

    label: str
    # lost, failed, not started, or "STATUS, not judged" for a run that ended after
    # trouble had stopped its round (its record is under .harness/runs as run_id).
    status: str
    error: HarnessError | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "status": self.status,
            "run_id": self.run_id,
            "error": self.error.one_line() if self.error else None,
        }


@dataclass
class ExperimentVerification:
    experiment: Experiment
    controls: list[RunResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)
    failure: str | None = None
    unfinished: list[Unfinished] = field(default_factory=list)

    @property
    def trouble(self) -> tuple[str, HarnessError] | None:
        """The first run that harness could not finish (an error, not an answer), if any:
        its label and the error."""
        return next(((u.label, u.error) for u in self.unfinished if u.error is not None), None)

    @property
    def reproducible(self) -> bool:
        return self.failure is None and all(check.agrees for check in self.checks)

    def as_dict(self, config: Config) -> dict[str, Any]:
        reference = self.controls[0] if self.controls else None
        compared = [c.comparison for c in self.checks if c.comparison is not None]
        verdicts = {a.path: a for a in compared[0].artifacts} if compared else {}
        artifacts = []
        for artifact in reference.record["artifacts"] if reference else []:
            result = verdicts.get(artifact["path"])
            artifacts.append(
                {
                    **artifact,
                    "policy": result.policy if result else "bitwise",
                    "verdict": result.verdict if result else "not compared",
                }
            )
        return {
            "name": self.experiment.name,
            "entry": self.experiment.entry,
            "command": list(self.experiment.command) if self.experiment.command else None,
            "parameters": dict(self.experiment.parameters),
            "policies": config.policies_for(self.experiment),
            "reproducible": self.reproducible,
            "failure": self.failure,
            "culprits": self.culprits,
            "control_runs": [run.run_id for run in self.controls],
            "checks": [check.as_dict() for check in self.checks],
            "unfinished": [run.as_dict() for run in self.unfinished],
            "artifacts": artifacts,
            "observed": reference.record.get("observed", {}) if reference else {},
            "violations": reference.record.get("violations", []) if reference else [],
            "reports": [
                {"label": c.label, "comparison": to_dict(c.comparison)}
                for c in self.checks
                if c.comparison is not None and not c.agrees
            ],
        }


@dataclass
class Verification:
    id: str
    # The image every run used; None for runs of the host executor, which name the Python
    # environment they ran in instead.
    image: BuildResult | None
    variations: list[str]
    control_runs: int
    experiments: list[ExperimentVerification]
    seed: int
    profile: str
    threads: int
    # The control host first, then every other host with how it did against the control.
    hosts: list[crosshost.HostOutcome] = field(default_factory=list)
    environment: PythonEnvironment | None = None

    @property
    def reproducible(self) -> bool:
        """Whether every experiment reproduced on the control host."""
        return all(e.reproducible for e in self.experiments)

    @property
    def hosts_agree(self) -> bool:
        return all(outcome.counted for outcome in self.hosts)

    @property
    def trouble(self) -> tuple[str, str, HarnessError] | None:
        """The first run on the control host that harness could not finish, if any (its
        experiment, label and error): the verification is saved with what finished, then
        the command reports it (exit 2)."""
        for experiment in self.experiments:
            if experiment.trouble is not None:
                return (experiment.experiment.name, *experiment.trouble)
        return None

    def as_dict(self, config: Config) -> dict[str, Any]:
        runs = [
            run
            for e in self.experiments
            for run in (*e.controls, *(check.run for check in e.checks))
        ]
        return {
            "schema": SCHEMA,
            "id": self.id,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "verdict": "reproducible" if self.reproducible else "not reproducible",
            "executor": "container" if self.image is not None else "host",
            "image": None
            if self.image is None
            else {
                "reference": self.image.reference,
                "id": self.image.image_id,
                "variant": self.image.variant,
                "labels": dict(self.image.labels),
            },
            "python_environment": None
            if self.environment is None
            else {
                "executable": str(self.environment.executable),
                "python": self.environment.description.get("python"),
                "digest": self.environment.digest,
                "distributions": len(self.environment.description.get("distributions") or []),
            },
            "seed": self.seed,
            "profile": self.profile,
            "threads": self.threads,
            "variations": self.variations,
            "control_runs": self.control_runs,
            "source": runs[0].record.get("source") if runs else None,
            "constraints_sha256": runs[0].record.get("constraints_sha256") if runs else None,
            "lock_sha256": runs[0].record.get("lock_sha256") if runs else None,
            "hosts": [outcome.as_dict() for outcome in self.hosts],
            "quorum": crosshost.quorum(self.hosts),
            "experiments": [e.as_dict(config) for e in self.experiments],
        }


def verify(
    engine: ContainerEngine,
    config: Config,
    image: BuildResult,
    experiments: Sequence[Experiment],
    *,
    variations: Sequence[Variation],
    control_runs: int = 2,
    base: Callable[[Experiment], RunRequest],
    control_host: Host | None = None,
    other_hosts: Sequence[Host] = (),
    jobs: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Verification:
    """Verify every experiment; ``base`` gives the control request of each.

    The control host (default: this machine's engine) runs the control runs and the
    variations; each of ``other_hosts`` gets the image and runs every experiment once, to
    be compared with the control's first run. Every host works at the same time, each
    with at most ``jobs`` runs at once (default: from its cores and the run's threads).
    """
    control_host = control_host or local_host(config)
    requests = [base(experiment) for experiment in experiments]
    gpus = any(request.gpus for request in requests)
    # With other hosts working at the same time, each line names its host.
    named = (lambda text: f"[{control_host.name}] {text}") if other_hosts else (lambda text: text)
    runs_at_once = jobs or default_jobs(engine.cores(), config.threads, gpus=gpus)
    say(named(f"up to {runs_at_once} run(s) at once"))
    with Pool(runs_at_once, control_host.name) as pool, Together("hosts") as together:

        def run(request: RunRequest, tell: Callable[[str], None]) -> RunResult:
            return run_experiment(engine, config, image, request, host=control_host, say=tell)

        mine = together.start(
            partial(
                _verify_all,
                config,
                pool,
                run,
                requests,
                variations=variations,
                control_runs=control_runs,
                say=say,
                named=named,
            )
        )
        theirs = [
            together.start(
                partial(
                    crosshost.run_there,
                    engine,
                    config,
                    image,
                    host,
                    experiments,
                    request_for=base,
                    jobs=jobs,
                    say=say,
                )
            )
            for host in other_hosts
        ]
    results = mine.result()
    references = {r.experiment.name: r.controls[0] for r in results if r.reproducible}
    others = [crosshost.compared(config, there.result(), references, say=say) for there in theirs]
    return _verification(
        config,
        results,
        variations=variations,
        control_runs=control_runs,
        control_host=control_host,
        others=others,
        image=image,
    )


def verify_on_host(
    config: Config,
    python: PythonEnvironment,
    experiments: Sequence[Experiment],
    *,
    variations: Sequence[Variation],
    control_runs: int = 2,
    base: Callable[[Experiment], RunRequest],
    jobs: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Verification:
    """Verify every experiment with the host executor, in ``python``'s environment.

    The same control runs and variations as in a container, except those that need one
    (see :data:`harness.runs.host_executor.NEEDS_A_CONTAINER`). No other host takes part: the
    environment is this machine's, and nothing ships it elsewhere.
    """
    requests = [base(experiment) for experiment in experiments]
    gpus = any(request.gpus for request in requests)
    runs_at_once = jobs or default_jobs(available_cores(), config.threads, gpus=gpus)
    say(f"up to {runs_at_once} run(s) at once")

    def run(request: RunRequest, tell: Callable[[str], None]) -> RunResult:
        return run_on_host(config, request, python, say=tell)

    with Pool(runs_at_once, "host") as pool:
        results = _verify_all(
            config,
            pool,
            run,
            requests,
            variations=variations,
            control_runs=control_runs,
            say=say,
            named=lambda text: text,
        )
    return _verification(
        config,
        results,
        variations=variations,
        control_runs=control_runs,
        control_host=local_host(config),
        others=[],
        environment=python,
    )


def _verification(
    config: Config,
    results: list[ExperimentVerification],
    *,
    variations: Sequence[Variation],
    control_runs: int,
    control_host: Host,
    others: list[crosshost.HostOutcome],
    image: BuildResult | None = None,
    environment: PythonEnvironment | None = None,
) -> Verification:
    """The verification of ``results``: the control host with every run it made, first."""
    control = crosshost.control_outcome(
        control_host,
        {
            r.experiment.name: [*r.controls, *(c.run for c in r.checks)]
            for r in results
            if r.controls
        },
    )
    unfinished = _control_unfinished(results)
    if unfinished is not None:
        # A host counts towards the quorum for the runs it finished, never for runs that
        # did not: a control host that lost its engine agreed with nothing.
        control.status, control.reason = unfinished
    return Verification(
        id=f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        image=image,
        variations=[v.name for v in variations],
        control_runs=control_runs,
        experiments=results,
        seed=config.seed,
        profile=config.profile,
        threads=config.threads,
        hosts=[control, *others],
        environment=environment,
    )


def _control_unfinished(results: list[ExperimentVerification]) -> tuple[str, str] | None:
    """Why the control host cannot count towards the quorum, when it cannot: a run harness
    could not finish there (a lost engine: unreachable), or no control run that succeeded
    at all. An experiment that failed or moved is an answer, and the host still counts."""
    for result in results:
        if result.trouble is not None:
            label, error = result.trouble
            status = crosshost.UNREACHABLE if isinstance(error, EngineUnavailable) else "failed"
            return status, f"{result.experiment.name}, {label}: {error.message}"
    if results and not any(result.controls for result in results):
        first = results[0]
        return "failed", f"{first.experiment.name}: {first.failure or 'no control run succeeded'}"
    return None


# One run of a verification: the request, and where its progress lines go.
RunOne = Callable[[RunRequest, Callable[[str], None]], RunResult]
# A run a verification plans (its label and variations), and with what it ended (None: not
# started, as a run before it in its round failed; an error: harness could not finish it).
Planned = tuple[str, Sequence[Variation]]
Made = tuple[Planned, RunResult | HarnessError | None]


def _verify_all(
    config: Config,
    pool: Pool,
    run: RunOne,
    requests: Sequence[RunRequest],
    *,
    variations: Sequence[Variation],
    control_runs: int,
    say: Callable[[str], None],
    named: Callable[[str], str],
) -> list[ExperimentVerification]:
    """Every experiment at once, their runs sharing ``pool``; results in the given order."""
    return gather(
        [
            partial(
                _verify_one,
                config,
                pool,
                run,
                request=request,
                variations=variations,
                control_runs=control_runs,
                say=say,
                named=named,
            )
            for request in requests
        ],
        "experiments",
    )


def _verify_one(
    config: Config,
    pool: Pool,
    run_request: RunOne,
    *,
    request: RunRequest,
    variations: Sequence[Variation],
    control_runs: int,
    say: Callable[[str], None],
    named: Callable[[str], str],
) -> ExperimentVerification:
    """One experiment's verification, in two rounds of runs that each run at once.

    First the control runs and the run with every variation; then, only when that run
    moved the artifacts, each variation alone. The outcome is read from the runs in this
    order, stopping where a failed run or disagreeing controls leave nothing to judge, so
    that it is the same whichever run finished first and however many ran at once.
    """
    experiment = request.experiment
    outcome = ExperimentVerification(experiment)
    policies = config.policies_for(experiment)
    expected = records.recent_seconds(config.project_root, experiment.name)

    def runs(planned: Sequence[Planned], *, stop_on_failure: bool) -> list[Made]:
        calls = [
            partial(
                _attempt,
                run_request,
                replace(request, setup=setup_for(chosen) if chosen else CONTROL),
                prefixed(say, named(f"{experiment.name}, {label}")),
            )
            for label, chosen in planned
        ]
        stops = partial(_stops, stop_on_failure=stop_on_failure)
        made = pool.map(calls, stop_when=stops, seconds=[expected] * len(calls))
        return list(zip(planned, made, strict=True))

    def succeeded(label: str, result: RunResult | HarnessError | None) -> RunResult | None:
        if isinstance(result, RunResult) and result.status == "succeeded":
            return result
        if not isinstance(result, RunResult):
            outcome.unfinished.append(_not_judged(label, result))
        if outcome.failure is None:
            # Never silence: a run that did not start must not let the rest pass unjudged
            # (a round only cancels runs after one that failed, which is named first).
            outcome.failure = _failure(label, result)
        return None

    def check(label: str, chosen: Sequence[Variation], result: RunResult) -> Check:
        comparison = compare_paths(
            str(outcome.controls[0].folder), str(result.folder), policies=policies
        )
        found = Check(label, tuple(v.name for v in chosen), result, comparison)
        outcome.checks.append(found)
        return found

    everything = f"all variations ({', '.join(v.name for v in variations)})"
    first_round: list[Planned] = [(f"control run {n}", ()) for n in range(1, control_runs + 1)]
    if variations:
        first_round.append((everything, tuple(variations)))
    made_first = runs(first_round, stop_on_failure=True)
    for index, ((label, chosen), made) in enumerate(made_first):
        result = succeeded(label, made)
        if result is None:
            _after_trouble(outcome, made, made_first[index + 1 :])
            return outcome  # a failed run: the rest cannot be judged (or did not run)
        if not outcome.controls:
            outcome.controls.append(result)
            continue
        found = check(label, chosen, result)
        if not chosen:
            outcome.controls.append(result)
            if not found.agrees:
                outcome.culprits = [RERUN]
                return outcome  # variations cannot be judged against a control that moves
        elif found.agrees:
            return outcome
    if not variations:
        return outcome
    for (label, chosen), made in runs(
        [(f"variation {v.name}", (v,)) for v in variations], stop_on_failure=False
    ):
        result = succeeded(label, made)
        if result is not None and not check(label, chosen, result).agrees:
            outcome.culprits.append(chosen[0].name)
    if not outcome.culprits and outcome.failure is None:
        # Only the combination moves the artifacts; name it as a whole.
        outcome.culprits = ["+".join(v.name for v in variations)]
    return outcome


def _attempt(
    run_request: RunOne, request: RunRequest, tell: Callable[[str], None]
) -> RunResult | HarnessError:
    """One run, its trouble (a lost engine, ...) kept rather than raised: the runs that
    finished are still judged and saved, and the command reports the trouble after."""
    try:
        return run_request(request, tell)
    except HarnessError as error:
        return error


def _stops(result: RunResult | HarnessError, *, stop_on_failure: bool) -> bool:
    """Whether a run's end stops its round: trouble always, a failed run in the first."""
    if isinstance(result, HarnessError):
        return True
    return stop_on_failure and result.status != "succeeded"


def _failure(label: str, result: RunResult | HarnessError | None) -> str:
    """Why an experiment cannot be judged, from the first run that gave nothing to judge."""
    if result is None:
        return f"the {label} run did not start"
    if isinstance(result, HarnessError):
        return f"the {label} run could not finish: {result.message}"
    return f"the {label} run {result.run_id} {result.status}: {result.record.get('error')}"


def _after_trouble(
    outcome: ExperimentVerification, made: RunResult | HarnessError | None, rest: list[Made]
) -> None:
    """After trouble (not an answer) stopped a round, name the rest of the round as each
    ended, so that the saved document shows every run that finished. A failed run names
    none: what ran after it depends on timing, and the document must not."""
    if isinstance(made, HarnessError):
        outcome.unfinished += [_not_judged(label, other) for (label, _), other in rest]


def _not_judged(label: str, made: RunResult | HarnessError | None) -> Unfinished:
    """A run of a round that trouble stopped: how it ended, though nothing judged it."""
    if made is None:
        return Unfinished(label, "not started")
    if isinstance(made, HarnessError):
        lost = isinstance(made, EngineUnavailable)
        return Unfinished(label, "lost" if lost else "failed", made, run_id=made.run_id)
    return Unfinished(label, f"{made.status}, not judged", run_id=made.run_id)


def save(config: Config, verification: Verification) -> Path:
    path = config.project_root / FOLDER / f"{verification.id}.json"
    atomic.write_text(
        path, json.dumps(verification.as_dict(config), indent=2, sort_keys=True) + "\n"
    )
    return path


def load(config: Config, reference: str | None) -> tuple[Path, dict[str, Any]]:
    """A saved verification: by id (or unique prefix), by path, or the newest one."""
    folder = config.project_root / FOLDER
    if reference and Path(reference).is_file():
        path = Path(reference)
    else:
        candidates = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if reference:
            candidates = [p for p in candidates if p.stem.startswith(reference)]
        if not candidates:
            raise HarnessError(
                f"no verification {reference or ''} in {FOLDER}".replace("  ", " "),
                "run `harness verify` first",
            )
        if reference and len(candidates) > 1:
            raise HarnessError(
                f"{reference!r} matches {len(candidates)} verifications", "give more of the id"
            )
        path = candidates[-1]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise HarnessError(
            f"{path} cannot be read: {error}", "run `harness verify` again"
        ) from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise HarnessError(f"{path} is not a {SCHEMA} document", "run `harness verify` again")
    return path, document
