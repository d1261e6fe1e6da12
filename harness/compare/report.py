"""Rendering a ComparisonResult: a terminal table, JSON, Markdown and HTML.

All four are built from the same summaries, so they never disagree. JSON has a stable
schema (``schema: "harness.compare/1"``); floats that JSON cannot spell (inf, nan) are
written as the strings "inf", "-inf" and "nan".
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from harness.compare.model import (
    SCHEMA,
    ArtifactResult,
    Bin,
    ComparisonResult,
    Entry,
    Location,
    TensorResult,
)
from harness.compare.names import printable, shown
from harness.compare.plain_table import Styled, plain_table
from harness.compare.policy import parse_policy
from harness.errors import ConfigError

# Significant digits that print each float type exactly enough to tell neighbours apart.
_DIGITS = {"float16": 5, "bfloat16": 4, "float32": 9, "float64": 17, "complex64": 9}
MAX_ROWS = 20
_STYLE = {
    "identical": "green",
    "equal": "green",
    "within": "yellow",
    "differs": "red",
    "added": "red",
    "removed": "red",
    "error": "bold red",
}


def _value(value: float, dtype: str | None) -> str:
    floating = dtype is not None and dtype.startswith(("float", "bfloat", "complex"))
    if not floating and math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return f"{value:.{_DIGITS.get(dtype or '', 6)}g}"


def _index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def _at(location: Location | None, dtype: str | None) -> str:
    if location is None:
        return ""
    a, b = _value(location.a, dtype), _value(location.b, dtype)
    return f" at {_index(location.index)} ({a} vs {b})"


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def _percentile_text(
    bounds: dict[str, float], keys: tuple[str, ...], *, floats: bool = False
) -> str:
    shown = [
        f"{key} <= {value:.3g}" if floats else f"{key} <= {int(value):,}"
        for key in keys
        if (value := bounds.get(key)) is not None
    ]
    return ", ".join(shown)


def tensor_details(tensor: TensorResult, policy: str) -> str:
    """One line that says how two arrays differ."""
    if tensor.status == "added":
        return f"only in B: {tensor.dtype_b} {_shape(tensor.shape_b)}"
    if tensor.status == "removed":
        return f"only in A: {tensor.dtype_a} {_shape(tensor.shape_a)}"
    if tensor.note and not tensor.differing:
        return tensor.note
    if not tensor.differing:
        return f"{tensor.dtype_a} {_shape(tensor.shape_a)}, {tensor.elements:,} elements equal"
    dtype = tensor.dtype_a
    parts = [
        f"{tensor.differing:,} of {tensor.elements:,} elements differ "
        f"({100 * tensor.differing_fraction:.3g}%)"
    ]
    if tensor.failing and policy != "bitwise":
        parts.append(f"{tensor.failing:,} outside {policy}")
    if tensor.max_abs is not None:
        parts.append(f"max abs {tensor.max_abs:.3g}{_at(tensor.worst_abs, dtype)}")
        parts.append(f"max rel {tensor.max_rel or 0:.3g}")
        if tensor.max_ulp is not None:
            parts.append(f"max {tensor.max_ulp:,} ULP{_at(tensor.worst_ulp, dtype)}")
            spread = _percentile_text(tensor.ulp_percentiles, ("p50", "p99"))
            if spread:
                parts.append(f"ULP {spread}")
    if tensor.nan_mismatch or tensor.inf_mismatch:
        parts.append(f"NaN pattern {tensor.nan_mismatch:,}, Inf pattern {tensor.inf_mismatch:,}")
    if tensor.nan_payload:
        parts.append(f"{tensor.nan_payload:,} NaNs with another payload")
    if tensor.first_differences:
        parts.append("first at " + " ".join(_index(i) for i in tensor.first_differences))
    if tensor.note:
        parts.append(tensor.note)
    return "; ".join(parts)


def entry_details(entry: Entry, *, where: bool = True) -> str:
    """One difference outside arrays; ``where=False`` when a column already names it."""
    if entry.status == "added":
        text = f"only in B ({entry.b!r})"
    elif entry.status == "removed":
        text = f"only in A ({entry.a!r})"
    elif entry.a is None and entry.b is None:
        text = ""
    else:
        text = f"{entry.a!r} vs {entry.b!r}"
    if entry.note:
        text = f"{text} ({entry.note})" if text else entry.note
    if where:
        return f"{entry.where}: {text}" if text else entry.where
    return text


def _single_tensor(artifact: ArtifactResult) -> TensorResult | None:
    if len(artifact.tensors) == 1 and not artifact.tensors[0].name:
        return artifact.tensors[0]
    return None


def artifact_details(artifact: ArtifactResult) -> str:
    """One line that sums up an artifact's verdict."""
    if artifact.status == "error":
        message = artifact.error or "could not be compared"
        return f"{message} (fix: {artifact.hint})" if artifact.hint else message
    if artifact.status in ("added", "removed"):
        size = artifact.size_b if artifact.status == "added" else artifact.size_a
        return f"{size:,} bytes" if size is not None else ""
    if artifact.status == "identical":
        return f"{artifact.size_a:,} bytes, byte for byte" if artifact.size_a is not None else ""
    single = _single_tensor(artifact)
    parts: list[str] = []
    if single is not None:
        parts.append(tensor_details(single, artifact.policy))
    elif artifact.tensors:
        counts: dict[str, int] = {}
        for tensor in artifact.tensors:
            counts[tensor.status] = counts.get(tensor.status, 0) + 1
        described = ", ".join(
            f"{counts[status]} {status}" for status in _STYLE if counts.get(status)
        )
        parts.append(f"{len(artifact.tensors)} tensors: {described}")
    if artifact.entries_total:
        described = ", ".join(f"{n} {status}" for status, n in artifact.entry_counts.items())
        label = "difference" if artifact.entries_total == 1 else "differences"
        parts.append(f"{artifact.entries_total} {label} ({described})")
    if artifact.status == "equal" and not parts:
        parts.append("values equal, bytes differ")
    parts.extend(artifact.notes)
    return "; ".join(parts)


