from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.runs.variations import BY_NAME, CONTROL, VARIATIONS, select, setup_for


def test_all_is_the_default_and_every_variation_changes_something() -> None:
    assert [v.name for v in select(None)] == [v.name for v in VARIATIONS]
    for variation in VARIATIONS:
        assert setup_for([variation]).as_dict() != CONTROL.as_dict(), variation.name


def test_names_and_exclusions() -> None:
    assert [v.name for v in select("hostname,locale")] == ["hostname", "locale"]
    assert "cpus" not in [v.name for v in select("all,-cpus")]
    assert [v.name for v in select(["+user"])] == ["user"]


def test_unknown_variation_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown variation 'tiem'") as caught:
        select("tiem")
    assert "hashseed" in caught.value.one_line()


def test_variations_compose() -> None:
    setup = setup_for([BY_NAME["timezone"], BY_NAME["locale"], BY_NAME["hashseed"]])
    assert setup.extra_env == {"TZ": "HST-12:45", "LANG": "C", "LC_ALL": "C"}
    assert setup.unset_env == frozenset({"PYTHONHASHSEED"})
    assert setup.variations == ("timezone", "locale", "hashseed")
    assert CONTROL.unset_env == frozenset()
