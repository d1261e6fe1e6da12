"""HR003: generators created without a seed."""

import random

import numpy as np
import torch


def make(seed: int) -> list[object]:
    seeded = torch.Generator()
    seeded.manual_seed(seed)
    return [
        np.random.default_rng(),  # expect: HR003
        np.random.default_rng(None),  # expect: HR003
        np.random.default_rng(seed),
        np.random.RandomState(),  # expect: HR003
        np.random.Generator(np.random.PCG64()),  # expect: HR003
        random.Random(),  # expect: HR003
        random.Random(seed),
        torch.Generator(),  # expect: HR003
        torch.Generator().manual_seed(seed),
        seeded,
    ]
