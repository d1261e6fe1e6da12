"""`harness init` on a repository that declares nothing: dependencies from its imports,
experiments from its training scripts, its Python files read as hostile input."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import entry_scripts, imported_dependencies, project_code, python_sources
from harness.cli.main import cli
from harness.config import load_config
from harness.project_init import InitRequest, init_project

# Shaped like a single-file character-level language model repository: one script with a
# __main__ block, argparse inside it, torch and TensorBoard's writer, a data file, no
# declaration of anything.
CHARACTER_MODEL = '''\
"""A character-level language model."""

import os
import sys
import argparse
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils.data import Dataset
from torch.utils.tensorboard import SummaryWriter


@dataclass
class ModelConfig:
    block_size: int = 8


class Bigram(nn.Module):
    def forward(self, idx):
        return F.softmax(idx, dim=-1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Make More")
    parser.add_argument("--input-file", "-i", type=str, default="names.txt")
    parser.add_argument("--work-dir", "-o", type=str, default="out")
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=3407)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    writer = SummaryWriter(log_dir=args.work_dir)
    torch.save(Bigram().state_dict(), os.path.join(args.work_dir, "model.pt"))
'''


@pytest.fixture
def character_model(tmp_path: Path) -> Path:
    root = tmp_path / "charmodel"
    root.mkdir()
    (root / "charmodel.py").write_text(CHARACTER_MODEL)
    (root / "names.txt").write_text("emma\nolivia\nava\n")
    (root / "README.md").write_text("# charmodel\n")
    return root


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read(root: Path) -> python_sources.Sources[project_code.FileFacts]:
    return project_code.read(root).sources


def inferred(root: Path) -> imported_dependencies.Inferred:
    return project_code.read(root).dependencies()


def names(found: imported_dependencies.Inferred) -> dict[str, str]:
    return {item.distribution: item.doubt for item in found.dependencies}


# --- init end to end ---------------------------------------------------------------------


def test_init_on_a_repository_that_declares_nothing_takes_its_imports_and_its_script(
    character_model: Path,
) -> None:
    result = CliRunner().invoke(cli, ["--project", str(character_model), "init"])
    assert result.exit_code == 0, result.output
    document = tomllib.loads((character_model / "pyproject.toml").read_text())
    # Unpinned (lock pins them), tensorboard because of torch.utils.tensorboard.
    assert document["dependency-groups"]["experiments"] == ["tensorboard", "torch"]
    harness = document["tool"]["harness"]
    assert harness["experiments"] == {
        "charmodel": {"command": ["python", "charmodel.py"], "exclude": ["events.out.tfevents.*"]}
    }
    assert set(harness["variants"]) == {"cpu", "cuda"}  # torch: both builds are locked
    assert not (character_model / "harness_example.py").exists()
    lines = result.output.splitlines()
    group = [line for line in lines if "[dependency-groups] experiments" in line]
    assert len(group) == 1
    assert "inferred from the imports" in group[0]
    assert "tensorboard (torch.utils.tensorboard in charmodel.py)" in group[0]
    assert "torch (charmodel.py)" in group[0]
    script = [line for line in lines if "[tool.harness.experiments.charmodel]" in line]
    assert len(script) == 1
    assert "charmodel.py looks like a training script (a __main__ block, argparse)" in script[0]
    assert "--max-steps N" in script[0]
    config = load_config(character_model, environ={})
    assert config.experiment("charmodel").command == ("python", "charmodel.py")
    assert config.experiment("charmodel").exclude == ("events.out.tfevents.*",)
    # A second init changes nothing.
    before = (character_model / "pyproject.toml").read_bytes()
    again = init_project(character_model, InitRequest())
    assert {change.action for change in again} == {"kept"}
    assert (character_model / "pyproject.toml").read_bytes() == before


def test_declared_dependencies_win_and_imports_declared_nowhere_are_added(
    character_model: Path,
) -> None:
    # The requirements file names torch, pinned; the code also imports
    # torch.utils.tensorboard, which needs tensorboard, declared nowhere.
    (character_model / "requirements.txt").write_text("torch==2.13.0\n")
    changes = init_project(character_model, InitRequest())
    document = tomllib.loads((character_model / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["torch==2.13.0", "tensorboard"]
    assert not any("inferred" in change.detail for change in changes)
    [group] = [c.detail for c in changes if "[dependency-groups] experiments" in c.detail]
    assert (
        "torch from requirements.txt; imported but declared nowhere: "
        "tensorboard (torch.utils.tensorboard in charmodel.py)"
    ) in group


def test_a_declared_variant_build_provides_what_the_code_imports(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("opencv-python-headless\ntensorflow-cpu\n")
    (tmp_path / "train.py").write_text("import cv2\nimport tensorflow as tf\nimport numpy\n")
    init_project(tmp_path, InitRequest())
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == [
        "opencv-python-headless",
        "tensorflow-cpu",
        "numpy",
    ]


def test_experiments_named_on_the_command_line_replace_the_scripts(character_model: Path) -> None:
    init_project(character_model, InitRequest(experiments=(("fit", "charmodel:main"),)))
    document = tomllib.loads((character_model / "pyproject.toml").read_text())
    assert document["tool"]["harness"]["experiments"] == {"fit": {"entry": "charmodel:main"}}


def test_a_repository_without_any_script_keeps_the_example(tmp_path: Path) -> None:
    write(tmp_path, "model.py", "import numpy as np\n\n\ndef fit():\n    return np.zeros(2)\n")
    changes = init_project(tmp_path, InitRequest())
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["numpy"]
    assert "example" in document["tool"]["harness"]["experiments"]
    assert (tmp_path / "harness_example.py").is_file()
    assert not any("scripts" in change.detail for change in changes)


def test_hostile_files_leave_init_working_and_are_named(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.py", "import stolen_package\n")
    root = tmp_path / "project"
    write(root, "train.py", "import numpy\nif __name__ == '__main__':\n    print(1)\n")
    write(root, "broken.py", "def (:\n")
    write(root, "generated.py", "x = 1\n" * (python_sources.FILE_LIMIT // 6 + 1))
    (root / "linked.py").symlink_to(outside / "secret.py")
    (root / "vendor").symlink_to(outside, target_is_directory=True)
    deep = root / "/".join(["d"] * (python_sources.DEPTH_LIMIT + 3))
    write(deep, "hidden.py", "import deep_package\n")
    changes = init_project(root, InitRequest())
    document = tomllib.loads((root / "pyproject.toml").read_text())
    assert document["dependency-groups"]["experiments"] == ["numpy"]
    # It only prints: what it prints is kept as its result.
    assert document["tool"]["harness"]["experiments"] == {
        "train": {"command": ["python", "train.py"], "stdout": "stdout.txt"}
    }
    unread = [change.detail for change in changes if "not read" in change.detail]
    assert len(unread) == 1
    assert "broken.py (not valid Python" in unread[0]
    assert "generated.py (is " in unread[0]
    assert "linked.py (a link" in unread[0]
    assert "deeper than" in unread[0]


# --- the files read ----------------------------------------------------------------------


def test_the_walk_skips_environments_state_and_build_output(tmp_path: Path) -> None:
    write(tmp_path, "run.py", "import numpy\n")
    for folder in (".venv", ".git", ".harness", "build", "dist", "node_modules", "x.egg-info"):
        write(tmp_path, f"{folder}/mod.py", "import should_not_appear\n")
    write(tmp_path, "myenv/pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path, "myenv/lib/site.py", "import should_not_appear\n")
    sources = read(tmp_path)
    assert [source.path for source in sources.files] == ["run.py"]
    assert names(inferred(tmp_path)) == {"numpy": ""}


def test_a_link_out_of_the_project_is_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.py", "import stolen_package\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / "secret.py").symlink_to(outside / "secret.py")
    (root / "pkg").symlink_to(outside, target_is_directory=True)
    sources = read(root)
    assert sources.files == []
    assert sources.unread == ["secret.py (a link: links are not followed)"]


def test_a_file_over_the_size_bound_is_not_read(tmp_path: Path) -> None:
    write(tmp_path, "huge.py", "# " + "x" * python_sources.FILE_LIMIT + "\nimport numpy\n")
    sources = read(tmp_path)
    assert sources.files == []
    assert sources.unread[0].startswith("huge.py (is ")
    assert "huge" in sources.own_names


def test_syntax_errors_and_parser_exhausting_nesting_are_named(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "import numpy\ndef (:\n")
    write(tmp_path, "nested.py", "x = " + "(" * 100_000 + ")" * 100_000 + "\n")
    write(tmp_path, "binary.py", "")
    (tmp_path / "binary.py").write_bytes(b"import numpy\x00\n")
    sources = read(tmp_path)
    assert sources.files == []
    assert len(sources.unread) == 3
    assert any(line.startswith("broken.py (not valid Python") for line in sources.unread)


def test_deep_folders_stop_at_the_depth_bound(tmp_path: Path) -> None:
    deep = tmp_path / "/".join(["d"] * (python_sources.DEPTH_LIMIT + 5))
    write(deep, "x.py", "import numpy\n")
    write(tmp_path, "d/y.py", "import scipy\n")
    sources = read(tmp_path)
    assert [source.path for source in sources.files] == ["d/y.py"]
    assert len(sources.unread) == 1
    assert sources.unread[0].endswith(f"/ (deeper than {python_sources.DEPTH_LIMIT} folders)")


def test_many_entries_stop_the_walk_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(python_sources, "ENTRIES_LIMIT", 10)
    for index in range(30):
        write(tmp_path, f"data/{index:03}.txt", "")
    write(tmp_path, "data/zz.py", "import numpy\n")
    write(tmp_path, "train.py", "import numpy\n")  # the root's own files come first
    sources = read(tmp_path)
    assert [source.path for source in sources.files] == ["train.py"]
    assert sources.unread == ["the rest of the project (more than 10 files and folders)"]


def test_many_python_files_stop_the_walk_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(python_sources, "FILES_LIMIT", 3)
    for index in range(6):
        write(tmp_path, f"m{index}.py", "import numpy\n")
    sources = read(tmp_path)
    assert len(sources.files) == 3
    assert sources.unread[-1].startswith("the rest of the project (more than 3 Python files")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_does_not_hang_the_walk(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    write(tmp_path, "ok.py", "import numpy\n")
    sources = read(tmp_path)
    assert [source.path for source in sources.files] == ["ok.py"]


# --- imports to distributions ------------------------------------------------------------


def test_imports_become_distributions_through_the_renaming_table(tmp_path: Path) -> None:
    write(
        tmp_path,
        "prep.py",
        "import sklearn.linear_model\nimport cv2\nfrom PIL import Image\nimport yaml\n"
        "from skimage import io\nfrom bs4 import BeautifulSoup\n"
        "from google.protobuf import message\nimport numpy as np\n",
    )
    assert names(inferred(tmp_path)) == {
        "beautifulsoup4": "",
        "numpy": "",
        "opencv-python": "",
        "pillow": "",
        "protobuf": "",
        "pyyaml": "",
        "scikit-image": "",
        "scikit-learn": "",
    }


@pytest.mark.parametrize(
    "statement",
    ["from torch.utils.tensorboard import SummaryWriter", "from torch.utils import tensorboard"],
)
def test_torch_s_tensorboard_writer_needs_tensorboard(tmp_path: Path, statement: str) -> None:
    write(tmp_path, "train.py", statement + "\n")
    assert names(inferred(tmp_path)) == {"tensorboard": "", "torch": ""}


def test_the_standard_library_and_the_project_s_own_code_are_not_dependencies(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "train.py",
        "import os, json, argparse, __future__, __main__\nfrom collections import deque\n"
        "import model\nfrom mypkg.layers import Dense\nfrom .relative import x\n"
        "from src_pkg import thing\nimport numpy\n",
    )
    write(tmp_path, "model.py", "")
    write(tmp_path, "mypkg/__init__.py", "")
    write(tmp_path, "mypkg/layers.py", "")
    write(tmp_path, "src/src_pkg/__init__.py", "")
    assert names(inferred(tmp_path)) == {"numpy": ""}


def test_unknown_and_ambiguous_names_are_taken_as_they_are_and_said(tmp_path: Path) -> None:
    write(
        tmp_path, "train.py", "import faiss\nimport somelab_tools\nimport torch\nimport données\n"
    )
    found = inferred(tmp_path)
    assert names(found) == {
        "faiss": "faiss-cpu or faiss-gpu",
        "somelab_tools": "not a distribution harness knows by name",
        "torch": "",
    }
    line = found.describe()
    assert line.startswith("torch (train.py); taken as the import name, check it: ")
    assert "faiss (train.py): faiss-cpu or faiss-gpu" in line
    assert "somelab_tools (train.py): not a distribution harness knows by name" in line
    # No distribution can be named so: named among those left out.
    assert [item.distribution for item in found.left_out] == ["données"]


def test_only_doubtful_names_still_read_as_one_line(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "import somelab_tools\n")
    assert inferred(tmp_path).describe() == (
        "taken as the import name, check it: "
        "somelab_tools (train.py): not a distribution harness knows by name"
    )


def test_lazy_optional_and_type_checking_imports_are_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        "train.py",
        "from typing import TYPE_CHECKING\nimport numpy\n"
        "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n"
        "try:\n    import ujson as json\nexcept ModuleNotFoundError:\n    import simplejson\n"
        "if TYPE_CHECKING:\n    import pandas\n"
        "def from_pretrained():\n    from transformers import GPT2LMHeadModel\n"
        "    import numpy\n"
        "class Logger:\n    import rich\n"
        "if __name__ == '__main__':\n    import tqdm\n",
    )
    found = inferred(tmp_path)
    assert names(found) == {"numpy": "", "rich": "", "tqdm": ""}
    left_out = {item.distribution for item in found.left_out}
    assert left_out == {"simplejson", "transformers", "ujson", "wandb"}
    assert "transformers (train.py)" in found.describe_left_out()


def test_tests_docs_and_packaging_files_are_not_the_experiments(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "import numpy\n")
    write(tmp_path, "tests/test_model.py", "import pytest\n")
    write(tmp_path, "test_train.py", "import hypothesis\n")
    write(tmp_path, "docs/conf.py", "import sphinx\n")
    write(tmp_path, "setup.py", "from setuptools import setup\nsetup()\n")
    assert names(inferred(tmp_path)) == {"numpy": ""}


def test_each_distribution_names_the_file_that_imports_it_root_first(tmp_path: Path) -> None:
    write(tmp_path, "lib/a.py", "import numpy\n")
    write(tmp_path, "train.py", "import numpy\n")
    write(tmp_path, "z.py", "import numpy\n")
    (item,) = inferred(tmp_path).dependencies
    assert item.files == ("train.py", "z.py", "lib/a.py")
    assert item.shown() == "numpy (train.py and 2 more)"


# --- scripts -----------------------------------------------------------------------------


def scripts(root: Path) -> entry_scripts.Found:
    return project_code.read(root).scripts()


def test_the_only_script_is_the_experiment_and_a_library_is_not(tmp_path: Path) -> None:
    write(tmp_path, "model.py", "import torch\n\nclass Net:\n    pass\n\nSIZE = 3\n")
    write(tmp_path, "gpt.py", "import model\nmodel.Net()\n")
    found = scripts(tmp_path)
    assert [(s.path, s.name, s.why) for s in found.chosen] == [
        ("gpt.py", "gpt", "statements at module level")
    ]
    assert found.others == ()


def test_the_only_script_is_no_experiment_when_it_imports_the_standard_library_alone(
    tmp_path: Path,
) -> None:
    write(tmp_path, "build_readme.py", "import os\nif __name__ == '__main__':\n    os.getcwd()\n")
    write(tmp_path, "nn/two_layer_net.py", "import torch\n")
    found = scripts(tmp_path)
    assert found.chosen == ()
    assert found.others == ("build_readme.py",)
    write(tmp_path, "build_readme.py", "from .model import Net\nNet()\n")  # its own code
    assert [script.path for script in scripts(tmp_path).chosen] == ["build_readme.py"]


def test_training_names_win_and_the_other_scripts_are_named(tmp_path: Path) -> None:
    main_block = "if __name__ == '__main__':\n    pass\n"
    for name in ("sample.py", "bench.py", "train.py", "finetune_train.py", "train_gpt.py"):
        write(tmp_path, name, main_block)
    write(tmp_path, "main.py", main_block)
    found = scripts(tmp_path)
    assert [s.path for s in found.chosen] == ["train.py", "train_gpt.py", "finetune_train.py"]
    assert len(found.chosen) == entry_scripts.MOST
    assert found.others == ("bench.py", "main.py", "sample.py")


@pytest.mark.parametrize(
    ("names", "chosen"),
    [
        (["constrain.py", "strainer.py", "fitness.py", "domain.py"], []),
        (["finetune.py", "pretrain_gpt.py", "sample.py"], ["finetune.py", "pretrain_gpt.py"]),
        (
            ["fit_model.py", "gpt-train.py", "Trainer.py"],
            ["Trainer.py", "gpt-train.py", "fit_model.py"],
        ),
    ],
)
def test_training_names_are_words_not_substrings(
    tmp_path: Path, names: list[str], chosen: list[str]
) -> None:
    for name in names:
        write(tmp_path, name, "print(1)\n")
    assert [script.path for script in scripts(tmp_path).chosen] == chosen


def test_several_scripts_and_no_training_name_declare_none(tmp_path: Path) -> None:
    write(tmp_path, "prepare.py", "print('prepare')\n")
    write(tmp_path, "sample.py", "print('sample')\n")
    changes = init_project(tmp_path, InitRequest())
    found = scripts(tmp_path)
    assert found.chosen == ()
    assert "example" in load_config(tmp_path, environ={}).experiments
    said = [c.detail for c in changes if c.detail.startswith("scripts prepare.py, sample.py")]
    assert len(said) == 1
    assert "none in the root is named for training or makes a training call" in said[0]


def test_scripts_that_make_a_training_call_are_declared_when_none_is_named_for_it(
    tmp_path: Path,
) -> None:
    # Karpathy's ng-video-lecture: bigram.py and gpt.py train at module level.
    loop = "import torch\nfor step in range(10):\n    loss = model(x)\n    loss.backward()\n"
    write(tmp_path, "bigram.py", loop)
    write(tmp_path, "gpt.py", loop)
    write(tmp_path, "evaluate.py", "import torch\nmodel.train()\nprint(model(x))\n")
    changes = init_project(tmp_path, InitRequest())
    experiments = load_config(tmp_path, environ={}).experiments
    assert set(experiments) == {"bigram", "gpt"}
    [bigram] = [c.detail for c in changes if "[tool.harness.experiments.bigram]" in c.detail]
    assert "bigram.py looks like a training script (statements at module level, calls " in bigram
    assert "calls .backward()" in bigram
    assert any(c.detail.startswith("scripts evaluate.py (not declared") for c in changes)


def test_a_web_app_is_never_an_experiment(tmp_path: Path) -> None:
    # The much-copied ML project template: app.py serves the model; the training runs in
    # src/pipeline/train_pipeline.py, which imports the project's code.
    write(
        tmp_path,
        "app.py",
        "from flask import Flask\napp = Flask(__name__)\n"
        "if __name__ == '__main__':\n    app.run()\n",
    )
    write(tmp_path, "src/__init__.py", "")
    write(tmp_path, "src/model.py", "import sklearn\n")
    write(
        tmp_path,
        "src/pipeline/train_pipeline.py",
        "from src.model import fit\nif __name__ == '__main__':\n    fit()\n",
    )
    # Standalone tutorial scripts that train are named too.
    write(tmp_path, "autograd/two_layer_net.py", "import torch\nloss.backward()\n")
    found = scripts(tmp_path)
    assert found.chosen == ()
    assert found.others == ("app.py",)
    assert found.deeper == ("autograd/two_layer_net.py", "src/pipeline/train_pipeline.py")


@pytest.mark.parametrize(
    ("code", "writes"),
    [
        ("print(loss)", False),
        ("open('input.txt', 'r', encoding='utf-8').read()", False),
        ("open('out.txt', 'w').write('x')", True),
        ("open(path, mode)", True),
        ("torch.save(model.state_dict(), 'model.pt')", True),
        ("np.savez('weights.npz', w=w)", True),
        ("df.to_csv('results.csv')", True),
        ("json.dump(metrics, f)", True),
        ("writer = SummaryWriter()", True),
        ("from .model import GPT", True),  # the project's code may write
    ],
)
def test_what_a_script_may_write_is_known(tmp_path: Path, code: str, writes: bool) -> None:
    write(tmp_path, "experiment.py", f"import torch\n{code}\nprint('done')\n")
    [found] = [s for s in project_code.read(tmp_path).sources.files if s.facts.script]
    assert found.facts.script is not None
    assert found.facts.script.writes_files is writes


def test_a_script_that_only_prints_keeps_what_it_prints(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "import torch\nfor step in range(3):\n    print(step)\n")
    changes = init_project(tmp_path, InitRequest())
    config = load_config(tmp_path, environ={})
    assert config.experiment("train").stdout == "stdout.txt"
    [line] = [c.detail for c in changes if "[tool.harness.experiments.train]" in c.detail]
    assert "stdout = 'stdout.txt', as it writes no file: what it prints is its result" in line


@pytest.mark.parametrize(
    ("call", "trains"),
    [
        ("model.fit(X, y)", ".fit()"),
        ("trainer.train()", ".train()"),
        ("self.trainer.train()", ".train()"),
        ("model.train()", ""),  # a mode switch, not training
        ("optimizer.zero_grad()", ""),
    ],
)
def test_the_training_calls_a_script_is_known_by(tmp_path: Path, call: str, trains: str) -> None:
    write(tmp_path, "experiment.py", f"import torch\n{call}\n")
    [found] = [s for s in project_code.read(tmp_path).sources.files if s.facts.script]
    assert found.facts.script is not None
    assert found.facts.script.trains == trains


def test_training_scripts_in_subfolders_are_named_not_declared(tmp_path: Path) -> None:
    write(tmp_path, "tutorials/mlp/main.py", "if __name__ == '__main__':\n    pass\n")
    changes = init_project(tmp_path, InitRequest())
    assert "example" in load_config(tmp_path, environ={}).experiments
    assert any(
        c.detail.startswith("scripts tutorials/mlp/main.py: none lies in the root") for c in changes
    )


def test_scripts_in_subfolders_that_run_the_project_s_code_are_named(tmp_path: Path) -> None:
    # minGPT's layout: a package in the root, its projects in folders of their own.
    write(tmp_path, "gpt/__init__.py", "")
    write(tmp_path, "gpt/model.py", "import torch\n")
    main = "if __name__ == '__main__':\n    pass\n"
    write(tmp_path, "projects/adder/adder.py", "from gpt.model import GPT\n" + main)
    write(tmp_path, "projects/chargpt/chargpt.py", "import gpt.model\n" + main)
    # A demonstration that uses none of the project's code is not named.
    write(tmp_path, "docs_src/plot.py", "import math\n" + main)
    changes = init_project(tmp_path, InitRequest())
    assert "example" in load_config(tmp_path, environ={}).experiments
    assert scripts(tmp_path).deeper == ("projects/adder/adder.py", "projects/chargpt/chargpt.py")
    assert any(
        c.detail.startswith(
            "scripts projects/adder/adder.py, projects/chargpt/chargpt.py: none lies in the root"
        )
        for c in changes
    )


def test_packaging_tests_and_tools_are_not_scripts(tmp_path: Path) -> None:
    for name in ("setup.py", "conftest.py", "noxfile.py", "test_train.py", "train_test.py"):
        write(tmp_path, name, "if __name__ == '__main__':\n    pass\n")
    assert scripts(tmp_path) == entry_scripts.Found((), ())


def test_argparse_outside_a_function_makes_a_script_and_its_step_options_are_named(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "fit_model.py",
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--epochs', type=int)\n"
        "p.add_argument('--lr')\np.add_argument('-n', '--num-steps')\n"
        "def main():\n    q = argparse.ArgumentParser()\n    q.add_argument('--max-iters')\n",
    )
    (script,) = scripts(tmp_path).chosen
    assert script.why == "argparse"
    # A parser built in main() (pytorch/examples' mnist) names its options too.
    assert script.step_options == ("--epochs", "--num-steps", "--max-iters")


def test_an_experiment_name_is_made_from_an_awkward_stem(tmp_path: Path) -> None:
    write(tmp_path, "My Train (v2).py", "print(1)\n")
    (script,) = scripts(tmp_path).chosen
    assert script.name == "My-Train-v2"
    assert script.command() == ["python", "My Train (v2).py"]


def test_init_reads_the_code_once_and_names_at_most_five_unread_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "train.py", "import numpy\nprint(1)\n")
    for index in range(7):
        write(tmp_path, f"broken{index}.py", "def (:\n")
    reads: list[Path] = []
    real_read = project_code.read

    def counted(root: Path) -> project_code.ProjectCode:
        reads.append(root)
        return real_read(root)

    monkeypatch.setattr(project_code, "read", counted)
    changes = init_project(tmp_path, InitRequest())
    assert reads == [tmp_path]  # the group and the experiments from one walk
    (unread,) = [c.detail for c in changes if "not read" in c.detail]
    assert unread.count("(not valid Python") == 5
    assert unread.endswith("; and 2 more")
