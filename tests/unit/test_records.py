from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from harness.errors import HarnessError, RunNotFound
from harness.runs import records


def make_run(root: Path, run_id: str, status: str = "succeeded") -> Path:
    folder = root / records.RUNS / run_id
    records.write(folder, {"schema": records.SCHEMA, "run_id": run_id, "status": status})
    return folder


def test_run_ids_sort_by_start_time_and_are_unique() -> None:
    moment = dt.datetime(2026, 11, 26, 6, 45, 1, tzinfo=dt.UTC)
    first, second = records.new_run_id("torch", moment), records.new_run_id("torch", moment)
    assert re.fullmatch(r"20261126-064501-torch-[0-9a-f]{6}", first)
    assert first != second


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "20260101-000000-a-000001")
    assert records.read(folder)["status"] == "succeeded"
    assert [p.name for p in folder.iterdir()] == ["record.json"]  # no temporary left over


def test_a_truncated_record_is_reported_not_raised_as_traceback(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "20260101-000000-a-000001")
    (folder / "record.json").write_text('{"schema": "harness.run-record/v1", "run_')
    with pytest.raises(records.CorruptRecord, match="cannot be read"):
        records.read(folder)


def test_a_record_of_another_schema_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "record.json").write_text(json.dumps({"schema": "other/v9"}))
    with pytest.raises(records.CorruptRecord, match="other/v9"):
        records.read(folder)


def test_find_by_id_prefix_and_folder(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101-000000-torch-aaaaaa")
    make_run(tmp_path, "20260101-000001-torch-bbbbbb")
    assert records.find(tmp_path, "20260101-000000-torch-aaaaaa") == a
    assert records.find(tmp_path, "20260101-000000") == a
    assert records.find(tmp_path, str(a)) == a
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        records.find(tmp_path, "20260101")
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        records.find(tmp_path, "nope")


def test_all_records_keeps_unreadable_runs_visible(tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-000000-a-000001")
    broken = make_run(tmp_path, "20260101-000002-b-000002")
    (broken / "record.json").write_text("{")
    found = list(records.all_records(tmp_path))
    assert [f.name for f, _ in found] == ["20260101-000000-a-000001", "20260101-000002-b-000002"]
    assert found[1][1] is None


def test_folder_digest_depends_on_names_and_contents_only(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, order in ((one, ("a", "b")), (two, ("b", "a"))):
        (folder / "sub").mkdir(parents=True)
        for name in order:
            (folder / "sub" / name).write_text(name)
    assert records.digest_path(one) == records.digest_path(two)
    (two / "sub" / "a").write_text("changed")
    assert records.digest_path(one)["sha256"] != records.digest_path(two)["sha256"]
    assert records.digest_path(one / "sub" / "a")["kind"] == "file"
    with pytest.raises(HarnessError, match="does not exist"):
        records.digest_path(tmp_path / "missing")


def test_artifacts_list_every_file_with_its_kind(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "nested" / "model.pt").write_bytes(b"pt")
    (tmp_path / "weights.bin2").write_bytes(b"?")
    listed = {a["path"]: a["kind"] for a in records.artifacts(tmp_path)}
    assert listed == {"metrics.json": "json", "nested/model.pt": "pt", "weights.bin2": "bytes"}


def test_log_tail_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert records.log_tail(log, 2) == ["line 99998", "line 99999"]
    assert records.log_tail(tmp_path / "none.txt") == []


def test_an_artifact_that_is_a_link_is_refused_not_hashed(tmp_path: Path) -> None:
    """A container can leave a link in its output folder; hashing it would make the record
    (and a certificate) vouch for whatever file of this machine it points to."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "model.npy").write_bytes(b"weights")
    (artifacts / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(records.CorruptRecord, match=r"artifact passwd .* \(a symbolic link\)"):
        records.artifacts(artifacts)


def test_records_are_read_within_bounds(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "record.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(records.CorruptRecord, match="nests deeper than"):
        records.read(folder)


def test_recent_seconds_is_the_median_of_the_newest_succeeded_runs(tmp_path: Path) -> None:
    root = records.runs_root(tmp_path)
    for stamp, experiment, status, seconds in (
        ("20260101-000000", "torch", "succeeded", 50.0),  # older than the newest three
        ("20260102-000000", "torch", "succeeded", 10.0),
        ("20260103-000000", "torch", "failed", 1.0),  # a failed run says nothing
        ("20260104-000000", "torch", "succeeded", 12.0),
        ("20260105-000000", "torch", "succeeded", 30.0),
        ("20260106-000000", "torch-big", "succeeded", 99.0),  # another experiment
    ):
        folder = root / f"{stamp}-{experiment}-abcdef"
        folder.mkdir(parents=True)
        record = {"schema": records.SCHEMA, "status": status, "timings": {"container_s": seconds}}
        records.write(folder, record)
    (root / "20260107-000000-torch-0a0b0c").mkdir()  # a run folder without its record
    assert records.recent_seconds(tmp_path, "torch") == 12.0
    assert records.recent_seconds(tmp_path, "torch-big") == 99.0
    assert records.recent_seconds(tmp_path, "sklearn") is None
    assert records.recent_seconds(tmp_path / "elsewhere", "torch") is None
