"""The shipped schema of [tool.harness] and the one check made against it at load."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness import config_schema
from harness.config import _MODULE_TABLES, OPTIONS, load_config
from harness.errors import ConfigError
from harness.fleet import ci_github, hosts
from harness.fleet.k8s import settings as k8s
from harness.integrations import mlflow_tracking
from harness.lint.settings import settings_from_table as lint_settings
from harness.project_init import InitRequest, init_project
from harness.trust import certify
from tests.conftest import MINIMAL_PYPROJECT, REPOSITORY

SCHEMA = config_schema.schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# Every key the schema describes, set once: what a project may write, and what each
# module that reads a table must accept.
EVERY_KEY = """\
[project]
name = "everything"
version = "0"

[tool.harness]
image = "everything"
python = "3.12"
platform = "x86_64-manylinux_2_36"
dependency-group = "experiments"
base = "bootstrap"
debian-suite = "bookworm"
debian-mirror = "http://deb.debian.org/debian"
index-url = "https://pypi.org/simple"
find-links = ["wheels", "more-wheels"]
ca-bundle = "ca.pem"
docker-host = "unix:///var/run/docker.sock"
engine = "podman"
registry = "registry.example.com/team"
host-name = "ci-1"
seed = 4294967295
profile = "portable"
threads = 2
timeout = 60
memory = "8g"

[tool.harness.variants.rocm]
dockerfile = "Dockerfile.rocm"
constraints = "constraints-rocm.txt"
replace = { torch = "torch==2.13.0+rocm" }
find-links = false
device = "cpu"

[tool.harness.experiments.train]
entry = "pkg.mod:train"
parameters = { steps = 3, rate = 0.5, nested = { a = [1, 2] } }
inputs = { data = "data.csv" }
outputs = { "*.pt" = "ulp:4", "metrics.json" = "" }
variant = "rocm"
vary = ["all", "-workdir"]

[tool.harness.experiments.script]
command = ["python", "train.py"]
outputs = ["model.npz"]
exclude = ["**/events.out.tfevents.*"]
stdout = "stdout.txt"

[tool.harness.policies]
"*.npy" = "bitwise"

[tool.harness.policies-across-devices]
"*.pt" = "close:rtol=1e-5,atol=1e-6"

[tool.harness.mlflow]
enabled = true
tracking-uri = "sqlite:///mlflow.db"
experiment-name = "everything"
artifact-location = "mlruns"

[tool.harness.lint]
select = ["HR0"]
ignore = ["HR012"]
paths = ["src"]

[tool.harness.certify]
trusted-keys = ["keys/ci.pub"]
threshold = 2
require = true

[tool.harness.verify]
vary = "all, -cpus"

[tool.harness.hosts]
gpu-box = "ssh://ci@gpu-box"
runner-2 = { url = "tcp://10.0.0.12:2376", ship = "registry", files = "bind", gpus = true }

[tool.harness.hosts.cluster]
kind = "slurm"
partition = "gpu"
account = "lab"
time = "00:30:00"
gres = "gpu:a100:1"
gpus = true
sbatch = ["--mem=16G"]
workdir = "/scratch/harness"
python = "3.11"
uv = "/opt/uv/bin/uv"
nodes = 3
node_key = "/etc/harness/{node}.key"

[tool.harness.ci]
runners = ["ubuntu-24.04", "ubuntu-22.04"]
variant = "rocm"
python = "3.12"
timeout-minutes = 30
install = "git+https://host/owner/harness@v0.1.0"

[tool.harness.k8s]
nodes = ["node-a"]
selectors = { "nvidia.com/gpu.product" = "NVIDIA-H100-80GB-HBM3" }
claim = "harness-records"
namespace = "ml-runs"
gpus = 1
"""


def _nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every schema node under ``node``, itself included."""
    yield node
    for child in node.get("properties", {}).values():
        yield from _nodes(child)
    for keyword in ("items", "propertyNames", "not", "additionalProperties"):
        if isinstance(node.get(keyword), Mapping):
            yield from _nodes(node[keyword])
    for keyword in ("anyOf", "oneOf"):
        for child in node.get(keyword, ()):
            yield from _nodes(child)


