"""HR010 near misses and one hit: timing that is only printed or logged is not a finding;
the same value written to a file is."""

import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def elapsed_since(start: float) -> float:
    return time.time() - start


def train(output: Path) -> dict[str, float]:
    start = time.time()
    loss = 0.5
    print(f"trained in {time.time() - start:.1f}s")
    log.info("took %s", elapsed_since(start))
    timings = []
    timings.append(time.time() - start)
    print(timings)
    stamped = {"loss": loss, "at": time.time()}  # expect: HR010
    (output / "metrics.json").write_text(json.dumps(stamped))
    return {"loss": loss}
