"""Whose is each source address of a credential? Judged against the credential's own baseline.

    judged = judge_sources(rows, window_start=..., hinted={...}, known={...}, ranges=ranges)
    judged.judgements["203.0.113.9"].classification   # attacker | known | service | uncertain

A leaked key is used by its owner and by the attacker at once, and the logs do not say which call
is whose. What tells them apart is *the owner's habits before the attacker arrived*: the places,
networks, clients and calls the key used before. No fixed rule ("three principals share it", "used
for 24 hours") survives a quiet account, a new key, a responder who narrows `--start` or an
attacker who is patient, so each address is judged on evidence, and where the evidence does not
separate owner from attacker the answer is `uncertain`, with its reasons — never a guess.

**Attacker evidence that needs no baseline (high confidence):** the alert named the address; it is a
Tor exit or on a threat list; a user agent of an offensive tool (secret scanner, attack framework,
attack-simulation tool, penetration-testing distribution) or markup planted in the user agent.
The earliest of these marks the **onset** of the attack.

**The baseline** is the addresses the key used *before the onset* without any such evidence: its
history before the window (read `history_days` back, because a short window holds no habits),
and, in the window, what came before the onset. Without an onset, the baseline is the history plus
the first day of the key's use in the window, when the window holds a day and a half or more of it.
Addresses our other principals vouch for as the organisation's egress (see `shared_egress`), and an
AWS service runtime the credential serves (an `exec-env/AWS_…` user agent on an AWS published
address, which used the credential before any other address did), join the baseline too: they are
the owner's places whatever the time. With none of these, there is no
baseline, and the judgement says so. A baseline address is **known**.

**Every other address** is compared with the baseline's clients (user agents), calls (event
names) and networks (the same IPv4 /16 or IPv6 /48, or the same cloud provider's published ranges):

* **attacker** (medium) when it does what the key never did — high-risk calls (IAM changes,
  minting credentials, reading secrets, launching compute, blinding logging) missing from the
  baseline, or new calls with a new client — or is refused (AccessDenied), and nothing about it
  looks like the owner's;
* **known** (medium) when it uses only the owner's clients and calls, with no errors, from the
  owner's network or cloud, from an address our other principals have used for a day or more
  (shared egress: an office NAT, a CI fleet), or from an AWS service runtime (an `exec-env/AWS_…`
  user agent on an AWS published address: the runtime the credential was issued to);
* **uncertain** otherwise: new address with the owner's habits but not the owner's network, mixed
  signals, or no baseline to compare with. Uncertain addresses never enter the attacker's activity
  and never pull other credentials into the incident; credentials minted from them are offered to
  the approver as separate, unchecked steps.

An AWS service name ("lambda.amazonaws.com", "AWS Internal") is a **service**, and an address the
responder vouched for (`known_ips`) is **known**, whatever it did. An address used by a credential
the attacker minted is the attacker's unless it is in the baseline.

Size: one judgement (baseline, then each address against it) whose rules read each other; split, a rule would hide its neighbours.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypedDict

from keyresponse.intel.attribution import Ranges, attribute_ip
from keyresponse.intel.taxonomy import HIGH_RISK_CALLS, READ_PREFIXES
from keyresponse.intel.tools import identify_user_agent

Classification = Literal["attacker", "known", "service", "uncertain"]
Confidence = Literal["high", "medium", "low"]
Row = Mapping[str, Any]


class JudgementJson(TypedDict):
    """A `Judgement` as JSON (`Judgement.to_json`)."""

    ip: str
    classification: Classification
    confidence: Confidence
    evidence: list[str]


class BaselineJson(TypedDict, total=False):
    """A `Baseline` as JSON: `Baseline.to_json` writes every key; `from_json` takes any of them."""

    ips: list[str]
    user_agents: list[str]
    calls: list[str]
    networks: list[str]
    providers: list[str]
    events: int
    onset: str | None
    notes: list[str]

#: User-agent categories (keyresponse/intel/data/user_agents.yaml) that only an attacker, or a test
#: of the owner's own that should have been announced, would show.
OFFENSIVE_TOOLS = frozenset({"secret_scanner", "attack_framework", "attack_simulation", "pentest_distribution",
                             "hostile_markup"})
_DENIED = ("accessdenied", "unauthorized", "notauthorized", "forbidden")
_RUNTIME_MARKERS = ("exec-env/aws_", "aws_execution_env", "exec-env/cloudshell")
#: How long an address must have served another principal of the account to count as shared egress.
LONG_STANDING = timedelta(hours=24)
#: With no onset, the first day of the key's use in the window is its baseline when the window
#: holds at least this much of its use.
FIRST_DAY = timedelta(hours=24)
MIN_DEPTH = timedelta(hours=36)
#: A runtime's addresses that start using a credential within this of its first use are the runtime
#: it was issued to (Lambda starts several execution environments at once); later ones are compared.
RUNTIME_START = timedelta(hours=1)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def is_service_name(value: str) -> bool:
    """A sourceIPAddress that names an AWS service ("lambda.amazonaws.com", "AWS Internal") rather than a
    client. Malformed addresses (anonymised logs have "225.178.039.250") are clients, not services."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return any(ch.isalpha() for ch in value) and ":" not in value
    return False


