"""The response DAG: one run per incident, the NIST 800-61 phases in order.

    alert ─► validate ─► [early containment of the key, high-confidence alerts only]
          ─► scope ─► impact ─► containment ─► eradication ─► recovery ─► post-incident

For a high-confidence alert the receiver has usually deactivated the key already, before this run
started (`tasks.first_response`): the run waits for that outcome, records its ledger entry and
time as the containment time, then does the rest of early containment (session revocation, tag).

Each mutating phase plans, waits for a named approver in the Prefect UI (unless the responder's
`KEYRESPONSE_REQUIRE_APPROVAL` is false: a setting, never a parameter of the run, so that whoever can
start a deployment run cannot turn approvals off), applies and verifies.

Containment is then checked, three times (`keyresponse.containment_check`, `_check_containment`):
right after it is applied and verified; `KEYRESPONSE_RECHECK_DELAY_SECONDS` (CloudTrail's delivery
delay) after the last containment change, before eradication is asked; and before post-incident.
Any successful call by a contained credential after its containment, a contained key Active again,
or a credential minted in the gap reopens the incident: a new containment approval round asks for
what was found, and the record and the report say so. The delayed check comes before eradication,
not after recovery, so that eradication and recovery act on what the late-delivered logs show and
never hand the owner's access back while the attacker still has a way in.

The wait is a deadline on disk, not a timer: it is computed from the ledger's time of the last
containment change, so a run executed again (resumed, retried after a crash) waits only what remains,
and each check's result is journaled before its round is asked, so a replay never redoes it. The
waiting run holds its process (and a runner slot) for up to the delay; the suspended approvals do not.
A denial or a timeout stops the response there (nothing more changes) and the report says so,
listing every change still in effect as "left in place" with how to undo it (`_left_in_place`).
"Not ours" (the key belongs to an account outside scope) stops right after validation. Two runs
about one key never race: the run holds a lock named after the key (see `_key_lock`).

Size: the DAG, its journal replay and the early-containment hand-over are one run's control flow.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from flows.analysis import analysis
from flows.phase import APPROVAL_ROUNDS, run_phase
from flows.post_incident import post_incident
from keyresponse.alerts import Alert
from keyresponse.incident import CheckStage
from keyresponse.journal import Journal
from keyresponse.keys import validate_access_key_id
from keyresponse.model import InvestigationRecord
from keyresponse.settings import get_settings
from tasks.analysis import validate_key_task
from tasks.response import check_containment, first_response

EARLY_CONTAINMENT = ["deactivate_access_key", "attach_session_revocation_policy", "tag_principal"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _second(stamp: str) -> str:
    """A ledger time (microseconds) as the record's timeline writes times: to the second."""
    return stamp[:19] + "Z"


