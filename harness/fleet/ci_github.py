"""`harness ci github`: a GitHub Actions workflow that reproduces the experiments on several
hosts and certifies the result.

The workflow is built as a plain dict and dumped with PyYAML, so that what it says is
checked here (and by the tests) rather than in a template. It is a pure function of the
options, ``[tool.harness.ci]`` and the project's configuration: `--check` regenerates it
and compares, which lets CI insist that the committed file is current.

``[tool.harness.ci]`` keys: ``runners`` (runner labels, one matrix leg each), ``variant``,
``python`` (the Python that runs harness on the runner), ``timeout-minutes`` (of each
leg) and ``install`` (how the runners get harness: ``project`` when it is one of the
project's own locked dependencies, else a requirement ``uv tool install`` takes, such as
``git+https://host/owner/harness@TAG``). Flags override them; keeping the choices in the
table lets `--check` need no flags.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import config_schema
from harness.config import Config
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError

TABLE = "[tool.harness.ci]"
# install = "project": harness comes from the project's own uv.lock, with `uv sync --locked`.
INSTALL_PROJECT = "project"
DEFAULT_RUNNERS: tuple[str, ...] = ("ubuntu-latest",)
DEFAULT_VARIANT = "cpu"
DEFAULT_PYTHON = "3.11"
# A leg builds the image (the frameworks are gigabytes) and runs every experiment.
DEFAULT_TIMEOUT_MINUTES = 120
CERTIFY_TIMEOUT_MINUTES = 30
DEFAULT_OUTPUT = Path(".github/workflows/harness.yml")
SIGNING_KEY_ENV = "HARNESS_SIGNING_KEY"
CERTIFICATE = "harness-certificate.intoto.json"

# Every action by the full commit of a release tag (the tag follows as a comment in the
# file): a tag can be moved to other code, a commit cannot. Each is the commit its tag
# names in the action's own repository.
ACTION_PINS: Mapping[str, tuple[str, str]] = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "astral-sh/setup-uv": ("20cfd1bf945f4377ade1205e4dbc17946fc9a30d", "v10.0.1"),
    "github/codeql-action/upload-sarif": ("8aad20d150bbac5944a9f9d289da16a4b0d87c1e", "v4.36.2"),
}
CHECKOUT = "actions/checkout"
SETUP_PYTHON = "actions/setup-python"
UPLOAD_ARTIFACT = "actions/upload-artifact"
DOWNLOAD_ARTIFACT = "actions/download-artifact"
SETUP_UV = "astral-sh/setup-uv"
UPLOAD_SARIF = "github/codeql-action/upload-sarif"
# The uv the runners install: a version the pinned setup-uv knows the sha256 of for every
# platform, so that the download is checked against a hash fixed in that commit.
UV_VERSION = "0.12.4"
# The GitHub environment the signing job is bound to: the signing key is a secret of this
# environment alone, and its protection rules (required reviewers, the branches allowed
# to deploy) decide which runs may use it.
SIGNING_ENVIRONMENT = "harness-signing"
# Each leg signs its runs with a key of its own (harness counts hosts by signing key, never
# by name): the HARNESS_HOST_KEY secret of the environment named after its runner label.
HOST_KEY_ENV = "HARNESS_HOST_KEY"
HOST_ENVIRONMENT_PREFIX = "harness-host-"
# The legs' public keys, PEM one after another: a configuration variable the repository's
# admins set (outside the repository, so a commit cannot add a key to the trusted ones).
HOST_KEYS_VARIABLE = "HARNESS_HOST_KEYS"
# Why each permission is granted, written beside it in the workflow.
_PERMISSION_REASONS = {
    "contents: read": "check out the repository",
    "security-events: write": "upload the lint findings to code scanning",
    "actions: read": "code scanning reads the run's details in private repositories",
}
LINT_TIMEOUT_MINUTES = 15
LINT_REPORT = "harness-lint.sarif"

_PATH_PART = re.compile(r"[A-Za-z0-9_.-]+")
_PYTHON_VERSION = re.compile(r"3\.\d+(\.\d+)?")


class StaleWorkflow(HarnessError):
    """The workflow on disk is not what `harness ci github` generates (an answer, not trouble)."""

    exit_code = EXIT_DIFFERS


@dataclass(frozen=True)
class CISettings:
    """What the workflow is generated from."""

    runners: tuple[str, ...] = DEFAULT_RUNNERS
    variant: str = DEFAULT_VARIANT
    python: str = DEFAULT_PYTHON
    timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES
    install: str = INSTALL_PROJECT

    @property
    def harness(self) -> str:
        """How a step calls harness: through the project's environment, or the tool."""
        return "uv run harness" if self.install == INSTALL_PROJECT else "harness"


