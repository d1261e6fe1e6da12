"""HR007: cuDNN autotuning and nondeterministic algorithms."""

import torch
from torch.backends import cudnn

torch.backends.cudnn.benchmark = True  # expect: HR007
cudnn.deterministic = False  # expect: HR007
cudnn.benchmark = False
torch.backends.cudnn.deterministic = True
