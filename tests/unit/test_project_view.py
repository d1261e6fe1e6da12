"""Code that writes next to itself runs unchanged: the experiment works in a writable view
of the project, the project itself is never changed, and what it wrote there can be kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runtime import determinism, project_view, runner

# Shaped like an MLflow training: tracks to ./mlruns and saves to ./outputs, relative to
# the working directory, as a project run from its checkout does.
TRAIN = """\
import os, pathlib, sys
store = pathlib.Path("mlruns/0/abc123")
store.mkdir(parents=True)
(store / "meta.yaml").write_text("run_id: abc123\\n")
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/model.txt").write_text("weights\\n")
pathlib.Path("outputs/project.txt").write_text(os.environ["HARNESS_PROJECT"])
pathlib.Path("checkpoints").mkdir()
pathlib.Path("checkpoints/last.txt").write_text("1\\n")
pathlib.Path("README.md").write_text("changed by the run\\n")
print(pathlib.Path("src/bikes/__init__.py").read_text(), file=sys.stderr)
"""


def make_project(root: Path) -> Path:
    (root / "src" / "bikes").mkdir(parents=True)
    (root / "src" / "bikes" / "__init__.py").write_text('"""Bikes."""\n')
    (root / "train.py").write_text(TRAIN)
    (root / "README.md").write_text("the project's own\n")
    (root / "confs").mkdir()
    (root / "confs" / "training.yaml").write_text("seed: 42\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\0" * (project_view.COPY_LIMIT + 1))
    (root / "link").symlink_to("README.md")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def test_the_view_copies_small_files_links_large_ones_and_skips_state(tmp_path: Path) -> None:
    source = make_project(tmp_path / "source")
    view = tmp_path / "view"
    laid = project_view.lay_out(source, view)
    assert (view / "src" / "bikes" / "__init__.py").read_text() == '"""Bikes."""\n'
    assert not (view / "src" / "bikes" / "__init__.py").is_symlink()
    assert (view / "data" / "big.bin").is_symlink()
    assert (view / "data" / "big.bin").readlink() == source / "data" / "big.bin"
    assert (view / "link").readlink() == Path("README.md")
    assert not (view / ".git").exists()
    assert not (view / ".venv").exists()
    assert (laid.copied, laid.linked) == (4, 1)
    with pytest.raises(project_view.ViewError, match="not empty"):
        project_view.lay_out(source, view)


def test_an_mlflow_style_run_writes_next_to_itself_and_the_project_never_changes(
    tmp_path: Path,
) -> None:
    source = make_project(tmp_path / "source")
    before = snapshot(source)
    view, output, meta = tmp_path / "view", tmp_path / "out", tmp_path / "meta"
    for folder in (view, output, meta):
        folder.mkdir()
    spec = {
        "schema": "harness.run-spec/v1",
        "run_id": "r1",
        "experiment": "train",
        "entry": None,
        "command": [sys.executable, "train.py"],
        "parameters": {},
        "seed": 1,
        "profile": "strict",
        "threads": 1,
        "device": "cpu",
        "project": str(view),
        "project_source": str(source),
        # Relative to the project as well as to the output folder.
        "project_outputs": ["mlruns/**", "outputs/*", "README.md"],
        "output": str(output),
        "meta": str(meta),
        "inputs": {},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    environment = {
        **{k: v for k, v in os.environ.items() if k not in determinism.VARIABLES},
        **determinism.environment(1, "strict", 1, "cpu"),
    }
    done = subprocess.run(
        [sys.executable, "-P", "-m", "harness.runtime", str(tmp_path / "spec.json")],
        cwd=view,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    record = json.loads((meta / runner.RECORD).read_text())
    assert (done.returncode, record["status"]) == (0, "succeeded"), done.stderr
    assert snapshot(source) == before
    assert (output / "mlruns" / "0" / "abc123" / "meta.yaml").read_text() == "run_id: abc123\n"
    assert (output / "outputs" / "model.txt").read_text() == "weights\n"
    # A rewritten project file is the run's too; what no glob names stays behind.
    assert (output / "README.md").read_text() == "changed by the run\n"
    assert not (output / "checkpoints").exists()
    assert not (output / "confs").exists()
    assert (output / "outputs" / "project.txt").read_text() == str(view)
    assert "kept 4 file(s) the run wrote in the project" in done.stderr


def test_a_large_file_changed_through_its_link_is_named(tmp_path: Path) -> None:
    # Where the project is writable (the host executor), a write through the view's link
    # reaches it: the run cannot be prevented from it, so it is caught and named.
    source = make_project(tmp_path / "source")
    laid = project_view.lay_out(source, tmp_path / "view")
    assert project_view.changed_links(source, laid) == []
    (tmp_path / "view" / "data" / "big.bin").write_bytes(b"overwritten")
    assert project_view.changed_links(source, laid) == ["data/big.bin"]


def test_what_the_run_left_alone_is_not_collected(tmp_path: Path) -> None:
    source = make_project(tmp_path / "source")
    view, output = tmp_path / "view", tmp_path / "out"
    output.mkdir()
    laid = project_view.lay_out(source, view)
    (view / "outputs").mkdir()
    (view / "outputs" / "new.txt").write_text("new\n")
    (output / "outputs").mkdir()
    (output / "outputs" / "new.txt").write_text("the experiment's own\n")
    (view / "extra.json").write_text("{}")
    assert list(project_view.written_by_run(view, laid)) == ["extra.json", "outputs/new.txt"]
    assert project_view.collect(view, laid, output, ["**"]).kept == ["extra.json"]
    # The output folder's own file wins.
    assert (output / "outputs" / "new.txt").read_text() == "the experiment's own\n"


def test_without_outputs_everything_the_run_wrote_is_kept_but_caches(tmp_path: Path) -> None:
    # A script run as `train.py --work-dir out` writes its results next to its code: with
    # no outputs named they are its artifacts, not dropped (a verification of nothing).
    source = make_project(tmp_path / "source")
    view, output = tmp_path / "view", tmp_path / "out"
    output.mkdir()
    laid = project_view.lay_out(source, view)
    (view / "out").mkdir()
    (view / "out" / "model.pt").write_bytes(b"weights")
    (view / "__pycache__").mkdir()
    (view / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"bytecode")
    (view / "pkg" / "__pycache__").mkdir(parents=True)
    (view / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"bytecode")
    (view / ".pytest_cache").mkdir()
    (view / ".pytest_cache" / "v").write_text("cache")
    assert project_view.collect(view, laid, output, []).kept == ["out/model.pt"]
    assert (output / "out" / "model.pt").read_bytes() == b"weights"


def test_a_link_the_experiment_left_in_the_output_folder_is_not_followed(tmp_path: Path) -> None:
    source = make_project(tmp_path / "source")
    view, output, elsewhere = tmp_path / "view", tmp_path / "out", tmp_path / "elsewhere"
    output.mkdir()
    elsewhere.mkdir()
    laid = project_view.lay_out(source, view)
    (view / "mlruns").mkdir()
    (view / "mlruns" / "x").write_text("x")
    (output / "mlruns").symlink_to(elsewhere)
    with pytest.raises(project_view.ViewError, match="in the way"):
        project_view.collect(view, laid, output, ["mlruns/*"])
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("path", "globs", "expected"),
    [
        ("mlruns/0/abc/meta.yaml", ["mlruns/**"], True),
        ("mlruns/0/abc/meta.yaml", ["./mlruns/*"], True),
        ("outputs/model.pkl", ["*.pkl"], True),
        ("outputs/model.pkl", ["checkpoints/*"], False),
    ],
)
def test_globs_match_as_compare_policies_do(path: str, globs: list[str], expected: bool) -> None:
    assert project_view.matches(path, globs) is expected


def test_what_the_experiment_s_user_cannot_read_is_left_out_not_a_failure(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A tool's private cache in the project (pytest's or hypothesis's, mode 0700): the
    # container's user could not read it through the read-only mount either.
    base = Path(tmp_path_factory.mktemp("view"))
    for folder in (base, *base.parents):
        if folder == Path("/tmp") or folder == folder.parent:
            break
        folder.chmod(0o755)  # the unprivileged user below reaches the project
    source = base / "project"
    (source / ".hypothesis" / "constants").mkdir(parents=True)
    (source / ".hypothesis" / "constants" / "x").write_text("private")
    (source / ".hypothesis").chmod(0o700)
    (source / "secret.txt").write_text("private")
    (source / "secret.txt").chmod(0o600)
    (source / "train.py").write_text("print('hi')\n")
    view = base / "view"
    view.mkdir()
    view.chmod(0o777)
    # Laid out as a user who is not the owner (as root here: drop to nobody first).
    script = (
        "import os, shutil, sys\n"
        "from pathlib import Path\n"
        "from harness.runtime import project_view\n"
        "if os.geteuid() == 0:  # everything imported first: the interpreter is root's\n"
        "    os.setgid(65534); os.setuid(65534)\n"
        "project_view.lay_out(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "print(sorted(p.name for p in Path(sys.argv[2]).iterdir()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(source), str(view)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(project_view.__file__).parents[2])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['train.py']"
