"""`keyresponse demo --json` end to end: a sandbox, the pivot-chain attack, the signed alert to a
running receiver (which contains the key itself), approvals, and the summary the command prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keyresponse.markdown import text

pytestmark = pytest.mark.slow  # the whole demo: sandbox, receiver and runner, three approved phases


@pytest.fixture(scope="module")
def demo(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo as a user runs it (a child process); it reuses the session's Prefect server."""
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "keyresponse", "demo", "--json", "--events", "3000",
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PREFECT_API_URL": prefect_server}, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _record(summary: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(Path(summary["report"]["json"]).read_text())
    return record


def test_demo_json_names_every_credential_in_scope_and_how_each_was_contained(demo: dict[str, Any]) -> None:
    assert demo["status"] == "recovered", demo
    in_scope = _record(demo)["investigation"]["credentials"]
    assert [c["access_key_id"] for c in demo["credentials"]] == [c["access_key_id"] for c in in_scope]
    assert {c["kind"] for c in demo["credentials"]} == {"original", "access_key", "session"}, demo["credentials"]
    assert demo["credentials_contained"] == [c["access_key_id"] for c in in_scope]
    for cred in demo["credentials"]:
        assert cred["contained"], cred
        if cred["kind"] == "session":
            assert cred["how"].startswith("sessions revoked by the deny policy on "), cred
        else:
            assert "key deactivated" in cred["how"], cred


def test_demo_report_timeline_has_the_alert_received_before_the_key_was_contained(demo: dict[str, Any]) -> None:
    record = _record(demo)
    timeline = record["timeline"]
    spool = Path(demo["out"]) / "home" / "spool"
    spooled = [json.loads(p.read_text()) for p in (*spool.glob("alerts/*.json"), *spool.glob("archive/*.json"))]
    opened = next(s for s in spooled if s["incident_id"] == demo["incident_id"] and not s.get("duplicate_of"))
    # the receiver's spool time, to the second, not a later stamp of the run
    assert timeline["alert_received_at"] == opened["received_at"][:19] + "Z", (timeline, opened["received_at"])
    assert timeline["alert_received_at"] <= timeline["contained_at"] <= timeline["closed_at"], timeline
    markdown = Path(demo["report"]["markdown"]).read_text()
    received = markdown.index(f"| {text('Alert received (IR notified)')} |")
    contained = markdown.index("| Contained |")
    assert received < contained
