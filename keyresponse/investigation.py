"""Analysis: scope every credential the attacker touched, then measure the impact.

    investigation = investigate(engine, "AKIA…", Window.around(now))
    investigation.to_json()          # the investigation object of docs/architecture.md

**Scoping is a fixpoint over a credential graph.** Start from the compromised key. Each round
runs three queries for every credential known so far — activity by source IP, credentials it
minted (`derived_credentials`: CreateAccessKey, GetSessionToken, GetFederationToken, AssumeRole),
and other principals seen from the attacker's IPs — and adds what is new, recording each
credential's parent and the event that created it. It stops when a round adds nothing (or after
`max_rounds`).

**Whose IP is it?** A shared key is used by its owner and by the attacker at once, so every source
IP of the credentials is judged against the key's own baseline (`keyresponse.judgement`): its
history before the window (read `history_days` back), the places, clients and calls it used
before the attack's first sign, AWS's and other providers' published ranges, Tor and threat lists.
Each IP is *attacker*, *known* (the owner's), *service* (an AWS service acting) or *uncertain*, with
a confidence and the evidence behind it. The responder can override with `known_ips` /
`attacker_ips` (an alert's addresses are always the attacker's).

A credential minted by the compromised key counts only when it was minted from an attacker IP (the
owner's own AssumeRole from the office is left alone); one minted from an uncertain IP is offered
as an *uncertain credential*, never put into the default containment plan; anything minted by an
attacker credential counts wherever it came from. Other credentials seen at an attacker IP join
the incident only when they arrived there with the attacker (not before: a shared address).

**Verdict.** `malicious` when an attacker IP did more than validate the key; `suspicious` for
validation only (a lone GetCallerIdentity, as secret scanners do); `uncertain` when no IP is the
attacker's but some cannot be told from the owner's (the reasons are in `source_ips[].evidence`);
`benign` when every IP is the owner's or a service's. `malicious` needs attacker evidence, never
merely "not known". Severity follows the playbook: P1 for persistence, derived credentials, created
resources or secrets read; P2 for other data access or broad reconnaissance; P3 for validation, a
few calls, or an uncertain verdict (a human must look); P4 benign.

Size: the scope fixpoint and the assessment share the investigator's state (the window, the judged addresses, the queries run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from pydantic import JsonValue

from keyresponse.engines import QueryEngine
from keyresponse.guardrails import foreign_principals
from keyresponse.intel.attribution import IntelConfig, Ranges, load_ranges
from keyresponse.intel.cost import estimate_cost
from keyresponse.intel.events import sorted_events
from keyresponse.intel.taxonomy import data_access_calls
from keyresponse.judgement import (
    LONG_STANDING,
    Baseline,
    BaselineJson,
    Judged,
    Judgement,
    is_service_name,
    judge_sources,
    merge_ip_rows,
)
from keyresponse.keys import validate_access_key_id
from keyresponse.validation import KeyFacts

if TYPE_CHECKING:
    from keyresponse.intel import FiveAnswers

CONTRACT_FIELDS = ("access_key_id", "account_id", "principal_arn", "window", "first_seen", "last_seen",
                   "event_count", "source_ips", "regions", "credentials", "principals", "persistence",
                   "data_access", "resources_created", "recon_errors", "severity", "verdict", "logging_gaps",
                   "bytes_scanned", "engine")
CREDENTIAL_FIELDS = ("access_key_id", "kind", "created_by_event", "parent", "principal_arn")
#: Contract fields added later: optional when reading a record, always written.
OPTIONAL_FIELDS = ("uncertain_credentials", "key_creation", "attacker_infrastructure")
#: How far before the window the key's history (its owner's habits) is read.
HISTORY_DAYS = 30
#: Another credential at an attacker IP arrived with the attacker when it first appeared there no
#: earlier than this before the attacker did.
ARRIVED_WITH = timedelta(hours=1)
#: Other principals that used an IP before ours did, enough to call it a shared egress on short logs.
SHARED_EGRESS_PRINCIPALS = 3
VALIDATION_CALLS = {"GetCallerIdentity"}
SECRET_SOURCES = {"secretsmanager.amazonaws.com", "ssm.amazonaws.com", "kms.amazonaws.com"}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """The investigated time span [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, default_days: int = 90) -> Window:
        end_at = _ts(end) if end else datetime.now(UTC)
        start_at = _ts(start) if start else end_at - timedelta(days=default_days)
        if start_at >= end_at:
            from keyresponse.errors import InputError

            raise InputError(f"--start {_iso(start_at)} is not before --end {_iso(end_at)}")
        return cls(start_at, end_at)

    def params(self) -> dict[str, str]:
        # Files are foldered by delivery time: read one day past the end.
        return {"start_day": self.start.strftime("%Y/%m/%d"),
                "end_day": (self.end + timedelta(days=1)).strftime("%Y/%m/%d"),
                "start_time": _iso(self.start), "end_time": _iso(self.end)}