def _listed_tensors(artifact: ArtifactResult) -> list[TensorResult]:
    if _single_tensor(artifact) is not None:
        return []
    return [tensor for tensor in artifact.tensors if tensor.status != "identical"]


def summary_line(result: ComparisonResult) -> str:
    counts = result.summary()
    words = {
        "identical": "identical",
        "equal": "equal values",
        "within": "within tolerance",
        "differs": "differ",
        "added": "added",
        "removed": "removed",
        "error": "unreadable",
    }
    described = ", ".join(f"{counts[key]} {word}" for key, word in words.items() if counts[key])
    total = counts["artifacts"]
    noun = "artifact" if total == 1 else "artifacts"
    return f"{result.outcome}: {total} {noun}" + (f" ({described})" if described else "")


def _side(label: str, side: Any) -> str:
    on = f" on {side.device}" if getattr(side, "device", None) else ""
    run = f" (run {side.run}{on})" if side.run else ""
    return f"{label}: {side.path}{run}"


# -- terminal -------------------------------------------------------------------------


# Past this many artifacts the table leaves out the identical ones (as diff -r prints
# nothing for equal files): a folder of 100,000 equal files is one line, not a scroll.
MAX_IDENTICAL_LISTED = 200


def _list_identical(result: ComparisonResult) -> bool:
    return len(result.artifacts) <= MAX_IDENTICAL_LISTED


# A row of the table: a Styled cell is shown as written (a rich Text), a plain string is
# read by rich as markup (it never holds any: a kind's name, or nothing).
_Row = tuple["Styled | str", "Styled | str", "Styled | str", "Styled | str"]
_HEADER = ("Artifact", "Kind", "Verdict", "Details")


