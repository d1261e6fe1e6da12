"""The same image on several hosts: ship it, run there, compare every host with the control.

The control host has already run each experiment (its first control run is the
reference). Every other host gets the control's image by digest (see
:mod:`harness.shipping`), runs each experiment once with the control's seed, profile and
threads, and its artifacts are compared with the control's under the experiment's
policies. A host ends in one of these states:

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
from typing import Any

from harness import records, shipping
from harness.build import BuildResult
from harness.compare.tree import compare_paths
from harness.config import Config, Experiment
from harness.engine import Engine
from harness.errors import EngineUnavailable, HarnessError
from harness.hosts import Host
from harness.run import RunRequest, RunResult, check_gpu_request, run_experiment

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
        }


def quorum(outcomes: Sequence[HostOutcome]) -> dict[str, Any]:
    """Which hosts agreed, of how many: what a certificate states as "k of n"."""
    agreed = [o.host.name for o in outcomes if o.counted]
    return {"agreed": agreed, "of": len(outcomes), "text": f"{len(agreed)} of {len(outcomes)}"}


def on_hosts(
    control_engine: Engine,
    config: Config,
    image: BuildResult,
    hosts: Sequence[Host],
    experiments: Sequence[Experiment],
    *,
    reference_runs: Mapping[str, RunResult],
    request_for: Callable[[Experiment], RunRequest],
    say: Callable[[str], None] = lambda _: None,
) -> list[HostOutcome]:
    """Run ``experiments`` on each of ``hosts`` (not the control) and compare each with it.

    ``reference_runs`` holds the control's run of each experiment that succeeded; an
    experiment without one is run nowhere else, as there is nothing to compare it with.
    """
    if not reference_runs:
        reason = "no experiment reproduced on the control host, so there is nothing to compare"
        return [HostOutcome(host, FAILED, reason) for host in hosts]
    return [
        _on_host(
            control_engine,
            config,
            image,
            host,
            [e for e in experiments if e.name in reference_runs],
            reference_runs=reference_runs,
            request_for=request_for,
            say=say,
        )
        for host in hosts
    ]


def _on_host(
    control_engine: Engine,
    config: Config,
    image: BuildResult,
    host: Host,
    experiments: Sequence[Experiment],
    *,
    reference_runs: Mapping[str, RunResult],
    request_for: Callable[[Experiment], RunRequest],
    say: Callable[[str], None],
) -> HostOutcome:
    outcome = HostOutcome(host, AGREED)
    try:
        engine = host.connect()
        outcome.shipment = shipping.ship(
            control_engine,
            engine,
            image_id=image.image_id,
            reference=image.reference,
            host=host.name,
            mode=host.ship,
            registry=config.registry,
            say=say,
        )
        if outcome.shipment.method != "present":
            say(
                f"{host.name}: image {image.image_id[:19]} there by {outcome.shipment.method} "
                f"in {outcome.shipment.seconds:.1f} s"
            )
        for experiment in experiments:
            request = request_for(experiment)
            # A host that cannot pass GPUs in is found out before anything runs there.
            check_gpu_request(engine, image.variant, request.gpus)
            result = run_experiment(engine, config, image, request, host=host, say=say)
            judge(outcome, config, experiment, reference_runs[experiment.name], result)
    except EngineUnavailable as error:
        outcome.status, outcome.reason = UNREACHABLE, error.one_line()
    except shipping.ImageMismatch as error:
        outcome.status, outcome.reason = REFUSED, error.one_line()
    except shipping.ShipError as error:
        outcome.status, outcome.reason = UNSHIPPED, error.one_line()
    except HarnessError as error:
        outcome.status, outcome.reason = FAILED, error.one_line()
    if outcome.status not in COUNTED:
        say(f"{host.name}: {outcome.status}: {outcome.reason}")
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
