"""`harness lint`: a static check of experiment code for what breaks reproducibility.

Unseeded randomness, DataLoader workers without seeded generators, cuDNN autotuning,
determinism switched off, ops that are nondeterministic on CUDA, clock and host reads, OS
entropy and set iteration order; each finding names the file, line, rule and fix. The
rules and their exact scope are in :mod:`harness.lint.rules`.
"""

from __future__ import annotations

from harness.lint.checker import Finding, check_file, check_source
from harness.lint.command import LintResult, default_targets, lint, lint_paths
from harness.lint.rules import RULES, Rule
from harness.lint.settings import LintSettings, enabled_rules, settings_from_table

__all__ = [
    "RULES",
    "Finding",
    "LintResult",
    "LintSettings",
    "Rule",
    "check_file",
    "check_source",
    "default_targets",
    "enabled_rules",
    "lint",
    "lint_paths",
    "settings_from_table",
]
