from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import find_project_root, load_config
from harness.errors import ConfigError


def write(project: Path, extra: str) -> None:
    """Add lines to [tool.harness] (or, starting with a table header, after it)."""
    text = (project / "pyproject.toml").read_text()
    if extra.lstrip().startswith("["):
        text += extra
    else:
        text = text.replace("[tool.harness]\n", "[tool.harness]\n" + extra, 1)
    (project / "pyproject.toml").write_text(text)


def test_defaults_apply_when_nothing_is_set(project: Path) -> None:
    config = load_config(project, environ={})
    assert config.python == "3.11"
    assert config.base == "bootstrap"
    assert config.sources["python"] == "default"
    assert config.find_links == ()
    assert set(config.variants) == {"cpu", "cuda"}


@pytest.mark.parametrize(
    ("pyproject", "folder", "image"),
    [
        ('[project]\nname = "Char_RNN.Model"\n', "anything", "char_rnn.model"),
        ('[project]\nname = "My Model.-v2_"\n', "anything", "my-model-v2"),
        ("[tool.harness]\n", "My Research", "my-research"),
        ('[project]\nname = "___"\n', "nanoGPT", "nanogpt"),
        ("", "...", "project"),
    ],
)
def test_without_image_the_images_are_named_after_the_project(
    tmp_path: Path, pyproject: str, folder: str, image: str
) -> None:
    """Never one default for every project: a fixed `harness` made each project's build
    move the tags of the last, harness's own harness:cpu included."""
    root = tmp_path / folder
    root.mkdir()
    (root / "pyproject.toml").write_text(pyproject)
    config = load_config(root, environ={})
    assert config.image == image
    assert config.sources["image"] == "project name"
    assert load_config(root, environ={"HARNESS_IMAGE": "mine"}).image == "mine"


def test_precedence_is_default_pyproject_env_command_line(project: Path) -> None:
    write(project, 'python = "3.12"\n')
    from_pyproject = load_config(project, environ={})
    assert (from_pyproject.python, from_pyproject.sources["python"]) == ("3.12", "pyproject")

    from_env = load_config(project, environ={"HARNESS_PYTHON": "3.13"})
    assert (from_env.python, from_env.sources["python"]) == ("3.13", "env HARNESS_PYTHON")

    from_flag = load_config(project, {"python": "3.10"}, environ={"HARNESS_PYTHON": "3.13"})
    assert (from_flag.python, from_flag.sources["python"]) == ("3.10", "command line")


def test_pip_variables_are_defaults_that_harness_variables_override(project: Path) -> None:
    environ = {"PIP_FIND_LINKS": "/wheels", "PIP_CERT": "/ca.pem"}
    config = load_config(project, environ=environ)
    assert config.find_links == ("/wheels",)
    assert config.ca_bundle == Path("/ca.pem")
    config = load_config(project, environ={**environ, "HARNESS_FIND_LINKS": "/a:/b"})
    assert config.find_links == ("/a", "/b")


