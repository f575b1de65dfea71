"""What the incident cost: resources created, changed and deleted, data read, money, in one sentence.

    assess_damage(investigation, events=events)

`investigation` is the Investigation JSON of docs/architecture.md (its `resources_created`, `persistence`,
`data_access`, `verdict`, `window`…); `events` (the actor's key_events rows), when given, add
what the contract does not carry: instance types for pricing, deletions and changes, Bedrock calls.
The cost is an estimate with its assumptions stated; Cost Explorer is the bill.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from keyresponse.intel.events import Event, iso, json_field, parse_time, refs, service_of, sorted_events

DATA_FILE = "prices.yaml"
MIN_HOURS = 1.0
DELETE_PREFIXES = ("Delete", "Terminate", "Remove", "Detach", "Disable", "Deregister", "Revoke", "Cancel",
                   "ScheduleKeyDeletion", "Stop", "Leave", "Disassociate")
CHANGE_PREFIXES = ("Put", "Update", "Modify", "Attach", "Authorize", "Enable", "Set", "Add", "Replace",
                   "Associate", "Upload", "Tag", "Untag", "Copy", "Restore", "Reboot", "Start", "Change")
DATA_READ = {("s3", "GetObject"), ("secretsmanager", "GetSecretValue"), ("secretsmanager", "BatchGetSecretValue"),
             ("ssm", "GetParameter"), ("ssm", "GetParameters"), ("ssm", "GetParametersByPath"),
             ("kms", "Decrypt"), ("ec2", "GetPasswordData"), ("dynamodb", "Scan"), ("dynamodb", "Query"),
             ("dynamodb", "GetItem"), ("ec2", "DescribeInstanceAttribute")}
SECRET_SERVICES = {"secretsmanager", "ssm", "kms"}
INSTANCE_TYPES = {"ec2:instance", "AWS::EC2::Instance", "instance"}


@lru_cache(maxsize=1)
def default_prices() -> Mapping[str, Any]:
    text = resources.files("keyresponse.intel").joinpath("data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: Mapping[str, Any] = yaml.safe_load(text)
    return data


def _resource_of(event: Event) -> str:
    params = json_field(event, "request_parameters")
    if isinstance(params, Mapping):
        for key in ("userName", "roleName", "bucketName", "functionName", "trailName", "name", "instanceId",
                    "groupId", "secretId", "keyId", "detectorId", "policyArn", "imageId", "snapshotId",
                    "dBSnapshotIdentifier", "key", "Name"):
            if params.get(key):
                return str(params[key])
        items = (params.get("instancesSet") or {}).get("items") if isinstance(params.get("instancesSet"), Mapping) \
            else None
        if items and isinstance(items, list) and isinstance(items[0], Mapping) and items[0].get("instanceId"):
            return ",".join(str(i.get("instanceId")) for i in items)
    return ""


def _launched(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Instances from successful RunInstances responses: id, type, region, launch time."""
    out = []
    for event in events:
        if event.get("event_name") != "RunInstances" or event.get("error_code"):
            continue
        response = json_field(event, "response_elements")
        items = (response or {}).get("instancesSet", {}).get("items") if isinstance(response, Mapping) else None
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping):
                out.append({"id": item.get("instanceId"), "type": item.get("instanceType"),
                            "region": event.get("aws_region"), "launched_at": event.get("event_time"),
                            "event_id": event.get("event_id")})
    return out


def _price_for(model: str, table: Mapping[str, Sequence[float]], default: Sequence[float]) -> Sequence[float]:
    for prefix, price in sorted(table.items(), key=lambda kv: -len(kv[0])):
        if model.startswith(prefix):
            return price
    return default


