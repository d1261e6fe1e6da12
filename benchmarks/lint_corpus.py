"""`harness lint` on real bodies of ML code: precision against findings judged once by hand,
and time against a baseline measured in the same run.

Three corpora nobody here wrote, each taken from its sdist on the package index when the
benchmark runs and never copied into this repository:

- scikit-learn 1.7.2's ``examples/`` (about 280 gallery scripts);
- opacus 1.5.2's ``examples/`` and ``benchmarks/`` (PyTorch training scripts: MNIST,
  CIFAR-10, IMDb, char-LSTM, DCGAN, layer benchmarks);
- trl 0.12.2's ``examples/`` (transformers and accelerate training scripts, dataset
  builders, research projects).

Each sdist is fetched by the URL the index's JSON API (PEP 691) gives and checked against
the sha256 pinned below, so every run lints the same bytes. Only regular ``*.py`` members
of the named folders are extracted, each path checked to stay inside the target.

``lint_corpus_expected.toml`` judges every finding, per corpus, as ``real`` (the
program's result differs from run to run, or between machines) or ``false`` (it cannot,
or it cannot be decided from the code), with the reason. The benchmark prints, per corpus:

- precision: real / (real + false) over the findings of this run; findings the file does
  not judge are listed as new (judge them and add them), judged real findings that are
  gone as missing;
- time: the median of three lint runs over each corpus, against the median time to read
  and parse the same files with ``ast.parse`` (the floor for any syntax-tree linter), and
  the time scaled to 300 files, wall clock and CPU (on a shared machine the wall clock
  includes waiting for a core); the CPU time counts the worker processes that analyse the
  programs when there are many files (:mod:`harness.lint.workers`), and the same lint in
  one process is timed alongside;
- what a user sees: ``harness lint`` run as a command on the same folders (the median
  of three), the interpreter's start and the imports included, and that start alone (the
  command on an empty folder). These times are not scaled: a command pays its start once,
  whatever the number of files.

The times above are measured in this process after one warm-up lint (imports done). The
load average is printed with them: on a shared machine, compare runs of similar load, or
the CPU times.

Goals: precision >= 90 % on each corpus, counting undecidable findings as false; under
3 s for 300 files.

    python benchmarks/lint_corpus.py [--cache DIR]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.lint import enabled_rules, lint_paths
from harness.lint.workers import MIN_FILES, available_cores


@dataclass(frozen=True)
class Corpus:
    package: str
    filename: str
    sha256: str
    folders: tuple[str, ...]


CORPORA = (
    Corpus(
        "scikit-learn",
        "scikit_learn-1.7.2.tar.gz",
        "20e9e49ecd130598f1ca38a1d85090e1a600147b9c02fa6f15d69cb53d968fda",
        ("examples",),
    ),
    Corpus(
        "opacus",
        "opacus-1.5.2.tar.gz",
        "167b66a5f7d5313df396dda143f21d2303b82e554b6798b30675a04103afaeb6",
        ("examples", "benchmarks"),
    ),
    Corpus(
        "trl",
        "trl-0.12.2.tar.gz",
        "bfe8c7d16c8bc0a82a81cc92439286a7857c1a55bb51d1f5b2f210e1897fc9fa",
        ("examples",),
    ),
)
INDEX = "https://pypi.org/simple"
EXPECTED = Path(__file__).with_name("lint_corpus_expected.toml")
MAX_MEMBER_BYTES = 2 * 1024 * 1024
ROUNDS = 3


def sdist(corpus: Corpus, cache: Path) -> Path:
    """The pinned sdist, from the cache or the index, its sha256 checked."""
    path = cache / corpus.filename
    if not path.is_file() or _sha256(path) != corpus.sha256:
        request = urllib.request.Request(  # noqa: S310 (a fixed https URL)
            f"{INDEX}/{corpus.package}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            listing = json.load(response)
        (entry,) = [f for f in listing["files"] if f["filename"] == corpus.filename]
        if entry["hashes"].get("sha256") != corpus.sha256:
            raise SystemExit(f"the index lists another sha256 for {corpus.filename}")
        partial = path.with_suffix(".partial")
        with urllib.request.urlopen(entry["url"], timeout=300) as response:  # noqa: S310
            partial.write_bytes(response.read())
        if _sha256(partial) != corpus.sha256:
            partial.unlink()
            raise SystemExit(f"{corpus.filename} does not have the pinned sha256")
        partial.replace(path)
    return path


def extract(archive: Path, folders: tuple[str, ...], target: Path) -> Path:
    """Extract ``*/<folder>/**/*.py`` into ``target/<folder>``; nothing else, nothing
    outside; returns ``target``."""
    root = target.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if (
                not member.isfile()
                or len(parts) < 3  # the package's folder, the folder, a file
                or parts[1] not in folders
                or not member.name.endswith(".py")
                or member.size > MAX_MEMBER_BYTES
                or any(part in ("", ".", "..") for part in parts)
            ):
                continue
            destination = target.joinpath(*parts[1:])
            if not destination.resolve().is_relative_to(root):
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read())
    return target


def measure(corpus: Corpus, archive: Path, scratch: Path, judged: dict[str, dict[str, str]]) -> int:
    """Lint one corpus, print its figures; returns the number of files."""
    root = extract(archive, corpus.folders, scratch / corpus.package)
    files = sorted(root.rglob("*.py"))
    rules = enabled_rules(["ALL"], [])
    parse_times, lint_times, lint_cpu, alone_times, alone_cpu = [], [], [], [], []
    targets = [root / folder for folder in corpus.folders]
    result = alone = None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for file in files:
            ast.parse(file.read_bytes(), filename=str(file))
        parse_times.append(time.perf_counter() - started)
        started, cpu = time.perf_counter(), _cpu()
        result = lint_paths(targets, rules, relative_to=root)
        lint_times.append(time.perf_counter() - started)
        lint_cpu.append(_cpu() - cpu)
        started, cpu = time.perf_counter(), _cpu()
        alone = lint_paths(targets, rules, relative_to=root, jobs=1)
        alone_times.append(time.perf_counter() - started)
        alone_cpu.append(_cpu() - cpu)
    assert result is not None and alone == result

    found = {
        f"{finding.path}:{finding.line}:{finding.rule}": finding for finding in result.findings
    }
    real = [key for key in found if judged.get(key, {}).get("verdict") == "real"]
    false = [key for key in found if judged.get(key, {}).get("verdict") == "false"]
    new = [key for key in found if key not in judged]
    missing = [k for k, v in judged.items() if v["verdict"] == "real" and k not in found]

    lint_s, parse_s = statistics.median(lint_times), statistics.median(parse_times)
    folders = ", ".join(f"{folder}/" for folder in corpus.folders)
    print(f"corpus      {corpus.package} sdist {corpus.filename}, {folders}: {len(files)} files")
    print(f"findings    {len(found)}: {len(real)} real, {len(false)} false, {len(new)} not judged")
    by_rule: dict[str, list[int]] = {}
    for key in found:
        counts = by_rule.setdefault(key.rsplit(":", 1)[1], [0, 0, 0])
        verdict = judged.get(key, {}).get("verdict")
        counts[0 if verdict == "real" else 1 if verdict == "false" else 2] += 1
    for rule, (r, f, n) in sorted(by_rule.items()):
        print(f"  {rule}     {r + f + n:3d}: {r} real, {f} false, {n} not judged")
    if found:
        # Findings not judged yet count as false until someone reads them.
        print(f"precision   {len(real) / len(found):.1%} (goal >= 90%)")
    for key in new:
        print(f"  new:      {key}  {found[key].message}")
    for key in false:
        print(f"  false:    {key}  ({judged[key]['why']})")
    for key in missing:
        print(f"  missing:  {key}  ({judged[key]['why']})")
    print(
        f"time        lint {lint_s:.2f} s, parse only {parse_s:.2f} s: "
        f"{lint_s / parse_s:.1f}x the parse baseline (median of {ROUNDS})"
    )
    # On a shared machine the wall time includes waiting for a core; the CPU time does not.
    cpu_s = statistics.median(lint_cpu)
    scale = 300 / len(files)
    workers = min(available_cores(), len(files)) if len(files) >= MIN_FILES else 1
    print(
        f"            {lint_s * scale:.2f} s per 300 files (goal < 3 s); "
        f"CPU time {cpu_s * scale:.2f} s per 300 files ({workers} process(es))"
    )
    print(
        f"            in one process: {statistics.median(alone_times) * scale:.2f} s per 300 "
        f"files, CPU time {statistics.median(alone_cpu) * scale:.2f} s"
    )
    wall, cpu_s = command_time(targets, root)
    print(
        f"command     harness lint {folders}: {wall:.2f} s, CPU time {cpu_s:.2f} s "
        f"(start included; median of {ROUNDS}); load average {_load()}"
    )
    print()
    return len(files)


def command_time(targets: list[Path], cwd: Path) -> tuple[float, float]:
    """The median wall and CPU time of ``harness lint TARGETS`` run as a command."""
    command = [sys.executable, "-m", "harness", "lint", *map(str, targets)]
    walls, cpus = [], []
    for _ in range(ROUNDS):
        started, cpu = time.perf_counter(), _cpu()
        finished = subprocess.run(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
        if finished.returncode not in (0, 1):
            raise SystemExit(f"harness lint failed: {finished.stderr.decode(errors='replace')}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="where the sdists are kept between runs")
    arguments = parser.parse_args()
    expected = tomllib.loads(EXPECTED.read_text())
    with tempfile.TemporaryDirectory(prefix="harness-lint-corpus-") as scratch:
        cache = arguments.cache or Path(scratch)
        cache.mkdir(parents=True, exist_ok=True)
        # Every download first: none runs while a lint is timed.
        archives = {corpus.package: sdist(corpus, cache) for corpus in CORPORA}
        empty = Path(scratch) / "empty"
        empty.mkdir()
        wall, cpu = command_time([empty], empty)
        bytecode = "not written" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "written"
        print(
            f"start       harness lint on an empty folder: {wall:.2f} s, CPU time {cpu:.2f} s "
            f"(bytecode {bytecode}); load average {_load()}"
        )
        print()
        for corpus in CORPORA:
            measure(
                corpus, archives[corpus.package], Path(scratch), expected.get(corpus.package, {})
            )


def _cpu() -> float:
    """CPU time of this process and of its ended children (the lint's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    main()
