"""Files that differ only in the project's path they hold.

Some frameworks write where the project lay into what they save: PyTorch Lightning's
checkpoints keep ``ModelCheckpoint``'s ``dirpath`` and ``best_model_path`` absolute, and
settings saved with ``os.path.abspath`` do the same. Two runs whose projects lay at
different paths then differ in those strings alone, which the generic evidence ("the
clock or unseeded randomness", "name files relative to the project") misreads. This
module tells that case apart from every other: each difference must be a string of the
first run that names its project's path where the second names its own, equal once one
path is put for the other, with every tensor and everything else alike. The report keeps
a bounded number of differences; when it kept fewer than it counted, nothing is claimed.
"""

from __future__ import annotations

from pathlib import Path

from harness import untrusted
from harness.compare.model import PASSING, ComparisonResult

# The spec a run folder holds: what the runtime ran, the project's path among it.
_SPEC = "spec.json"
_SPEC_LIMIT = 1 << 20


def project_path(folder: Path) -> str | None:
    """Where the run's project lay as the experiment saw it (``/harness/project`` in a
    container, a folder of its own for the host executor and SLURM), from its spec."""
    try:
        spec = untrusted.load_json(
            folder / _SPEC, what="the run's spec", follow_symlinks=False, limit=_SPEC_LIMIT
        )
    except (OSError, untrusted.UntrustedInputError):
        return None
    project = spec.get("project") if isinstance(spec, dict) else None
    return project if isinstance(project, str) and project.startswith("/") else None


def only_the_project_path(
    comparison: ComparisonResult | None, path_a: str | None, path_b: str | None
) -> list[str] | None:
    """The fields (the last step of each difference's key) where the compared artifacts
    differ, when each difference is the project's path and nothing else moved; else None."""
    if comparison is None or not path_a or not path_b or path_a == path_b:
        return None
    fields: list[str] = []
    for artifact in comparison.artifacts:
        if artifact.passed:
            continue
        failing = [entry for entry in artifact.entries if entry.status not in PASSING]
        counted = sum(n for status, n in artifact.entry_counts.items() if status not in PASSING)
        if (
            artifact.error
            or artifact.diff
            or any(tensor.status not in PASSING for tensor in artifact.tensors)
            or not failing
            or counted != len(failing)
            or not all(_holds(entry.a, entry.b, path_a, path_b) for entry in failing)
        ):
            return None
        # The key's last step names the field ("dirpath"); the whole key can be long.
        fields += [entry.where.rsplit("/", 1)[-1] for entry in failing]
    return list(dict.fromkeys(fields)) or None


def _holds(a: object, b: object, path_a: str, path_b: str) -> bool:
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return path_a in a and a.replace(path_a, path_b) == b


__all__ = ["only_the_project_path", "project_path"]
