"""HR005: TensorFlow random ops with no seed, and no tf.random.set_seed in this file."""

import tensorflow as tf


def sample() -> list[object]:
    x = tf.random.normal((2, 2))  # expect: HR005
    return [
        x,
        tf.random.uniform((2,), seed=3),
        tf.random.stateless_uniform((2,), seed=(1, 2)),
        tf.nn.dropout(x, rate=0.5),  # expect: HR005
    ]
