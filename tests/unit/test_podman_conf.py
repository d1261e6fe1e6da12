"""Podman's containers.conf as `harness doctor` reads it, and the check doctor makes of it:
which files count, in which order, which one to edit, and what a trial run decides."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import doctor, podman_conf
from harness.engine import PODMAN, CommandResult, ImageInfo
from harness.errors import EngineError
from harness.images.base import BaseImage
from tests.unit.fake_docker import EngineDouble

FIX_LINE = 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
GOOD = f"[containers]\n{FIX_LINE}\n"
BASE = BaseImage("harness-base:bookworm-python3.11", "sha256:" + "b" * 64, "d", None, False)
# What Podman 4.3 answers when it cannot give a container its limits (trimmed).
RLIMITS = (
    "cannot create a container from x: crun: setrlimit `RLIMIT_NPROC`: Operation not "
    "permitted: OCI permission denied; error setting rlimits"
)


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The machine's system folders, empty, under the test's own folder."""
    root = tmp_path / "system"
    (root / "usr").mkdir(parents=True)
    (root / "etc").mkdir()
    monkeypatch.setattr(podman_conf, "SYSTEM_DEFAULTS", root / "usr" / "containers.conf")
    monkeypatch.setattr(podman_conf, "ADMIN_FILE", root / "etc" / "containers.conf")
    return root


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_files_are_read_in_podman_s_order(system: Path, tmp_path: Path) -> None:
    defaults = _write(system / "usr" / "containers.conf", "")
    admin = _write(system / "etc" / "containers.conf", "")
    late = _write(system / "etc" / "containers.conf.d" / "20-late.conf", "")
    early = _write(system / "etc" / "containers.conf.d" / "10-early.conf", "")
    _write(system / "etc" / "containers.conf.d" / "notes.txt", "")
    home = tmp_path / "home"
    user = _write(home / ".config" / "containers" / "containers.conf", "")
    user_drop_in = _write(home / ".config" / "containers" / "containers.conf.d" / "a.conf", "")
    assert podman_conf.search_order({}, rootless=False, home=home) == [
        defaults,
        admin,
        early,
        late,
    ]
    # The user's own files count for a rootless Podman only, read last.
    assert podman_conf.search_order({}, rootless=True, home=home) == [
        defaults,
        admin,
        early,
        late,
        user,
        user_drop_in,
    ]
    xdg = tmp_path / "xdg"
    elsewhere = _write(xdg / "containers" / "containers.conf", "")
    found = podman_conf.search_order({"XDG_CONFIG_HOME": str(xdg)}, rootless=True, home=home)
    assert found[-1] == elsewhere
    # CONTAINERS_CONF replaces every other file.
    named = tmp_path / "mine.conf"
    assert podman_conf.search_order({"CONTAINERS_CONF": str(named)}, rootless=True) == [named]


def test_what_a_file_sets_and_why_one_cannot_be_read(tmp_path: Path) -> None:
    assert podman_conf.read(_write(tmp_path / "a.conf", GOOD)).ulimits == (
        "nofile=20000:20000",
        "nproc=32768:32768",
    )
    other = _write(tmp_path / "b.conf", '[engine]\ncgroup_manager = "cgroupfs"\n')
    assert podman_conf.read(other) == podman_conf.ConfFile(other)
    assert "not TOML" in podman_conf.read(_write(tmp_path / "c.conf", "[containers\n")).problem
    wrong = _write(tmp_path / "d.conf", "[containers]\ndefault_ulimits = 3\n")
    assert "not a list" in podman_conf.read(wrong).problem
    huge = _write(tmp_path / "e.conf", "#" * (podman_conf.FILE_LIMIT + 1))
    assert "more than" in podman_conf.read(huge).problem
    # A named pipe would block a plain open: refused at once.
    os.mkfifo(tmp_path / "f.conf")
    assert "not a regular file" in podman_conf.read(tmp_path / "f.conf").problem
    assert podman_conf.read(tmp_path / "absent.conf").problem == "does not exist"


def test_the_last_file_that_sets_the_limits_wins_and_is_the_one_to_edit(system: Path) -> None:
    admin = _write(system / "etc" / "containers.conf", GOOD)
    # A drop-in that sets the list again replaces it, here with one that lacks nproc.
    drop_in = _write(
        system / "etc" / "containers.conf.d" / "50-site.conf",
        '[containers]\ndefault_ulimits = ["nofile=1024:1024"]\n',
    )
    unrelated = _write(system / "etc" / "containers.conf.d" / "90-other.conf", "[engine]\n")
    files = [podman_conf.read(path) for path in podman_conf.search_order({}, rootless=False)]
    assert [conf.path for conf in files] == [admin, drop_in, unrelated]
    in_effect = podman_conf.setting_in_effect(files)
    assert in_effect is not None
    assert in_effect.path == drop_in
    assert not podman_conf.allows_runs(in_effect.ulimits)
    assert podman_conf.file_to_edit({}, files, rootless=False) == drop_in
    assert podman_conf.allows_runs(podman_conf.read(admin).ulimits)


def test_the_file_to_edit_when_none_sets_the_limits(system: Path, tmp_path: Path) -> None:
    assert podman_conf.file_to_edit({}, [], rootless=False) == system / "etc" / "containers.conf"
    assert (
        podman_conf.file_to_edit({}, [], rootless=True, home=tmp_path)
        == tmp_path / ".config" / "containers" / "containers.conf"
    )
    named = {"CONTAINERS_CONF": str(tmp_path / "mine.conf")}
    assert podman_conf.file_to_edit(named, [], rootless=False) == tmp_path / "mine.conf"