class CredentialJson(TypedDict):
    """A credential as the investigation lists it (`CREDENTIAL_FIELDS`)."""

    access_key_id: str
    kind: str
    created_by_event: str | None
    parent: str | None
    principal_arn: str | None


class UncertainCredentialJson(CredentialJson):
    """With why it is uncertain."""

    reasons: list[str]


class CredentialEvidenceJson(CredentialJson):
    """With how sure, and why it is in the incident."""

    confidence: str
    evidence: list[str]


@dataclass
class Credential:
    access_key_id: str
    kind: str  # original | access_key | session
    created_by_event: str | None = None
    parent: str | None = None
    principal_arn: str | None = None
    created_at: str | None = None
    source_ip: str | None = None
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> CredentialJson:
        return {"access_key_id": self.access_key_id, "kind": self.kind, "created_by_event": self.created_by_event,
                "parent": self.parent, "principal_arn": self.principal_arn}

    def uncertain_json(self) -> UncertainCredentialJson:
        return {**self.to_json(), "reasons": list(self.reasons)}

    def evidence_json(self) -> CredentialEvidenceJson:
        """With why it is in the incident and how sure: minted from an attacker IP or by an attacker
        credential is certain; seen at an attacker IP when the attacker was there, likely."""
        confidence = "high" if self.kind == "original" or self.created_by_event else "medium"
        reasons = self.reasons or ["the investigated key"]
        return {**self.to_json(), "confidence": confidence, "evidence": list(reasons)}


def principal_of_session(arn: str | None) -> str | None:
    """The principal to contain for an ARN: an assumed-role session → its role."""
    if arn and ":assumed-role/" in arn:
        account = arn.split(":")[4]
        role = arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
        return f"arn:aws:iam::{account}:role/{role}"
    return arn


