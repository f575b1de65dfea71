"""What the actor was after: intents with confidence and the events that show them.

    classify_intent(events, baseline=None)  # → [{intent, label, confidence, score, evidence, ...}]

The rules are data (`data/intents.yaml`): each intent lists the calls that show it, weighted
strong / medium / weak. Three intents are computed here:

* **validation_only** — every call is an identity check (GetCallerIdentity) and there are only a
  few: a secret scanner or an attacker testing the key. No abuse; exclusive.
* **owner_use** — given the owner's `baseline` (`{"user_agents": [...], "event_names": [...]}`),
  every call comes with one of the owner's user agents and is a call the owner makes (or, for at
  most 40 % of them, an ordinary read or object write the baseline happens not to hold): the
  owner's own use from a new place. Exclusive when it explains every event.
* **reconnaissance** — any other read call (List*, Describe*, Get*…), by breadth and errors.
* **cleanup** — deletions of what the actor itself created earlier in the events
  (`taxonomy.own_cleanup`: an attack tool tearing down its instances). These calls are taken
  out of every other rule: deleting your own instance is not destruction.

A signal names calls (`service:EventName`), or kinds of call from `taxonomy.py` (`read_secret`,
`read_data`, `share_data`…), or both: data theft is read from the same classification as the
damage answer's "data read" and the investigation's data access, so they cannot disagree.

Scores: a strong signal with a successful call scores 0.8 (+0.03 per further event, at most 0.97),
medium 0.55 (at most 0.7), weak 0.3 (at most 0.4); a signal whose calls all failed scores 70 %
of that ("attempted"). Confidence is high ≥ 0.75, medium ≥ 0.45, low below. The primary intent is
the highest score, ties broken by priority (destruction first, reconnaissance last).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources
from typing import TypedDict, TypeVar

import yaml
from pydantic import JsonValue

from keyresponse.intel.events import Event, level, refs, service_of, sorted_events
from keyresponse.intel.taxonomy import (
    KINDS,
    READ_PREFIXES,
    instance_credential,
    kind_of,
    own_cleanup,
    targets,
)

DATA_FILE = "intents.yaml"
WEIGHTS = {"strong": (0.8, 0.97), "medium": (0.55, 0.7), "weak": (0.3, 0.4)}
STEP = 0.03
ATTEMPT_FACTOR = 0.7
VALIDATION_CALLS = {("sts", "GetCallerIdentity"), ("sts", "GetAccessKeyInfo")}
VALIDATION_MAX_EVENTS = 5
#: Writes an owner's automation makes routinely (with the owner's user agent, not news on their own).
ORDINARY_WRITES = {("s3", "PutObject")}
LABELS = {"validation_only": "Validation only (key checked, not abused)",
          "owner_use": "The owner's own use",
          "reconnaissance": "Reconnaissance (discovery of permissions and resources)",
          "cleanup": "Cleanup of its own resources"}
PRIORITY_RECON = 10
PRIORITY_VALIDATION = 11
PRIORITY_OWNER = 12
PRIORITY_CLEANUP = 13
#: Cleanup is context, never the point of an attack: a weak score, so it is primary only alone.
CLEANUP_SCORE = 0.35


@dataclass(frozen=True)
class Signal:
    calls: tuple[str, ...]
    weight: str
    strong_at: int = 1
    params_any: tuple[str, ...] = ()
    why: str = ""
    kinds: tuple[str, ...] = ()

    def matches(self, event: Event) -> bool:
        if self.calls and not any(fnmatchcase(_call(event), pattern) for pattern in self.calls):
            return False
        if self.kinds and kind_of(event) not in self.kinds:
            return False
        if self.params_any:
            lowered = str(event.get("request_parameters") or "").lower()
            return any(p.lower() in lowered for p in self.params_any)
        return True


@dataclass(frozen=True)
class IntentRule:
    intent: str
    label: str
    priority: int
    signals: tuple[Signal, ...]


def _mappings(value: JsonValue, what: str) -> list[dict[str, JsonValue]]:
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{what} must be a list of mappings")
    return [item for item in value if isinstance(item, dict)]


def _string_list(value: JsonValue, what: str) -> tuple[str, ...]:
    if not value:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return tuple(str(item) for item in value)


def _int(value: JsonValue, what: str) -> int:
    if isinstance(value, int | float | str):
        return int(value)
    raise ValueError(f"{what} must be a number")


def parse_rules(data: Mapping[str, JsonValue]) -> tuple[IntentRule, ...]:
    out = []
    for entry in _mappings(data.get("intents"), "intents"):
        signals = []
        for s in _mappings(entry.get("signals"), "signals"):
            if s.get("weight") not in WEIGHTS:
                raise ValueError(f"intent {entry.get('intent')!r}: weight must be one of {sorted(WEIGHTS)}")
            kinds = _string_list(s.get("kinds"), "kinds")
            if not (s.get("calls") or kinds) or set(kinds) - set(KINDS):
                raise ValueError(f"intent {entry.get('intent')!r}: a signal names calls or kinds (one of {KINDS})")
            signals.append(Signal(_string_list(s.get("calls"), "calls"), str(s["weight"]),
                                  _int(s.get("strong_at", 1), "strong_at"), _string_list(s.get("params_any"), "params_any"),
                                  str(s.get("why", "")), kinds))
        out.append(IntentRule(str(entry["intent"]), str(entry.get("label", entry["intent"])),
                              _int(entry.get("priority", 9), "priority"), tuple(signals)))
    return tuple(out)


@lru_cache(maxsize=1)
def default_rules() -> tuple[IntentRule, ...]:
    text = resources.files("keyresponse.intel").joinpath("data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse_rules(yaml.safe_load(text))


def _call(event: Event) -> str:
    return f"{service_of(event)}:{event.get('event_name') or ''}"


def _failed(event: Event) -> bool:
    return bool(event.get("error_code"))


def _score(weight: str, hits: Sequence[Event], strong_at: int) -> float:
    if weight == "strong" and len(hits) < strong_at:
        weight = "medium"
    base, cap = WEIGHTS[weight]
    ok = [e for e in hits if not _failed(e)]
    counted = ok or list(hits)
    score = min(cap, base + STEP * (len(counted) - 1))
    return score if ok else score * ATTEMPT_FACTOR


class Intent(TypedDict):
    """One intent the events show (`classify_intent`)."""

    intent: str
    label: str
    confidence: str
    score: float
    priority: int
    evidence: list[dict[str, JsonValue]]
    evidence_count: int
    attempted_only: bool
    reasons: list[str]
    primary: bool


def _item(intent: str, label: str, priority: int, score: float, hits: Sequence[Event],
          reasons: Sequence[str]) -> Intent:
    ordered = sorted_events(hits)
    return {"intent": intent, "label": label, "confidence": level(score), "score": round(score, 2),
            "priority": priority, "evidence": refs(ordered), "evidence_count": len(ordered),
            "attempted_only": bool(ordered) and all(_failed(e) for e in ordered),
            "reasons": list(dict.fromkeys(reasons)), "primary": False}


def _ordinary(event: Event) -> bool:
    """A call an owner's automation makes without it being news: a read, or an object read or write."""
    name = str(event.get("event_name") or "")
    return name.startswith(READ_PREFIXES) or (service_of(event), name) in ORDINARY_WRITES


