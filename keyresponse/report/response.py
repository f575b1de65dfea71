"""What the response did, as the report shows it: the ledger's entries, the plan's steps and whether
each was applied, and how each credential in scope was contained (`credential_containment`, which
the post-containment checks read too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from keyresponse.guardrails import REFUSAL_PREFIX, Principal, parse_principal
from keyresponse.incident import Incident, Phase
from keyresponse.ledger import LedgerEntry, in_effect
from keyresponse.model import InvestigationRecord
from keyresponse.report.formatting import compact_json, target_label
from keyresponse.report.reading import read_investigation


@dataclass(frozen=True)
class Action:
    """One ledger entry as the report shows it."""

    entry: LedgerEntry
    target: str
    before: str
    after: str


@dataclass(frozen=True)
class PlanRow:
    """One planned step, and when it was applied (None: not applied)."""

    phase: Phase
    action: str
    target: str
    summary: str
    requires_approval: bool
    applied_at: str | None


class ContainingChange(TypedDict):
    """A ledger change that contains a credential."""

    action: str
    target: str
    applied_at: str
    entry_id: str


class Containment(TypedDict):
    """How one credential in scope was contained (the report's JSON `credentials`)."""

    access_key_id: str
    kind: str
    principal_arn: str | None
    contained: bool
    how: str
    changes: list[ContainingChange]


def _in_effect(incident: Incident) -> list[LedgerEntry]:
    """Applied changes no undo has reversed, oldest first."""
    return in_effect(incident.ledger)


def credential_containment(incident: Incident, record: InvestigationRecord | None = None) -> list[Containment]:
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
    inv = read_investigation(incident) if record is None else record
    home = inv.account_id
    top = inv.principal_arn or ""
    owner = parse_principal(top) if top else None
    foreign = {key: item for item in inv.attacker_infrastructure for key in item.access_key_ids}
    changes = _in_effect(incident)
    refusals = [(step.action, step.target, step.refusal) for _, step in incident.plans.steps() if step.refusal]

    def on(entry: LedgerEntry, kind: str, name: str, account: str | None) -> bool:
        """Whether a change's target is that principal: same kind and name, and same account (the
        incident's when a side names none): a role of the same name elsewhere is another role."""
        there = (entry.target.get("data") or {}).get("account_id") or entry.account_id or home
        here = account or home
        return (entry.target.get("kind"), entry.target.get("id")) == (kind, name) and (
            here is None or there is None or here == there)

    rows: list[Containment] = []
    for cred in inv.credentials:
        key, kind = cred.access_key_id, cred.kind
        arn = cred.principal_arn or (top if kind == "original" else "")
        principal = parse_principal(arn) if arn else None
        found: list[tuple[LedgerEntry, str]] = []
        revoked: Principal | None = None
        if key in foreign:
            elsewhere = foreign[key]
            how = (f"not contained here: {elsewhere.kind} {elsewhere.name} is in account {elsewhere.account_id}, "
                   "outside ours (attacker infrastructure: report the account to AWS)")
            rows.append({"access_key_id": key, "kind": kind, "principal_arn": cred.principal_arn,
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
            if cred.created_by_event == "AssumeRole" or (principal is not None and principal.kind == "role"):
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
                rows.append({"access_key_id": key, "kind": kind, "principal_arn": cred.principal_arn,
                             "contained": False, "how": f"not contained: {REFUSAL_PREFIX}{why}", "changes": []})
                continue
        rows.append({"access_key_id": key, "kind": kind, "principal_arn": cred.principal_arn,
                     "contained": bool(found), "how": "; ".join(how for _, how in found) or "not contained",
                     "changes": [{"action": e.action, "target": target_label(e.target), "applied_at": e.applied_at,
                                  "entry_id": e.entry_id} for e, _ in found]})
    return rows


def actions(incident: Incident) -> list[Action]:
    """Every ledger entry, as the report shows it."""
    return [Action(entry, target_label(entry.target), compact_json(entry.before), compact_json(entry.after))
            for entry in incident.ledger]


def plan(incident: Incident) -> tuple[list[PlanRow], bool]:
    """Every planned step with when it was applied, and whether all were."""
    done = {(e.action, compact_json(e.target)): e for e in incident.applied() if e.kind == "apply"}
    rows = []
    for phase, step in incident.plans.steps():
        entry = done.get((step.action, compact_json(step.target)))
        rows.append(PlanRow(phase, step.action, target_label(step.target), step.summary, step.requires_approval,
                            entry.applied_at if entry else None))
    return rows, all(row.applied_at for row in rows)