def settings_from_table(
    table: Mapping[str, Any], python: str = DEFAULT_PYTHON, *, depends_on_harness: bool = True
) -> CISettings:
    """``[tool.harness.ci]``, whose shape the schema checked, with its defaults.

    ``python`` is the default for the runner's Python: the project's own version, checked
    here as the table's would be. ``depends_on_harness`` says whether harness is one of
    the project's locked dependencies; when it is not, the table must say how the runners
    install it.
    """
    chosen_python = table.get("python", python)
    check_python(chosen_python, f"{TABLE} python")
    return CISettings(
        runners=tuple(table.get("runners", DEFAULT_RUNNERS)),
        variant=table.get("variant", DEFAULT_VARIANT),
        python=chosen_python,
        timeout_minutes=table.get("timeout-minutes", DEFAULT_TIMEOUT_MINUTES),
        install=_install(table, depends_on_harness),
    )


def _install(table: Mapping[str, Any], depends_on_harness: bool) -> str:
    install = table.get("install")
    if install is None:
        if depends_on_harness:
            return INSTALL_PROJECT
        spec = installed_requirement() or "git+https://HOST/OWNER/harness@TAG"
        raise ConfigError(
            "harness is not one of this project's dependencies, so the workflow cannot "
            "install it with `uv sync`",
            f'say how the runners get it: install = "{spec}" under {TABLE}',
        )
    return str(install).strip()


def depends_on_harness(pyproject: Mapping[str, Any]) -> bool:
    """Whether harness is the project itself or one of its declared dependencies (so that
    `uv sync --locked` installs it from the project's lock)."""
    project = pyproject.get("project") or {}
    if str(project.get("name", "")).lower() == "harness":
        return True
    declared = [*project.get("dependencies", [])]
    for group in (project.get("optional-dependencies") or {}).values():
        declared += group
    for group in (pyproject.get("dependency-groups") or {}).values():
        declared += [item for item in group if isinstance(item, str)]
    return any(_name_of(str(item)) == "harness" for item in declared)


def _name_of(requirement: str) -> str:
    """The distribution a requirement names, normalised (PEP 503)."""
    found = _REQUIREMENT_NAME.match(requirement.strip())
    return re.sub(r"[-_.]+", "-", found.group(0) if found else "").lower()


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9._-]*")


def installed_requirement() -> str | None:
    """How the running harness was installed, as a requirement another machine can
    install: its VCS URL at the exact commit, or the URL of its archive, from the
    installer's direct_url.json (PEP 610). None for a local file or folder, or no record."""
    try:
        text = importlib.metadata.distribution("harness").read_text("direct_url.json")
        document = json.loads(text) if text else None
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    url = str(document.get("url", ""))
    if not url.startswith(("https://", "http://", "ssh://")):
        return None
    public = re.sub(r"//[^/@]+@", "//", url)  # never a token or user into the workflow
    vcs = document.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and vcs.get("commit_id"):
        return f"git+{public}@{vcs['commit_id']}"
    return public if "archive_info" in document else None


