"""`harness certify --model-signature`: OpenSSF Model Signing's own verifier, run unchanged,
accepts the signature over the certified model folder, and refuses it once a file is
changed or added, or with another key."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.errors import HarnessError
from harness.runs import records
from harness.trust import keys, model_signature
from tests.conftest import MINIMAL_PYPROJECT
from tests.unit.test_certify_evidence import collected


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    return folder


def ecdsa_pairs(tmp_path: Path) -> dict[str, keys.KeyPair]:
    return {
        n: keys.generate_keys(tmp_path / "keys", n, key_type=keys.ECDSA_P256)
        for n in ("certifier", "leg-1", "leg-2")
    }


def certify(
    project: Path, pairs: dict[str, keys.KeyPair], *extra: str | Path
) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli,
        [
            "--project", str(project), "certify", "--key", str(pairs["certifier"].private),
            "--trusted-key", str(pairs["leg-1"].public),
            "--trusted-key", str(pairs["leg-2"].public),
            *map(str, extra),
        ],
    )  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def model_signing_verify(
    signature: Path, public: Path, model: Path, *, as_a_command: bool = False
) -> tuple[int, str]:
    """model-signing's own command line, as a deployer runs it: a process of its own, or
    (faster: its imports take seconds) the same click command run in this one."""
    arguments = [
        "verify", "key", "--signature", str(signature), "--public_key", str(public), str(model),
    ]  # fmt: skip
    if as_a_command:
        done = subprocess.run(
            [sys.executable, "-m", "model_signing", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr
    from model_signing._cli import main  # noqa: PLC0415 (seconds to import; only here)

    result = CliRunner().invoke(main, arguments)
    return result.exit_code, result.output


def test_model_signing_verifies_the_signature_certify_wrote_and_nothing_else(
    project: Path, tmp_path: Path
) -> None:
    pairs = ecdsa_pairs(tmp_path)
    collected(project, tmp_path, pairs)
    code, stdout, stderr = certify(project, pairs, "--model-signature", "--json")
    assert code == 0, stderr
    written = json.loads(stdout)
    (signed,) = written["model_signatures"]
    signature, model = Path(signed["signature"]), Path(signed["model"])
    assert signed["experiment"] == "demo" and signed["files"] == 1
    assert signature == Path(written["certificate"]).with_name(
        Path(written["certificate"]).name.removesuffix(".intoto.json") + ".demo.sig"
    )
    assert model.parent.parent == project / records.RUNS
    certifier = pairs["certifier"].public

    code, output = model_signing_verify(signature, certifier, model, as_a_command=True)
    assert code == 0, output
    assert "Verification succeeded" in output
    # The folder a deployer ships, copied anywhere, checks the same.
    shipped = tmp_path / "deploy" / "demo-model"
    shutil.copytree(model, shipped)
    code, output = model_signing_verify(signature, certifier, shipped)
    assert code == 0, output

    code, output = model_signing_verify(signature, pairs["leg-1"].public, shipped)
    assert code != 0 and "Verification failed" in output  # another key

    (shipped / "weights.bin").write_bytes(b"\x02")
    code, output = model_signing_verify(signature, certifier, shipped)
    assert code != 0 and "Hash mismatch for 'weights.bin'" in output

    (shipped / "weights.bin").write_bytes(b"\x01")
    (shipped / "extra.bin").write_bytes(b"\x01")
    code, output = model_signing_verify(signature, certifier, shipped)
    assert code != 0 and "Extra files found" in output and "extra.bin" in output
    (shipped / "extra.bin").unlink()
    assert model_signing_verify(signature, certifier, shipped)[0] == 0

    # A signed manifest edited to match a changed file no longer verifies.
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.sig"
    forged.write_text(json.dumps(bundle))
    code, output = model_signing_verify(forged, certifier, shipped)
    assert code != 0 and "Verification failed" in output


def test_the_bundle_is_model_signing_s_format(project: Path, tmp_path: Path) -> None:
    pairs = ecdsa_pairs(tmp_path)
    collected(project, tmp_path, pairs)
    target = tmp_path / "out" / "model.sig"
    code, _, stderr = certify(project, pairs, "--model-signature", target)
    assert code == 0, stderr
    bundle = json.loads(target.read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [pairs["certifier"].keyid]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
    }
    weights = (tmp_path / "a").glob(f"*/{records.ARTIFACTS}/weights.bin")
    digest = records.artifacts(next(weights).parent)[0]["sha256"]
    assert statement["predicate"]["resources"] == [
        {"name": "weights.bin", "algorithm": "sha256", "digest": digest}
    ]


def test_an_ed25519_key_is_refused_before_anything_is_written(
    project: Path, tmp_path: Path
) -> None:
    pairs = {n: keys.generate_keys(tmp_path / "keys", n) for n in ("certifier", "leg-1", "leg-2")}
    collected(project, tmp_path, pairs)
    code, _, stderr = certify(project, pairs, "--model-signature")
    assert code == 2
    assert "needs an ECDSA P-256 key, and this key is ed25519" in stderr
    assert "harness keys generate --type ecdsa-p256" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (project / ".harness" / "certificates").exists()


# -- the files signed are exactly those certify checked --------------------------------


def verification_of(folder: Path, run_id: str = "run-1") -> dict[str, Any]:
    """What certify rebuilt: one experiment whose control run's artifacts are in ``folder``."""
    return {
        "experiments": [
            {
                "name": "train",
                "control_runs": [run_id],
                "artifacts": records.artifacts(folder),
            }
        ]
    }


