"""HR008: determinism switched off or weakened."""

import os

import torch

torch.use_deterministic_algorithms(False)  # expect: HR008
torch.use_deterministic_algorithms(True, warn_only=True)  # expect: HR008
torch.use_deterministic_algorithms(mode=True)
os.environ["TF_DETERMINISTIC_OPS"] = "0"  # expect: HR008
os.environ.setdefault("TF_CUDNN_DETERMINISTIC", "false")  # expect: HR008
os.environ["TF_DETERMINISTIC_OPS"] = "1"