def network_of(ip: str) -> str | None:
    """The IPv4 /16 or IPv6 /48 around an address: one ISP pool, one office block, one cloud region's slice."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 16 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def denied(codes: Iterable[str]) -> list[str]:
    return sorted({c for c in codes if any(d in str(c).lower() for d in _DENIED)})


@dataclass
class Judgement:
    """One address: whose it is, how sure, and why."""

    ip: str
    classification: Classification
    confidence: Confidence
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> JudgementJson:
        return {"ip": self.ip, "classification": self.classification, "confidence": self.confidence,
                "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: JudgementJson) -> Judgement:
        return cls(str(data["ip"]), data["classification"], data["confidence"], list(data.get("evidence") or []))


@dataclass
class Baseline:
    """The owner's habits: what the key did before the onset."""

    ips: set[str] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    events: int = 0
    onset: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> BaselineJson:
        return {"ips": sorted(self.ips), "user_agents": sorted(self.user_agents), "calls": sorted(self.calls),
                "networks": sorted(self.networks), "providers": sorted(self.providers), "events": self.events,
                "onset": self.onset, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: BaselineJson) -> Baseline:
        def strings(values: list[str] | None) -> set[str]:
            return {str(v) for v in values or ()}

        return cls(strings(data.get("ips")), strings(data.get("user_agents")), strings(data.get("calls")),
                   strings(data.get("networks")), strings(data.get("providers")), int(data.get("events") or 0),
                   data.get("onset"), [str(n) for n in data.get("notes") or ()])


@dataclass
class Judged:
    judgements: dict[str, Judgement]
    baseline: Baseline

    def of(self, classification: Classification) -> set[str]:
        return {ip for ip, j in self.judgements.items() if j.classification == classification}


def _list(row: Row, column: str) -> list[str]:
    return [str(v) for v in (row.get(column) or [])]


def merge_ip_rows(old: Row | None, new: Row | None) -> dict[str, Any]:
    """One `key_activity_by_source_ip` row for an IP from two rows over disjoint records (two sets of
    keys, or the history before the window and the window itself): what the query returns when asked
    about both at once."""
    if old is None or new is None:
        return dict(new or old or {})

    def union(column: str) -> list[str] | None:  # json columns: lists already (QueryEngine.run parses them)
        if old.get(column) is None and new.get(column) is None:
            return None  # an aggregate over no values is NULL, as the query returns it
        return sorted(set(old.get(column) or ()) | set(new.get(column) or ()))

    def pick(column: str, choose: Callable[[list[str]], str]) -> str | None:
        values = [v for v in (old[column], new[column]) if v is not None]
        return choose(values) if values else None

    return {**old, "event_count": old["event_count"] + new["event_count"],
            "error_count": old["error_count"] + new["error_count"],
            "user_agents": union("user_agents"), "access_key_ids": union("access_key_ids"), "regions": union("regions"),
            "event_names": union("event_names"), "error_codes": union("error_codes"),
            "first_seen_at": pick("first_seen_at", min), "last_seen_at": pick("last_seen_at", max)}


