"""What signing each run and checking its signature cost, against hashing its artifacts.

Every run a host with a key finishes gets an attestation (its record, signed), and every
collect and certify checks it. Both work on the record, not on the artifacts' bytes,
which the record already hashed once. In a temporary folder this writes a run with
``--files`` small artifacts and one ``--size-mb`` artifact, then times, in one process with
the page cache warm for everyone:

* hashing the artifacts as a run's end does (``records.artifacts``): the baseline,
* signing the record (``attest.sign``) and checking it (``attest.verify``),

and prints the ratios. Target: signing plus checking below the hashing a run's end already
does (< 1.0x), even for ten thousand tiny artifacts, where the record's JSON is the work;
well below it (<= 0.25x) for a few large ones. It reports, it does not assert.

    .venv/bin/python benchmarks/attest_overhead.py [--files 1000] [--size-mb 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.runs import records
from harness.trust import attest


def _timed(action: Callable[[], Any], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-attest-") as folder:
        run = Path(folder) / "20260101-000000-bench-000000"
        artifacts = run / records.ARTIFACTS
        (artifacts / "small").mkdir(parents=True)
        for number in range(options.files):
            (artifacts / "small" / f"{number:05d}.json").write_bytes(os.urandom(512))
        with (artifacts / "weights.bin").open("wb") as stream:
            for _ in range(options.size_mb):
                stream.write(os.urandom(1 << 20))
        listed = records.artifacts(artifacts)  # warms the page cache for everyone
        record = {
            "schema": records.SCHEMA,
            "run_id": run.name,
            "status": "succeeded",
            "host": "bench",
            "image": {"reference": "bench:cpu", "id": "sha256:" + "ab" * 32, "variant": "cpu"},
            "artifacts": listed,
        }
        records.write(run, record)
        key = Ed25519PrivateKey.generate()
        hashing = _timed(lambda: records.artifacts(artifacts), options.repeats)
        signing = _timed(lambda: attest.sign(run, record, key), options.repeats)
        checking = _timed(lambda: attest.verify(run, record, [key.public_key()]), options.repeats)
    print(f"artifacts: {options.files} small files + {options.size_mb} MB")
    print(f"hash the artifacts (baseline): {hashing:.3f} s")
    print(f"sign the record:               {signing:.4f} s ({signing / hashing:.4f}x)")
    print(f"check the attestation:         {checking:.4f} s ({checking / hashing:.4f}x)")
    ratio = (signing + checking) / hashing
    print(f"sign + check against hashing:  {ratio:.4f}x (target < 1.0x; <= 0.25x, large files)")


if __name__ == "__main__":
    main()