@contextmanager
def _key_lock(access_key_id: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the key's lock for the whole run: a second run about the same key waits for this one.

    An exclusive `flock` on `<home>/locks/<key>.lock`. The kernel releases it when the process
    ends, however it ends, so a crashed run never leaves the key locked. (Prefect's global
    concurrency limits did the same job until a burst showed a waiter sleeping for minutes on a
    free slot, PrefectHQ/prefect#23183; a lock on the shared home has no server round trip.)
    """
    path = get_settings().home / "locks" / f"{validate_access_key_id(access_key_id)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _received_at(alert: Alert, incident_id: str) -> str:
    """When keyresponse received the alert: the receiver's spool time (the alert is spooled, fsync'd,
    before anything else happens, the first response included), to the second like the timeline.
    A run the receiver did not start (the CLI, a test, a spool on another host) has none: now."""
    from keyresponse.receiver.config import WebhookSettings
    from keyresponse.receiver.spool import AlertSpool

    try:
        spooled = AlertSpool(WebhookSettings().spool).find(alert)
    except (OSError, ValueError) as exc:  # an unreadable spool record must not stop the response
        get_run_logger().warning("could not read the alert's spool record: %s", exc)
        spooled = None
    if spooled is None or spooled.incident_id != incident_id:
        return _now()
    return spooled.received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert_summary(alert: Alert) -> dict[str, Any]:
    data = alert.model_dump(mode="json", exclude={"raw", "high_confidence"})
    data["observed_at"] = alert.observed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return data


def _status(phases: dict[str, dict[str, Any]], dry_run: bool, checks: list[dict[str, Any]] | None = None) -> str:
    if dry_run:
        return "dry_run"
    for phase in ("containment", "eradication", "recovery"):
        outcome = phases.get(phase)
        if outcome and outcome["status"] in ("denied", "timed_out"):
            return str(outcome["status"])
    for check in checks or []:  # containment reopened, and its new round was refused
        if check.get("round") in ("denied", "timed_out"):
            return str(check["round"])
    if phases.get("recovery", {}).get("status") in ("applied", "nothing_to_do"):
        return "recovered"
    if phases.get("eradication", {}).get("status") in ("applied", "nothing_to_do"):
        return "eradicated"
    return "contained"


@flow(name="respond-to-exposed-key", flow_run_name="respond:{incident_id}", log_prints=True)
def respond_to_exposed_key(alert: Alert, incident_id: str | None = None, dry_run: bool = False,
                           logs: str | None = None) -> dict[str, Any]:
    """Respond to one exposed key, from the alert to the report. Returns the incident record.

    The run may be executed more than once: a deployment run is suspended at each approval and run
    again from the top once answered, and a run whose process died is retried. Each stage keeps its
    result in the run's journal (`keyresponse.journal`, the record so far after each stage), so an
    execution resumes after the last finished stage; the approvals it had are answered again from
    Prefect, bound to what they approved. The ledger is the incident's, across executions.

    Whether a human approves each phase is the responder's setting (`KEYRESPONSE_REQUIRE_APPROVAL`),
    not a parameter: anyone who reaches the Prefect API can start a run with the parameters they like."""
    log = get_run_logger()
    settings = get_settings()
    approval = settings.require_approval
    incident_id = incident_id or alert.incident_id
    run_id = flow_run.get_id()
    journal = Journal(incident_id, str(run_id)) if run_id else None
    saved = journal.get("record") if journal is not None else None
    if saved is not None:
        log.info("incident %s: executed again (attempt %s); finished stages: %s", incident_id, flow_run.run_count,
                 ", ".join(saved["stages"]))
    state: dict[str, Any] = saved or {"stages": [], "record": None, "phases": {}, "facts": None, "key": None}

    def done(stage: str) -> bool:
        return stage in state["stages"]

    def finish(stage: str) -> None:
        state["stages"].append(stage)
        if journal is not None:
            journal.put("record", state)

    if state["record"] is None:
        key = alert.access_key_id
        if key is None:
            from keyresponse.validation import key_of_user

            key = key_of_user(alert.principal)
            log.info("alert names no key; %s is the user's most recently used active key", key)
        state["key"] = key
        state["record"] = {
            "incident_id": incident_id, "status": "failed", "dry_run": dry_run, "alert": _alert_summary(alert),
            "investigation": None, "plans": {}, "ledger": [], "approvals": [], "events": [], "readiness": [],
            "timeline": {"first_malicious_at": None, "detected_at": _alert_summary(alert)["observed_at"],
                         "alert_received_at": _received_at(alert, incident_id), "analysis_completed_at": None,
                         "contained_at": None, "eradicated_at": None, "recovered_at": None, "closed_at": None},
            "flow_run_id": str(run_id) if run_id else None,
            "ui_url": settings.ui_url, "containment_checks": [],
        }
    record: dict[str, Any] = state["record"]
    key = str(state["key"])
    phases: dict[str, dict[str, Any]] = state["phases"]
    with _key_lock(key, lambda: log.info("another run is responding to %s: waiting for it to finish", key)):
        if not done("validated"):
            state["facts"] = validate_key_task(key)
            finish("validated")
        facts: dict[str, Any] = state["facts"]
        if facts.get("is_ours") is False:
            record["status"] = "not_ours"
            record["investigation"] = {"access_key_id": key, "account_id": facts.get("account_id"), "key": facts}
            return _close(incident_id, record)
        if not done("early_containment"):
            _early_containment(alert, incident_id, key, facts, record, dry_run=dry_run, journal=journal)
            finish("early_containment")
        if not done("analysis"):
            investigation = analysis(key, logs=logs, attacker_ips=_alert_ips(alert), facts=facts,
                                     alert_source=alert.source, alert_payload=alert.raw)
            record["events"] = investigation.pop("events", [])
            record["investigation"] = investigation
            record["timeline"]["analysis_completed_at"] = _now()
            record["timeline"]["first_malicious_at"] = investigation.get("first_seen")
            finish("analysis")
        if record["investigation"]["verdict"] == "benign":
            log.info("verdict benign (the owner's own use): no containment; report only")
            record["status"] = "closed"
            return _close(incident_id, record)
        for phase in ("containment", "eradication", "recovery"):
            if phase == "eradication" and not done("check-after-delivery-delay"):
                _check_containment("after_delivery_delay", incident_id, record, logs=logs, journal=journal,
                                   approval=approval)
                finish("check-after-delivery-delay")
            if not done(phase):
                scope = InvestigationRecord.model_validate(record["investigation"])
                outcome = run_phase(phase, incident_id, scope, dry_run=dry_run, approval=approval,
                                    journal=journal)
                if outcome.get("investigation"):  # the approver added uncertain credentials: they stay in scope
                    record["investigation"] = _written_back(record["investigation"], outcome.pop("investigation"))
                phases[phase] = outcome
                _record_phase(record, phase, outcome)
                if outcome["status"] == "applied" or outcome["status"] == "nothing_to_do":
                    stamp = {"containment": "contained_at", "eradication": "eradicated_at",
                             "recovery": "recovered_at"}[phase]
                    record["timeline"][stamp] = record["timeline"][stamp] or _now()
                finish(phase)
            if (phase == "containment" and phases[phase]["status"] in ("applied", "nothing_to_do")
                    and not done("check-after-containment")):
                _check_containment("after_containment", incident_id, record, logs=logs, journal=journal,
                                   approval=approval)
                finish("check-after-containment")
            if phases[phase]["status"] in ("denied", "timed_out", "dry_run"):
                break
        if not dry_run and not done("check-before-post-incident"):
            _check_containment("before_post_incident", incident_id, record, logs=logs, journal=journal,
                               approval=approval)
            finish("check-before-post-incident")
        record["status"] = _status(phases, dry_run, record["containment_checks"])
    return _close(incident_id, record)


def _early_containment(alert: Alert, incident_id: str, key: str, facts: dict[str, Any], record: dict[str, Any], *,
                       dry_run: bool, journal: Journal | None) -> None:
    """A high-confidence alert: the receiver's first response (waited for), then the rest of early
    containment (session revocation, tag), without approval."""
    log = get_run_logger()
    if not (alert.high_confidence and get_settings().auto_contain and not dry_run):
        return
    first = first_response(incident_id)
    if first is not None and first.get("accepted_at"):  # the receiver had the alert by then
        timeline = record["timeline"]
        timeline["alert_received_at"] = min(timeline["alert_received_at"], _second(first["accepted_at"]))
    if first is not None and first.get("status") in ("applied", "nothing_to_do") and first.get("plan"):
        _record_phase(record, "early_containment", {"plan": first["plan"], "ledger": first["ledger"]})
        record["timeline"]["contained_at"] = _second(first.get("contained_at") or first["finished_at"])
    if facts.get("owner_arn"):
        from tasks.plan import key_only_investigation

        early = key_only_investigation(key, facts.get("account_id"), facts["owner_arn"], at=_now(), engine="aws",
                                       logging_gaps=["early containment: planned from the key's owner, before the "
                                                     "analysis read the logs"])
        outcome = run_phase("containment", incident_id, early, dry_run=False, approval=False,
                            only=EARLY_CONTAINMENT, journal=journal)
        _record_phase(record, "early_containment", outcome)
        record["timeline"]["contained_at"] = record["timeline"]["contained_at"] or _now()
        log.info("high-confidence alert: %s contained before scoping", key)


def _containment_entries(incident_id: str) -> list[Any]:
    """The incident's applied containment changes (its whole ledger, the receiver's included)."""
    from keyresponse.ledger import Ledger
    from tasks.containment import ACTIONS

    names = {action.name for action in ACTIONS}
    return [e for e in Ledger(incident_id).entries() if e.kind == "apply" and not e.dry_run and e.action in names]


def _wait_for_delivery(incident_id: str, entries: list[Any]) -> None:
    """Sleep until CloudTrail's delivery delay has passed since the last containment change. The
    deadline comes from the ledger on disk: a run executed again waits only what remains."""
    from datetime import timedelta

    from keyresponse.incident import parse_time

    delay = timedelta(seconds=get_settings().recheck_delay_seconds)
    due = max(parse_time(e.applied_at) for e in entries) + delay
    remaining = (due - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        get_run_logger().info("%s: waiting %.0f s, until %s, for CloudTrail to deliver what happened since "
                              "containment, then checking that it holds", incident_id, remaining,
                              due.strftime("%Y-%m-%dT%H:%M:%SZ"))
        time.sleep(remaining)


def _check_containment(stage: CheckStage, incident_id: str, record: dict[str, Any], *, logs: str | None,
                       journal: Journal | None, approval: bool) -> None:
    """One post-containment check (`keyresponse.containment_check`), kept in the record; when it
    finds containment did not hold, the incident is reopened: a new containment round, numbered
    after the rounds asked so far, asks for what was found (approved like any round, or applied
    without asking when approvals are off). Nothing contained yet (nothing in the ledger): nothing
    to check. The check's result is journaled before its round: a replay asks the same question."""
    from keyresponse.notifications import IncidentMessage, send

    log = get_run_logger()
    entries = _containment_entries(incident_id)
    if not entries:
        return
    name = "containment-check-" + stage.replace("_", "-")
    check = journal.get(name) if journal is not None else None
    if check is None:
        if stage != "after_containment":
            _wait_for_delivery(incident_id, entries)
        check = check_containment(incident_id, record, stage, logs, rescope=stage != "after_containment")
        if journal is not None:
            check = journal.put(name, check)
    minted = check.pop("minted")
    if check["breaches"]:
        reopening = 1 + sum(1 for earlier in record["containment_checks"] if earlier["breaches"])
        investigation = record["investigation"]
        known = {c["access_key_id"] for c in investigation["credentials"]}
        added = [c for c in minted if c["access_key_id"] not in known]
        if added:
            record["investigation"] = {**investigation, "credentials": [*investigation["credentials"], *added]}
        why = (f"Containment did not hold ({stage.replace('_', ' ')}): "
               + "; ".join(f"{b['subject']}: {b['detail']}" for b in check["breaches"])
               + ". The incident is reopened: approve containing again what was found, or deny to change nothing more.")
        send(IncidentMessage(incident_id, "escalation", f"[{incident_id}] containment did not hold: reopened",
                             f"{len(check['breaches'])} finding(s) after containment ({stage.replace('_', ' ')}); "
                             "a new containment round follows. The report lists them.", None))
        outcome = run_phase("containment", incident_id, InvestigationRecord.model_validate(record["investigation"]),
                            dry_run=False, approval=approval, journal=journal,
                            first_round=1 + reopening * APPROVAL_ROUNDS, why=why)
        if outcome.get("investigation"):
            record["investigation"] = _written_back(record["investigation"], outcome.pop("investigation"))
        _record_phase(record, "containment", outcome)
        check["round"] = outcome["status"]
        if outcome["status"] == "nothing_to_do":
            log.warning("%s: containment did not hold, and its plan has nothing left to change: a human must look "
                        "(the report lists what was found)", incident_id)
    record["containment_checks"].append(check)


