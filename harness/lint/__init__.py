"""`harness lint`: a static check of experiment code for what breaks reproducibility.

Randomness used before its generator is seeded (Python, NumPy, torch, TensorFlow,
scikit-learn, layer initialisation), DataLoader workers, cuDNN autotuning, determinism
switched off, ops that are nondeterministic on CUDA, and values that differ between runs
(the clock, the host, OS entropy, set, listing and completion order, string hashes, random
seeds) when they reach a result. Each finding names the file, lines, rule, severity and
fix. The rules and their exact scope are in :mod:`harness.lint.rules`; how the files are
read as one program in :mod:`harness.lint.project`, :mod:`harness.lint.seeding` and
:mod:`harness.lint.flow`.
"""

from __future__ import annotations

from harness.lint.checker import check_file, check_source
from harness.lint.findings import Finding, Location
from harness.lint.rules import RULES, Rule
from harness.lint.settings import LintSettings, enabled_rules, settings_from_table
from harness.lint.targets import LintResult, default_targets, lint_paths, managed_entries

__all__ = [
    "RULES",
    "Finding",
    "LintResult",
    "LintSettings",
    "Location",
    "Rule",
    "check_file",
    "check_source",
    "default_targets",
    "enabled_rules",
    "lint_paths",
    "managed_entries",
    "settings_from_table",
]