def estimate_cost(investigation: Mapping[str, Any], events: Sequence[Event], *, as_of: datetime | None = None,
                  prices: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """EC2 instance-hours × on-demand price, plus Bedrock tokens; every assumption listed."""
    prices = prices or default_prices()
    hourly: Mapping[str, float] = prices.get("ec2_hourly_usd") or {}
    default_hourly = float(prices.get("ec2_default_hourly_usd", 1.0))
    window = investigation.get("window") if isinstance(investigation.get("window"), Mapping) else {}
    assert isinstance(window, Mapping)
    end = as_of or parse_time(window.get("end")) or parse_time(investigation.get("last_seen")) or (
        parse_time(events[-1].get("event_time")) if events else None)
    items: list[dict[str, Any]] = []
    assumptions = [f"EC2 at on-demand Linux us-east-1 prices ({', '.join(prices.get('sources') or [])}); "
                   "spot, other regions and OS licences differ",
                   f"each instance runs from launch until {iso(end) if end else 'the end of the window'} "
                   f"(at least {MIN_HOURS:g} hour) and is still running - terminate them to stop the meter"]
    launched = _launched(events)
    known_ids = {i["id"] for i in launched}
    for row in investigation.get("resources_created") or []:
        if isinstance(row, Mapping) and row.get("type") in INSTANCE_TYPES and row.get("id") not in known_ids:
            launched.append({"id": row.get("id"), "type": None, "region": row.get("region"),
                             "launched_at": row.get("event_time") or investigation.get("first_seen"),
                             "event_id": None})
    untyped = 0
    for inst in launched:
        start = parse_time(inst["launched_at"])
        hours = max(MIN_HOURS, (end - start).total_seconds() / 3600) if end and start else MIN_HOURS
        rate = hourly.get(str(inst["type"])) if inst["type"] else None
        if rate is None:
            untyped += 1
            rate = default_hourly
        items.append({"kind": "ec2_instance", "id": inst["id"], "instance_type": inst["type"],
                      "region": inst["region"], "hours": round(hours, 2), "hourly_usd": rate,
                      "usd": round(hours * float(rate), 2), "event_id": inst["event_id"]})
    if untyped:
        assumptions.append(f"{untyped} instance(s) of unknown or unpriced type counted at ${default_hourly:g}/hour")
    invocations = [e for e in events if service_of(e) == "bedrock" and not e.get("error_code")
                   and str(e.get("event_name")).startswith(("InvokeModel", "Converse"))]
    if invocations:
        tokens = prices.get("bedrock_assumed_tokens_per_call") or {"input": 2000, "output": 1000}
        table = prices.get("bedrock_per_1k_tokens") or {}
        default = prices.get("bedrock_default_per_1k_tokens") or [0.003, 0.015]
        by_model: Counter[str] = Counter()
        for event in invocations:
            params = json_field(event, "request_parameters")
            by_model[str(params.get("modelId")) if isinstance(params, Mapping) else "unknown"] += 1
        for model, calls in sorted(by_model.items()):
            p_in, p_out = _price_for(model, table, default)
            usd = calls * (tokens["input"] / 1000 * p_in + tokens["output"] / 1000 * p_out)
            items.append({"kind": "bedrock_invocations", "model": model, "calls": calls,
                          "assumed_tokens": {"input": calls * tokens["input"], "output": calls * tokens["output"]},
                          "usd": round(usd, 2)})
        assumptions.append(f"Bedrock: CloudTrail does not log token counts; each call assumed "
                           f"{tokens['input']} input + {tokens['output']} output tokens")
    total = round(sum(i["usd"] for i in items), 2)
    daily = round(sum(i["hourly_usd"] * 24 for i in items if i["kind"] == "ec2_instance"), 2)
    return {"total_usd": total, "ongoing_usd_per_day": daily, "items": items, "assumptions": assumptions,
            "as_of": iso(end) if end else None, "confidence": "medium" if items and not untyped else "low"}


def assess_damage(investigation: Mapping[str, Any] | None, *, events: Iterable[Event] | None = None,
                  as_of: datetime | None = None, prices: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The damage answer (see the package docstring). Missing fields are treated as "none found"."""
    inv: Mapping[str, Any] = investigation or {}
    ordered = sorted_events(events or [])
    created = [dict(r) for r in inv.get("resources_created") or [] if isinstance(r, Mapping)]
    ok = [e for e in ordered if not e.get("error_code")]
    deleted = [e for e in ok if str(e.get("event_name")).startswith(DELETE_PREFIXES)]
    deleted_ids = {id(e) for e in deleted}
    changed_events = [e for e in ok if id(e) not in deleted_ids
                      and str(e.get("event_name")).startswith(CHANGE_PREFIXES)
                      and (service_of(e), str(e.get("event_name"))) not in DATA_READ]
    changed = [{"event_name": e.get("event_name"), "resource": _resource_of(e), "region": e.get("aws_region"),
                "event_time": e.get("event_time"), "event_id": e.get("event_id")} for e in changed_events]
    if not ordered:  # only the investigation: its persistence list is what changed
        changed = [{"event_name": p.get("event_name"), "resource": p.get("resource"), "region": p.get("region"),
                    "event_time": p.get("event_time"), "event_id": None}
                   for p in inv.get("persistence") or [] if isinstance(p, Mapping)
                   and not str(p.get("event_name", "")).startswith("Create")]
    removed = [{"event_name": e.get("event_name"), "resource": _resource_of(e), "region": e.get("aws_region"),
                "event_time": e.get("event_time"), "event_id": e.get("event_id")} for e in deleted]
    reads: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in ok:
        if (service_of(e), str(e.get("event_name"))) in DATA_READ:
            reads[(str(e.get("event_name")), _resource_of(e))].append(e)
    data_read: list[dict[str, Any]] = [{"event_name": name, "resource": res, "count": len(hits), "evidence": refs(hits, 5)}
                 for (name, res), hits in sorted(reads.items())]
    if not data_read:
        data_read = [{"event_name": d.get("event_name"), "resource": d.get("resource"), "count": d.get("count"),
                      "evidence": []} for d in inv.get("data_access") or [] if isinstance(d, Mapping)
                     and d.get("error_count") != d.get("count")]
    secrets: list[str] = sorted({str(d["resource"]) for d in data_read if d["event_name"] in (
        "GetSecretValue", "BatchGetSecretValue", "GetParameter", "GetParameters", "GetParametersByPath")
        and d["resource"]})
    for e in ok:  # GetParameters names several parameters
        params = json_field(e, "request_parameters")
        if e.get("event_name") == "GetParameters" and isinstance(params, Mapping):
            secrets = sorted({*secrets, *(str(n) for n in params.get("names") or [])} - {""})
    objects = sum(d["count"] or 0 for d in data_read if d["event_name"] == "GetObject")
    cost = estimate_cost(inv, ordered, as_of=as_of, prices=prices)
    verdict = str(inv.get("verdict") or "unknown")
    llm_calls = sum(int(i.get("calls", 0)) for i in cost["items"] if i["kind"] == "bedrock_invocations")
    summary = _summary(verdict, created, changed, removed, objects, secrets, cost, ordered, llm_calls)
    changed_ids = {id(e) for e in changed_events}
    evidence = refs([e for e in ordered if id(e) in deleted_ids or id(e) in changed_ids
                     or (service_of(e), str(e.get("event_name"))) in DATA_READ])
    nothing = not (created or changed or removed or data_read)
    return {"summary": summary, "resources_created": created, "resources_changed": changed,
            "resources_deleted": removed, "data_read": data_read, "secrets_to_rotate": secrets,
            "objects_read": objects, "cost_estimate": cost, "verdict": verdict,
            "confidence": "high" if ordered else "medium" if not nothing else "low",
            "evidence": evidence,
            "notes": ["'none found' means none in the logs that exist: check logging_gaps (data events, "
                      "regions) before saying nothing was read"] + [str(g) for g in inv.get("logging_gaps") or []]}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(verdict: str, created: Sequence[Mapping[str, Any]], changed: Sequence[Mapping[str, Any]],
             removed: Sequence[Mapping[str, Any]], objects: int, secrets: Sequence[str],
             cost: Mapping[str, Any], events: Sequence[Event], llm_calls: int = 0) -> str:
    """One sentence for a report's first page."""
    if verdict == "benign":
        return ("The activity matches the owner's own use of the key; no damage attributable to an attacker "
                "was found.")
    if not (created or changed or removed or objects or secrets or llm_calls):
        if events and all(str(e.get("event_name")) == "GetCallerIdentity" for e in events):
            return ("No damage found: the key was only validated (GetCallerIdentity) and nothing was created, "
                    "changed, deleted or read - but it is public, so it must still be rotated.")
        return ("No damage found in the logs: nothing was created, changed, deleted or read"
                f"{' (' + _count(len(events), 'call') + ', read-only or refused)' if events else ''}.")
    parts = []
    instances = [r for r in created if r.get("type") in INSTANCE_TYPES]
    if instances:
        regions = {r.get("region") for r in instances}
        parts.append(f"launched {_count(len(instances), 'EC2 instance')} in {_count(len(regions), 'region')}")
    others = Counter(str(r.get("type")) for r in created if r.get("type") not in INSTANCE_TYPES)
    if others:
        parts.append("created " + ", ".join(_count(n, t) for t, n in sorted(others.items())))
    if changed:
        parts.append(f"changed {_count(len(changed), 'setting')} ({', '.join(sorted({str(c['event_name']) for c in changed})[:4])})")
    if removed:
        parts.append(f"deleted or disabled {_count(len(removed), 'resource')}")
    if secrets:
        parts.append(f"read {_count(len(secrets), 'secret')} that must be rotated")
    if objects:
        parts.append(f"read {_count(objects, 'S3 object')}")
    if llm_calls:
        parts.append(f"ran {_count(llm_calls, 'Bedrock model invocation')} on the account's bill")
    money = cost.get("total_usd") or 0
    text = "The attacker " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    if money:
        text += f"; estimated cost so far ${money:,.2f}"
        if cost.get("ongoing_usd_per_day"):
            text += f", rising ${cost['ongoing_usd_per_day']:,.2f} a day until the instances are stopped"
    return text + "."

