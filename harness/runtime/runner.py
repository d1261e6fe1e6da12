"""Run one experiment inside the image and record what happened in ``runtime.json``.

The order matters: Python's ``random`` is seeded and the post-import hook installed before
the experiment's module is imported, so every framework it imports has its seeds and
switches set before the experiment's own code sees it. After the experiment the switches
are read back, the machine is fingerprinted, and the record is written atomically, whether
the experiment succeeded, failed or was interrupted.

Mistakes in how the project's code meets harness (an entry whose module is not in the
project, a function that does not exist or does not take ``output``, ``seed``, ``inputs``
and the parameters, a module the image lacks) are found before the experiment starts and
recorded as one line naming the cause and the fix, not as a traceback to decipher.

Exit status: 0 succeeded; 1 the experiment raised; a command's own status (128+N when a
signal killed it, 127 not found, 126 not executable); 2 a bad spec, an entry that cannot
be called, a missing input or a record that could not be written; 130 SIGINT; 143 SIGTERM.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import inspect
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from harness import atomic
from harness.runtime import (
    determinism,
    explain,
    fingerprint,
    hooks,
    outputs,
    project_view,
    spec,
    startup,
)
from harness.runtime.frameworks import Settings, Switchboard

SCHEMA = "harness.runtime/v1"
RECORD = "runtime.json"
DEFAULT_META = Path("/harness/meta")
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_TROUBLE = 2
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
# How long a command gets to exit after the signal that stopped the run is passed on:
# Docker's default grace before SIGKILL is 10 s, and the record must be written in it.
_COMMAND_GRACE_S = 5.0
# The variables recorded in runtime.json: those that change a run's arithmetic, its
# thread pools, its devices or what it imports. Not PATH, HOME or HOSTNAME, which vary
# between hosts without changing a result.
_RECORDED_PREFIXES = (
    "HARNESS_",
    "PYTHON",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "BLIS_",
    "ONEDNN_",
    "DNNL_",
    "ATEN_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "PYTORCH_",
    "CUBLAS_",
    "CUDNN_",
    "CUDA_",
    "NVIDIA_",
    "NCCL_",
    "TF_",
    "XLA_",
    "KERAS_",
)
_RECORDED_NAMES = frozenset({"LD_LIBRARY_PATH", "LD_PRELOAD", "VIRTUAL_ENV"})
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# The lines of a command's output kept to explain its failure, and how long the copy of its
# output may take to drain once it has exited (a process it left behind may hold the pipe).
_TAIL_LINES = 200
_DRAIN_S = 5.0
# Where the startup hook of a command's Python processes writes what each read back.
_PROCESS_REPORTS = "python-processes"


class EntryError(Exception):
    """The entry cannot be called as declared: the cause, and the fix."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.message} (fix: {self.fix})"


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, so that an experiment's ``except Exception``
    cannot swallow it."""


@dataclass
class Outcome:
    status: str = "failed"
    exit_code: int = EXIT_FAILED
    error: str | None = None
    metrics: dict[str, object] | None = None
    import_s: float | None = None
    experiment_s: float | None = None
    # A command's processes, as their startup hooks reported them (see startup); None for
    # an entry, which the runtime's own process seeds and reads back.
    observed: dict[str, Any] | None = None
    violations: list[str] = field(default_factory=list)
    seeding: dict[str, Any] | None = None
    # What the output folder leaves out of an MLflow store, one line per kind.
    set_aside: list[str] = field(default_factory=list)

    def end(self, status: str, exit_code: int, error: str | None = None) -> None:
        self.status, self.exit_code, self.error = status, exit_code, error


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.runtime SPEC``: run the spec's experiment; returns the exit status."""
    started = time.perf_counter()
    environ = dict(os.environ)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        _say("usage: python -m harness.runtime SPEC")
        return EXIT_TROUBLE
    path = Path(arguments[0])
    try:
        run_spec = spec.load(path)
    except spec.SpecError as error:
        _say(str(error))
        outcome = Outcome()
        outcome.end("failed", EXIT_TROUBLE, _one_line(error))
        record = _record(
            None,
            outcome,
            environ=environ,
            observed={},
            violations=[],
            machine=_fingerprint(None),
            started=started,
        )
        return _write_record(_meta_of_unreadable(path) / RECORD, record, EXIT_TROUBLE)
    return execute(run_spec, started=started, environ=environ)


