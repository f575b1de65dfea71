"""First response: the receiver deactivates the key of a high-confidence alert itself, at once.

A flow run starts in a fresh process (seconds of imports) and a burst of alerts starts many at once,
so the key would stay usable for as long as the slowest import. The playbook allows containing the
key right after validation for a high-confidence alert (AWS Health exposure, AWS's quarantine
policy attached by AWS itself, GuardDuty severity ≥ 7), so the receiver does exactly that, in a worker thread of
its already-warm process, while the flow run starts:

    validate the key (ours? whose?) → guardrails → deactivate (its read keeps the owner's keys)
    → ledger → verify, the rest of the owner's snapshot, the evidence and the ledger copy

It is the same `deactivate_access_key` action the flow uses, with the same guardrails (never the
responder's own key, never a protected principal, never an account out of scope) and the same
ledger, so `keyresponse undo` reverses it like any other change. Only that one key is touched;
everything else waits for the flow and its approvals. Runs only when `KEYRESPONSE_AUTO_CONTAIN` is
on (the default), and only for an alert that came with a credential that may trigger it (the receiver
keeps any other with `high_confidence` false: see the table in `keyresponse/webhook.py`).

**The snapshot holds the keys as they were before the write.** The deactivation's own read of the
key's status, made before its write, is one `ListAccessKeys` of the owner; the first response keeps
that whole listing (every key of the owner, with its status) for the owner's snapshot, so the
`before-<time>-user-<owner>.json` evidence shows the key Active, as it was, at no added call on the
critical path. The rest of the owner (policies, groups, console, MFA, tags: nothing a deactivation
changes) is read after the write, off the critical path, with verification; the snapshot says when
each part was read (`snapshot`).

The trade-off, measured with `bench/latency.py` (webhook → key Inactive; 1 alert, then 50 at once;
a shared 2-core host, runs alternated with the code before the change, so the spread is wide):
- the whole snapshot (about nine IAM reads) in a thread beside the deactivation, the write waiting
  for its key listing: burst p50 2.2 / 2.6 / 5.3 s against 1.1 / 1.4 / 1.5 s before;
- a key listing of its own in a thread beside the action's read: burst p50 2.2 / 3.1 s against 1.5 / 1.7 s;
- the action's own listing kept (this): burst p50 1.3 / 1.5 / 1.5 s against 2.3 / 0.9 / 1.1 s, one
  alert 0.5-0.8 s against 0.5-0.7 s: no call and no wait added, the difference is the host's noise.
So only the keys, the one thing the write changes, are read before it; the rest waits until after.

The outcome goes to `<home>/incidents/<id>/first_response.json`: `pending` from the moment the alert
is accepted, then `applied`, `nothing_to_do`, `skipped` (not ours, owner unknown) or `failed`. The
flow waits for it (bounded) before its own early containment, so the two never race and the
incident record shows the receiver's change, its ledger entry and its time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keyresponse.alerts import Alert
from keyresponse.errors import KeyResponseError
from keyresponse.files import write_atomic
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
    return write_atomic(path, json.dumps(data).encode(), exclusive=exclusive)


def claim(incident_id: str, access_key_id: str, home: Path | None = None) -> bool:
    """Mark the first response `pending`; False when this incident already has one (a redelivery)."""
    return _write(path_of(incident_id, home), {"status": "pending", "access_key_id": access_key_id,
                                               "accepted_at": utc_now()}, exclusive=True)


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


After = Callable[[], list[str]]


def contain(incident_id: str, access_key_id: str, settings: Settings | None = None, base: _Base | None = None,
            then: Callable[[Callable[[], dict[str, Any]]], Any] | None = None) -> dict[str, Any]:
    """Validate the key and deactivate it; record and return the outcome. Never raises.

    The work after the write (verify, evidence snapshot, ledger copy) runs through `then` (a
    `submit` of another executor, so the next key is not kept waiting), or inline without it; the
    outcome file stays `pending` until that work is done, and its return value is the final outcome.
    """
    settings = settings or get_settings()
    started = utc_now()
    after: After | None = None
    try:
        outcome, after = _contain(incident_id, access_key_id, settings, base or _Base())
    except Exception as exc:  # an unknown failure still leaves a readable outcome (and the flow goes on)
        log.exception("first response for %s failed", incident_id)
        outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    accepted = (read(incident_id, settings.home) or {}).get("accepted_at")
    outcome = {"access_key_id": access_key_id, "accepted_at": accepted, "started_at": started, **outcome}

    def finish() -> dict[str, Any]:
        if after is not None:
            try:
                outcome["plan"]["notes"].extend(after())
            except Exception as exc:  # the key is contained; say what is missing, the flow goes on
                outcome["plan"]["notes"].append(f"after the change: {type(exc).__name__}: {exc}"[:500])
        outcome["finished_at"] = utc_now()
        _write(path_of(incident_id, settings.home), outcome)
        log.info("first response %s for %s: %s", incident_id, access_key_id, outcome["status"])
        return outcome

    if then is not None and after is not None:
        then(finish)
        return outcome
    return finish()


class _Base:
    """The receiver's own clients and identity, made once and shared by the worker threads (boto3
    clients are thread-safe, sessions are not; making a client costs tens of milliseconds of CPU)."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._made: tuple[Any, Any] | None = None

    def made(self) -> tuple[Any, Any]:
        """(clients, responder), made on first use under the lock."""
        from tasks.actions import Clients

        with self._lock:
            if self._made is None:
                clients = Clients()
                clients("sts"), clients("iam"), clients("s3")  # made here, under the lock
                self._made = (clients, clients.responder())
            return self._made


