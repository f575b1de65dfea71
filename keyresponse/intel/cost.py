"""What the attacker's resources cost: the one home of the estimate.

    estimate_cost(investigation, events, as_of=None)   # → {total_usd, ongoing_usd_per_day, items, …}
    recorded_cost(investigation)                       # the figure a stored investigation shows

`estimate_cost` is the only estimator. The investigation calls it for `cost_estimate_usd` with the
record and the events the damage answer then reads, and the damage answer calls it for its
`cost_estimate`, so both are one figure; the report shows `recorded_cost`, which reads the damage
answer's figure (the one the report's intel section prints) and `cost_estimate_usd` only when the
record has no damage answer. EC2 instances are priced from launch to their termination (a
successful TerminateInstances in the events) or, if they were not terminated, to the end of the
window: only those are "still running". Bedrock invocations are priced per call with assumed token
counts (CloudTrail does not log tokens). An estimate with its assumptions stated; Cost Explorer is
the bill.

Why the Bedrock calls count: a report of an LLM-abuse incident once said $0.00 in its summary and
$0.25 in its intelligence section. $0.25 is right. The attacker's 12 successful
InvokeModel calls (Claude 3 Sonnet, on-demand: $0.003 per 1k input and $0.015 per 1k output
tokens, 2,000 in and 1,000 out assumed a call) are 12 × $0.021 = $0.252 on the account's bill. The
$0.00 came from the investigation's own estimator of the time, which priced EC2 instances only,
and that scenario launches none. A record written then still carries both figures;
`recorded_cost` shows the damage answer's.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any, TypedDict

import yaml
from pydantic import JsonValue

from keyresponse.intel.events import Event, iso, json_field, parse_time, service_of

DATA_FILE = "prices.yaml"
#: Shortest time an instance is counted: a conservative floor for instances that ran minutes.
MIN_HOURS = 1.0
INSTANCE_TYPES = {"ec2:instance", "AWS::EC2::Instance", "instance"}


class Tokens(TypedDict):
    input: int
    output: int


class Prices(TypedDict, total=False):
    """The price table (`data/prices.yaml`); a key left out takes the estimator's default."""

    sources: list[str]
    ec2_hourly_usd: Mapping[str, float]
    ec2_default_hourly_usd: float
    bedrock_per_1k_tokens: Mapping[str, Sequence[float]]
    bedrock_default_per_1k_tokens: Sequence[float]
    bedrock_assumed_tokens_per_call: Tokens