def _key_paths(node: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The paths of the keys the schema names (``*`` for a name the user chooses)."""
    for form in (node, *node.get("anyOf", ())):
        for key, child in form.get("properties", {}).items():
            yield (*path, key)
            yield from _key_paths(child, (*path, key))
        others = form.get("additionalProperties")
        if isinstance(others, Mapping):
            yield from _key_paths(others, (*path, "*"))


def _written_paths(table: Mapping[str, Any], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, value in table.items():
        generic = (*path, "*") if path in {("variants",), ("experiments",), ("hosts",)} else None
        here = generic or (*path, key)
        paths.add(here)
        if isinstance(value, dict) and path not in {("experiments", "*"), ("k8s",)}:
            paths |= _written_paths(value, here)
    return paths


def test_the_schema_is_valid_json_schema_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_schema_uses_only_keywords_the_check_implements() -> None:
    known = config_schema.KEYWORDS | config_schema.ANNOTATIONS
    used = {keyword for node in _nodes(SCHEMA) for keyword in node}
    assert used <= known, f"implement {sorted(used - known)} in harness.config_schema"


def test_every_key_is_described_and_every_pattern_has_a_title() -> None:
    # A pattern under `not` is said by the title of the node that holds the `not`.
    negated = {id(node["not"]) for node in _nodes(SCHEMA) if "not" in node}
    for node in (node for node in _nodes(SCHEMA) if id(node) not in negated):
        for key, child in node.get("properties", {}).items():
            assert child.get("description"), f"{key} has no description"
            assert child.get("examples") or child.get("type") == "object", f"{key}: no example"
        for rule in (node.get("pattern"), node.get("not", {}).get("pattern")):
            if rule is not None:
                assert node.get("title"), f"the pattern {rule} has no title to say it"
                re.compile(rule)


def test_the_scalar_options_and_the_tables_are_what_the_code_reads() -> None:
    tables = {"variants", "experiments", "policies", "policies-across-devices", *_MODULE_TABLES}
    assert set(SCHEMA["properties"]) == {option.key for option in OPTIONS} | tables


def test_a_table_with_every_key_is_valid_and_every_module_reads_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(EVERY_KEY)
    table = tomllib.loads(EVERY_KEY)["tool"]["harness"]
    # The table above really sets every key the schema names.
    assert _written_paths(table) >= set(_key_paths(SCHEMA))
    assert VALIDATOR.is_valid(table)
    config = load_config(tmp_path, environ={})
    assert config.experiments["train"].parameters["nested"] == {"a": [1, 2]}
    assert config.variant("rocm").find_links is False
    assert set(hosts.configured(config)) == {"gpu-box", "runner-2", "cluster"}
    assert hosts.configured(config)["runner-2"].gpus is True
    cluster = hosts.configured(config)["cluster"].slurm
    assert cluster is not None
    assert (cluster.gres, cluster.nodes, cluster.workdir) == (
        "gpu:a100:1",
        3,
        Path("/scratch/harness"),
    )
    assert ci_github.settings_from_table(config.table("ci")).timeout_minutes == 30
    assert mlflow_tracking.settings(config, environ={}).enabled is True
    assert lint_settings(config.table("lint")).paths == ("src",)
    assert certify.settings(config.table("certify"), tmp_path).threshold == 2
    assert config.experiments["train"].vary == ("all", "-workdir")
    assert config.experiments["script"].vary is None
    assert config.table("verify") == {"vary": ["all", "-cpus"]}
    image = "registry.example.com/team/everything@sha256:" + "a" * 64
    assert k8s.settings_from(config.table("k8s"), image=image).gpus == 1


def _readme_tables() -> list[str]:
    readme = (REPOSITORY / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.DOTALL)
    return [block for block in blocks if "[tool.harness" in block]


@pytest.mark.parametrize(
    "text",
    [
        (REPOSITORY / "pyproject.toml").read_text(),
        MINIMAL_PYPROJECT,
        EVERY_KEY,
        *_readme_tables(),
    ],
    ids=lambda text: text.split("\n", 1)[0][:30],
)
def test_the_project_the_fixtures_and_the_readme_examples_are_valid(text: str) -> None:
    table = tomllib.loads(text)["tool"]["harness"]
    config_schema.validate(table)
    assert VALIDATOR.is_valid(table)


def test_what_harness_init_writes_is_valid(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    init_project(tmp_path, InitRequest())
    table = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["harness"]
    config_schema.validate(table)
    assert VALIDATOR.is_valid(table)


# One bad value per table: the one line the user reads.
BAD = [
    (
        '[tool.harness.verify]\nvary = "all, -workdri"',
        '[tool.harness.verify] vary[1]: "-workdri" is not a variation: all, none, or one of '
        "cpus, hostname, timezone, locale, user, workdir, env, hashseed (-NAME leaves it out, "
        '+NAME adds it) (fix: write vary = ["all", "-workdir"])',
    ),
    (
        '[tool.harness.experiments.train]\nentry = "m:f"\nvary = ["all", "cpu"]',
        '[tool.harness.experiments.train] vary[1]: "cpu" is not a variation: all, none, or one '
        "of cpus, hostname, timezone, locale, user, workdir, env, hashseed (-NAME leaves it "
        'out, +NAME adds it) (fix: write vary = ["all", "-workdir"])',
    ),
    (
        "[tool.harness.verify]\nvary = []",
        "[tool.harness.verify] vary: expected a non-empty list, got an empty list "
        '(fix: write vary = ["all", "-workdir"])',
    ),
    (
        'python = "3"',
        '[tool.harness] python: "3" is not a Python version like 3.11 (fix: write python = "3.11")',
    ),
    (
        'seed = "22"',
        '[tool.harness] seed: expected an integer, got "22" (fix: write seed = 0)',
    ),
    (
        "seed = 4294967296",
        "[tool.harness] seed: expected at most 4294967295, got 4294967296 (fix: write seed = 0)",
    ),
    (
        'profile = "fast"',
        '[tool.harness] profile: expected one of strict, portable, got "fast" '
        '(fix: write profile = "strict")',
    ),
    (
        "find-links = [1]",
        "[tool.harness] find-links[0]: expected a string, got 1 "
        '(fix: write find-links = ["wheels"])',
    ),
    (
        "variants = 3",
        "[tool.harness] variants: expected a table, got 3 "
        "(fix: write it as [tool.harness.variants])",
    ),
    (
        '[tool.harness.variants.cpu]\ndevice = "tpu"',
        '[tool.harness.variants.cpu] device: expected one of cpu, cuda, got "tpu" '
        '(fix: write device = "cpu")',
    ),
    (
        "[tool.harness.variants.cpu]\nreplace = { torch = 2 }",
        "[tool.harness.variants.cpu.replace] torch: expected a string, got 2 "
        '(fix: write torch = "torch==2.13.0+cpu")',
    ),
    (
        "[tool.harness.experiments.t]\nentry = 3",
        "[tool.harness.experiments.t] entry: expected a string, got 3 "
        '(fix: write entry = "package.module:function")',
    ),
    (
        "[tool.harness.experiments.t]\nparameters = { steps = 3 }",
        "[tool.harness.experiments.t] needs exactly one of entry or command "
        '(fix: write entry = "package.module:function" or command = ["python", "train.py"])',
    ),
    (
        "[tool.harness.experiments]\nt = 3",
        "[tool.harness.experiments] t: expected a table, got 3 "
        "(fix: write it as [tool.harness.experiments.t])",
    ),
    (
        '[tool.harness.policies]\n"*.pt" = 4',
        '[tool.harness.policies] "*.pt": expected a string, got 4 (fix: write "*.pt" = "ulp:4")',
    ),
    (
        '[tool.harness.policies-across-devices]\n"*.pt" = true',
        '[tool.harness.policies-across-devices] "*.pt": expected a string, got true '
        '(fix: write "*.pt" = "close:rtol=1e-5,atol=1e-6")',
    ),
    (
        '[tool.harness.mlflow]\nenabled = "yes"',
        '[tool.harness.mlflow] enabled: expected true or false, got "yes" '
        "(fix: write enabled = true)",
    ),
    (
        '[tool.harness.lint]\nselect = "HR001"',
        '[tool.harness.lint] select: expected a list, got "HR001" (fix: write select = ["HR001"])',
    ),
    (
        '[tool.harness.lint]\nselct = ["HR001"]',
        "unknown key 'selct' in [tool.harness.lint] "
        "(fix: remove it or use one of: ignore, paths, select)",
    ),
    (
        "[tool.harness.certify]\nthreshold = 0",
        "[tool.harness.certify] threshold: expected at least 1, got 0 (fix: write threshold = 2)",
    ),
    (
        "[tool.harness.verify]\nhosts = 2",
        "unknown key 'hosts' in [tool.harness.verify] (fix: remove it or use one of: vary)",
    ),
    (
        '[tool.harness.hosts.gpu1]\nurl = "ssh://gpu1"\nport = 22',
        "unknown key 'port' in [tool.harness.hosts.gpu1] "
        "(fix: remove it or use one of: files, gpus, ship, url)",
    ),
    (
        '[tool.harness.hosts.gpu1]\nurl = "ssh://gpu1"\ngpus = "yes"',
        '[tool.harness.hosts.gpu1] gpus: expected true or false, got "yes" '
        "(fix: write gpus = true)",
    ),
    (
        "[tool.harness.hosts]\nb = 3",
        "[tool.harness.hosts] b: expected a string or a table, got 3 "
        '(fix: write b = "ssh://user@machine")',
    ),
    (
        '[tool.harness.hosts]\nb = { ship = "registry" }',
        '[tool.harness.hosts.b] has no url (fix: add url = "ssh://user@machine")',
    ),
    (
        '[tool.harness.hosts]\nlocal = "ssh://b"',
        "[tool.harness.hosts]: the name 'local' is not allowed (fix: use letters, digits, "
        "'.', '_' and '-', starting with a letter or digit, no '..', at most 100 characters, "
        "and not local, which always names this machine's engine)",
    ),
    (
        '[tool.harness.experiments."x/../../../outside"]\nentry = "m:f"',
        "[tool.harness.experiments]: the name 'x/../../../outside' is not allowed (fix: use "
        "letters, digits, '.', '_' and '-', starting with a letter or digit, no '..', at most "
        "100 characters: an experiment's name becomes part of its runs' folder names)",
    ),
    (
        '[tool.harness.experiments.t]\nentry = "m:f"\noutputs = ["/etc/hostname"]',
        '[tool.harness.experiments.t] outputs[0]: "/etc/hostname" is not a glob relative to '
        "the output folder (not absolute, no '..') "
        '(fix: write outputs = ["model.npz", "metrics.json"])',
    ),
    (
        '[tool.harness.experiments.t]\nentry = "m:f"\noutputs = { "a/../../x" = "" }',
        "[tool.harness.experiments.t.outputs]: the name 'a/../../x' is not allowed "
        "(fix: use a glob inside the output folder: not absolute, no '..' component, "
        "no backslash)",
    ),
    (
        '[tool.harness.ci]\nrunners = ["${{ github.event.pull_request.title }}"]',
        '[tool.harness.ci] runners[0]: "${{ github.event.pull_request.title }}" is not a '
        "runner label (letters, digits, '.', '_' and '-') "
        '(fix: write runners = ["ubuntu-24.04", "ubuntu-22.04"])',
    ),
    (
        '[tool.harness.ci]\nrunners = ["a", "a"]',
        '[tool.harness.ci] runners: names "a" twice '
        '(fix: write runners = ["ubuntu-24.04", "ubuntu-22.04"])',
    ),
    (
        '[tool.harness.ci]\ninstall = "a\\nb"',
        '[tool.harness.ci] install: "a\\nb" is not a requirement on one line '
        '(fix: write install = "git+https://host/owner/harness@v0.1.0")',
    ),
    (
        '[tool.harness.k8s]\nclaim = "Records"',
        '[tool.harness.k8s] claim: "Records" is not a PersistentVolumeClaim name (lowercase '
        "letters, digits, '-' and '.') (fix: write claim = \"harness-records\")",
    ),
    (
        "[tool.harness.k8s]\nselectors = { gpu = 1 }",
        "[tool.harness.k8s.selectors] gpu: expected a string, got 1 "
        '(fix: write gpu = "NVIDIA-H100-80GB-HBM3")',
    ),
]


@pytest.mark.parametrize(("toml", "line"), BAD, ids=[toml for toml, _ in BAD])
def test_a_bad_value_is_one_line_naming_its_key_and_the_fix(
    project: Path, toml: str, line: str
) -> None:
    head = '[project]\nname = "demo"\nversion = "0"\n\n[tool.harness]\nimage = "demo"\n'
    text = head + toml + "\n"
    (project / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(project, environ={})
    assert caught.value.one_line() == line
    # The library that defines JSON Schema refuses it too: the check is the schema's.
    assert not VALIDATOR.is_valid(tomllib.loads(text)["tool"]["harness"])


def test_the_first_problem_in_the_file_is_the_one_reported() -> None:
    table = tomllib.loads('threads = 0\nseed = -1\n[ci]\nrunners = "x"\n')
    with pytest.raises(ConfigError, match=r"threads: expected at least 1"):
        config_schema.validate(table)


def test_integers_are_integers_as_toml_keeps_them() -> None:
    for value in (True, 1.0, "1"):
        with pytest.raises(ConfigError, match="threads: expected an integer"):
            config_schema.validate({"threads": value})


def test_a_long_value_is_cut_so_the_message_stays_short() -> None:
    with pytest.raises(ConfigError) as caught:
        config_schema.validate({"python": "3" * 500})
    assert len(caught.value.one_line()) < 200


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("python", "3.12"),
        ("python", "3"),
        ("python", "3.x"),
        ("base", "bootstrap"),
        ("base", "debian:12"),
        ("base", "debian@sha256:" + "a" * 64),
        ("memory", "512m"),
        ("memory", "8G"),
        ("memory", "0"),
        ("memory", "lots"),
        ("profile", "portable"),
        ("profile", "fast"),
        ("seed", "4294967295"),
        ("seed", "4294967296"),
        ("threads", "0"),
        ("threads", "4"),
        ("timeout", "0"),
    ],
)
def test_the_schema_and_the_check_of_other_sources_agree(
    project: Path, key: str, value: str
) -> None:
    """A value from the environment or the command line is checked by config's own rules;
    the schema must say the same of it in pyproject.toml."""
    try:
        load_config(project, {key: value}, environ={})
        by_the_cascade = True
    except ConfigError:
        by_the_cascade = False
    typed = int(value) if key in {"seed", "threads", "timeout"} else value
    assert VALIDATOR.is_valid({key: typed}) == by_the_cascade
