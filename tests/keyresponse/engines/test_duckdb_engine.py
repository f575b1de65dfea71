"""DuckDBEngine: the trail layout, unreadable files, the Parquet cache, S3 sources and bound values."""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files
from keyresponse.errors import InputError
from keyresponse.sandbox import MotoSandbox

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "cloudtrail" / "stratus_red_team_detonation_logs.json"
WINDOW = {"start_day": "2024/01/01", "end_day": "2024/12/31",
          "start_time": "2024-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}
BACKDOOR_KEY = "AKIA30BEZSJBVKOFKZW0"  # aws.persistence.iam-backdoor-user, 2024/07/30


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return list(json.loads(FIXTURE.read_text())["Records"])


@pytest.fixture
def logs(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    write_trail_files(records, tmp_path / "logs")
    return tmp_path / "logs"


def count(engine: DuckDBEngine) -> int:
    return int(engine.sql("SELECT count(*) FROM cloudtrail")[0][0])


def test_skips_unreadable_files_with_a_warning_naming_them(
    logs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = next((logs / "AWSLogs").glob("*/CloudTrail/*/2024/07/30"))
    corrupt = day / "111122223333_CloudTrail_us-east-1_20240730T0000Z_CORRUPTCORRUPT00.json.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    not_json = day / "111122223333_CloudTrail_us-east-1_20240730T0005Z_NOTJSONNOTJSON00.json"
    not_json.write_text("<html>AccessDenied</html>")
    wrong_shape = day / "111122223333_CloudTrail_us-east-1_20240730T0010Z_WRONGSHAPE000000.json"
    wrong_shape.write_text('{"Records": {"not": "a list"}}')
    with caplog.at_level(logging.WARNING), DuckDBEngine(logs, cache_dir=tmp_path / "cache") as engine:
        rows = engine.run("key_events", {"access_key_ids": [BACKDOOR_KEY], **WINDOW})
        skipped = {s.path for s in engine.skipped_files}
        gaps = engine.logging_gaps
        total = count(engine)
    assert [r["event_name"] for r in rows] == ["CreateAccessKey"]
    assert total == 310
    bad = {str(corrupt), str(not_json)}
    assert skipped == bad  # a JSON file that holds no records is read and yields nothing
    for path in bad:
        assert any(path in message for message in caplog.messages)
        assert any(path in gap for gap in gaps)


def test_reuses_the_parquet_cache_and_rereads_a_changed_folder(
    logs: Path, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    cache = tmp_path / "cache"
    with DuckDBEngine(logs, cache_dir=cache) as engine:
        engine.load()
        assert count(engine) == 310
    first = sorted((cache / "cloudtrail-parquet").glob("*.parquet"))
    with DuckDBEngine(logs, cache_dir=cache) as engine:
        engine.load()
        assert count(engine) == 310
    assert sorted((cache / "cloudtrail-parquet").glob("*.parquet")) == first  # nothing re-ingested
    late = dict(records[0], eventID="late-arrival", eventTime="2024-07-30T23:59:00Z")
    write_trail_files([late], logs)
    with DuckDBEngine(logs, cache_dir=cache) as engine:
        engine.load()
        assert count(engine) == 311  # the changed folder is re-read, its old rows not counted twice
        assert engine.sql("SELECT count(*) FROM cloudtrail WHERE eventid = 'late-arrival'") == [(1,)]


def test_an_open_engine_sees_files_delivered_while_it_investigates(
    logs: Path, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """Folder listings are reused between queries only while the folder is unchanged."""
    params = {"access_key_ids": [BACKDOOR_KEY], **WINDOW}
    with DuckDBEngine(logs, cache_dir=tmp_path / "cache") as engine:
        before = engine.run("key_events", params)
        units = {u.day: u for u in engine.load()}
        assert before and {u.day: u for u in engine.load()} == units  # unchanged: the same units
        ours = next(r for r in records if r.get("userIdentity", {}).get("accessKeyId") == BACKDOOR_KEY)
        write_trail_files([dict(ours, eventID="delivered-late", eventTime="2024-07-30T23:58:00Z")], logs)
        after = engine.run("key_events", params)
        assert len(after) == len(before) + 1
        assert "delivered-late" in {row["event_id"] for row in after}
        changed = {u.day: u for u in engine.load()}["2024/07/30"]
        assert len(changed.files) == len(units["2024/07/30"].files) + 1


def test_a_file_rewritten_in_place_is_seen_once_its_folder_listing_is_older_than_the_limit(
    logs: Path, tmp_path: Path, records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder whose mtime is unchanged (nothing added, removed or renamed) is trusted for
    LISTING_MAX_AGE seconds; a rewrite in place (same name, new content) is seen after that."""
    from keyresponse.engines import trail_files

    params = {"access_key_ids": [BACKDOOR_KEY], **WINDOW}
    monkeypatch.setattr(trail_files, "LISTING_MAX_AGE", 3600.0)
    with DuckDBEngine(logs, cache_dir=tmp_path / "cache") as engine:
        before = engine.run("key_events", params)
        target = next(f for u in engine.load() for f in u.files if u.day == "2024/07/30")
        folder_mtime = target.parent.stat().st_mtime_ns
        data = json.loads(gzip.decompress(target.read_bytes()))
        ours = next(r for r in records if r.get("userIdentity", {}).get("accessKeyId") == BACKDOOR_KEY)
        data["Records"].append(dict(ours, eventID="rewritten-in-place", eventTime="2024-07-30T23:57:00Z"))
        with open(target, "wb") as out:  # in place: the folder's entries (and mtime) do not change
            out.write(gzip.compress(json.dumps(data).encode()))
        os.utime(target.parent, ns=(folder_mtime, folder_mtime))
        assert engine.run("key_events", params) == before  # trusted: listed moments ago, folder unchanged
        monkeypatch.setattr(trail_files, "LISTING_MAX_AGE", 0.0)
        after = engine.run("key_events", params)
        assert "rewritten-in-place" in {row["event_id"] for row in after}
        assert len(after) == len(before) + 1


def test_loads_only_the_window_and_reports_days_without_files(logs: Path, tmp_path: Path) -> None:
    with DuckDBEngine(logs, cache_dir=tmp_path / "cache") as engine:
        units = engine.load("2024/07/29", "2024/07/30")
        assert units and {u.day for u in units} == {"2024/07/30"}
        assert engine.logging_gaps == ["no CloudTrail files for day 2024/07/29"]
        assert engine.sql('SELECT DISTINCT "timestamp" FROM cloudtrail') == [("2024/07/30",)]
        engine.run("key_events", {"access_key_ids": [BACKDOOR_KEY], **WINDOW})
        assert engine.last_bytes_scanned > 0 and engine.bytes_scanned >= engine.last_bytes_scanned
        with pytest.raises(InputError):
            engine.load("2024/08/01", "2024/07/01")


def test_reads_loose_files_without_the_trail_layout(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    loose = tmp_path / "export"
    loose.mkdir()
    (loose / "events.json").write_text(json.dumps({"Records": records[:10]}))
    (loose / "more.json").write_text(json.dumps(records[10:12]))  # a bare list of records
    with DuckDBEngine(loose, cache_dir=tmp_path / "cache") as engine:
        engine.load()
        assert count(engine) == 12
        [(region, day)] = engine.sql('SELECT region, "timestamp" FROM cloudtrail WHERE eventid = $id',
                                     {"id": records[0]["eventID"]})
        assert (region, day) == (records[0]["awsRegion"], records[0]["eventTime"][:10].replace("-", "/"))


def test_injection_shaped_values_are_bound_not_executed(logs: Path, tmp_path: Path) -> None:
    with DuckDBEngine(logs, cache_dir=tmp_path / "cache") as engine:
        hostile = ["x') OR 1=1 --", "'; DROP VIEW cloudtrail; --", "$access_key_ids"]
        assert engine.run("key_events", {"access_key_ids": hostile, **WINDOW}) == []
        assert engine.run("other_principals_by_source_ip", {
            "source_ips": ["1.2.3.4' OR '1'='1"], "access_key_ids": hostile, **WINDOW}) == []
        assert count(engine) == 310


def test_reads_an_s3_bucket_downloading_only_the_windows_days(
    sandbox: MotoSandbox, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    bucket = f"trail-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    s3 = boto3.client("s3", endpoint_url=sandbox.endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    written = write_trail_files(records, tmp_path / "upload")
    for path in written:
        s3.upload_file(str(path), bucket, "org/" + path.relative_to(tmp_path / "upload").as_posix())
    cache = tmp_path / "cache"
    with DuckDBEngine(f"s3://{bucket}/org", cache_dir=cache, s3_client=s3) as engine:
        rows = engine.run("persistence_events", {
            "access_key_ids": [BACKDOOR_KEY], "start_day": "2024/07/30", "end_day": "2024/07/30",
            "start_time": "2024-07-30T00:00:00Z", "end_time": "2024-07-31T00:00:00Z"})
    assert [r["event_name"] for r in rows] == ["CreateAccessKey"]
    downloaded = [p for p in (cache / "s3" / bucket).rglob("*.json.gz")]
    expected = [p for p in written if "/2024/07/30/" in p.as_posix()]
    assert downloaded and len(downloaded) == len(expected) < len(written)
