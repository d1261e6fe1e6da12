"""HR018: a seed that is itself different on every run."""

import os
import random
import time

import numpy as np
import torch

random.seed(int(time.time()))  # expect: HR018
torch.manual_seed(int.from_bytes(os.urandom(4), "little"))  # expect: HR018
seed = np.random.randint(0, 2**31)  # the HR018 below: the draw is its related location
np.random.seed(seed)  # expect: HR018
rng = np.random.default_rng(seed=time.time_ns())  # expect: HR018
np.random.seed(1234)
torch.manual_seed(np.random.randint(0, 2**31))