@lru_cache(maxsize=1)
def default_prices() -> Prices:
    text = resources.files("keyresponse.intel").joinpath("data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: Prices = yaml.safe_load(text)
    return data


def _items(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Mapping) or not isinstance(value.get("instancesSet"), Mapping):
        return []
    items = value["instancesSet"].get("items")
    return [i for i in items if isinstance(i, Mapping) and i.get("instanceId")] if isinstance(items, list) else []


class Instance(TypedDict):
    """An instance the actor launched, as the events (or the investigation) name it."""

    id: JsonValue
    type: JsonValue
    region: JsonValue
    launched_at: JsonValue
    event_id: JsonValue


def launched(events: Sequence[Event]) -> list[Instance]:
    """Instances from successful RunInstances responses: id, type, region, launch time."""
    out: list[Instance] = []
    for event in events:
        if event.get("event_name") != "RunInstances" or event.get("error_code"):
            continue
        for item in _items(json_field(event, "response_elements")):
            out.append({"id": item.get("instanceId"), "type": item.get("instanceType"),
                        "region": event.get("aws_region"), "launched_at": event.get("event_time"),
                        "event_id": event.get("event_id")})
    return out


def terminated(events: Sequence[Event]) -> dict[str, datetime]:
    """instance id → when a successful TerminateInstances ended it (the first one)."""
    out: dict[str, datetime] = {}
    for event in events:
        at = parse_time(event.get("event_time"))
        if event.get("event_name") != "TerminateInstances" or event.get("error_code") or at is None:
            continue
        for item in _items(json_field(event, "request_parameters")) + _items(json_field(event, "response_elements")):
            key = str(item["instanceId"])
            out[key] = min(out.get(key, at), at)
    return out


def _price_for(model: str, table: Mapping[str, Sequence[float]], default: Sequence[float]) -> Sequence[float]:
    for prefix, price in sorted(table.items(), key=lambda kv: -len(kv[0])):
        if model.startswith(prefix):
            return price
    return default


def _end_of(investigation: Mapping[str, JsonValue], events: Sequence[Event], as_of: datetime | None) -> datetime | None:
    window = investigation.get("window") if isinstance(investigation.get("window"), Mapping) else {}
    assert isinstance(window, Mapping)
    return as_of or parse_time(window.get("end")) or parse_time(investigation.get("last_seen")) or (
        parse_time(events[-1].get("event_time")) if events else None)


def _instances(investigation: Mapping[str, JsonValue], events: Sequence[Event]) -> list[Instance]:
    """Launched instances from the events, plus those only the investigation lists (type unknown)."""
    found = launched(events)
    known = {i["id"] for i in found}
    rows = investigation.get("resources_created") or []
    for row in rows if isinstance(rows, list) else []:  # (a string or an object holds no row)
        if isinstance(row, Mapping) and row.get("type") in INSTANCE_TYPES and row.get("id") not in known:
            found.append({"id": row.get("id"), "type": None, "region": row.get("region"),
                          "launched_at": row.get("event_time") or investigation.get("first_seen"), "event_id": None})
    return found


def _bedrock(events: Sequence[Event], prices: Prices) -> tuple[list[dict[str, Any]], list[str]]:
    invocations = [e for e in events if service_of(e) == "bedrock" and not e.get("error_code")
                   and str(e.get("event_name")).startswith(("InvokeModel", "Converse"))]
    if not invocations:
        return [], []
    tokens = prices.get("bedrock_assumed_tokens_per_call") or {"input": 2000, "output": 1000}
    table = prices.get("bedrock_per_1k_tokens") or {}
    default = prices.get("bedrock_default_per_1k_tokens") or [0.003, 0.015]
    by_model: Counter[str] = Counter()
    for event in invocations:
        params = json_field(event, "request_parameters")
        by_model[str(params.get("modelId")) if isinstance(params, Mapping) else "unknown"] += 1
    items = []
    for model, calls in sorted(by_model.items()):
        p_in, p_out = _price_for(model, table, default)
        usd = calls * (tokens["input"] / 1000 * p_in + tokens["output"] / 1000 * p_out)
        items.append({"kind": "bedrock_invocations", "model": model, "calls": calls,
                      "assumed_tokens": {"input": calls * tokens["input"], "output": calls * tokens["output"]},
                      "usd": round(usd, 2)})
    return items, [f"Bedrock: CloudTrail does not log token counts; each call assumed "
                   f"{tokens['input']} input + {tokens['output']} output tokens"]


def estimate_cost(investigation: Mapping[str, JsonValue] | None, events: Sequence[Event], *,
                  as_of: datetime | None = None, prices: Prices | None = None) -> dict[str, Any]:
    """EC2 instance-hours (launch to termination or to the end of the window) × on-demand price,
    plus Bedrock calls; every assumption listed. Items of instances carry `terminated_at` (or None:
    still running at the end of the window)."""
    inv: Mapping[str, JsonValue] = investigation or {}
    prices = prices or default_prices()
    hourly: Mapping[str, float] = prices.get("ec2_hourly_usd") or {}
    default_hourly = float(prices.get("ec2_default_hourly_usd", 1.0))
    end = _end_of(inv, events, as_of)
    stopped = terminated(events)
    items: list[dict[str, Any]] = []
    untyped = 0
    for inst in _instances(inv, events):
        start, stop = parse_time(inst["launched_at"]), stopped.get(str(inst["id"]))
        until = min(stop, end) if stop and end else stop or end
        hours = max(MIN_HOURS, (until - start).total_seconds() / 3600) if until and start else MIN_HOURS
        rate = hourly.get(str(inst["type"])) if inst["type"] else None
        if rate is None:
            untyped += 1
            rate = default_hourly
        items.append({"kind": "ec2_instance", "id": inst["id"], "instance_type": inst["type"],
                      "region": inst["region"], "hours": round(hours, 2), "hourly_usd": rate,
                      "usd": round(hours * float(rate), 2), "event_id": inst["event_id"],
                      "terminated_at": iso(stop) if stop else None})
    running = [i for i in items if i["terminated_at"] is None]
    assumptions = [f"EC2 at on-demand Linux us-east-1 prices ({', '.join(prices.get('sources') or [])}); "
                   "spot, other regions and OS licences differ",
                   f"each instance is counted from launch to its TerminateInstances, or to "
                   f"{iso(end) if end else 'the end of the window'} when it was not terminated "
                   f"(at least {MIN_HOURS:g} hour)"]
    if running:
        assumptions.append(f"{len(running)} instance(s) still running at the end of the window "
                           f"({', '.join(str(i['id']) for i in running)}): terminate them to stop the meter")
    if untyped:
        assumptions.append(f"{untyped} instance(s) of unknown or unpriced type counted at ${default_hourly:g}/hour")
    bedrock, notes = _bedrock(events, prices)
    items += bedrock
    assumptions += notes
    total = round(sum(i["usd"] for i in items), 2)
    daily = round(sum(i["hourly_usd"] * 24 for i in running), 2)
    return {"total_usd": total, "ongoing_usd_per_day": daily, "items": items, "assumptions": assumptions,
            "as_of": iso(end) if end else None, "confidence": "medium" if items and not untyped else "low"}


def _usd(value: JsonValue) -> float:
    if isinstance(value, int | float | str):
        return float(value)
    raise TypeError(f"an amount in USD must be a number, not {type(value).__name__}")


def recorded_cost(investigation: Mapping[str, JsonValue]) -> float:
    """The estimate a stored investigation carries, in USD: its damage answer's `total_usd` (what the
    report's intel section prints) when it has one, else `cost_estimate_usd`. One report, one figure,
    even for a record whose two figures came from two estimators (see the module docstring)."""
    damage = investigation.get("damage")
    estimate = damage.get("cost_estimate") if isinstance(damage, Mapping) else None
    if isinstance(estimate, Mapping) and estimate.get("total_usd") is not None:
        return _usd(estimate["total_usd"])
    return _usd(investigation.get("cost_estimate_usd") or 0.0)
