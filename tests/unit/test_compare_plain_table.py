"""The compare table written without rich is, character for character, rich's own; where it
cannot be, rich draws it."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.compare.plain_table import Styled, plain_table
from harness.compare.report import _HEADER, rich_table

WIDTH = 160

# Mostly the characters of real names and details, with some that rich treats on its own:
# markup brackets, emoji colons, non-ASCII, wide characters, controls, spaces.
_text = st.text(
    alphabet=st.sampled_from([*"abcxyz019 ._-/:()[]=,<>@", "é", "漢", "\t", "\n", " "]),
    max_size=70,
)
_styled = st.builds(Styled, _text, st.sampled_from(["", "dim", "red", "bold red"]))
_cell = st.one_of(_styled, _text)
_rows = st.lists(st.tuples(_cell, _cell, _cell, _cell), max_size=6)


class Pipe(io.StringIO):
    """Output that is not a terminal, as a pipe or a log file is."""

    def isatty(self) -> bool:
        return False


def rich_output(rows: list[tuple[Styled | str, ...]], before: list[str], after: str) -> str:
    out = Pipe()
    rich_table(out, rows, before, (after, "green"))
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(rows=_rows, before=st.lists(_text, min_size=2, max_size=2), after=_text)
def test_plain_output_is_riches_or_nothing(
    rows: list[tuple[Styled | str, ...]], before: list[str], after: str
) -> None:
    plain = plain_table(Pipe(), _HEADER, rows, before, after, width=WIDTH)
    if plain is not None:
        assert plain == rich_output(rows, before, after)


def test_the_common_tables_are_written_without_rich() -> None:
    rows: list[tuple[Styled | str, ...]] = [
        (Styled("w.npy"), "npy", Styled("differs", "red"), Styled("1 of 50 elements differ")),
        (Styled("  layer.0"), "", Styled("differs", "red"), Styled("max 1 ULP at [3]")),
        (Styled("metrics.json"), "json", Styled("identical", "green"), Styled("13 bytes")),
        ("", "", "", Styled("-  a", "dim")),
    ]
    before, after = ["A: /runs/a", "B: /runs/b"], "differs: 2 artifacts"
    plain = plain_table(Pipe(), _HEADER, rows, before, after, width=WIDTH)
    assert plain is not None
    assert plain == rich_output(rows, before, after)
    empty = plain_table(Pipe(), _HEADER, [], before, "identical: 0 artifacts", width=WIDTH)
    assert empty == rich_output([], before, "identical: 0 artifacts")


@pytest.mark.parametrize(("variable", "value"), [("FORCE_COLOR", "1"), ("TTY_COMPATIBLE", "1")])
def test_colour_asked_for_is_left_to_rich(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert plain_table(Pipe(), _HEADER, [], ["A: a", "B: b"], "same", width=WIDTH) is None


def test_terminals_wide_tables_and_other_text_are_left_to_rich() -> None:
    class Terminal(Pipe):
        def isatty(self) -> bool:
            return True

    before = ["A: a", "B: b"]
    assert plain_table(Terminal(), _HEADER, [], before, "same", width=WIDTH) is None
    wide = [(Styled("x" * 100), "npy", Styled("differs"), Styled("y" * 60))]
    assert plain_table(Pipe(), _HEADER, wide, before, "same", width=WIDTH) is None
    assert plain_table(Pipe(), _HEADER, [], ["A: café", "B: b"], "same", width=WIDTH) is None
    markup = [(Styled("x"), "[red]npy[/red]", Styled("differs"), Styled("y"))]
    assert plain_table(Pipe(), _HEADER, markup, before, "same", width=WIDTH) is None


_safe = st.text(alphabet=st.sampled_from(list("abcxyz019 ._-/()=,<>")), max_size=40).map(str.rstrip)
_safe_rows = st.lists(
    st.tuples(
        st.builds(Styled, _safe),
        st.sampled_from(["", "npy", "json", "bytes"]),
        st.builds(Styled, _safe, st.just("red")),
        st.builds(Styled, _safe),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(rows=_safe_rows, side=_safe, after=_safe)
def test_plain_text_that_fits_is_written_without_rich(
    rows: list[tuple[Styled | str, ...]], side: str, after: str
) -> None:
    before = [f"A: {side}", f"B: {side}"]
    plain = plain_table(Pipe(), _HEADER, rows, before, after, width=WIDTH)
    assert plain is not None
    assert plain == rich_output(rows, before, after)
