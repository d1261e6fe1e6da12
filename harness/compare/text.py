"""Text files: a line diff.

Lines are compared as they stream past, so any size works; the unified diff shown in the
report is computed only for files small enough to hold, otherwise the first differing
line is shown.
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path

from harness.compare.model import ArtifactResult, Entry
from harness.compare.names import printable
from harness.compare.policy import Policy

DIFF_LIMIT = 4 << 20
MAX_DIFF_LINES = 40


def _decode(line: bytes) -> str:
    # Lines are compared as bytes; this is only how one is shown. Bytes that are not
    # UTF-8 are shown as \xNN escapes, never as a replacement character that two
    # different lines would share.
    return printable(line.decode("utf-8", "surrogateescape").rstrip("\r\n"))


def compare_text(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    """Called only when the bytes differ."""
    first: int | None = None
    lines_a = lines_b = 0
    differing = 0
    with a.open("rb") as fa, b.open("rb") as fb:
        for number, (line_a, line_b) in enumerate(itertools.zip_longest(fa, fb), start=1):
            lines_a += line_a is not None
            lines_b += line_b is not None
            if line_a != line_b:
                differing += 1
                if first is None:
                    first = number
                    result.add_entry(
                        Entry(
                            f"line {number}",
                            "differs",
                            a=None if line_a is None else _decode(line_a),
                            b=None if line_b is None else _decode(line_b),
                        )
                    )
    note = f"{differing} of {max(lines_a, lines_b)} lines differ in place"
    if lines_a != lines_b:
        note += f"; {lines_a} lines in A, {lines_b} in B"
    result.notes.append(note)
    if max(result.size_a or 0, result.size_b or 0) <= DIFF_LIMIT:
        text_a = a.read_bytes().decode("utf-8", "surrogateescape").splitlines()
        text_b = b.read_bytes().decode("utf-8", "surrogateescape").splitlines()
        diff = difflib.unified_diff(text_a, text_b, "A", "B", n=2, lineterm="")
        result.diff = [printable(line) for line in itertools.islice(diff, MAX_DIFF_LINES + 1)]
        if len(result.diff) > MAX_DIFF_LINES:
            result.diff[MAX_DIFF_LINES:] = ["..."]
    if not policy.is_bitwise:
        result.notes.append(f"{policy.text} does not apply to text; compared line by line")
    result.status = "differs"
