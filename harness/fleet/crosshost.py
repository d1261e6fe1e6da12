"""The same image on several hosts: ship it, run there, compare every host with the control.

Every other host gets the control's image by digest (see :mod:`harness.fleet.shipping`) and
runs each experiment once with the control's seed, profile and threads, while the control
host makes its own runs: hosts work at the same time, not one after another. Once both
are done, each host's artifacts are compared with the control's first run under the
experiment's policies. A host ends in one of these states:

- ``agreed``: every experiment ran and every artifact passed;
- ``differs``: an artifact moved (an answer: the result does not reproduce there);
- ``unreachable``: its engine did not answer, or was lost during the runs;
- ``refused``: it holds another image than the control's, so nothing ran;
- ``not shipped``: the image could not be put there (a registry refused the push, ...);
- ``failed``: a run failed there.

Only agreeing hosts count towards a certificate; the others are named in it with why.
Runs on a host that fails midway keep their records, as every run does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from harness.compare.tree import compare_paths
from harness.config import Config, Experiment
from harness.engine import ContainerEngine
from harness.errors import EngineUnavailable, HarnessError
from harness.fleet import shipping
from harness.fleet.hosts import Host
from harness.images.build import BuildResult
from harness.parallel import Pool, default_jobs
from harness.runs import reconcile, records
from harness.runs.run import RunRequest, RunResult, check_gpu_request, run_experiment
from harness.ui import prefixed

CONTROL = "control"
AGREED = "agreed"
DIFFERS = "differs"
UNREACHABLE = "unreachable"
REFUSED = "refused"
UNSHIPPED = "not shipped"
FAILED = "failed"
# States in which a host counts towards the quorum a certificate states.
COUNTED = (CONTROL, AGREED)
# States in which a host could not take part: trouble, not an answer.
TROUBLE = (UNREACHABLE, REFUSED, UNSHIPPED)


@dataclass
class HostOutcome:
    """How one host did against the control."""

    host: Host
    status: str
    reason: str | None = None
    shipment: shipping.Shipment | None = None
    # Experiment name -> the runs it made there (the control's first run for the control).
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    # Experiment name -> artifacts that did not pass against the control.
    moved: dict[str, list[str]] = field(default_factory=dict)
    # For collected runs: the id of the host key that signed them, or "unsigned".
    signer: str | None = None

    @property
    def counted(self) -> bool:
        return self.status in COUNTED

    def as_dict(self) -> dict[str, Any]:
        first = next((r for runs in self.runs.values() for r in runs), None)
        record = first.record if first else {}
        return {
            "name": self.host.name,
            "url": self.host.url,
            "status": self.status,
            "reason": self.reason,
            "shipment": self.shipment.as_dict() if self.shipment else None,
            "engine": record.get("engine"),
            "device_class": records.device_class(record) if first else None,
            "fingerprint": record.get("fingerprint") or {},
            "runs": {name: [r.run_id for r in runs] for name, runs in self.runs.items()},
            "moved": self.moved,
            "signer": self.signer,
        }


def quorum(outcomes: Sequence[HostOutcome]) -> dict[str, Any]:
    """Which hosts agreed, of how many: what a certificate states as "k of n"."""
    agreed = [o.host.name for o in outcomes if o.counted]
    return {"agreed": agreed, "of": len(outcomes), "text": f"{len(agreed)} of {len(outcomes)}"}


@dataclass
class HostRuns:
    """What one host did before it is compared with the control: the image's trip there and
    its runs, in the order of the experiments, up to the first trouble if any."""

    host: Host
    shipment: shipping.Shipment | None = None
    runs: list[tuple[Experiment, RunResult]] = field(default_factory=list)
    # (status, reason) when the host could not run everything: one of TROUBLE, or FAILED.
    trouble: tuple[str, str] | None = None


def run_there(
    control_engine: ContainerEngine,
    config: Config,
    image: BuildResult,
    host: Host,
    experiments: Sequence[Experiment],
    *,
    request_for: Callable[[Experiment], RunRequest],
    jobs: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> HostRuns:
    """Put the control's image on ``host`` and run every experiment there once.

    This starts with the control's own runs, not after them: the host does not wait for
    references it needs only to be judged (:func:`compared`). Up to ``jobs`` runs at once
    (default: from the host's cores and the run's threads). Trouble is caught and kept:
    one host that fails never stops the others.
    """
    done = HostRuns(host)

    def tell(message: str) -> None:
        say(f"[{host.name}] {message}")

    try:
        engine = host.connect()
        # What a lost engine or a killed harness left there goes before new runs start.
        reconcile.sweep(engine, config.project_root, tell)
        done.shipment = shipping.ship(
            control_engine,
            engine,
            image_id=image.image_id,
            reference=image.reference,
            host=host.name,
            mode=host.ship,
            registry=config.registry,
            say=tell,
        )
        if done.shipment.method != "present":
            tell(
                f"image {image.image_id[:19]} there by {done.shipment.method} "
                f"in {done.shipment.seconds:.1f} s"
            )
        requests = [request_for(experiment) for experiment in experiments]
        gpus = any(request.gpus for request in requests)
        # A host that cannot pass GPUs in is found out before anything runs there: one
        # question to its engine, not one per experiment.
        check_gpu_request(engine, image.variant, gpus)
        runs_at_once = jobs or default_jobs(engine.cores(), config.threads, gpus=gpus)
        tell(f"up to {runs_at_once} run(s) at once")

        def run(request: RunRequest) -> RunResult | HarnessError:
            try:
                return run_experiment(
                    engine,
                    config,
                    image,
                    request,
                    host=host,
                    say=prefixed(tell, request.experiment.name),
                )
            except HarnessError as error:
                return error

        with Pool(runs_at_once, host.name) as pool:
            made = pool.map(
                [partial(run, request) for request in requests],
                stop_when=lambda result: isinstance(result, HarnessError),
                seconds=[records.recent_seconds(config.project_root, e.name) for e in experiments],
            )
        for experiment, result in zip(experiments, made, strict=True):
            if isinstance(result, HarnessError):
                raise result
            if result is None:
                break  # not started: a run before it met trouble (raised above)
            done.runs.append((experiment, result))
    except HarnessError as error:
        done.trouble = (_trouble_status(error), error.one_line())
    return done


def _trouble_status(error: HarnessError) -> str:
    if isinstance(error, EngineUnavailable):
        return UNREACHABLE
    if isinstance(error, shipping.ImageMismatch):
        return REFUSED
    if isinstance(error, shipping.ShipError):
        return UNSHIPPED
    return FAILED


def compared(
    config: Config,
    there: HostRuns,
    reference_runs: Mapping[str, RunResult],
    *,
    say: Callable[[str], None] = lambda _: None,
) -> HostOutcome:
    """How a host did: its runs judged against ``reference_runs``, the control's run of each
    experiment that reproduced there. An experiment without one is compared nowhere, as
    there is nothing to compare it with."""
    outcome = HostOutcome(there.host, AGREED, shipment=there.shipment)
    if not reference_runs:
        outcome.status = FAILED
        outcome.reason = (
            "no experiment reproduced on the control host, so there is nothing to compare"
        )
        return outcome
    for experiment, result in there.runs:
        if experiment.name in reference_runs:
            judge(outcome, config, experiment, reference_runs[experiment.name], result)
    if there.trouble is not None:
        outcome.status, outcome.reason = there.trouble
    if outcome.status not in COUNTED:
        say(f"[{there.host.name}] {outcome.status}: {outcome.reason}")
    return outcome


def judge(
    outcome: HostOutcome,
    config: Config,
    experiment: Experiment,
    reference: RunResult,
    result: RunResult,
) -> None:
    """Add a host's run of ``experiment`` to its outcome, compared with the control's.

    Within one device class the experiment's policies apply (bitwise by default); across
    classes (another GPU model, a GPU against the CPU) the declared
    [tool.harness.policies-across-devices] over them, and a verdict that moves says which
    classes met.
    """
    name = experiment.name
    outcome.runs.setdefault(name, []).append(result)
    if result.status != "succeeded":
        if outcome.status in (AGREED, DIFFERS):
            outcome.status = FAILED
            outcome.reason = (
                f"{name} run {result.run_id} {result.status}: {result.record.get('error')}"
            )
        return
    mine, theirs = records.device_class(reference.record), records.device_class(result.record)
    policies = config.policies_between(experiment, mine, theirs)
    comparison = compare_paths(str(reference.folder), str(result.folder), policies=policies)
    moved = [a.path for a in comparison.artifacts if not a.passed]
    if moved or comparison.exit_code != 0:
        outcome.moved[name] = moved
        if outcome.status == AGREED:
            outcome.status = DIFFERS
            outcome.reason = f"{name}: {', '.join(moved) or 'artifacts'} moved"
            if mine != theirs:
                outcome.reason += (
                    f" ({theirs} against the control's {mine}: bit for bit holds only within "
                    "one device class; declare a tolerance under "
                    "[tool.harness.policies-across-devices])"
                    if not config.device_policies
                    else f" ({theirs} against the control's {mine}, under "
                    "[tool.harness.policies-across-devices])"
                )


def control_outcome(host: Host, runs: Mapping[str, list[RunResult]]) -> HostOutcome:
    return HostOutcome(host, CONTROL, runs=dict(runs))
