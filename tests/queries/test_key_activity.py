"""The scoping queries: summary, by source IP, by region, the timeline, activity after a time, recon, other principals."""

from __future__ import annotations

from typing import Any

from keyresponse.engines.duckdb_engine import DuckDBEngine

PASSWORD_DATA = "aws.credential-access.ec2-get-password-data"


def test_summary_counts_calls_errors_and_first_last_use(
    engine: DuckDBEngine, wide: dict[str, str], stratus_by_technique: dict[str, list[dict[str, Any]]]
) -> None:
    records = [r for r in stratus_by_technique[PASSWORD_DATA] if r["userIdentity"].get("accessKeyId") == "ASIANQQHHS551LWULIWD"]
    [row] = engine.run("key_activity_summary", {"access_key_ids": ["ASIANQQHHS551LWULIWD"], **wide})
    assert row["event_count"] == len(records)
    assert row["error_count"] == sum(1 for r in records if r.get("errorCode"))
    assert row["first_seen_at"] == min(r["eventTime"] for r in records)
    assert row["last_seen_at"] == max(r["eventTime"] for r in records)
    assert row["principal_type"] == "AssumedRole"
    assert row["principal_arns"] == sorted({r["userIdentity"]["arn"] for r in records})


def test_by_source_ip_lists_user_agents_and_keys(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    keys = technique_keys[PASSWORD_DATA]
    rows = engine.run("key_activity_by_source_ip", {"access_key_ids": keys, **wide})
    assert sum(r["event_count"] for r in rows) == 34
    top = rows[0]
    assert isinstance(top["user_agents"], list) and top["user_agents"] == sorted(top["user_agents"])
    assert set(top["access_key_ids"]) <= set(keys)
    assert top["first_seen_at"] <= top["last_seen_at"]


def test_by_region_and_timeline_agree(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    keys = technique_keys["aws.execution.ssm-send-command"]
    regions = engine.run("key_activity_by_region", {"access_key_ids": keys, **wide})
    events = engine.run("key_events", {"access_key_ids": keys, **wide})
    assert sum(r["event_count"] for r in regions) == len(events) == 56
    assert {r["aws_region"] for r in regions} == {e["aws_region"] for e in events}
    assert [e["event_time"] for e in events] == sorted(e["event_time"] for e in events)


def test_time_window_is_half_open(engine: DuckDBEngine, technique_keys: dict[str, list[str]]) -> None:
    keys = technique_keys["aws.defense-evasion.cloudtrail-stop"]
    [event] = engine.run("key_events", {"access_key_ids": keys, "start_day": "2024/01/01", "end_day": "2024/12/31",
                                        "start_time": "2024-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"})
    at = event["event_time"]
    bounds = {"access_key_ids": keys, "start_day": "2024/01/01", "end_day": "2024/12/31"}
    assert engine.run("key_events", {**bounds, "start_time": at, "end_time": "2025-01-01T00:00:00Z"})
    assert not engine.run("key_events", {**bounds, "start_time": "2024-01-01T00:00:00Z", "end_time": at})


def test_activity_after_shows_only_later_calls(engine: DuckDBEngine, technique_keys: dict[str, list[str]]) -> None:
    keys = technique_keys["aws.execution.ssm-start-session"]
    days = {"access_key_ids": keys, "start_day": "2024/01/01", "end_day": "2024/12/31"}
    everything = engine.run("key_activity_after", {**days, "after_time": "2024-01-01T00:00:00Z"})
    last = max(r["last_seen_at"] for r in everything)
    later = engine.run("key_activity_after", {**days, "after_time": last})
    assert later and all(r["last_seen_at"] == last for r in later)
    assert engine.run("key_activity_after", {**days, "after_time": "2030-01-01T00:00:00Z"}) == []


def test_recon_errors_group_denied_calls(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    rows = engine.run("recon_errors", {"access_key_ids": technique_keys[PASSWORD_DATA], **wide})
    by = {(r["event_name"], r["error_code"]): r["call_count"] for r in rows}
    assert by[("GetPasswordData", "Client.UnauthorizedOperation")] == 30
    assert engine.run("recon_errors", {"access_key_ids": technique_keys["aws.persistence.iam-backdoor-user"], **wide}) == []


def test_other_principals_from_the_attackers_ips_leave_known_keys_out(engine: DuckDBEngine, wide: dict[str, str]) -> None:
    ips = ["200.249.253.51"]
    rows = engine.run("other_principals_by_source_ip", {"source_ips": ips, "access_key_ids": ["AKIAWOGXN38MFN92ING5"], **wide})
    assert {r["access_key_id"] for r in rows} == {"ASIANQQHHS551LWULIWD"}
    assert rows[0]["event_names"] == ["GetPasswordData"]
    none = engine.run("other_principals_by_source_ip", {
        "source_ips": ips, "access_key_ids": ["AKIAWOGXN38MFN92ING5", "ASIANQQHHS551LWULIWD"], **wide})
    assert none == []