def _table_rows(result: ComparisonResult) -> list[_Row]:
    rows: list[_Row] = []
    listed_identical = _list_identical(result)
    for artifact in result.artifacts:
        if artifact.status == "identical" and not listed_identical:
            continue
        style = _STYLE[artifact.status]
        rows.append(
            (
                Styled(shown(artifact.path)),
                artifact.kind,
                Styled(artifact.verdict, style),
                Styled(printable(artifact_details(artifact))),
            )
        )
        listed = _listed_tensors(artifact)
        for tensor in listed[:MAX_ROWS]:
            rows.append(
                (
                    Styled(f"  {shown(tensor.name)}", "dim"),
                    "",
                    Styled(tensor.status, _STYLE[tensor.status]),
                    Styled(printable(tensor_details(tensor, artifact.policy))),
                )
            )
        if len(listed) > MAX_ROWS:
            rows.append((Styled(f"  ... {len(listed) - MAX_ROWS} more tensors"), "", "", ""))
        entries_shown = artifact.entries[: max(0, MAX_ROWS - len(listed))]
        for entry in entries_shown:
            rows.append(
                (
                    Styled(f"  {shown(entry.where)}", "dim"),
                    "",
                    Styled(entry.status, _STYLE[entry.status]),
                    Styled(printable(entry_details(entry, where=False))),
                )
            )
        if artifact.entries_total > len(entries_shown):
            more = artifact.entries_total - len(entries_shown)
            rows.append((Styled(f"  ... {more} more differences"), "", "", ""))
        for line in artifact.diff:
            rows.append(("", "", "", Styled(printable(line), "dim")))
    if not listed_identical and result.count("identical"):
        identical = result.count("identical")
        rows.append(
            (
                Styled(f"({identical:,} identical artifacts not listed; --json lists every one)"),
                "",
                Styled("identical", _STYLE["identical"]),
                "",
            )
        )
    return rows


def print_table(result: ComparisonResult, file: IO[str] | None = None) -> None:
    """The human-readable table, to stdout unless ``file`` is given.

    Drawn by rich on a terminal; elsewhere (a pipe, a log, CI) rich would draw no colour,
    and the same characters are written without it where they are known to be the same
    (see :mod:`harness.compare.plain_table`): importing rich is a good part of the time
    `harness compare` takes on identical files.
    """
    out = file or sys.stdout
    rows = _table_rows(result)
    sides = [printable(_side("A", result.a)), printable(_side("B", result.b))]
    summary = summary_line(result)
    summary_style = _STYLE.get(result.outcome.split()[0], "yellow")
    plain = plain_table(out, _HEADER, rows, sides, summary, width=_PIPE_WIDTH)
    if plain is None:
        rich_table(file, rows, sides, (summary, summary_style))
        return
    out.write(plain)
    out.flush()


def rich_table(
    file: IO[str] | None,
    rows: Sequence[Sequence[Styled | str]],
    before: Sequence[str],
    after: tuple[str, str],
) -> None:
    """The lines ``before``, the table and the line ``after`` (text, style), drawn by rich."""
    from rich import box  # noqa: PLC0415 (see print_table)
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    console = Console(file=file, width=None if (file or sys.stdout).isatty() else _PIPE_WIDTH)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column(_HEADER[0], overflow="fold")
    table.add_column(_HEADER[1])
    table.add_column(_HEADER[2])
    table.add_column(_HEADER[3], overflow="fold")
    for row in rows:
        table.add_row(
            *(
                Text(cell.text, style=cell.style) if isinstance(cell, Styled) else cell
                for cell in row
            )
        )
    for line in before:
        console.print(line, highlight=False, markup=False)
    console.print(table)
    console.print(Text(after[0], style=after[1]))


# The width of the table where no terminal says one (a pipe, a file).
_PIPE_WIDTH = 160


# -- JSON -----------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _tensor_json(tensor: TensorResult) -> dict[str, Any]:
    data = asdict(tensor)
    data["differing_fraction"] = tensor.differing_fraction
    data["ulp_percentiles"] = tensor.ulp_percentiles
    data["abs_percentiles"] = tensor.abs_percentiles
    for key in ("worst_ulp", "worst_abs"):
        if data[key] is not None:
            data[key]["index"] = list(data[key]["index"])
    for location in data["worst"]:
        location["index"] = list(location["index"])
    return data


