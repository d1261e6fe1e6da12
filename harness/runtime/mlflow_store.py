"""MLflow's file store (``./mlruns``), kept by logical place rather than by MLflow's ids.

Two runs of the same training log the same model, metrics and artifacts, yet their stores
share no path: MLflow names every run, logged model and (outside the default) experiment
folder by a random id, stamps start and end times, the user and the source into
``meta.yaml`` files and tags, a clock time into every metric value, and adds host metrics
(``metrics/system/*``) when asked. Compared as files, such stores differ in hundreds of
paths though nothing the training computed moved.

So when the run's outputs include a store, it is kept in the output folder by logical
place, ``STORE/<experiment name>/<run name>/...`` (and ``.../models/<model name>/...`` for
MLflow 3's logged models): artifacts, params and user tags as they are, each metric as its
values and steps without their times, a logged model's ``MLmodel`` without its ids and
creation time. What MLflow stamps (the ``meta.yaml`` files, ``mlflow.*`` tags, system
metrics, metric times, dataset and model links by id) is set aside, and the run record
says how much of each kind was: recorded, not compared.

The files are read in the container, as the experiment left them (plain files only, no
link followed, bounded sizes); the standard library has no YAML, and MLflow writes its
``meta.yaml`` as flat ``key: value`` lines, which is all that is read of them.
"""

from __future__ import annotations

import os
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

try:
    import sqlite3
except ImportError:  # an interpreter built without it (a host executor's may be)
    sqlite3 = None  # type: ignore[assignment]


class DatabaseError(Exception):
    """A tracking database that cannot be read (SQLite's own error, as one kind)."""


META = "meta.yaml"
# What a meta.yaml, a metric file or an MLmodel may weigh to be read here.
MAX_READ = 64 << 20
# The keys of a logged model's MLmodel file that MLflow fills with ids and the clock.
MLMODEL_STAMPS = ("run_id:", "model_uuid:", "model_id:", "utc_time_created:", "artifact_path:")
# Why each kind of file is set aside, as the record says it.
WHY_META = "MLflow's metadata (ids, start and end times, user, artifact locations)"
WHY_SYSTEM = "system metrics (the host's load during the run)"
WHY_TAGS = "MLflow's own tags (user, source, commit, model history)"
WHY_TIMES = "metric timestamps (values and steps are kept)"
WHY_LINKS = "dataset and model links by MLflow id"
WHY_MLMODEL = "MLmodel ids and creation time (the model itself is kept)"
WHY_TRASH = "deleted runs and experiments"
WHY_ROWS = "MLflow's rows of ids and times (runs, experiments, logged models)"
# A tracking database (``sqlite:///mlflow.db``) starts so; its tables are read, not its bytes.
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class Logical:
    """A store laid out by logical place: path -> bytes, and what was set aside."""

    files: dict[str, bytes] = field(default_factory=dict)
    set_aside: Counter[str] = field(default_factory=Counter)

    def summary(self, store: str) -> list[str]:
        return [
            f"{store}: {count} x {why}" for why, count in sorted(self.set_aside.items()) if count
        ]


