"""Jupyter notebooks read for their imports and install lines (never run, never declared
as experiments), as hostile input: malformed JSON, deep nesting, huge outputs, links."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import notebooks, project_code, python_sources
from harness.cli.main import cli
from harness.imported_dependencies import Inferred
from harness.project_init import InitRequest, init_project
from tests.unit.test_framework_builds import fake_uv  # noqa: F401 - the fixture, by name


def notebook(*cells: tuple[str, str | list[str]], language: str = "python", **extra: Any) -> str:
    """nbformat 4 JSON of ``cells`` (cell type, source), as Jupyter writes it."""
    document = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "k", "language": language, "display_name": "K"},
            "language_info": {"name": language},
        },
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": source}
            | ({"outputs": [], "execution_count": None} if kind == "code" else {})
            for kind, source in cells
        ],
        **extra,
    }
    return json.dumps(document, indent=1)


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def inferred(root: Path) -> Inferred:
    return project_code.read(root).dependencies()


def distributions(root: Path) -> dict[str, tuple[str, ...]]:
    return {item.distribution: item.files for item in inferred(root).dependencies}


def read_notebook(*cells: tuple[str, str | list[str]]) -> notebooks.Notebook:
    return notebooks.read(notebook(*cells).encode())


# --- the cells read ----------------------------------------------------------------------


def test_code_cells_count_and_markdown_raw_cells_and_outputs_do_not(tmp_path: Path) -> None:
    text = notebook(
        ("markdown", "Run `import markdown_only` first:\n\nimport markdown_only\n"),
        ("markdown", "!pip install markdown_install\n%pip install markdown_install\n"),
        ("raw", "import raw_only\n"),
        ("code", ["import seaborn as sns\n", "from sklearn.linear_model import Ridge\n"]),
    )
    # An output that prints an import is text, not code.
    document = json.loads(text)
    document["cells"][3]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": ["import output_only\n"]}
    ]
    write(tmp_path, "notebooks/eda.ipynb", json.dumps(document))
    assert distributions(tmp_path) == {
        "scikit-learn": ("notebooks/eda.ipynb",),
        "seaborn": ("notebooks/eda.ipynb",),
    }


def test_magics_and_shell_lines_are_dropped_keeping_line_numbers() -> None:
    found = read_notebook(
        ("code", "%matplotlib inline\n%load_ext autoreload\nimport numpy as np\n"),
        (
            "code",
            "files = !ls data\nfor name in files:\n    !echo {name}\n    %time load(name)\n"
            "np.zeros?\n?np\nimport pandas\n",
        ),
    )
    tree, skipped = notebooks.parse(found, "eda.ipynb")
    assert skipped == []
    imports = [(node.lineno, node.names[0].name) for node in tree.body if hasattr(node, "names")]
    # Each import keeps its line in its cell.
    assert imports == [(3, "numpy"), (7, "pandas")]
    assert [cell.number for cell in found.cells] == [1, 2]
    assert found.cells[1].text.splitlines()[:4] == [
        "pass",
        "for name in files:",
        "    pass",
        "    pass",
    ]


def test_a_cell_that_does_not_parse_is_left_out_not_the_notebook(tmp_path: Path) -> None:
    write(
        tmp_path,
        "eda.ipynb",
        notebook(
            ("code", "import torch\n"),
            ("code", "import broken_cell_import\ndef (:\n"),
            ("code", "import transformers\n"),
        ),
    )
    code = project_code.read(tmp_path)
    assert sorted(distributions(tmp_path)) == ["torch", "transformers"]
    assert code.sources.skipped_cells == [
        "eda.ipynb cell 2 (not valid Python: invalid syntax, line 2)"
    ]
    assert "1 code cell left out: eda.ipynb cell 2 (not valid Python" in code.notebooks_line()


@pytest.mark.parametrize(
    ("magic", "read"),
    [
        ("%%time", True),
        ("%%capture output", True),
        ("%%html", False),
        ("%%writefile helper.py", False),
        ("%%R", False),
        ("%%bash", False),
    ],
)
def test_cell_magics_wrap_python_or_another_language(magic: str, read: bool) -> None:
    found = read_notebook(("code", f"{magic}\nimport seaborn\n"))
    tree, _ = notebooks.parse(found, "eda.ipynb")
    assert bool(tree.body) is read


def test_a_notebook_in_another_language_is_not_read_as_python(tmp_path: Path) -> None:
    # Scala's import parses as Python's, and would infer a distribution named "org".
    write(
        tmp_path, "spark.ipynb", notebook(("code", "import org.apache.spark\n"), language="scala")
    )
    code = project_code.read(tmp_path)
    assert code.sources.files == []
    assert code.sources.unread_notebooks == ["spark.ipynb (a notebook in scala, not Python)"]


# --- install lines -----------------------------------------------------------------------


def test_pip_install_lines_are_needs_named_with_their_notebook(tmp_path: Path) -> None:
    write(
        tmp_path,
        "notebooks/setup.ipynb",
        notebook(
            (
                "code",
                "%pip install -q seaborn\n"
                "!pip install --upgrade 'torchvision>=0.15' transformers[torch]==4.40 && echo ok\n"
                "!{sys.executable} -m pip install einops\n"
                "!python3 -m pip install -U wandb \\\n    datasets\n"
                "import numpy\n",
            ),
            ("code", "%%bash\npip install -r requirements.txt lightgbm\nuv pip install optuna\n"),
        ),
    )
    assert distributions(tmp_path) == dict.fromkeys(
        [
            "datasets",
            "einops",
            "lightgbm",
            "numpy",
            "optuna",
            "seaborn",
            "torchvision",
            "transformers",
            "wandb",
        ],
        ("notebooks/setup.ipynb",),
    )
    assert "seaborn (notebooks/setup.ipynb)" in inferred(tmp_path).describe()


@pytest.mark.parametrize(
    ("line", "taken"),
    [
        ("!pip install git+https://github.com/org/repo.git", []),
        ("!pip install ./local_package", []),
        ("!pip install -e .", []),
        ("!pip install $PACKAGE", []),
        ("!pip install {package}", []),
        ("!pip install 'name with spaces'", []),
        ("!pip install " + "x" * 200, []),
        ("!pip install 'unclosed", []),
        ("!pip download numpy", []),
        ("!conda install pytorch", []),
        ("!pip install -r requirements.txt -c constraints.txt", []),
        ("!pip install 'pkg @ https://example.org/pkg.whl'", []),
        ("!pip install pkg@file:pkg.whl", []),
        ("!pip install --index-url https://example.org/simple numpy > pip.log", ["numpy"]),
        ("!echo pip install numpy", []),
    ],
)
def test_install_words_that_are_not_a_requirement_name_are_not_taken(
    line: str, taken: list[str]
) -> None:
    assert read_notebook(("code", line + "\n")).installs == taken


def test_install_names_are_bounded_per_notebook() -> None:
    many = " ".join(f"package{number}" for number in range(notebooks.INSTALLS_LIMIT + 20))
    found = read_notebook(("code", f"!pip install {many}\n"))
    assert len(found.installs) == notebooks.INSTALLS_LIMIT


def test_an_install_of_the_project_s_own_package_is_its_code(tmp_path: Path) -> None:
    write(tmp_path, "mylib/__init__.py", "")
    write(tmp_path, "demo.ipynb", notebook(("code", "!pip install mylib seaborn\nimport mylib\n")))
    assert list(distributions(tmp_path)) == ["seaborn"]


# --- never an experiment -----------------------------------------------------------------


def test_a_notebook_is_never_declared_an_experiment_and_init_says_so(tmp_path: Path) -> None:
    write(
        tmp_path,
        "train.ipynb",
        notebook(("code", "import torch\nif __name__ == '__main__':\n    print('train')\n")),
    )
    write(tmp_path, "notebooks/eda.ipynb", notebook(("code", "import seaborn\n")))
    changes = init_project(tmp_path, InitRequest())
    document = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    # The example stays: train.ipynb is read for its imports only.
    assert list(document["tool"]["harness"]["experiments"]) == ["example"]
    assert document["dependency-groups"]["experiments"] == ["seaborn", "torch"]
    details = [change.detail for change in changes]
    assert (
        "2 notebooks read for imports and pip install lines only (a notebook is never "
        "declared an experiment)" in details
    )
    # A folder of notebooks is no package of the project's own: nothing imports a notebook.
    assert project_code.read(tmp_path).sources.own_names == {"harness_example"}


def test_init_s_summary_names_the_notebook_of_each_dependency(tmp_path: Path) -> None:
    write(tmp_path, "notebooks/eda.ipynb", notebook(("code", "!pip install seaborn\n")))
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    assert "seaborn (notebooks/eda.ipynb)" in result.stdout
    assert "1 notebook read for imports and pip install lines only" in result.stdout


def test_a_project_without_notebooks_says_nothing_of_them(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "import numpy\n")
    assert project_code.read(tmp_path).notebooks_line() == ""


def test_notebooks_in_tests_docs_and_checkpoints_are_not_the_experiments(tmp_path: Path) -> None:
    write(tmp_path, "run.py", "import numpy\n")
    write(tmp_path, "docs/tutorial.ipynb", notebook(("code", "import sphinx_only\n")))
    write(tmp_path, "tests/check.ipynb", notebook(("code", "!pip install pytest_only\n")))
    write(tmp_path, ".ipynb_checkpoints/eda-checkpoint.ipynb", notebook(("code", "import old\n")))
    assert list(distributions(tmp_path)) == ["numpy"]


# --- hostile notebooks -------------------------------------------------------------------


def test_malformed_notebooks_are_counted_and_named_without_a_traceback(tmp_path: Path) -> None:
    write(tmp_path, "good.ipynb", notebook(("code", "import seaborn\n")))
    write(tmp_path, "a_not_json.ipynb", "{not json")
    write(tmp_path, "b_list.ipynb", "[1, 2]")
    write(tmp_path, "c_v3.ipynb", json.dumps({"nbformat": 3, "cells": [], "worksheets": []}))
    write(
        tmp_path,
        "d_source.ipynb",
        json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}),
    )
    write(tmp_path, "e_dupe.ipynb", '{"nbformat": 4, "cells": [], "cells": []}')
    (tmp_path / "f_binary.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    [line] = [line for line in result.stdout.splitlines() if "install lines only" in line]
    assert "1 notebook read for imports and pip install lines only" in line
    assert "6 not read: a_not_json.ipynb (is not valid JSON" in line
    assert "b_list.ipynb (not a notebook: no list of cells)" in line
    assert "c_v3.ipynb (nbformat 3, not 4)" in line
    assert "d_source.ipynb (cell 1's source is not text)" in line
    assert "and 1 more" in line
    assert "seaborn (good.ipynb)" in result.stdout


def test_json_nesting_is_bounded(tmp_path: Path) -> None:
    deep: Any = "import hidden"
    for _ in range(notebooks.DEPTH_LIMIT + 1):
        deep = [deep]
    write(tmp_path, "deep.ipynb", notebook(("code", "import seaborn\n"), metadata_extra=deep))
    # Deeper than Python's JSON parser can go at all.
    write(tmp_path, "deeper.ipynb", "[" * 200_000)
    code = project_code.read(tmp_path)
    assert code.sources.files == []
    assert code.sources.unread_notebooks == [
        f"deep.ipynb (nests deeper than {notebooks.DEPTH_LIMIT} levels)",
        f"deeper.ipynb (nests deeper than {notebooks.DEPTH_LIMIT} levels)",
    ]


def test_outputs_bigger_than_a_python_file_s_bound_are_read_within_the_notebook_bound(
    tmp_path: Path,
) -> None:
    # A notebook with plots embeds megabytes of base64 images beside a few lines of code.
    image = {"output_type": "display_data", "data": {"image/png": "A" * (3 << 20)}}
    document = json.loads(notebook(("code", "import matplotlib.pyplot as plt\n")))
    document["cells"][0]["outputs"] = [image]
    write(tmp_path, "plots.ipynb", json.dumps(document))
    assert (tmp_path / "plots.ipynb").stat().st_size > python_sources.FILE_LIMIT
    assert list(distributions(tmp_path)) == ["matplotlib"]


def test_a_notebook_over_its_size_bound_is_not_read(tmp_path: Path) -> None:
    padding = "x" * notebooks.FILE_LIMIT
    write(tmp_path, "huge.ipynb", notebook(("code", "import seaborn\n"), padding=padding))
    code = project_code.read(tmp_path)
    assert code.sources.files == []
    assert code.sources.unread_notebooks[0].startswith("huge.ipynb (is ")
    assert "1 not read: huge.ipynb (is " in code.notebooks_line()


def test_a_linked_notebook_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.ipynb", notebook(("code", "import stolen_package\n")))
    root = tmp_path / "project"
    write(root, "train.py", "import numpy\n")
    (root / "secret.ipynb").symlink_to(outside / "secret.ipynb")
    (root / "linked_folder").symlink_to(outside, target_is_directory=True)
    code = project_code.read(root)
    assert list(code.dependencies().dependencies[0].files) == ["train.py"]
    assert len(code.dependencies().dependencies) == 1
    assert code.sources.unread_notebooks == ["secret.ipynb (a link: links are not followed)"]
    assert code.notebooks_line() == (
        "0 notebooks read for imports and pip install lines only (a notebook is never "
        "declared an experiment); "
        "1 not read: secret.ipynb (a link: links are not followed)"
    )


def test_a_notebook_named_pipe_does_not_hang_the_walk(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.ipynb")
    code = project_code.read(tmp_path)
    assert code.sources.files == []
    assert code.sources.unread_notebooks == []


# --- lock --------------------------------------------------------------------------------


def test_lock_names_a_notebook_s_import_that_no_pin_provides(
    tmp_path: Path,
    fake_uv: list[str],  # noqa: F811
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "study"\nversion = "0"\n\n'
        '[dependency-groups]\nexperiments = ["numpy"]\n\n[tool.harness]\nimage = "study"\n'
    )
    write(tmp_path, "train.py", "import numpy\n")
    write(
        tmp_path,
        "notebooks/eda.ipynb",
        notebook(("markdown", "import pandas\n"), ("code", "%matplotlib inline\nimport seaborn\n")),
    )
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "lock"])
    assert result.exit_code == 0, result.stderr
    warning = " ".join(result.stderr.split())
    assert "constraints.txt pins nothing that provides seaborn (notebooks/eda.ipynb)" in warning
    assert "pandas" not in warning


# --- what notebooks import ---------------------------------------------------------------


def test_notebook_names_map_to_their_distributions_and_colab_s_own_modules_are_left_out(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "sat.ipynb",
        notebook(
            (
                "code",
                "!pip install z3-solver\nimport z3\nimport ipywidgets\nimport graphviz\n"
                "from google.colab import drive\nimport kaggle_secrets\n",
            )
        ),
    )
    found = inferred(tmp_path)
    assert {item.distribution: item.doubt for item in found.dependencies} == dict.fromkeys(
        ["graphviz", "ipywidgets", "z3-solver"], ""
    )
    assert [item.shown() for item in found.left_out] == [
        "google.colab (sat.ipynb)",
        "kaggle_secrets (sat.ipynb)",
    ]
    assert "a hosted notebook's own" in found.describe_left_out()


def test_a_notebook_s_code_has_a_python_file_s_bound(tmp_path: Path) -> None:
    # Parsed together, its cells' syntax trees would take a hundred times their size.
    cell = "x = 1\n" * (python_sources.FILE_LIMIT // 12 + 1)
    write(tmp_path, "generated.ipynb", notebook(("code", cell), ("code", cell + "import torch\n")))
    code = project_code.read(tmp_path)
    assert code.sources.files == []
    assert code.sources.unread_notebooks == ["generated.ipynb (more than 1 MiB of code)"]


def test_an_install_in_place_of_an_import_s_distribution_provides_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "search.ipynb",
        notebook(
            (
                "code",
                "!pip install faiss-cpu opencv-python-headless torch-geometric scikit-image\n"
                "import faiss\nimport cv2\nimport torch\nimport sklearn\n",
            )
        ),
    )
    # faiss's distribution was a guess, cv2's has a headless build: the installs provide
    # them. torch and scikit-learn are no guesses, whatever is installed beside them.
    found = inferred(tmp_path)
    assert {item.distribution: item.doubt for item in found.dependencies} == dict.fromkeys(
        [
            "faiss-cpu",
            "opencv-python-headless",
            "scikit-image",
            "scikit-learn",
            "torch",
            "torch-geometric",
        ],
        "",
    )


def test_the_notebooks_json_read_in_all_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real bound is 64 MiB; the same check at 1 MiB keeps the test's files small.
    monkeypatch.setattr(python_sources, "NOTEBOOK_BYTES_LIMIT", 1 << 20)
    image = {"output_type": "display_data", "data": {"image/png": "A" * (600 << 10)}}
    for name, module in (("a", "seaborn"), ("b", "torch"), ("c", "transformers")):
        document = json.loads(notebook(("code", f"import {module}\n")))
        document["cells"][0]["outputs"] = [image]
        write(tmp_path, f"{name}.ipynb", json.dumps(document))
    code = project_code.read(tmp_path)
    assert sorted(distributions(tmp_path)) == ["seaborn", "torch"]
    assert code.sources.unread_notebooks == ["c.ipynb (past 1 MiB of notebooks read)"]
