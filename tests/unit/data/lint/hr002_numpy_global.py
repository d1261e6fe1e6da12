"""HR002: NumPy's legacy global state, never seeded in this file."""

import numpy as np
from numpy import random as npr

rng = np.random.default_rng(3)


def draw() -> tuple[object, ...]:
    return (
        np.random.rand(3),  # expect: HR002
        npr.normal(size=2),  # expect: HR002
        rng.normal(size=2),
        np.random.permutation(10),  # expect: HR002
    )