def to_dict(result: ComparisonResult) -> dict[str, Any]:
    """The JSON document: ``schema``, the two sides, a summary, then every artifact."""
    artifacts = []
    for artifact in result.artifacts:
        artifacts.append(
            {
                "path": artifact.path,
                "kind": artifact.kind,
                "status": artifact.status,
                "verdict": artifact.verdict,
                "policy": artifact.policy,
                "passed": artifact.passed,
                "size_a": artifact.size_a,
                "size_b": artifact.size_b,
                "error": artifact.error,
                "hint": artifact.hint,
                "notes": artifact.notes,
                "tensors": [_tensor_json(tensor) for tensor in artifact.tensors],
                "differences": [asdict(entry) for entry in artifact.entries],
                "differences_total": artifact.entries_total,
                "diff": artifact.diff,
            }
        )
    document = {
        "schema": SCHEMA,
        "a": asdict(result.a),
        "b": asdict(result.b),
        "policy": result.policy,
        "metric_tolerance": result.metric_tolerance,
        "outcome": result.outcome,
        "exit_code": result.exit_code,
        "summary": result.summary(),
        "artifacts": artifacts,
    }
    cleaned: dict[str, Any] = _clean(document)
    return cleaned


def to_json(result: ComparisonResult) -> str:
    import json  # noqa: PLC0415 (a table on a pipe, the common case, needs no JSON)

    return json.dumps(to_dict(result), indent=2, allow_nan=False) + "\n"


# -- Markdown -------------------------------------------------------------------------


_MD_SPECIAL = str.maketrans({char: f"\\{char}" for char in "\\`*[]<>|"} | {"\n": " ", "\r": " "})


def _md(text: str) -> str:
    """Text for a Markdown cell: hidden characters escaped, no character that Markdown
    (or HTML inside it) would read as markup, one line."""
    return printable(text).translate(_MD_SPECIAL)


def _md_name(name: str) -> str:
    return _md(shown(name))


def to_markdown(result: ComparisonResult) -> str:
    lines = [
        "# harness compare",
        "",
        f"- {_md(_side('A', result.a))}",
        f"- {_md(_side('B', result.b))}",
        "",
        f"**Result: {_md(summary_line(result))}**",
        "",
        "| Artifact | Kind | Verdict | Details |",
        "| --- | --- | --- | --- |",
    ]
    for artifact in result.artifacts:
        lines.append(
            f"| {_md_name(artifact.path)} | {artifact.kind} | {_md(artifact.verdict)} "
            f"| {_md(artifact_details(artifact))} |"
        )
    for artifact in result.artifacts:
        listed = _listed_tensors(artifact)
        if not (listed or artifact.entries or artifact.diff):
            continue
        lines += ["", f"## {_md_name(artifact.path)}: {_md(artifact.verdict)}", ""]
        if listed:
            lines += ["| Tensor | Verdict | Details |", "| --- | --- | --- |"]
            lines += [
                f"| {_md_name(t.name)} | {t.status} | {_md(tensor_details(t, artifact.policy))} |"
                for t in listed
            ]
            lines.append("")
        lines += [f"- {_md(entry_details(entry))}" for entry in artifact.entries]
        if artifact.entries_total > len(artifact.entries):
            lines.append(f"- ... {artifact.entries_total - len(artifact.entries)} more")
        if artifact.diff:
            # Indented, not fenced: a line of the diff cannot close an indented block.
            lines += ["", *(f"    {printable(line)}" for line in artifact.diff)]
        for tensor in _detailed(artifact):
            lines += _tensor_markdown(artifact, tensor)
    return "\n".join(lines) + "\n"


def _text_bars(title: str, bins: list[Bin], labels: list[str]) -> list[str]:
    """A histogram as a Markdown table with a bar of block characters per bin."""
    largest = max((found.count for found in bins), default=1) or 1
    rows = ["", f"| {title} | count | verdict | |", "| ---: | ---: | --- | --- |"]
    verdicts = {True: "pass", False: "fail", None: ""}
    for found, label in zip(bins, labels, strict=True):
        bar = "█" * max(1, round(30 * found.count / largest))
        rows.append(f"| {label} | {found.count:,} | {verdicts[found.passed]} | {bar} |")
    return rows


