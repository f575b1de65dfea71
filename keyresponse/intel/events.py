"""The event rows the intel functions read, and small helpers over them.

An *event* is one row of `queries/key_events.sql` as a dict: `event_time` (ISO-8601 Z),
`event_source`, `event_name`, `aws_region`, `source_ip`, `user_agent`, `access_key_id`,
`principal_arn`, `error_code` (None on success), `request_parameters` and `response_elements`
(JSON text or None) and `event_id`. An optional `user_identity` (the record's raw
`userIdentity` object) sharpens a few answers (for example EC2 instance-role deliveries) and is
never required. `event_from_record` turns a raw CloudTrail record into such a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import JsonValue

#: How many event references one piece of evidence carries at most (the count is always exact).
EVIDENCE_LIMIT = 25

Event = Mapping[str, Any]


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def event_from_record(record: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """A raw CloudTrail record as a `key_events` row (plus its `user_identity`)."""
    identity = record.get("userIdentity") if isinstance(record.get("userIdentity"), Mapping) else {}
    assert isinstance(identity, Mapping)
    return {
        "event_time": record.get("eventTime"),
        "event_source": record.get("eventSource"),
        "event_name": record.get("eventName"),
        "aws_region": record.get("awsRegion"),
        "source_ip": record.get("sourceIPAddress"),
        "user_agent": record.get("userAgent"),
        "access_key_id": identity.get("accessKeyId"),
        "principal_arn": identity.get("arn"),
        "error_code": record.get("errorCode") or None,
        "request_parameters": _as_text(record.get("requestParameters")),
        "response_elements": _as_text(record.get("responseElements")),
        "event_id": record.get("eventID"),
        "user_identity": dict(identity),
    }


def json_field(event: Event, name: str) -> JsonValue:
    """`request_parameters` / `response_elements` parsed; None when absent or not JSON."""
    value = event.get(name)
    if value is None or isinstance(value, dict | list):
        return value
    try:
        parsed: JsonValue = json.loads(str(value))
    except ValueError:
        return None
    return parsed


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 time (with Z or an offset, or naive = UTC) as an aware datetime; None if unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_of(event: Event) -> str:
    """`ec2` for `ec2.amazonaws.com`; empty when unknown."""
    source = str(event.get("event_source") or "")
    return source.split(".", 1)[0].lower()


def sorted_events(events: Iterable[Event]) -> list[Event]:
    """Oldest first (by event time, then id); events without a time go last."""
    return sorted(events, key=lambda e: (str(e.get("event_time") or "~"), str(e.get("event_id") or "")))


def ref(event: Event) -> dict[str, JsonValue]:
    """The reference to one event that evidence carries."""
    out = {"event_id": event.get("event_id"), "event_time": event.get("event_time"),
           "event_name": event.get("event_name")}
    if event.get("error_code"):
        out["error_code"] = event.get("error_code")
    return out


def refs(events: Iterable[Event], limit: int = EVIDENCE_LIMIT) -> list[dict[str, JsonValue]]:
    return [ref(e) for e in list(events)[:limit]]


def level(score: float) -> str:
    """A 0..1 score as the confidence word every answer uses."""
    if score >= 0.75:
        return "high"
    if score >= 0.45:
        return "medium"
    return "low"
