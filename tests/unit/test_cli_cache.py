from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from harness.cli.main import cli
from harness.images import wheelcache


def invoke(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(arguments), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def cached_wheel(root: Path, name: str, data: bytes, age_days: float) -> Path:
    digest = wheelcache.hashlib.sha256(data).hexdigest()
    entry = root / "files" / digest[:2] / digest
    entry.mkdir(parents=True)
    (entry / name).write_bytes(data)
    when = time.time() - age_days * 86400
    os.utime(entry, (when, when))
    return entry


def test_cache_shows_where_how_many_and_how_large(_own_wheel_cache: Path) -> None:
    cached_wheel(_own_wheel_cache, "six-1.17.0-py3-none-any.whl", b"x" * 1000, 1)
    code, out, _ = invoke("cache", "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["path"], shown["wheels"], shown["bytes"]) == (str(_own_wheel_cache), 1, 1000)
    code, out, _ = invoke("cache")
    assert "1 wheels" in out


def test_prune_removes_wheels_unused_for_the_given_age(_own_wheel_cache: Path) -> None:
    old = cached_wheel(_own_wheel_cache, "six-1.16.0-py3-none-any.whl", b"old", 40)
    new = cached_wheel(_own_wheel_cache, "six-1.17.0-py3-none-any.whl", b"new", 1)
    code, out, _ = invoke("cache", "prune", "--json")
    assert code == 0
    assert json.loads(out) == {"removed_wheels": 1, "removed_bytes": 3, "kept_wheels": 1}
    assert not old.exists() and new.exists()
    code, out, _ = invoke("cache", "prune", "--unused-for", "2d")
    assert code == 0 and new.exists()
    code, out, _ = invoke("cache", "prune", "--all")
    assert code == 0 and not new.exists()


def test_an_age_that_is_no_age_is_trouble_with_the_fix() -> None:
    code, _, err = invoke("cache", "prune", "--unused-for", "soon")
    assert code == 2
    assert "30d, 12h or 90m" in err
