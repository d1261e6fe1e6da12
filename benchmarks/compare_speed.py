"""How fast `harness compare` is on large arrays, against hashing the same files.

In a temporary folder it writes two 200 MB float32 .npy files that differ by one ULP in
1000 places, a byte-identical copy of the first, and a copy in which every element differs
(the worst case: each one is measured, binned and checked); then it times, in one run and
with the page cache warm for everyone:

* harness compare on the differing pair, on the pair where every element differs and on
  the identical pair (wall time, and peak resident memory of the child process from
  ``os.wait4``, i.e. its ru_maxrss),
* ``sha256sum`` of both files of a pair (the cost of merely reading and hashing them),
  and ``cmp`` of the identical pair (the cost of merely reading and comparing them),
* harness compare on two folders of 100,000 small identical files against ``diff -r``
  (wall time and peak memory; the trees are built in the temporary folder and deleted),
* diffoscope on both pairs, when it is installed,
* the start of ``harness compare`` on two small identical files, against a bare Python
  start,

and prints the ratios. Targets: identical pair <= 1.5x cmp, every element differing
<= 0.6x sha256sum, differing pair <= 1.5x sha256sum, 100,000 small files <= 2x diff -r
in <= 200 MB, peak memory < 300 MB whatever the file size (a pair 4x smaller is measured
to show it), start-up < 0.3 s. It reports, it does not assert.

The files are written by a child process so that this one stays small: a child started
with vfork reports its parent's peak memory as its own.

harness is measured as an installed copy runs: with its bytecode cached (installers
compile it, or Python writes it on the first start). Where PYTHONDONTWRITEBYTECODE is set,
the children are started without it, after one warm-up start. ``--no-bytecode-cache``
starts them with no cache to read or write (an empty PYTHONPYCACHEPREFIX), so that every
start compiles every module it imports again (the figures then include that compilation).

    .venv/bin/python benchmarks/compare_speed.py [--size-mb 200] [--repeats 3] [--files 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DIFFERENCES = 1000
TARGET_DIFFERING = 1.5
TARGET_EVERY = 0.6
TARGET_IDENTICAL_CMP = 1.5
TARGET_TREE = 2.0
TARGET_TREE_MB = 200
TARGET_MEMORY_MB = 300
TARGET_START_S = 0.3


def harness_command() -> tuple[list[str], str]:
    """The installed `harness compare` when the CLI offers it, else the module entry point."""
    script = Path(sys.executable).with_name("harness")
    if script.exists():
        probe = subprocess.run(
            [str(script), "compare", "--help"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [str(script), "compare"], "harness compare"
    return [sys.executable, "-m", "harness.compare"], "python -m harness.compare"


def write_pair(folder: Path, size_mb: int) -> tuple[Path, Path, Path]:
    subprocess.run(
        [sys.executable, __file__, "--write", str(folder), "--size-mb", str(size_mb)], check=True
    )
    return folder / "a.npy", folder / "b.npy", folder / "same.npy"


def harness_executable() -> list[str]:
    """`harness` as users start it (the installed script), else its module."""
    script = Path(sys.executable).with_name("harness")
    return [str(script)] if script.exists() else [sys.executable, "-m", "harness"]


def _write(folder: Path, size_mb: int) -> None:
    import numpy as np  # noqa: PLC0415 (only the writer child pays for numpy)

    count = size_mb * 1_000_000 // 4
    rng = np.random.default_rng(0)
    data = rng.standard_normal(count, dtype=np.float32)
    a, b, same = folder / "a.npy", folder / "b.npy", folder / "same.npy"
    np.save(a, data)
    where = rng.choice(count, DIFFERENCES, replace=False)
    data[where] = np.nextafter(data[where], np.float32(np.inf))
    np.save(b, data)
    shutil.copyfile(a, same)
    every = np.load(a)
    np.save(folder / "every.npy", np.nextafter(every, np.float32(np.inf)))


def write_trees(folder: Path, files: int) -> tuple[Path, Path]:
    """Two equal trees of ``files`` small files, 1,000 to a folder (a run's logs and metrics
    at scale)."""
    roots = folder / "tree_a", folder / "tree_b"
    for root in roots:
        for index in range(files):
            sub = root / f"d{index // 1000:03d}"
            if index % 1000 == 0:
                sub.mkdir(parents=True)
            (sub / f"f{index:06d}.json").write_text(f'{{"step": {index}, "loss": 0.{index}}}\n')
    return roots


# The children's environment: see the module's docstring on bytecode.
CHILD_ENV: dict[str, str] | None = None


def use_bytecode_cache(cache: bool, scratch: Path) -> str:
    """Start the children with their bytecode cached, or, unless ``cache``, with none (an
    empty cache folder in ``scratch`` that is never written); says which."""
    global CHILD_ENV  # noqa: PLW0603 (set once, before the first child)
    if not cache:
        empty = scratch / "no-bytecode"
        empty.mkdir()
        CHILD_ENV = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPYCACHEPREFIX": str(empty),
        }
        return "compiled at every start (--no-bytecode-cache)"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return "cached"


def run(command: list[str]) -> tuple[float, float, int, str, float]:
    """Wall seconds, peak RSS in MB, exit status, stdout and CPU seconds (user and system)
    of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=CHILD_ENV
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024, process.returncode, output, cpu


