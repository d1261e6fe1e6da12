"""Seeds and switches for every Python process a ``command`` experiment starts.

An entry is called in the runtime's own process, which seeds it and switches its frameworks
on import (see ``runner`` and ``hooks``). A command is another program: ``python train.py``
or a shell script that starts Python, which may start more (subprocesses, DataLoader
workers started with ``spawn``). Each of those interpreters gets the same treatment through
``sitecustomize``, which every interpreter imports at startup from its path: the runner
puts the folder ``site/`` of this package first on the command's ``PYTHONPATH`` and says
in ``HARNESS_STARTUP`` what to apply, and every process started from there inherits both.
Outside harness neither is set, and nothing here acts.

Each process seeds ``random`` at once, installs the post-import hook with the same
Switchboard as an entry, and at exit writes what it read back (switches, violations) to
the folder ``HARNESS_STARTUP`` names; the runner collects those reports. A process that
forks (DataLoader's default workers) shares its parent's seeded state and writes nothing.

Standard library only, like the rest of the runtime; importing this module costs nothing
beyond it, since it runs in every Python process of a command.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import json
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VARIABLE = "HARNESS_STARTUP"
# The folder that holds sitecustomize.py, put first on a command's PYTHONPATH.
SITE = Path(__file__).resolve().parent / "site"
# Reports one run reads back: a command that starts thousands of processes is bounded here.
MAX_REPORTS = 256
MAX_REPORT_BYTES = 1 << 20


def environment(
    *, seed: int, threads: int, profile: str, switches: bool, reports: Path
) -> dict[str, str]:
    """The variable that makes a command's Python processes seed themselves: what to
    apply, and where each process reports what it read back."""
    settings = {
        "seed": seed,
        "threads": threads,
        "profile": profile,
        "switches": switches,
        "reports": str(reports),
    }
    return {VARIABLE: json.dumps(settings, sort_keys=True)}


def python_path(existing: str | None, roots: Sequence[Path]) -> str:
    """``PYTHONPATH`` for a command: the hook's folder first, then what was there (the host
    executor's copy of the runtime), then the project's import roots (its folder, and its
    src/ in the "src layout"): ``python -m pkg.train`` and a script's ``import pkg`` find
    the project's code whatever the working folder, as a ``module:function`` entry does."""
    parts = [str(SITE), *(existing.split(os.pathsep) if existing else [])]
    parts.extend(str(root) for root in roots)
    return os.pathsep.join(dict.fromkeys(part for part in parts if part))


def activate(environ: Mapping[str, str] | None = None) -> bool:
    """Seed this process and switch its frameworks as they are imported, when harness asked
    for it; returns whether it did. Never raises: a broken hook must not break the program,
    and the missing report says that this process was not reached."""
    environ = os.environ if environ is None else environ
    text = environ.get(VARIABLE)
    if not text:
        return False
    try:
        settings = _settings(text)
        hooks, frameworks = _sibling("hooks"), _sibling("frameworks")
        random.seed(settings["seed"])
        board = frameworks.Switchboard(
            frameworks.Settings(
                seed=settings["seed"],
                threads=settings["threads"],
                profile=settings["profile"],
                switches=settings["switches"],
            )
        )
        hooks.install(board.callbacks())
        reports = Path(settings["reports"])
        pid = os.getpid()
        atexit.register(_report, board, reports, pid, time.time())
    except Exception as error:  # the program runs on; the runner sees no report
        print(f"harness startup hook: not applied: {error}", file=sys.stderr)
        return False
    return True


def _sibling(name: str) -> Any:
    """A module of the runtime, loaded by its file beside this one when the ``harness``
    package is not imported yet: both import the standard library only, and importing the
    package would cost every process a scan of the installed distributions."""
    qualified = f"harness.runtime.{name}"
    module = sys.modules.get(qualified)
    if module is not None:
        return module
    if "harness.runtime" in sys.modules:
        return importlib.import_module(qualified)
    spec = importlib.util.spec_from_file_location(qualified, Path(__file__).parent / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the runtime's {name} module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


def _settings(text: str) -> dict[str, Any]:
    settings = json.loads(text)
    if not isinstance(settings, dict):
        raise TypeError(f"{VARIABLE} is not an object")
    for key, kind in (("seed", int), ("threads", int), ("profile", str), ("reports", str)):
        if not isinstance(settings.get(key), kind):
            raise TypeError(f"{VARIABLE} has no {key}")
    settings["switches"] = settings.get("switches") is not False
    return settings


def _report(board: Any, reports: Path, pid: int, started: float) -> None:
    """Write this process's read-back; a forked child (another pid) inherits the handler
    but is its parent's state, and writes nothing."""
    if os.getpid() != pid:
        return
    try:
        observed, violations = board.observe()
        document = {
            "pid": pid,
            "started": started,
            "argv": [str(part) for part in sys.argv[:8]],
            "observed": observed,
            "violations": violations,
        }
        reports.mkdir(parents=True, exist_ok=True)
        name = f"{pid}-{time.time_ns()}"
        temporary = reports / f".{name}.tmp"
        temporary.write_text(json.dumps(document, default=str), encoding="utf-8")
        temporary.replace(reports / f"{name}.json")
    except Exception as error:
        print(f"harness startup hook: no report: {error}", file=sys.stderr)


def collect(reports: Path) -> list[dict[str, Any]]:
    """The reports the command's processes wrote, in the order the processes started,
    read within bounds: at most MAX_REPORTS plain files of MAX_REPORT_BYTES."""
    if not reports.is_dir() or reports.is_symlink():
        return []
    found: list[tuple[float, str, dict[str, Any]]] = []
    for path in sorted(reports.glob("*.json"))[:MAX_REPORTS]:
        try:
            if not path.is_file() or path.is_symlink():
                continue
            if path.lstat().st_size > MAX_REPORT_BYTES:
                continue
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict):
            started = document.get("started")
            when = float(started) if isinstance(started, int | float) else float("inf")
            found.append((when, path.name, document))
    return [document for _, _, document in sorted(found, key=lambda item: item[:2])]


def summary(reports: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """What a command's processes read back, as one run: the switches of the first process
    (the program the command started), every process's violations (each named by its
    program when more than one reported), and the record's ``seeding``."""
    if not reports:
        return (
            {},
            [],
            {
                "how": "environment only",
                "python_processes": 0,
                "note": "the command started no Python process that harness could reach: "
                "PYTHONHASHSEED and the thread counts applied, the frameworks' seeds and "
                "determinism switches could not",
            },
        )
    first = reports[0]
    observed = first.get("observed")
    violations: list[str] = []
    for report in reports:
        argv = report.get("argv") or []
        program = " ".join(str(part) for part in argv[:2]) if isinstance(argv, list) else ""
        for violation in report.get("violations") or []:
            text = str(violation)
            violations.append(text if len(reports) == 1 else f"{text} (in {program})")
    seeding = {"how": "startup hook", "python_processes": len(reports), "note": None}
    return (observed if isinstance(observed, dict) else {}), violations, seeding
