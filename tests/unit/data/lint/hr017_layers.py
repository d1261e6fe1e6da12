"""HR017: layers whose initial weights come from an unseeded generator."""

import keras
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)  # expect: HR017

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def build() -> object:
    return keras.Sequential(
        [
            keras.layers.Dense(8),  # expect: HR017
            keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            keras.layers.Dropout(0.5),
        ]
    )


model = Net()
torch.manual_seed(0)
seeded = Net()
