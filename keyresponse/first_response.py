"""First response: the receiver deactivates the key of a high-confidence alert itself, at once.

A flow run starts in a fresh process (seconds of imports) and a burst of alerts starts many at once,
so the key would stay usable for as long as the slowest import. The playbook allows containing the
key right after validation for a high-confidence alert (AWS Health exposure, AWS's quarantine
policy attached, GuardDuty severity ≥ 7), so the receiver does exactly that, in a worker thread of
its already-warm process, while the flow run starts:

    validate the key (ours? whose?) → guardrails → evidence → deactivate → ledger → verify

It is the same `deactivate_access_key` action the flow uses, with the same guardrails (never the
responder's own key, never a protected principal, never an account out of scope) and the same
ledger, so `keyresponse undo` reverses it like any other change. Only that one key is touched;
everything else waits for the flow and its approvals. Runs only when `KEYRESPONSE_AUTO_CONTAIN` is
on (the default).

The outcome goes to `<home>/incidents/<id>/first_response.json`: `pending` from the moment the alert
is accepted, then `applied`, `nothing_to_do`, `skipped` (not ours, owner unknown) or `failed`. The
flow waits for it (bounded) before its own early containment, so the two never race and the
incident record shows the receiver's change, its ledger entry and its time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from keyresponse.alerts import Alert
from keyresponse.errors import KeyResponseError
from keyresponse.ledger import utc_now, validate_incident_id
from keyresponse.settings import Settings, get_settings

log = logging.getLogger("keyresponse.first_response")

FILE_NAME = "first_response.json"
#: How long a flow waits for a `pending` first response before going ahead (its own containment
#: is idempotent, so a receiver that died mid-way costs at most this long).
WAIT_SECONDS = 60.0


def wanted(alert: Alert, settings: Settings | None = None) -> bool:
    """Whether the receiver contains this alert's key itself."""
    settings = settings or get_settings()
    return bool(alert.high_confidence and settings.auto_contain and alert.access_key_id)


def path_of(incident_id: str, home: Path | None = None) -> Path:
    return (home or get_settings().home) / "incidents" / validate_incident_id(incident_id) / FILE_NAME


def _write(path: Path, data: dict[str, Any], *, exclusive: bool = False) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        return True
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return True


def claim(incident_id: str, access_key_id: str, home: Path | None = None) -> bool:
    """Mark the first response `pending`; False when this incident already has one (a redelivery)."""
    return _write(path_of(incident_id, home), {"status": "pending", "access_key_id": access_key_id,
                                               "started_at": utc_now()}, exclusive=True)


def read(incident_id: str, home: Path | None = None) -> dict[str, Any] | None:
    path = path_of(incident_id, home)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {"status": "failed", "reason": f"{path} is not JSON"}
    return data if isinstance(data, dict) else {"status": "failed", "reason": f"{path} is not an object"}


def wait(incident_id: str, timeout: float = WAIT_SECONDS, poll: float = 0.2) -> dict[str, Any] | None:
    """The first response's outcome once it is no longer pending; None if there is none.

    After `timeout` a still-pending outcome is returned as is (the receiver may have died)."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = read(incident_id)
        if outcome is None or outcome.get("status") != "pending" or time.monotonic() >= deadline:
            return outcome
        time.sleep(poll)


def contain(incident_id: str, access_key_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Validate the key and deactivate it; record and return the outcome. Never raises."""
    settings = settings or get_settings()
    started = utc_now()
    try:
        outcome = _contain(incident_id, access_key_id, settings)
    except Exception as exc:  # an unknown failure still leaves a readable outcome (and the flow goes on)
        log.exception("first response for %s failed", incident_id)
        outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    outcome = {"access_key_id": access_key_id, "started_at": started, "finished_at": utc_now(), **outcome}
    _write(path_of(incident_id, settings.home), outcome)
    log.info("first response %s for %s: %s", incident_id, access_key_id, outcome["status"])
    return outcome


def _contain(incident_id: str, key: str, settings: Settings) -> dict[str, Any]:
    from keyresponse.aws import session_for_account
    from keyresponse.errors import GuardrailRefusal
    from keyresponse.validation import validate_key
    from tasks.actions import ActionContext, Clients, Step, Target, apply_steps
    from tasks.containment.deactivate_access_key import ACTION

    facts = validate_key(key, accounts_in_scope=settings.accounts_in_scope)
    if facts.is_ours is False:
        return {"status": "skipped", "reason": f"the key belongs to account {facts.account_id}, not in scope"}
    if not facts.owner or not facts.account_id:
        return {"status": "skipped", "reason": "owner unknown: " + ("; ".join(facts.gaps) or "no IAM user")}
    target = Target(kind="access_key", id=key, user_name=facts.owner, data={"account_id": facts.account_id})
    try:
        ctx = ActionContext.create(incident_id, dry_run=False, clients=Clients(session_for_account(facts.account_id)),
                                   settings=settings)
        step = Step(ACTION, target)
        change = ACTION.plan(ctx, target)
        written = apply_steps(ctx, [step])
    except GuardrailRefusal as exc:
        return {"status": "refused", "reason": str(exc)}
    except KeyResponseError as exc:
        return {"status": "failed", "reason": str(exc)[:500]}
    entries = [entry.model_dump(mode="json") for entry in written]
    return {
        "status": "applied" if entries else "nothing_to_do",
        "contained_at": entries[-1]["applied_at"] if entries else None,
        "owner": facts.owner, "account_id": facts.account_id,
        "plan": {"phase": "containment", "notes": ["first response by the alert receiver"],
                 "changes": [{"action": ACTION.name, "target": target.model_dump(mode="json"), "label": target.label,
                              "summary": change.description if change else "already done",
                              "requires_approval": False, "done": change is None}]},
        "ledger": entries,
    }


class FirstResponder:
    """Runs `contain` in worker threads of the receiver, once per incident."""

    def __init__(self, settings: Settings | None = None, *, workers: int = 8) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.settings = settings or get_settings()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="first-response")

    def start(self, alert: Alert, incident_id: str) -> bool:
        """Start containing the alert's key if the alert calls for it; True when started."""
        if not wanted(alert, self.settings) or alert.access_key_id is None:
            return False
        if not claim(incident_id, alert.access_key_id, self.settings.home):
            return False
        self._pool.submit(contain, incident_id, alert.access_key_id, self.settings)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=True)