def check_runners(labels: list[str] | tuple[str, ...], where: str) -> tuple[str, ...]:
    """Refuse runner labels that would break the workflow or inject into it: anything but
    a plain name (a label names its leg's artifact and is written into the file), or one
    given twice."""
    seen: set[str] = set()
    for label in labels:
        config_schema.check_name(label, where)
        if label in seen:
            raise ConfigError(
                f"{where} names {label!r} twice",
                "give each runner once: its leg's artifact is named after it",
            )
        seen.add(label)
    return tuple(labels)


def check_python(version: str, where: str) -> None:
    if not _PYTHON_VERSION.fullmatch(version):
        raise ConfigError(
            f"{where} must be a Python 3 version like 3.11, not {version!r}", "write 3.11"
        )


def _setup_steps(settings: CISettings) -> list[dict[str, Any]]:
    """Check out, install Python and harness: the first steps of every job."""
    if settings.install == INSTALL_PROJECT:
        # --locked: fail rather than resolve anew when uv.lock is stale, so every leg runs
        # the same harness with the same dependencies.
        install: dict[str, Any] = {"name": "Install harness", "run": "uv sync --locked"}
    else:
        # As a tool: harness is not the project's dependency, and the project's own
        # environment is not needed (experiments run in the image). The requirement comes
        # from the configuration, so it reaches the shell as a variable, never as text.
        install = {
            "name": "Install harness",
            "env": {"HARNESS_INSTALL": settings.install},
            "run": 'uv tool install "$HARNESS_INSTALL"',
        }
    return [
        # The steps never push, so no token is left in .git/config for later steps to read.
        {"uses": _pinned(CHECKOUT), "with": {"persist-credentials": False}},
        {"uses": _pinned(SETUP_PYTHON), "with": {"python-version": settings.python}},
        {
            "name": "Install uv",
            "uses": _pinned(SETUP_UV),
            # No cache: a cache that a pull request's run could fill is not read by others.
            "with": {"version": UV_VERSION, "enable-cache": False},
        },
        install,
    ]


def _pinned(action: str) -> str:
    """``action@<full commit>``; :func:`_annotate` writes its tag beside it."""
    return f"{action}@{ACTION_PINS[action][0]}"