def is_store(folder: Path) -> bool:
    """Whether ``folder`` is an MLflow file store: an experiment folder with MLflow's meta."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    for child in folder.iterdir():
        meta = _meta(child / META)
        if "experiment_id" in meta and "artifact_location" in meta:
            return True
    return False


def lay_out(store: Path, written: set[str]) -> Logical:
    """The store's files the run wrote (``written``: paths relative to ``store``), by
    logical place; everything else in the store is left out."""
    logical = Logical()
    for experiment in sorted(store.iterdir()):
        if not _plain_folder(experiment):
            continue
        if experiment.name == ".trash":
            logical.set_aside[WHY_TRASH] += _count(experiment, store, written)
            continue
        meta = _meta(experiment / META)
        if "experiment_id" not in meta:
            continue
        name = _safe(meta.get("name") or experiment.name)
        logical.set_aside[WHY_META] += _written(experiment / META, store, written)
        taken: set[str] = set()
        runs = sorted(
            (run for run in experiment.iterdir() if _plain_folder(run)),
            key=lambda run: (_meta(run / META).get("start_time", ""), run.name),
        )
        for run in runs:
            if run.name == "models":
                _models(run, f"{name}/models", store, written, logical)
                continue
            run_meta = _meta(run / META)
            if "run_id" not in run_meta and "run_uuid" not in run_meta:
                continue
            label = _unique(_safe(run_meta.get("run_name") or _tag(run) or run.name), taken)
            _run(run, f"{name}/{label}", store, written, logical)
    return logical


def _run(run: Path, prefix: str, store: Path, written: set[str], logical: Logical) -> None:
    for path in _files(run):
        relative = path.relative_to(store).as_posix()
        if relative not in written:
            continue
        inside = path.relative_to(run).as_posix()
        top = inside.split("/", 1)[0]
        if inside == META:
            logical.set_aside[WHY_META] += 1
        elif inside.startswith("metrics/system/"):
            logical.set_aside[WHY_SYSTEM] += 1
        elif top == "metrics":
            logical.files[f"{prefix}/{inside}"] = _without_times(path)
            logical.set_aside[WHY_TIMES] += 1
        elif top == "tags" and path.name.startswith("mlflow."):
            logical.set_aside[WHY_TAGS] += 1
        elif top in ("inputs", "outputs"):
            logical.set_aside[WHY_LINKS] += 1
        elif path.name == "MLmodel":
            logical.files[f"{prefix}/{inside}"] = _without_stamps(path)
            logical.set_aside[WHY_MLMODEL] += 1
        else:
            logical.files[f"{prefix}/{inside}"] = _read(path)


def _models(folder: Path, prefix: str, store: Path, written: set[str], logical: Logical) -> None:
    """MLflow 3's logged models (``<experiment>/models/m-<id>/``), by model name."""
    taken: set[str] = set()
    models = sorted(
        (model for model in folder.iterdir() if _plain_folder(model)),
        key=lambda model: (_meta(model / META).get("creation_timestamp", ""), model.name),
    )
    for model in models:
        meta = _meta(model / META)
        label = _unique(_safe(meta.get("name") or model.name), taken)
        _run(model, f"{prefix}/{label}", store, written, logical)


def _meta(path: Path) -> dict[str, str]:
    """The flat ``key: value`` lines of a meta.yaml (nested ones are left out)."""
    if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_READ:
        return {}
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line or line[0] in " \t-#" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        found[key.strip()] = value.strip().strip("'\"")
    return found


def _tag(run: Path) -> str | None:
    path = run / "tags" / "mlflow.runName"
    if path.is_file() and not path.is_symlink() and path.stat().st_size < 4096:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    return None


def _without_times(path: Path) -> bytes:
    """A metric file (``timestamp value step`` a line) as ``value step`` lines."""
    lines = []
    for line in _read(path).decode("utf-8", "replace").splitlines():
        parts = line.split()
        lines.append(" ".join(parts[1:]) if len(parts) == 3 else line)
    return ("\n".join(lines) + "\n").encode()


def _without_stamps(path: Path) -> bytes:
    text = _read(path).decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if not line.startswith(MLMODEL_STAMPS)]
    return ("\n".join(kept) + "\n").encode()


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _files(folder: Path) -> list[Path]:
    """Plain files under ``folder``, sorted, no link followed."""
    found = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found)


def _written(path: Path, store: Path, written: set[str]) -> int:
    return 1 if path.relative_to(store).as_posix() in written else 0


def _count(folder: Path, store: Path, written: set[str]) -> int:
    return sum(1 for path in _files(folder) if path.relative_to(store).as_posix() in written)


def _plain_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _safe(name: str) -> str:
    """A name as one path component."""
    cleaned = "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip(" .")
    return cleaned[:120] or "_"


def _unique(name: str, taken: set[str]) -> str:
    label, number = name, 1
    while label in taken:
        number += 1
        label = f"{name}-{number}"
    taken.add(label)
    return label


