"""Logging harness runs to MLflow tracking.

Each harness run becomes one MLflow run: the experiment's parameters (and the seed) as
params, its metrics, its artifacts at the run's artifact root, and the run's own files
(``record.json``, ``log.txt``, ``spec.json``, the runtime's report) under ``harness/``.
Tags are MLflow's own where MLflow defines one (``mlflow.runName``,
``mlflow.source.git.commit``, ``mlflow.docker.image.id``, ...) and ``harness.*`` for the
rest (seed, profile, constraints and lock sha256, status, verdicts).

Configuration, lowest precedence first (the cascade of every harness option):

* ``[tool.harness.mlflow]``: ``enabled`` (bool), ``tracking-uri``, ``experiment-name``,
  ``artifact-location`` (where a new MLflow experiment keeps its artifacts)
* ``HARNESS_MLFLOW`` (1/0) for ``enabled``; MLflow's own ``MLFLOW_TRACKING_URI`` and
  ``MLFLOW_EXPERIMENT_NAME``
* the command line (``--mlflow``)

Without a tracking URI, runs go to MLflow's local default, ``sqlite:///mlflow.db``, taken at
the project root rather than the working directory (so that every folder of the project
logs to one store), with the artifacts of new experiments in ``mlruns/`` beside it, where
``mlflow ui`` run at the project root finds both. Relative sqlite and plain paths in a
configured URI are resolved against the project root too.

mlflow is imported only when a run is logged, so harness works without it; the local
store needs SQLAlchemy and Alembic, which mlflow-skinny leaves out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import importlib
import importlib.util
import json
import math
import os
import shlex
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.config import Config, read_pyproject
from harness.errors import ConfigError, HarnessError
from harness.runs import records

TABLE = "[tool.harness.mlflow]"
ENABLE_VARIABLE = "HARNESS_MLFLOW"
INSTALL = 'pip install "mlflow-skinny>=3.0" "sqlalchemy>=2.0" "alembic>=1.13"'
DEFAULT_DATABASE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlruns"
# Folder of a run's artifacts that holds harness's own files.
HARNESS_FOLDER = "harness"
# MLflow's limits on one value (mlflow.utils.validation) and on one log_batch call.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_BATCH_PARAMS_TAGS = 100
_BATCH_METRICS = 1000
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_STATUSES = {
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "timeout": "FAILED",
    "aborted": "KILLED",
    # The engine went away during the run: how the experiment ended is unknown.
    "lost": "FAILED",
    # A record still "running" belongs to a harness process that died during the run.
    "running": "KILLED",
}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class MlflowSettings:
    enabled: bool
    tracking_uri: str
    experiment_name: str
    # For a new MLflow experiment only; None lets the tracking server choose.
    artifact_location: str | None
    sources: Mapping[str, str]


def settings(config: Config, environ: Mapping[str, str] | None = None) -> MlflowSettings:
    """Resolve ``[tool.harness.mlflow]`` (shaped by the schema) and the environment (see
    the module docstring)."""
    env = os.environ if environ is None else environ
    table = config.table("mlflow")
    sources: dict[str, str] = {}

    enabled, sources["enabled"] = bool(table.get("enabled", False)), "default"
    if "enabled" in table:
        sources["enabled"] = "pyproject"
    if env.get(ENABLE_VARIABLE) is not None:
        enabled, sources["enabled"] = _flag(env[ENABLE_VARIABLE]), f"env {ENABLE_VARIABLE}"

    root = config.project_root
    uri, sources["tracking-uri"] = f"sqlite:///{root / DEFAULT_DATABASE}", "default"
    if "tracking-uri" in table:
        uri, sources["tracking-uri"] = table["tracking-uri"], "pyproject"
    if env.get("MLFLOW_TRACKING_URI"):
        uri, sources["tracking-uri"] = env["MLFLOW_TRACKING_URI"], "env MLFLOW_TRACKING_URI"
    uri = _anchored(uri, root)

    name, sources["experiment-name"] = _project_name(config), "default"
    if "experiment-name" in table:
        name, sources["experiment-name"] = table["experiment-name"], "pyproject"
    if env.get("MLFLOW_EXPERIMENT_NAME"):
        name = env["MLFLOW_EXPERIMENT_NAME"]
        sources["experiment-name"] = "env MLFLOW_EXPERIMENT_NAME"

    location = table.get("artifact-location")
    sources["artifact-location"] = "pyproject" if location else "default"
    if location:
        location = _anchored(location, root)
    elif uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        location = (database.parent / DEFAULT_ARTIFACTS).as_uri()
    return MlflowSettings(enabled, uri, name, location, sources)


def enabled(
    config: Config, flag: bool | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether runs are logged: the ``--mlflow/--no-mlflow`` flag when given, else the
    configuration."""
    return flag if flag is not None else settings(config, environ).enabled