def workflow(settings: CISettings, check_flags: list[str]) -> dict[str, Any]:
    """The workflow document. ``check_flags`` are the flags of the `harness ci github
    --check` line (those this file was generated with) that keeps the file current.

    Nothing from the configuration is written into a ``run:`` script: names and labels
    reach the shell through ``env:``, as variables the shell never parses as code.
    """
    harness = settings.harness
    variant_env = {"HARNESS_CI_VARIANT": settings.variant}
    if check_flags:
        # Each flag is one word (check_flags refuses spaces): split, never evaluated.
        check: dict[str, Any] = {
            "name": "Check this workflow",
            "env": {"HARNESS_CI_FLAGS": " ".join(check_flags)},
            "shell": "bash",
            "run": 'read -ra flags <<< "$HARNESS_CI_FLAGS"\n'
            f'{harness} ci github --check "${{flags[@]}}"\n',
        }
    else:
        check = {"name": "Check this workflow", "run": f"{harness} ci github --check"}
    run_steps = [
        *_setup_steps(settings),
        {"name": "Check the machine", "run": f"{harness} doctor"},
        {"name": "Check the constraints", "run": f"{harness} lock --check"},
        check,
        {
            "name": "Build the image",
            "env": variant_env,
            "run": f'{harness} build --variant "$HARNESS_CI_VARIANT"',
        },
        {
            "name": "Run the experiments",
            "env": {
                # Recorded in each run record as the host that ran it: a hosted runner's
                # own host name is random.
                "HARNESS_HOST_NAME": "${{ matrix.runner }}",
                # The leg's key signs each run as it finishes; empty (a fork, a runner
                # without a key) leaves the runs unsigned, which collect then refuses.
                HOST_KEY_ENV: f"${{{{ secrets.{HOST_KEY_ENV} }}}}",
                **variant_env,
            },
            "run": f'{harness} run --variant "$HARNESS_CI_VARIANT"',
        },
        {
            "name": "Upload the run records",
            # Also after a failed run: its record says why, and the other legs still compare.
            "if": "always()",
            "uses": _pinned(UPLOAD_ARTIFACT),
            "with": {
                # upload-artifact refuses two artifacts of one name in a workflow run.
                "name": "harness-runs-${{ matrix.runner }}",
                "path": ".harness/runs/",
                "if-no-files-found": "error",
                # It skips hidden files and folders unless told, and .harness is one.
                "include-hidden-files": True,
            },
        },
    ]
    download = {
        "name": "Download the run records",
        "uses": _pinned(DOWNLOAD_ARTIFACT),
        # Each leg's artifact lands in collected/<its name>/: one folder per host.
        "with": {"pattern": "harness-runs-*", "path": "collected"},
    }
    trusted = "${{ runner.temp }}/trusted-hosts"
    trust_hosts = {
        "name": "Trust the legs' keys",
        "env": {
            HOST_KEYS_VARIABLE: f"${{{{ vars.{HOST_KEYS_VARIABLE} }}}}",
            "HARNESS_TRUSTED_FOLDER": trusted,
        },
        "shell": "bash",
        # One .pub file per PEM block of the variable; nothing of it reaches the shell as code.
        "run": 'mkdir -p "$HARNESS_TRUSTED_FOLDER"\n'
        f"printf '%s\\n' \"${HOST_KEYS_VARIABLE}\" | "
        'awk -v folder="$HARNESS_TRUSTED_FOLDER" '
        '\'/-----BEGIN/ { n++ } n { print > (folder "/leg-" n ".pub") }\'\n',
    }
    collect = {
        "name": "Compare the hosts",
        # Every leg's runs must carry a signature by one of the legs' keys: hosts are
        # counted by key, and a run signed by no trusted key is refused.
        "env": {"HARNESS_TRUSTED_KEYS": trusted},
        "run": f"{harness} collect collected/*",
    }
    collect_steps = [
        *_setup_steps(settings),
        download,
        trust_hosts,
        collect,
        {
            "name": "Upload the verification",
            # Also when the hosts differ: the document says which artifacts moved.
            "if": "always()",
            "uses": _pinned(UPLOAD_ARTIFACT),
            "with": {
                "name": "harness-verification",
                "path": ".harness/verifications/",
                "if-no-files-found": "warn",
                "include-hidden-files": True,
            },
        },
    ]
    sign = "\n".join(
        [
            "umask 077",
            "trap 'rm -f \"$RUNNER_TEMP/harness.key\"' EXIT",
            f'printf \'%s\\n\' "${SIGNING_KEY_ENV}" > "$RUNNER_TEMP/harness.key"',
            f'{harness} certify --key "$RUNNER_TEMP/harness.key" --output {CERTIFICATE}',
        ]
    )
    certify_steps = [
        *_setup_steps(settings),
        download,
        trust_hosts,
        collect,
        {
            "name": "Sign the certificate",
            # Secrets cannot appear in `if:`; the runner merges a step's env into the env
            # context before it evaluates the step's condition, so the key stays in this
            # step alone. Without the secret (forks, first setup) the step is skipped.
            "if": f"env.{SIGNING_KEY_ENV} != ''",
            "env": {
                SIGNING_KEY_ENV: f"${{{{ secrets.{SIGNING_KEY_ENV} }}}}",
                "HARNESS_TRUSTED_KEYS": trusted,
            },
            "shell": "bash",
            "run": sign + "\n",
        },
        {
            "name": "Upload the certificate",
            "uses": _pinned(UPLOAD_ARTIFACT),
            "with": {
                "name": "harness-certificate",
                "path": CERTIFICATE,
                "if-no-files-found": "ignore",
            },
        },
    ]
    lint_steps = [
        *_setup_steps(settings),
        {
            "name": "Lint the experiments",
            "shell": "bash",
            # Exit 1 (findings) still uploads them: code scanning shows and gates them; exit
            # 2 (trouble) fails the job.
            "run": f"{harness} lint --format sarif --output {LINT_REPORT} || [ $? -eq 1 ]",
        },
        {
            "name": "Upload the findings to code scanning",
            # A pull request from a fork gets a read-only token, which cannot upload.
            "if": "github.event_name != 'pull_request' || "
            "github.event.pull_request.head.repo.full_name == github.repository",
            "uses": _pinned(UPLOAD_SARIF),
            "with": {"sarif_file": LINT_REPORT, "category": "harness-lint"},
        },
    ]
    read_only = {"contents": "read"}
    return {
        "name": "harness",
        "on": {"push": None, "pull_request": None, "workflow_dispatch": None},
        "permissions": dict(read_only),
        "concurrency": {
            "group": "harness-${{ github.ref }}",
            # A new push to a pull request supersedes its last run; runs of a branch finish,
            # so that every commit there gets its verdict.
            "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
        },
        "jobs": {
            "lint": {
                "name": "Lint the experiments",
                "runs-on": settings.runners[0],
                "timeout-minutes": LINT_TIMEOUT_MINUTES,
                # security-events: write to upload; actions: read for private repositories.
                "permissions": {
                    "contents": "read",
                    "security-events": "write",
                    "actions": "read",
                },
                "steps": lint_steps,
            },
            "run": {
                "name": "Run on ${{ matrix.runner }}",
                "strategy": {"fail-fast": False, "matrix": {"runner": list(settings.runners)}},
                "runs-on": "${{ matrix.runner }}",
                # The environment that holds this leg's own signing key (HARNESS_HOST_KEY).
                "environment": HOST_ENVIRONMENT_PREFIX + "${{ matrix.runner }}",
                "timeout-minutes": settings.timeout_minutes,
                "permissions": dict(read_only),
                "steps": run_steps,
            },
            "collect": {
                "name": "Compare the hosts",
                "needs": "run",
                # Not `always()`: a cancelled run should stop here too. When one leg fails,
                # the legs that finished are still gathered and compared.
                "if": "${{ !cancelled() }}",
                "runs-on": settings.runners[0],
                "timeout-minutes": CERTIFY_TIMEOUT_MINUTES,
                "permissions": dict(read_only),
                "steps": collect_steps,
            },
            "certify": {
                "name": "Sign the certificate",
                # Only once the hosts agree, and only in the protected environment that
                # holds the key: nothing else in the workflow can read it.
                "needs": "collect",
                # When the hosts that finished agree (a failed leg upstream does not skip
                # it, as a plain `needs` would); code from a pull request never runs where
                # the key is.
                "if": "${{ !cancelled() && needs.collect.result == 'success' "
                "&& github.event_name != 'pull_request' }}",
                "runs-on": settings.runners[0],
                "timeout-minutes": CERTIFY_TIMEOUT_MINUTES,
                "environment": SIGNING_ENVIRONMENT,
                "permissions": dict(read_only),
                "steps": certify_steps,
            },
        },
    }


