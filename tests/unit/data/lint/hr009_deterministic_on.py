"""HR009 with torch.use_deterministic_algorithms(True): only ops with no deterministic
kernel remain findings."""

import torch

torch.use_deterministic_algorithms(True)


def reduce(index: torch.Tensor, values: torch.Tensor) -> list[torch.Tensor]:
    total = torch.zeros(4)
    total.index_add_(0, index, values)
    total.scatter_add_(0, index, values)
    total.index_put_((index,), values, accumulate=True)
    return [total, torch.histc(values), values.kthvalue(2).values]  # expect: HR009 # expect: HR009
