"""HR010: the clock and the host name read into results."""

import datetime as dt
import platform
import socket
import time
from datetime import datetime


def stamp() -> dict[str, object]:
    started = time.perf_counter()
    return {
        "at": time.time(),  # expect: HR010
        "when": datetime.now(dt.UTC).isoformat(),  # expect: HR010
        "day": dt.date.today().isoformat(),  # expect: HR010
        "host": socket.gethostname(),  # expect: HR010
        "node": platform.node(),  # expect: HR010
        "epoch": time.gmtime(0),
        "took": time.perf_counter() - started,
    }
