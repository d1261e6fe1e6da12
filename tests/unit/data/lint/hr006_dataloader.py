"""HR006: DataLoader workers while torch's global generator is unseeded (HR004: shuffling)."""

import torch
from torch.utils.data import DataLoader, TensorDataset


def loaders(seed: int, workers: int) -> list[DataLoader[tuple[torch.Tensor, ...]]]:
    data = TensorDataset(torch.zeros(8))
    generator = torch.Generator().manual_seed(seed)
    return [
        DataLoader(data, shuffle=True, num_workers=4),  # expect: HR004 # expect: HR006
        torch.utils.data.DataLoader(data, num_workers=workers),  # expect: HR006
        DataLoader(data, num_workers=4, generator=generator),
        DataLoader(data, num_workers=0),
        DataLoader(data),
    ]
