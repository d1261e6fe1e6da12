"""Signing keys: where they live, how they are made and read, and which ones a gate trusts.

A private key is the one secret harness holds, so it is kept where no run, image or
archive reaches it: outside every project (a run mounts the project read-only, and a run
on a remote engine ships it), in a file only its owner can read, as ssh insists for its
own keys. A key file that others can read is refused rather than used: it may already
have been copied.

Trust belongs to whoever verifies, not to the project being verified: the keys a gate
accepts come from the command line or from this machine's configuration
(``$HARNESS_TRUSTED_KEYS``, or ``trusted/`` beside the keys), both outside the project.
A project's ``[tool.harness.certify] trusted-keys`` may narrow that set to the keys it
names, never widen it: otherwise whoever can change the project could vouch for it.

Each host signs its own runs with its host key: ``--sign-key PATH``, else
``$HARNESS_HOST_KEY`` (a path, or the PEM itself, as a CI secret gives it), else this
user's default key when it exists; never a file of the project.

Two key types sign: ed25519 (the default) and ECDSA on NIST P-256 (``keys generate
--type ecdsa-p256``), the curve of cosign's key pairs and one that OpenSSF Model Signing's
key method verifies (it takes elliptic-curve keys only). Every use of a key (signing,
checking a signature, naming it) goes through the few functions here, so that the rest of
harness never asks which type it holds. ECDSA signatures are randomized: two signatures
of the same message differ, and only verifying them says whether they are good.

Key ids are securesystemslib's default (sha256 of the canonical JSON of the key's type,
scheme and public value: the raw key in hex for ed25519, its PEM for ECDSA), so that its
``Envelope.verify`` accepts harness's signatures with a key it loads itself; a key id is
only a hint, and verification never relies on it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness import untrusted
from harness.errors import ConfigError, HarnessError

KEYS_ENV = "HARNESS_KEYS_DIR"
HOST_KEY_ENV = "HARNESS_HOST_KEY"
TRUSTED_ENV = "HARNESS_TRUSTED_KEYS"
DEFAULT_KEY = "harness.key"
# Keys for the runs on other engines this machine drives, by host name (see engine_keys).
HOSTS_FOLDER = "hosts"
# The public keys of SLURM nodes, each made on its node (see nodes_dir).
NODES_FOLDER = "nodes"
# A PEM ed25519 or P-256 key is a few hundred bytes.
KEY_FILE_LIMIT = 64 << 10
# A key pair's name becomes two file names in the keys folder, and nothing else.
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NO_TRUSTED_KEY = "no trusted public key to check the signatures against"


# The key types harness signs and verifies with; the elliptic-curve ones are P-256 only,
# which the loaders below ensure.
PrivateKey: TypeAlias = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = Ed25519PublicKey | ec.EllipticCurvePublicKey
ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256"
KEY_TYPES = (ED25519, ECDSA_P256)
DEFAULT_KEY_TYPE = ED25519
# securesystemslib's names for a P-256 key (``SSlibKey.from_crypto``).
_SSLIB_ECDSA = ("ecdsa", "ecdsa-sha2-nistp256")
SUPPORTED = "an ed25519 or ECDSA P-256 key"
# What a key id hashes: an object of strings and such objects.
_KeyDocument: TypeAlias = "dict[str, _KeyDocument] | str"


class KeyFileError(HarnessError):
    """A key file is missing, unreadable, exposed or of the wrong kind."""

    default_hint = "create one with `harness keys generate`"


# -- where keys live ---------------------------------------------------------------------


def keys_dir(project_root: Path | None = None) -> Path:
    """Where keys live: ``$HARNESS_KEYS_DIR`` or ``~/.config/harness/keys``, never inside
    ``project_root`` (which runs mount and remote runs ship)."""
    configured = os.environ.get(KEYS_ENV)
    folder = Path(configured) if configured else _config_home() / "harness" / "keys"
    if project_root is not None:
        refuse_inside_project(folder, project_root, what=f"the keys folder ({KEYS_ENV})")
    return folder


def trusted_dir() -> Path:
    """This machine's folder of trusted public keys, beside the keys folder."""
    return _config_home() / "harness" / "trusted"


def refuse_inside_project(path: Path, project_root: Path, *, what: str) -> None:
    """Keys and trust configuration inside the project would travel with it, or be the
    project's own say: both are refused."""
    if _is_within(path, project_root):
        raise ConfigError(
            f"{what} {path} is inside the project {project_root}",
            "keep keys outside any project: the default ~/.config/harness/ is, or set "
            f"{KEYS_ENV} / {TRUSTED_ENV} to a folder outside it",
        )


