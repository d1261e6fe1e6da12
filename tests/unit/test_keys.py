"""Keys: made private, read only when private, kept outside projects; trust never widened."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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


# -- ECDSA P-256 beside ed25519 ----------------------------------------------------------


def test_an_ecdsa_p256_pair_is_private_and_its_key_id_is_securesystemslib_s(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        pair = keys.generate_keys(tmp_path / "keys", "cosign", key_type=keys.ECDSA_P256)
    finally:
        os.umask(old)
    assert pair.key_type == keys.ECDSA_P256
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    private = keys.load_private_key(pair.private)
    public = keys.load_public_key(pair.public)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert pair.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    sslib = SSlibKey.from_crypto(public)
    assert (sslib.keytype, sslib.scheme) == ("ecdsa", "ecdsa-sha2-nistp256")
    assert pair.keyid == sslib.keyid == keys.key_id(keys.public_of(private))
    assert keys.key_type_of(private) == keys.key_type_of(public) == keys.ECDSA_P256


def test_ecdsa_signatures_verify_whatever_their_bytes(tmp_path: Path) -> None:
    """ECDSA is randomized: two signatures of one message differ and both verify; only
    verifying says whether a signature is good."""
    key = keys.load_private_key(
        keys.generate_keys(tmp_path, "ec", key_type=keys.ECDSA_P256).private
    )
    public = keys.public_of(key)
    message = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
    first, second = keys.sign(key, message), keys.sign(key, message)
    assert keys.signs(public, first, message)
    assert keys.signs(public, second, message)
    assert not keys.signs(public, first, message + b" ")
    other = ec.generate_private_key(ec.SECP256R1())
    assert not keys.signs(other.public_key(), first, message)
    # Bytes that are no DER signature at all, or an ed25519 signature: simply not one.
    ed = Ed25519PrivateKey.generate()
    for garbage in (b"", b"\x00" * 64, first[:-1], ed.sign(message)):
        assert not keys.signs(public, garbage, message)
    assert not keys.signs(ed.public_key(), first, message)


def test_an_existing_pair_of_another_type_is_refused_not_passed_off(tmp_path: Path) -> None:
    ed = keys.generate_keys(tmp_path, "harness")
    with pytest.raises(HarnessError, match=r"'harness' .* is ed25519, not ecdsa-p256") as caught:
        keys.generate_keys(tmp_path, "harness", key_type=keys.ECDSA_P256)
    assert "--force" in caught.value.one_line()
    # Asked for no type (a scripted generate before every certify): kept as it is.
    assert keys.generate_keys(tmp_path, "harness").keyid == ed.keyid
    replaced = keys.generate_keys(tmp_path, "harness", key_type=keys.ECDSA_P256, force=True)
    assert replaced.key_type == keys.ECDSA_P256 and replaced.keyid != ed.keyid
    kept = keys.generate_keys(tmp_path, "harness")
    assert kept.existing and kept.key_type == keys.ECDSA_P256
    with pytest.raises(HarnessError, match="unknown key type 'rsa'"):
        keys.generate_keys(tmp_path, "other", key_type="rsa")


def _pem_private(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _pem_public(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


WRONG_KEYS = {
    "rsa": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "an RSA key"),
    "p384": (
        lambda: ec.generate_private_key(ec.SECP384R1()),
        "an elliptic-curve key on secp384r1",
    ),
    "ed448": (Ed448PrivateKey.generate, "a key of another type"),
}


@pytest.mark.parametrize("kind", sorted(WRONG_KEYS))
def test_a_key_of_another_type_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    make, described = WRONG_KEYS[kind]
    key = make()
    private, public = tmp_path / "wrong.key", tmp_path / "wrong.pub"
    private.write_bytes(_pem_private(key))
    private.chmod(0o600)
    public.write_bytes(_pem_public(key))
    with pytest.raises(keys.KeyFileError, match=f"is {described}, not an ed25519 or ECDSA P-256"):
        keys.load_private_key(private)
    with pytest.raises(keys.KeyFileError, match=f"is {described}, not an ed25519 or ECDSA P-256"):
        keys.load_public_key(public)


def test_corrupt_or_swapped_key_files_are_one_line_errors(tmp_path: Path) -> None:
    pair = keys.generate_keys(tmp_path, "ec", key_type=keys.ECDSA_P256)
    text = pair.private.read_bytes()
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_bytes(text[:40] + b"AAAA" + text[44:])
    corrupt.chmod(0o600)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        keys.load_private_key(pair.private).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    encrypted.chmod(0o600)
    swapped = tmp_path / "swapped.key"
    swapped.write_bytes(pair.public.read_bytes())  # the public half where the private goes
    swapped.chmod(0o600)
    for path in (corrupt, encrypted, swapped):
        with pytest.raises(keys.KeyFileError, match="is not an unencrypted PEM private key"):
            keys.load_private_key(path)
    with pytest.raises(keys.KeyFileError, match="is not a PEM public key"):
        keys.load_public_key(pair.private)


def test_an_ecdsa_host_key_comes_from_a_file_or_the_pem_in_the_environment(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = keys.generate_keys(tmp_path / "host", "host", key_type=keys.ECDSA_P256)
    given = keys.host_key(project, pair.private)
    assert given is not None and keys.key_id(keys.public_of(given)) == pair.keyid
    monkeypatch.setenv(keys.HOST_KEY_ENV, pair.private.read_text())  # as a CI secret gives it
    from_env = keys.host_key(project, None)
    assert from_env is not None and keys.key_id(keys.public_of(from_env)) == pair.keyid
    engines = keys.keys_dir(project) / keys.HOSTS_FOLDER
    engines.mkdir(parents=True)
    shutil.copy(pair.private, engines / "gpu-box.key")
    (engines / "gpu-box.key").chmod(0o600)
    assert [keys.key_id(keys.public_of(k)) for k in keys.engine_keys(project).values()] == [
        pair.keyid
    ]