# Best wall seconds, peak MB, exit status, best CPU seconds.
Timing = tuple[float, float, int, float]


def best(command: list[str], repeats: int) -> Timing:
    """The best of ``repeats`` runs. CPU seconds are printed beside wall seconds: on a
    machine that other work keeps busy, wall time measures the machine as much as the
    command, and the CPU time it took is the steadier figure."""
    runs = [run(command) for _ in range(repeats)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[0][2], min(r[4] for r in runs)


def warm(*paths: Path) -> None:
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(8 << 20):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="no bytecode cache: every start compiles the modules it imports",
    )
    options = parser.parse_args()
    if options.write is not None:
        _write(options.write, options.size_mb)
        return
    diffoscope = shutil.which("diffoscope")
    with tempfile.TemporaryDirectory(prefix="harness-compare-bench-") as scratch:
        folder = Path(scratch)
        bytecode = use_bytecode_cache(not options.no_bytecode_cache, folder)
        compare, label = harness_command()
        a, b, same = write_pair(folder, options.size_mb)
        warm(a, b, same)

        # Also the warm-up start that writes the bytecode cache, where it is written.
        found = run([*compare, str(a), str(b), "--json"])[3]
        (tensor,) = json.loads(found)["artifacts"][0]["tensors"]

        every = folder / "every.npy"
        warm(every)
        rows: dict[str, Timing] = {
            "compare, differing pair": best([*compare, str(a), str(b)], options.repeats),
            "compare, all elements": best([*compare, str(a), str(every)], options.repeats),
            "compare, identical pair": best([*compare, str(a), str(same)], options.repeats),
            "sha256sum, both files": best(["sha256sum", str(a), str(b)], options.repeats),
            "cmp, identical pair": best(["cmp", str(a), str(same)], options.repeats),
        }
        if diffoscope:
            for name, pair in (("differing", (a, b)), ("identical", (a, same))):
                rows[f"diffoscope, {name} pair"] = best([diffoscope, *map(str, pair)], 1)

        tiny_a, tiny_b = folder / "m1.json", folder / "m2.json"
        tiny_a.write_text('{"acc": 0.5}')
        tiny_b.write_text('{"acc": 0.5}')
        starts = {
            "python, bare start": best([sys.executable, "-c", "pass"], 5),
            "harness compare, start": best(
                [*harness_executable(), "compare", str(tiny_a), str(tiny_b)], 5
            ),
        }

        tree_a, tree_b = write_trees(folder, options.files)
        best(["diff", "-r", str(tree_a), str(tree_b)], 1)  # warm the inode and page caches
        rows["diff -r, small files"] = best(
            ["diff", "-r", str(tree_a), str(tree_b)], options.repeats
        )
        rows["compare, small files"] = best([*compare, str(tree_a), str(tree_b)], options.repeats)
        shutil.rmtree(tree_a)
        shutil.rmtree(tree_b)

        small = folder / "small"
        small.mkdir()
        small_a, small_b, _ = write_pair(small, max(1, options.size_mb // 4))
        warm(small_a, small_b)
        small_memory = best([*compare, str(small_a), str(small_b)], 1)[1]

    print(f"{options.size_mb} MB float32 .npy files, {DIFFERENCES} one-ULP differences")
    print(f"{options.files:,} small files in each of two folders")
    print(f"compare runs as: {label}; best of {options.repeats} runs, page cache warm")
    print(f"harness's bytecode: {bytecode}")
    print(
        f"found: {tensor['differing']} differing elements, max {tensor['max_ulp']} ULP, "
        f"max abs {tensor['max_abs']:.3g}"
    )
    print()
    print(f"{'':28} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'exit':>5}")
    for name, (seconds, memory, status, cpu) in {**rows, **starts}.items():
        print(f"{name:28} {seconds:8.3f} {cpu:8.3f} {memory:8.1f} {status:5d}")
    print_ratios(rows, starts, small_memory, diffoscope=bool(diffoscope))


def print_ratios(
    rows: dict[str, Timing],
    starts: dict[str, Timing],
    small_memory: float,
    *,
    diffoscope: bool,
) -> None:
    hashing = rows["sha256sum, both files"][0]
    every_time, every_memory, _, every_cpu = rows["compare, all elements"]
    differing_time, differing_memory, _, _ = rows["compare, differing pair"]
    identical_time, identical_memory, _, identical_cpu = rows["compare, identical pair"]
    cmp_time, cmp_cpu = rows["cmp, identical pair"][0], rows["cmp, identical pair"][3]
    tree_time, tree_memory, _, tree_cpu = rows["compare, small files"]
    diff_time, diff_cpu = rows["diff -r, small files"][0], rows["diff -r, small files"][3]
    hashing_cpu = rows["sha256sum, both files"][3]
    print()
    start = starts["harness compare, start"][0]
    print(
        f"identical pair / cmp: {identical_time / cmp_time:.2f}x "
        f"(target <= {TARGET_IDENTICAL_CMP}x); less the start-up of harness compare on two "
        f"tiny files: {max(identical_time - start, 0.0) / cmp_time:.2f}x; in CPU time: "
        f"{identical_cpu / cmp_cpu:.2f}x"
    )
    print(
        f"every element differing / sha256sum: {every_time / hashing:.2f}x "
        f"(target <= {TARGET_EVERY}x); in CPU time: {every_cpu / hashing_cpu:.2f}x"
    )
    print(
        f"small files / diff -r: {tree_time / diff_time:.2f}x (target <= {TARGET_TREE}x), "
        f"{tree_memory:.0f} MB (target <= {TARGET_TREE_MB} MB); in CPU time: "
        f"{tree_cpu / diff_cpu:.2f}x"
    )
    print(
        f"differing pair / sha256sum: {differing_time / hashing:.2f}x "
        f"(target <= {TARGET_DIFFERING}x)"
    )
    print(
        f"harness compare start: {start:.3f} s (target < {TARGET_START_S} s; "
        f"{start / starts['python, bare start'][0]:.1f}x a bare Python start)"
    )
    print(
        f"peak memory: {differing_memory:.0f} MB differing, {every_memory:.0f} MB all "
        f"elements, {identical_memory:.0f} MB "
        f"identical, {small_memory:.0f} MB on a pair 4x smaller (target < {TARGET_MEMORY_MB} MB)"
    )
    if diffoscope:
        for name in ("differing", "identical"):
            seconds = rows[f"diffoscope, {name} pair"][0]
            compare_time = rows[f"compare, {name} pair"][0]
            print(f"diffoscope / compare, {name} pair: {seconds / compare_time:.1f}x")
    else:
        print("diffoscope: not installed, skipped")


if __name__ == "__main__":
    main()