def _tensor_markdown(artifact: ArtifactResult, tensor: TensorResult) -> list[str]:
    from harness.compare.plot import abs_label, ulp_label  # noqa: PLC0415 (reports only)

    title = f"{artifact.path}: {tensor.name}" if tensor.name else artifact.path
    lines = ["", f"### {_md_name(title)}: {tensor.status}", "", "| | |", "| --- | --- |"]
    lines += [
        f"| {_md(name)} | {_md(value)} |"
        for name, value in _statistics_rows(tensor, artifact.policy)
    ]
    if tensor.ulp_histogram:
        bins = tensor.ulp_histogram
        lines += _text_bars("ULP distance", bins, [ulp_label(found) for found in bins])
    if tensor.abs_histogram:
        bins = tensor.abs_histogram
        lines += _text_bars("\\|a - b\\|", bins, [abs_label(found) for found in bins])
    if tensor.worst:
        lines += ["", "| worst at | A | B | ULP |", "| --- | ---: | ---: | ---: |"]
        dtype = tensor.dtype_a
        lines += [
            f"| `{_index(w.index)}` | {_value(w.a, dtype)} | {_value(w.b, dtype)} "
            f"| {'' if w.ulp is None else f'{w.ulp:,}'} |"
            for w in tensor.worst
        ]
    return lines


