"""The run record of what one `harness k8s render` Job left on the claim, for `harness collect`.

A gathered JOB-NAME/ folder holds artifacts/ and meta/: the run spec and the job facts
the initContainer copied there, and the runtime's report. All of it was written on a
cluster node, so it is read as untrusted input (bounded, no links followed) and checked
to be one Job's before it becomes a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import harness
from harness import untrusted
from harness.fleet.k8s.settings import IMAGE_ID
from harness.runs import records
from harness.runs.run import RUNTIME_REPORT
from harness.runtime import spec as runtime_spec

JOB_SCHEMA = "harness.k8s-job/v1"
# What a Job's meta/ folder holds beside the runtime's report.
JOB_FACTS = "job.json"
SPEC_FILE = "spec.json"


def record_from_job_output(folder: Path) -> dict[str, Any]:
    """The run record of one Job's gathered folder (JOB-NAME/ with artifacts/ and meta/).

    The status is "succeeded" only when the runtime says so and every declared output
    exists; "failed" with the runtime's error otherwise, or "aborted" when the runtime was
    stopped by a signal (a deleted pod, or a Job past its deadline).
    """
    meta = folder / records.META
    spec_document = _read_json(meta / SPEC_FILE, folder)
    report = _read_json(meta / RUNTIME_REPORT, folder)
    facts = _read_json(meta / JOB_FACTS, folder)
    try:
        spec = runtime_spec.parse(spec_document)
    except runtime_spec.SpecError as error:
        raise records.CorruptRecord(
            f"{meta / SPEC_FILE} is not a valid run spec: {error}", _NOT_A_JOB_HINT
        ) from None
    if facts.get("schema") != JOB_SCHEMA:
        raise records.CorruptRecord(
            f"{meta / JOB_FACTS} is not a {JOB_SCHEMA} document (schema: {facts.get('schema')!r})",
            _NOT_A_JOB_HINT,
        )
    if report.get("run_id") != spec.run_id:
        raise records.CorruptRecord(
            f"{meta / RUNTIME_REPORT} is the report of run {report.get('run_id')!r}, "
            f"not of {spec.run_id!r}",
            _NOT_A_JOB_HINT,
        )
    image = facts.get("image")
    node = facts.get("node")
    if not (
        isinstance(image, dict)
        and isinstance(image.get("id"), str)
        and IMAGE_ID.fullmatch(image["id"])
        and isinstance(node, str)
        and isinstance(facts.get("source"), dict)
        and isinstance(facts.get("environment"), dict)
        and isinstance(facts.get("container"), dict)
    ):
        raise records.CorruptRecord(
            f"{meta / JOB_FACTS} lacks the image, node, source, environment or container",
            _NOT_A_JOB_HINT,
        )
    artifacts = folder / records.ARTIFACTS
    status, exit_code, reason = _outcome(report, facts, artifacts)
    timings: dict[str, Any] = {
        "started_at": facts.get("started_at") or facts.get("rendered_at") or "",
    }
    runtime_timings = report.get("timings")
    if isinstance(runtime_timings, dict):
        timings.update({k: v for k, v in runtime_timings.items() if v is not None})
    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "run_id": spec.run_id,
        "status": status,
        "exit_code": exit_code,
        "error": reason,
        "experiment": spec.experiment,
        "entry": spec.entry,
        "command": None if spec.command is None else list(spec.command),
        "parameters": dict(spec.parameters),
        "seed": spec.seed,
        "profile": spec.profile,
        "threads": spec.threads,
        "device": spec.device,
        "image": {
            "reference": str(image.get("reference", "")),
            "id": image["id"],
            "digest": str(image.get("digest", image["id"])),
            "variant": str(image.get("variant", "")),
        },
        # Known only from the image's labels, which a render does not read.
        "constraints_sha256": None,
        "lock_sha256": None,
        "source": facts["source"],
        "inputs": {},
        "environment": facts["environment"],
        "container": {**facts["container"], "node_name": facts.get("node_name")},
        "harness_version": str(facts.get("harness_version", harness.__version__)),
        "engine": {"where": "kubernetes", "version": None},
        "timings": timings,
        # Kubernetes keeps the log (`kubectl logs job/NAME`); saved beside meta/, it is read.
        "log": records.LOG,
        "artifacts": records.artifacts(artifacts) if artifacts.is_dir() else [],
        "metrics": report.get("metrics"),
        "observed": report.get("observed") or {},
        "violations": report.get("violations") or [],
        "fingerprint": report.get("fingerprint") or {},
        "host": node,
    }
    if status != "succeeded":
        record["log_tail"] = records.log_tail(folder / records.LOG)
    return record


_NOT_A_JOB_HINT = "pass one Job's folder as gathered from the claim (JOB-NAME/ with meta/)"


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    """A document of the Job's ``meta/``, which its container wrote: opened without
    following a link at any level below ``folder`` (a linked ``meta/`` too), only as a
    regular file, within bounds."""
    relative = path.relative_to(folder).as_posix()
    try:
        data = untrusted.read_inside(folder, relative, limit=untrusted.DOCUMENT_LIMIT, what="it")
        document = untrusted.parse_json(data, what=f"it {path}")
    except FileNotFoundError:
        missing = path.relative_to(folder).as_posix()
        hint = (
            "the run has not finished, or its container was killed before the runtime "
            "could report: see `kubectl describe job` and `kubectl logs job/NAME`"
            if path.name == RUNTIME_REPORT
            else _NOT_A_JOB_HINT
        )
        raise records.CorruptRecord(f"{folder} is not a Job's output: no {missing}", hint) from None
    except untrusted.UntrustedInputError as error:
        raise records.CorruptRecord(
            f"{path} cannot be read: it {error.reason}", _NOT_A_JOB_HINT
        ) from None
    if not isinstance(document, dict):
        raise records.CorruptRecord(f"{path} is not a JSON object", _NOT_A_JOB_HINT)
    return document


def _outcome(
    report: Mapping[str, Any], facts: Mapping[str, Any], artifacts: Path
) -> tuple[str, int | None, str | None]:
    exit_code = report.get("exit_code")
    code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
    error = report.get("error") if isinstance(report.get("error"), str) else None
    status = report.get("status")
    if status == "interrupted":
        return "aborted", code, error or "the runtime was interrupted"
    if status != "succeeded":
        return "failed", code, error or f"the runtime reported {status!r}"
    outputs = facts.get("outputs") or []
    missing = [
        glob
        for glob in outputs
        if isinstance(glob, str) and not (artifacts.is_dir() and any(artifacts.glob(glob)))
    ]
    if missing:
        return "failed", code, f"declared output {missing[0]!r} was not written"
    return "succeeded", code, None
