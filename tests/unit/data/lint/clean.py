"""Near misses of every rule: seeded, explicit or order-free. No finding expected."""

import datetime as dt
import random
import time

import numpy as np
import tensorflow as tf
import torch
from torch.utils.data import DataLoader

random.seed(0)
np.random.seed(0)
torch.manual_seed(0)
tf.random.set_seed(0)
torch.backends.cudnn.benchmark = False
torch.use_deterministic_algorithms(True)


def train(seed: int, data: list[int]) -> dict[str, object]:
    generator = torch.Generator()
    generator.manual_seed(seed)
    rng = np.random.default_rng(seed)
    loader = DataLoader(data, num_workers=2, generator=generator)
    started = time.perf_counter()
    return {
        "python": random.random(),
        "numpy": np.random.rand(2),
        "rng": rng.normal(size=2),
        "torch": torch.randn(2),
        "tf": tf.random.normal((2,)),
        "loader": loader,
        "counts": np.bincount([1, 1, 2]),
        "order": [x * 2 for x in sorted(set(data))],
        "size": len(set(data)),
        "epoch": dt.datetime.fromtimestamp(0, dt.UTC),
        "printed": time.time(),  # harness: ignore[HR010]
        "noted": dt.datetime.now(dt.UTC),  # harness: ignore
        "took": time.perf_counter() - started,
    }