# -- HTML -----------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; margin: 0.5em 0; }
.tensor { border-top: 1px solid #ddd; margin-top: 1.5em; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code, pre { font-family: ui-monospace, monospace; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.identical, .equal { color: #1a7f37; } .within { color: #9a6700; }
.differs, .added, .removed, .error { color: #cf222e; font-weight: bold; }
"""


def _h(text: str) -> str:
    import html  # noqa: PLC0415 (only reports are HTML)

    return html.escape(printable(text), quote=True)


def _h_name(name: str) -> str:
    import html  # noqa: PLC0415 (only reports are HTML)

    return html.escape(shown(name), quote=True)


def _row(cells: list[str]) -> str:
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


# Tensors drawn in detail on one page; the rest are listed in the artifact's table.
MAX_DETAILED = 50


def _limits(policy_text: str) -> tuple[float | None, float | None]:
    """The ULP and |a - b| limits a histogram's bars are coloured against, where the
    policy has one (a relative tolerance has no single limit)."""
    try:
        policy = parse_policy(policy_text)
    except ConfigError:
        return None, None
    if policy.kind == "bitwise":
        return -1.0, -1.0
    if policy.kind == "ulp" and not policy.atol:
        return float(policy.ulp), None
    if policy.kind in ("close", "metric") and not policy.rtol:
        return None, policy.atol
    return None, None


def _charts(tensor: TensorResult, policy: str) -> str:
    from harness.compare.plot import abs_label, colour, histogram_svg, ulp_label  # noqa: PLC0415

    ulp_limit, abs_limit = _limits(policy)
    charts = []
    if tensor.ulp_histogram:
        bins = tensor.ulp_histogram
        charts.append(
            histogram_svg(
                "ULP distance (differing elements)",
                bins,
                [ulp_label(found) for found in bins],
                [colour(found, ulp_limit) for found in bins],
            )
        )
    if tensor.abs_histogram:
        bins = tensor.abs_histogram
        charts.append(
            histogram_svg(
                "|a - b|",
                bins,
                [abs_label(found) for found in bins],
                [colour(found, abs_limit) for found in bins],
            )
        )
    return f'<div class="charts">{"".join(charts)}</div>' if charts else ""


def _statistics_rows(tensor: TensorResult, policy: str) -> list[tuple[str, str]]:
    rows = [
        ("dtype, shape", f"{tensor.dtype_a} {_shape(tensor.shape_a)}"),
        (
            "differing elements",
            f"{tensor.differing:,} of {tensor.elements:,} ({100 * tensor.differing_fraction:.3g}%)",
        ),
        (f"outside {policy}", f"{tensor.failing:,}"),
    ]
    if tensor.max_ulp is not None:
        rows.append(("max ULP", f"{tensor.max_ulp:,}{_at(tensor.worst_ulp, tensor.dtype_a)}"))
        spread = _percentile_text(tensor.ulp_percentiles, tuple(tensor.ulp_percentiles))
        rows.append(("ULP percentiles", spread or "-"))
    if tensor.max_abs is not None:
        rows.append(("max |a - b|", f"{tensor.max_abs:.3g}{_at(tensor.worst_abs, tensor.dtype_a)}"))
        spread = _percentile_text(
            tensor.abs_percentiles, tuple(tensor.abs_percentiles), floats=True
        )
        rows.append(("|a - b| percentiles", spread or "-"))
        rows.append(("max relative", f"{tensor.max_rel or 0:.3g}"))
    if tensor.nan_mismatch or tensor.inf_mismatch or tensor.nan_payload:
        rows.append(
            (
                "NaN / Inf",
                f"{tensor.nan_mismatch:,} NaN pattern, {tensor.inf_mismatch:,} Inf pattern, "
                f"{tensor.nan_payload:,} NaN payload",
            )
        )
    if tensor.note:
        rows.append(("note", tensor.note))
    return rows


def _tensor_html(artifact: ArtifactResult, tensor: TensorResult) -> str:
    title = f"{artifact.path}: {tensor.name}" if tensor.name else artifact.path
    parts = [
        '<section class="tensor">',
        f"<h3><code>{_h_name(title)}</code> "
        f'<span class="{tensor.status}">{tensor.status}</span></h3>',
        "<table>",
        *(_row([_h(name), _h(value)]) for name, value in _statistics_rows(tensor, artifact.policy)),
        "</table>",
        _charts(tensor, artifact.policy),
    ]
    if tensor.worst:
        parts.append(
            "<table><tr><th>worst at</th><th>A</th><th>B</th><th>ULP</th><th>|a - b|</th></tr>"
        )
        for location in tensor.worst:
            ulp = "" if location.ulp is None else f"{location.ulp:,}"
            parts.append(
                "<tr>"
                f"<td><code>{_index(location.index)}</code></td>"
                f'<td class="number">{_h(_value(location.a, tensor.dtype_a))}</td>'
                f'<td class="number">{_h(_value(location.b, tensor.dtype_a))}</td>'
                f'<td class="number">{ulp}</td>'
                f'<td class="number">{abs(location.a - location.b):.3g}</td>'
                "</tr>"
            )
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


def _detailed(artifact: ArtifactResult) -> list[TensorResult]:
    return [tensor for tensor in artifact.tensors if tensor.differing][:MAX_DETAILED]


def to_html(result: ComparisonResult) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>harness compare</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>harness compare</h1>",
        f"<p>{_h(_side('A', result.a))}<br>{_h(_side('B', result.b))}</p>",
        f'<p class="{_h(result.outcome.split()[0])}"><strong>'
        f"Result: {_h(summary_line(result))}</strong></p>",
        "<table><tr><th>Artifact</th><th>Kind</th><th>Verdict</th><th>Details</th></tr>",
    ]
    for artifact in result.artifacts:
        verdict = f'<span class="{artifact.status}">{_h(artifact.verdict)}</span>'
        parts.append(
            _row(
                [
                    f"<code>{_h_name(artifact.path)}</code>",
                    _h(artifact.kind),
                    verdict,
                    _h(artifact_details(artifact)),
                ]
            )
        )
    parts.append("</table>")
    shown = 0
    for artifact in result.artifacts:
        listed = _listed_tensors(artifact)
        detailed = _detailed(artifact)[: max(0, MAX_DETAILED - shown)]
        shown += len(detailed)
        if not (listed or detailed or artifact.entries or artifact.diff):
            continue
        parts.append(f"<h2><code>{_h_name(artifact.path)}</code>: {_h(artifact.verdict)}</h2>")
        if listed:
            parts.append("<table><tr><th>Tensor</th><th>Verdict</th><th>Details</th></tr>")
            parts += [
                _row(
                    [
                        f"<code>{_h_name(t.name)}</code>",
                        f'<span class="{t.status}">{t.status}</span>',
                        _h(tensor_details(t, artifact.policy)),
                    ]
                )
                for t in listed
            ]
            parts.append("</table>")
        if artifact.entries:
            parts.append("<ul>")
            parts += [f"<li>{_h(entry_details(entry))}</li>" for entry in artifact.entries]
            if artifact.entries_total > len(artifact.entries):
                parts.append(f"<li>... {artifact.entries_total - len(artifact.entries)} more</li>")
            parts.append("</ul>")
        if artifact.diff:
            parts.append(f"<pre>{_h(chr(10).join(artifact.diff))}</pre>")
        parts += [_tensor_html(artifact, tensor) for tensor in detailed]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(result: ComparisonResult, path: Path) -> None:
    """Markdown for ``.md``, HTML for ``.html``/``.htm`` (the caller checks the suffix)."""
    text = to_html(result) if path.suffix.lower() in (".html", ".htm") else to_markdown(result)
    path.write_text(text, encoding="utf-8", errors="backslashreplace")
