"""A random forest on a synthetic classification task (scikit-learn).

The model is written as ``model.npz``: every tree's node arrays, readable with numpy
alone, without unpickling anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


def train(
    output: Path,
    seed: int,
    inputs: dict[str, Path],
    n_samples: int = 2000,
    n_estimators: int = 50,
) -> dict[str, object]:
    del inputs  # the data is generated from the seed
    features, labels = make_classification(
        n_samples=n_samples,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_classes=3,
        random_state=seed,
    )
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=seed, stratify=labels
    )
    # n_jobs=1: the trees are independent of the worker count, but one worker keeps the
    # run within the thread budget the runtime pinned.
    model = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=8, random_state=seed, n_jobs=1
    )
    model.fit(x_train, y_train)
    _save_forest(output / "model.npz", model)
    metrics: dict[str, object] = {
        "train_accuracy": float(model.score(x_train, y_train)),
        "test_accuracy": float(model.score(x_test, y_test)),
        "n_estimators": len(model.estimators_),
        "n_nodes": sum(int(tree.tree_.node_count) for tree in model.estimators_),
        "n_samples": n_samples,
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _save_forest(path: Path, model: Any) -> None:
    arrays = {"classes": np.asarray(model.classes_)}
    for index, estimator in enumerate(model.estimators_):
        tree = estimator.tree_
        for name in (
            "children_left",
            "children_right",
            "feature",
            "threshold",
            "value",
            "impurity",
            "n_node_samples",
        ):
            arrays[f"tree{index:04d}_{name}"] = np.asarray(getattr(tree, name))
    # savez stores every member with the same fixed zip timestamp, so the archive's bytes
    # depend on the arrays only.
    np.savez(path, **arrays)