class _Podman(EngineDouble):
    """A rootful (or rootless) Podman whose runs end as the test says."""

    product = PODMAN
    where = "default"

    def __init__(self, *, rootless: bool = False, failure: str = "", status: int = 0) -> None:
        self.rootless = rootless
        self.failure = failure
        self.status = status
        self.ran: list[tuple[str, list[str]]] = []

    def info(self) -> Mapping[str, Any]:
        options = ["name=seccomp,profile=default", *(["name=rootless"] if self.rootless else [])]
        return {"SecurityOptions": options}

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.ran.append((image, list(command)))
        if self.failure:
            raise EngineError(self.failure, "check the engine with `harness doctor`")
        return CommandResult(self.status, "")


def test_a_run_that_cannot_set_limits_names_the_file_and_the_lines(system: Path) -> None:
    engine = _Podman(failure=RLIMITS)
    check = doctor.podman_limits_check(engine, BASE, environment={})
    assert engine.ran == [(BASE.id, ["true"])]
    assert not check.ok
    assert check.required
    assert "error setting rlimits" in check.detail
    assert FIX_LINE in check.fix
    assert f"under [containers] in {system / 'etc' / 'containers.conf'} (or the file" in check.fix
    assert "restart `podman system service`" in check.fix
    assert "\n" not in check.fix


def test_the_trial_decides_whatever_the_files_say(system: Path) -> None:
    # The files here lack the setting, yet the service (another environment) runs fine.
    check = doctor.podman_limits_check(_Podman(), BASE, environment={})
    assert check.ok
    assert check.detail == f"a container of {BASE.reference} starts"
    # And the files here have it, yet the service fails: the failure is what is reported.
    _write(system / "etc" / "containers.conf", GOOD)
    check = doctor.podman_limits_check(_Podman(failure=RLIMITS), BASE, environment={})
    assert not check.ok
    assert FIX_LINE in check.fix


def test_other_failures_of_the_trial_are_named_as_they_are(system: Path) -> None:
    failed = _Podman(failure="cannot create a container from x: no space left on device")
    check = doctor.podman_limits_check(failed, BASE, environment={})
    assert not check.ok
    assert "no space left on device" in check.detail
    assert FIX_LINE not in check.fix
    check = doctor.podman_limits_check(_Podman(status=127), BASE, environment={})
    assert not check.ok
    assert "exited 127" in check.detail


def test_without_a_base_image_the_files_stand_in(system: Path, tmp_path: Path) -> None:
    engine = _Podman()
    check = doctor.podman_limits_check(engine, None, environment={})
    assert engine.ran == []
    assert not check.ok
    assert not check.required  # a hint: nothing was tried
    assert "not tried" in check.detail
    assert FIX_LINE in check.fix
    admin = _write(system / "etc" / "containers.conf", GOOD)
    check = doctor.podman_limits_check(engine, None, environment={})
    assert check.ok
    assert str(admin) in check.detail
    # A file Podman would refuse is named with why.
    _write(system / "etc" / "containers.conf.d" / "bad.conf", "[containers\n")
    check = doctor.podman_limits_check(engine, None, environment={})
    assert check.ok  # the setting still wins from the admin file
    named = _write(tmp_path / "named.conf", "[containers\n")
    check = doctor.podman_limits_check(engine, None, environment={"CONTAINERS_CONF": str(named)})
    assert not check.ok
    assert f"{named} is not TOML" in check.detail
    assert f"in {named}, then restart" in check.fix  # the one file Podman reads then
    # Rootless Podman keeps within its user's limits: nothing to set.
    assert doctor.podman_limits_check(_Podman(rootless=True), None, environment={}).ok


def test_an_engine_on_another_machine_is_not_judged_by_this_one_s_files(system: Path) -> None:
    _write(system / "etc" / "containers.conf", GOOD)
    engine = _Podman(failure=RLIMITS)
    engine.where = "ssh://gpu-box"
    check = doctor.podman_limits_check(engine, BASE, environment={})
    assert not check.ok
    assert "the containers.conf of the engine's machine" in check.fix
    assert str(system) not in check.fix
    engine.failure = ""
    assert not doctor.podman_limits_check(engine, None, environment={}).ok


def test_a_podman_host_gets_the_same_trial_and_never_blocks(
    system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _Host(_Podman):
        where = "ssh://gpu-box"

        def version(self) -> Mapping[str, Any]:
            return {"Version": "4.3.1"}

        def image(self, reference: str) -> ImageInfo | None:
            return ImageInfo(BASE.id, (reference,), {}, 0)

    engine = _Host(failure=RLIMITS)
    host = SimpleNamespace(
        name="box", url="ssh://gpu-box", slurm=None, connect=lambda timeout: engine
    )
    monkeypatch.setattr(doctor, "configured", lambda _config: {"box": host})
    monkeypatch.setattr(
        doctor, "_leftovers_check", lambda *_a, **_k: doctor.Check("leftovers", True, "")
    )
    config = SimpleNamespace(base="bootstrap", debian_suite="bookworm", python="3.11")
    checks = {check.name: check for check in doctor._host_checks(config)}  # type: ignore[arg-type]
    assert checks["host box"].detail == "Podman 4.3.1 at ssh://gpu-box"
    limits = checks["podman limits on box"]
    assert not limits.ok
    assert not limits.required  # a host that cannot run limits which hosts serve
    assert FIX_LINE in limits.fix
    assert engine.ran == [(BASE.id, ["true"])]