def command_line(flags: list[str], *, check: bool = False) -> str:
    """`harness ci github [--check] FLAG...`, quoted for a shell."""
    words = ["harness", "ci", "github", *(["--check"] if check else []), *flags]
    return " ".join(shlex.quote(word) for word in words)


def render(settings: CISettings, flags: list[str] | None = None) -> str:
    """The workflow file's text: a header that says how to regenerate it, then the YAML."""
    command = command_line(flags or [])
    check = command_line(flags or [], check=True)
    header = [
        "# Generated by `harness ci github`; regenerate it rather than edit it (the choices",
        "# belong in [tool.harness.ci] in pyproject.toml):",
        f"#   {command}",
        "# The run job checks that it is current with (exit 1 when stale):",
        f"#   {check}",
        "#",
        "# `lint` runs `harness lint` and uploads its SARIF report to GitHub code scanning.",
        "# Each runner label is one leg of the `run` job: it builds the pinned image, runs",
        "# every experiment, signs each run with the HARNESS_HOST_KEY secret of its own",
        f"# environment ({HOST_ENVIRONMENT_PREFIX}LABEL) and uploads the run records.",
        "# `collect` gathers every leg's records with `harness collect`, trusting the legs'",
        f"# public keys in the {HOST_KEYS_VARIABLE} variable (hosts count by key), and fails",
        "# when a run is unsigned or signed by another key, or the hosts' artifacts differ. When",
        "# they agree, `certify` signs the result with `harness certify`, in the",
        f"# {SIGNING_ENVIRONMENT} environment, whose {SIGNING_KEY_ENV} secret holds a private",
        "# key, ed25519 or ECDSA P-256 (PEM, from `harness keys generate`, whose --type picks",
        "# it); without it, no signature.",
    ]
    body = _dump(workflow(settings, list(flags or [])))
    return "\n".join(header) + "\n\n" + _annotate(_space_sections(body))


