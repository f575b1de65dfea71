"""What the incident cost: resources created, changed and deleted, data read, money, in one sentence.

    assess_damage(investigation, events=events)

`investigation` is the Investigation JSON of docs/architecture.md (its `resources_created`, `persistence`,
`data_access`, `verdict`, `window`…); `events` (the actor's key_events rows), when given, add
what the contract does not carry: instance types for pricing, deletions and changes, Bedrock calls.
Every call is read through `taxonomy.kind_of`, the classification intent and the data-access query
use too: the data the damage answer says was read is the data the investigation lists, and
"nothing read" is said only when no data or secret read succeeded. Deleting what the actor itself
created earlier is cleanup, not damage. The cost is `cost.estimate_cost` (the one estimate).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from keyresponse.intel.cost import INSTANCE_TYPES, Prices, estimate_cost, launched
from keyresponse.intel.events import Event, json_field, refs, service_of, sorted_events
from keyresponse.intel.taxonomy import (
    CREATE,
    CREATE_PREFIXES,
    DATA_CALLS,
    DATA_KINDS,
    DELETE,
    READ_SECRET,
    SHARE_DATA,
    STORED_SECRET_READS,
    WRITE_KINDS,
    created_ids,
    instance_credential,
    kind_of,
    own_cleanup,
    resource_of,
)

__all__ = ["assess_damage", "estimate_cost"]
#: Calls that name several secrets in one request: the request field that lists them.
SECRET_LISTS = {"GetParameters": "names", "BatchGetSecretValue": "secretIdList"}


def _row(event: Event) -> dict[str, Any]:
    return {"event_name": event.get("event_name"), "resource": resource_of(event), "region": event.get("aws_region"),
            "event_time": event.get("event_time"), "event_id": event.get("event_id")}


def _type_of(event: Event) -> str:
    """`iam:user` for CreateUser, `ec2:instance` for RunInstances, `lambda:function` for CreateFunction20150331."""
    name = re.sub(r"\d{8}(v\d+)?$", "", str(event.get("event_name") or ""))
    noun = next((name[len(v):] for v in CREATE_PREFIXES if name.startswith(v)), name)
    noun = noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun
    return f"{service_of(event)}:{re.sub(r'(?<!^)(?=[A-Z])', '-', noun).lower()}"


def _created_by_events(ok: Sequence[Event]) -> list[dict[str, Any]]:
    """What successful create calls made (one row per instance launched), for when the investigation
    lists nothing: the events alone still say what was created."""
    rows = []
    for event in ok:
        if kind_of(event) != CREATE:
            continue
        where = {"region": event.get("aws_region"), "event_name": event.get("event_name"),
                 "event_time": event.get("event_time")}
        ids = [item["id"] for item in launched([event])] or [resource_of(event) or ",".join(sorted(created_ids(event)))]
        for ident in ids:
            rows.append({"type": _type_of(event), "id": ident, **where})
    return rows


def _listed(value: JsonValue) -> list[JsonValue]:
    """A JSON list's items (nothing for anything else: a string or an object lists no rows)."""
    return value if isinstance(value, list) else []


def _data_read(inv: Mapping[str, JsonValue], ordered: Sequence[Event], ok: Sequence[Event]) -> list[dict[str, Any]]:
    reads: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in ok:
        if kind_of(e) in DATA_KINDS:
            reads[(str(e.get("event_name")), resource_of(e))].append(e)
    if ordered:
        return [{"event_name": name, "resource": res, "count": len(hits), "evidence": refs(hits, 5)}
                for (name, res), hits in sorted(reads.items())]
    return [{"event_name": d.get("event_name"), "resource": d.get("resource"), "count": d.get("count"),
             "evidence": []} for d in _listed(inv.get("data_access")) if isinstance(d, Mapping)
            and d.get("error_count") != d.get("count")]


