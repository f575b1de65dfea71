"""Records with odd shapes (Panther's rule tests) load, and their times compare as times."""

from __future__ import annotations

import json
import re
from pathlib import Path

from keyresponse.engines.duckdb_engine import DuckDBEngine

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cloudtrail" / "panther_analysis_cloudtrail_rule_tests.trimmed.json"


def test_space_separated_event_times_become_iso(engine: DuckDBEngine) -> None:
    records = json.loads(FIXTURE.read_text())["Records"]
    odd = [r for r in records if isinstance(r.get("eventTime"), str) and re.match(r"\d{4}-\d\d-\d\d \d", r["eventTime"])]
    assert len(odd) >= 100
    engine.load()
    ids = [r["eventID"] for r in odd if r.get("eventID")]
    rows = engine.sql("SELECT eventtime, \"timestamp\" FROM cloudtrail WHERE list_contains($ids, eventid)", {"ids": ids})
    assert rows and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t, _ in rows)
    assert all(day == t[:10].replace("-", "/") for t, day in rows)


def test_records_without_identity_or_time_do_not_break_queries(engine: DuckDBEngine) -> None:
    engine.load()  # every day
    [(total, no_identity)] = engine.sql("SELECT count(*), count(*) FILTER (WHERE useridentity IS NULL) FROM cloudtrail")
    assert total == 310 + 156 and no_identity >= 1
