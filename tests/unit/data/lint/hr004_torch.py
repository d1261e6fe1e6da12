"""HR004: torch's global generator, with no torch.manual_seed in this file."""

import torch
from torch import nn


def sample(generator: torch.Generator) -> list[torch.Tensor]:
    weights = torch.empty(3, 3)
    nn.init.normal_(weights)  # expect: HR004
    weights.uniform_(0, 1, generator=generator)
    return [
        torch.randn(4, 4),  # expect: HR004
        torch.randn(4, 4, generator=generator),
        torch.randperm(10),  # expect: HR004
        torch.zeros(3).bernoulli_(0.5),  # expect: HR004
        weights,
    ]
