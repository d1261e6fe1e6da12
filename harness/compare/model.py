"""What a comparison found: per tensor, per artifact, for the whole call.

Statuses, from best to worst:

``identical``  the bytes are equal.
``equal``      every value is bit for bit equal, but the file bytes differ (zip timestamps,
               header padding, JSON whitespace or key order).
``within``     some values differ, all within the artifact's policy (the tier is named).
``differs``    a value (or a name, dtype or shape) is outside the policy.
``added``      only in B.   ``removed``  only in A.
``error``      the artifact could not be read or compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import EXIT_DIFFERS, EXIT_SAME, EXIT_TROUBLE

Status = Literal["identical", "equal", "within", "differs", "added", "removed", "error"]

PASSING: frozenset[str] = frozenset({"identical", "equal", "within"})
_ORDER: tuple[Status, ...] = (
    "error",
    "differs",
    "removed",
    "added",
    "within",
    "equal",
    "identical",
)
SCHEMA = "harness.compare/1"
# How many individual differences (indices, JSON paths, CSV cells) an artifact keeps.
MAX_LISTED = 5
MAX_ENTRIES = 50


def combine(statuses: list[Status]) -> Status:
    """The status of an artifact whose bytes differ, from the statuses of its parts.

    Every part identical means the values are equal and only the container bytes differ.
    """
    for status in _ORDER[:-1]:
        if status in statuses:
            return "differs" if status in ("added", "removed") else status
    return "equal"


@dataclass
class Location:
    """Where a notable difference sits, with both values (and their ULP distance)."""

    index: tuple[int, ...]
    a: float
    b: float
    ulp: int | None = None


@dataclass
class Bin:
    """One histogram bar: ``count`` differing pairs whose distance lies in [low, high].

    ULP bins hold whole numbers (high inclusive); absolute-difference bins are [low, high)
    powers of two.
    """

    low: float
    high: float
    count: int
    # Whether the values in this bar pass the policy (None: not known). A bin whose
    # values both pass and fail is drawn as two bars.
    passed: bool | None = None


PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile_bounds(bins: list[Bin], total: int) -> dict[str, float]:
    """An upper bound of each percentile, read off the histogram (exact to a factor of 2,
    never above the largest value: the bins' upper bounds are clamped to it)."""
    bounds: dict[str, float] = {}
    if not total:
        return bounds
    for percent in PERCENTILES:
        needed = percent / 100 * total
        seen = 0
        for found in bins:
            seen += found.count
            if seen >= needed:
                bounds[f"p{percent:g}"] = found.high
                break
    return bounds


@dataclass
class TensorResult:
    """One array (an npy file, a safetensors tensor, an HDF5 dataset, a state-dict entry)."""

    name: str
    status: Status
    dtype_a: str | None = None
    dtype_b: str | None = None
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    elements: int = 0
    differing: int = 0
    failing: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    max_ulp: int | None = None
    worst_ulp: Location | None = None
    worst_abs: Location | None = None
    nan_mismatch: int = 0
    inf_mismatch: int = 0
    nan_payload: int = 0
    first_differences: list[tuple[int, ...]] = field(default_factory=list)
    worst: list[Location] = field(default_factory=list)
    ulp_histogram: list[Bin] = field(default_factory=list)
    abs_histogram: list[Bin] = field(default_factory=list)
    note: str | None = None

    @property
    def differing_fraction(self) -> float:
        return self.differing / self.elements if self.elements else 0.0

    @property
    def ulp_percentiles(self) -> dict[str, float]:
        return percentile_bounds(self.ulp_histogram, sum(b.count for b in self.ulp_histogram))

    @property
    def abs_percentiles(self) -> dict[str, float]:
        return percentile_bounds(self.abs_histogram, sum(b.count for b in self.abs_histogram))


@dataclass
class Entry:
    """A difference outside arrays: a JSON path, a CSV cell, a metadata key, a member."""

    where: str
    status: Status
    a: Any = None
    b: Any = None
    note: str | None = None


@dataclass
class ArtifactResult:
    """The verdict on one artifact (one relative path) and the evidence for it."""

    path: str
    kind: str
    status: Status
    policy: str
    size_a: int | None = None
    size_b: int | None = None
    tensors: list[TensorResult] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    entry_counts: dict[str, int] = field(default_factory=dict)
    diff: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    @property
    def verdict(self) -> str:
        if self.status == "within":
            return f"within {self.policy}"
        if self.status == "equal":
            return "equal values (bytes differ)"
        if self.status == "added":
            return "added (only in B)"
        if self.status == "removed":
            return "removed (only in A)"
        return self.status

    @property
    def entries_total(self) -> int:
        return sum(self.entry_counts.values())

    def entry_statuses(self) -> list[Status]:
        return [status for status in _ORDER if self.entry_counts.get(status)]

    def add_entry(self, entry: Entry) -> None:
        """Record a difference, keeping only the first few for the report."""
        self.entry_counts[entry.status] = self.entry_counts.get(entry.status, 0) + 1
        if len(self.entries) < MAX_ENTRIES:
            self.entries.append(entry)


@dataclass
class Side:
    """One side of the comparison as the user named it, and what it resolved to."""

    argument: str
    path: str
    run: str | None = None
    # What the run computed on ("cpu" or a GPU class), from its record: bytes agree only
    # within one class, so a reader of the verdict needs to know.
    device: str | None = None


@dataclass
class ComparisonResult:
    a: Side
    b: Side
    policy: str | None
    metric_tolerance: str | None
    artifacts: list[ArtifactResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for artifact in self.artifacts if artifact.status == status)

    @property
    def errors(self) -> list[ArtifactResult]:
        return [artifact for artifact in self.artifacts if artifact.status == "error"]

    @property
    def passed(self) -> bool:
        return all(artifact.passed for artifact in self.artifacts)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_TROUBLE
        return EXIT_SAME if self.passed else EXIT_DIFFERS

    @property
    def outcome(self) -> str:
        if self.errors:
            return "error"
        if not self.passed:
            return "differs"
        if any(artifact.status == "within" for artifact in self.artifacts):
            return "within tolerance"
        if any(artifact.status == "equal" for artifact in self.artifacts):
            return "equal"
        return "identical"

    def summary(self) -> dict[str, int]:
        statuses: list[Status] = [
            "identical",
            "equal",
            "within",
            "differs",
            "added",
            "removed",
            "error",
        ]
        counts: dict[str, int] = {"artifacts": len(self.artifacts)}
        counts.update((status, self.count(status)) for status in statuses)
        return counts