def _stamp(iso: str | None) -> str:
    """`2026-11-19T19:00:00.123456Z` as the evidence names' `20261119T190000123456Z`."""
    return (iso or utc_now()).replace("-", "").replace(":", "").replace(".", "")


def _deactivation() -> Any:
    """The `deactivate_access_key` action, keeping the listing of the owner's keys its first read (the
    plan's, before the write) makes, and when it wrote. The same action, name, calls, guardrails,
    ledger and undo: only its hooks remember."""
    from tasks.containment.deactivate_access_key import DeactivateAccessKey, status_in, user_keys

    class DeactivationKeepingKeys(DeactivateAccessKey):
        def __init__(self) -> None:
            self.keys_before: list[dict[str, Any]] | None = None
            self.listed_at: str | None = None
            self.written_at: str | None = None

        def read(self, ctx: Any, target: Any) -> dict[str, Any]:
            keys = user_keys(ctx, target)
            if self.listed_at is None:
                self.keys_before, self.listed_at = keys, utc_now()
            return {"status": status_in(keys, target.id)}

        def write(self, ctx: Any, target: Any, before: Any) -> None:
            self.written_at = utc_now()
            super().write(ctx, target, before)

    return DeactivationKeepingKeys()


def _contain(incident_id: str, key: str, settings: Settings, base: _Base) -> tuple[dict[str, Any], After | None]:
    """Four AWS calls before the key is Inactive: who owns it (STS), which user (IAM), its status, the write.

    The deactivation's status read (before the write) keeps the listing of the owner's keys for the
    snapshot, so it shows the key as it was. The ledger entry (with the key's before-state) is written
    right after the write; the rest of the snapshot, storing it and verification come after, off the
    critical path.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from keyresponse.aws import session_for_account
    from keyresponse.errors import GuardrailRefusal
    from keyresponse.evidence import snapshot_user
    from keyresponse.guardrails import refuse_account
    from keyresponse.keys import is_temporary, validate_access_key_id
    from tasks.actions import ActionContext, Clients, Target, store_ledger

    key = validate_access_key_id(key)
    if is_temporary(key):
        return {"status": "skipped", "reason": "a temporary (ASIA) credential: the flow revokes its sessions"}, None
    clients, responder = base.made()
    try:
        account = clients("sts").get_access_key_info(AccessKeyId=key)["Account"]
    except (ClientError, BotoCoreError) as exc:
        return {"status": "skipped", "reason": f"could not ask STS who owns the key: {exc}"}, None
    try:
        refuse_account(account, responder, settings)
    except GuardrailRefusal as exc:
        return {"status": "skipped", "reason": str(exc)}, None
    if account != responder.account_id:  # the response role in the member account, acting as itself
        clients, responder = Clients(session_for_account(account)), None
    try:
        owner = clients("iam").get_access_key_last_used(AccessKeyId=key).get("UserName")
    except (ClientError, BotoCoreError) as exc:
        return {"status": "skipped", "reason": f"could not read the key's IAM record: {exc}"}, None
    if not owner:
        return {"status": "skipped", "reason": "IAM names no user for the key"}, None
    target = Target(kind="access_key", id=key, user_name=owner, data={"account_id": account})
    try:
        ctx = ActionContext.create(incident_id, dry_run=False, clients=clients, settings=settings,
                                   responder=responder)
        action = _deactivation()
        entry = action.apply(ctx, target)  # guardrails, read (keeps the keys), intent, write, ledger
    except GuardrailRefusal as exc:
        return {"status": "refused", "reason": str(exc)}, None
    except KeyResponseError as exc:
        return {"status": "failed", "reason": str(exc)[:500]}, None
    entries = [entry.model_dump(mode="json")] if entry else []

    def after() -> list[str]:
        action.verify(ctx, target)
        notes = ["verified"]
        try:
            notes.append(store_snapshot())
        except Exception as exc:  # the ledger copy is still stored; the outcome says what is missing
            notes.append(f"after the change: the owner's snapshot was not stored: {type(exc).__name__}: {exc}"[:500])
        store_ledger(ctx)
        return [*notes, "the ledger stored"]

    def store_snapshot() -> str:
        if ctx.evidence is None:
            return "no evidence store"
        read_from = utc_now()
        state = snapshot_user(ctx.client("iam"), owner)  # the keys aside, nothing the write changes
        if state.get("exists") and action.keys_before is not None:
            state["access_keys"] = action.keys_before
        state["snapshot"] = {
            "access_keys_listed_at": action.listed_at, "change": action.name, "change_written_at": action.written_at,
            "rest_read_from": read_from, "rest_read_until": utc_now(),
            "note": "access_keys as the change's own read listed them, before the change; the rest of the "
                    "user, which deactivating a key does not change, read after it"}
        name = ctx.evidence.put_json(f"before-{_stamp(action.listed_at)}-user-{owner}.json", state).name
        return f"evidence {name}: the owner's keys as listed before the change"

    return {
        "status": "applied" if entries else "nothing_to_do",
        "contained_at": entries[-1]["applied_at"] if entries else None,
        "owner": owner, "account_id": account,
        "plan": {"phase": "containment", "notes": ["first response by the alert receiver"],
                 "changes": [{"action": action.name, "target": target.model_dump(mode="json"), "label": target.label,
                              "summary": action.describe(target, entry.before) if entry else "already done",
                              "requires_approval": False, "done": entry is None}]},
        "ledger": entries,
    }, after


class FirstResponder:
    """Runs `contain` in worker threads of the receiver, once per incident."""

    def __init__(self, settings: Settings | None = None, *, workers: int = 16, after_workers: int = 2) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.settings = settings or get_settings()
        self._base = _Base()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="first-response")
        self._after = ThreadPoolExecutor(max_workers=after_workers, thread_name_prefix="first-response-after")
        self._after.submit(self._base.made)  # make the clients now, not on the first alert

    def start(self, alert: Alert, incident_id: str) -> bool:
        """Start containing the alert's key if the alert calls for it; True when started."""
        if not wanted(alert, self.settings) or alert.access_key_id is None:
            return False
        if not claim(incident_id, alert.access_key_id, self.settings.home):
            return False
        self._pool.submit(contain, incident_id, alert.access_key_id, self.settings, self._base, self._after.submit)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._after.shutdown(wait=True)
