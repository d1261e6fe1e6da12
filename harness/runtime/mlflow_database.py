"""MLflow's database store (``sqlite:///mlflow.db``, MLflow 3's default), kept by logical place.

MLflow 3 tracks to a SQLite file unless told otherwise, and keeps what a run logs as
files beside it (``mlruns/<experiment id>/<run id>/artifacts``,
``mlruns/<experiment id>/models/m-<id>/artifacts``). Compared as it lies, such a store
never reproduces: the database is a page file full of random ids and clock times, and
every artifact path holds an id drawn anew by each run.

So, as :mod:`harness.runtime.mlflow_store` does for the file store, the database's
contents are laid out by logical place under the database's own path,
``mlflow.db/<experiment name>/<run name>/params/<key>``, ``.../tags/<key>`` (the user's
tags), ``.../metrics/<key>`` (``value step`` lines, without times), and the files each
run and logged model keeps at ``.../artifacts/...`` and
``<experiment>/models/<model name>/...``, each MLmodel without its ids and creation
time. The database file itself, MLflow's own tags, times, ids and the links between runs,
models and datasets are set aside and counted in the run record.

The database is the experiment's file, so it is opened read-only, without following a
link, and within size and row bounds; only the tables and columns MLflow's schema names
are read. This runs where the runtime runs, on the standard library alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from harness.runtime.mlflow_store import (
    WHY_LINKS,
    WHY_META,
    WHY_MLMODEL,
    WHY_TAGS,
    WHY_TIMES,
    WHY_TRASH,
    Logical,
    mlmodel_without_stamps,
    safe_name,
    unique_name,
)

SQLITE_HEADER = b"SQLite format 3\x00"
# A database larger than this is compared as the bytes it is.
MAX_DATABASE = 1 << 30
# Rows read from one table at most: a training loop logging every step stays far below.
MAX_ROWS = 2_000_000
WHY_DATABASE = "MLflow's database file (its runs are laid out by place)"
# The tables that make a SQLite file an MLflow tracking store.
_TRACKING_TABLES = {"experiments", "runs", "params", "metrics", "tags"}


def is_database(path: Path) -> bool:
    """Whether ``path`` is a plain file holding an MLflow tracking database."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(descriptor, "rb") as file:
        if not _plain_and_small(os.fstat(file.fileno())):
            return False
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return False
    try:
        with _connect(path) as connection:
            return _tables(connection) >= _TRACKING_TABLES
    except sqlite3.Error:
        return False


def lay_out(database: Path, view: Path, written: set[str]) -> tuple[Logical, set[str]]:
    """The database's runs by logical place (paths under the database's own path), and the
    view-relative paths of the artifact files it took from ``written``."""
    with _connect(database) as connection:
        reader = _Reader(connection, view, written)
        reader.read()
    return reader.logical, reader.taken


