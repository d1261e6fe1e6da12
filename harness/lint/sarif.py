"""`harness lint --format sarif`: findings as SARIF 2.1.0, the format GitHub code scanning
reads (through github/codeql-action/upload-sarif).

Code scanning shows each result at its file and region, with the rule's description and
help; the level (error or warning) is the rule's severity. Paths are written relative to
the repository root (`%SRCROOT%`), as GitHub expects when `harness lint` runs at the root;
columns are 1-based, counted in Unicode code points (the run says so in ``columnKind``),
as harness reports them everywhere; the other places a finding's cause shows are its
``relatedLocations``.
Reference: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html and GitHub's
"SARIF support for code scanning".
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from harness import __version__
from harness.lint.findings import Finding, Location
from harness.lint.rules import RULES

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SOURCE_ROOT = "%SRCROOT%"


def document(
    findings: tuple[Finding, ...] | list[Finding], rules: frozenset[str]
) -> dict[str, Any]:
    """The SARIF log of one lint run; ``rules`` are the ids that ran."""
    chosen = [rule for rule in RULES if rule.id in rules]
    index = {rule.id: position for position, rule in enumerate(chosen)}
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "harness-lint",
                        "version": __version__,
                        "rules": [
                            {
                                "id": rule.id,
                                "name": rule.name,
                                "shortDescription": {"text": rule.summary},
                                "fullDescription": {"text": rule.scope},
                                "help": {"text": f"Fix: {rule.fix}"},
                                "defaultConfiguration": {"level": rule.severity},
                                "properties": {"tags": ["reproducibility"], "precision": "high"},
                            }
                            for rule in chosen
                        ],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [_result(finding, index) for finding in findings],
            }
        ],
    }


def _result(finding: Finding, index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "level": finding.severity,
        "message": {"text": f"{finding.message} (fix: {finding.fix})"},
        "locations": [_location(finding.path, _region(finding))],
    }
    if finding.related:
        result["relatedLocations"] = [
            {
                "id": number,
                **_location(place.path, _region(place)),
                "message": {"text": place.message},
            }
            for number, place in enumerate(finding.related, start=1)
        ]
    if finding.rule in index:
        result["ruleIndex"] = index[finding.rule]
    return result


def _region(place: Finding | Location) -> dict[str, int]:
    """SARIF's region: 1-based, the end column one past the last character, as harness's."""
    region: dict[str, int] = {"startLine": place.line, "startColumn": place.column}
    end_line = place.end_line or place.line
    if end_line > place.line or place.end_column > place.column:
        region["endLine"] = end_line
        region["endColumn"] = place.end_column
    return region


def _location(path: str, region: dict[str, int]) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": _artifact(path), "region": region}}


def _artifact(path: str) -> dict[str, str]:
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute():
        return {"uri": "file://" + quote(str(posix))}
    return {"uri": quote(str(posix)), "uriBaseId": SOURCE_ROOT}