@lru_cache(maxsize=4096)
def offensive_tools(user_agent: str) -> tuple[str, ...]:
    """The offensive tools a user agent names, as "Tool (category)" (the shipped fingerprint table;
    each agent is matched once, though its addresses are judged again each scoping round)."""
    return tuple(f"{hit['tool']} ({hit['category'].replace('_', ' ')})" for hit in identify_user_agent(user_agent)
                 if hit["category"] in OFFENSIVE_TOOLS)


class _Facts:
    """What can be said about one address without a baseline."""

    def __init__(self, ip: str, row: Row, ranges: Ranges | None) -> None:
        self.ip = ip
        self.row = row
        self.agents = set(_list(row, "user_agents"))
        self.calls = set(_list(row, "event_names"))
        self.denied = denied(_list(row, "error_codes"))
        self.network = network_of(ip)
        attribution = attribute_ip(ip, ranges) if ranges is not None else {}
        self.provider: str | None = attribution.get("provider") if attribution.get("kind") == "cloud" else None
        self.tor = bool(attribution.get("tor_exit"))
        self.lists = [str(x["list"]) for x in attribution.get("lists") or []]
        self.tools = sorted({tool for ua in self.agents for tool in offensive_tools(ua)})
        self.runtime = self.provider == "aws" and bool(self.agents) and all(
            any(m in ua.lower() for m in _RUNTIME_MARKERS) for ua in self.agents)

    def hard_evidence(self, hinted: bool) -> list[str]:
        out = []
        if hinted:
            out.append("named by the alert")
        if self.tor:
            out.append("a Tor exit relay")
        if self.lists:
            out.append(f"on threat list(s) {', '.join(self.lists)}")
        if self.tools:
            out.append(f"user agent of an offensive tool: {'; '.join(self.tools)}")
        return out


def _first(row: Row) -> datetime | None:
    return ts(row["first_seen_at"]) if row.get("first_seen_at") else None


def judge_sources(
    rows: Mapping[str, Row],
    *,
    window_start: datetime,
    history: Mapping[str, Row] | None = None,
    hinted: Iterable[str] = (),
    known: Iterable[str] = (),
    ranges: Ranges | None = None,
    attacker_keys: Iterable[str] = (),
    shared_egress: Mapping[str, Sequence[str]] | None = None,
) -> Judged:
    """Judge every address of `rows` (window rows of `key_activity_by_source_ip` by address) given the
    key's `history` rows (before `window_start`), the alert's addresses (`hinted`), the responder's
    (`known`), published ranges, the keys the attacker minted or holds (`attacker_keys`: an address
    only they used is theirs) and, per address, the other principals that vouch for it as a
    long-standing egress (`shared_egress`)."""
    hinted, known = set(hinted), set(known)
    minted = set(attacker_keys)
    history = history or {}
    shared_egress = shared_egress or {}
    merged = {ip: merge_ip_rows(history.get(ip), rows.get(ip)) for ip in set(rows) | set(history)}
    facts = {ip: _Facts(ip, row, ranges) for ip, row in merged.items() if not is_service_name(ip)}
    hard = {ip: f.hard_evidence(ip in hinted) for ip, f in facts.items()}
    hard = {ip: ev for ip, ev in hard.items() if ev and (ip not in known or ip in hinted)}
    onsets = [t for ip in hard if (t := _first(merged[ip])) is not None]
    onset = min(onsets) if onsets else None
    baseline = _baseline(merged, facts, hard, known, window_start, onset, minted, shared_egress)
    judgements: dict[str, Judgement] = {}
    for ip in rows:
        if ip in hinted:
            judgements[ip] = Judgement(ip, "attacker", "high", hard.get(ip) or ["named by the alert"])
        elif is_service_name(ip):
            judgements[ip] = Judgement(ip, "service", "high",
                                       [f"{ip!r} is an AWS service acting for the account, not a client address"])
        elif ip in known:
            judgements[ip] = Judgement(ip, "known", "high", ["the responder vouched for it (known_ips)"])
        elif ip in hard:
            judgements[ip] = Judgement(ip, "attacker", "high", hard[ip])
        elif ip in baseline.ips:
            reason = _baseline_reason(merged[ip], window_start, onset, shared_egress.get(ip, ()))
            if facts[ip].runtime:
                reason = ("an AWS service runtime the credential serves (exec-env user agent on an AWS "
                          f"published address); {reason}")
            judgements[ip] = Judgement(ip, "known", "high", [reason])
        else:
            judgements[ip] = _compare(facts[ip], baseline, minted, list(shared_egress.get(ip, ())))
    return Judged(judgements, baseline)


