"""The run spec: what the host writes, validated before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.runtime.spec import SCHEMA, SpecError, load, parse


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": "torch-0001",
        "experiment": "torch",
        "entry": "experiments.torch_convnet:train",
        "command": None,
        "parameters": {"steps": 20},
        "seed": 0,
        "profile": "strict",
        "threads": 1,
        "device": "cpu",
        "output": "/harness/out",
        "meta": "/harness/meta",
        "inputs": {"data": "/harness/inputs/data"},
    }
    base.update(changes)
    return base


def test_the_contract_example_parses() -> None:
    spec = parse(document(project="/harness/project", added_by_a_newer_host=True))
    assert spec.entry_parts == ("experiments.torch_convnet", "train")
    assert spec.command is None
    assert spec.parameters == {"steps": 20}
    assert spec.inputs == {"data": Path("/harness/inputs/data")}
    assert spec.output == Path("/harness/out")
    assert spec.meta == Path("/harness/meta")
    assert spec.project == Path("/harness/project")
    assert (spec.seed, spec.profile, spec.threads, spec.device) == (0, "strict", 1, "cpu")


def test_a_command_spec_parses_and_has_no_entry() -> None:
    spec = parse(document(entry=None, command=["python", "train.py"], parameters=None))
    assert spec.command == ("python", "train.py")
    assert spec.parameters == {}
    with pytest.raises(SpecError, match="command, not an entry"):
        _ = spec.entry_parts


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema": "harness.run-spec/v2"}, "schema"),
        ({"command": ["python"]}, "exactly one of entry and command"),
        ({"entry": None}, "exactly one of entry and command"),
        ({"entry": "experiments.torch_convnet"}, "module:function"),
        ({"entry": ":train"}, "module:function"),
        ({"entry": None, "command": []}, "non-empty list of strings"),
        ({"entry": None, "command": "python train.py"}, "non-empty list of strings"),
        ({"parameters": {"seed": 1}}, "may not be named seed"),
        ({"parameters": [1]}, "parameters must be an object"),
        ({"inputs": {"data": 1}}, "inputs must map names to paths"),
        ({"profile": "fast"}, "unknown profile 'fast': known profiles are strict, portable"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"device": "tpu"}, "device must be"),
        ({"output": ""}, "output must be a non-empty string"),
        ({"run_id": None}, "run_id must be a non-empty string"),
        ({"project": 3}, "project must be a non-empty string"),
    ],
)
def test_invalid_specs_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse(document(**changes))


def test_load_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the run spec"):
        load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SpecError, match="is not JSON"):
        load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SpecError, match="must be a JSON object"):
        load(tmp_path / "list.json")
    (tmp_path / "good.json").write_text(json.dumps(document()))
    assert load(tmp_path / "good.json").run_id == "torch-0001"