# -- the tracking database (sqlite:///mlflow.db) ------------------------------------------
#
# With a SQLite tracking URI, MLflow keeps runs, params, tags and metrics as rows of one
# database file, whose bytes differ from run to run (ids, times, page layout), and the
# artifacts in folders named by run id (``./mlruns/<experiment id>/<run id>/artifacts``,
# logged models under ``.../models/<model id>/artifacts``). Kept by logical place as the
# file store is: ``DATABASE/<experiment>/<run name>/{params,tags,metrics,artifacts}``.


def is_database(path: Path) -> bool:
    """Whether ``path`` is an MLflow tracking database: SQLite, with runs and experiments."""
    if sqlite3 is None or not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            return False
    try:
        with _database(path) as database:
            tables = {row[0] for row in database.execute("select name from sqlite_master")}
    except sqlite3.Error:
        return False
    return {"experiments", "runs", "metrics", "params", "tags"} <= tables


@contextmanager
def _database(path: Path) -> Iterator[sqlite3.Connection]:
    # Read-only and immutable: nothing is written, no lock is taken, no journal replayed.
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro&immutable=1"
    with closing(sqlite3.connect(uri, uri=True)) as database:
        yield database


@dataclass(frozen=True)
class TrackedArtifact:
    """An artifact a tracked run wrote, by logical place: ``beside`` in its own folder
    with ids replaced by names (``mlruns/bikes/training/artifacts/model.pkl``, for an
    ``outputs`` glob that names the artifact folder), ``inside`` under the database's
    place (``bikes/training/artifacts/model.pkl``, for one that names only the database)."""

    beside: str
    inside: str
    data: bytes


@dataclass(frozen=True)
class _Owner:
    """A run or logged model: its id, its experiment's id and name, its logical prefix."""

    id: str
    experiment_id: str
    experiment: str
    prefix: str


def lay_out_database(
    path: Path, view: Path, written: set[str]
) -> tuple[Logical, dict[str, TrackedArtifact]]:
    """The database's runs and logged models by logical place; and the artifacts the run
    wrote under their folders in ``view``, by project-relative path."""
    try:
        return _lay_out_database(path, view, written)
    except sqlite3.Error as error:
        raise DatabaseError(str(error)) from None


def _lay_out_database(
    path: Path, view: Path, written: set[str]
) -> tuple[Logical, dict[str, TrackedArtifact]]:
    logical = Logical()
    artifacts: dict[str, TrackedArtifact] = {}
    with _database(path) as database:
        experiments = {
            str(row[0]): (_safe(str(row[1])), str(row[2]))
            for row in database.execute(
                "select experiment_id, name, lifecycle_stage from experiments"
            )
        }
        logical.set_aside[WHY_ROWS] += len(experiments)
        taken: dict[str, set[str]] = {}
        runs = database.execute(
            "select run_uuid, name, experiment_id, lifecycle_stage, artifact_uri from runs "
            "order by start_time, run_uuid"
        ).fetchall()
        for run_id, name, experiment_id, stage, location in runs:
            experiment, experiment_stage = experiments.get(str(experiment_id), ("_", "active"))
            logical.set_aside[WHY_ROWS] += 1
            if "deleted" in (stage, experiment_stage):
                logical.set_aside[WHY_TRASH] += 1
                continue
            label = _unique(_safe(str(name or run_id)), taken.setdefault(experiment, set()))
            owner = _Owner(str(run_id), str(experiment_id), experiment, f"{experiment}/{label}")
            _rows(database, run_id, owner.prefix, logical)
            artifacts |= _artifacts(location, owner, view, written, logical)
        if _has_table(database, "logged_models"):
            artifacts |= _logged_models(database, experiments, view, written, logical)
    return logical, artifacts


