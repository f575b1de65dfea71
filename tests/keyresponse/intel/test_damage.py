"""Damage: created / changed / deleted, data read, cost, and the one-sentence summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from keyresponse.intel.damage import assess_damage


def _run(i: int, itype: str, count: int, region: str = "us-east-1", error: str | None = None) -> dict[str, Any]:
    items = [{"instanceId": f"i-{i}{n:03d}", "instanceType": itype} for n in range(count)]
    return {"event_id": f"r{i}", "event_time": "2026-11-19T10:00:00Z", "event_name": "RunInstances",
            "event_source": "ec2.amazonaws.com", "aws_region": region, "error_code": error,
            "request_parameters": json.dumps({"instanceType": itype}),
            "response_elements": None if error else json.dumps({"instancesSet": {"items": items}})}


def test_instance_hours_are_priced_per_type_with_assumptions() -> None:
    events = [_run(1, "c5.4xlarge", 3), _run(2, "p3.16xlarge", 2), _run(3, "p3.16xlarge", 8, error="VcpuLimitExceeded")]
    out = assess_damage({"verdict": "malicious"}, events=events, as_of=datetime(2026, 11, 19, 20, tzinfo=UTC))
    cost = out["cost_estimate"]
    assert len([i for i in cost["items"] if i["kind"] == "ec2_instance"]) == 5
    assert cost["total_usd"] == round(10 * (3 * 0.68 + 2 * 24.48), 2)
    assert cost["ongoing_usd_per_day"] == round(24 * (3 * 0.68 + 2 * 24.48), 2)
    assert len(cost["assumptions"]) >= 2 and cost["as_of"] == "2026-11-19T20:00:00Z"


def test_unknown_instance_type_uses_default_and_says_so() -> None:
    inv = {"verdict": "malicious", "window": {"end": "2026-11-19T12:00:00Z"},
           "resources_created": [{"type": "ec2:instance", "id": "i-1", "region": "us-east-1",
                                  "event_name": "RunInstances", "event_time": "2026-11-19T10:00:00Z"}]}
    cost = assess_damage(inv)["cost_estimate"]
    assert cost["total_usd"] == 2.0 and cost["confidence"] == "low"
    assert any("unknown or unpriced" in a for a in cost["assumptions"])


def test_investigation_only_still_answers() -> None:
    inv = {"verdict": "malicious", "resources_created": [{"type": "iam:user", "id": "backdoor", "region": "global"}],
           "persistence": [{"event_name": "AttachUserPolicy", "resource": "backdoor", "event_time": None}],
           "data_access": [{"event_name": "GetSecretValue", "resource": "prod/db", "count": 1}],
           "logging_gaps": ["no S3 data events"]}
    out = assess_damage(inv)
    assert out["secrets_to_rotate"] == ["prod/db"]
    assert out["resources_changed"][0]["event_name"] == "AttachUserPolicy"
    assert "no S3 data events" in out["notes"]
    assert out["summary"].startswith("The attacker created 1 iam:user")


def test_deletions_are_reported() -> None:
    events = [{"event_id": "d1", "event_time": "2026-11-19T10:00:00Z", "event_name": "DeleteTrail",
               "event_source": "cloudtrail.amazonaws.com", "request_parameters": '{"name":"org-trail"}'}]
    out = assess_damage({"verdict": "malicious"}, events=events)
    assert out["resources_deleted"][0]["resource"] == "org-trail"
    assert "deleted or disabled 1 resource" in out["summary"]


def test_empty_or_missing_investigation_is_not_an_error() -> None:
    for inv in (None, {}, {"resources_created": None, "window": "junk"}):
        out = assess_damage(inv)  # type: ignore[arg-type]
        assert out["cost_estimate"]["total_usd"] == 0 and out["summary"]