def _long_standing(other: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    """An outside principal vouches for an IP when it has used it for a day or more, or since a day
    before our credentials first appeared there: an office NAT or a CI fleet, not a shared burst."""
    first, last = other.get("first_seen_at"), other.get("last_seen_at")
    if not first or not last:
        return False
    ours_first = ours.get("first_seen_at")
    return (_ts(last) - _ts(first) >= LONG_STANDING
            or bool(ours_first and _ts(ours_first) - _ts(first) >= LONG_STANDING))


def _shared_egress(others: Iterable[Mapping[str, Any]], ip_rows: Mapping[str, Mapping[str, Any]],
                   creds: Mapping[str, Credential]) -> dict[str, list[str]]:
    """IP → the other principals that vouch for it as the organisation's egress: each one that has used
    it for a day or more (`_long_standing`), or, on a short span of logs, at least
    `SHARED_EGRESS_PRINCIPALS` that all used it before our credentials first did."""
    vouching: dict[str, set[str]] = {}
    earlier: dict[str, set[str]] = {}
    for row in others:
        ip, ours = row["source_ip"], ip_rows.get(row["source_ip"])
        if not ours or row["access_key_id"] in creds:
            continue
        who = str(row["principal_arn"] or "?")
        if _long_standing(row, ours):
            vouching.setdefault(ip, set()).add(who)
        if row.get("first_seen_at") and ours.get("first_seen_at") and row["first_seen_at"] < ours["first_seen_at"]:
            earlier.setdefault(ip, set()).add(who)
    for ip, principals in earlier.items():
        if len(principals) >= SHARED_EGRESS_PRINCIPALS:
            vouching.setdefault(ip, set()).update(principals)
    return {ip: sorted(principals) for ip, principals in vouching.items()}


@dataclass
class Scope:
    """What scoping found: the credentials, and whose each source IP is."""

    original: str
    credentials: dict[str, Credential]
    attacker_ips: set[str]
    known_ips: set[str]
    ip_rows: dict[str, dict[str, Any]]
    rounds: int
    queries: list[dict[str, Any]] = field(default_factory=list)
    summary_rows: list[dict[str, Any]] = field(default_factory=list)
    uncertain_ips: set[str] = field(default_factory=set)
    judgements: dict[str, Judgement] = field(default_factory=dict)
    baseline: Baseline = field(default_factory=Baseline)
    uncertain_credentials: dict[str, Credential] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data, so a Prefect task can hand the scope to the next one."""
        return {"original": self.original,
                "credentials": [vars(c) for c in self.credentials.values()],
                "attacker_ips": sorted(self.attacker_ips), "known_ips": sorted(self.known_ips),
                "uncertain_ips": sorted(self.uncertain_ips),
                "ip_rows": self.ip_rows, "rounds": self.rounds, "queries": self.queries,
                "summary_rows": self.summary_rows,
                "judgements": [j.to_json() for j in self.judgements.values()],
                "baseline": self.baseline.to_json(),
                "uncertain_credentials": [vars(c) for c in self.uncertain_credentials.values()],
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        creds = {c["access_key_id"]: Credential(**c) for c in data["credentials"]}
        baseline = Baseline.from_json(data.get("baseline") or BaselineJson())
        return cls(data["original"], creds, set(data["attacker_ips"]), set(data["known_ips"]),
                   dict(data["ip_rows"]), int(data["rounds"]), list(data["queries"]),
                   list(data.get("summary_rows", [])), set(data.get("uncertain_ips", [])),
                   {j["ip"]: Judgement.from_json(j) for j in data.get("judgements", [])}, baseline,
                   {c["access_key_id"]: Credential(**c) for c in data.get("uncertain_credentials", [])},
                   list(data.get("notes", [])))


def _in_query_order(rows: list[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    """Rows sorted as the query's `ORDER BY` of these columns sorts them (ascending, NULLs last)."""
    return sorted(rows, key=lambda r: tuple((r[c] is None, r[c] or "") for c in columns))


class Investigator:
    """Runs the scoping fixpoint and the impact queries on one engine."""

    def __init__(self, engine: QueryEngine, access_key_id: str, window: Window, *,
                 known_ips: Iterable[str] = (), attacker_ips: Iterable[str] = (), max_rounds: int = 8,
                 progress: Callable[[str], None] | None = None,
                 intel: IntelConfig | Mapping[str, object] | None = None, history_days: int = HISTORY_DAYS,
                 accounts_in_scope: Iterable[str] = ()) -> None:
        self.engine = engine
        #: member accounts the responder acts in: a principal elsewhere (not the key's account) is the attacker's
        self.accounts_in_scope = list(accounts_in_scope)
        self.key = validate_access_key_id(access_key_id)
        self.window = window
        self.known = set(known_ips)
        self.hinted = set(attacker_ips)
        self.max_rounds = max_rounds
        self.progress = progress or (lambda _msg: None)
        self.queries: list[dict[str, Any]] = []
        self.intel = IntelConfig.from_mapping(intel)
        self.history_days = max(0, history_days)
        self._ranges: Ranges | None = None

    @property
    def ranges(self) -> Ranges:
        if self._ranges is None:
            self._ranges = load_ranges(self.intel)
        return self._ranges

    def _run(self, name: str, window: Window | None = None, **params: Any) -> list[dict[str, Any]]:
        bound = {**(window or self.window).params(), **params}
        self.queries.append({"query": name, "params": bound})
        return self.engine.run(name, bound)

    # -- scoping ---------------------------------------------------------------------------
    def history(self) -> dict[str, dict[str, Any]]:
        """The key's use before the window, by IP: the owner's habits (`history_days` back)."""
        if not self.history_days:
            return {}
        before = Window(self.window.start - timedelta(days=self.history_days), self.window.start)
        return {row["source_ip"]: row for row in self._run("key_activity_by_source_ip", before,
                                                           access_key_ids=[self.key])}

    def scope(self) -> Scope:
        """The credential graph: round after round, what the credentials known so far did, until a round
        finds no new credential (bounded by `max_rounds`).

        Each query asks only about what is new this round (the new credentials, the IPs not asked
        about yet); the rows of earlier rounds are kept and judged again against what is known now,
        in the order the query would return them all. Who else used an IP is asked only for IPs
        outside the owner's baseline (an office NAT's every record: millions), once per IP: the
        same rows say whether it is a shared egress and which other credentials the attacker used
        from it. On Athena each round costs only what is new."""
        creds: dict[str, Credential] = {self.key: Credential(self.key, "original")}
        uncertain: dict[str, Credential] = {}
        history = self.history()
        ip_rows: dict[str, dict[str, Any]] = {}
        asked_keys: set[str] = set()
        asked_ips: set[str] = set()
        derived: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        notes: list[str] = []
        rounds = 0
        for rounds in range(1, self.max_rounds + 1):
            self.progress(f"scoping round {rounds}: {len(creds)} credential(s)")
            new_keys = sorted(set(creds) - asked_keys)
            asked_keys |= set(new_keys)
            for row in self._run("key_activity_by_source_ip", access_key_ids=new_keys) if new_keys else []:
                ip_rows[row["source_ip"]] = merge_ip_rows(ip_rows.get(row["source_ip"]), row)
            judged = self._judge(ip_rows, history, creds, others)
            ask = sorted((judged.of("attacker") | judged.of("uncertain")) - asked_ips)
            if ask:
                asked_ips |= set(ask)
                others = _in_query_order(others + self._run("other_principals_by_source_ip", source_ips=ask,
                                                            access_key_ids=sorted(creds)),
                                         "first_seen_at", "source_ip", "principal_arn")
                judged = self._judge(ip_rows, history, creds, others)
            if new_keys:
                derived = _in_query_order(derived + self._run("derived_credentials", access_key_ids=new_keys),
                                          "created_at", "access_key_id")
            added = self._add_derived(derived, creds, uncertain, judged)
            added |= self._add_linked(others, creds, ip_rows, judged, notes)
            if not added:
                break
        judged = self._judge(ip_rows, history, creds, others)
        for key in set(uncertain) & set(creds):
            del uncertain[key]
        summary = self._fill_principals(creds)
        attacker, unsure = judged.of("attacker"), judged.of("uncertain")
        return Scope(self.key, creds, attacker, set(ip_rows) - attacker - unsure, ip_rows, rounds,
                     list(self.queries), summary, unsure, judged.judgements, judged.baseline, uncertain,
                     list(dict.fromkeys(notes)) + list(self.ranges.notes))

    def _judge(self, ip_rows: Mapping[str, dict[str, Any]], history: Mapping[str, dict[str, Any]],
               creds: Mapping[str, Credential], others: list[dict[str, Any]]) -> Judged:
        return judge_sources(ip_rows, window_start=self.window.start, history=history, hinted=self.hinted,
                             known=self.known, ranges=self.ranges, attacker_keys=set(creds) - {self.key},
                             shared_egress=_shared_egress(others, ip_rows, creds))

    def _add_derived(self, derived: list[dict[str, Any]], creds: dict[str, Credential],
                     uncertain: dict[str, Credential], judged: Judged) -> bool:
        """Credentials minted by ours: the attacker's when minted by an attacker credential or from an
        attacker IP; offered as uncertain when minted from an uncertain IP; the owner's otherwise."""
        added = False
        for row in derived:  # earlier rounds' rows too: an IP judged anew changes their reading
            new_key = row["access_key_id"]
            parent = row["parent_access_key_id"]
            if new_key in creds and creds[new_key].created_by_event:
                continue  # known, with its origin
            principal = (row["principal_arn"] if row["kind"] == "access_key"
                         else principal_of_session(row["principal_arn"]))
            if row["created_by_event"] in ("GetSessionToken", "GetFederationToken") and parent in creds:
                principal = creds[parent].principal_arn or principal
            made = Credential(new_key, row["kind"], row["created_by_event"], parent, principal,
                              row["created_at"], row["source_ip"])
            judgement = judged.judgements.get(row["source_ip"])
            where = judgement.classification if judgement else "known"
            if parent == self.key and where == "uncertain":
                assert judgement is not None
                made.reasons = [f"minted by the investigated key from {row['source_ip']}, an address that cannot "
                                "be told from the owner's", *judgement.evidence]
                uncertain[new_key] = made
                continue
            if parent == self.key and where != "attacker":
                continue  # the owner minting its own session from its own network
            made.reasons = [f"minted with {row['created_by_event']} by {parent}"
                            + (f" from attacker IP {row['source_ip']}" if parent == self.key
                               else ", a credential the attacker holds")]
            creds[new_key] = made
            uncertain.pop(new_key, None)
            added = True
        return added

    def _add_linked(self, others: list[dict[str, Any]], creds: dict[str, Credential],
                    ip_rows: Mapping[str, dict[str, Any]], judged: Judged, notes: list[str]) -> bool:
        """Other credentials used from an attacker IP: the attacker's when they arrived there with the
        attacker; one that used the address before is a neighbour on a shared address, left out."""
        added = False
        attacker = judged.of("attacker")
        for row in others:
            other, ip = row["access_key_id"], row["source_ip"]
            if not other or other in creds or ip not in attacker:
                continue
            ours = ip_rows.get(ip) or {}
            if ours.get("first_seen_at") and row.get("first_seen_at") and (
                    _ts(row["first_seen_at"]) < _ts(ours["first_seen_at"]) - ARRIVED_WITH):
                notes.append(f"{other} ({row['principal_arn']}) used attacker IP {ip} since {row['first_seen_at']}, "
                             "before the attacker: a shared address, not joined to the incident")
                continue
            kind = "session" if other.startswith("ASIA") else "access_key"
            # used from the attacker's infrastructure; its origin may show up next round
            creds[other] = Credential(other, kind, None, None, principal_of_session(row["principal_arn"]), reasons=[
                f"used from attacker IP {ip} from {row['first_seen_at']}, when the attacker was there"])
            added = True
        return added

    def _fill_principals(self, creds: dict[str, Credential]) -> list[dict[str, Any]]:
        rows = self._run("key_activity_summary", access_key_ids=sorted(creds))
        for row in rows:
            cred = creds.get(row["access_key_id"])
            if cred and not cred.principal_arn and row["principal_arns"]:
                cred.principal_arn = principal_of_session(row["principal_arns"][0])
        return rows

    # -- impact ----------------------------------------------------------------------------
    def investigate(self, facts: KeyFacts | None = None) -> Investigation:
        return self.assess(self.scope(), facts)

    def assess(self, scope: Scope, facts: KeyFacts | None = None) -> Investigation:
        """The impact queries over the scoped credentials, minus the owner's known IPs."""
        if not self.queries:
            self.queries = list(scope.queries)
        keys = sorted(scope.credentials)
        exclude = sorted(scope.known_ips | scope.uncertain_ips)  # the attacker's activity only
        self.progress("measuring impact")
        events = self._run("key_events", access_key_ids=keys, exclude_ips=exclude)
        persistence = self._run("persistence_events", access_key_ids=keys, exclude_ips=exclude)
        persistence = _in_query_order(persistence + self._sign_ins_of_created_users(persistence, exclude),
                                      "event_time", "event_id")
        data = self._run("data_access_events", access_key_ids=keys, exclude_ips=exclude,
                         data_calls=data_access_calls())
        created = self._run("resources_created", access_key_ids=keys, exclude_ips=exclude)
        recon = self._run("recon_errors", access_key_ids=keys, exclude_ips=exclude)
        regions = self._run("key_activity_by_region", access_key_ids=keys, exclude_ips=exclude)
        return Investigation(self, scope, facts, events, persistence, data, created, recon, regions,
                             key_creation=self._key_creation())

    # -- what no query scoped to the credentials' own calls can see ---------------------------
    def _key_creation(self) -> dict[str, Any] | None:
        """The event that created the investigated key, whoever made it (an administrator, a root
        session): no record made *with* the key holds it, its own creation event does. None when the
        window's logs do not reach back to it."""
        rows = self._run("key_creation", access_key_ids=[self.key])
        return rows[0] if rows else None

    def _sign_ins_of_created_users(self, persistence: list[dict[str, Any]],
                                   exclude: list[str]) -> list[dict[str, Any]]:
        """Console sign-ins by the users the credentials created: made with a password, no key, so
        only their user names find them. Asked only when a user was created (the query reads every
        record of the window)."""
        made = [p for p in persistence if p["event_name"] == "CreateUser" and not p["error_code"] and p["target"]]
        if not made:
            return []
        accounts = sorted({str(p["principal_arn"]).split(":")[4] for p in made
                           if str(p["principal_arn"] or "").count(":") >= 5})
        return self._run("created_user_sign_ins", user_names=sorted({p["target"] for p in made}),
                         account_ids=accounts, exclude_ips=exclude)


@dataclass
class Investigation:
    """Everything found, and the investigation object of docs/architecture.md (`to_json`)."""

    investigator: Investigator
    scope: Scope
    facts: KeyFacts | None
    events: list[dict[str, Any]]
    persistence: list[dict[str, Any]]
    data_access: list[dict[str, Any]]
    resources_created: list[dict[str, Any]]
    recon_errors: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    key_creation: dict[str, Any] | None = None

    # -- judgement --------------------------------------------------------------------------
    def _owner_agents(self) -> set[str]:
        """User agents of the owner's baseline: the owner's habits."""
        return set(self.scope.baseline.user_agents)

    def verdict(self) -> str:
        if not self.events:
            if self.scope.uncertain_ips:
                return "uncertain"
            return "benign" if self.scope.ip_rows else "unknown"
        if {e["event_name"] for e in self.events} <= VALIDATION_CALLS:
            return "suspicious"
        return "malicious"

    def severity(self, verdict: str) -> str:
        if verdict in ("benign", "unknown"):
            return "P4"
        if verdict in ("suspicious", "uncertain"):
            return "P3"
        secrets = any(d["event_source"] in SECRET_SOURCES and not d["error_count"] for d in self.data_access)
        if self.persistence or self.resources_created or len(self.scope.credentials) > 1 or secrets:
            return "P1"
        if self.data_access or len(self.events) >= 20:
            return "P2"
        return "P3"

    def logging_gaps(self) -> list[str]:
        # The last day read is padded past the window for late deliveries: its absence is no gap.
        window = self.investigator.window
        padding = {f"no CloudTrail files for day {(window.end + timedelta(days=d)).strftime('%Y/%m/%d')}"
                   for d in (0, 1) if (window.end + timedelta(days=d)).date() > (window.end - timedelta(seconds=1)).date()}
        # Days before the window were read only for the key's history: their absence is no gap either.
        before = window.start.strftime("%Y/%m/%d")
        gaps = [g for g in self.investigator.engine.logging_gaps if g not in padding
                and not (g.startswith("no CloudTrail files for day ") and g.rsplit(" ", 1)[1] < before)]
        if self.facts:
            gaps.extend(self.facts.gaps)
        if not any(e["event_source"] == "s3.amazonaws.com" and e["event_name"] in ("GetObject", "PutObject")
                   for e in self.events) and not self._data_events_seen():
            gaps.append("no S3 data events in the trail for these credentials: S3 object reads are unknown "
                        "unless data events are enabled")
        return gaps

    def _data_events_seen(self) -> bool:
        return any(row.get("event_source") == "s3.amazonaws.com" for row in self.data_access)

    # -- the contract ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Exactly the investigation object of docs/architecture.md."""
        full = self.to_full_json()
        return {k: full[k] for k in (*CONTRACT_FIELDS, *OPTIONAL_FIELDS)} | {
            "source_ips": [{k: ip[k] for k in ("ip", "event_count", "user_agents", "first_seen", "last_seen",
                                               "classification", "confidence", "evidence")}
                           for ip in full["source_ips"]],
            "persistence": [{k: p[k] for k in ("event_name", "event_time", "resource", "detail", "access_key_id")}
                            for p in full["persistence"]],
            "data_access": [{k: d[k] for k in ("event_name", "resource", "count")} for d in full["data_access"]],
            "resources_created": [{k: r[k] for k in ("type", "id", "region", "event_name")}
                                  for r in full["resources_created"]],
            "credentials": [{k: c[k] for k in (*CREDENTIAL_FIELDS, "confidence", "evidence")}
                            for c in full["credentials"]],
        }

    def to_full_json(self) -> dict[str, Any]:
        """The contract plus what the report needs: IP classification, key facts, cost, the queries run."""
        scope = self.scope
        events = self.events
        verdict = self.verdict()
        principals = sorted({c.principal_arn for c in scope.credentials.values() if c.principal_arn})
        summary = {row["access_key_id"]: row for row in scope.summary_rows}
        original = summary.get(scope.original, {})
        facts = self.facts
        source_ips = []
        for row in sorted(scope.ip_rows.values(), key=lambda r: (r["source_ip"] not in scope.attacker_ips, r["first_seen_at"])):
            ip = row["source_ip"]
            judgement = scope.judgements.get(ip) or Judgement(
                ip, "service" if is_service_name(ip) else "known", "low", [])
            source_ips.append({"ip": ip, "event_count": row["event_count"], "user_agents": row["user_agents"] or [],
                               "first_seen": row["first_seen_at"], "last_seen": row["last_seen_at"],
                               "classification": judgement.classification, "confidence": judgement.confidence,
                               "evidence": judgement.evidence, "event_names": row.get("event_names") or [],
                               "error_codes": row.get("error_codes") or []})
        account = (facts.account_id if facts and facts.account_id else original.get("account_id"))
        principal = (facts.owner_arn if facts and facts.owner_arn
                     else scope.credentials[scope.original].principal_arn)
        credentials = [c.evidence_json() for c in scope.credentials.values()]
        foreign = foreign_principals(credentials, account, self.investigator.accounts_in_scope)
        for item in foreign:
            for cred in credentials:
                if cred["access_key_id"] in item.access_key_ids:
                    cred["evidence"].append(f"a credential of {item.kind} {item.name} in account {item.account_id}, "
                                            "outside ours: attacker infrastructure, not ours to contain")
        record: dict[str, Any] = {
            "access_key_id": scope.original,
            "account_id": account,
            "principal_arn": principal,
            "window": {"start": _iso(self.investigator.window.start), "end": _iso(self.investigator.window.end)},
            "first_seen": events[0]["event_time"] if events else None,
            "last_seen": events[-1]["event_time"] if events else None,
            "event_count": len(events),
            "source_ips": source_ips,
            "regions": sorted(row["aws_region"] for row in self.regions),
            "credentials": credentials,
            "attacker_infrastructure": [item.model_dump(mode="json") for item in foreign],
            "principals": principals,
            "persistence": [{"event_name": p["event_name"], "event_time": p["event_time"],
                             "resource": p["target"], "detail": p["detail"], "access_key_id": p["access_key_id"],
                             "category": p["category"], "region": p["aws_region"], "error_code": p["error_code"]}
                            for p in self.persistence],
            "data_access": [{"event_name": d["event_name"], "resource": d["resource"], "count": d["call_count"],
                             "access_key_id": d["access_key_id"], "error_count": d["error_count"]}
                            for d in self.data_access],
            "resources_created": [{"type": r["resource_type"], "id": r["resource_id"], "region": r["aws_region"],
                                   "event_name": r["event_name"], "access_key_id": r["access_key_id"],
                                   "event_time": r["event_time"]} for r in self.resources_created],
            "recon_errors": [{"event_name": r["event_name"], "error_code": r["error_code"], "count": r["call_count"]}
                             for r in self.recon_errors],
            "severity": self.severity(verdict),
            "verdict": verdict,
            "logging_gaps": self.logging_gaps(),
            "bytes_scanned": self.investigator.engine.bytes_scanned,
            "engine": self.investigator.engine.engine,
            "cost_estimate_usd": 0.0,  # below: the estimate reads this record
            "key_creation": self.key_creation,
            "key": facts.to_json() if facts else None,
            "queries": self.investigator.queries,
            "uncertain_credentials": [c.uncertain_json() for c in scope.uncertain_credentials.values()],
            "baseline": scope.baseline.to_json(),
            "scoping_notes": list(scope.notes),
        }
        # The damage answer (`answers`) estimates from this same record and these same events: one figure.
        record["cost_estimate_usd"] = estimate_cost(record, sorted_events(events))["total_usd"]
        return record

    def answers(self, alert_source: str | None = None, alert_payload: Mapping[str, JsonValue] | None = None,
                intel_config: Mapping[str, object] | None = None) -> FiveAnswers:
        """The playbook's five questions (keyresponse.intel): exposure, tools, intent, attribution, damage."""
        from keyresponse.intel import answer_five_questions

        return answer_five_questions(self.events, self.to_full_json(), alert_source, alert_payload,
                                     self.facts.to_json() if self.facts else None, intel_config,
                                     baseline={"user_agents": sorted(self._owner_agents())})


def default_window(logs: str | None, *, days: int = 90) -> Window:
    """For a local folder of logs, the days it holds; otherwise the last `days` days."""
    if logs and not logs.startswith("s3://"):
        from pathlib import Path

        from keyresponse.engines.trail_files import days_with_logs

        held = days_with_logs(Path(logs))
        if held:
            first = datetime.strptime(held[0], "%Y/%m/%d").replace(tzinfo=UTC)
            last = datetime.strptime(held[-1], "%Y/%m/%d").replace(tzinfo=UTC) + timedelta(days=1)
            return Window(first, last)
    end = datetime.now(UTC)
    return Window(end - timedelta(days=days), end)


def open_engine(logs: str | None, kind: str | None = None) -> QueryEngine:
    """DuckDB over `logs` (a folder or s3:// prefix), or Athena when `kind` is "athena"."""
    from keyresponse.settings import get_settings

    settings = get_settings()
    if (kind or settings.engine) == "athena":
        from keyresponse.engines.athena_engine import AthenaEngine

        return AthenaEngine.from_settings()
    from keyresponse.engines.duckdb_engine import DuckDBEngine
    from keyresponse.errors import ConfigurationError

    source = logs or settings.cloudtrail_logs
    if not source:
        raise ConfigurationError("no CloudTrail logs configured: set KEYRESPONSE_CLOUDTRAIL_LOGS or pass --logs")
    return DuckDBEngine(source, cache_dir=settings.home / "cache")


def investigate(engine: QueryEngine, access_key_id: str, window: Window, *, facts: KeyFacts | None = None,
                known_ips: Iterable[str] = (), attacker_ips: Iterable[str] = (),
                progress: Callable[[str], None] | None = None,
                intel: IntelConfig | Mapping[str, object] | None = None, history_days: int = HISTORY_DAYS,
                accounts_in_scope: Iterable[str] = ()) -> Investigation:
    """Scope and assess one key: the whole analysis phase on the logs. `intel` names the published
    ranges and lists the judgement reads (`keyresponse.intel.attribution.IntelConfig`); the key's
    history is read `history_days` before the window. A credential's principal in an account that is
    neither the key's nor one of `accounts_in_scope` is listed in `attacker_infrastructure`."""
    investigator = Investigator(engine, access_key_id, window, known_ips=known_ips, attacker_ips=attacker_ips,
                                progress=progress, intel=intel, history_days=history_days,
                                accounts_in_scope=accounts_in_scope)
    return investigator.investigate(facts)
