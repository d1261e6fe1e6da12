"""Imports of the project's code that no pin of a constraints file provides.

A requirements file is written by hand and drifts from the code: a template imports
``dill`` in ``src/utils.py`` and lists it nowhere, so the first run fails one missing
package at a time, minutes after the build. After `harness lock` writes the constraints
files, the imports that run when the project's modules load (as `harness init` reads
them, :mod:`harness.project_code`) are checked against each file's pins, and one warning
names what is missing, with the file that imports it.

Only distributions harness knows by their import name are checked (``import cv2`` is
opencv-python's): an unknown name may be provided under another name, and a warning that
is often wrong would be ignored. A framework's CPU build (``xgboost-cpu``,
``tensorflow-cpu``) provides what its framework does, and a variant build what its
original does (``opencv-python-headless``). Nothing here refuses a lock. `harness init`
asks the same question of the names a repository declares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from packaging.utils import canonicalize_name

from harness.images.device_pins import CPU_DISTRIBUTIONS
from harness.imported_dependencies import Imported, Inferred

# Distributions that install the same import as another, under their own name: a
# project that pins opencv-python-headless has cv2, though the table names opencv-python.
_PROVIDED_ALSO_BY = {
    "opencv-python": (
        "opencv-python-headless",
        "opencv-contrib-python",
        "opencv-contrib-python-headless",
    ),
    "pillow": ("pillow-simd",),
    "tensorflow": ("tensorflow-gpu", "tf-nightly"),
    **{framework: (cpu_build,) for framework, cpu_build in CPU_DISTRIBUTIONS.items()},
}


def unpinned(inferred: Inferred, pinned: Iterable[str]) -> list[Imported]:
    """The imports of known distributions that ``pinned`` (names) does not provide."""
    names = {canonicalize_name(name) for name in pinned}
    provided = names | {
        distribution
        for distribution, others in _PROVIDED_ALSO_BY.items()
        if names.intersection(others)
    }
    return [
        item
        for item in inferred.dependencies
        if not item.doubt and canonicalize_name(item.distribution) not in provided
    ]


def warning(missing: Sequence[Imported], constraints: str, group: str) -> str:
    """The one line that names them, and the fix."""
    shown = ", ".join(item.shown() for item in missing)
    return (
        f"{constraints} pins nothing that provides {shown}: the run will fail to import "
        f"{'it' if len(missing) == 1 else 'them'}; add {'it' if len(missing) == 1 else 'them'} "
        f"to [dependency-groups] {group}, then run `harness lock` again"
    )


__all__ = ["unpinned", "warning"]