def _is_within(path: Path, root: Path) -> bool:
    resolved = path.expanduser().resolve(strict=False)
    return resolved == root.resolve() or resolved.is_relative_to(root.resolve())


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


# -- making and reading keys -------------------------------------------------------------


def sign(private: PrivateKey, message: bytes) -> bytes:
    """A signature over ``message``: ed25519's, or ECDSA P-256 with SHA-256 (DER-encoded,
    as securesystemslib, cosign and model-signing write and read it)."""
    if isinstance(private, Ed25519PrivateKey):
        return private.sign(message)
    return private.sign(message, ec.ECDSA(hashes.SHA256()))


def signs(public: PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` over ``message`` was made with the private half of ``public``
    (any bytes at all may come in: a malformed signature is simply not one)."""
    try:
        if isinstance(public, Ed25519PublicKey):
            public.verify(signature, message)
        else:
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def public_of(private: PrivateKey) -> PublicKey:
    return private.public_key()


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """``ed25519`` or ``ecdsa-p256``: the name `keys generate --type` takes."""
    return ED25519 if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey) else ECDSA_P256


def public_pem(public_key: PublicKey) -> bytes:
    """The key as a SubjectPublicKeyInfo PEM: what NAME.pub holds."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: PublicKey) -> str:
    """The DSSE keyid of a key, as securesystemslib computes it by default."""
    if isinstance(public_key, Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keytype = scheme = "ed25519"
        public = raw.hex()
    else:
        keytype, scheme = _SSLIB_ECDSA
        public = public_pem(public_key).decode("ascii")
    document: _KeyDocument = {"keytype": keytype, "keyval": {"public": public}, "scheme": scheme}
    return hashlib.sha256(_olpc_canonical(document).encode()).hexdigest()


def _olpc_canonical(value: _KeyDocument) -> str:
    """OLPC canonical JSON (https://wiki.laptop.org/go/Canonical_JSON), as securesystemslib
    encodes a key to hash it, for objects of strings: keys sorted, no spaces, and in
    strings only the quote and the backslash escaped (a PEM's newlines stay raw bytes,
    where json.dumps would write ``\\n``)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    members = (f"{_olpc_canonical(k)}:{_olpc_canonical(v)}" for k, v in sorted(value.items()))
    return "{" + ",".join(members) + "}"


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    keyid: str
    # True when the pair was already there and generate left it as it was.
    existing: bool = False
    key_type: str = DEFAULT_KEY_TYPE


def generate_keys(
    folder: Path, name: str, *, force: bool = False, key_type: str | None = None
) -> KeyPair:
    """Write NAME.key (mode 0600, PKCS#8 PEM) and NAME.pub (SubjectPublicKeyInfo PEM), of
    ``key_type`` (one of :data:`KEY_TYPES`; None: ed25519 for a new pair).

    A complete pair that is already there is kept and returned (``existing``): scripts run
    `harness keys generate` before every certify, and a second run must not fail nor
    replace the key others already trust; but a pair of another type than the one asked
    for is refused, not passed off as it. Only ``force`` replaces it, each file renamed
    over the old one (a link there is replaced, never written through). Half a pair, or a
    link in place of one, is refused: nothing is written through a link to elsewhere.
    """
    if not KEY_NAME.fullmatch(name):
        raise HarnessError(
            f"key name {name!r} is not a plain file name",
            "use letters, digits, dot, dash and underscore, e.g. --name ci-runner-1",
        )
    if key_type is not None and key_type not in KEY_TYPES:
        raise HarnessError(f"unknown key type {key_type!r}", f"use one of {', '.join(KEY_TYPES)}")
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    present = [path for path in (private_path, public_path) if os.path.lexists(path)]
    if present and not force:
        return _existing_pair(private_path, public_path, present, key_type)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _new_key(key_type or DEFAULT_KEY_TYPE)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pair = KeyPair(private_path, public_path, key_id(key.public_key()), key_type=key_type_of(key))
    if present:
        _replace(private_path, private_pem, 0o600)
        _replace(public_path, public_pem(key.public_key()), 0o644)
        return pair
    _create(private_path, private_pem, 0o600)
    try:
        _create(public_path, public_pem(key.public_key()), 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return pair


def _new_key(kind: str) -> PrivateKey:
    if kind == ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return Ed25519PrivateKey.generate()


def _existing_pair(
    private_path: Path, public_path: Path, present: list[Path], asked: str | None
) -> KeyPair:
    """The pair already in place, checked as signing would check it: both files, plain,
    the private key readable by its owner alone, the two halves of one key, and of the
    type asked for (when one was)."""
    refuse = "remove it, or pass --force to write a new pair in its place"
    for path in (private_path, public_path):
        if path not in present:
            raise HarnessError(f"{path} is missing beside {present[0]}", refuse)
        if path.is_symlink() or not path.is_file():
            raise HarnessError(f"{path} exists and is not a plain file", refuse)
    private = load_private_key(private_path)
    if key_id(private.public_key()) != key_id(load_public_key(public_path)):
        raise HarnessError(
            f"{public_path} is not the public half of {private_path}",
            "pass --force to write a new pair, or restore the matching public key",
        )
    found = key_type_of(private)
    if asked is not None and found != asked:
        raise HarnessError(
            f"the key pair {private_path.stem!r} in {private_path.parent} is {found}, not {asked}",
            "choose another --name for the new pair, or pass --force to replace this one "
            "(whoever trusts its public key then trusts it no more)",
        )
    return KeyPair(
        private_path, public_path, key_id(private.public_key()), existing=True, key_type=found
    )


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write beside ``path`` with ``mode`` from the start, then rename over it."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _create(path: Path, data: bytes, mode: int) -> None:
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise HarnessError(
            f"{path} already exists", "choose another --name, or remove the old pair"
        ) from None
    except OSError as error:
        raise HarnessError(f"cannot write {path}: {error.strerror}", "check the folder") from None
    with os.fdopen(handle, "wb") as stream:
        # The mode given to open is narrowed by the umask, never widened: set it exactly.
        os.fchmod(stream.fileno(), mode)
        stream.write(data)


def load_private_key(path: Path) -> PrivateKey:
    """The ed25519 or ECDSA P-256 private key in ``path``, which only its owner may read."""
    try:
        data, status = untrusted.read_regular(path, limit=KEY_FILE_LIMIT, what="the private key")
    except FileNotFoundError:
        raise KeyFileError(f"the private key {path} does not exist") from None
    except untrusted.UntrustedInputError as error:
        raise KeyFileError(error.message) from None
    exposed = stat.S_IMODE(status.st_mode) & 0o077
    if exposed:
        raise KeyFileError(
            f"the private key {path} can be read or written by others "
            f"(mode {stat.S_IMODE(status.st_mode):04o}); it is not used",
            f"chmod 600 {path} (and replace the key if others may have copied it)",
        )
    if status.st_uid not in (os.geteuid(), 0):
        raise KeyFileError(
            f"the private key {path} belongs to another user (uid {status.st_uid})",
            "sign with a key of your own",
        )
    return _private_from_pem(data, str(path))


def _private_from_pem(data: bytes, where: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"{where} is not an unencrypted PEM private key") from None
    if isinstance(key, Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise KeyFileError(
        f"{where} is {_described(key)}, not {SUPPORTED}",
        "make one with `harness keys generate` (--type ecdsa-p256 for ECDSA)",
    )


def _described(key: object) -> str:
    """What kind of key it is, in words: for the error that refuses it."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an elliptic-curve key on {key.curve.name}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "an RSA key"
    return "a key of another type"


def engine_keys(project_root: Path) -> dict[str, PrivateKey]:
    """Keys for runs on the other engines this machine drives (``harness run --hosts``):
    ``hosts/NAME.key`` in the keys folder signs the runs on host NAME. They are this user's
    configuration, outside every project; what they prove is that this machine made the
    runs on that engine, which is only as strong as the machine that holds them."""
    folder = keys_dir(project_root) / HOSTS_FOLDER
    if not folder.is_dir():
        return {}
    return {
        path.stem: load_private_key(path)
        for path in sorted(folder.glob("*.key"))
        if KEY_NAME.fullmatch(path.stem)
    }


def host_key(project_root: Path, given: Path | None) -> PrivateKey | None:
    """This host's signing key for its runs: ``given``, else ``$HARNESS_HOST_KEY`` (a path
    or the PEM itself), else the default key in the keys folder when there is one; None
    when this host has no key (its runs are then unsigned)."""
    configured = os.environ.get(HOST_KEY_ENV, "")
    if given is None and configured.lstrip().startswith("-----BEGIN"):
        return _private_from_pem(configured.strip().encode() + b"\n", f"${HOST_KEY_ENV}")
    path = given or (Path(configured) if configured else None)
    if path is None:
        default = keys_dir(project_root) / DEFAULT_KEY
        return load_private_key(default) if os.path.lexists(default) else None
    refuse_inside_project(path, project_root, what="the host key")
    return load_private_key(path)


def load_public_key(path: Path) -> PublicKey:
    try:
        data = untrusted.read_bytes(path, limit=KEY_FILE_LIMIT, what="the public key")
    except FileNotFoundError:
        raise KeyFileError(
            f"the public key {path} does not exist", "check the path of the trusted key"
        ) from None
    except untrusted.UntrustedInputError as error:
        raise KeyFileError(error.message, "check the path of the trusted key") from None
    return public_from_pem(data, str(path))


def public_from_pem(data: bytes, where: str) -> PublicKey:
    """The ed25519 or ECDSA P-256 public key of a SubjectPublicKeyInfo PEM."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{where} is not a PEM public key", "use the .pub file `harness keys generate` wrote"
        ) from None
    if isinstance(key, Ed25519PublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise KeyFileError(
        f"{where} is {_described(key)}, not {SUPPORTED}",
        "use the .pub file `harness keys generate` wrote",
    )


def nodes_dir(project_root: Path | None, host: str) -> Path:
    """Where the public keys of a SLURM host's nodes are kept (``nodes/HOST/NODE.pub`` in
    the keys folder), as `harness keys nodes HOST` brought them back from the nodes."""
    return keys_dir(project_root) / NODES_FOLDER / host


def node_public_keys(project_root: Path, host: str) -> dict[str, PublicKey]:
    """The public keys of ``host``'s nodes kept here, by node name."""
    folder = nodes_dir(project_root, host)
    if not folder.is_dir():
        return {}
    return {
        path.stem: load_public_key(path)
        for path in sorted(folder.glob("*.pub"))
        if KEY_NAME.fullmatch(path.stem) and not path.is_symlink()
    }


def all_node_public_keys(project_root: Path) -> list[PublicKey]:
    """Every node public key kept here, of every SLURM host: what `harness certify` on
    this machine trusts besides its own keys (each was made on its node and never left
    it but for its public half)."""
    folder = keys_dir(project_root) / NODES_FOLDER
    if not folder.is_dir():
        return []
    return [
        key
        for host in sorted(folder.iterdir())
        if host.is_dir() and not host.is_symlink() and KEY_NAME.fullmatch(host.name)
        for key in node_public_keys(project_root, host.name).values()
    ]


# -- trust -------------------------------------------------------------------------------


def machine_trusted_paths(project_root: Path) -> list[Path]:
    """The public keys this machine trusts: ``$HARNESS_TRUSTED_KEYS`` (files or folders of
    ``*.pub``, separated like PATH), else the ``trusted/`` folder's ``*.pub``."""
    configured = os.environ.get(TRUSTED_ENV)
    if configured:
        entries = [Path(entry) for entry in configured.split(os.pathsep) if entry]
        where = f"a {TRUSTED_ENV} entry"
    else:
        entries = [trusted_dir()] if trusted_dir().is_dir() else []
        where = "the trusted keys folder"
    paths: list[Path] = []
    for entry in entries:
        refuse_inside_project(entry, project_root, what=where)
        paths.extend(sorted(entry.glob("*.pub")) if entry.is_dir() else [entry])
    return paths


def trusted_keys(
    project_root: Path,
    command_line: Sequence[Path],
    project_listed: Sequence[Path],
) -> list[PublicKey]:
    """The keys a gate accepts: those given on the command line, or else this machine's,
    narrowed to the project's list when it has one."""
    given = list(command_line) or machine_trusted_paths(project_root)
    if not given:
        raise HarnessError(
            NO_TRUSTED_KEY,
            f"pass --key PUB, or name trusted keys outside the project ({TRUSTED_ENV}, "
            f"or *.pub files in {trusted_dir()})",
        )
    keys = _distinct(load_public_key(path) for path in given)
    if not project_listed:
        return keys
    allowed = {key_id(load_public_key(path)) for path in project_listed}
    narrowed = [key for key in keys if key_id(key) in allowed]
    if not narrowed:
        raise HarnessError(
            f"none of the {len(keys)} trusted key(s) is among the project's "
            "[tool.harness.certify] trusted-keys, which may narrow the trusted keys but not add "
            "to them",
            "pass a key the project lists, or have the project list yours",
        )
    return narrowed


def _distinct(keys: Iterable[PublicKey]) -> list[PublicKey]:
    found: dict[str, PublicKey] = {}
    for key in keys:
        found.setdefault(key_id(key), key)
    return list(found.values())
