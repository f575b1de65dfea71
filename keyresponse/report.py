"""The post-incident report: one incident record (keyresponse.incident) → Markdown, HTML, JSON, SQL.

    write_report(incident, out_dir)   # report.md, report.html, incident.json, queries/NN_<name>.sql
    render_markdown(incident)         # for the Prefect Markdown artifact (publish_artifacts)
    render_html(incident)             # one self-contained file: inline CSS and SVG, no JavaScript

The templates are `reports/incident_report.{md,html}.j2` with partials `reports/_*.j2`. Both
environments use `StrictUndefined`. HTML is autoescaped. Markdown cannot be autoescaped by
Jinja, so its environment has a `finalize` that passes every `{{ … }}` output through
`keyresponse.markdown.text`, the one escaping function (the Prefect UI renders images, links and raw
HTML inside Markdown). Only `Markdown` values built by keyresponse.markdown (code spans and blocks)
and the chart's data URI pass through unchanged. An attacker's user agent or object key therefore
shows as text in both formats.

What the report shows is computed here, once, in `build_context`. The templates only lay it
out. Numbers come from the record: counts from the investigation and the ledger, durations from
the timeline. `figures()` lists the headline numbers with where each comes from, and the tests
check them against the data.

Recommendations are rules (`RULES`). Each rule reads the record and either returns a
recommendation tied to the finding that triggered it, or nothing.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from keyresponse import markdown
from keyresponse.errors import InputError, KeyResponseError
from keyresponse.files import data_folder
from keyresponse.guardrails import REFUSAL_PREFIX, Principal, parse_principal
from keyresponse.incident import INTEL_FIELDS, Incident, parse_time
from keyresponse.intel.cost import recorded_cost
from keyresponse.intel.taxonomy import (
    ACTIVITIES,
    CREDENTIALS,
    DELETE,
    OBJECT_READS,
    SECRET_READS,
    WRITE_KINDS,
    kind_of,
    own_cleanup,
)
from keyresponse.intel.taxonomy import category_of as categorize
from keyresponse.ledger import LedgerEntry, in_effect
from keyresponse.markdown import Markdown
from keyresponse.svg import Lane, Marker, Point, TreeNode, activity_chart, outline, tree_chart

#: Where the templates live: the top-level `reports/` package (package data in a wheel).
REPORTS_DIR = data_folder("reports", pattern="incident_report.*.j2")
REPORT_FILES = ("report.md", "report.html", "incident.json")

# -- categories of attacker activity ---------------------------------------------------------------

#: Lane colours by category (`keyresponse.intel.taxonomy.ACTIVITIES`, which holds the categories and
#: their calls): the Okabe–Ito palette (colour-blind safe).
_COLOURS = {"recon": "#0072B2", "credentials": "#D55E00", "persistence": "#CC79A7", "data_access": "#E69F00",
            "compute": "#009E73", "defense_evasion": "#000000", "other": "#999999"}
#: (key, label, colour), in chart order.
CATEGORIES: tuple[Lane, ...] = tuple(Lane(a.key, a.label, _COLOURS[a.key]) for a in ACTIVITIES)


# -- formatting --------------------------------------------------------------------------------------

def _finalize_markdown(value: Any) -> Any:
    if isinstance(value, Markdown | Markup):  # built by keyresponse.markdown, or the chart's data URI
        return value
    return "—" if value is None else markdown.text(value)


def _finalize_html(value: Any) -> Any:
    return "—" if value is None else value


def compact_json(value: Any) -> str:
    """One-line JSON with sorted keys (for before/after states and parameters)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def _nest(depth: int) -> Markdown:
    """Two spaces per level of a nested Markdown list."""
    return Markdown("  " * int(depth))


