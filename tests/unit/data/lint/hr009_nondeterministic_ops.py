"""HR009: ops that are nondeterministic on CUDA."""

import numpy as np
import tensorflow as tf
import torch


def reduce(index: torch.Tensor, values: torch.Tensor) -> list[object]:
    total = torch.zeros(4)
    total.index_add_(0, index, values)  # expect: HR009
    total.scatter_add_(0, index, values)  # expect: HR009
    total.index_put_((index,), values, accumulate=True)  # expect: HR009
    total.index_put_((index,), values)
    return [
        torch.bincount(index),
        torch.bincount(index, weights=values),  # expect: HR009
        np.bincount([1, 2, 2]),
        tf.math.unsorted_segment_sum([1.0, 2.0], [0, 0], num_segments=1),  # expect: HR009
    ]
