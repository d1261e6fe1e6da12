"""`harness verify`: does an experiment reproduce when what should not matter changes?

For each experiment: control runs (identical setup, fresh containers) must agree with each
other; then one run with every selected variation at once must agree with the control.
When it does not, or fails where the controls did not, each variation is tried alone to
name the one(s) that move the artifacts or break the run, each with its evidence, as
Debian's reprotest does. Artifacts agree when `harness compare` passes them under the
experiment's policies (bitwise by default).

The outcome is saved as a verification document under .harness/verifications/, which
`harness certify` turns into a signed certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from harness import atomic
from harness.compare.model import ComparisonResult
from harness.compare.report import to_dict
from harness.compare.tree import compare_paths
from harness.config import STATE_FOLDER, Config, Experiment
from harness.container import PROJECT
from harness.engine import ContainerEngine
from harness.errors import EngineUnavailable, HarnessError
from harness.fleet import crosshost
from harness.fleet.hosts import Host, local_host
from harness.images.build import BuildResult
from harness.parallel import Pool, Together, available_cores, default_jobs, gather
from harness.runs import held_paths, noise, records
from harness.runs import variations as variations_module
from harness.runs.host_executor import PythonEnvironment, run_on_host
from harness.runs.run import RunRequest, RunResult, run_experiment
from harness.runs.variations import CONTROL, Choice, Variation, leave_out_line, setup_for
from harness.ui import prefixed

SCHEMA = "harness.verification/v1"
# The variations of a verification: one list for every experiment, or each experiment's
# own choice by name (see harness.runs.variations.choices_for).
Chosen = Sequence[Variation] | Mapping[str, Choice]
FOLDER = STATE_FOLDER / "verifications"
# The culprit named when control runs already disagree: nothing harness varied moved the
# artifacts, so the experiment depends on the clock, unseeded randomness or outside state.
RERUN = "rerun"
# What a variation changes that a failing experiment most likely depends on: said with the
# error of the run under that variation alone.
_DEPENDS_ON = {
    "workdir": "the folder the project lies in: name files relative to the project, never "
    "by its absolute path, in what the run reads and in what it writes",
    "user": "a file or folder only the usual user can use: write under the output folder or /tmp",
    "hostname": "the host name",
    "timezone": "the local time zone",
    "locale": "the locale: give files an encoding, sort without the locale",
    "cpus": "the number of CPUs: pin the thread and worker counts",
    "env": "a variable of the environment",
    "hashseed": "the order of a set or dict of strings: sort it",
}


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
            "error": self.run.record.get("error"),
        }


class NothingToCompare(HarnessError):
    """A control run that succeeded with no artifact: a verification of it would compare
    nothing and still read "reproducible", so it is trouble, never a verdict."""

    default_hint = (
        "write results into the output folder ($HARNESS_OUTPUT for a command, output= for "
        "an entry) or next to the code, or keep what a command prints with stdout = "
        '"stdout.txt" under the experiment, and check that outputs and exclude under the '
        "experiment do not leave every file out"
    )


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
    # Each culprit with what shows it: "fails under workdir: ..." or "moves under ...".
    evidence: dict[str, str] = field(default_factory=dict)
    # When only logs or event files moved: the line of configuration that sets them aside.
    hint: str | None = None
    # The variations chosen for it and where the choice came from.
    choice: Choice | None = None

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
            "evidence": dict(self.evidence),
            "hint": self.hint,
            "variations": self.choice.as_dict() if self.choice else None,
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
    variations: Chosen,
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
                verify_experiments,
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
    return verification_of(
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
    variations: Chosen,
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
        results = verify_experiments(
            config,
            pool,
            run,
            requests,
            variations=variations,
            control_runs=control_runs,
            say=say,
            named=lambda text: text,
        )
    return verification_of(
        config,
        results,
        variations=variations,
        control_runs=control_runs,
        control_host=local_host(config),
        others=[],
        environment=python,
    )


def verification_of(
    config: Config,
    results: list[ExperimentVerification],
    *,
    variations: Chosen,
    control_runs: int,
    control_host: Host,
    others: list[crosshost.HostOutcome],
    image: BuildResult | None = None,
    environment: PythonEnvironment | None = None,
) -> Verification:
    """The verification of ``results``: the control host with every run it made, first.

    Each executor that verifies (containers here, the host executor, SLURM's nodes in
    :mod:`harness.fleet.slurm.across`) ends with this, so that every verification reads
    alike."""
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
        variations=variations_module.ran_in_any(
            variations_module.per_experiment(
                variations, [r.experiment.name for r in results]
            ).values()
        ),
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


def verify_experiments(
    config: Config,
    pool: Pool,
    run: RunOne,
    requests: Sequence[RunRequest],
    *,
    variations: Chosen,
    control_runs: int,
    say: Callable[[str], None],
    named: Callable[[str], str],
) -> list[ExperimentVerification]:
    """Every experiment at once, their runs sharing ``pool``; results in the given order.

    ``run`` makes one run wherever the executor makes them (a container, the host, a batch
    job pinned to a node): the control runs and the variations are planned here, alike
    for every executor."""
    choices = variations_module.per_experiment(
        variations, [request.experiment.name for request in requests]
    )
    return gather(
        [
            partial(
                _verify_one,
                config,
                pool,
                run,
                request=request,
                variations=choices[request.experiment.name].variations,
                choice=choices[request.experiment.name],
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
    choice: Choice,
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
    outcome = ExperimentVerification(experiment, choice=choice)
    policies = config.policies_for(experiment)
    expected = records.recent_seconds(config.project_root, experiment.name)

    def runs(planned: Sequence[Planned], *, stop_on_failure: bool) -> list[Made]:
        varied: set[str] = set()
        calls = [
            partial(
                _attempt,
                run_request,
                replace(request, setup=setup_for(chosen) if chosen else CONTROL),
                prefixed(say, named(f"{experiment.name}, {label}")),
                varied if chosen else None,
            )
            for label, chosen in planned
        ]
        # A failed run with variations does not stop the round: each variation alone is
        # then tried to name the one that breaks it, against control runs that finished.
        stops = partial(_stops, stop_on_failure=stop_on_failure, varied=varied)
        made = pool.map(calls, stop_when=stops, seconds=[expected] * len(calls))
        return list(zip(planned, made, strict=True))

    def succeeded(label: str, result: RunResult | HarnessError | None) -> RunResult | None:
        if isinstance(result, RunResult) and result.status == "succeeded":
            return _judgeable(outcome, label, result)
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
    combined_failed: RunResult | None = None
    for index, ((label, chosen), made) in enumerate(made_first):
        if chosen and isinstance(made, RunResult) and made.status != "succeeded":
            # The run with every variation failed where the controls did not: not the
            # experiment's own failure, so each variation alone is tried to name it.
            outcome.checks.append(Check(label, tuple(v.name for v in chosen), made, None))
            combined_failed = made
            break
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
                outcome.hint = _rerun_hint(outcome, found)
                # Variations cannot be judged against a control that moves; a run they
                # break still can, so that one verify names both.
                combined_failed = _failed_with_variations(outcome, made_first)
                if combined_failed is None:
                    return outcome
                break
        elif found.agrees:
            return outcome
    if not variations or (outcome.failure is not None and combined_failed is None):
        return outcome
    alone = runs([(f"variation {v.name}", (v,)) for v in variations], stop_on_failure=False)
    _name_culprits(outcome, alone, succeeded, check, judge_moves=RERUN not in outcome.culprits)
    _conclude(outcome, variations, everything, combined_failed)
    return outcome


def _judgeable(outcome: ExperimentVerification, label: str, result: RunResult) -> RunResult | None:
    """A run that succeeded, unless it is the first control and has no artifact: then
    nothing can be judged, which is trouble (see :func:`nothing_to_compare`)."""
    if outcome.controls or result.record["artifacts"]:
        return result
    nothing_to_compare(outcome, label, result)
    return None


def nothing_to_compare(outcome: ExperimentVerification, label: str, result: RunResult) -> None:
    """Stop at a first control run with no artifact: nothing to judge, said as trouble."""
    unlisted = len(result.record.get("unlisted") or [])
    why = (
        f"every file it wrote ({unlisted}) was set aside by outputs or exclude"
        if unlisted
        else "it wrote no file"
    )
    error = NothingToCompare(
        f"its {label} ({result.run_id}) succeeded with no artifact ({why}), so there is "
        "nothing to compare"
    )
    outcome.unfinished.append(Unfinished(label, "no artifact", error, run_id=result.run_id))
    outcome.failure = error.message


def _failed_with_variations(outcome: ExperimentVerification, made: list[Made]) -> RunResult | None:
    """The run with every variation of a first round, when it ended and failed: kept among
    the checks, to be tried per variation."""
    (label, chosen), last = made[-1]
    if chosen and isinstance(last, RunResult) and last.status != "succeeded":
        outcome.checks.append(Check(label, tuple(v.name for v in chosen), last, None))
        return last
    return None


def _conclude(
    outcome: ExperimentVerification,
    variations: Sequence[Variation],
    everything: str,
    combined_failed: RunResult | None,
) -> None:
    """After each variation alone: name the combination when none alone moved, say why
    the combined run failed, and give the line that sets logs aside when only they moved."""
    if not outcome.culprits and outcome.failure is None:
        # Only the combination moves the artifacts (or fails); name it as a whole.
        outcome.culprits = ["+".join(v.name for v in variations)]
    if combined_failed is not None and outcome.failure is None:
        failing = [text for text in outcome.evidence.values() if text.startswith("fails")]
        outcome.failure = "; ".join(failing) or (
            f"fails under {everything} together, under none alone: "
            f"{combined_failed.record.get('error')}"
        )
    if outcome.hint is None:
        outcome.hint = _noise_hint(outcome) or _failing_hint(outcome)


def _failing_hint(outcome: ExperimentVerification) -> str | None:
    """When runs fail under some variations alone: the line that leaves them out, for an
    experiment that may depend on what they change (the fix named with each is better)."""
    failing = [
        name
        for name, text in outcome.evidence.items()
        if text.startswith("fails") and name in variations_module.BY_NAME
    ]
    if not failing:
        return None
    line = leave_out_line(outcome.choice, outcome.experiment.name, failing)
    what = "it" if len(failing) == 1 else "them"
    return f"where {outcome.experiment.name} may depend on {what}, leave {what} out: {line}"


def _name_culprits(
    outcome: ExperimentVerification,
    alone: list[Made],
    succeeded: Callable[[str, RunResult | HarnessError | None], RunResult | None],
    check: Callable[[str, Sequence[Variation], RunResult], Check],
    *,
    judge_moves: bool = True,
) -> None:
    """Judge each variation's run alone: one that fails or (``judge_moves``: the control
    runs agreed) moves the artifacts is a culprit, with its evidence; every run is kept
    among the checks."""
    for (label, chosen), made in alone:
        name = chosen[0].name
        if isinstance(made, RunResult) and made.status != "succeeded":
            outcome.checks.append(Check(label, (name,), made, None))
            outcome.culprits.append(name)
            outcome.evidence[name] = fails_under(name, made)
            continue
        result = succeeded(label, made)
        if result is None:
            continue
        found = check(label, chosen, result)
        if judge_moves and not found.agrees:
            outcome.culprits.append(name)
            outcome.evidence[name] = moves_under(
                name,
                found,
                outcome.controls[0],
                choice=outcome.choice,
                experiment=outcome.experiment.name,
            )


def moves_under(
    name: str,
    check: Check,
    control: RunResult | None = None,
    *,
    choice: Choice | None = None,
    experiment: str = "NAME",
) -> str:
    """The evidence that a variation moves the artifacts: which, and what it points to;
    where the fix may be to leave the variation out, the line of configuration that does it
    for ``experiment`` (from ``choice``, its choice of variations)."""
    depends = _DEPENDS_ON.get(name)
    moved = ", ".join(check.moved()) or "?"
    fields = _held_path_fields(check, control) if name == "workdir" else None
    if fields:
        return (
            f"moves under {name}: {moved} (only the project's path it holds differs, in "
            f"{_listed(fields)}; all else is identical. Every host runs the project at "
            f"{PROJECT} in harness's images, so their runs agree; outside them the file "
            "changes with the checkout's path. Save paths relative to the project, or leave "
            f"the variation out: {leave_out_line(choice, experiment, [name])})"
        )
    return f"moves under {name}: {moved}" + (f" ({depends})" if depends else "")


def _held_path_fields(check: Check, control: RunResult | None) -> list[str] | None:
    """Where the check's artifacts differ from the control's, when each difference is the
    path its project lay at (Lightning's ModelCheckpoint saves dirpath and best_model_path
    absolute: the user cannot make them relative, but can judge whether the path matters)."""
    if control is None:
        return None
    return held_paths.only_the_project_path(
        check.comparison,
        held_paths.project_path(control.folder),
        held_paths.project_path(check.run.folder),
    )


def _rerun_hint(outcome: ExperimentVerification, check: Check) -> str | None:
    """Why the control runs disagree, when it can be told: only logs moved, or only the
    project's path the files hold (each run of the host executor or a SLURM job lies in a
    folder of its own, so such a file never repeats there)."""
    noise_hint = _noise_hint(outcome)
    fields = _held_path_fields(check, outcome.controls[0] if outcome.controls else None)
    if noise_hint is not None or not fields:
        return noise_hint
    return (
        f"only the project's path the files hold differs ({', '.join(check.moved())}, in "
        f"{_listed(fields)}): each run here lies in a folder of its own, so they never repeat "
        "byte for byte. Save paths relative to the project, or verify in a container, where "
        f"every run's project lies at {PROJECT}"
    )


def _listed(fields: Sequence[str]) -> str:
    return ", ".join(fields[:3]) + (f" and {len(fields) - 3} more" if len(fields) > 3 else "")


def fails_under(name: str, run: RunResult) -> str:
    """The evidence that a variation breaks a run: its error, and what it points to."""
    error = _condensed(str(run.record.get("error") or f"the run {run.status}"))
    depends = _DEPENDS_ON.get(name)
    return f"fails under {name}: {error}" + (f" ({depends})" if depends else "")


def _condensed(error: str) -> str:
    """``FileNotFoundError: [Errno 2] No such file or directory: 'data/x.csv'`` as
    ``FileNotFoundError 'data/x.csv'``: the exception and what it names, which say it all."""
    return re.sub(r"(\w+Error): \[Errno \d+\] [^:]+: ", r"\1 ", error)


def _noise_hint(outcome: ExperimentVerification) -> str | None:
    """The line that sets logs aside, when only logs or event files moved."""
    moved = sorted({path for check in outcome.checks for path in check.moved()})
    return noise.only_noise_moved(outcome.experiment.name, moved)


def _attempt(
    run_request: RunOne,
    request: RunRequest,
    tell: Callable[[str], None],
    varied: set[str] | None = None,
) -> RunResult | HarnessError:
    """One run, its trouble (a lost engine, ...) kept rather than raised: the runs that
    finished are still judged and saved, and the command reports the trouble after. A run
    with variations adds its id to ``varied``."""
    try:
        result = run_request(request, tell)
    except HarnessError as error:
        return error
    if varied is not None:
        varied.add(result.run_id)
    return result


def _stops(
    result: RunResult | HarnessError, *, stop_on_failure: bool, varied: set[str] | None = None
) -> bool:
    """Whether a run's end stops its round: trouble always, a failed control run in the
    first (a failed run with variations, its id in ``varied``, leaves the controls to
    finish)."""
    if isinstance(result, HarnessError):
        return True
    return stop_on_failure and result.status != "succeeded" and result.run_id not in (varied or ())


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