class _Reader:
    """One database read into a :class:`Logical`, with the artifact files it took."""

    def __init__(self, connection: sqlite3.Connection, view: Path, written: set[str]) -> None:
        self.connection = connection
        self.view = view
        self.written = written
        self.logical = Logical()
        self.taken: set[str] = set()
        self.tables = _tables(connection)
        # experiment id -> (its name as a path component, deleted?)
        self.experiments: dict[str, tuple[str, bool]] = {}

    def read(self) -> None:
        self.logical.set_aside[WHY_DATABASE] += 1
        query = "SELECT experiment_id, name, lifecycle_stage FROM experiments"
        for identifier, name, stage in _rows(self.connection, query):
            self.logical.set_aside[WHY_META] += 1
            self.experiments[str(identifier)] = (safe_name(str(name)), stage == "deleted")
        runs = self._places(
            "SELECT run_uuid, experiment_id, name, lifecycle_stage, artifact_uri FROM runs "
            "ORDER BY start_time, run_uuid",
            "",
        )
        self._values(
            runs,
            "SELECT run_uuid, key, value FROM params",
            "SELECT run_uuid, key, value FROM tags",
            "SELECT run_uuid, key, value, step, is_nan FROM metrics "
            "ORDER BY run_uuid, key, step, timestamp",
        )
        if "inputs" in self.tables:
            inputs = _rows(self.connection, "SELECT input_uuid FROM inputs")
            self.logical.set_aside[WHY_LINKS] += sum(1 for _ in inputs)
        if {"logged_models", "logged_model_params", "logged_model_tags"} <= self.tables:
            models = self._places(
                "SELECT model_id, experiment_id, name, lifecycle_stage, artifact_location "
                "FROM logged_models ORDER BY creation_timestamp_ms, model_id",
                "models/",
            )
            self._values(
                models,
                "SELECT model_id, param_key, param_value FROM logged_model_params",
                "SELECT model_id, tag_key, tag_value FROM logged_model_tags",
                "SELECT model_id, metric_name, metric_value, metric_step, 0 "
                "FROM logged_model_metrics "
                "ORDER BY model_id, metric_name, metric_step, metric_timestamp_ms"
                if "logged_model_metrics" in self.tables
                else "",
            )

    def _places(self, query: str, folder: str) -> dict[str, str]:
        """id -> logical place of each run (or logged model), oldest first, by its name
        under its experiment; its artifacts go there too."""
        places: dict[str, str] = {}
        labels: dict[str, set[str]] = {}
        for identifier, experiment_id, name, stage, location in _rows(self.connection, query):
            self.logical.set_aside[WHY_META] += 1
            experiment, deleted = self.experiments.get(str(experiment_id), ("_", False))
            if deleted or stage == "deleted":
                self.logical.set_aside[WHY_TRASH] += 1
                continue
            taken = labels.setdefault(experiment, set())
            place = f"{experiment}/{folder}{unique_name(safe_name(str(name or identifier)), taken)}"
            places[str(identifier)] = place
            self._artifacts(str(location or ""), f"{place}/artifacts")
        return places

    def _values(self, places: dict[str, str], params: str, tags: str, metrics: str) -> None:
        """Params, the user's tags, and metrics as ``value step`` lines, at each place."""
        for identifier, key, value in _rows(self.connection, params):
            if str(identifier) in places:
                path = f"{places[str(identifier)]}/params/{safe_name(str(key))}"
                self.logical.files[path] = str(value).encode()
        for identifier, key, value in _rows(self.connection, tags):
            if str(identifier) not in places:
                continue
            if str(key).startswith("mlflow."):
                self.logical.set_aside[WHY_TAGS] += 1
            else:
                path = f"{places[str(identifier)]}/tags/{safe_name(str(key))}"
                self.logical.files[path] = str(value).encode()
        lines: dict[str, list[str]] = {}
        for identifier, key, value, step, is_nan in _rows(self.connection, metrics):
            if str(identifier) in places:
                path = f"{places[str(identifier)]}/metrics/{safe_name(str(key))}"
                lines.setdefault(path, []).append(f"{_number(value, is_nan)} {step}")
                self.logical.set_aside[WHY_TIMES] += 1
        for path, values in lines.items():
            self.logical.files[path] = ("\n".join(values) + "\n").encode()

    def _artifacts(self, location: str, prefix: str) -> None:
        """The files the run wrote under an artifact location inside the view."""
        folder = _inside_view(location, self.view)
        if folder is None:
            return
        start = folder + "/"
        for relative in sorted(self.written):
            if not relative.startswith(start):
                continue
            inside = relative[len(start) :]
            path = self.view / relative
            if path.name == "MLmodel":
                self.logical.files[f"{prefix}/{inside}"] = mlmodel_without_stamps(path)
                self.logical.set_aside[WHY_MLMODEL] += 1
            else:
                self.logical.files[f"{prefix}/{inside}"] = path.read_bytes()
            self.taken.add(relative)


def _inside_view(location: str, view: Path) -> str | None:
    """An artifact location (a path or a ``file:`` URI) as a path relative to the view;
    None when it lies elsewhere (a remote store, another folder)."""
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path) if parsed.scheme else location)
    if not path.is_absolute():
        path = view / path
    try:
        relative = Path(os.path.normpath(path)).relative_to(view)
    except ValueError:
        return None
    text = relative.as_posix()
    return None if text in ("", ".") or text.startswith("..") else text


def _number(value: object, is_nan: object) -> str:
    if is_nan or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return repr(float(value)) if isinstance(value, int | float) else str(value)


def _plain_and_small(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode) and info.st_size <= MAX_DATABASE


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    # Read-only and immutable: nothing is written beside the file (no journal, no lock),
    # and what the experiment left is read as it lies.
    uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
    connection = sqlite3.connect(uri, uri=True)
    try:
        yield connection
    finally:
        connection.close()


def _tables(connection: sqlite3.Connection) -> set[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {str(name) for (name,) in connection.execute(query).fetchmany(10_000)}


def _rows(connection: sqlite3.Connection, query: str) -> Iterator[tuple[object, ...]]:
    if not query:
        return
    cursor = connection.execute(f"{query} LIMIT {MAX_ROWS + 1}")
    for count, row in enumerate(cursor):
        if count == MAX_ROWS:
            raise sqlite3.DatabaseError(f"more than {MAX_ROWS} rows in one table")
        yield tuple(row)


__all__ = ["is_database", "lay_out"]
