"""The GPU check: the torch example on one GPU through the host executor, in one script.

On a machine with an NVIDIA GPU and a Python environment that has torch with CUDA (no
Docker needed), it makes a temporary project holding this repository's torch example and
runs, with ``harness run --executor host``:

1. three runs on the GPU with the determinism switches on: they must be bit for bit
   identical (the check's verdict, its exit status);
2. two runs with the switches deliberately off (``--unsafe-no-determinism``, seeds still
   set): whether they differ is printed, not judged, since it depends on the kernels the
   GPU picks;
3. one run on the CPU, compared with the first GPU run bitwise and under a tolerance;
4. two short runs with and without the switches, so that the time per training step is the
   difference between long and short runs (CUDA's start-up cancels out).

It prints the time per step with and without the switches and their ratio, the switches
read back after a run, the GPU fingerprint, and every verdict. ``--save DIR`` keeps the
records and the raw outputs of ``nvidia-smi`` and torch (the unit tests' recorded data
come from there). It takes about two minutes on one GPU.

    python benchmarks/gpu_check.py --python /path/to/python-with-torch [--save DIR]

Exit 0 when the switched-on runs are identical, 1 when they are not, 2 on trouble.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from harness.runtime.fingerprint import NVIDIA_SMI_QUERY

REPOSITORY = Path(__file__).resolve().parent.parent
LONG_STEPS = 1500
SHORT_STEPS = 100
TOLERANCE = "close:rtol=1e-3,atol=1e-5"
PYPROJECT = """\
[project]
name = "gpu-check"
version = "0"

[tool.harness.experiments.torch]
entry = "experiments.torch_convnet:train"
parameters = {{ steps = {long} }}
outputs = ["model.pt", "metrics.json"]

[tool.harness.experiments.torch-short]
entry = "experiments.torch_convnet:train"
parameters = {{ steps = {short} }}
outputs = ["model.pt", "metrics.json"]
"""
TORCH_PROBE = """
import json, torch
devices = []
for index in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(index)
    devices.append({"name": p.name, "capability": "%d.%d" % torch.cuda.get_device_capability(index),
                    "memory_bytes": p.total_memory})
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version(), "devices": devices}))
"""


WEIGHTS_PROBE = """
import sys, torch
a, b = (torch.load(path, weights_only=True) for path in sys.argv[1:3])
total = differing = worst_ulp = 0
worst_abs = 0.0
for name in a:
    x, y = a[name].float().flatten(), b[name].float().flatten()
    total += x.numel()
    differing += int((x != y).sum())
    worst_abs = max(worst_abs, float((x - y).abs().max()))
    ix, iy = x.view(torch.int32).long(), y.view(torch.int32).long()
    ix = torch.where(ix < 0, -(ix & 0x7FFFFFFF), ix)
    iy = torch.where(iy < 0, -(iy & 0x7FFFFFFF), iy)
    worst_ulp = max(worst_ulp, int((ix - iy).abs().max()))
share = differing / total
print(f"  model.pt: {differing} of {total} weights differ ({share:.1%}), "
      f"max abs {worst_abs:.3g}, max ULP {worst_ulp:,}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with torch+CUDA")
    parser.add_argument("--save", type=Path, help="keep records and raw outputs here")
    parser.add_argument(
        "--no-gpu", action="store_true", help="everything on the CPU: checks the script itself"
    )
    arguments = parser.parse_args()
    python, gpus = arguments.python, not arguments.no_gpu
    with tempfile.TemporaryDirectory(prefix="harness-gpu-check-") as folder:
        project = Path(folder)
        make_project(project)
        raw = capture_raw(python)
        print("GPU (nvidia-smi):", raw["nvidia_smi"].strip() or "not available")
        print("GPU (torch):", json.dumps(raw["torch"]))

        on = [run(project, python, "torch", gpus=gpus) for _ in range(3)]
        off = [run(project, python, "torch", gpus=gpus, switches=False) for _ in range(2)]
        short_on = [run(project, python, "torch-short", gpus=gpus) for _ in range(2)]
        short_off = [
            run(project, python, "torch-short", gpus=gpus, switches=False) for _ in range(2)
        ]
        cpu = run(project, python, "torch", gpus=False)

        print_fingerprint(on[0])
        same_on = [compare(project, on[0], other, "bitwise") for other in on[1:]]
        same_off = compare(project, off[0], off[1], "bitwise")
        print(f"switches on,  3 runs: {verdicts(same_on)}")
        print(f"switches off, 2 runs: {verdicts([same_off])}")
        step_on = per_step(on, short_on)
        step_off = per_step(off, short_off)
        print(
            f"time per step: switches on {step_on * 1e3:.3f} ms, off {step_off * 1e3:.3f} ms, "
            f"ratio on/off {step_on / step_off:.3f}"
        )
        cpu_bitwise = compare(project, on[0], cpu, "bitwise")
        cpu_tolerant = compare(project, on[0], cpu, TOLERANCE)
        print(f"GPU against CPU, bitwise: {verdicts([cpu_bitwise])}")
        print(f"GPU against CPU, {TOLERANCE}: {verdicts([cpu_tolerant])}")
        print_moved(cpu_bitwise)
        print("the same, read by torch itself:")
        print(weights_moved(python, project, on[0], cpu))
        print("switches off, read by torch itself:")
        print(weights_moved(python, project, off[0], off[1]))
        if arguments.save:
            save(arguments.save, project, raw)
    identical = all(result["exit_code"] == 0 for result in same_on)
    print("verdict:", "switched-on GPU runs are identical" if identical else "they DIFFER")
    return 0 if identical else 1