def _secrets(data_read: Sequence[Mapping[str, Any]], ok: Sequence[Event]) -> tuple[list[str], int]:
    """Secrets to rotate (names), and how many secret reads name none (a BatchGetSecretValue by filter)."""
    names: set[str] = set()
    unnamed = 0
    secret_rows = [d for d in data_read if d["event_name"] in STORED_SECRET_READS]
    names |= {str(d["resource"]) for d in secret_rows if d["resource"] and d["event_name"] not in SECRET_LISTS}
    for e in ok:
        field = SECRET_LISTS.get(str(e.get("event_name")))
        if field is None or kind_of(e) != READ_SECRET:
            continue
        params = json_field(e, "request_parameters")
        listed = params.get(field) if isinstance(params, Mapping) else None
        if isinstance(listed, list) and listed:
            names |= {str(n) for n in listed} - {""}
        else:
            unnamed += 1
    if not ok:  # the investigation only: its rows name what was read
        names |= {str(d["resource"]) for d in secret_rows if d["resource"]}
    return sorted(names), unnamed


def assess_damage(investigation: Mapping[str, JsonValue] | None, *, events: Iterable[Event] | None = None,
                  as_of: datetime | None = None, prices: Prices | None = None) -> dict[str, Any]:
    """The damage answer (see the package docstring). Missing fields are treated as "none found"."""
    inv: Mapping[str, JsonValue] = investigation or {}
    ordered = sorted_events(events or [])
    ok = [e for e in ordered if not e.get("error_code")]
    cleanup = {id(e) for e in own_cleanup(ordered)}
    created: list[dict[str, Any]] = [dict(r) for r in _listed(inv.get("resources_created")) if isinstance(r, Mapping)]
    if not created:
        created = _created_by_events(ok)
    changed_events = [e for e in ok if kind_of(e) in WRITE_KINDS]
    changed = [_row(e) for e in changed_events]
    if not ordered:  # only the investigation: its persistence list is what changed
        changed = [{"event_name": p.get("event_name"), "resource": p.get("resource"), "region": p.get("region"),
                    "event_time": p.get("event_time"), "event_id": None}
                   for p in _listed(inv.get("persistence")) if isinstance(p, Mapping)
                   and not str(p.get("event_name", "")).startswith("Create")]
    deleted = [e for e in ok if kind_of(e) == DELETE and id(e) not in cleanup]
    removed = [_row(e) for e in deleted]
    data_read = _data_read(inv, ordered, ok)
    refused = [e for e in ordered if e.get("error_code") and kind_of(e) in DATA_KINDS]
    secrets, unnamed = _secrets(data_read, ok)
    objects = sum(d["count"] or 0 for d in data_read if d["event_name"] == "GetObject")
    stolen = sorted({c for e in ordered if (c := instance_credential(e))})
    cost = estimate_cost(inv, ordered, as_of=as_of, prices=prices)
    verdict = str(inv.get("verdict") or "unknown")
    facts = {"created": created, "changed": changed, "removed": removed, "data_read": data_read,
             "objects": objects, "secrets": secrets, "unnamed_secrets": unnamed, "stolen": stolen,
             "refused": len(refused), "cleanup": len(cleanup),
             "llm_calls": sum(int(i.get("calls", 0)) for i in cost["items"] if i["kind"] == "bedrock_invocations")}
    summary = _summary(verdict, facts, cost, ordered)
    shown = {id(e) for e in [*deleted, *changed_events]}
    evidence = refs([e for e in ordered if id(e) in shown or (not e.get("error_code") and kind_of(e) in DATA_KINDS)])
    nothing = not (created or changed or removed or data_read)
    notes = ["'none found' means none in the logs that exist: check logging_gaps (data events, "
             "regions) before saying nothing was read"]
    if cleanup:
        notes.append(f"{len(cleanup)} deletion(s) removed what the actor had created itself in these events "
                     "(cleanup): not counted as damage")
    if unnamed:
        notes.append(f"{unnamed} secret read(s) named no secret (BatchGetSecretValue by filter): CloudTrail does "
                     "not log which secrets matched; rotate every secret the filter could match")
    return {"summary": summary, "resources_created": created, "resources_changed": changed,
            "resources_deleted": removed, "data_read": data_read, "secrets_to_rotate": secrets,
            "objects_read": objects, "cost_estimate": cost, "verdict": verdict,
            "confidence": "high" if ordered else "medium" if not nothing else "low",
            "evidence": evidence, "notes": notes + [str(g) for g in _listed(inv.get("logging_gaps"))]}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _reads(facts: Mapping[str, Any]) -> list[str]:
    """The summary's clauses on what was read or shared."""
    parts = []
    if facts["secrets"]:
        parts.append(f"read {_count(len(facts['secrets']), 'secret')} that must be rotated")
    if facts["unnamed_secrets"]:
        parts.append(f"read secrets by filter {_count(facts['unnamed_secrets'], 'time')} "
                     "(which ones is not logged)")
    if facts["objects"]:
        parts.append(f"read {_count(facts['objects'], 'S3 object')}")
    named = STORED_SECRET_READS | {"GetObject"}
    shares = {name for (_, name), kind in DATA_CALLS.items() if kind == SHARE_DATA}
    for verb, rows in (("read data", [d for d in facts["data_read"] if d["event_name"] not in named | shares]),
                       ("shared data outside the account", [d for d in facts["data_read"] if d["event_name"] in shares])):
        if rows:
            calls = sorted({str(d["event_name"]) for d in rows})
            parts.append(f"{verb} {_count(sum(int(d['count'] or 0) for d in rows), 'time')} ({', '.join(calls)})")
    if facts["stolen"]:
        parts.append(f"used EC2 instance-role credentials taken from {', '.join(facts['stolen'])}")
    return parts


