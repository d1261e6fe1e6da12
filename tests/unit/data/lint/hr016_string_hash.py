"""HR016: hash() of strings, which PYTHONHASHSEED changes, reaching a result or a seed."""

import numpy as np


def split(names: list[str]) -> list[str]:
    return [name for name in names if hash(name) % 10 < 8]  # expect: HR016


def seeded(key: str) -> float:
    rng = np.random.default_rng(hash(key))  # expect: HR016
    return float(rng.random())


def fine(key: str) -> int:
    print(hash(key))
    return hash(3)
