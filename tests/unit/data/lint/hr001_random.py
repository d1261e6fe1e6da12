"""HR001: Python's global generator, never seeded in this file."""

import random
from random import choice as pick

rng = random.Random(7)


def draw() -> list[float]:
    values = [random.random(), rng.random()]  # expect: HR001
    random.shuffle(values)  # expect: HR001
    pick(values)  # expect-nothing: the value is dropped, so nothing depends on the draw
    random.seed()  # expect-nothing: no seed given, so the calls above stay unseeded
    return values
