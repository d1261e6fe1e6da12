"""HR006 near misses and order: workers reproduce once torch.manual_seed has run."""

import torch
from torch.utils.data import DataLoader, TensorDataset

data = TensorDataset(torch.zeros(8))
early = DataLoader(data, num_workers=2)  # expect: HR006
torch.manual_seed(0)
late = DataLoader(data, num_workers=2)
shuffled = DataLoader(data, shuffle=True, num_workers=2)