@pytest.fixture
def model(project: Path) -> Path:
    folder = project / records.RUNS / "run-1" / records.ARTIFACTS
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "b").write_bytes(b"1")
    (folder / "a-b").write_bytes(b"2")
    (folder / "a.txt").write_bytes(b"3")
    return folder


def test_the_manifest_lists_the_files_in_model_signing_s_order(project: Path, model: Path) -> None:
    (found,) = model_signature.models(project, verification_of(model))
    # model-signing sorts paths by their components: a/b before a-b, unlike plain strings.
    assert [path for path, _ in found.files] == ["a/b", "a-b", "a.txt"]


@pytest.mark.parametrize("change", ["edited", "added", "removed", "linked"])
def test_a_model_folder_that_changed_since_certify_checked_it_is_not_signed(
    project: Path, model: Path, tmp_path: Path, change: str
) -> None:
    document = verification_of(model)
    if change == "edited":
        (model / "a.txt").write_bytes(b"changed")
    elif change == "added":
        (model / "new.bin").write_bytes(b"")
    elif change == "removed":
        (model / "a.txt").unlink()
    else:
        (tmp_path / "secret").write_bytes(b"3")
        (model / "a.txt").unlink()
        (model / "a.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(model_signature.ModelSignatureError) as caught:
        model_signature.models(project, document)
    expected = "a symbolic link" if change == "linked" else "no longer holds exactly"
    assert expected in caught.value.one_line()


def test_paths_model_signing_never_checks_and_empty_models_are_refused(
    project: Path, model: Path
) -> None:
    (model / ".gitignore").write_bytes(b"*")
    with pytest.raises(model_signature.ModelSignatureError, match="does not look"):
        model_signature.models(project, verification_of(model))
    empty = verification_of(model)
    empty["experiments"][0]["artifacts"] = []
    with pytest.raises(model_signature.ModelSignatureError, match="no artifact"):
        model_signature.models(project, empty)


def test_one_path_names_one_model(project: Path, model: Path, tmp_path: Path) -> None:
    (found,) = model_signature.models(project, verification_of(model))
    certificate = tmp_path / "abc.intoto.json"
    assert model_signature.targets(certificate, [found], None) == [
        (found, tmp_path / "abc.train.sig")
    ]
    assert model_signature.targets(certificate, [found], tmp_path / "m.sig") == [
        (found, tmp_path / "m.sig")
    ]
    with pytest.raises(HarnessError, match="inside the model folder"):
        model_signature.targets(certificate, [found], model / "model.sig")
    second = model_signature.Model("eval", model, found.files)
    with pytest.raises(HarnessError, match="covers 2 experiments"):
        model_signature.targets(certificate, [found, second], tmp_path / "m.sig")
