"""A ``command`` that seeds nothing reproduces in the real image, with real torch: its
program, and the DataLoader workers it starts with ``spawn`` and with ``fork``, draw the
same numbers in every run, and its record reads torch's switches back from the program."""

from __future__ import annotations

from pathlib import Path

from harness.engine import Engine
from tests.integration.test_runs import (  # noqa: F401 - the fixture, by name
    digests,
    probe_project,
    run_json,
)

LOADER = '''\
"""Draws from random, NumPy and torch in the program and in DataLoader workers; no seed."""
import json
import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class Noise(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        return torch.tensor([torch.rand(1).item(), random.random(), float(np.random.rand())])


if __name__ == "__main__":
    rows = {}
    for context in ("spawn", "fork"):
        loader = DataLoader(Noise(), batch_size=4, num_workers=2, multiprocessing_context=context)
        rows[context] = [batch.tolist() for batch in loader]
    rows["main"] = [torch.rand(1).item(), random.random(), float(np.random.rand())]
    with open(os.path.join(os.environ["HARNESS_OUTPUT"], "draws.json"), "w") as stream:
        json.dump(rows, stream)
'''


def test_an_unseeded_command_with_dataloader_workers_reproduces(
    probe_project: Path,  # noqa: F811 - the fixture imported above
    engine: Engine,
) -> None:
    (probe_project / "loader.py").write_text(LOADER)
    pyproject = probe_project / "pyproject.toml"
    if "[tool.harness.experiments.probe-loader]" not in pyproject.read_text():
        with pyproject.open("a") as stream:
            stream.write(
                '\n[tool.harness.experiments.probe-loader]\ncommand = ["python", "loader.py"]\n'
                'outputs = ["draws.json"]\n'
            )
    code, records, stderr = run_json("probe-loader", "--repeat", "2", cwd=probe_project)
    assert code == 0, stderr
    first, second = records
    assert digests(first) == digests(second)
    seeding = first["seeding"]
    assert seeding["how"] == "startup hook"
    # The program and its two spawned workers at least (forked ones share its state).
    assert seeding["python_processes"] >= 3
    torch = first["observed"]["torch"]
    assert torch["deterministic_algorithms"] is True
    assert torch["num_threads"] == first["threads"]
    assert first["violations"] == []
