"""HR014: directory listings whose order reaches a result."""

import glob
import json
import os
from pathlib import Path

import numpy as np


def load(folder: Path) -> np.ndarray:
    arrays = []
    for name in os.listdir(folder):  # expect: HR014
        arrays.append(np.load(folder / name))
    return np.stack(arrays)


def first(folder: Path) -> Path:
    return list(folder.glob("*.npy"))[0]  # expect: HR014


def manifest(folder: str, output: Path) -> None:
    names = [os.path.basename(p) for p in glob.glob(f"{folder}/*.csv")]  # expect: HR014
    output.write_text(json.dumps(names))


def fine(folder: Path, output: Path) -> dict[str, object]:
    # Near misses: sorted, counted, used as a set, sorted in place, or each file alone.
    files = os.listdir(folder)
    files.sort()
    for path in folder.iterdir():
        np.save(output / path.name, np.load(path))
    return {
        "sorted": sorted(folder.glob("*.npy")),
        "count": len(os.listdir(folder)),
        "known": "a.npy" in os.listdir(folder),
        "names": set(glob.glob("*.csv")),
        "files": files,
    }


def shown(folder: Path) -> None:
    for name in os.listdir(folder):
        print(name)
