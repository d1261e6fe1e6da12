"""What reading notebooks for their imports costs `harness init` and `harness lock`, against
reading the same code as Python files.

A notebook is JSON with its outputs embedded (plots as base64 images), so reading one
parses much more than its code. In a temporary folder this writes ``--notebooks``
notebooks of ``--cells`` code cells each (imports, a loop, IPython magics and a shell
line) with a ``--output-kb`` image output per cell, and beside it a project of the same
code as ``.py`` files, one per notebook; then times, in one process with the page cache
warm for both, what init does with each (``project_code.read(...).dependencies()``) and
prints the ratio. Target: within 2x of the same code as Python files at 10 KB of
output a cell, so that notebooks never dominate init. It reports, it does not assert.

    .venv/bin/python benchmarks/notebook_imports.py [--notebooks 100] [--cells 20] [--output-kb 10]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import project_code

CELL = """\
%matplotlib inline
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
!echo step {number}
values = np.arange({number})
for value in values:
    frame = pd.DataFrame({{"x": values, "y": values * {number}}})
    model = Ridge().fit(frame[["x"]], frame["y"])
print(model.coef_)
"""


def _timed(action: Callable[[], Any], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _write(root: Path, notebooks: int, cells: int, output_kb: int) -> tuple[Path, Path]:
    as_notebooks, as_python = root / "notebooks", root / "python"
    as_notebooks.mkdir()
    as_python.mkdir()
    image = base64.b64encode(bytes(range(256)) * (output_kb * 3)).decode()[: output_kb << 10]
    for index in range(notebooks):
        sources = [CELL.format(number=number) for number in range(cells)]
        document = {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"language_info": {"name": "python"}},
            "cells": [
                {
                    "cell_type": "code",
                    "metadata": {},
                    "execution_count": number,
                    "outputs": [{"output_type": "display_data", "data": {"image/png": image}}],
                    "source": source.splitlines(keepends=True),
                }
                for number, source in enumerate(sources)
            ],
        }
        (as_notebooks / f"analysis_{index}.ipynb").write_text(json.dumps(document, indent=1))
        python = "".join(
            line if not line.startswith(("%", "!")) else "pass\n"
            for source in sources
            for line in source.splitlines(keepends=True)
        )
        (as_python / f"analysis_{index}.py").write_text(python)
    return as_notebooks, as_python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=100)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--output-kb", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-notebooks-") as folder:
        as_notebooks, as_python = _write(
            Path(folder), options.notebooks, options.cells, options.output_kb
        )
        size = sum(path.stat().st_size for path in as_notebooks.iterdir()) / (1 << 20)
        found = project_code.read(as_notebooks).dependencies()
        baseline = project_code.read(as_python).dependencies()
        assert [item.distribution for item in found.dependencies] == [
            item.distribution for item in baseline.dependencies
        ], "the notebooks and the Python files must infer the same"

        def read_python() -> None:
            project_code.read(as_python).dependencies()

        def read_notebooks() -> None:
            project_code.read(as_notebooks).dependencies()

        python = _timed(read_python, options.repeats)
        notebooks = _timed(read_notebooks, options.repeats)
    print(
        f"{options.notebooks} notebooks x {options.cells} cells, {options.output_kb} KB of "
        f"output a cell ({size:.1f} MiB of JSON)"
    )
    print(f"  the same code as .py files (baseline): {python:.3f} s")
    print(f"  the notebooks: {notebooks:.3f} s  ({notebooks / python:.2f}x)")


if __name__ == "__main__":
    main()