def _baseline(merged: Mapping[str, Row], facts: Mapping[str, _Facts], hard: Mapping[str, list[str]],
              known: set[str], window_start: datetime, onset: datetime | None, minted: set[str],
              shared: Mapping[str, Sequence[str]]) -> Baseline:
    base = Baseline(onset=onset.strftime("%Y-%m-%dT%H:%M:%SZ") if onset else None)
    candidates = {ip: row for ip, row in merged.items()
                  if ip in facts and ip not in hard and _first(row) is not None
                  and not set(_list(row, "access_key_ids")) <= minted}
    if onset is not None:
        chosen = {ip for ip, row in candidates.items() if (t := _first(row)) is not None and t < onset}
        base.notes.append(f"the attack's first sign is at {base.onset}; the key's use before it is the owner's "
                          "baseline")
    else:
        chosen = {ip for ip, row in candidates.items() if (t := _first(row)) is not None and t < window_start}
        firsts = [t for row in candidates.values() if (t := _first(row)) is not None]
        lasts = [ts(row["last_seen_at"]) for row in candidates.values() if row.get("last_seen_at")]
        in_window = [t for t in firsts if t >= window_start]
        if in_window and lasts and max(lasts) - min(in_window) >= MIN_DEPTH:
            start = min(in_window)
            chosen |= {ip for ip, row in candidates.items()
                       if (t := _first(row)) is not None and start <= t < start + FIRST_DAY}
            base.notes.append("no sign of an attack that needs no baseline (alert, Tor, threat list, offensive "
                              "tool); the key's first day in the window is taken as the owner's baseline")
    vouched = {ip for ip in candidates if shared.get(ip)}
    # A runtime joins only when it used the credential first (within RUNTIME_START of its first use,
    # before any other address): the runtime a credential was issued to uses it first. An attacker on a rented AWS host forging the runtime's
    # user agent comes later, and is compared instead (owner-like, so at most uncertain).
    firsts_all = [t for ip, row in merged.items() if ip in facts and (t := _first(row)) is not None]
    others = [t for ip, row in merged.items() if ip in facts and not facts[ip].runtime
              and (t := _first(row)) is not None]
    first_use = min(firsts_all) if firsts_all else None
    first_other = min(others) if others else None
    runtimes = {ip for ip in candidates if facts[ip].runtime and first_use is not None
                and (t := _first(merged[ip])) is not None and t < first_use + RUNTIME_START
                and (first_other is None or t < first_other)}
    if vouched - chosen:
        base.notes.append(f"shared egress of the organisation (vouched by other principals): {', '.join(sorted(vouched - chosen))}")
    if runtimes - chosen:
        base.notes.append(f"AWS service runtime the credential serves: {', '.join(sorted(runtimes - chosen))}")
    chosen |= vouched | runtimes
    if not chosen:
        base.notes.append("no baseline: no history before the window, under a day and a half of use in it and no "
                          "shared egress, so each address is judged on what it did alone")
    for ip in chosen:
        f = facts[ip]
        base.ips.add(ip)
        base.user_agents |= f.agents
        base.calls |= f.calls
        base.events += int(merged[ip].get("event_count") or 0)
        if f.network:
            base.networks.add(f.network)
        if f.provider:
            base.providers.add(f.provider)
    if chosen and not any((t := _first(merged[ip])) is not None and t < window_start for ip in chosen):
        base.notes.append("no use of the key before the window: its habits come from the window itself")
    return base


