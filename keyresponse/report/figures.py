"""The report's headline: the figures with their sources, the NIST timeline and its metrics, the
outcome, and the summary paragraph for a manager.

Numbers come from the record: counts from the investigation and the ledger, durations from the
timeline. `figures()` lists the headline numbers with where each comes from, and the tests check
them against the data.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyresponse.incident import Incident, parse_time
from keyresponse.intel.cost import recorded_cost
from keyresponse.ledger import LedgerEntry
from keyresponse.model import InvestigationRecord
from keyresponse.report.formatting import human_duration, short_arn, when
from keyresponse.report.reading import classification, read_investigation


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


def milestones(incident: Incident) -> list[Milestone]:
    """The timeline's milestones, in order (a milestone not reached is None)."""
    return [Milestone(key, label, getattr(incident.timeline, key)) for key, label in MILESTONES]


def applied_actions(incident: Incident) -> list[LedgerEntry]:
    """Ledger entries of kind `apply` that changed AWS."""
    return [e for e in incident.applied() if e.kind == "apply"]


def figures(incident: Incident, record: InvestigationRecord | None = None) -> list[Figure]:
    """The headline numbers, each computed from one place in the record."""
    inv = read_investigation(incident) if record is None else record
    derived = [c for c in inv.credentials if c.kind != "original"]
    data_calls = sum(d.count for d in inv.data_access)
    return [
        Figure("events", "attacker calls", str(inv.event_count), "investigation.event_count"),
        Figure("credentials", "credentials in scope", str(len(inv.credentials)), "len(investigation.credentials)"),
        Figure("derived_credentials", "derived by the attacker", str(len(derived)),
               "len(investigation.credentials where kind != original)"),
        Figure("source_ips", "attacker IPs",
               str(sum(1 for ip in inv.source_ips if classification(ip) == "attacker")),
               "len(investigation.source_ips where classification == attacker)"),
        Figure("resources_created", "resources created", str(len(inv.resources_created)),
               "len(investigation.resources_created)"),
        Figure("data_calls", "data-access calls", str(data_calls), "sum(investigation.data_access.count)"),
        Figure("actions", "changes applied", str(len(applied_actions(incident))),
               "len(ledger where kind == apply and not dry_run)"),
        Figure("approvals", "approval decisions", str(len(incident.approvals)), "len(approvals)"),
        Figure("cost", "estimated cost (USD)", f"{recorded_cost(incident.investigation):.2f}",
               "investigation.damage.cost_estimate.total_usd, else investigation.cost_estimate_usd"),
    ]


def outcome(incident: Incident, record: InvestigationRecord | None = None) -> dict[str, str]:
    """The status headline, and what it means for the reader (with `tone` for styling)."""
    inv = read_investigation(incident) if record is None else record
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
        owner = (inv.key.account_id if inv.key else None) or inv.account_id or "an unknown account"
        return {"tone": "warn", "title": "Not our key",
                "text": f"Access key {inv.access_key_id} belongs to account {owner}, which is outside the "
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


def business_summary(incident: Incident, record: InvestigationRecord | None = None) -> str:
    """One paragraph for a manager: what happened, what it touched, what was done."""
    inv = read_investigation(incident) if record is None else record
    owner = short_arn(inv.principal_arn) or "an unknown principal"
    account = inv.account_id or "an unknown account"
    if not inv.event_count:
        found = (f"The logs show no use of access key {inv.access_key_id} ({owner}, account {account}) "
                 f"from outside its owner's usual sources between {when(inv.window.start)} and "
                 f"{when(inv.window.end)}.")
    else:
        attacker_ips = [ip for ip in inv.source_ips if classification(ip) == "attacker"]
        derived = [c for c in inv.credentials if c.kind != "original"]
        parts = [f"Between {when(inv.first_seen)} and {when(inv.last_seen)} someone other than its owner "
                 f"used access key {inv.access_key_id} of {owner} (account {account}) from "
                 f"{len(attacker_ips)} IP address(es), making {inv.event_count} API calls."]
        if derived:
            parts.append(f"They minted {len(derived)} further credential(s) from it and used them too.")
        if inv.resources_created:
            parts.append(f"They created {len(inv.resources_created)} resource(s).")
        reads = sum(d.count for d in inv.data_access if not d.error_count)
        if reads:
            parts.append(f"They read or wrote data {reads} time(s) (see Impact).")
        found = " ".join(parts)
    verdict = f"The investigation's verdict is {inv.verdict}, severity {inv.severity}."
    return f"{found} {verdict} {outcome(incident, inv)['text']}"


