"""HR001: a draw before the seed, and a seed in a function nothing calls, leave draws
unseeded; a seed set by a helper the program calls counts."""

import random


def never_called() -> None:
    random.seed(1)


def seed_everything() -> None:
    random.seed(0)


early = random.random()  # expect: HR001
seed_everything()
late = random.random()


def results() -> list[float]:
    return [early, late]
