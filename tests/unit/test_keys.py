"""Keys: made private, read only when private, kept outside projects; trust never widened."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from securesystemslib.signer import SSlibKey

from harness.errors import ConfigError, HarnessError
from harness.trust import keys


@pytest.fixture(autouse=True)
def _machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A configuration home of its own, so no test reads this machine's keys."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(keys.KEYS_ENV, raising=False)
    monkeypatch.delenv(keys.TRUSTED_ENV, raising=False)


def test_generated_keys_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        pair = keys.generate_keys(tmp_path / "keys", "ci")
    finally:
        os.umask(old)
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    assert keys.key_id(keys.load_public_key(pair.public)) == pair.keyid
    assert keys.key_id(keys.load_private_key(pair.private).public_key()) == pair.keyid
    kept = keys.generate_keys(tmp_path / "keys", "ci")
    assert kept.existing and kept.keyid == pair.keyid
    with pytest.raises(keys.KeyFileError, match="can be read or written by others"):
        keys.load_private_key(pair.public)  # mode 0644


def test_the_key_id_is_securesystemslib_s(tmp_path: Path) -> None:
    pair = keys.generate_keys(tmp_path, "ci")
    public = keys.load_public_key(pair.public)
    assert pair.keyid == SSlibKey.from_crypto(public).keyid


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "", ".hidden", "x" * 65])
def test_a_key_name_is_a_plain_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(HarnessError, match="is not a plain file name"):
        keys.generate_keys(tmp_path / "keys", name)
    assert not (tmp_path / "x.key").exists()
    assert not (tmp_path / "keys").exists()


def test_a_dangling_link_is_not_written_through(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "ci.key").symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(HarnessError, match=r"ci\.key exists and is not a plain file"):
        keys.generate_keys(folder, "ci")
    (folder / "ci.pub").write_text("not a key\n")
    with pytest.raises(HarnessError, match="is not a plain file"):
        keys.generate_keys(folder, "ci")
    assert not (tmp_path / "elsewhere.key").exists()
    replaced = keys.generate_keys(folder, "ci", force=True)
    assert not (folder / "ci.key").is_symlink()
    assert not (tmp_path / "elsewhere.key").exists()
    assert keys.key_id(keys.load_private_key(replaced.private).public_key()) == replaced.keyid


def test_an_existing_pair_is_checked_before_it_is_kept(tmp_path: Path) -> None:
    lone = keys.generate_keys(tmp_path, "lone")
    lone.public.unlink()
    with pytest.raises(HarnessError, match=r"lone\.pub is missing beside"):
        keys.generate_keys(tmp_path, "lone")
    pair = keys.generate_keys(tmp_path, "ci")
    other = keys.generate_keys(tmp_path, "other")
    pair.public.write_bytes(other.public.read_bytes())
    with pytest.raises(HarnessError, match="is not the public half"):
        keys.generate_keys(tmp_path, "ci")
    pair.private.chmod(0o644)
    with pytest.raises(keys.KeyFileError, match="can be read or written by others"):
        keys.generate_keys(tmp_path, "ci")


@pytest.mark.parametrize("through_link", [False, True])
def test_a_private_key_others_can_read_is_refused(tmp_path: Path, through_link: bool) -> None:
    pair = keys.generate_keys(tmp_path / "keys", "ci")
    pair.private.chmod(0o644)
    path = pair.private
    if through_link:
        path = tmp_path / "link.key"
        path.symlink_to(pair.private)
    with pytest.raises(keys.KeyFileError, match=r"mode 0644.*not used") as caught:
        keys.load_private_key(path)
    assert f"chmod 600 {path}" in caught.value.one_line()


def test_missing_and_odd_key_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "dangling.key").symlink_to(tmp_path / "nowhere")
    with pytest.raises(keys.KeyFileError, match="does not exist"):
        keys.load_private_key(tmp_path / "dangling.key")
    with pytest.raises(keys.KeyFileError, match="not a regular file"):
        keys.load_public_key(tmp_path)
    os.mkfifo(tmp_path / "pipe.pub")
    with pytest.raises(keys.KeyFileError, match="a named pipe"):
        keys.load_public_key(tmp_path / "pipe.pub")


def test_the_keys_folder_is_never_inside_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    assert keys.keys_dir(project) == tmp_path / "config" / "harness" / "keys"
    monkeypatch.setenv(keys.KEYS_ENV, str(project / "secrets"))
    with pytest.raises(ConfigError, match="is inside the project"):
        keys.keys_dir(project)
    # Reached through a link, it is still inside.
    (tmp_path / "outside").symlink_to(project)
    monkeypatch.setenv(keys.KEYS_ENV, str(tmp_path / "outside" / "secrets"))
    with pytest.raises(ConfigError, match="is inside the project"):
        keys.keys_dir(project)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_a_project_narrows_the_trusted_keys_and_never_widens_them(
    project: Path, tmp_path: Path
) -> None:
    mine = keys.generate_keys(tmp_path / "mine", "a")
    theirs = keys.generate_keys(tmp_path / "theirs", "b")
    listed_by_project = keys.generate_keys(project / "keys", "p")
    ids = keys.key_id
    # The project's file alone trusts nothing.
    with pytest.raises(HarnessError, match="no trusted public key"):
        keys.trusted_keys(project, [], [listed_by_project.public])
    # A command-line key the project does not list is refused, not joined by the project's.
    with pytest.raises(HarnessError, match="may narrow the trusted keys but not add"):
        keys.trusted_keys(project, [mine.public], [listed_by_project.public])
    narrowed = keys.trusted_keys(project, [mine.public, theirs.public], [theirs.public])
    assert [ids(k) for k in narrowed] == [theirs.keyid]
    assert len(keys.trusted_keys(project, [mine.public, theirs.public], [])) == 2


def test_this_machine_s_trusted_keys_come_from_outside_the_project(
    monkeypatch: pytest.MonkeyPatch, project: Path, tmp_path: Path
) -> None:
    trusted = keys.trusted_dir()
    trusted.mkdir(parents=True)
    pair = keys.generate_keys(trusted, "ci")
    assert [keys.key_id(k) for k in keys.trusted_keys(project, [], [])] == [pair.keyid]
    monkeypatch.setenv(keys.TRUSTED_ENV, str(project / "keys"))
    with pytest.raises(ConfigError, match="is inside the project"):
        keys.trusted_keys(project, [], [])


# -- this host's signing key -------------------------------------------------------------


def test_the_host_key_is_given_then_the_environment_then_the_user_s_default(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(keys.HOST_KEY_ENV, raising=False)
    assert keys.host_key(project, None) is None  # no key anywhere: runs stay unsigned
    default = keys.generate_keys(keys.keys_dir(project), "harness")
    given = keys.generate_keys(tmp_path / "given", "host")
    from_env = keys.generate_keys(tmp_path / "env", "env")

    def key_id_of(key: keys.PrivateKey | None) -> str:
        assert key is not None
        return keys.key_id(keys.public_of(key))

    assert key_id_of(keys.host_key(project, None)) == default.keyid
    monkeypatch.setenv(keys.HOST_KEY_ENV, str(from_env.private))
    assert key_id_of(keys.host_key(project, None)) == from_env.keyid
    assert key_id_of(keys.host_key(project, given.private)) == given.keyid
    # A CI secret gives the PEM itself.
    monkeypatch.setenv(keys.HOST_KEY_ENV, given.private.read_text())
    assert key_id_of(keys.host_key(project, None)) == given.keyid


def test_a_host_key_inside_the_project_or_readable_by_others_is_refused(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(keys.HOST_KEY_ENV, raising=False)
    inside = keys.generate_keys(project / "keys", "host")  # would travel with every run
    with pytest.raises(ConfigError, match=r"the host key .* is inside the project"):
        keys.host_key(project, inside.private)
    monkeypatch.setenv(keys.HOST_KEY_ENV, str(inside.private))
    with pytest.raises(ConfigError, match="inside the project"):
        keys.host_key(project, None)
    exposed = keys.generate_keys(tmp_path / "exposed", "host")
    exposed.private.chmod(0o644)
    with pytest.raises(keys.KeyFileError, match="can be read or written by others"):
        keys.host_key(project, exposed.private)
    monkeypatch.setenv(keys.HOST_KEY_ENV, "-----BEGIN PRIVATE KEY-----\nnot a key\n")
    with pytest.raises(keys.KeyFileError, match="HARNESS_HOST_KEY is not an unencrypted PEM"):
        keys.host_key(project, None)