def make_project(project: Path) -> None:
    (project / "experiments").mkdir()
    (project / "experiments" / "__init__.py").write_text("")
    shutil.copy2(REPOSITORY / "experiments" / "torch_convnet.py", project / "experiments")
    (project / "pyproject.toml").write_text(PYPROJECT.format(long=LONG_STEPS, short=SHORT_STEPS))


def capture_raw(python: str) -> dict[str, Any]:
    smi = shutil.which("nvidia-smi")
    text = ""
    if smi:
        text = subprocess.run(
            [smi, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    probe = subprocess.run([python, "-c", TORCH_PROBE], capture_output=True, text=True, check=True)
    return {"nvidia_smi": text, "torch": json.loads(probe.stdout)}


def harness(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def run(
    project: Path, python: str, name: str, *, gpus: bool, switches: bool = True
) -> dict[str, Any]:
    arguments = ["run", name, "--executor", "host", "--python", python, "--json"]
    arguments += ["--gpus"] if gpus else []
    arguments += [] if switches else ["--unsafe-no-determinism"]
    done = harness(project, *arguments)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.stderr.write(done.stderr)
        raise SystemExit(f"gpu_check: `harness {' '.join(arguments)}` failed ({done.returncode})")
    record: dict[str, Any] = json.loads(done.stdout)[0]
    if record["status"] != "succeeded":
        log = project / ".harness" / "runs" / record["run_id"] / "log.txt"
        sys.stderr.write(log.read_text() if log.exists() else "")
        raise SystemExit(f"gpu_check: run {record['run_id']} {record['status']}")
    seconds = record["timings"]["experiment_s"]
    where = "GPU" if gpus else "CPU"
    print(f"  {record['run_id']}  {where} switches {'on ' if switches else 'off'} {seconds:.2f} s")
    return record


def compare(project: Path, a: dict[str, Any], b: dict[str, Any], policy: str) -> dict[str, Any]:
    done = harness(project, "compare", a["run_id"], b["run_id"], "--policy", policy, "--json")
    document: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    document["exit_code"] = done.returncode
    return document


def verdicts(results: list[dict[str, Any]]) -> str:
    parts = []
    for result in results:
        found = [
            f"{artifact.get('path')}: {artifact.get('verdict')}"
            for artifact in result.get("artifacts", [])
        ]
        parts.append(f"[{'; '.join(found)}] (exit {result['exit_code']})")
    return " ".join(parts)


def print_moved(result: dict[str, Any]) -> None:
    """How far the values moved: over all tensors of each artifact, the share of elements
    that differ, the largest absolute difference and the largest distance in ULP."""
    for artifact in result.get("artifacts", []):
        tensors = artifact.get("tensors") or []
        elements = sum(int(t.get("elements") or 0) for t in tensors)
        if not elements:
            continue
        differing = sum(int(t.get("differing") or 0) for t in tensors)
        max_abs = max((float(t.get("max_abs") or 0.0) for t in tensors), default=0.0)
        max_ulp = max((int(t.get("max_ulp") or 0) for t in tensors), default=0)
        print(
            f"  {artifact.get('path')}: {differing} of {elements} values differ "
            f"({differing / elements:.1%}), max abs {max_abs:.3g}, max ULP {max_ulp:,}"
        )


def weights_moved(python: str, project: Path, a: dict[str, Any], b: dict[str, Any]) -> str:
    """How the two runs' weights differ, computed by torch in the environment under test:
    a cross-check of harness compare's figures."""
    runs = project / ".harness" / "runs"
    paths = [str(runs / run["run_id"] / "artifacts" / "model.pt") for run in (a, b)]
    done = subprocess.run(
        [python, "-c", WEIGHTS_PROBE, *paths], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or done.stderr.strip()


def per_step(long_runs: list[dict[str, Any]], short_runs: list[dict[str, Any]]) -> float:
    """Seconds per training step: the medians of long and short runs, differenced, so that
    what every run pays once (CUDA's start, data, the first kernels' compilation) cancels."""
    long_s = statistics.median(r["timings"]["experiment_s"] for r in long_runs)
    short_s = statistics.median(r["timings"]["experiment_s"] for r in short_runs)
    return float((long_s - short_s) / (LONG_STEPS - SHORT_STEPS))


def print_fingerprint(record: dict[str, Any]) -> None:
    print("GPU fingerprint:", json.dumps(record["fingerprint"].get("gpu"), sort_keys=True))
    print("switches read back:", json.dumps(record["observed"].get("torch"), sort_keys=True))
    print("violations:", record.get("violations"))
    environment = record.get("python_environment") or {}
    print(
        f"environment: Python {environment.get('python')}, "
        f"{len(environment.get('distributions', []))} distributions, {environment.get('digest')}"
    )


def save(target: Path, project: Path, raw: dict[str, Any]) -> None:
    """The raw outputs, and every run folder (records and artifacts) in one runs.tar.gz."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "nvidia-smi.csv").write_text(raw["nvidia_smi"])
    (target / "torch-devices.json").write_text(json.dumps(raw["torch"], indent=2) + "\n")
    with tarfile.open(target / "runs.tar.gz", "w:gz") as archive:
        archive.add(project / ".harness" / "runs", arcname="runs")


if __name__ == "__main__":
    sys.exit(main())
