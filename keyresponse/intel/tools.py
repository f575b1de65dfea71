"""Which tools the actor used: user-agent fingerprints from a maintained table, and behaviour.

    tools_observed(events)  # → [{tool, category, evidence, first_seen, count, user_agents, ...}]

The table is `data/user_agents.yaml` (each entry with the `sources` that document it). A user
agent is text the caller chooses, so a match is evidence, not proof; an unknown user agent is
reported as tool "unknown" with a note, never dropped. Behaviour fingerprints (a lone identity
check, an enumeration burst, permission brute-forcing, a region sweep, bulk S3 download) are
derived from the calls themselves and hold even when the user agent is spoofed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, TypedDict

import yaml
from pydantic import JsonValue

from keyresponse.intel.events import Event, parse_time, refs, service_of, sorted_events
from keyresponse.intel.taxonomy import READ_PREFIXES

DATA_FILE = "user_agents.yaml"


@dataclass(frozen=True)
class Fingerprint:
    """One row of the user-agent table."""

    tool: str
    category: str
    match: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    hides: tuple[str, ...] = ()
    note: str = ""
    sources: tuple[str, ...] = ()

    def matches(self, user_agent: str) -> bool:
        lowered = user_agent.lower()
        if any(token.lower() in lowered for token in self.match):
            return True
        return bool(self.regex and self.regex.search(user_agent))


class ToolHit(TypedDict):
    """What one user agent says (`identify_user_agent`)."""

    tool: str
    category: str
    note: str
    sources: list[str]


@dataclass(frozen=True)
class Table:
    fingerprints: tuple[Fingerprint, ...]
    behaviours: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    aws_service_suffix: str = ".amazonaws.com"


def _mappings(value: JsonValue, what: str) -> list[dict[str, JsonValue]]:
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{what} must be a list of mappings")
    return [item for item in value if isinstance(item, dict)]


def _strings(value: JsonValue, what: str) -> tuple[str, ...]:
    if not value:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return tuple(str(item) for item in value)


def parse_table(data: Mapping[str, JsonValue]) -> Table:
    """Build a table from the YAML structure (raises ValueError on a malformed entry)."""
    rows = []
    for entry in _mappings(data.get("tools"), "tools"):
        if not entry.get("tool") or not entry.get("category") or not entry.get("sources"):
            raise ValueError(f"user-agent entry needs tool, category and sources: {entry!r}")
        if not entry.get("match") and not entry.get("regex"):
            raise ValueError(f"user-agent entry {entry['tool']!r} needs match or regex")
        rows.append(Fingerprint(
            tool=str(entry["tool"]), category=str(entry["category"]),
            match=_strings(entry.get("match"), "match"),
            regex=re.compile(str(entry["regex"]), re.IGNORECASE) if entry.get("regex") else None,
            hides=_strings(entry.get("hides"), "hides"), note=str(entry.get("note") or ""),
            sources=_strings(entry["sources"], "sources")))
    behaviours = data.get("behaviours") or {}
    if not isinstance(behaviours, dict) or not all(isinstance(rule, dict) for rule in behaviours.values()):
        raise ValueError("behaviours must map names to mappings")
    return Table(tuple(rows), {name: rule for name, rule in behaviours.items() if isinstance(rule, dict)},
                 str(data.get("aws_service_suffix") or ".amazonaws.com"))


@lru_cache(maxsize=1)
def default_table() -> Table:
    """The shipped table (read once)."""
    text = resources.files("keyresponse.intel").joinpath("data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse_table(yaml.safe_load(text))


def identify_user_agent(user_agent: str | None, table: Table | None = None) -> list[ToolHit]:
    """What a single user agent says: the matching table rows (most specific first), or "unknown"."""
    table = table or default_table()
    ua = (user_agent or "").strip()
    if not ua:
        return [{"tool": "unknown", "category": "unknown", "note": "no user agent recorded", "sources": []}]
    if ua.lower().endswith(table.aws_service_suffix) and " " not in ua and "/" not in ua:
        console = [fp for fp in table.fingerprints if fp.category == "console" and fp.matches(ua)]
        if not console:
            return [{"tool": ua, "category": "aws_service",
                     "note": "an AWS service acting on the account's behalf, not a client the actor ran",
                     "sources": ["https://docs.aws.amazon.com/awscloudtrail/latest/userguide/"
                                 "cloudtrail-event-reference-record-contents.html"]}]
    if ua.lower() == "aws internal":
        return [{"tool": "AWS Internal", "category": "aws_service",
                 "note": "a call AWS made internally (console or service); no client to identify",
                 "sources": ["https://docs.aws.amazon.com/awscloudtrail/latest/userguide/"
                             "cloudtrail-event-reference-record-contents.html"]}]
    hits = [fp for fp in table.fingerprints if fp.matches(ua)]
    hidden = {name for fp in hits for name in fp.hides}
    hits = [fp for fp in hits if fp.tool not in hidden]
    if any(fp.category != "browser" for fp in hits if fp.category not in ("hostile_markup",)):
        hits = [fp for fp in hits if fp.category != "browser"]
    if not hits:
        return [{"tool": "unknown", "category": "unknown",
                 "note": "user agent not in the fingerprint table; it may be custom or spoofed", "sources": []}]
    return [{"tool": fp.tool, "category": fp.category, "note": fp.note, "sources": list(fp.sources)} for fp in hits]


def _calls(rule: Mapping[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for call in rule.get("calls") or ():
        service, _, name = str(call).partition(":")
        out.add((service, name))
    return out


def _is_read(event: Event) -> bool:
    return str(event.get("event_name") or "").startswith(READ_PREFIXES)


def _behaviour(rule: Mapping[str, Any], name: str, hits: Sequence[Event], confidence: str,
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    ordered = sorted_events(hits)
    return {"tool": rule.get("tool", name), "category": "behaviour", "fingerprint": name,
            "evidence": [e.get("event_id") for e in ordered], "evidence_events": refs(ordered),
            "first_seen": ordered[0].get("event_time") if ordered else None, "count": len(ordered),
            "user_agents": sorted({str(e.get("user_agent")) for e in ordered if e.get("user_agent")}),
            "confidence": confidence, "note": rule.get("note", ""), "sources": list(rule.get("sources") or ()),
            **(extra or {})}


def _densest_window(events: Sequence[Event], minutes: float) -> list[Event]:
    """The events of the busiest `minutes`-long window (by distinct event names)."""
    timed = [(parse_time(e.get("event_time")), e) for e in events]
    timed_ok = sorted(((t, e) for t, e in timed if t is not None), key=lambda x: x[0])
    best: list[Event] = []
    best_score = 0
    span = timedelta(minutes=minutes)
    lo = 0
    for hi in range(len(timed_ok)):
        while timed_ok[hi][0] - timed_ok[lo][0] > span:
            lo += 1
        window = [e for _, e in timed_ok[lo:hi + 1]]
        score = len({e.get("event_name") for e in window})
        if score > best_score:
            best, best_score = window, score
    return best


def behaviours_observed(events: Sequence[Event], table: Table | None = None) -> list[dict[str, Any]]:
    """The behaviour fingerprints the calls show, each with its evidence."""
    table = table or default_table()
    rules = table.behaviours
    out: list[dict[str, Any]] = []
    if not events:
        return out
    rule = rules.get("key_validation")
    if rule:
        calls = _calls(rule)
        if len(events) <= int(rule.get("max_events", 5)) and all(
                (service_of(e), str(e.get("event_name"))) in calls for e in events):
            out.append(_behaviour(rule, "key_validation", events, "high"))
    rule = rules.get("enumeration_burst")
    if rule:
        reads = [e for e in events if _is_read(e)]
        window = _densest_window(reads, float(rule.get("window_minutes", 10)))
        names = {e.get("event_name") for e in window}
        services = {service_of(e) for e in window}
        if len(names) >= int(rule.get("min_distinct_calls", 10)) and len(services) >= int(rule.get("min_services", 3)):
            out.append(_behaviour(rule, "enumeration_burst", window,
                                  "high" if len(names) >= 2 * int(rule.get("min_distinct_calls", 10)) else "medium",
                                  {"distinct_calls": len(names), "services": sorted(services)}))
    rule = rules.get("permission_bruteforce")
    if rule:
        denied = [e for e in events if str(e.get("error_code") or "").endswith(
            ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Unauthorized", "AuthorizationError"))]
        distinct = {(service_of(e), e.get("event_name")) for e in denied}
        if len(distinct) >= int(rule.get("min_denied_calls", 5)):
            out.append(_behaviour(rule, "permission_bruteforce", denied,
                                  "high" if len(distinct) >= 10 else "medium", {"distinct_denied_calls": len(distinct)}))
    rule = rules.get("region_sweep")
    if rule:
        by_name: dict[str, list[Event]] = defaultdict(list)
        for e in events:
            if e.get("aws_region"):
                by_name[str(e.get("event_name"))].append(e)
        minutes = float(rule.get("window_minutes", 30))
        best: list[Event] = []
        for same in by_name.values():
            timed = sorted((e for e in same if parse_time(e.get("event_time"))),
                           key=lambda e: str(e.get("event_time")))
            lo = 0
            for hi in range(len(timed)):
                t_hi, t_lo = parse_time(timed[hi].get("event_time")), parse_time(timed[lo].get("event_time"))
                while t_hi and t_lo and t_hi - t_lo > timedelta(minutes=minutes):
                    lo += 1
                    t_lo = parse_time(timed[lo].get("event_time"))
                window = timed[lo:hi + 1]
                if len({e.get("aws_region") for e in window}) > len({e.get("aws_region") for e in best}):
                    best = window
        regions = sorted({str(e.get("aws_region")) for e in best})
        if len(regions) >= int(rule.get("min_regions", 4)):
            out.append(_behaviour(rule, "region_sweep", best, "medium", {"regions": regions}))
    rule = rules.get("bulk_s3_download")
    if rule:
        calls = _calls(rule)
        reads = [e for e in events if (service_of(e), str(e.get("event_name"))) in calls and not e.get("error_code")]
        if len(reads) >= int(rule.get("min_events", 20)):
            out.append(_behaviour(rule, "bulk_s3_download", reads, "high"))
    return out


def tools_observed(events: Iterable[Event], table: Table | None = None) -> list[dict[str, Any]]:
    """Every tool the user agents name, then every behaviour fingerprint; oldest first within each.

    Each item: `tool`, `category`, `evidence` (event ids), `evidence_events` (id, time, name),
    `first_seen`, `count`, `user_agents`, `confidence`, `note`, `sources`; behaviours add
    `fingerprint` and their measurements.
    """
    table = table or default_table()
    ordered = sorted_events(events)
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    meta: dict[tuple[str, str], ToolHit] = {}
    for event in ordered:
        for hit in identify_user_agent(event.get("user_agent"), table):
            key = (hit["tool"], hit["category"])
            groups[key].append(event)
            meta.setdefault(key, hit)
    out: list[dict[str, Any]] = []
    for key, hits in groups.items():
        hit = meta[key]
        unknown = hit["category"] == "unknown"
        out.append({"tool": hit["tool"], "category": hit["category"],
                    "evidence": [e.get("event_id") for e in hits], "evidence_events": refs(hits),
                    "first_seen": hits[0].get("event_time"), "count": len(hits),
                    "user_agents": sorted({str(e.get("user_agent")) for e in hits if e.get("user_agent")}),
                    "confidence": "low" if unknown else ("medium" if hit["category"] in ("browser", "sdk") else "high"),
                    "note": hit["note"], "sources": hit["sources"]})
    out.sort(key=lambda t: (str(t["first_seen"] or "~"), t["tool"]))
    return out + behaviours_observed(ordered, table)
