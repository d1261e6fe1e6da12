"""CSV and TSV tables: cell by cell, numeric cells within the metric tolerance.

Rows stream past in step, so tables of any length compare in constant memory. The first
row names the columns in the report. Bytes that are not UTF-8 (a Latin-1 export) are
kept as they are (``surrogateescape``), never replaced: ``café`` and ``cafè`` in Latin-1
stay two different cells.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from harness.compare.jsonmetrics import compare_numbers
from harness.compare.model import ArtifactResult, Entry, Status, combine
from harness.compare.policy import Policy
from harness.compare.written import as_written, parse_cell
from harness.errors import ArtifactError


def compare_table(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    delimiter = "\t" if a.suffix.lower() == ".tsv" else ","
    header: list[str] = []
    rows_a = rows_b = 0
    try:
        with (
            a.open(newline="", encoding="utf-8", errors="surrogateescape") as fa,
            b.open(newline="", encoding="utf-8", errors="surrogateescape") as fb,
        ):
            pairs = itertools.zip_longest(
                csv.reader(fa, delimiter=delimiter), csv.reader(fb, delimiter=delimiter)
            )
            for number, (row_a, row_b) in enumerate(pairs, start=1):
                rows_a += row_a is not None
                rows_b += row_b is not None
                if number == 1:
                    header = list(row_a or row_b or [])
                if row_a is None or row_b is None:
                    continue
                _compare_row(number, header, (row_a, row_b), policy, result)
    except csv.Error as exc:
        raise ArtifactError(f"{a} or {b} is not a readable CSV table ({exc})") from None
    if rows_a != rows_b:
        result.add_entry(Entry("rows", "differs", a=rows_a, b=rows_b))
    result.status = combine(result.entry_statuses())


def _compare_row(
    number: int,
    header: list[str],
    rows: tuple[list[str], list[str]],
    policy: Policy,
    result: ArtifactResult,
) -> None:
    row_a, row_b = rows
    for column, (cell_a, cell_b) in enumerate(itertools.zip_longest(row_a, row_b)):
        if cell_a == cell_b:
            continue
        name = header[column] if number > 1 and column < len(header) else str(column + 1)
        where = f"row {number}, column {name}"
        if cell_a is None or cell_b is None:
            side: Status = "added" if cell_a is None else "removed"
            result.add_entry(Entry(where, side, a=cell_a, b=cell_b))
            continue
        value_a, value_b = parse_cell(cell_a), parse_cell(cell_b)
        if value_a is None or value_b is None:
            result.add_entry(Entry(where, "differs", a=cell_a, b=cell_b))
            continue
        found, note = compare_numbers(value_a, value_b, policy)
        found, note = as_written(value_a, value_b, found, note, policy)
        if found != "equal":
            result.add_entry(Entry(where, found, a=cell_a, b=cell_b, note=note))