def when(value: str | None) -> str | None:
    """An ISO time as `2026-11-19 19:00:22 UTC` (fractions dropped); None stays None."""
    if not value:
        return None
    return parse_time(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_duration(seconds: float | None) -> str | None:
    """`2 min 51 s`, `1 h 12 min`, `2 d 3 h`; None when unknown."""
    if seconds is None:
        return None
    total = round(seconds)
    sign, total = ("−", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        parts = [f"{days} d", f"{hours} h" if hours else ""]
    elif hours:
        parts = [f"{hours} h", f"{minutes} min" if minutes else ""]
    elif minutes:
        parts = [f"{minutes} min", f"{secs} s" if secs else ""]
    else:
        parts = [f"{secs} s"]
    return sign + " ".join(p for p in parts if p)


def short_arn(arn: str | None) -> str | None:
    """`arn:aws:iam::111122223333:user/alice` → `user/alice` (the credential chart's boxes only: text
    shows ARNs whole, as two accounts' `role/admin` are two principals)."""
    if not arn:
        return arn
    return arn.split(":", 5)[5] if arn.count(":") >= 5 else arn


def target_label(target: Mapping[str, Any]) -> str:
    where = f" @{target['region']}" if target.get("region") else ""
    owner = f" ({target['user_name']})" if target.get("user_name") and target.get("user_name") != target.get("id") else ""
    return f"{target.get('kind', '?')}:{target.get('id', '?')}{where}{owner}"


def artifact_key(incident_id: str) -> str:
    """The Prefect artifact key of an incident: lowercase letters, digits and dashes only."""
    body = re.sub(r"[^a-z0-9-]+", "-", incident_id.lower()).strip("-")
    return f"incident-{body}"[:100]


# -- the pieces the templates lay out -------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A headline number and the record field it is computed from."""

    key: str
    label: str
    value: str
    source: str


@dataclass(frozen=True)
class Milestone:
    key: str
    label: str
    at: str | None


@dataclass(frozen=True)
class Duration:
    key: str
    label: str
    start: str
    end: str
    seconds: float | None

    @property
    def text(self) -> str | None:
        return human_duration(self.seconds)


@dataclass(frozen=True)
class Recommendation:
    """What to change, and the finding that calls for it."""

    key: str
    title: str
    finding: str
    action: str


@dataclass(frozen=True)
class QueryRun:
    """One query the investigation ran, with its parameters, as a runnable `.sql` file."""

    number: int
    name: str
    summary: str
    params: dict[str, Any]
    sql: str

    @property
    def filename(self) -> str:
        return f"queries/{self.number:02d}_{self.name}.sql"


@dataclass(frozen=True)
class CredentialRow:
    access_key_id: str
    kind: str
    created_by_event: str | None
    parent: str | None
    principal_arn: str | None
    depth: int
    event_count: int
    contained: str = "not contained"


@dataclass(frozen=True)
class Action:
    """One ledger entry as the report shows it."""

    entry: LedgerEntry
    target: str
    before: str
    after: str


@dataclass
class ReportContext:
    """Everything the templates read: the record, and what is computed from it."""

    incident: Incident
    inv: dict[str, Any]
    outcome: dict[str, str]
    business_summary: str
    figures: list[Figure]
    milestones: list[Milestone]
    durations: list[Duration]
    categories: list[dict[str, Any]]
    activity_svg: Markup
    credentials: list[CredentialRow]
    credential_svg: Markup
    source_ips: list[dict[str, Any]]
    uncertain_credentials: list[dict[str, Any]]
    user_agents: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    impact: dict[str, Any]
    actions: list[Action]
    plan: list[dict[str, Any]]
    plan_all_applied: bool
    queries: list[QueryRun]
    recommendations: list[Recommendation]
    intel: list[tuple[str, Any]]

    def as_template_vars(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return fields | {"milestone_labels": dict(MILESTONES)}


# -- computing the context -----------------------------------------------------------------------------

MILESTONES: tuple[tuple[str, str], ...] = (
    ("first_malicious_at", "First malicious call"),
    ("detected_at", "Detected"),
    ("alert_received_at", "Alert received (IR notified)"),
    ("analysis_completed_at", "Analysis completed"),
    ("contained_at", "Contained"),
    ("eradicated_at", "Eradicated"),
    ("recovered_at", "Recovered"),
    ("closed_at", "Closed"),
)
#: (key, label, from, to): the playbook's post-incident metrics, measured on the timeline.
DURATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("ttd", "Time to detect", "first_malicious_at", "detected_at"),
    ("ttn", "Time to notify", "detected_at", "alert_received_at"),
    ("ttc", "Time to contain", "detected_at", "contained_at"),
    ("tte", "Time to eradicate", "detected_at", "eradicated_at"),
    ("ttr", "Time to recover", "detected_at", "recovered_at"),
    ("exposure", "Attacker window (first call → contained)", "first_malicious_at", "contained_at"),
    ("total", "Total duration (first call → closed)", "first_malicious_at", "closed_at"),
)


def durations(incident: Incident) -> list[Duration]:
    """The metrics of `DURATIONS`; a metric whose end or start is missing is None."""
    timeline = incident.timeline.model_dump()
    out = []
    for key, label, start, end in DURATIONS:
        a, b = timeline[start], timeline[end]
        seconds = (parse_time(b) - parse_time(a)).total_seconds() if a and b else None
        out.append(Duration(key, label, start, end, seconds))
    return out


def applied_actions(incident: Incident) -> list[LedgerEntry]:
    """Ledger entries of kind `apply` that changed AWS."""
    return [e for e in incident.applied() if e.kind == "apply"]


def figures(incident: Incident) -> list[Figure]:
    """The headline numbers, each computed from one place in the record."""
    inv = incident.investigation
    derived = [c for c in inv["credentials"] if c["kind"] != "original"]
    data_calls = sum(int(d.get("count") or 0) for d in inv["data_access"])
    return [
        Figure("events", "attacker calls", str(inv["event_count"]), "investigation.event_count"),
        Figure("credentials", "credentials in scope", str(len(inv["credentials"])), "len(investigation.credentials)"),
        Figure("derived_credentials", "derived by the attacker", str(len(derived)),
               "len(investigation.credentials where kind != original)"),
        Figure("source_ips", "attacker IPs",
               str(sum(1 for ip in inv["source_ips"] if ip.get("classification", "attacker") == "attacker")),
               "len(investigation.source_ips where classification == attacker)"),
        Figure("resources_created", "resources created", str(len(inv["resources_created"])),
               "len(investigation.resources_created)"),
        Figure("data_calls", "data-access calls", str(data_calls), "sum(investigation.data_access.count)"),
        Figure("actions", "changes applied", str(len(applied_actions(incident))),
               "len(ledger where kind == apply and not dry_run)"),
        Figure("approvals", "approval decisions", str(len(incident.approvals)), "len(approvals)"),
        Figure("cost", "estimated cost (USD)", f"{recorded_cost(inv):.2f}",
               "investigation.damage.cost_estimate.total_usd, else investigation.cost_estimate_usd"),
    ]


def _outcome(incident: Incident) -> dict[str, str]:
    """The status headline, and what it means for the reader (with `tone` for styling)."""
    inv = incident.investigation
    changed = len(applied_actions(incident))
    nothing = "Nothing was changed in AWS." if changed == 0 else (
        f"{changed} change(s) applied before this point remain in place; see Actions.")
    if incident.left_in_place is not None:
        left = incident.left_in_place
        nothing = (f"{len(left.changes)} change(s) applied before this point are left in place; see Left in "
                   f"place. To undo them: {left.undo.apply} (or the {left.undo.deployment} deployment "
                   "with dry_run false).")
    reopened = incident.reopenings()
    if reopened:
        nothing += (f" Containment did not hold: the incident was reopened {len(reopened)} time(s); see Did "
                    "containment hold.")
    status = incident.status
    if status == "dry_run" or incident.dry_run:
        return {"tone": "info", "title": "Dry run: nothing was changed",
                "text": "This run only planned. The steps below are what an approved run would apply; "
                        + ("no change was made in AWS." if changed == 0 else nothing)}
    if status == "denied":
        denial = incident.denial()
        who = (f"{denial.approver} denied the {denial.phase} plan at {when(denial.at)}: "
               f"{denial.reason or 'no reason given'}." if denial else "The plan was denied.")
        return {"tone": "warn", "title": "Response denied", "text": f"{who} {nothing}"}
    if status == "not_ours":
        key = inv.get("key") or {}
        owner = key.get("account_id") or inv.get("account_id") or "an unknown account"
        return {"tone": "warn", "title": "Not our key",
                "text": f"Access key {inv['access_key_id']} belongs to account {owner}, which is outside the "
                        "accounts in scope, so no action was taken. Tell that account's owner, who must "
                        "deactivate and rotate the key. If the owner cannot be reached, report the exposure to "
                        "AWS (AWS Trust & Safety) and remove the key from wherever it was exposed. "
                        + nothing}
    if status == "timed_out":
        return {"tone": "warn", "title": "Approval timed out",
                "text": f"No one answered an approval pause in time, so the response stopped. {nothing}"}
    if status == "failed":
        return {"tone": "bad", "title": "Response failed",
                "text": f"The response stopped on an error; the flow run has the details. {nothing}"}
    titles = {"contained": "Contained", "eradicated": "Eradicated", "recovered": "Recovered", "closed": "Closed"}
    still = "" if incident.left_in_place is None else (
        f" {len(incident.left_in_place.changes)} change(s) are left in place; see Left in place.")
    if reopened:
        still += (f" Containment did not hold: the incident was reopened {len(reopened)} time(s); see Did "
                  "containment hold.")
    return {"tone": "good", "title": titles[status],
            "text": f"The response reached the {status} state with {changed} change(s) applied.{still}"}


def _business_summary(incident: Incident) -> str:
    """One paragraph for a manager: what happened, what it touched, what was done."""
    inv = incident.investigation
    owner = short_arn(inv.get("principal_arn")) or "an unknown principal"
    account = inv.get("account_id") or "an unknown account"
    if not inv["event_count"]:
        found = (f"The logs show no use of access key {inv['access_key_id']} ({owner}, account {account}) "
                 f"from outside its owner's usual sources between {when(inv['window']['start'])} and "
                 f"{when(inv['window']['end'])}.")
    else:
        attacker_ips = [ip for ip in inv["source_ips"] if ip.get("classification", "attacker") == "attacker"]
        derived = [c for c in inv["credentials"] if c["kind"] != "original"]
        parts = [f"Between {when(inv['first_seen'])} and {when(inv['last_seen'])} someone other than its owner "
                 f"used access key {inv['access_key_id']} of {owner} (account {account}) from "
                 f"{len(attacker_ips)} IP address(es), making {inv['event_count']} API calls."]
        if derived:
            parts.append(f"They minted {len(derived)} further credential(s) from it and used them too.")
        if inv["resources_created"]:
            parts.append(f"They created {len(inv['resources_created'])} resource(s).")
        reads = sum(int(d.get("count") or 0) for d in inv["data_access"] if not d.get("error_count"))
        if reads:
            parts.append(f"They read or wrote data {reads} time(s) (see Impact).")
        found = " ".join(parts)
    verdict = f"The investigation's verdict is {inv['verdict']}, severity {inv['severity']}."
    return f"{found} {verdict} {_outcome(incident)['text']}"


def _in_effect(incident: Incident) -> list[LedgerEntry]:
    """Applied changes no undo has reversed, oldest first."""
    return in_effect(incident.ledger)


def credential_containment(incident: Incident) -> list[dict[str, Any]]:
    """Every credential in scope (`investigation.credentials`), each with how the response contained
    it, read from the ledger (a change an undo reversed does not count).

    A long-term key is contained by its own deactivation or deletion, or by its user's deletion. A
    session token cannot be deactivated: it is contained by the session-revocation policy on the
    principal it belongs to: the role, for an AssumeRole session; else the user whose key minted it
    (the key's owner when the record names no user), as the planner revokes them — in its own
    account: a policy on a role of the same name in another account contains nothing. A credential of
    the investigation's `attacker_infrastructure` (a principal in an account outside ours) is never
    contained here, and says so.
    """
    inv = incident.investigation
    home = inv.get("account_id")
    top = str(inv.get("principal_arn") or "")
    owner = parse_principal(top) if top else None
    foreign = {key: item for item in inv.get("attacker_infrastructure") or [] for key in item["access_key_ids"]}
    changes = _in_effect(incident)
    refusals = [(step.action, step.target, step.refusal) for _, step in incident.plans.steps() if step.refusal]

    def on(entry: LedgerEntry, kind: str, name: str, account: str | None) -> bool:
        """Whether a change's target is that principal: same kind and name, and same account (the
        incident's when a side names none): a role of the same name elsewhere is another role."""
        there = (entry.target.get("data") or {}).get("account_id") or entry.account_id or home
        here = account or home
        return (entry.target.get("kind"), entry.target.get("id")) == (kind, name) and (
            here is None or there is None or here == there)

    rows = []
    for cred in inv["credentials"]:
        key, kind = str(cred["access_key_id"]), str(cred.get("kind") or "")
        arn = str(cred.get("principal_arn") or (top if kind == "original" else ""))
        principal = parse_principal(arn) if arn else None
        found: list[tuple[LedgerEntry, str]] = []
        revoked: Principal | None = None
        if key in foreign:
            elsewhere = foreign[key]
            how = (f"not contained here: {elsewhere['kind']} {elsewhere['name']} is in account {elsewhere['account_id']}, "
                   "outside ours (attacker infrastructure: report the account to AWS)")
            rows.append({"access_key_id": key, "kind": kind, "principal_arn": cred.get("principal_arn"),
                         "contained": False, "how": how, "changes": []})
            continue
        if key.startswith("AKIA") and kind in ("original", "access_key"):
            user = principal if principal is not None and principal.kind == "user" else None
            for e in changes:
                target = e.target
                if target.get("kind") == "access_key" and target.get("id") == key:
                    if e.action == "deactivate_access_key":
                        found.append((e, "key deactivated"))
                    elif e.action == "delete_access_key":
                        found.append((e, "key deleted"))
                elif e.action == "delete_user" and user and on(e, "user", user.name, user.account_id):
                    found.append((e, f"its user {user.name} deleted, with the user's keys"))
        else:
            if cred.get("created_by_event") == "AssumeRole" or (principal is not None and principal.kind == "role"):
                revoked = principal if principal is not None and principal.kind == "role" else None
            elif principal is not None and principal.kind == "user":
                revoked = principal
            else:
                revoked = owner if owner is not None and owner.kind == "user" else None
            for e in changes:
                if (e.action == "attach_session_revocation_policy" and revoked is not None
                        and on(e, revoked.kind, revoked.name, revoked.account_id)):
                    found.append((e, f"sessions revoked by the deny policy on {revoked.kind} {revoked.name}"))
        if not found:
            subject = (("access_key", key, None) if key.startswith("AKIA") and kind in ("original", "access_key")
                       else (revoked.kind, revoked.name, revoked.account_id) if revoked is not None else None)
            why = next((reason for action, target, reason in refusals if subject is not None
                        and (target.get("kind"), target.get("id")) == subject[:2]
                        and (subject[2] is None or (target.get("data") or {}).get("account_id") in (None, subject[2]))
                        and action in ("deactivate_access_key", "attach_session_revocation_policy")), None)
            if why is not None:
                rows.append({"access_key_id": key, "kind": kind, "principal_arn": cred.get("principal_arn"),
                             "contained": False, "how": f"not contained: {REFUSAL_PREFIX}{why}", "changes": []})
                continue
        rows.append({"access_key_id": key, "kind": kind, "principal_arn": cred.get("principal_arn"),
                     "contained": bool(found), "how": "; ".join(how for _, how in found) or "not contained",
                     "changes": [{"action": e.action, "target": target_label(e.target), "applied_at": e.applied_at,
                                  "entry_id": e.entry_id} for e, _ in found]})
    return rows


def _credential_rows(incident: Incident) -> list[CredentialRow]:
    inv = incident.investigation
    counts = Counter(str(e.get("access_key_id")) for e in incident.events)
    nodes = [TreeNode(c["access_key_id"], c.get("parent"), c["access_key_id"]) for c in inv["credentials"]]
    by_id = {c["access_key_id"]: c for c in inv["credentials"]}
    how = {row["access_key_id"]: row["how"] for row in credential_containment(incident)}
    return [CredentialRow(node.id, by_id[node.id]["kind"], by_id[node.id].get("created_by_event"),
                          by_id[node.id].get("parent"), by_id[node.id].get("principal_arn"), depth,
                          counts.get(node.id, 0), how[node.id]) for node, depth in outline(nodes)]


_KIND_COLOR = {"original": "#B91C1C", "access_key": "#D55E00", "session": "#0072B2"}


def _credential_svg(rows: Sequence[CredentialRow]) -> Markup:
    nodes = []
    for row in rows:
        what = {"original": "exposed key", "access_key": "access key", "session": "session"}.get(row.kind, row.kind)
        subtitle = f"{what} · {short_arn(row.principal_arn) or 'principal unknown'} · {row.event_count} call(s)"
        edge = row.created_by_event or ("seen from attacker IP" if row.kind != "original" else "")
        nodes.append(TreeNode(row.access_key_id, row.parent, row.access_key_id, subtitle, edge,
                              _KIND_COLOR.get(row.kind, "#334155"), dashed=row.created_by_event is None))
    return tree_chart(nodes, title="Credential graph: the exposed key and every credential derived from it")


def _activity(incident: Incident) -> tuple[list[dict[str, Any]], Markup]:
    lanes = {lane.key: lane for lane in CATEGORIES}
    per: dict[str, Counter[str]] = {lane.key: Counter() for lane in CATEGORIES}
    points = []
    for event in incident.events:
        key = categorize(event)
        per[key][str(event.get("event_name"))] += 1
        if event.get("event_time"):
            failed = bool(event.get("error_code"))
            points.append(Point(key, parse_time(event["event_time"]),
                                f"{event['event_time']} {event.get('event_name')} from {event.get('source_ip')}"
                                + (f" ({event.get('error_code')})" if failed else ""), failed))
    markers = []
    timeline = incident.timeline
    if timeline.detected_at:
        markers.append(Marker(parse_time(timeline.detected_at), "detected", "#B45309", dashed=True))
    if timeline.contained_at:
        markers.append(Marker(parse_time(timeline.contained_at), "contained", "#B91C1C"))
    rows = [{"key": key, "label": lanes[key].label, "color": lanes[key].color, "count": sum(c.values()),
             "names": c.most_common()} for key, c in per.items()]
    return rows, activity_chart(CATEGORIES, points, markers,
                                title="Attacker activity by category over time, with detection and containment")


def _sources(incident: Incident) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    inv = incident.investigation
    ips = [ip | {"classification": ip.get("classification", "attacker"), "confidence": ip.get("confidence"),
                 "evidence": ip.get("evidence") or []} for ip in inv["source_ips"]]
    agents: dict[str, dict[str, Any]] = {}
    for event in incident.events:
        agent = str(event.get("user_agent") or "(none)")
        row = agents.setdefault(agent, {"user_agent": agent, "ips": set(), "event_count": 0})
        row["ips"].add(str(event.get("source_ip")))
        row["event_count"] += 1
    if not incident.events:  # no event rows stored: fall back to the IP summary's agents
        for ip in ips:
            if ip["classification"] != "attacker":
                continue
            for agent in ip.get("user_agents") or []:
                agents.setdefault(agent, {"user_agent": agent, "ips": set(), "event_count": None})["ips"].add(ip["ip"])
    agent_rows = [row | {"ips": sorted(row["ips"])} for row in
                  sorted(agents.values(), key=lambda r: (-(r["event_count"] or 0), r["user_agent"]))]
    region_counts = Counter(str(e.get("aws_region")) for e in incident.events)
    regions = [{"region": r, "event_count": region_counts.get(r, 0)} for r in inv["regions"]]
    return ips, agent_rows, regions


def _impact(incident: Incident) -> dict[str, Any]:
    inv = incident.investigation
    changed, deleted = [], []
    cleanup = {id(e) for e in own_cleanup(incident.events)}  # the attacker removing what it made itself
    for event in incident.events:
        if event.get("error_code"):
            continue
        name = str(event.get("event_name") or "")
        row = {"event_time": event.get("event_time"), "event_name": name, "region": event.get("aws_region"),
               "access_key_id": event.get("access_key_id"), "parameters": _request_summary(event)}
        kind = kind_of(event)  # one classification: the damage answer reads the same kinds
        if kind == DELETE and id(event) not in cleanup:
            deleted.append(row)
        elif kind in WRITE_KINDS and categorize(event) != CREDENTIALS:
            changed.append(row)
    secrets = [d for d in inv["data_access"] if d["event_name"] in SECRET_READS and not d.get("error_count")]
    return {"created": inv["resources_created"], "changed": changed, "deleted": deleted,
            "data": inv["data_access"], "secrets": secrets, "persistence": inv["persistence"],
            "recon_errors": inv["recon_errors"], "cost": recorded_cost(inv),
            "principals": inv["principals"]}


#: Request values longer than this (policy documents, user data, certificates) are shortened in the
#: impact tables; nothing shorter is touched, so ids and ARNs are never cut.
_LONG_VALUE = 160


def _elide(value: Any) -> Any:
    """`value` with each long string shortened and marked with its length; the rest untouched."""
    if isinstance(value, str) and len(value) > _LONG_VALUE:
        return f"{value[:60]}… ({len(value)} characters)"
    if isinstance(value, Mapping):
        return {k: _elide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_elide(v) for v in value]
    return value


def _request_summary(event: Mapping[str, Any]) -> str:
    """The request as one line of JSON. Only long values (documents, scripts) are shortened, never
    the line as a whole: cutting it at a width once cut an id or an ARN in half."""
    raw = event.get("request_parameters")
    if not raw:
        return ""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return str(_elide(str(raw)))
    return compact_json(_elide(value))


def _actions(incident: Incident) -> list[Action]:
    return [Action(entry, target_label(entry.target), compact_json(entry.before), compact_json(entry.after))
            for entry in incident.ledger]


def _plan(incident: Incident) -> tuple[list[dict[str, Any]], bool]:
    done = {(e.action, compact_json(e.target)): e for e in incident.applied() if e.kind == "apply"}
    rows = []
    for phase, step in incident.plans.steps():
        entry = done.get((step.action, compact_json(step.target)))
        rows.append({"phase": phase, "action": step.action, "target": target_label(step.target),
                     "summary": step.summary, "requires_approval": step.requires_approval,
                     "applied_at": entry.applied_at if entry else None})
    return rows, all(row["applied_at"] for row in rows)


# -- queries as runnable SQL -----------------------------------------------------------------------------


def _substitute(sql: str, params: Mapping[str, Any]) -> str:
    """The query with every `:name` replaced by its value as a SQL literal (`queries.sql_literal`)."""
    from keyresponse.queries import for_athena_qmark

    qmarked, literals = for_athena_qmark(sql, params)
    import sqlglot
    from sqlglot import TokenType

    holes = [t for t in sqlglot.tokenize(qmarked, read="athena") if t.token_type == TokenType.PLACEHOLDER]
    if len(holes) != len(literals):
        raise InputError(f"found {len(holes)} placeholders for {len(literals)} values")
    out, last = [], 0
    for hole, literal in zip(holes, literals, strict=True):
        out.append(qmarked[last:hole.start])
        out.append(literal)
        last = hole.end + 1
    out.append(qmarked[last:])
    return "".join(out)


def query_runs(incident: Incident) -> list[QueryRun]:
    """Every query the investigation ran, in order, as runnable SQL with its values in place."""
    from keyresponse.queries import get_query

    runs = []
    for number, ran in enumerate(incident.investigation.get("queries") or [], start=1):
        name, params = str(ran["query"]), dict(ran.get("params") or {})
        header = [f"-- keyresponse incident {incident.incident_id}: query {number:02d}, {name}"]
        try:
            query = get_query(name)
            bound = query.bind(params)
            summary = query.summary
            body = _substitute(query.body, bound)
        except KeyResponseError as exc:
            summary = f"(the query file {name}.sql could not be used: {exc})"
            body = f"-- {json.dumps(summary, ensure_ascii=True)}"
            bound = params
        header.append(f"-- {json.dumps(summary, ensure_ascii=True)[1:-1]}")
        header.append("-- Athena (Trino) SQL over the CloudTrail table `cloudtrail`: rename it to your table.")
        header.append("-- Parameters, substituted below as SQL literals:")
        header.extend(f"--   {key} = {json.dumps(value, ensure_ascii=True)}" for key, value in bound.items())
        runs.append(QueryRun(number, name, summary, bound, "\n".join(header) + "\n" + body.rstrip() + "\n"))
    return runs


# -- recommendations -----------------------------------------------------------------------------------

Rule = Callable[[Incident], Recommendation | None]


def _has_event(incident: Incident, names: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(names)
    return [e for e in incident.events if e.get("event_name") in wanted and not e.get("error_code")]


def _long_term_key(incident: Incident) -> Recommendation | None:
    inv = incident.investigation
    keys = [c["access_key_id"] for c in inv["credentials"] if str(c["access_key_id"]).startswith("AKIA")]
    if not keys:
        return None
    age = (inv.get("key") or {}).get("age_days")
    aged = f", {age} days old" if age is not None else ""
    return Recommendation(
        "long_term_keys", "Replace long-term access keys with short-lived credentials",
        f"The exposed credential {inv['access_key_id']} is a long-term IAM user key{aged}; "
        f"{len(keys)} long-term key(s) are in scope.",
        "Move the workload to an IAM role (IAM Roles Anywhere outside AWS, OIDC federation for CI, IAM "
        "Identity Center for people) and delete the user's access keys; until then rotate every 90 days.")


def _scp_create_access_key(incident: Incident) -> Recommendation | None:
    created = _has_event(incident, {"CreateAccessKey"})
    if not created:
        return None
    return Recommendation(
        "scp_create_access_key", "Deny iam:CreateAccessKey outside the provisioning pipeline",
        f"The attacker created {len(created)} access key(s) with CreateAccessKey, including for other users.",
        "Add a service control policy that denies iam:CreateAccessKey (and iam:CreateLoginProfile) unless "
        "aws:PrincipalArn is the pipeline's role.")


def _s3_data_events(incident: Incident) -> Recommendation | None:
    gaps = [g for g in incident.investigation["logging_gaps"] if "S3 data events" in g or "data events" in g]
    failing = [r for r in incident.readiness or [] if r.check == "s3_data_events" and r.status != "pass"]
    if not gaps and not failing:
        return None
    finding = gaps[0] if gaps else f"Readiness check s3_data_events: {failing[0].evidence}"
    return Recommendation(
        "s3_data_events", "Enable S3 data events on the trail", f"Logging gap: {finding}",
        "Add an S3 data-event selector (at least for buckets holding sensitive data) to the organization trail, "
        "so object reads by a stolen key are on record.")


def _lambda_data_events(incident: Incident) -> Recommendation | None:
    lambdas = [r for r in incident.investigation["resources_created"] if "lambda" in str(r.get("type")).lower()]
    failing = [r for r in incident.readiness or [] if r.check == "lambda_data_events" and r.status != "pass"]
    gaps = [g for g in incident.investigation["logging_gaps"] if "Lambda" in g]
    if not lambdas and not failing and not gaps:
        return None
    if lambdas:
        finding = (f"The attacker created {len(lambdas)} Lambda function(s) ({', '.join(str(r['id']) for r in lambdas)}); "
                   "their invocations are data events the trail may not record.")
    else:
        finding = gaps[0] if gaps else f"Readiness check lambda_data_events: {failing[0].evidence}"
    return Recommendation(
        "lambda_data_events", "Enable Lambda data events on the trail", finding,
        "Add an AWS::Lambda::Function data-event selector so every Invoke is logged.")


def _guardduty(incident: Incident) -> Recommendation | None:
    failing = [r for r in incident.readiness or [] if r.check.startswith("guardduty") and r.status != "pass"]
    by_guardduty = incident.alert is not None and incident.alert.source == "guardduty"
    if failing:
        finding = f"Readiness check {failing[0].check}: {failing[0].evidence}"
    elif not by_guardduty and incident.investigation["event_count"] and incident.readiness is None:
        source = incident.alert.source if incident.alert else "a manual report"
        finding = f"The attacker's calls were detected by {source}, not by GuardDuty."
    else:
        return None
    return Recommendation(
        "guardduty", "Enable GuardDuty in every region and account", finding,
        "Enable GuardDuty organization-wide with a delegated administrator, and route its findings to the "
        "keyresponse webhook.")


def _rotate_secrets(incident: Incident) -> Recommendation | None:
    reads = [d for d in incident.investigation["data_access"]
             if d["event_name"] in SECRET_READS and not d.get("error_count")]
    if not reads:
        return None
    names = ", ".join(sorted({str(d["resource"]) for d in reads}))
    return Recommendation(
        "rotate_secrets", "Rotate every secret the attacker read",
        f"The attacker read {len(reads)} secret(s) or parameter(s): {names}.",
        "Rotate each secret at its source (database password, API token), then update Secrets Manager / "
        "Parameter Store; treat the old values as public.")


def _trust_policies(incident: Incident) -> Recommendation | None:
    assumed = _has_event(incident, {"AssumeRole", "UpdateAssumeRolePolicy"})
    if not assumed:
        return None
    roles = sorted({str(c.get("principal_arn")) for c in incident.investigation["credentials"]
                    if c.get("created_by_event") == "AssumeRole"})
    return Recommendation(
        "trust_policies", "Review the trust policies of the roles the attacker reached",
        f"The attacker called AssumeRole or UpdateAssumeRolePolicy {len(assumed)} time(s)"
        + (f", reaching {', '.join(short_arn(r) or r for r in roles)}." if roles else "."),
        "Restrict who may assume each role (named principals, aws:PrincipalOrgID, ExternalId), and alert on "
        "UpdateAssumeRolePolicy.")


def _data_notification(incident: Incident) -> Recommendation | None:
    reads = [d for d in incident.investigation["data_access"]
             if d["event_name"] in OBJECT_READS and not d.get("error_count")]
    if not reads:
        return None
    objects = sum(int(d.get("count") or 0) for d in reads)
    return Recommendation(
        "data_notification", "Assess the data read for notification duties",
        f"The attacker read {objects} S3 object(s) in {len(reads)} location(s).",
        "Have the data owner and legal classify what was read; regulatory clocks (GDPR Art. 33: 72 hours) "
        "start at awareness.")


def _exposure_source(incident: Incident) -> Recommendation | None:
    exposure = incident.investigation.get("exposure")
    from_github = incident.alert is not None and incident.alert.source == "github"
    if not exposure and not from_github:
        return None
    where = "a source repository"
    if isinstance(exposure, Mapping):
        where = str(exposure.get("repository") or exposure.get("url") or exposure.get("source") or where)
    return Recommendation(
        "secret_scanning", "Stop keys from reaching source code",
        f"The key was exposed in {where}.",
        "Turn on secret-scanning push protection for the organization, add a pre-commit secret scanner, and "
        "purge the key from the repository history.")


def _readiness_failures(incident: Incident) -> list[Recommendation]:
    covered = {"s3_data_events", "lambda_data_events"}
    return [Recommendation(f"readiness_{r.check}", f"Fix readiness check {r.check}",
                           f"Readiness check {r.check} is {r.status}: {r.evidence}", r.fix or "See the check.")
            for r in incident.readiness or []
            if r.status in ("fail", "warn") and r.check not in covered and not r.check.startswith("guardduty")]


def _missing_logs(incident: Incident) -> Recommendation | None:
    days = [g for g in incident.investigation["logging_gaps"] if g.startswith("no CloudTrail files")]
    if not days:
        return None
    return Recommendation(
        "trail_delivery", "Find out why CloudTrail files are missing",
        f"{len(days)} day(s) of the window had no CloudTrail files ({days[0]}…).",
        "Check the trail is multi-region and logging, the bucket policy, and any lifecycle rule on the bucket; "
        "turn on log file integrity validation.")


#: The recommendation rules, in the order the report lists what they find.
RULES: tuple[Rule, ...] = (_long_term_key, _scp_create_access_key, _rotate_secrets, _data_notification,
                           _trust_policies, _s3_data_events, _lambda_data_events, _guardduty, _missing_logs,
                           _exposure_source)


def recommendations(incident: Incident) -> list[Recommendation]:
    """What the findings call for; empty for a key that was not ours (its owner decides)."""
    if incident.status == "not_ours":
        return []
    found = [rec for rule in RULES if (rec := rule(incident)) is not None]
    return found + _readiness_failures(incident)


# -- the context, the environments, the renderers ------------------------------------------------------


def build_context(incident: Incident) -> ReportContext:
    """Everything the report shows, computed once from the record."""
    categories, activity_svg = _activity(incident)
    credentials = _credential_rows(incident)
    ips, agents, regions = _sources(incident)
    plan, all_applied = _plan(incident)
    timeline = incident.timeline.model_dump()
    return ReportContext(
        incident=incident, inv=incident.investigation, outcome=_outcome(incident),
        business_summary=_business_summary(incident), figures=figures(incident),
        milestones=[Milestone(key, label, timeline[key]) for key, label in MILESTONES],
        durations=durations(incident), categories=categories, activity_svg=activity_svg,
        credentials=credentials, credential_svg=_credential_svg(credentials), source_ips=ips,
        uncertain_credentials=list(incident.investigation.get("uncertain_credentials") or []),
        user_agents=agents, regions=regions, impact=_impact(incident), actions=_actions(incident), plan=plan,
        plan_all_applied=all_applied, queries=query_runs(incident), recommendations=recommendations(incident),
        intel=[(name, incident.investigation[name]) for name in INTEL_FIELDS
               if incident.investigation.get(name) not in (None, [], {})],
    )


def _common_filters(env: Environment) -> None:
    env.filters.update(when=when, duration=human_duration, short_arn=short_arn, compact_json=compact_json)
    env.tests["mapping"] = lambda value: isinstance(value, Mapping)
    env.tests["scalar_list"] = lambda value: isinstance(value, list) and all(
        not isinstance(v, Mapping | list) for v in value)


@lru_cache(maxsize=2)
def environment(kind: str) -> Environment:
    """The Jinja environment for `md` or `html` templates (StrictUndefined; escaping as the docstring says)."""
    loader = FileSystemLoader(REPORTS_DIR)
    if kind == "html":
        env = Environment(loader=loader, undefined=StrictUndefined, finalize=_finalize_html,
                          autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
                          trim_blocks=True, lstrip_blocks=True)
    elif kind == "md":
        env = Environment(loader=loader, undefined=StrictUndefined, finalize=_finalize_markdown,
                          autoescape=False, trim_blocks=True, lstrip_blocks=True,  # noqa: S701 - finalize escapes
                          keep_trailing_newline=True)
        env.filters.update(code_block=markdown.code_block, md=markdown.text, code=markdown.code, nest=_nest)
    else:
        raise InputError(f"no report format {kind!r}; expected md or html")
    _common_filters(env)
    return env


def _svg_data_uri(svg: Markup) -> Markup:
    encoded = base64.b64encode(str(svg).encode()).decode()
    return Markup(f"data:image/svg+xml;base64,{encoded}")  # noqa: S704 - base64 has no markup


def render_markdown(incident: Incident, *, context: ReportContext | None = None) -> str:
    """The report as Markdown (GitHub-flavoured; attacker text escaped; the chart as a data-URI image)."""
    ctx = context or build_context(incident)
    template = environment("md").get_template("incident_report.md.j2")
    text = template.render(ctx.as_template_vars() | {"activity_img": _svg_data_uri(ctx.activity_svg)})
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_html(incident: Incident, *, context: ReportContext | None = None) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, no scripts, no external assets)."""
    ctx = context or build_context(incident)
    template = environment("html").get_template("incident_report.html.j2")
    return template.render(ctx.as_template_vars())


def report_json(incident: Incident, *, context: ReportContext | None = None) -> dict[str, Any]:
    """The record, plus under `report` the figures, durations, categories and recommendations shown."""
    ctx = context or build_context(incident)
    return incident.record() | {"report": {
        "outcome": ctx.outcome,
        "business_summary": ctx.business_summary,
        "figures": {f.key: {"label": f.label, "value": f.value, "source": f.source} for f in ctx.figures},
        "durations": {d.key: {"label": d.label, "from": d.start, "to": d.end, "seconds": d.seconds}
                      for d in ctx.durations},
        "categories": {c["key"]: c["count"] for c in ctx.categories},
        "recommendations": [{"key": r.key, "title": r.title, "finding": r.finding, "action": r.action}
                            for r in ctx.recommendations],
        "queries": [q.filename for q in ctx.queries],
        "credentials": credential_containment(incident),
    }}


def render_json(incident: Incident, *, context: ReportContext | None = None) -> str:
    return json.dumps(report_json(incident, context=context), indent=2, ensure_ascii=False) + "\n"


def write_report(incident: Incident, out_dir: Path) -> list[Path]:
    """Write report.md, report.html, incident.json and queries/NN_<name>.sql into `out_dir`; return the paths."""
    ctx = build_context(incident)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("report.md", render_markdown(incident, context=ctx)),
                       ("report.html", render_html(incident, context=ctx)),
                       ("incident.json", render_json(incident, context=ctx))):
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    for run in ctx.queries:
        path = out_dir / run.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run.sql, encoding="utf-8")
        written.append(path)
    return written


def publish_artifacts(incident: Incident) -> str:
    """Publish the Markdown report as the Prefect artifact `incident-<id>`; return the artifact id.

    Inside a flow run the artifact is attached to that run; outside one it is stored on its own.
    """
    from prefect.artifacts import create_markdown_artifact

    artifact_id = create_markdown_artifact(
        key=artifact_key(incident.incident_id), markdown=render_markdown(incident),
        description=f"Incident report {markdown.code(incident.incident_id)} ({markdown.text(incident.status)})")
    return str(artifact_id)


def evidence_artifact_key(incident_id: str) -> str:
    """The Prefect artifact key of an incident's evidence head: `evidence-<incident>`."""
    return "evidence-" + artifact_key(incident_id).removeprefix("incident-")


#: How the head is written in the evidence artifact, and read back (`published_evidence_head`).
_HEAD_LINE = "Manifest chain head: `{head}`"
_HEAD_RE = re.compile(r"Manifest chain head: `([0-9a-f]{64})`")


def evidence_head_markdown(incident_id: str, head: str, entries: int, location: str) -> str:
    """The evidence artifact: the manifest's chain head, where the evidence is, and how to check it."""
    return "\n".join([
        f"# Evidence of incident {markdown.text(incident_id)}", "",
        _HEAD_LINE.format(head=head), "",
        f"{entries} manifest entries at {markdown.code(location)}. Each entry hashes the one before it, so this head",
        "commits to every entry up to it: an evidence file edited and re-hashed into the manifest, or an older",
        "manifest put back, no longer has this head in its chain.", "",
        f"Check: `keyresponse verify-evidence {incident_id} --head {head}` (or `--prefect` to read this artifact).",
    ]) + "\n"


def publish_evidence_head(incident_id: str, head: str, entries: int, location: str) -> str:
    """Publish the evidence manifest's chain head as the Markdown artifact `evidence-<id>`; return its id.

    It is the copy of the head kept outside the evidence store and the ledger folder: a new version
    of the artifact each time the post-incident flow runs (earlier heads stay in the server's history)."""
    from prefect.artifacts import create_markdown_artifact

    artifact_id = create_markdown_artifact(
        key=evidence_artifact_key(incident_id), markdown=evidence_head_markdown(incident_id, head, entries, location),
        description=f"Evidence manifest chain head of incident {incident_id}")
    return str(artifact_id)


def published_evidence_head(incident_id: str) -> str | None:
    """The head in the latest `evidence-<id>` artifact on the Prefect server (PREFECT_API_URL); None when
    there is no such artifact. Raises `KeyResponseError` when the server cannot be read."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    key = evidence_artifact_key(incident_id)
    try:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                          sort=ArtifactSort.CREATED_DESC, limit=1)
    except Exception as exc:  # httpx, Prefect: say what could not be read
        raise KeyResponseError(f"could not read the Prefect artifact {key}: {type(exc).__name__}: {exc}") from exc
    if not found:
        return None
    match = _HEAD_RE.search(str(found[0].data or ""))
    if match is None:
        raise KeyResponseError(f"the Prefect artifact {key} names no manifest chain head")
    return match.group(1)


def unverified_banner(text: str, format_: str, reason: str) -> str:
    """A rendered report marked as read from evidence that did not verify (`keyresponse report --unverified`)."""
    message = f"UNVERIFIED: this report was rendered from a record that did not pass verification: {reason}"
    if format_ == "md":
        return f"> **{markdown.text(message)}**\n\n{text}"
    if format_ == "html":
        from markupsafe import escape

        banner = (f'<div role="alert" style="background:#b00020;color:#fff;padding:12px 16px;font-weight:bold">'
                  f"{escape(message)}</div>\n")
        return text.replace("<body>\n", "<body>\n" + banner, 1)
    payload = json.loads(text)
    return json.dumps({"unverified": message, **payload}, indent=2, ensure_ascii=False) + "\n"


def load_incident(path: Path) -> Incident:
    """Read an incident record (or a report's incident.json, whose `report` part is ignored)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("report", None)
    return Incident.model_validate(data)
