"""`harness lint` at scale: the analyses share one walk of each tree, the flow analysis
repeats a round only where a value read early changed later, and the findings stay those
of the straightforward analysis."""

from __future__ import annotations

import textwrap

import pytest

from harness.lint import Finding, check_source
from harness.lint import flow as flow_module


def findings(source: str) -> list[Finding]:
    return check_source(textwrap.dedent(source), "x.py")


# A method reads an attribute that a method analysed after it sets: only a second round
# sees the timestamp reach the file.
LATE_ATTRIBUTE = """
    import time


    class Recorder:
        def save(self, path):
            with open(path, "w") as stream:
                stream.write(str(self.stamp))

        def start(self):
            self.stamp = time.time()
"""


def test_a_value_read_before_it_is_set_is_followed_in_another_round() -> None:
    (finding,) = findings(LATE_ATTRIBUTE)
    assert (finding.line, finding.rule) == (11, "HR010")
    assert "reaches .write() at line 8" in finding.message


def test_programs_whose_reads_were_final_are_not_analysed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds: list[int] = []
    original = flow_module.Flow._stale

    def counted(self: flow_module.Flow) -> set[int]:
        stale = original(self)
        rounds.append(len(stale))
        return stale

    monkeypatch.setattr(flow_module.Flow, "_stale", counted)
    settled = """
        import time, json


        class Recorder:
            def start(self):
                self.stamp = time.time()

            def save(self, path):
                json.dump(self.stamp, open(path, "w"))
    """
    (finding,) = findings(settled)
    assert finding.rule == "HR010"
    assert rounds == [0]  # one round: every read already saw its final value
    rounds.clear()
    findings(LATE_ATTRIBUTE)
    assert rounds == [1, 0]