def _rows(database: sqlite3.Connection, run_id: str, prefix: str, logical: Logical) -> None:
    """A run's params, tags and metrics as the file store would hold them, times left out."""
    for key, value in database.execute(
        "select key, value from params where run_uuid = ?", (run_id,)
    ):
        logical.files[f"{prefix}/params/{_safe(key)}"] = str(value).encode()
    for key, value in database.execute("select key, value from tags where run_uuid = ?", (run_id,)):
        if str(key).startswith("mlflow."):
            logical.set_aside[WHY_TAGS] += 1
        else:
            logical.files[f"{prefix}/tags/{_safe(key)}"] = str(value).encode()
    series: dict[str, list[str]] = {}
    for key, value, step, is_nan in database.execute(
        "select key, value, step, is_nan from metrics where run_uuid = ? "
        "order by key, timestamp, step, value",
        (run_id,),
    ):
        if str(key).startswith("system/"):
            logical.set_aside[WHY_SYSTEM] += 1
            continue
        series.setdefault(str(key), []).append(f"{'nan' if is_nan else value} {step}")
    for key, lines in series.items():
        logical.files[f"{prefix}/metrics/{_safe(key)}"] = ("\n".join(lines) + "\n").encode()
        logical.set_aside[WHY_TIMES] += 1


def _logged_models(
    database: sqlite3.Connection,
    experiments: dict[str, tuple[str, str]],
    view: Path,
    written: set[str],
    logical: Logical,
) -> dict[str, TrackedArtifact]:
    """MLflow 3's logged models, by experiment and model name."""
    artifacts: dict[str, TrackedArtifact] = {}
    taken: dict[str, set[str]] = {}
    for model_id, experiment_id, name, location in database.execute(
        "select model_id, experiment_id, name, artifact_location from logged_models "
        "order by creation_timestamp_ms, model_id"
    ).fetchall():
        experiment = experiments.get(str(experiment_id), ("_", "active"))[0]
        label = _unique(_safe(str(name or model_id)), taken.setdefault(experiment, set()))
        owner = _Owner(
            str(model_id), str(experiment_id), experiment, f"{experiment}/models/{label}"
        )
        logical.set_aside[WHY_ROWS] += 1
        for key, value in database.execute(
            "select param_key, param_value from logged_model_params where model_id = ?",
            (model_id,),
        ):
            logical.files[f"{owner.prefix}/params/{_safe(key)}"] = str(value).encode()
        artifacts |= _artifacts(location, owner, view, written, logical)
    return artifacts


def _artifacts(
    location: object, owner: _Owner, view: Path, written: set[str], logical: Logical
) -> dict[str, TrackedArtifact]:
    """The files the run wrote under an artifact location that lies in ``view``."""
    text = str(location or "")
    if text.startswith("file:"):
        text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    folder = Path(text)
    if not folder.is_absolute():
        folder = view / folder
    try:
        inside = folder.resolve().relative_to(view.resolve()).as_posix()
    except ValueError:
        return {}  # elsewhere (a server, another folder): not this run's to keep
    # The folder's own path with the ids it holds replaced by names: the run's (or the
    # model's) by its label, its experiment's by the experiment's name.
    label = owner.prefix.rsplit("/", 1)[-1]
    renamed = "/".join(
        label if part == owner.id else owner.experiment if part == owner.experiment_id else part
        for part in inside.split("/")
    )
    found = {}
    for relative in sorted(written):
        if not relative.startswith(inside + "/"):
            continue
        path = view / relative
        name = relative.removeprefix(inside + "/")
        if path.name == "MLmodel":
            data = _without_stamps(path)
            logical.set_aside[WHY_MLMODEL] += 1
        else:
            data = _read(path)
        found[relative] = TrackedArtifact(
            f"{renamed}/{name}", f"{owner.prefix}/artifacts/{name}", data
        )
    return found


def _has_table(database: sqlite3.Connection, name: str) -> bool:
    found = database.execute(
        "select 1 from sqlite_master where type = 'table' and name = ?", (name,)
    )
    return found.fetchone() is not None


__all__ = ["Logical", "TrackedArtifact", "is_database", "is_store", "lay_out", "lay_out_database"]