def _strings(value: object) -> set[str]:
    return {str(v) for v in value} if isinstance(value, Iterable) else set()


def _owner_use(events: Sequence[Event], baseline: Mapping[str, object]) -> tuple[float, list[Event], list[str]]:
    """How well the owner's baseline explains the events: (score, the events it explains, reasons)."""
    agents = _strings(baseline.get("user_agents") or ())
    names = _strings(baseline.get("event_names") or ())
    if not agents and not names:
        return 0.0, [], []
    same_agent = [e for e in events if not agents or str(e.get("user_agent")) in agents]
    usual = [e for e in same_agent if (not names or str(e.get("event_name")) in names) and not _failed(e)]
    usual_ids = {id(e) for e in usual}
    new_but_ordinary = [e for e in same_agent if id(e) not in usual_ids and _ordinary(e) and not _failed(e)]
    reasons = [f"{len(usual)} of {len(events)} calls use the owner's usual user agent and are calls the owner makes"]
    if new_but_ordinary:
        names_new = sorted({str(e.get("event_name")) for e in new_but_ordinary})
        reasons.append(f"{len(new_but_ordinary)} more with the owner's user agent are ordinary calls not in the "
                       f"baseline ({', '.join(names_new)})")
    if len(usual) == len(events):
        return 0.9, usual, reasons
    if len(same_agent) == len(events) and len(usual) + len(new_but_ordinary) == len(events) \
            and len(usual) >= 0.6 * len(events):
        return 0.8, usual + new_but_ordinary, reasons
    if len(usual) >= 0.8 * len(events):
        return 0.5, usual, reasons
    return 0.0, usual, reasons


