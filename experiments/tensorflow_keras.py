"""A small dense network on synthetic data (TensorFlow with Keras).

The data comes from a numpy generator seeded with ``seed``; the weights' initial values
and the shuffling from the global seeds the runtime sets when TensorFlow is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf


def train(
    output: Path,
    seed: int,
    inputs: dict[str, Path],
    epochs: int = 3,
) -> dict[str, object]:
    del inputs  # the data is generated from the seed
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(16, 3))
    features = rng.normal(size=(1200, 16)).astype("float32")
    labels = np.argmax(features @ weights + 0.3 * rng.normal(size=(1200, 3)), axis=1)
    x_train, x_test = features[:1000], features[1000:]
    y_train, y_test = labels[:1000], labels[1000:]

    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(16,)),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(3, activation="softmax"),
        ]
    )
    # jit_compile=False: Keras otherwise compiles training with XLA where it can, and XLA
    # generates code for the CPU it runs on.
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    model.save_weights(output / "model.weights.h5")
    metrics: dict[str, object] = {
        "final_loss": float(history.history["loss"][-1]),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "epochs": epochs,
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
