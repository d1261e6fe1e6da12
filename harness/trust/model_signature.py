"""OpenSSF Model Signing signatures over certified artifacts: a model folder checked where
harness is not installed, by `model_signing verify key` and the certifier's public key.

A deployer admitting a model checks its folder, not harness's certificate: model-signing
(https://github.com/sigstore/model-transparency) hashes every file under the folder and
compares them with a signed manifest. `harness certify --model-signature` writes that
signature for each certified experiment, over its model folder: the artifacts folder of the
control run the certificate's digests come from, whose files are exactly the artifacts the
certificate names. They are hashed again here, opened without following any link, and
must still have the certified bytes: a file that changed, appeared or went since certify
checked them is refused, never signed.

The format is model-signing 1.x's key method, written here rather than through its
library (a development dependency only, whose test runs its verifier unchanged on what
this writes): a Sigstore bundle (v0.3 JSON) with no transparency log entry, naming the
key by the sha256 of its PEM, around a DSSE envelope whose payload is an in-toto
Statement v1 of predicate type ``https://model_signing/signature/v1.0``. Its one subject
is the model (the experiment's name) with the sha256 over every file's digest in manifest
order; its predicate gives the serialization (``files``, sha256, no links) and each file
with its sha256. The envelope is signed as harness signs every DSSE envelope; the key
must be ECDSA P-256, since model-signing's key method verifies elliptic-curve keys only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from harness import atomic
from harness.errors import ConfigError, HarnessError
from harness.runs import records
from harness.trust import dsse, keys

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
# How the manifest was made, as model-signing records it: one entry per file, hashed whole
# with sha256, links refused (its verifier then refuses a link in the folder too).
SERIALIZATION = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
# What model-signing's verifier leaves out of a folder by default (--ignore-git-paths): a
# file there could never be checked, so a model holding one is not signed.
VERIFIER_IGNORES = (".git", ".gitattributes", ".github", ".gitignore")
SUFFIX = ".sig"


class ModelSignatureError(HarnessError):
    """A model signature cannot be made: trouble, and nothing is written."""


@dataclass(frozen=True)
class Model:
    """One certified experiment's model folder and its files, hashed again."""

    experiment: str
    folder: Path
    # (path relative to the folder, sha256), in model-signing's manifest order.
    files: list[tuple[str, str]]


def require_signing_key(key: keys.PrivateKey) -> ec.EllipticCurvePrivateKey:
    """The key, when model-signing's verifier can check its signatures."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise ConfigError(
        f"--model-signature needs an ECDSA P-256 key, and this key is {keys.key_type_of(key)}: "
        "model-signing's key method verifies elliptic-curve keys only",
        "make one with `harness keys generate --type ecdsa-p256 --name NAME` and certify "
        "with --key NAME.key (deployers then trust NAME.pub)",
    )


def models(project_root: Path, verification: Mapping[str, Any]) -> list[Model]:
    """The model folder of every experiment the verification certifies, each file hashed
    again: the first control run's ``artifacts/``, holding exactly the certified files."""
    found = []
    for experiment in verification["experiments"]:
        name = str(experiment["name"])
        run_id = str(experiment["control_runs"][0])
        folder = records.runs_root(project_root) / run_id / records.ARTIFACTS
        certified = {str(a["path"]): str(a["sha256"]) for a in experiment["artifacts"]}
        if not certified:
            raise ModelSignatureError(
                f"experiment {name} has no artifact, so there is no model to sign",
                "declare the model files under the experiment's outputs, or leave out "
                "--model-signature",
            )
        for path in certified:
            first = PurePosixPath(path).parts[0]
            if first in VERIFIER_IGNORES:
                raise ModelSignatureError(
                    f"artifact {path} of {name} lies where model-signing's verifier does not "
                    f"look ({', '.join(VERIFIER_IGNORES)}), so it could never be checked",
                    "write the model under another name, or leave out --model-signature",
                )
        try:
            present = records.artifacts(folder)
        except (OSError, HarnessError) as error:
            reason = error.message if isinstance(error, HarnessError) else error.strerror
            raise ModelSignatureError(
                f"cannot read the model folder {folder} of {name}: {reason}",
                "certify again from runs left as they were made",
            ) from None
        hashed = {str(a["path"]): str(a["sha256"]) for a in present}
        if hashed != certified:
            raise ModelSignatureError(
                f"the model folder {folder} of {name} no longer holds exactly the certified "
                "files: it changed after certify checked it",
                "run the experiment again and certify that; never sign changed artifacts",
            )
        ordered = sorted(hashed.items(), key=lambda item: PurePosixPath(item[0]).parts)
        found.append(Model(name, folder, ordered))
    return found


def statement(model: Model) -> dict[str, Any]:
    """The in-toto Statement model-signing's verifier reads back into a manifest."""
    resources = [
        {"name": path, "algorithm": "sha256", "digest": digest} for path, digest in model.files
    ]
    # The subject's digest: sha256 over the files' digests, in the order listed.
    root = hashlib.sha256(b"".join(bytes.fromhex(digest) for _, digest in model.files))
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model.experiment, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": dict(SERIALIZATION), "resources": resources},
    }


def bundle(model: Model, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The Sigstore bundle holding the signed statement, naming the key as model-signing
    does (sha256 of its public PEM); it has no transparency log entry to offer."""
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hashlib.sha256(keys.public_pem(key.public_key())).hexdigest()},
            "tlogEntries": [],
        },
        "dsseEnvelope": dsse.seal(statement(model), key),
    }


def default_path(certificate: Path, experiment: str) -> Path:
    """Beside the certificate: CERT.EXPERIMENT.sig (CERT without .intoto.json)."""
    if not records.RUN_ID.fullmatch(experiment):
        raise ModelSignatureError(
            f"experiment name {experiment[:60]!r} is not a plain file name",
            "pass --model-signature PATH and certify one experiment at a time",
        )
    stem = certificate.name.removesuffix(".json").removesuffix(".intoto")
    return certificate.with_name(f"{stem}.{experiment}{SUFFIX}")


def targets(
    certificate: Path, models_: Sequence[Model], given: Path | None
) -> list[tuple[Model, Path]]:
    """Where each model's signature goes: ``given`` for the one model certified, else
    beside the certificate, one per experiment."""
    if given is None:
        return [(model, default_path(certificate, model.experiment)) for model in models_]
    if len(models_) != 1:
        names = ", ".join(m.experiment for m in models_)
        raise ConfigError(
            f"--model-signature PATH names one file, and this certificate covers "
            f"{len(models_)} experiments ({names}), one model each",
            "leave out PATH to write CERT.EXPERIMENT.sig beside the certificate for each",
        )
    model = models_[0]
    if given.resolve().is_relative_to(model.folder.resolve()):
        raise ConfigError(
            f"--model-signature {given} is inside the model folder {model.folder}: it would "
            "add a file to the certified run",
            "write the signature outside the folder (the default is beside the certificate)",
        )
    return [(model, given)]


def write(path: Path, document: Mapping[str, Any]) -> None:
    atomic.write_bytes(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