def require(config: Config, environ: Mapping[str, str] | None = None) -> MlflowSettings:
    """Check, before any run starts, that the configured store can be written: mlflow is
    importable, and a database store has SQLAlchemy and Alembic."""
    resolved = settings(config, environ)
    _mlflow()
    scheme = urlparse(resolved.tracking_uri).scheme.split("+", 1)[0]
    if scheme in _DATABASE_SCHEMES:
        missing = [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"the MLflow store {resolved.tracking_uri} needs {' and '.join(missing)}, "
                "which is not installed",
                INSTALL,
            )
    return resolved


def log_run(
    config: Config,
    folder: Path,
    record: Mapping[str, Any],
    *,
    entry_point: str | None = None,
    verdicts: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Log one harness run (its folder and record) to MLflow; returns the MLflow run id.

    Logging the same harness run again returns the MLflow run it was logged as. An MLflow
    run left unfinished by an interrupted earlier call is completed. ``entry_point`` names
    the MLproject entry point the run came from (``harness run --mlproject``);
    ``verdicts`` adds verdicts known to the caller (a repeat or a comparison) to those the
    record holds.
    """
    resolved = require(config, environ)
    mlflow = _mlflow()
    run_id = str(record["run_id"])
    with _quiet():
        try:
            client = mlflow.tracking.MlflowClient(tracking_uri=resolved.tracking_uri)
            experiment_id = _experiment_id(client, resolved)
            existing = client.search_runs(
                [experiment_id],
                filter_string=f"tags.`harness.run_id` = '{run_id}'",
                max_results=1,
            )
        except Exception as error:
            raise _failure(resolved, run_id, error) from None
        if existing and existing[0].info.status != "RUNNING":
            return str(existing[0].info.run_id)
        tags = run_tags(record, entry_point=entry_point, verdicts=verdicts)
        mlflow_run_id: str | None = None
        try:
            if existing:
                mlflow_run_id = str(existing[0].info.run_id)
            else:
                created = client.create_run(
                    experiment_id,
                    start_time=_milliseconds(record, "started_at"),
                    tags=tags,
                    run_name=run_id,
                )
                mlflow_run_id = str(created.info.run_id)
            _log_values(
                mlflow, client, run_id=mlflow_run_id, folder=folder, record=record, tags=tags
            )
            _log_files(client, mlflow_run_id, folder)
            client.set_terminated(
                mlflow_run_id,
                _STATUSES.get(str(record.get("status")), "FAILED"),
                end_time=_milliseconds(record, "finished_at"),
            )
        except Exception as error:
            if mlflow_run_id is not None:
                with contextlib.suppress(Exception):
                    client.set_terminated(mlflow_run_id, "FAILED")
            raise _failure(resolved, run_id, error) from None
    return mlflow_run_id


def run_tags(
    record: Mapping[str, Any],
    *,
    entry_point: str | None = None,
    verdicts: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of a run: MLflow's where it defines one, ``harness.*`` for the rest."""
    image = record.get("image") or {}
    source = record.get("source") or {}
    command = record.get("command")
    tags: dict[str, Any] = {
        "mlflow.runName": record.get("run_id"),
        "mlflow.source.type": "PROJECT" if entry_point else "LOCAL",
        "mlflow.source.name": record.get("entry")
        or (shlex.join(command) if isinstance(command, list) else None)
        or record.get("experiment"),
        "mlflow.source.git.commit": source.get("commit"),
        "mlflow.source.git.dirty": _bool(source.get("dirty")) if source.get("commit") else None,
        "mlflow.docker.image.id": image.get("id"),
        "mlflow.docker.image.name": image.get("reference"),
        "mlflow.docker.image.uri": _image_uri(image),
        "mlflow.project.env": "docker",
        "mlflow.project.entryPoint": entry_point,
        "mlflow.user": _user(),
        "mlflow.note.content": _note(record),
        "harness.run_id": record.get("run_id"),
        "harness.experiment": record.get("experiment"),
        "harness.status": record.get("status"),
        "harness.exit_code": record.get("exit_code"),
        "harness.seed": record.get("seed"),
        "harness.profile": record.get("profile"),
        "harness.threads": record.get("threads"),
        "harness.device": record.get("device"),
        "harness.image.digest": image.get("digest"),
        "harness.image.variant": image.get("variant"),
        "harness.constraints_sha256": record.get("constraints_sha256"),
        "harness.lock_sha256": record.get("lock_sha256"),
        "harness.source.diff_sha256": source.get("diff_sha256"),
        "harness.version": record.get("harness_version"),
        "harness.violations": len(record.get("violations") or []),
    }
    for name, digest in (record.get("inputs") or {}).items():
        tags[f"harness.input.{name}.sha256"] = digest.get("sha256")
        tags[f"harness.input.{name}.dvc_md5"] = digest.get("dvc_md5")
    if isinstance(record.get("verdict"), str):
        tags["harness.verdict"] = record["verdict"]
    known = {**(record.get("verdicts") or {}), **(verdicts or {})}
    for name, verdict in known.items():
        tags[f"harness.verdict.{name}"] = verdict
    return {
        key: _tag_value(value) for key, value in tags.items() if value is not None and value != ""
    }


def run_params(record: Mapping[str, Any]) -> dict[str, str]:
    """The experiment's parameters and the seed, as MLflow's string params."""
    values = {**(record.get("parameters") or {}), "seed": record.get("seed")}
    return {_key(name): _param_value(value) for name, value in values.items() if value is not None}


def run_metrics(folder: Path, record: Mapping[str, Any]) -> dict[str, float]:
    """The record's metrics, nested keys joined with dots; a command experiment returns
    none, so its top-level ``metrics.json`` artifact stands in when there is one."""
    metrics = record.get("metrics")
    if not isinstance(metrics, Mapping):
        metrics = _metrics_artifact(folder)
    return dict(_flatten(metrics or {}, ""))


def _log_values(
    mlflow: Any,
    client: Any,
    *,
    run_id: str,
    folder: Path,
    record: Mapping[str, Any],
    tags: Mapping[str, str],
) -> None:
    entities = mlflow.entities
    timestamp = _milliseconds(record, "finished_at") or _milliseconds(record, "started_at") or 0
    params = [entities.Param(k, v) for k, v in sorted(run_params(record).items())]
    metrics = [
        entities.Metric(k, v, timestamp, 0) for k, v in sorted(run_metrics(folder, record).items())
    ]
    run_tag = [entities.RunTag(k, v) for k, v in sorted(tags.items())]
    for chunk in _chunks(params, _BATCH_PARAMS_TAGS):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(run_tag, _BATCH_PARAMS_TAGS):
        client.log_batch(run_id, tags=chunk)
    for chunk in _chunks(metrics, _BATCH_METRICS):
        client.log_batch(run_id, metrics=chunk)


def _log_files(client: Any, run_id: str, folder: Path) -> None:
    artifacts = folder / records.ARTIFACTS
    if artifacts.is_dir() and any(artifacts.iterdir()):
        client.log_artifacts(run_id, str(artifacts))
    for name in (records.RECORD, records.LOG, "spec.json"):
        if (folder / name).is_file():
            client.log_artifact(run_id, str(folder / name), artifact_path=HARNESS_FOLDER)
    meta = folder / records.META
    if meta.is_dir() and any(meta.iterdir()):
        client.log_artifacts(run_id, str(meta), artifact_path=f"{HARNESS_FOLDER}/{records.META}")


def _experiment_id(client: Any, resolved: MlflowSettings) -> str:
    experiment = client.get_experiment_by_name(resolved.experiment_name)
    if experiment is None:
        return str(
            client.create_experiment(
                resolved.experiment_name, artifact_location=resolved.artifact_location
            )
        )
    if experiment.lifecycle_stage == "deleted":
        raise ConfigError(
            f"the MLflow experiment {resolved.experiment_name!r} was deleted",
            f"restore it (mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}) or set experiment-name in {TABLE}",
        )
    return str(experiment.experiment_id)


def _mlflow() -> Any:
    try:
        with _quiet():
            return importlib.import_module("mlflow")
    except ImportError:
        raise ConfigError("mlflow is not installed", INSTALL) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow and SQLAlchemy warn about their own deprecations; harness users can do
    nothing about those, and a run's output must stay readable."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        yield


def _failure(resolved: MlflowSettings, run_id: str, error: Exception) -> HarnessError:
    if isinstance(error, HarnessError):
        return error
    text = " ".join(str(error).split())[:300] or type(error).__name__
    return HarnessError(
        f"cannot log run {run_id} to MLflow at {resolved.tracking_uri}: {text}",
        f"check the tracking URI ({resolved.sources['tracking-uri']}) and that the store "
        "is reachable; the run itself is recorded in .harness/runs",
    )


def _anchored(uri: str, root: Path) -> str:
    """A relative sqlite or plain path in ``uri``, resolved against the project root."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        relative = uri.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{(root / relative).resolve()}"
        return uri
    if "://" not in uri and not uri.startswith("file:"):
        return (root / uri).resolve().as_uri()
    return uri


def _project_name(config: Config) -> str:
    project = read_pyproject(config.pyproject).get("project") or {}
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) and name else config.project_root.name


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        f"{ENABLE_VARIABLE} must be 1 or 0, not {value!r}", f"set {ENABLE_VARIABLE}=1"
    )


def _milliseconds(record: Mapping[str, Any], key: str) -> int | None:
    value = (record.get("timings") or {}).get(key)
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _image_uri(image: Mapping[str, Any]) -> str | None:
    """The image pinned by its registry digest when it has one, else its reference."""
    reference, digest = image.get("reference"), image.get("digest")
    if isinstance(reference, str) and isinstance(digest, str) and digest != image.get("id"):
        repository = reference.rsplit("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        return f"{repository}@{digest}"
    return reference if isinstance(reference, str) else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid, as in some containers
        return None


def _note(record: Mapping[str, Any]) -> str:
    line = f"harness run {record.get('run_id')} of {record.get('experiment')}: "
    line += str(record.get("status"))
    if record.get("error"):
        line += f" ({record['error']})"
    return line


def _bool(value: object) -> str:
    return "true" if value else "false"


def _tag_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:_MAX_TAG_VALUE]


def _param_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:_MAX_PARAM_VALUE]


def _key(name: str) -> str:
    """A param or metric name MLflow accepts: letters, digits and ``_-. :/``."""
    return "".join(c if c.isalnum() or c in "_-. :/" else "_" for c in name)


def _flatten(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, float]]:
    for name, item in value.items():
        key = f"{prefix}{name}"
        if isinstance(item, Mapping):
            yield from _flatten(item, f"{key}.")
        elif isinstance(item, int | float):  # bool included: True logs as 1.0
            yield _key(key), float(item)
        elif isinstance(item, str) and item in _NON_FINITE:
            yield _key(key), _NON_FINITE[item]


def _metrics_artifact(folder: Path) -> Mapping[str, Any] | None:
    path = folder / records.ARTIFACTS / "metrics.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "ENABLE_VARIABLE",
    "INSTALL",
    "MlflowSettings",
    "enabled",
    "log_run",
    "require",
    "run_metrics",
    "run_params",
    "run_tags",
    "settings",
]