def execute(
    run_spec: spec.RunSpec,
    *,
    started: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``run_spec``'s experiment in this process, write its record, return the status.

    ``environ`` is the environment the process started with (libraries set variables of
    their own when imported; what the record keeps is what the host passed).
    """
    started = time.perf_counter() if started is None else started
    environ = dict(os.environ) if environ is None else environ
    settings = Settings(
        seed=run_spec.seed,
        threads=run_spec.threads,
        profile=run_spec.profile,
        switches=run_spec.switches,
    )
    random.seed(run_spec.seed)
    board = Switchboard(settings)
    # Each framework gets its seeds and switches the moment it is first imported (see
    # hooks): importing all of them up front would make a torch run pay TensorFlow's
    # seconds of import, and the experiment never sees a framework not yet switched.
    finder = hooks.install(board.callbacks())
    outcome = Outcome()
    laid: project_view.Laid | None = None
    with _SignalGuard() as guard:
        try:
            laid = _lay_out_project(run_spec)
            if run_spec.command is None:
                _run_entry(run_spec, outcome)
            else:
                _run_command(run_spec, outcome)
        except Terminated:
            _say("terminated by SIGTERM")
            outcome.end("interrupted", EXIT_SIGTERM, "terminated by SIGTERM")
        except KeyboardInterrupt:
            _say("interrupted by SIGINT")
            outcome.end("interrupted", EXIT_SIGINT, "interrupted by SIGINT")
        except SystemExit as exit_:
            _system_exit(exit_, outcome)
        except EntryError as error:
            _say(error.one_line())
            outcome.end("failed", EXIT_TROUBLE, error.one_line())
        except ModuleNotFoundError as error:
            # Imported while the experiment ran: a module the image does not have.
            traceback.print_exc()
            problem = _missing_dependency(error, run_spec.experiment)
            outcome.end("failed", EXIT_FAILED, problem.one_line())
        except Exception as error:
            traceback.print_exc()
            outcome.end("failed", EXIT_FAILED, _raised(error))
        finally:
            # The experiment is over: no further import may trigger a callback, and a
            # signal arriving from now on must not cost the record.
            hooks.uninstall(finder)
            guard.ignore()
        _keep_outputs(run_spec, laid, outcome)
        observed, violations = _read_back(run_spec, board, outcome, environ)
        record = _record(
            run_spec,
            outcome,
            environ=environ,
            observed=observed,
            violations=violations,
            machine=_fingerprint(run_spec.threads),
            started=started,
        )
        return _write_record(run_spec.meta / RECORD, record, outcome.exit_code)


def _keep_outputs(run_spec: spec.RunSpec, laid: project_view.Laid | None, outcome: Outcome) -> None:
    """Bring in what the run wrote in the project view, then set aside what no output
    glob names: what the collection brought in is judged by the globs like the rest."""
    if laid is not None:
        _collect_from_project(run_spec, laid, outcome)
        _check_project_unchanged(run_spec, laid, outcome)
    _set_aside(run_spec)


def _check_project_unchanged(
    run_spec: spec.RunSpec, laid: project_view.Laid, outcome: Outcome
) -> None:
    """Fail a run that changed the project through the view's links to its large files (a
    read-only mount refuses such a write; the host executor's project is writable)."""
    if run_spec.project_source is None:
        return
    changed = project_view.changed_links(run_spec.project_source, laid)
    if not changed:
        return
    problem = (
        f"the project's {', '.join(changed[:3])} changed during the run: the run wrote to "
        "a large file of the project (or it was edited meanwhile); write results to the "
        "output folder ($HARNESS_OUTPUT), or declare the file as an input"
    )
    _say(problem)
    if outcome.status == "succeeded":
        outcome.end("failed", EXIT_TROUBLE, problem)


def _read_back(
    run_spec: spec.RunSpec, board: Switchboard, outcome: Outcome, environ: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """What the frameworks' switches and the environment were while the experiment ran,
    and every way they departed from what the spec asked."""
    observed, violations = board.observe()
    if outcome.seeding is not None:  # a command: its processes read back, not this one
        observed, violations = outcome.observed or {}, outcome.violations
    expected = determinism.environment(
        run_spec.seed,
        run_spec.profile,
        run_spec.threads,
        run_spec.device,
        switches=run_spec.switches,
    )
    violations = determinism.check_environment(expected, environ) + violations
    if not run_spec.switches:
        violations.append("the determinism switches were left off on purpose")
    for violation in violations:
        _say(f"violation: {violation}")
    return observed, violations


def _run_entry(run_spec: spec.RunSpec, outcome: Outcome) -> None:
    module_name, function_path = run_spec.entry_parts
    if not _inputs_present(run_spec, outcome):
        return
    for root in import_roots(run_spec.project):
        if str(root) not in sys.path:
            # Appended, not prepended: the host starts Python with -P so that a project
            # folder holding a harness/ of its own cannot shadow the runtime in the image.
            sys.path.append(str(root))
    run_spec.output.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    try:
        module = _import_entry_module(module_name, run_spec)
        function = _resolve(module, function_path, run_spec)
        _check_signature(function, run_spec)
    finally:
        outcome.import_s = time.perf_counter() - clock
    clock = time.perf_counter()
    try:
        result = function(
            output=run_spec.output,
            seed=run_spec.seed,
            inputs=dict(run_spec.inputs),
            **run_spec.parameters,
        )
    finally:
        outcome.experiment_s = time.perf_counter() - clock
    outcome.metrics = metrics_of(result)
    outcome.end("succeeded", EXIT_SUCCEEDED)


def _set_aside(run_spec: spec.RunSpec) -> None:
    """Move what the outputs do not name out of the output folder, as the user that wrote
    it (the host's user may not move a file out of a folder the experiment made)."""
    if not run_spec.output.is_dir():
        return
    try:
        moved = outputs.set_aside(
            run_spec.output, run_spec.meta / outputs.UNLISTED, run_spec.outputs, run_spec.exclude
        )
    except (OSError, ValueError) as error:  # the host lists what is left, or refuses it
        _say(f"could not set aside the files outputs does not name: {error}")
        return
    if moved:
        _say(f"set aside {len(moved)} file(s) that outputs does not name (not compared)")


def _lay_out_project(run_spec: spec.RunSpec) -> project_view.Laid | None:
    """The writable view of the project the experiment runs in, when the spec asks for one."""
    if run_spec.project_source is None or run_spec.project is None:
        return None
    try:
        return project_view.lay_out(run_spec.project_source, run_spec.project)
    except (project_view.ViewError, OSError) as error:
        raise EntryError(
            f"the project's writable view could not be laid out: {error}",
            "keep large data out of the project folder (declare it as an input), then run again",
        ) from None


def _collect_from_project(
    run_spec: spec.RunSpec, laid: project_view.Laid, outcome: Outcome
) -> None:
    """Bring what the run wrote next to its code (``./mlruns``) into the output folder, for
    the output globs that name it."""
    if run_spec.project is None:
        return
    try:
        collected = project_view.collect(
            run_spec.project, laid, run_spec.output, run_spec.project_outputs
        )
    except (project_view.ViewError, OSError) as error:
        _say(f"outputs written in the project could not be kept: {error}")
        if outcome.status == "succeeded":
            outcome.end("failed", EXIT_TROUBLE, f"outputs written in the project: {error}")
        return
    if collected.kept:
        _say(
            f"kept {len(collected.kept)} file(s) the run wrote in the project, in the output folder"
        )
    for line in collected.set_aside:
        _say(f"set aside (recorded, not compared): {line}")
    outcome.set_aside = collected.set_aside


def _where(run_spec: spec.RunSpec) -> str:
    return f"entry under [tool.harness.experiments.{run_spec.experiment}]"


def import_roots(project: Path | None) -> list[Path]:
    """Where entries' modules are imported from: the project's root, and its src/ folder
    in the "src layout" (packages under src/, which an editable install would put on the
    path; the image does not install the project, so the runtime does it here)."""
    if project is None:
        return []
    source = project / "src"
    if source.is_dir() and not source.is_symlink() and not (source / "__init__.py").exists():
        return [project, source]
    return [project]


def _import_entry_module(module_name: str, run_spec: spec.RunSpec) -> object:
    """The entry's module, or an EntryError that tells a missing module from a missing
    dependency of the module."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            traceback.print_exc()
            path = module_name.replace(".", "/")
            raise EntryError(
                f"the entry {run_spec.entry!r} names the module {module_name!r}, which is not "
                "in the project",
                f"correct the {_where(run_spec)}, or add {path}.py (or the package "
                f"{path}/) under the project's root or its src/, where entries are imported "
                "from",
            ) from None
        traceback.print_exc()
        raise _missing_dependency(error, run_spec.experiment) from None


def _missing_dependency(error: ModuleNotFoundError, experiment: str) -> EntryError:
    missing = (error.name or str(error)).split(".")[0]
    return EntryError(
        f"the experiment {experiment!r} imports {missing!r}, which is neither in the image "
        "nor in the project",
        "add the distribution that provides it to the experiments dependency group "
        "([dependency-groups] in pyproject.toml), then `harness lock` and `harness build`",
    )


def _resolve(module: object, path: str, run_spec: spec.RunSpec) -> Callable[..., object]:
    target = module
    for name in path.split("."):
        if not hasattr(target, name):
            defined = _functions_of(module)
            known = f" (it defines {', '.join(defined)})" if defined else ""
            raise EntryError(
                f"the entry {run_spec.entry!r} names {path!r}, which module "
                f"{getattr(module, '__name__', '?')!r} does not define{known}",
                f"correct the {_where(run_spec)}, or define {path} in the module",
            )
        target = getattr(target, name)
    if not callable(target):
        raise EntryError(
            f"the entry {run_spec.entry!r} is a {type(target).__name__}, not a function",
            f"point the {_where(run_spec)} at a function",
        )
    return target


def _functions_of(module: object) -> list[str]:
    """The public functions a module defines itself, at most five, for a message."""
    name = getattr(module, "__name__", None)
    return sorted(
        key
        for key, value in vars(module).items()
        if inspect.isfunction(value) and not key.startswith("_") and value.__module__ == name
    )[:5]


def _check_signature(function: Callable[..., object], run_spec: spec.RunSpec) -> None:
    """Refuse, before anything runs, a function that cannot take what harness passes."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # no signature to read (a builtin, say): the call itself will tell
    arguments = {"output": None, "seed": None, "inputs": None, **run_spec.parameters}
    try:
        signature.bind(**arguments)
    except TypeError as error:
        parameters = ", ".join(sorted(run_spec.parameters))
        extra = f", {parameters}" if parameters else ""
        raise EntryError(
            f"the entry {run_spec.entry!r} cannot be called as harness calls it, with the "
            f"keyword arguments output, seed, inputs{extra}: {error}",
            f"define it as def {run_spec.entry_parts[1].rsplit('.', 1)[-1]}(output, seed, "
            f"inputs{extra}) (or take **parameters), or correct parameters under "
            f"[tool.harness.experiments.{run_spec.experiment}]",
        ) from None


def _run_command(run_spec: spec.RunSpec, outcome: Outcome) -> None:
    if run_spec.command is None or not _inputs_present(run_spec, outcome):
        return
    run_spec.output.mkdir(parents=True, exist_ok=True)
    reports = run_spec.meta / _PROCESS_REPORTS
    # Reports left from an earlier run in the same folder must not count as this one's.
    shutil.rmtree(reports, ignore_errors=True)
    environment = _command_environment(run_spec, reports)
    command = list(run_spec.command)
    program = command[0]
    # Each stream's last lines apart: read by two threads, a traceback on stderr would
    # otherwise be cut by whatever stdout flushed meanwhile.
    tails: dict[int, collections.deque[str]] = {
        fd: collections.deque(maxlen=_TAIL_LINES) for fd in (1, 2)
    }
    kept = _KeptOutput(run_spec.output, run_spec.stdout)
    if kept.error is not None:
        outcome.end("failed", EXIT_TROUBLE, kept.error)
        return
    clock = time.perf_counter()
    try:
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        kept.close()
        outcome.end("failed", 127, f"command not found: {program}")
        return
    except PermissionError:
        kept.close()
        outcome.end("failed", 126, f"command is not executable: {program}")
        return
    copies = [
        _copy_output(stream, target, tails[target], kept if target == 1 else None)
        for stream, target in ((process.stdout, 1), (process.stderr, 2))
        if stream is not None
    ]
    try:
        returncode = process.wait()
    except Terminated:
        _stop(process, signal.SIGTERM)
        raise
    except KeyboardInterrupt:
        _stop(process, signal.SIGINT)
        raise
    finally:
        outcome.experiment_s = time.perf_counter() - clock
        for copy in copies:
            copy.join(_DRAIN_S)
        kept.close()
        outcome.observed, outcome.violations, outcome.seeding = startup.summary(
            startup.collect(reports)
        )
    if returncode == 0 and kept.error is not None:
        outcome.end("failed", EXIT_TROUBLE, kept.error)
    elif returncode == 0:
        outcome.end("succeeded", EXIT_SUCCEEDED)
    else:
        # stderr last: its traceback, or its last error line, explains best.
        _end_failed(outcome, returncode, [*tails[1], *tails[2]])


def _end_failed(outcome: Outcome, returncode: int, tail: Sequence[str]) -> None:
    """End a command that exited with ``returncode`` (not 0), or was killed."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:  # a real-time signal, which has no name
            name = f"signal {-returncode}"
        outcome.end("failed", 128 - returncode, f"command was killed by {name}")
    else:
        outcome.end("failed", returncode, command_failure(returncode, tail))


def _command_environment(run_spec: spec.RunSpec, reports: Path) -> dict[str, str]:
    """The command's environment: the host's, the run's HARNESS_* values, and what makes
    every Python process it starts seed itself."""
    environment = dict(os.environ)
    environment.update(
        {
            "HARNESS_OUTPUT": str(run_spec.output),
            "HARNESS_SEED": str(run_spec.seed),
            "HARNESS_PARAMETERS": json.dumps(run_spec.parameters, sort_keys=True),
            "HARNESS_INPUTS": json.dumps(
                {name: str(path) for name, path in run_spec.inputs.items()}, sort_keys=True
            ),
            # Every Python process the command starts seeds itself (see startup).
            "PYTHONPATH": startup.python_path(
                environment.get("PYTHONPATH"), import_roots(run_spec.project)
            ),
            **startup.environment(
                seed=run_spec.seed,
                threads=run_spec.threads,
                profile=run_spec.profile,
                switches=run_spec.switches,
                reports=reports,
            ),
        }
    )
    if run_spec.project is not None:
        # The project's folder (its writable view in a container), for commands that must
        # run from it whatever the working directory, as MLflow Projects' entry points do.
        environment["HARNESS_PROJECT"] = str(run_spec.project)
    return environment


def command_failure(returncode: int, tail: Sequence[str]) -> str:
    """The one-line error of a command that exited with ``returncode``: the line of its
    output that explains it, and the fix when that is a write the read-only project
    refused, or a download the network did not allow."""
    line = explain.explaining_line(tail)
    if line is None:
        return f"command exited with status {returncode}"
    if explain.read_only_write(line):
        fix = explain.read_only_fix("$HARNESS_OUTPUT (the output folder)")
        return f"command exited with status {returncode}: {line} (fix: {fix})"
    if explain.network_refused(tail):
        return f"command exited with status {returncode}: {line} (fix: {explain.NO_NETWORK_FIX})"
    return f"command exited with status {returncode}: {line}"


class _KeptOutput:
    """The file of the output folder that keeps a command's standard output (``stdout``
    in its experiment), or nothing when none is asked for. Made before the command
    starts, in a folder only the runtime has written to, and never through a link."""

    def __init__(self, output: Path, name: str | None) -> None:
        self.fd: int | None = None
        self.error: str | None = None
        # A child the command left behind may still write through the copying thread
        # when the run ends: closing and writing exclude each other, so no write ever
        # lands in whatever file reuses the closed descriptor.
        self._lock = threading.Lock()
        if name is None:
            return
        self._name = name
        path = output / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            self.error = f"cannot keep the standard output in {name}: {error.strerror or error}"

    def write(self, data: bytes) -> None:
        with self._lock:
            if self.fd is None:
                return
            try:
                _write_all(self.fd, data)
            except OSError as error:
                # A kept output cut short (a full disk) is no artifact: the run fails.
                self.error = f"cannot keep the standard output in {self._name}: {error.strerror}"
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _copy_output(
    stream: Any, fd: int, tail: collections.deque[str], kept: _KeptOutput | None = None
) -> threading.Thread:
    """Pass a command's output on as it comes (so the log holds it in order), into the
    file that keeps it when one does, and keep its last lines to explain a failure."""

    def copy() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(stream.fileno(), 65536)
            except OSError:
                break
            if not chunk:
                break
            with contextlib.suppress(OSError):
                _write_all(fd, chunk)
            if kept is not None:
                kept.write(chunk)
            pending += chunk
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            tail.extend(line.decode("utf-8", "replace") for line in lines)
            pending = pending[-65536:]
        if pending:
            tail.append(pending.decode("utf-8", "replace"))
        stream.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _stop(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Pass the signal that stopped the run on to the command, and wait for it briefly."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)
    try:
        process.wait(timeout=_COMMAND_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _inputs_present(run_spec: spec.RunSpec, outcome: Outcome) -> bool:
    missing = [f"{name} ({path})" for name, path in run_spec.inputs.items() if not path.exists()]
    if missing:
        _say(f"inputs missing: {', '.join(missing)}")
        outcome.end("failed", EXIT_TROUBLE, f"inputs missing: {', '.join(missing)}")
    return not missing


def _system_exit(exit_: SystemExit, outcome: Outcome) -> None:
    code = exit_.code
    if code is None or code == 0:
        outcome.end("succeeded", EXIT_SUCCEEDED)
    elif isinstance(code, int):
        outcome.end("failed", code, f"the experiment exited with status {code}")
    else:
        outcome.end("failed", EXIT_FAILED, " ".join(str(code).split()))


def metrics_of(result: object) -> dict[str, object] | None:
    """An entry's return value as metrics: a mapping made JSON-safe, else None."""
    if not isinstance(result, Mapping):
        return None
    metrics = jsonable(result, "metrics")
    return metrics if isinstance(metrics, dict) else None


def jsonable(value: object, where: str) -> object:
    """``value`` as plain JSON values. Scalars with ``item()`` (numpy scalars, one-element
    tensors) become Python numbers; non-finite floats become the strings NaN, Infinity and
    -Infinity, as JSON has no literal for them (a diverged loss must not make the record
    unreadable to strict parsers). Anything else raises TypeError naming where it was."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[repr(value)]
    if isinstance(value, Mapping):
        converted: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool):
                raise TypeError(f"{where} has a key of type {type(key).__name__}")
            converted[str(key)] = jsonable(item, f"{where}.{key}")
        return converted
    if isinstance(value, list | tuple):
        return [jsonable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    item_of = getattr(value, "item", None)
    if callable(item_of):
        try:
            scalar = item_of()
        except (TypeError, ValueError, RuntimeError):
            pass
        else:
            if isinstance(scalar, bool | int | float | str):
                return jsonable(scalar, where)
    raise TypeError(f"{where} is a {type(value).__name__}, which JSON cannot hold")


def recorded_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that can change a run, sorted by name."""
    return {
        name: value
        for name, value in sorted(environ.items())
        if name in _RECORDED_NAMES or name.startswith(_RECORDED_PREFIXES)
    }


def _record(
    run_spec: spec.RunSpec | None,
    outcome: Outcome,
    *,
    environ: Mapping[str, str],
    observed: Mapping[str, object],
    violations: Sequence[str],
    machine: Mapping[str, object],
    started: float,
) -> dict[str, object]:
    return {
        "schema": SCHEMA,
        "run_id": None if run_spec is None else run_spec.run_id,
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "metrics": outcome.metrics,
        "environment": recorded_environment(environ),
        "observed": dict(observed),
        "violations": list(violations),
        "seeding": outcome.seeding
        or {"how": "entry", "python_processes": 1 if run_spec is not None else 0, "note": None},
        "fingerprint": dict(machine),
        "set_aside": list(outcome.set_aside),
        "timings": {
            "import_s": _seconds(outcome.import_s),
            "experiment_s": _seconds(outcome.experiment_s),
            "total_s": _seconds(time.perf_counter() - started),
        },
    }


def _fingerprint(threads: int | None) -> dict[str, object]:
    """The fingerprint, or what went wrong taking it: it must never cost the record."""
    try:
        return fingerprint.capture(threads)
    except Exception as error:
        traceback.print_exc()
        return {"schema": fingerprint.SCHEMA, "error": _one_line(error)}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _write_record(path: Path, record: Mapping[str, object], exit_code: int) -> int:
    """Write the record atomically; returns ``exit_code``, or 2 when it cannot be written."""
    # default=str: a value from a framework that JSON cannot hold must not cost the record.
    text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"
    try:
        atomic.write_bytes(path, text.encode("utf-8"))
    except OSError as error:
        _say(f"cannot write {path}: {error}")
        return EXIT_TROUBLE
    return exit_code


def _meta_of_unreadable(path: Path) -> Path:
    """Where to record a spec that did not validate: its own meta when it names one."""
    with contextlib.suppress(OSError, ValueError):
        document: Any = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and isinstance(document.get("meta"), str):
            return Path(document["meta"])
    return DEFAULT_META


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


class _SignalGuard:
    """While the experiment runs, SIGTERM raises Terminated and SIGINT KeyboardInterrupt;
    after ``ignore()`` both are ignored while the record is written; on exit the previous
    handlers return. Explicit handlers matter in a container: the runtime is PID 1 there,
    and the kernel drops the signals PID 1 has no handler for, so ``docker stop`` would
    otherwise wait out its grace period and SIGKILL the run before anything is recorded."""

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        # Handlers can only be installed from the main thread.
        self._active = threading.current_thread() is threading.main_thread()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if self._active:
            self._previous = {signum: signal.getsignal(signum) for signum in self._SIGNALS}
            signal.signal(signal.SIGTERM, _raise_terminated)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def ignore(self) -> None:
        if self._active:
            for signum in self._SIGNALS:
                signal.signal(signum, signal.SIG_IGN)

    def __exit__(self, *_: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _raised(error: Exception) -> str:
    """The one-line error of an entry that raised, with the fix when it wrote into the
    read-only project, or needed the network."""
    message = _one_line(error)
    if explain.is_read_only(error):
        message += f" (fix: {explain.read_only_fix('the output folder passed as output=')})"
    elif explain.network_refused_error(error):
        message += f" (fix: {explain.NO_NETWORK_FIX})"
    return message


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _say(message: str) -> None:
    print(f"harness runtime: {message}", file=sys.stderr, flush=True)
