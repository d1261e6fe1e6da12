"""scikit-learn models saved with skops: equal when the model is, whatever ids and clock
times the two saves wrote; different when a value or the sharing between objects is."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.compare import compare_paths
from harness.compare.model import ArtifactResult


def skops_file(
    path: Path,
    *,
    base: int,
    coef: tuple[float, ...] = (0.25, -1.5),
    shared: bool = True,
    stamp: tuple[int, ...] = (2026, 12, 6, 13, 59, 38),
) -> Path:
    """An ElasticNet as skops.io.dump writes it: member names and ``__id__`` values are
    the process's ``id()``s (``base`` stands for where this process put its objects)."""
    true_id, coef_id, intercept_id = base + 16, base + 32, base + 48

    def flag(identifier: int) -> dict[str, Any]:
        return {
            "__class__": "bool",
            "__loader__": "JsonNode",
            "content": "true",
            "__id__": identifier,
        }

    schema = {
        "__class__": "ElasticNet",
        "__loader__": "ObjectNode",
        "content": {
            "__class__": "dict",
            "content": {
                "fit_intercept": flag(true_id),
                "copy_X": flag(true_id if shared else base + 64),
                "coef_": {
                    "__loader__": "NdArrayNode",
                    "file": f"{coef_id}.npy",
                    "__id__": coef_id,
                },
                "intercept_": {
                    "__loader__": "NdArrayNode",
                    "file": f"{intercept_id}.npy",
                    "__id__": intercept_id,
                },
            },
        },
        "protocol": 2,
    }
    members = {
        f"{coef_id}.npy": np.array(coef),
        f"{intercept_id}.npy": np.array([5.5]),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in members.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), buffer.getvalue())
        text = json.dumps(schema, indent=2)
        archive.writestr(zipfile.ZipInfo("schema.json", date_time=stamp), text)
    return path


def one(a: Path, b: Path, **options: Any) -> ArtifactResult:
    result = compare_paths(a, b, **options)
    assert len(result.artifacts) == 1
    return result.artifacts[0]


def test_two_saves_of_one_model_are_equal(tmp_path: Path) -> None:
    a = skops_file(tmp_path / "a.skops", base=139640620980000)
    b = skops_file(tmp_path / "b.skops", base=140248624226000, stamp=(2026, 12, 7, 1, 2, 4))
    assert a.read_bytes() != b.read_bytes()
    result = one(a, b)
    assert (result.kind, result.status) == ("skops", "equal")


def test_a_coefficient_one_ulp_away_differs_and_is_named_by_its_place(tmp_path: Path) -> None:
    a = skops_file(tmp_path / "a.skops", base=100)
    b = skops_file(tmp_path / "b.skops", base=200, coef=(0.25, float(np.nextafter(-1.5, 0))))
    result = one(a, b)
    assert result.status == "differs"
    [moved] = [tensor for tensor in result.tensors if tensor.status != "identical"]
    assert moved.name == "content/content/coef_"
    assert one(a, b, policy="ulp:1").status == "within"


def test_objects_shared_in_one_model_and_not_in_the_other_differ(tmp_path: Path) -> None:
    a = skops_file(tmp_path / "a.skops", base=100, shared=True)
    b = skops_file(tmp_path / "b.skops", base=100, shared=False)
    assert one(a, b).status == "differs"


def test_a_zip_without_a_schema_is_refused(tmp_path: Path) -> None:
    a = skops_file(tmp_path / "a.skops", base=100)
    b = tmp_path / "b.skops"
    with zipfile.ZipFile(b, "w") as archive:
        archive.writestr("other.json", "{}")
    result = one(a, b)
    assert result.status == "error"
    assert "not a skops file" in (result.error or "")


@pytest.mark.parametrize("schema", [b"{", b"[" * 100_000])
def test_a_broken_schema_is_an_error_not_a_traceback(tmp_path: Path, schema: bytes) -> None:
    a = skops_file(tmp_path / "a.skops", base=100)
    b = tmp_path / "b.skops"
    with zipfile.ZipFile(b, "w") as archive:
        archive.writestr("schema.json", schema)
    assert one(a, b).status == "error"
