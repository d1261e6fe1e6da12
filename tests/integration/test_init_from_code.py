"""A repository that declares nothing, on the first try: one training script, a data file,
a README; no pyproject.toml, no requirements, no entry point. harness installed from its
wheel; init, lock, build and run with nothing edited but the script's step limit.

The frictions a first try met on such a repository: init wrote an empty experiments group
(the image then lacked torch, and TensorBoard's package, which torch imports only when
``torch.utils.tensorboard`` is), and an example experiment in place of the script.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from harness.engine import Engine
from tests.integration.test_own_project import Tool, commit, image_name, tool  # noqa: F401

# Shaped like a single-file character model: argparse in a __main__ block, a step limit
# that defaults to "forever", its weights and TensorBoard's events under --work-dir.
CHARMODEL = '''\
"""Make more names: a bigram model of characters."""
import argparse
import os

import torch
from torch.utils.tensorboard import SummaryWriter

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-file", default="names.txt")
    parser.add_argument("--work-dir", default="out")
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=3407)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    writer = SummaryWriter(log_dir=args.work_dir)
    words = open(args.input_file).read().split()
    chars = sorted(set("".join(words)))
    table = torch.nn.Embedding(len(chars) + 1, len(chars) + 1)
    optimiser = torch.optim.AdamW(table.parameters(), lr=0.1)
    step = 0
    while args.max_steps < 0 or step < args.max_steps:
        index = torch.tensor([chars.index(word[0]) + 1 for word in words])
        loss = torch.nn.functional.cross_entropy(table(torch.zeros_like(index)), index)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        writer.add_scalar("loss", loss.item(), step)
        step += 1
    torch.save(table.state_dict(), os.path.join(args.work_dir, "model.pt"))
'''


def test_a_repository_that_declares_nothing_runs_after_init(
    tool: Tool,  # noqa: F811
    tmp_path: Path,
    engine: Engine,
) -> None:
    root = tmp_path / "charmodel"
    root.mkdir()
    root.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    (root / "charmodel.py").write_text(CHARMODEL)
    (root / "names.txt").write_text("emma\nolivia\nava\nisabella\nsophia\n")
    (root / "README.md").write_text("# charmodel\n`python charmodel.py`\n")

    init = tool.ok("init", cwd=root)
    assert "inferred from the imports" in init.stdout
    assert "tensorboard (torch.utils.tensorboard in charmodel.py)" in init.stdout
    assert "charmodel.py looks like a training script" in init.stdout
    assert "(--max-steps N, say)" in init.stdout
    document = tomllib.loads((root / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["tensorboard", "torch"]
    assert document["tool"]["harness"]["experiments"]["charmodel"]["command"] == [
        "python",
        "charmodel.py",
    ]
    assert not (root / "harness_example.py").exists()

    # What the output says to add: a step limit, so the run ends.
    pyproject = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(
        pyproject.replace('image = "charmodel"', f'image = "{image_name("init-code")}"').replace(
            'command = ["python", "charmodel.py"]',
            'command = ["python", "charmodel.py", "--max-steps", "5"]',
        )
    )
    tool.ok("lock", cwd=root)
    commit(root)
    tool.build(root)
    (record,) = json.loads(tool.ok("run", "--json", cwd=root).stdout)
    # The SummaryWriter import needs tensorboard in the image: the run fails without it.
    assert record["status"] == "succeeded", record
    assert "torch" in record["observed"]
    # TensorBoard's event file is never an artifact (init excluded it).
    assert not any("tfevents" in artifact["path"] for artifact in record["artifacts"])
