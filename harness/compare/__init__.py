"""Artifact comparison: are two runs' outputs the same, within tolerance, or different?

The library entry point is :func:`compare_paths`; the CLI command lives in
:mod:`harness.cli.compare`. Importing this package is cheap (no numpy, no h5py):
the readers load their libraries only when a file's bytes actually differ.
"""

from harness.compare.model import (
    ArtifactResult,
    ComparisonResult,
    Entry,
    Location,
    TensorResult,
)
from harness.compare.policy import BITWISE, Policy, PolicySet, parse_metric_tolerance, parse_policy
from harness.compare.tree import compare_paths

__all__ = [
    "BITWISE",
    "ArtifactResult",
    "ComparisonResult",
    "Entry",
    "Location",
    "Policy",
    "PolicySet",
    "TensorResult",
    "compare_paths",
    "parse_metric_tolerance",
    "parse_policy",
]
