"""`harness lock` warns, naming the file, when the code imports what no pin provides."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli.main import cli
from harness.images.unpinned_imports import unpinned
from harness.imported_dependencies import Imported, Inferred
from tests.unit.test_framework_builds import fake_uv  # noqa: F401 - the fixture, by name


def test_a_missing_import_is_named_with_its_file(tmp_path: Path, fake_uv: list[str]) -> None:  # noqa: F811
    # As a much-copied project template: utils.py imports dill, requirements list it nowhere.
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "study"\nversion = "0"\n\n'
        '[dependency-groups]\nexperiments = ["numpy"]\n\n[tool.harness]\nimage = "study"\n'
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "utils.py").write_text("import dill\nimport numpy\nimport mystery_pkg\n")
    (tmp_path / "train.py").write_text("from src import utils\n")
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "lock"])
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: constraints.txt pins nothing that provides dill (src/utils.py): the run will "
        "fail to import it; add it to [dependency-groups] experiments, then run `harness lock` "
        "again"
    ) in " ".join(result.stderr.split())
    # A name harness does not know may be provided under another: never warned of.
    assert "mystery" not in result.stderr
    # Declared, locked: no warning.
    (tmp_path / "pyproject.toml").write_text(
        (tmp_path / "pyproject.toml").read_text().replace('["numpy"]', '["numpy", "dill"]')
    )
    result = CliRunner().invoke(cli, ["--project", str(tmp_path), "lock"])
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr


def test_a_framework_s_cpu_build_provides_its_import() -> None:
    inferred = Inferred(
        [
            Imported("xgboost", "xgboost", ("train.py",)),
            Imported("tensorflow", "tensorflow", ("train.py",)),
            Imported("scikit-learn", "sklearn", ("train.py",)),
        ]
    )
    missing = unpinned(inferred, ["xgboost-cpu", "tensorflow-cpu", "numpy"])
    assert [item.distribution for item in missing] == ["scikit-learn"]
    assert missing[0].shown() == "scikit-learn (sklearn in train.py)"


def test_a_variant_build_provides_its_original_s_import() -> None:
    inferred = Inferred(
        [
            Imported("opencv-python", "cv2", ("augment.py",)),
            Imported("pillow", "PIL", ("augment.py",)),
        ]
    )
    assert unpinned(inferred, ["opencv-contrib-python-headless", "pillow-simd"]) == []
    assert [item.distribution for item in unpinned(inferred, ["pillow"])] == ["opencv-python"]