def _annotate(body: str) -> str:
    """Comments YAML cannot carry: each action's release tag beside its commit, and why
    each permission is granted."""
    tags = {f"{action}@{commit}": tag for action, (commit, tag) in ACTION_PINS.items()}
    lines = []
    for line in body.splitlines():
        stripped = line.strip().removeprefix("- ")
        comment = ""
        if stripped.startswith("uses: ") and stripped[6:] in tags:
            comment = f"  # {tags[stripped[6:]]}"
        elif stripped in _PERMISSION_REASONS:
            comment = f"  # {_PERMISSION_REASONS[stripped]}"
        lines.append(line + comment)
    return "\n".join(lines) + "\n"


def _dump(document: dict[str, Any]) -> str:
    yaml = importlib.import_module("yaml")
    # A subclass of its own, so that these representers do not change PyYAML's SafeDumper
    # for the rest of the process.
    dumper: Any = type("WorkflowDumper", (yaml.SafeDumper,), {})

    def represent_none(representer: Any, _value: None) -> Any:
        # `push:` as GitHub's documentation writes it, not `push: null`.
        return representer.represent_scalar("tag:yaml.org,2002:null", "")

    def represent_text(representer: Any, text: str) -> Any:
        # Multi-line scripts as literal blocks, readable as the shell will see them.
        style = "|" if "\n" in text else None
        return representer.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    def increase_indent(emitter: Any, flow: bool = False, indentless: bool = False) -> Any:
        # Lists indented under their key, as GitHub's documentation writes workflows.
        return yaml.SafeDumper.increase_indent(emitter, flow, False)

    def ignore_aliases(_representer: Any, _data: Any) -> bool:
        # Never &anchors and *aliases for repeated values: plain, independent steps.
        return True

    dumper.increase_indent = increase_indent
    dumper.ignore_aliases = ignore_aliases
    dumper.add_representer(type(None), represent_none)
    dumper.add_representer(str, represent_text)
    # PyYAML quotes any plain scalar that a YAML 1.1 reader would take for something other
    # than a string, so the key `on` comes out as 'on' and reads back as "on", not True;
    # GitHub reads either form. The width keeps each expression and command on one line.
    text = yaml.dump(document, Dumper=dumper, sort_keys=False, default_flow_style=False, width=1000)
    return str(text)


def _space_sections(body: str) -> str:
    """A blank line between top-level sections and between jobs, for the reader."""
    spaced: list[str] = []
    in_jobs = False
    for line in body.splitlines():
        top_level = bool(line) and not line[0].isspace()
        job = in_jobs and line.startswith("  ") and not line[2].isspace()
        if spaced and (top_level or (job and spaced[-1] != "jobs:")):
            spaced.append("")
        if top_level:
            in_jobs = line == "jobs:"
        spaced.append(line)
    return "\n".join(spaced) + "\n"