def _nothing(facts: Mapping[str, Any], events: Sequence[Event]) -> str:
    if events and all(str(e.get("event_name")) == "GetCallerIdentity" for e in events):
        return ("No damage found: the key was only validated (GetCallerIdentity) and nothing was created, "
                "changed, deleted or read - but it is public, so it must still be rotated.")
    text = ("No damage found in the logs: nothing was created, changed, deleted or read"
            f"{' (' + _count(len(events), 'call') + ', read-only or refused)' if events else ''}")
    if facts["refused"]:
        text += f"; {_count(facts['refused'], 'attempt')} to read data or secrets were refused"
    if facts["cleanup"]:
        text += f"; the actor deleted {_count(facts['cleanup'], 'resource')} it had created itself"
    return text + "."


def _summary(verdict: str, facts: Mapping[str, Any], cost: Mapping[str, Any], events: Sequence[Event]) -> str:
    """One sentence for a report's first page. It says "nothing read" only when no data or secret
    read succeeded (the data kinds of `taxonomy`), so it cannot contradict the data-read list."""
    if verdict == "benign":
        return ("The activity matches the owner's own use of the key; no damage attributable to an attacker "
                "was found.")
    created, changed, removed = facts["created"], facts["changed"], facts["removed"]
    parts = []
    instances = [r for r in created if r.get("type") in INSTANCE_TYPES]
    if instances:
        regions = {r.get("region") for r in instances}
        parts.append(f"launched {_count(len(instances), 'EC2 instance')} in {_count(len(regions), 'region')}")
    others = Counter(str(r.get("type")) for r in created if r.get("type") not in INSTANCE_TYPES)
    if others:
        parts.append("created " + ", ".join(_count(n, t) for t, n in sorted(others.items())))
    if changed:
        names = sorted({str(c["event_name"]) for c in changed})
        parts.append(f"changed {_count(len(changed), 'setting')} ({', '.join(names)})")
    if removed:
        parts.append(f"deleted or disabled {_count(len(removed), 'resource')}")
    parts += _reads(facts)
    if facts["llm_calls"]:
        parts.append(f"ran {_count(facts['llm_calls'], 'Bedrock model invocation')} on the account's bill")
    if not parts:
        return _nothing(facts, events)
    money = cost.get("total_usd") or 0
    text = "The attacker " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    if money:
        text += f"; estimated cost so far ${money:,.2f}"
        if cost.get("ongoing_usd_per_day"):
            text += f", rising ${cost['ongoing_usd_per_day']:,.2f} a day until the instances are stopped"
    return text + "."
