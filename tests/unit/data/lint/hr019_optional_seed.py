"""HR019: a seed the default run does not set; the uses after it are its related locations."""

import argparse

import numpy as np
import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=None)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
if args.seed is not None:
    torch.manual_seed(args.seed)  # expect: HR019
np.random.seed(args.seed)  # expect: HR019


class Wide(nn.Linear):
    """A framework layer's subclass draws its weights like the layer."""


model = Wide(4, 2)  # expect: HR017
noise = np.random.rand(4)  # expect: HR002
torch.save(model.state_dict(), "model.pt")
np.save("noise.npy", noise)
