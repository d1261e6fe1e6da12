from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.images import wheeltags

TARGET = wheeltags.Target.parse("3.11", "x86_64-manylinux_2_36")


def test_uv_s_platform_spellings_are_read() -> None:
    assert wheeltags.Target.parse("3.11", "aarch64-manylinux_2_28").glibc == (2, 28)
    assert wheeltags.Target.parse("3.12", "x86_64-manylinux2014").glibc == (2, 17)
    assert wheeltags.Target.parse("3.11", "linux").arch == "x86_64"
    assert wheeltags.Target.parse("3.11", "aarch64-unknown-linux-gnu").glibc == (2, 17)


@pytest.mark.parametrize("platform", ["macos", "x86_64-pc-windows-msvc", "", "x86_64-manylinux"])
def test_a_platform_no_image_runs_is_refused_with_the_spellings_that_work(platform: str) -> None:
    with pytest.raises(ConfigError) as raised:
        wheeltags.Target.parse("3.11", platform)
    assert "x86_64-manylinux_2_36" in raised.value.hint


def test_a_python_that_is_no_version_is_refused() -> None:
    with pytest.raises(ConfigError):
        wheeltags.Target.parse("three", "linux")


def test_platforms_run_from_the_newest_glibc_down_with_the_legacy_names() -> None:
    platforms = TARGET.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert platforms.index("manylinux2014_x86_64") == platforms.index("manylinux_2_17_x86_64") + 1
    assert platforms[-2:] == ["manylinux1_x86_64", "linux_x86_64"]


def test_the_most_specific_tag_wins_as_pip_chooses() -> None:
    ranking = wheeltags.Ranking(TARGET)
    names = [
        "numpy-2.4.6-py3-none-any.whl",
        "numpy-2.4.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl",
        "numpy-2.4.6-cp311-cp311-manylinux_2_39_x86_64.whl",  # needs a newer glibc
        "numpy-2.4.6-cp311-cp311-macosx_14_0_arm64.whl",
        "numpy-2.4.6.tar.gz",
    ]
    assert ranking.best(names) == names[2]
    assert ranking.rank(names[3]) is None
    assert ranking.rank(names[4]) is None
    assert ranking.rank(names[6]) is None
    # abi3 and pure wheels fit, behind the interpreter's own.
    abi3 = ranking.rank("protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl")
    pure = ranking.rank(names[0])
    assert abi3 is not None and pure is not None
    assert ranking.rank(names[1]) is not None
    assert ranking.rank(names[1]) < abi3 < pure  # type: ignore[operator]


def test_the_choice_never_depends_on_the_order_of_the_listing() -> None:
    ranking = wheeltags.Ranking(TARGET)
    twins = ["six-1.17.0-py3-none-any.whl", "six-1.17.0-py2.py3-none-any.whl"]
    assert ranking.best(twins) == ranking.best(list(reversed(twins)))