def _baseline_reason(row: Row, window_start: datetime, onset: datetime | None, vouchers: Sequence[str]) -> str:
    first = row.get("first_seen_at")
    early = first is not None and (ts(first) < window_start or (onset is not None and ts(first) < onset))
    if vouchers and not early:
        return (f"shared egress of the organisation: used for long by {', '.join(list(vouchers)[:3])}"
                + (f" and {len(vouchers) - 3} more" if len(vouchers) > 3 else ""))
    when = "before the window" if first and ts(first) < window_start else "in the window"
    tail = " and before the attack's first sign" if onset else ""
    return f"the key's own use since {first} ({when}{tail}): the owner's baseline"


def _compare(f: _Facts, base: Baseline, minted: set[str], vouchers: list[str]) -> Judgement:
    """An address outside the baseline: does it act like the owner or like someone else?"""
    ip = f.ip
    keys = set(_list(f.row, "access_key_ids"))
    if keys and keys <= minted:
        return Judgement(ip, "attacker", "high", [f"used only by credential(s) the attacker holds: {', '.join(sorted(keys))}"])
    has_base = bool(base.ips)
    new_agents = sorted(f.agents - base.user_agents) if has_base else []
    new_calls = sorted(f.calls - base.calls) if has_base else []
    risky = sorted((f.calls - base.calls) & HIGH_RISK_CALLS) if has_base else sorted(f.calls & HIGH_RISK_CALLS)
    owner_like: list[str] = []
    if f.runtime:
        owner_like.append("an AWS service runtime (exec-env user agent on an AWS published address)")
    if vouchers:
        owner_like.append(f"shared egress: used for a day or more by {', '.join(sorted(vouchers)[:3])}"
                          + (f" and {len(vouchers) - 3} more" if len(vouchers) > 3 else ""))
    same_client = has_base and bool(f.agents) and f.agents <= base.user_agents
    if same_client and f.network in base.networks:
        owner_like.append(f"the owner's network {f.network} and client")
    elif same_client and f.provider and f.provider in base.providers:
        owner_like.append(f"the owner's cloud ({f.provider.upper()} published ranges) and client")
    against: list[str] = []
    if risky:
        against.append(f"high-risk calls the key {'never made before' if has_base else 'made'}: {', '.join(risky)}")
    if f.denied:
        against.append(f"refused calls ({', '.join(f.denied)})")
    if new_calls and new_agents:
        against.append(f"new client(s) {', '.join(new_agents)} making calls the key never made: "
                       f"{', '.join(new_calls[:8])}{' …' if len(new_calls) > 8 else ''}")
    if not has_base:
        reasons = ["no baseline to compare with (no history and under two days of use)", *against, *owner_like]
        if owner_like and not against:
            return Judgement(ip, "known", "low", [*owner_like, "no baseline to compare with"])
        return Judgement(ip, "uncertain", "low", reasons)
    if against:
        if owner_like:
            return Judgement(ip, "uncertain", "low", [*against, "but: " + "; ".join(owner_like)])
        return Judgement(ip, "attacker", "medium", [f"new to the key, and {a}" for a in against])
    if owner_like and not f.denied and all(c.startswith(READ_PREFIXES) for c in new_calls):
        tail = (f"only calls the key already makes, and reads ({', '.join(new_calls[:5])})" if new_calls
                else "only calls the key already makes")
        return Judgement(ip, "known", "medium", [*owner_like, tail + ", no errors"])
    reasons = ["new to the key"]
    if same_client and not new_calls:
        reasons.append("the owner's client and calls, but not the owner's network")
    if new_calls:
        reasons.append(f"calls the key never made: {', '.join(new_calls[:8])}")
    if new_agents:
        reasons.append(f"client(s) the key never used: {', '.join(new_agents)}")
    reasons += owner_like
    return Judgement(ip, "uncertain", "low", reasons)