def classify_intent(events: Iterable[Event], baseline: Mapping[str, object] | None = None,
                    rules: Sequence[IntentRule] | None = None) -> list[Intent]:
    """Every intent the events show, primary first (`primary: true`), then by score.

    Each item: `intent`, `label`, `confidence` (high|medium|low), `score` (0..1), `priority`,
    `evidence` (event id/time/name, at most 25), `evidence_count`, `attempted_only` (every
    call failed), `reasons`, `primary`. No events → an empty list.
    """
    ordered = sorted_events(events)
    if not ordered:
        return []
    rules = tuple(rules) if rules is not None else default_rules()
    owner_score, usual, owner_reasons = _owner_use(ordered, baseline) if baseline else (0.0, [], [])
    if owner_score >= 0.75:
        item = _item("owner_use", LABELS["owner_use"], PRIORITY_OWNER, owner_score, usual,
                     [*owner_reasons, "nothing in the calls departs from the owner's baseline: no abuse shown"])
        item["primary"] = True
        return [item]
    if len(ordered) <= VALIDATION_MAX_EVENTS and all((service_of(e), e.get("event_name")) in VALIDATION_CALLS
                                                      for e in ordered):
        item = _item("validation_only", LABELS["validation_only"], PRIORITY_VALIDATION, 0.9, ordered,
                     ["only identity checks (GetCallerIdentity): the key was tested, not used",
                      "no resources touched, no data read"])
        item["primary"] = True
        return [item]
    results: list[Intent] = []
    cleanup = own_cleanup(ordered)
    explained: set[int] = {id(e) for e in cleanup}  # cleanup shows no other intent
    for rule in rules:
        best_score = 0.0
        strong_or_medium: set[int] = set()
        hits: list[Event] = []
        seen: set[int] = {id(e) for e in cleanup}
        reasons = []
        for signal in rule.signals:
            matched = [e for e in ordered if id(e) not in seen and signal.matches(e)]
            if not matched:
                continue
            s = _score(signal.weight, matched, signal.strong_at)
            best_score = max(best_score, s)
            hits.extend(matched)
            seen.update(id(e) for e in matched)
            if signal.weight != "weak":
                strong_or_medium.update(id(e) for e in matched)
            failed = all(_failed(e) for e in matched)
            names = sorted({str(e.get("event_name")) for e in matched})
            reasons.append(f"{signal.why}: {', '.join(names)}" + (" (attempted, refused)" if failed else ""))
        if rule.intent == "data_theft":
            stolen = [e for e in ordered if instance_credential(e) and id(e) not in seen]
            if stolen:
                best_score = max(best_score, _score("strong", stolen, 1))
                hits.extend(stolen)
                strong_or_medium.update(id(e) for e in stolen)
                reasons.append("EC2 instance-role credentials (session named after the instance) used by the actor")
        if hits:
            explained.update(strong_or_medium)
            results.append(_item(rule.intent, rule.label, rule.priority, best_score, hits, reasons))
    reads = [e for e in ordered if id(e) not in explained
             and str(e.get("event_name") or "").startswith(READ_PREFIXES)]
    if reads:
        distinct = {_call(e) for e in reads}
        denied = [e for e in reads if _failed(e)]
        score = 0.9 if len(distinct) >= 10 else 0.6 if len(distinct) >= 4 or len(reads) >= 10 else 0.3
        if len(denied) >= 5:
            score = max(score, 0.8)
        reasons = [f"{len(reads)} read calls, {len(distinct)} different ({', '.join(sorted(distinct)[:8])}"
                   f"{'…' if len(distinct) > 8 else ''})"]
        if denied:
            reasons.append(f"{len(denied)} refused: the actor was probing what the key may do")
        results.append(_item("reconnaissance", LABELS["reconnaissance"], PRIORITY_RECON, score, reads, reasons))
    if cleanup:
        gone = sorted({t for e in cleanup for t in targets(e)})
        results.append(_item("cleanup", LABELS["cleanup"], PRIORITY_CLEANUP, CLEANUP_SCORE, cleanup, [
            f"{len(cleanup)} deletion(s) of resources the actor created earlier in these events "
            f"({', '.join(gone)}): tearing down its own, not destroying the account's"]))
    if owner_score:
        results.append(_item("owner_use", LABELS["owner_use"], PRIORITY_OWNER, owner_score, usual, owner_reasons))
    results.sort(key=lambda r: (-r["score"], r["priority"]))
    if results:
        results[0]["primary"] = True
    return results


#: An intent item as `classify_intent` lists it (or any mapping with a "primary" flag).
IntentItem = TypeVar("IntentItem", bound=Mapping[str, object])


def primary_intent(intents: Sequence[IntentItem]) -> IntentItem | None:
    """The item marked primary (None for no events)."""
    return next((i for i in intents if i.get("primary")), None)