def _flags(
    chosen: CISettings, configured: CISettings, output: Path, project_root: Path
) -> list[str]:
    """The flags that regenerate this workflow: those that differ from the configuration."""
    flags: list[str] = []
    if chosen.runners != configured.runners:
        for runner in chosen.runners:
            flags += ["--runner", runner]
    if chosen.variant != configured.variant:
        flags += ["--variant", chosen.variant]
    if chosen.python != configured.python:
        flags += ["--python", chosen.python]
    relative = output.relative_to(project_root)
    if relative != DEFAULT_OUTPUT:
        # The workflow passes its flags to its own check as words of one variable.
        if not all(_PATH_PART.fullmatch(part) and part != ".." for part in relative.parts):
            raise ConfigError(
                f"--output {relative.as_posix()} is not a path of plain names",
                "use letters, digits, '.', '_' and '-' in each folder and file name",
            )
        flags += ["--output", relative.as_posix()]
    return flags


def _output_path(config: Config, output: Path | None) -> Path:
    if output is None:
        return config.project_root / DEFAULT_OUTPUT
    path = output.resolve()
    if not path.is_relative_to(config.project_root):
        # The workflow checks itself with `--output` relative to the project, and GitHub
        # only reads workflows inside the repository.
        raise ConfigError(
            f"--output {output} is outside the project {config.project_root}",
            "write it under the project's .github/workflows, or print it with --stdout",
        )
    return path


def _pyproject(config: Config) -> dict[str, Any]:
    try:
        return tomllib.loads(config.pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # the config loader read it already; nothing here to add to its errors


def _read(path: Path) -> str | None:
    """The workflow on disk, or None when there is none yet."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise HarnessError(f"cannot read {path}: {error}", "check the file and its mode") from None


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Workflow:
    """The workflow `harness ci github` would write, and what is on disk now."""

    text: str
    path: Path
    # The path as the project names it, for messages.
    shown: str
    # The flags that regenerate it (`harness ci github --check` runs with them).
    flags: list[str]
    # The file on disk, or None when there is none yet.
    current: str | None

    @property
    def is_current(self) -> bool:
        return self.current == self.text


def plan(
    config: Config,
    *,
    runners: tuple[str, ...] = (),
    variant: str | None = None,
    python: str | None = None,
    output: Path | None = None,
) -> Workflow:
    """The workflow for ``config`` with the command line's choices over [tool.harness.ci]."""
    if python is not None:
        check_python(python, "--python")
    configured = settings_from_table(
        config.table("ci"),
        config.python or DEFAULT_PYTHON,
        depends_on_harness=depends_on_harness(_pyproject(config)),
    )
    chosen = CISettings(
        runners=check_runners(runners, "--runner") if runners else configured.runners,
        variant=variant or configured.variant,
        python=python if python is not None else configured.python,
        timeout_minutes=configured.timeout_minutes,
        install=configured.install,
    )
    config.variant(chosen.variant)  # an unknown variant fails here, naming the known ones
    path = _output_path(config, output)
    flags = _flags(chosen, configured, path, config.project_root)
    return Workflow(
        render(chosen, flags), path, _shown(path, config.project_root), flags, _read(path)
    )


def stale(workflow: Workflow) -> StaleWorkflow:
    """The error `--check` raises for a workflow that is missing or differs."""
    what = (
        "is missing" if workflow.current is None else "differs from what `harness ci github` writes"
    )
    return StaleWorkflow(
        f"{workflow.shown} {what}", f"run `{command_line(workflow.flags)}` and commit it"
    )


__all__ = [
    "CISettings",
    "StaleWorkflow",
    "Workflow",
    "command_line",
    "plan",
    "render",
    "settings_from_table",
    "stale",
    "workflow",
]