def _written_back(stored: dict[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """The incident's `investigation` with what a phase changed (`changed`: the record it ran with, as
    `model_dump(mode="json", exclude_unset=True)`): only the fields whose value differs are replaced, so
    what the phase did not touch stays as stored, byte for byte (a cost stored as `0` is not re-dumped
    as `0.0`)."""
    return {**stored, **{name: value for name, value in changed.items() if stored.get(name) != value
                         or name not in stored}}


def _record_phase(record: dict[str, Any], phase: str, outcome: dict[str, Any]) -> None:
    name = "containment" if phase == "early_containment" else phase
    record["plans"].setdefault(name, []).extend(
        {"action": c["action"], "target": c["target"], "summary": c["summary"],
         "requires_approval": c["requires_approval"]} for c in outcome["plan"]["changes"])
    record["ledger"].extend(outcome["ledger"])
    answers = outcome.get("approvals") or ([outcome["approval"]] if outcome.get("approval") else [])
    for answer in answers:
        if answer["decision"] in ("approve", "deny"):  # a timeout is no one's decision
            record["approvals"].append(answer)


def _alert_ips(alert: Alert) -> list[str]:
    """A GuardDuty finding names the caller's IP: a hint for scoping, never the only evidence."""
    try:
        action = alert.raw.get("detail", alert.raw)["service"]["action"]["awsApiCallAction"]
        ip = action["remoteIpDetails"]["ipAddressV4"]
    except (KeyError, TypeError, AttributeError):
        return []
    return [ip] if isinstance(ip, str) else []


def _close(incident_id: str, record: dict[str, Any]) -> dict[str, Any]:
    record["timeline"]["closed_at"] = _now()
    record["ledger"] = _whole_ledger(incident_id, record["ledger"])
    record["left_in_place"] = _left_in_place(incident_id, record)
    record["readiness"] = post_incident(incident_id, record)["readiness"]
    _release_keys(incident_id)
    return record


def _whole_ledger(incident_id: str, collected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every change of the incident, from its ledger: the receiver's first response and every
    execution of this run included (a run executed again returns only what it applied itself).
    What this execution collected when the ledger cannot be read."""
    from keyresponse.errors import KeyResponseError
    from keyresponse.ledger import Ledger

    try:
        entries = [e.model_dump(mode="json") for e in Ledger(incident_id).entries() if not e.dry_run]
    except KeyResponseError as exc:
        get_run_logger().warning("could not read the ledger of %s: %s", incident_id, exc)
        return collected
    return entries or collected


#: The deployment that undoes an incident (keyresponse serve and prefect.yaml both name it so).
UNDO_DEPLOYMENT = "undo-incident/undo-incident"


def _left_in_place(incident_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """Every change still in effect, from the record's ledger (the incident's whole ledger, read by
    `_whole_ledger`: the receiver's first response and any earlier undo included), with how to undo
    it; None when nothing is."""
    from keyresponse.ledger import LedgerEntry
    from tasks.actions import Target, left_in_place
    from tasks.registry import registry

    entries = [LedgerEntry.model_validate(e) for e in record["ledger"]]
    actions = registry()
    changes = []
    for entry, reason in left_in_place(entries, actions):
        target = Target.model_validate(entry.target)
        action = actions.get(entry.action)
        changes.append({
            "entry_id": entry.entry_id, "action": entry.action, "target": entry.target, "label": target.label,
            "description": action.describe(target, entry.before) if action else entry.action,
            "state": entry.after, "applied_at": entry.applied_at, "undo_supported": reason is None,
            "reason": reason})
    if not changes:
        return None
    return {"changes": changes, "undo": {
        "dry_run": f"keyresponse undo {incident_id}", "apply": f"keyresponse undo {incident_id} --apply",
        "deployment": UNDO_DEPLOYMENT, "parameters": {"incident_id": incident_id, "dry_run": False}}}


def _release_keys(incident_id: str) -> None:
    """The incident is over: a new alert about its keys opens a new incident (a key exposed again,
    or restored and abused again, must not be swallowed by a finished one). Redeliveries of an alert
    already received still map to this incident through the spool."""
    from keyresponse.receiver.config import WebhookSettings
    from keyresponse.receiver.spool import AlertSpool

    try:
        released = AlertSpool(WebhookSettings().spool).close_incident(incident_id)
    except Exception as exc:  # the receiver's own expiry (72 h) still frees the keys
        get_run_logger().warning("could not release the keys of %s in the alert spool: %s", incident_id, exc)
        return
    if released:
        get_run_logger().info("incident %s closed: %d key(s) free for new incidents", incident_id, released)