def test_unknown_key_is_rejected_by_name(project: Path) -> None:
    write(project, 'pyhton = "3.11"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'pyhton' in \[tool.harness\]"):
        load_config(project, environ={})


def test_unknown_variant_key_is_rejected_by_name(project: Path) -> None:
    write(project, '\n[tool.harness.variants.cuda]\ndockerfle = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'dockerfle'"):
        load_config(project, environ={})


def test_wrong_type_names_the_key(project: Path) -> None:
    write(project, "python = 3.11\n")
    with pytest.raises(ConfigError) as caught:
        load_config(project, environ={})
    assert caught.value.one_line() == (
        '[tool.harness] python: expected a string, got 3.11 (fix: write python = "3.11")'
    )


def test_base_must_be_pinned_by_digest(project: Path) -> None:
    with pytest.raises(ConfigError, match="not pinned by digest"):
        load_config(project, {"base": "python:3.11-slim"}, environ={})
    pinned = "python:3.11-slim@sha256:" + "a" * 64
    assert load_config(project, {"base": pinned}, environ={}).base == pinned


def test_unknown_variant_lists_the_known_ones(project: Path) -> None:
    config = load_config(project, environ={})
    with pytest.raises(ConfigError) as caught:
        config.variant("rocm")
    assert "unknown variant 'rocm'" in caught.value.one_line()
    assert "cpu, cuda" in caught.value.one_line()


def test_variant_replace_and_find_links(project: Path) -> None:
    write(project, "\n[tool.harness.variants.cuda]\nfind-links = false\n")
    config = load_config(project, environ={})
    assert config.variant("cpu").replace == {"torch": "torch==2.13.0+cpu"}
    assert config.variant("cuda").find_links is False
    assert config.variant("cuda").dockerfile == project / "Dockerfile.cuda"


def test_invalid_toml_is_a_config_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.harness\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(project, environ={})


def test_project_root_is_found_above(project: Path) -> None:
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    assert find_project_root(nested) == project.resolve()


EXPERIMENTS = """
[tool.harness.policies]
"*.pt" = "ulp:4"
"*.json" = "metric:rtol=1e-6"

[tool.harness.experiments.train]
entry = "pkg.train:main"
parameters = { steps = 3 }
inputs = { data = "data" }
outputs = { "model.pt" = "close:rtol=1e-5,atol=1e-8", "metrics.json" = "" }

[tool.harness.experiments.script]
command = ["python", "train.py"]
outputs = ["out.npy"]
"""


def test_experiments_are_read_with_their_inputs_and_policies(project: Path) -> None:
    write(project, EXPERIMENTS)
    config = load_config(project, environ={})
    train = config.experiment("train")
    assert train.entry == "pkg.train:main"
    assert train.parameters == {"steps": 3}
    assert train.inputs == {"data": (project / "data").resolve()}
    assert config.experiment("script").command == ("python", "train.py")
    assert config.experiment("script").outputs == {"out.npy": ""}
    assert config.policies_for(train) == {
        "*.pt": "ulp:4",
        "*.json": "metric:rtol=1e-6",
        "model.pt": "close:rtol=1e-5,atol=1e-8",
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('entry = "a:b"\ncommand = ["x"]', "exactly one of entry or command"),
        ("parameters = {}", "exactly one of entry or command"),
        ('entry = "no_colon"', "is not module:function"),
        ("command = []", "command: expected a non-empty list"),
        ('entry = "a:b"\noutputs = 3', "outputs: expected a list or a table, got 3"),
        ('entry = "a:b"\nseed = 3', "unknown key 'seed'"),
        ('entry = "a:b"\nstdout = "out.txt"', "stdout is kept only for a command"),
        ('command = ["x"]\nstdout = "../out.txt"', r'stdout: "\.\./out.txt" is not a file path'),
        ('command = ["x"]\nstdout = "*.txt"', r'stdout: "\*.txt" is not a file path'),
    ],
)
def test_bad_experiments_are_refused_by_name(project: Path, table: str, message: str) -> None:
    write(project, f"\n[tool.harness.experiments.bad]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(project, environ={})


def test_a_kept_standard_output_is_an_artifact_whatever_outputs_names(project: Path) -> None:
    write(
        project,
        '\n[tool.harness.experiments.printed]\ncommand = ["python", "bigram.py"]\n'
        'stdout = "stdout.txt"\n'
        '\n[tool.harness.experiments.both]\ncommand = ["python", "train.py"]\n'
        'outputs = ["model.pt"]\nstdout = "logs/stdout.txt"\n',
    )
    config = load_config(project, environ={})
    # No outputs: every file written is an artifact, the kept output among them.
    assert config.experiment("printed").artifact_globs == []
    assert config.experiment("both").artifact_globs == ["model.pt", "logs/stdout.txt"]
    assert config.experiment("both").outputs == {"model.pt": ""}


def test_unknown_experiment_lists_the_declared_ones(project: Path) -> None:
    write(project, EXPERIMENTS)
    with pytest.raises(ConfigError, match="unknown experiment 'nope'") as caught:
        load_config(project, environ={}).experiment("nope")
    assert "script, train" in caught.value.one_line()


def test_integer_options_accept_numbers_and_refuse_words(project: Path) -> None:
    write(project, "seed = 7\nthreads = 2\n")
    config = load_config(project, environ={})
    assert (config.seed, config.threads) == (7, 2)
    with pytest.raises(ConfigError, match="seed must be a whole number, not 'abc'"):
        load_config(project, environ={"HARNESS_SEED": "abc"})
    with pytest.raises(ConfigError, match="threads must be at least 1"):
        load_config(project, {"threads": "0"}, environ={})


def test_unknown_profile_is_refused(project: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        load_config(project, {"profile": "fast"}, environ={})


@pytest.mark.parametrize("seed", ["²", "٣", "-1", "1e3", str(2**32), " 1"])
def test_a_seed_that_is_no_plain_whole_number_is_a_config_error(project: Path, seed: str) -> None:
    with pytest.raises(ConfigError, match="seed"):
        load_config(project, environ={"HARNESS_SEED": seed})


def test_a_memory_limit_is_checked_and_kept(project: Path) -> None:
    assert load_config(project, environ={"HARNESS_MEMORY": "8G"}).memory == "8g"
    assert load_config(project, environ={}).memory is None
    with pytest.raises(ConfigError, match="memory must look like"):
        load_config(project, environ={"HARNESS_MEMORY": "lots"})


def test_a_variant_of_another_name_needs_its_constraints(project: Path) -> None:
    write(project, '\n[tool.harness.variants.gpu]\ndevice = "cuda"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(project, environ={})
    assert caught.value.one_line() == (
        "[tool.harness.variants.gpu] has no constraints "
        '(fix: add constraints = "constraints-gpu.txt", which `harness lock` writes)'
    )
