"""First response: the receiver contains the key of a high-confidence alert itself, at once, and its owner.

A flow run starts in a fresh process (seconds of imports) and a burst of alerts starts many at once,
so the key would stay usable for as long as the slowest import. The playbook allows containing the
key right after validation for a high-confidence alert (AWS Health exposure, AWS's quarantine
policy attached by AWS itself, GuardDuty severity ≥ 7), so the receiver does exactly that, in a worker thread of
its already-warm process, while the flow run starts:

    validate the key (ours? whose?) → guardrails → deactivate (its read keeps the owner's keys)
    → ledger → deny the owner → ledger → verify, the rest of the owner's snapshot, the evidence and
    the ledger copy … and `first_response_recheck_seconds` later, the recheck

It is the same `deactivate_access_key` action the flow uses, with the same guardrails (never the
responder's own key, never a protected principal, never an account out of scope) and the same
ledger, so `keyresponse undo` reverses it like any other change. Runs only when `KEYRESPONSE_AUTO_CONTAIN` is
on (the default), and only for an alert that came with a credential that may trigger it (the receiver
keeps any other with `high_confidence` false: see the table in `keyresponse/receiver/__init__.py`).

**The owner is stopped, not only the key** (issue 16, H5). An attacker who holds a key usually mints a
second one (`CreateAccessKey` on the same user) before anyone notices, and CloudTrail delivers that
call minutes after the alert: with only the leaked key deactivated, the second key re-activates it.
So right after the key, the receiver denies every request of the key's user: an inline policy, `Deny`
`*` on `*` with no condition (`owner_deny_policy`), through the registered
`attach_session_revocation_policy` action and under its policy name (`_owner_deny`), so the
guardrails, the intent, the ledger entry, `verify` and `undo` are that action's, recovery's
`remove_session_revocation_policy` lifts it once the owner confirmed rotation, and the flow's own
session revocation on the owner finds it in place and leaves it. Why no `aws:TokenIssueTime`
condition, as AWS's "revoke active sessions" policy has: that key is in the request context only for
temporary credentials, so a condition on it never matches a request signed with a long-term key, the
second key's; and `DateLessThanIfExists` (deny keys, and sessions issued before now) leaves a way out,
because no IAM policy can deny `GetSessionToken` ("you cannot use policies to control authentication
operations", AWS's IAM guide) and the session the second key mints after the cut-off passes it.

Is an all-denying user policy right for a high-confidence alert? Yes, with the precedent of the
playbook's own: for these same signals AWS itself attaches `AWSCompromisedKeyQuarantineV2` (V3 now)
to the user, denying the risky actions to every credential of it. Ours denies everything, because an
attacker's way back in is not only the actions on AWS's list. The cost is stated: the owner's other
keys and its console stop working too, until recovery removes the policy (after an approval) or
`keyresponse undo` does; a deployment that cannot bear it turns it off
(`KEYRESPONSE_FIRST_RESPONSE_DENY_OWNER=false`). A deny that fails or is refused leaves the key
contained all the same; the outcome says so (`owner_deny`) and it is notified.

What the receiver cannot stop: the roles the key assumed, and the sessions of those roles. Which
roles they are is known only once CloudTrail has delivered the key's `AssumeRole` calls and the flow's
investigation has read them; the flow's containment plan then revokes those roles' sessions
(`attach_session_revocation_policy` on each role), after its approval. A user deny does not reach a
role session (its permissions are the role's).

**The recheck.** `first_response_recheck_seconds` (60 s) after a first response that contained the
key, the receiver (`FirstResponder`) reads the key and the owner's keys again (`recheck`): the key
Active again, or an Active key that the first response's own listing did not hold (minted since, by
whatever still has a way in: a role session with IAM rights), is deactivated again (its own ledger
entry), the deny on the owner is attached again if it was removed, and that is notified. Nothing is
done once a change of the incident was undone (a person's decision) or the response has reached
eradication or recovery (its replacement key, the deny it lifted). The timer lives in the receiver's
process: a receiver stopped before it fires does not recheck.

**A transient failure is tried again** (issue 16, M6). Every AWS step of the first response goes
through `Backoff`: throttling, a 5xx (with a body botocore can parse or not) or a broken connection is
tried again with exponential backoff and jitter, up to `first_response_attempts` (5) tries a step and
never past `first_response_retry_seconds` (30 s) from the start; each call is also retried once by
the receiver's clients (`CLIENT_ATTEMPTS`). A refusal (a guardrail, AccessDenied, a key that is not
ours) is not tried again. A write whose try failed is found by the next try through the action's
intent (`Action.apply`): the key gets one ledger entry however many tries it took. An outcome
`failed` or `refused` is notified (`keyresponse.notifications.first_response_failed`), so a key left
Active does not go unnoticed.

**The snapshot holds the keys as they were before the write.** The deactivation's own read of the
key's status, made before its write, is one `ListAccessKeys` of the owner; the first response keeps
that whole listing (every key of the owner, with its status) for the owner's snapshot, so the
`before-<time>-user-<owner>.json` evidence shows the key Active, as it was, at no added call on the
critical path. The rest of the owner (policies, groups, console, MFA, tags) is read after the write,
off the critical path, with verification; the snapshot says when each part was read (`snapshot`).

The trade-off, measured with `bench/latency.py` (webhook → key Inactive; 1 alert, then 50 at once;
a shared 2-core host, runs alternated with the code before the change, so the spread is wide):
- the whole snapshot (about nine IAM reads) in a thread beside the deactivation, the write waiting
  for its key listing: burst p50 2.2 / 2.6 / 5.3 s against 1.1 / 1.4 / 1.5 s before;
- a key listing of its own in a thread beside the action's read: burst p50 2.2 / 3.1 s against 1.5 / 1.7 s;
- the action's own listing kept (this): burst p50 1.3 / 1.5 / 1.5 s against 2.3 / 0.9 / 1.1 s, one
  alert 0.5-0.8 s against 0.5-0.7 s: no call and no wait added, the difference is the host's noise.
So only the keys, the one thing the write changes, are read before it; the rest waits until after.
The deny on the owner comes after the key's write, so it adds nothing to webhook → key Inactive:
measured the same way, alternated with the code before it, one alert 0.26 / 0.32 s against 1.06 /
0.32 s, burst p50 2.7 / 3.9 s against 7.2 / 3.8 s (the host's noise again).

The outcome goes to `<home>/incidents/<id>/first_response.json`: `pending` from the moment the alert
is accepted, then `applied`, `nothing_to_do`, `skipped` (not ours, owner unknown), `refused` or
`failed`, with `attempts`, `transient_failures`, `owner_deny` and, once rechecked, `rechecks`. The
flow waits for it (bounded) before its own early containment, so the two never race and the
incident record shows the receiver's change, its ledger entry and its time.

Size: one time-critical path (claim, contain with a retry budget, record, recheck) whose steps share one deadline; kept in one file to be read whole.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from keyresponse.alerts import Alert
from keyresponse.errors import KeyResponseError
from keyresponse.files import write_atomic
from keyresponse.ledger import utc_now, validate_incident_id
from keyresponse.settings import Settings, get_settings

log = logging.getLogger("tasks.first_response")

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
_T = TypeVar("_T")


class Backoff:
    """Tries one AWS step again while it fails on throttling, a 5xx or a broken connection
    (`transient`, anywhere in the cause chain): at most `attempts` tries per step,
    exponential delays with jitter (half fixed, half random: 0.25-0.5 s, 0.5-1 s, 1-2 s, …, capped at
    `cap_s`), and no new try once `budget_s` has passed since the first response began. Anything else
    (a guardrail's refusal, AccessDenied, a key that is not ours) is raised at once. The receiver's
    clients retry each call once themselves (`CLIENT_ATTEMPTS`), so this is what bounds the whole.
    """

    def __init__(self, attempts: int, budget_s: float, *, base_s: float = 0.5, cap_s: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.attempts, self.budget_s, self.base_s, self.cap_s, self.sleep = attempts, budget_s, base_s, cap_s, sleep
        self.started = time.monotonic()
        self.failures: list[dict[str, Any]] = []  # every transient failure met, with its step and try

    def call(self, step: str, work: Callable[[], _T]) -> _T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return work()
            except Exception as exc:
                if not transient(exc):
                    raise
                self.failures.append({"step": step, "attempt": attempt, "at": utc_now(),
                                      "error": f"{type(exc).__name__}: {exc}"[:300]})
                delay = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
                delay = delay / 2 + random.uniform(0, delay / 2)
                if attempt >= self.attempts or time.monotonic() + delay > self.started + self.budget_s:
                    raise
                log.warning("first response: %s failed on a transient error (try %d), again in %.2f s: %s",
                            step, attempt, delay, exc)
                self.sleep(delay)

    @property
    def tries(self) -> int:
        """Tries made in all: one per step that succeeded or failed for good, plus one per retry."""
        return len(self.failures) + 1


def transient(exc: BaseException) -> bool:
    """What the first response tries again: `keyresponse.retry.is_transient` (the flows' rule too)."""
    from keyresponse.retry import is_transient

    return is_transient(exc)


#: boto3 attempts of each call the receiver makes (the first and one retry): `Backoff` does the rest,
#: within its time budget, where boto3's own eight adaptive attempts could wait a minute.
CLIENT_ATTEMPTS = 2


def contain(incident_id: str, access_key_id: str, settings: Settings | None = None, base: _Base | None = None,
            then: Callable[[Callable[[], dict[str, Any]]], Any] | None = None,
            done: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Validate the key, deactivate it, deny its owner; record and return the outcome. Never raises.

    Each AWS step is tried again on a transient failure (`Backoff`, bounded by
    `first_response_attempts` and `first_response_retry_seconds`). A failure, a refusal, or a key
    contained without the deny on its owner is notified (`keyresponse.notifications`). The work after
    the write (verify, evidence snapshot, ledger copy) runs through `then` (a `submit` of another
    executor, so the next key is not kept waiting), or inline without it; the outcome file stays
    `pending` until that work is done, and its final outcome is returned (and given to `done`).
    """
    settings = settings or get_settings()
    started = utc_now()
    after: After | None = None
    backoff = Backoff(settings.first_response_attempts, settings.first_response_retry_seconds)
    try:
        outcome, after = _contain(incident_id, access_key_id, settings, base or _Base(), backoff)
    except Exception as exc:  # an unknown failure still leaves a readable outcome (and the flow goes on)
        log.exception("first response for %s failed", incident_id)
        outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    accepted = (read(incident_id, settings.home) or {}).get("accepted_at")
    outcome = {"access_key_id": access_key_id, "accepted_at": accepted, "started_at": started, **outcome,
               "attempts": backoff.tries, "transient_failures": backoff.failures}

    def finish() -> dict[str, Any]:
        if after is not None:
            try:
                outcome["plan"]["notes"].extend(after())
            except Exception as exc:  # the key is contained; say what is missing, the flow goes on
                outcome["plan"]["notes"].append(f"after the change: {type(exc).__name__}: {exc}"[:500])
        outcome["finished_at"] = utc_now()
        _write(path_of(incident_id, settings.home), outcome)
        log.info("first response %s for %s: %s", incident_id, access_key_id, outcome["status"])
        incomplete = outcome.get("owner_deny", {}).get("status") in ("failed", "refused")
        if outcome["status"] in ("failed", "refused") or incomplete:
            from keyresponse.notifications import first_response_failed, send

            send(first_response_failed(incident_id, outcome), settings)
        if done is not None:
            done(outcome)
        return outcome

    if then is not None and after is not None:
        then(finish)
        return outcome
    return finish()


class _Base:
    """The receiver's own clients and identity, made once and shared by the worker threads (boto3
    clients are thread-safe, sessions are not; making a client costs tens of milliseconds of CPU)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: tuple[Any, Any] | None = None

    def made(self) -> tuple[Any, Any]:
        """(clients, responder), made on first use under the lock."""
        from tasks.actions import Clients

        with self._lock:
            if self._made is None:
                clients = Clients(max_attempts=CLIENT_ATTEMPTS)
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


def owner_deny_policy() -> dict[str, Any]:
    """The first response's deny on the key's owner: every action, every resource, every credential of
    the user (its other keys, its sessions, its console), with no condition (the module docstring says
    why no `aws:TokenIssueTime` condition)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "KeyResponseFirstResponseDenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"}]}


def _owner_deny() -> Any:
    """The `attach_session_revocation_policy` action writing `owner_deny_policy` under the incident's
    revocation policy name: the same name, calls, permissions, guardrails, ledger and undo (which
    deletes the policy), and recovery's `remove_session_revocation_policy` lifts it; the flow's own
    `attach_session_revocation_policy` on the owner then finds the policy there and leaves it."""
    from tasks.containment.attach_session_revocation_policy import AttachSessionRevocationPolicy
    from tasks.iam_changes import put_inline_policy, revocation_policy_name

    class DenyingTheOwner(AttachSessionRevocationPolicy):
        def describe(self, target: Any, before: Any) -> str:
            return (f"deny every request of {target.kind} {target.id}, every key and session of it, until "
                    "recovery (inline deny-all policy)")

        def write(self, ctx: Any, target: Any, before: Any) -> None:
            put_inline_policy(ctx, target, revocation_policy_name(ctx.incident_id), owner_deny_policy())

    return DenyingTheOwner()


def _contain(incident_id: str, key: str, settings: Settings, base: _Base,
             backoff: Backoff) -> tuple[dict[str, Any], After | None]:
    """Four AWS calls before the key is Inactive: who owns it (STS), which user (IAM), its status, the write.

    The deactivation's status read (before the write) keeps the listing of the owner's keys for the
    snapshot, so it shows the key as it was. The ledger entry (with the key's before-state) is written
    right after the write; then the deny on the owner (three calls), then the outcome; the rest of the
    snapshot, storing it and verification come after, off the critical path. Each step goes through
    `backoff`: a transient failure is tried again, and one that outlasts it raises (the outcome is
    `failed`); a failure that is not transient ends the step as before.
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
    clients, responder = backoff.call("sts:GetCallerIdentity", base.made)
    try:
        account = backoff.call("sts:GetAccessKeyInfo", lambda: clients("sts").get_access_key_info(
            AccessKeyId=key)["Account"])
    except (ClientError, BotoCoreError) as exc:
        if transient(exc):
            raise
        return {"status": "skipped", "reason": f"could not ask STS who owns the key: {exc}"}, None
    try:
        refuse_account(account, responder, settings)
    except GuardrailRefusal as exc:
        return {"status": "skipped", "reason": str(exc)}, None
    if account != responder.account_id:  # the response role in the member account, acting as itself
        clients = backoff.call(f"assuming the response role in {account}", lambda: Clients(
            session_for_account(account), max_attempts=CLIENT_ATTEMPTS))
        responder = None
    try:
        owner = backoff.call("iam:GetAccessKeyLastUsed", lambda: clients("iam").get_access_key_last_used(
            AccessKeyId=key).get("UserName"))
    except (ClientError, BotoCoreError) as exc:
        if transient(exc):
            raise
        return {"status": "skipped", "reason": f"could not read the key's IAM record: {exc}"}, None
    if not owner:
        return {"status": "skipped", "reason": "IAM names no user for the key"}, None
    target = Target(kind="access_key", id=key, user_name=owner, data={"account_id": account})
    try:
        ctx = backoff.call("the action context", lambda: ActionContext.create(
            incident_id, dry_run=False, clients=clients, settings=settings, responder=responder))
        action = _deactivation()
        # guardrails, read (keeps the keys), intent, write, ledger; a try after a write that failed finds
        # the intent and writes again, one after a write that took records it from the intent: one entry
        entry = backoff.call("deactivate_access_key", lambda: action.apply(ctx, target))
    except GuardrailRefusal as exc:
        return {"status": "refused", "reason": str(exc)}, None
    except KeyResponseError as exc:
        return {"status": "failed", "reason": str(exc)[:500]}, None
    entries = [entry.model_dump(mode="json")] if entry else []
    changes = [{"action": action.name, "target": target.model_dump(mode="json"), "label": target.label,
                "summary": action.describe(target, entry.before) if entry else "already done",
                "requires_approval": False, "done": entry is None}]
    notes = ["first response by the alert receiver"]
    owner_target = Target(kind="user", id=owner, data={"account_id": account})
    deny = _owner_deny()
    owner_deny: dict[str, Any] = {"status": "off", "target": owner_target.label}
    if settings.first_response_deny_owner:
        try:
            denied = backoff.call("deny the owner", lambda: deny.apply(ctx, owner_target))
        except GuardrailRefusal as exc:
            owner_deny = {**owner_deny, "status": "refused", "reason": str(exc)[:500]}
        except Exception as exc:  # the key is contained all the same; the outcome and a message say so
            owner_deny = {**owner_deny, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
        else:
            owner_deny = {**owner_deny, "status": "applied" if denied else "already in place"}
            if denied:
                entries.append(denied.model_dump(mode="json"))
            changes.append({"action": deny.name, "target": owner_target.model_dump(mode="json"),
                            "label": owner_target.label, "summary": deny.describe(owner_target, {}),
                            "requires_approval": False, "done": denied is None})
        notes.append(f"the deny on the owner: {owner_deny['status']}"
                     + (f" ({owner_deny['reason']})" if owner_deny.get("reason") else ""))

    def after() -> list[str]:
        action.verify(ctx, target)
        notes = ["verified"]
        if owner_deny["status"] in ("applied", "already in place"):
            deny.verify(ctx, owner_target)
            notes.append("the deny on the owner verified")
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
                    "user read after it (the inline deny policy the first response attached included)"}
        name = ctx.evidence.put_json(f"before-{_stamp(action.listed_at)}-user-{owner}.json", state).name
        return f"evidence {name}: the owner's keys as listed before the change"

    return {
        "status": "applied" if entries else "nothing_to_do",
        "contained_at": entries[0]["applied_at"] if entry else None,
        "owner": owner, "account_id": account,
        "owner_keys_before": [str(k["AccessKeyId"]) for k in action.keys_before or []],
        "owner_deny": owner_deny,
        "plan": {"phase": "containment", "notes": notes, "changes": changes},
        "ledger": entries,
    }, after


def _moved_on(entries: list[Any]) -> str | None:
    """Why the recheck must leave AWS alone, or None: a change was undone (a person decided), or the
    response has reached eradication or recovery (a replacement key, the deny lifted)."""
    from tasks.registry import phases

    later = {action.name for phase in ("eradication", "recovery") for action in phases()[phase]}
    if any(e.kind == "undo" for e in entries):
        return "a change of the incident was undone since"
    moved = sorted({e.action for e in entries if e.action in later})
    return f"the response has moved on ({', '.join(moved)})" if moved else None


def recheck(incident_id: str, settings: Settings | None = None, base: _Base | None = None) -> dict[str, Any]:
    """Read the contained key and its owner's keys again, and contain again what was re-opened.

    A key the first response deactivated that is Active again, and an Active key of the owner that the
    first response's own listing (before its write) did not hold, are deactivated (each its ledger
    entry); the deny on the owner, if the first response attached it and it is gone, is attached again.
    Each change is the same action with the same guardrails, and is notified. Nothing is done once a
    change of the incident was undone or the response has reached eradication or recovery (its
    replacement key, the deny it lifted). The result is appended to the outcome's `rechecks`. Never raises.
    """
    settings = settings or get_settings()
    base = base or _Base()
    outcome = read(incident_id, settings.home) or {}
    result: dict[str, Any] = {"at": utc_now(), "recontained": [], "owner_deny_restored": False, "ledger": []}
    try:
        result.update(_recheck(incident_id, outcome, settings, base, result))
    except Exception as exc:
        log.exception("recheck of the first response of %s failed", incident_id)
        result.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:500])
    if outcome.get("finished_at"):
        from datetime import datetime

        def seconds(iso: str) -> float:
            return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

        result["seconds_after"] = round(seconds(result["at"]) - seconds(outcome["finished_at"]), 1)
    if outcome:
        latest = read(incident_id, settings.home) or outcome
        _write(path_of(incident_id, settings.home), {**latest, "rechecks": [*latest.get("rechecks", []), result]})
    if result["recontained"] or result["owner_deny_restored"]:
        from keyresponse.notifications import first_response_recontained, send

        send(first_response_recontained(incident_id, result), settings)
    log.info("first response %s rechecked: %s", incident_id, result.get("status"))
    return result


def _recheck(incident_id: str, outcome: dict[str, Any], settings: Settings, base: _Base,
             result: dict[str, Any]) -> dict[str, Any]:
    from keyresponse.aws import session_for_account
    from keyresponse.ledger import Ledger
    from tasks.actions import ActionContext, Clients, Target, store_ledger
    from tasks.containment.deactivate_access_key import user_keys

    if outcome.get("status") not in ("applied", "nothing_to_do") or not outcome.get("owner"):
        return {"status": "skipped", "reason": f"the first response is {outcome.get('status') or 'missing'}"}
    why = _moved_on(Ledger(incident_id, settings.home).entries())
    if why is not None:
        return {"status": "skipped", "reason": why}
    owner, account, key = str(outcome["owner"]), str(outcome["account_id"]), str(outcome["access_key_id"])
    backoff = Backoff(settings.first_response_attempts, settings.first_response_retry_seconds)
    clients, responder = backoff.call("sts:GetCallerIdentity", base.made)
    if account != responder.account_id:
        clients, responder = Clients(session_for_account(account), max_attempts=CLIENT_ATTEMPTS), None
    ctx = backoff.call("the action context", lambda: ActionContext.create(
        incident_id, dry_run=False, clients=clients, settings=settings, responder=responder))
    data = {"account_id": account}
    keys = backoff.call("iam:ListAccessKeys", lambda: user_keys(ctx, Target(
        kind="access_key", id=key, user_name=owner, data=data))) or []
    known = set(outcome.get("owner_keys_before") or [key])
    reopened = [str(k["AccessKeyId"]) for k in keys
                if k["Status"] == "Active" and (k["AccessKeyId"] == key or k["AccessKeyId"] not in known)]
    result["reopened"] = reopened
    action, written = _deactivation(), []
    for found in reopened:
        target = Target(kind="access_key", id=found, user_name=owner, data=data)
        if (why := _moved_on(ctx.ledger.entries())) is not None:  # a replacement key made a moment ago
            return {"status": "skipped", "reason": why}
        entry = backoff.call(f"deactivate {found}", partial(action.apply, ctx, target))
        action.verify(ctx, target)
        if entry is not None:
            written.append(entry)
            result["recontained"].append(found)
    if (outcome.get("owner_deny") or {}).get("status") in ("applied", "already in place"):
        deny, user = _owner_deny(), Target(kind="user", id=owner, data=data)
        entry = backoff.call("deny the owner", lambda: deny.apply(ctx, user))
        deny.verify(ctx, user)
        if entry is not None:
            written.append(entry)
            result["owner_deny_restored"] = True
    result["ledger"] = [e.model_dump(mode="json") for e in written]
    if written:
        store_ledger(ctx)
    return {"status": "recontained" if written else "unchanged"}


class FirstResponder:
    """Runs `contain` in worker threads of the receiver, once per incident, and `recheck` once,
    `first_response_recheck_seconds` after each first response that contained something.

    The recheck's timer lives in this process: a receiver stopped before it fires does not recheck (the
    flow's containment, which reads AWS again, still runs)."""

    def __init__(self, settings: Settings | None = None, *, workers: int = 16, after_workers: int = 2) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.settings = settings or get_settings()
        self._base = _Base()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="first-response")
        self._after = ThreadPoolExecutor(max_workers=after_workers, thread_name_prefix="first-response-after")
        self._after.submit(self._base.made)  # make the clients now, not on the first alert
        self._timers: dict[str, threading.Timer] = {}
        self._timers_lock = threading.Lock()
        self._closed = False

    def start(self, alert: Alert, incident_id: str) -> bool:
        """Start containing the alert's key if the alert calls for it; True when started."""
        if not wanted(alert, self.settings) or alert.access_key_id is None:
            return False
        if not claim(incident_id, alert.access_key_id, self.settings.home):
            return False
        self._pool.submit(contain, incident_id, alert.access_key_id, self.settings, self._base, self._after.submit,
                          partial(self._contained, incident_id))
        return True

    def _contained(self, incident_id: str, outcome: dict[str, Any]) -> None:
        """(`contain`'s `done`.) Set the recheck's timer when the first response contained something."""
        delay = self.settings.first_response_recheck_seconds
        if delay <= 0 or outcome.get("status") not in ("applied", "nothing_to_do"):
            return
        timer = threading.Timer(delay, self._recheck, args=(incident_id,))
        timer.name, timer.daemon = f"first-response-recheck-{incident_id}", True
        with self._timers_lock:
            if self._closed:
                return
            self._timers[incident_id] = timer
        timer.start()

    def _recheck(self, incident_id: str) -> None:
        with self._timers_lock:
            self._timers.pop(incident_id, None)
        recheck(incident_id, self.settings, self._base)

    def close(self) -> None:
        """Wait for the first responses under way; cancel the rechecks not yet due."""
        self._pool.shutdown(wait=True)
        self._after.shutdown(wait=True)
        with self._timers_lock:
            self._closed = True
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
