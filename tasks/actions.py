"""The action contract: every change keyresponse makes to AWS is one `Action`.

An action declares what it is (`name` = module stem, `summary`, IAM `permissions`,
`requires_approval`, `undo_unsupported_reason`) and implements four small hooks:

    read(ctx, target)   -> state    read-only; the part of AWS this action changes, as plain data
    is_done(ctx, target, state) -> bool   is the target already in the desired state?
    write(ctx, target, before)      the only mutating call site
    revert(ctx, target, before)     put `before` back (only when undo is supported)

From those the base class builds the public contract, which is the same for every action:

    plan(ctx, target)   -> Change | None    read-only; None when already done. Guardrails run here.
    apply(ctx, target)  -> LedgerEntry | None   check-then-act; "already done" is success (None), so
                                            every action is idempotent (the contract tests apply twice)
    verify(ctx, target)                     re-reads AWS; raises VerificationFailed
    undo(ctx, entry)    -> LedgerEntry | None   restores the entry's before-state; idempotent
    undo_preview(ctx, entry) -> dict        read-only: what undo would do (the undo's dry run)

Every write is appended to the incident ledger with its before- and after-state. `apply_steps`
runs a whole plan (guardrails for every step first, then the evidence snapshot, then apply and
verify step by step) and `undo_incident` replays the ledger in reverse.

AWS errors surface as our error tree: AccessDenied becomes `MissingPermission` naming the IAM
action (at once, no retry); throttling and 5xx are retried by botocore (adaptive mode:
exponential backoff with jitter, see `keyresponse.aws`); anything else becomes `AwsCallError`.

Size: the contract and the two runners built on it (a plan applied, a ledger replayed) share their
invariants (guardrails first, one ledger entry per write, verify after); what several actions change
the same way (tags, inline policies, login profiles, secrets) is `tasks/iam_changes.py`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from pydantic import BaseModel, ConfigDict

from keyresponse import aws
from keyresponse.errors import (
    AwsCallError,
    GuardrailRefusal,
    KeyResponseError,
    MissingPermission,
    VerificationFailed,
)
from keyresponse.evidence import EvidenceStore, open_store, snapshot_role, snapshot_user
from keyresponse.guardrails import (
    Principal,
    Responder,
    parse_principal,
    refuse_access_key,
    refuse_account,
    refuse_principal,
)
from keyresponse.ledger import Ledger, LedgerEntry, TornLine, in_effect, validate_incident_id
from keyresponse.model import InvestigationRecord
from keyresponse.settings import Settings, get_settings

ACCESS_DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
    "UnauthorizedAccess", "403",
})
_NOT_AUTHORIZED = re.compile(r"not authorized to perform:?\s+([\w-]+:[\w*]+)")


# -- clients ------------------------------------------------------------------------------------


def _raise_missing_permission(http_response: Any, parsed: Mapping[str, Any], model: Any, **_: Any) -> None:
    """botocore `after-call` hook: AccessDenied becomes `MissingPermission` naming the IAM action."""
    if getattr(http_response, "status_code", 200) < 400:
        return  # (never touch a success's body: it may be a stream the caller reads)
    error = parsed.get("Error") or {}
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or str(getattr(http_response, "text", ""))
    if code not in ACCESS_DENIED_CODES and "not authorized to perform" not in message:
        return
    if code == "403" and "not authorized to perform" not in message and "AccessDenied" not in message:
        return
    found = _NOT_AUTHORIZED.search(message)
    prefix = model.service_model.signing_name or model.service_model.endpoint_prefix
    permission = found.group(1) if found else f"{prefix}:{model.name}"
    raise MissingPermission(f"AccessDenied on {prefix}:{model.name}: the responder lacks {permission}")


class Clients:
    """The clients factory of an `ActionContext`: one cached boto3 client per (service, region).

    Clients come from `keyresponse.aws.client` (adaptive retries with backoff and jitter on
    throttling and 5xx) and raise `MissingPermission` on AccessDenied.
    """

    def __init__(self, session: boto3.Session | None = None, *, max_attempts: int | None = None) -> None:
        self.session = session or aws.session()
        self.max_attempts = max_attempts
        self._cache: dict[tuple[str, str | None], Any] = {}
        self._hooks: list[tuple[str, Callable[..., Any]]] = []

    def __call__(self, service: str, region: str | None = None) -> Any:
        key = (service, region)
        if key not in self._cache:
            made = aws.client(service, region=region, boto_session=self.session, max_attempts=self.max_attempts)
            made.meta.events.register("after-call", _raise_missing_permission)
            for event, hook in self._hooks:
                made.meta.events.register(event, hook)
            self._cache[key] = made
        return self._cache[key]

    def register(self, event: str, hook: Callable[..., Any]) -> None:
        """Register a botocore event hook on every client, made or yet to be made (tests record calls)."""
        self._hooks.append((event, hook))
        for made in self._cache.values():
            made.meta.events.register(event, hook)

    def unregister(self, event: str, hook: Callable[..., Any]) -> None:
        self._hooks = [(e, h) for e, h in self._hooks if (e, h) != (event, hook)]
        for made in self._cache.values():
            made.meta.events.unregister(event, hook)

    def responder(self) -> Responder:
        """Who these clients act as (`sts:GetCallerIdentity` and the signing key)."""
        identity = self("sts").get_caller_identity()
        credentials = self.session.get_credentials()
        return Responder(arn=identity["Arn"], account_id=identity["Account"],
                         access_key_id=credentials.access_key if credentials else None)


# -- targets, changes, context ------------------------------------------------------------------


class Target(BaseModel):
    """What an action acts on. `id` is the natural id (key id, user or role name, instance id …)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    id: str
    region: str | None = None
    user_name: str | None = None
    data: dict[str, Any] = {}

    @property
    def label(self) -> str:
        where = f"@{self.region}" if self.region else ""
        owner = f" ({self.user_name})" if self.user_name and self.user_name != self.id else ""
        return f"{self.kind}:{self.id}{where}{owner}"


class Change(BaseModel):
    """One planned change: what will be done to what, and the state it starts from."""

    action: str
    target: Target
    description: str
    before: dict[str, Any]
    requires_approval: bool = False
    undo_supported: bool = True


@dataclass
class ActionContext:
    """Everything an action needs: which incident, which account, dry or not, where to record."""

    incident_id: str
    account_id: str
    clients: Clients
    ledger: Ledger
    responder: Responder
    settings: Settings = field(default_factory=get_settings)
    dry_run: bool = True
    flow_run_id: str | None = None
    evidence: EvidenceStore | None = None
    #: contexts of the same incident in other accounts (`at`), made once each
    _elsewhere: dict[str, ActionContext] = field(default_factory=dict, repr=False)

    @classmethod
    def create(
        cls,
        incident_id: str,
        *,
        dry_run: bool = True,
        clients: Clients | None = None,
        settings: Settings | None = None,
        flow_run_id: str | None = None,
        responder: Responder | None = None,
    ) -> ActionContext:
        """A context for the identity `clients` act as (default credential chain when None); pass
        `responder` when that identity is already known (`clients.responder()`), to skip the STS call."""
        settings = settings or get_settings()
        clients = clients or Clients()
        incident_id = validate_incident_id(incident_id)
        if responder is None:
            with aws_errors("sts:GetCallerIdentity"):
                responder = clients.responder()
        evidence = open_store(incident_id, s3=clients("s3"), settings=settings)
        return cls(incident_id=incident_id, account_id=responder.account_id, clients=clients,
                   ledger=Ledger(incident_id, settings.home), responder=responder, settings=settings,
                   dry_run=dry_run, flow_run_id=flow_run_id, evidence=evidence)

    def client(self, service: str, region: str | None = None) -> Any:
        return self.clients(service, region)

    def at(self, account_id: str | None) -> ActionContext:
        """This incident's context acting in `account_id`: itself for its own account (or None), else the
        response role (`settings.response_role_name`) assumed from these credentials in that member
        account, sharing this context's ledger and evidence store. An account out of scope is refused
        before anything is assumed."""
        if account_id is None or account_id == self.account_id:
            return self
        if account_id not in self._elsewhere:
            refuse_account(account_id, self.responder, self.settings)
            with aws_errors(f"assuming {self.settings.response_role_name} in account {account_id}"):
                clients = Clients(aws.session_for_account(account_id, self.clients.session,
                                                          role_name=self.settings.response_role_name),
                                  max_attempts=self.clients.max_attempts)
                responder = clients.responder()
            if responder.account_id != account_id:
                raise GuardrailRefusal(f"the response role acts in account {responder.account_id}, not {account_id}")
            self._elsewhere[account_id] = ActionContext(
                incident_id=self.incident_id, account_id=account_id, clients=clients, ledger=self.ledger,
                responder=responder, settings=self.settings, dry_run=self.dry_run, flow_run_id=self.flow_run_id,
                evidence=self.evidence)
        return self._elsewhere[account_id]

    def for_target(self, target: Target) -> ActionContext:
        """The context acting in `target`'s account (`Target.data["account_id"]`; this one's when it names none)."""
        account = target.data.get("account_id")
        return self.at(account if isinstance(account, str) else None)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Translate botocore failures that escaped an action into `AwsCallError` (nothing is swallowed)."""
    try:
        yield
    except KeyResponseError:
        raise
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsCallError(f"{what}: {error.get('Code', '?')}: {error.get('Message', exc)}") from exc
    except (BotoCoreError, ResponseParserError) as exc:  # a 5xx with a body that is not XML/JSON
        raise AwsCallError(f"{what}: {exc}") from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the contract -------------------------------------------------------------------------------


class Action(ABC):
    """Base of every action. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    summary: ClassVar[str]
    permissions: ClassVar[tuple[str, ...]]
    requires_approval: ClassVar[bool] = False
    undo_unsupported_reason: ClassVar[str | None] = None
    #: The `Target.kind`s this action takes.
    target_kinds: ClassVar[tuple[str, ...]]
    #: The actions whose change this one ends on the same target (recovery removing the policy
    #: containment attached, eradication deleting the key containment deactivated); "*": every
    #: change on the target user (and on its keys). Read by `left_in_place`.
    ends: ClassVar[tuple[str, ...]] = ()

    # hooks ------------------------------------------------------------------------------------
    @abstractmethod
    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        """Read-only: the state this action changes, as comparable plain data (no timestamps)."""

    @abstractmethod
    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        """True when `state` is already the state `apply` produces."""

    @abstractmethod
    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        """One sentence for the plan table: what `apply` will do."""

    @abstractmethod
    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> LedgerEntry | None:
        """The change itself. Treat "already done" error codes as success.

        Returns None, and `apply` records the change. A write made of steps after which a crash must
        find the change in the ledger (a key created, then its secret stored) records it itself, as
        soon as there is something to undo, and returns that entry."""

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        """Put `before` back. Only called when `undo_unsupported_reason` is None."""
        raise NotImplementedError(f"{self.name} has no undo: {self.undo_unsupported_reason}")

    def principal(self, target: Target) -> Principal | None:
        """The IAM principal `target` belongs to, for the guardrails (None for non-IAM resources), in the
        target's account when it names one."""
        if target.kind in ("role", "user"):
            found = parse_principal(target.id, kind=target.kind)
        elif target.user_name:
            found = parse_principal(target.user_name, kind="user")
        else:
            return None
        account = target.data.get("account_id")
        if found.account_id is None and isinstance(account, str):
            found = Principal(found.kind, found.name, account)
        return found

    # contract ---------------------------------------------------------------------------------
    def guard(self, ctx: ActionContext, target: Target) -> None:
        """Raise `GuardrailRefusal` if any guardrail forbids touching `target`."""
        if target.kind not in self.target_kinds:
            raise GuardrailRefusal(f"{self.name} acts on a {' or '.join(self.target_kinds)}, not on {target.label}")
        account = target.data.get("account_id", ctx.account_id)
        refuse_account(account, ctx.responder, ctx.settings)
        if account is not None and account != ctx.account_id:
            raise GuardrailRefusal(
                f"{target.label} is in account {account}, but this context acts in account {ctx.account_id}: "
                "act on it in its own account (ActionContext.for_target), never on its name here")
        principal = self.principal(target)
        if principal is not None:
            if principal.account_id is None:
                principal = Principal(principal.kind, principal.name, ctx.account_id)
            refuse_principal(principal, ctx.responder, ctx.settings)
        if target.kind == "access_key":
            refuse_access_key(target.id, ctx.responder)

    def plan(self, ctx: ActionContext, target: Target) -> Change | None:
        """Read-only: the change `apply` would make, or None when the target is already done."""
        self.guard(ctx, target)
        with aws_errors(f"{self.name} plan {target.label}"):
            before = self.read(ctx, target)
        if self.is_done(ctx, target, before):
            return None
        return Change(action=self.name, target=target, description=self.describe(target, before), before=before,
                      requires_approval=self.requires_approval,
                      undo_supported=self.undo_unsupported_reason is None)

    def apply(self, ctx: ActionContext, target: Target) -> LedgerEntry | None:
        """Check, then act, then record. None when there was nothing to do."""
        if ctx.dry_run:
            raise GuardrailRefusal(f"{self.name}: the context is a dry run; apply needs dry_run=False")
        change = self.plan(ctx, target)
        if change is None:
            return self._interrupted(ctx, target)
        note = None
        earlier = ctx.ledger.unfinished(self.name, target.model_dump(mode="json"))
        if earlier is not None:  # an earlier run died during this change, which did not take (or not whole)
            with aws_errors(f"{self.name} clean up {target.label}"):
                note = self.after_interruption(ctx, target, earlier)
        ctx.ledger.intend(self.name, target.model_dump(mode="json"), change.before)
        with aws_errors(f"{self.name} {target.label}"):
            recorded = self.write(ctx, target, change.before)
        if recorded is not None:
            return recorded
        # Record the change before anything else can fail, so undo always knows about it; the
        # after-state is best effort (verify re-reads AWS and raises if the change did not take).
        try:
            with aws_errors(f"{self.name} {target.label}"):
                after = self.read(ctx, target)
        except AwsCallError as exc:
            after = {"unread": f"could not re-read after the change: {exc}"}
        return ctx.ledger.append(LedgerEntry(
            incident_id=ctx.incident_id, action=self.name, target=target.model_dump(mode="json"),
            before=change.before, after=after, flow_run_id=ctx.flow_run_id, dry_run=False,
            account_id=ctx.account_id, note=note,
        ))

    def after_interruption(self, ctx: ActionContext, target: Target, intent: Mapping[str, Any]) -> str:
        """Before writing again a change an earlier run began and never finished (`intent`): clear what
        it may have left half made; returns the ledger note. Most writes are whole or nothing in AWS;
        an action whose write has several calls overrides this."""
        return f"an earlier run was interrupted during this change (intended at {intent['at']}); it had not taken"

    def _interrupted(self, ctx: ActionContext, target: Target) -> LedgerEntry | None:
        """A change found done that an earlier run of this step made without recording it (killed
        between AWS's answer and the ledger line): record it now, from that run's intent; else None."""
        intent = ctx.ledger.unfinished(self.name, target.model_dump(mode="json"))
        if intent is None:
            return None
        with aws_errors(f"{self.name} {target.label}"):
            after = self.read(ctx, target)
        return ctx.ledger.append(LedgerEntry(
            incident_id=ctx.incident_id, action=self.name, target=target.model_dump(mode="json"),
            before=intent["before"], after=after, flow_run_id=ctx.flow_run_id, dry_run=False,
            account_id=ctx.account_id,
            note=f"recorded after an interrupted run: the change, intended at {intent['at']}, had taken"))

    def verify(self, ctx: ActionContext, target: Target) -> None:
        """Re-read AWS; raise `VerificationFailed` unless the target is in the desired state."""
        with aws_errors(f"{self.name} verify {target.label}"):
            state = self.read(ctx, target)
        if not self.is_done(ctx, target, state):
            raise VerificationFailed(f"{self.name} did not take on {target.label}: AWS shows {state}")

    def undo_preview(self, ctx: ActionContext, entry: LedgerEntry) -> dict[str, Any]:
        """Read-only: what `undo` would do to `entry`'s target (the dry run of an undo)."""
        if self.undo_unsupported_reason is not None:
            raise KeyResponseError(f"{self.name} cannot be undone: {self.undo_unsupported_reason}")
        target = Target.model_validate(entry.target)
        self.guard(ctx, target)
        with aws_errors(f"undo preview {self.name} {target.label}"):
            current = self.read(ctx, target)
        return {"current": current, "restores": entry.before, "would_change": current != entry.before}

    def undo(self, ctx: ActionContext, entry: LedgerEntry) -> LedgerEntry:
        """Restore `entry.before` and record the undo. Idempotent: an already-restored target is left alone."""
        if self.undo_unsupported_reason is not None:
            raise KeyResponseError(f"{self.name} cannot be undone: {self.undo_unsupported_reason}")
        if ctx.dry_run:
            raise GuardrailRefusal(f"{self.name}: the context is a dry run; undo needs dry_run=False")
        target = Target.model_validate(entry.target)
        self.guard(ctx, target)
        with aws_errors(f"undo {self.name} {target.label}"):
            current = self.read(ctx, target)
            if current != entry.before:
                self.revert(ctx, target, entry.before)
                after = self.read(ctx, target)
                if after != entry.before:
                    raise VerificationFailed(
                        f"undo of {self.name} on {target.label} did not restore {entry.before}: AWS shows {after}")
            else:
                after = current
        return ctx.ledger.append(LedgerEntry(
            incident_id=ctx.incident_id, kind="undo", action=self.name, target=entry.target, before=current,
            after=after, flow_run_id=ctx.flow_run_id, account_id=ctx.account_id, undoes=entry.entry_id,
        ))


# -- running a plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One (action, target) pair of a response plan."""

    action: Action
    target: Target

    @property
    def label(self) -> str:
        return f"{self.action.name}:{self.target.label}"


class RefusedStep(BaseModel):
    """A step of a plan a guardrail refused (a protected principal, the responder's own identity, an
    account out of scope, the root user): left out, the rest of the plan goes on, a human handles it."""

    model_config = ConfigDict(frozen=True)

    action: str
    target: Target
    reason: str

    @property
    def label(self) -> str:
        return f"{self.action}:{self.target.label}"


def screen_steps(ctx: ActionContext, steps: Sequence[Step]) -> tuple[list[Step], list[RefusedStep]]:
    """Split `steps` into those the guardrails allow and those they refuse, each refusal with its reason.

    Refusal is per step: one derived credential of a protected principal (a key minted on the
    break-glass user, a role of that name) leaves that step out and never stops the others. Each
    guardrail still runs again in `plan`, `apply` and `undo`, so a refused step can never be applied."""
    allowed: list[Step] = []
    refused: list[RefusedStep] = []
    for step in steps:
        try:
            step.action.guard(ctx.for_target(step.target), step.target)
        except GuardrailRefusal as exc:
            refused.append(RefusedStep(action=step.action.name, target=step.target, reason=str(exc)))
        else:
            allowed.append(step)
    return allowed, refused


def plan_steps(ctx: ActionContext, steps: Sequence[Step]) -> list[tuple[Step, Change | None]]:
    """Read-only: every step's change (None when already done), each in its target's account. Any
    guardrail refusal raises first."""
    return [(step, step.action.plan(ctx.for_target(step.target), step.target)) for step in steps]


def snapshot_evidence(
    ctx: ActionContext, steps: Iterable[Step], investigation: InvestigationRecord | Mapping[str, Any] | None = None
) -> list[str]:
    """Store the investigation and the before-state of every principal `steps` touch; return item names."""
    if ctx.evidence is None:
        return []
    stored: list[str] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    if isinstance(investigation, InvestigationRecord):  # as it was given: the fields it was built with
        investigation = investigation.model_dump(mode="json", exclude_unset=True)
    if investigation is not None:
        stored.append(ctx.evidence.put_json("investigation.json", dict(investigation)).name)
    seen: set[Principal] = set()
    for step in steps:
        principal = step.action.principal(step.target)
        if principal is None or principal in seen:
            continue
        seen.add(principal)
        here = ctx.for_target(step.target)
        iam = here.client("iam")
        with aws_errors(f"snapshot {principal.label}"):
            state = snapshot_role(iam, principal.name) if principal.kind == "role" else snapshot_user(iam, principal.name)
        where = "" if here.account_id == ctx.account_id else f"-{here.account_id}"
        stored.append(ctx.evidence.put_json(f"before-{stamp}-{principal.kind}-{principal.name}{where}.json",
                                            state).name)
    return stored


def store_ledger(ctx: ActionContext) -> None:
    """Copy the ledger to the evidence store (a new locked version each time in S3)."""
    if ctx.evidence is not None and ctx.ledger.path.exists():
        ctx.evidence.put("ledger.jsonl", ctx.ledger.read_bytes())


def apply_steps(
    ctx: ActionContext,
    steps: Sequence[Step],
    *,
    investigation: InvestigationRecord | None = None,
    after_each: Callable[[Step, LedgerEntry | None], None] | None = None,
) -> list[LedgerEntry]:
    """Apply and verify `steps` in order; return the ledger entries written by this run.

    Guardrails are checked for every step before anything changes, and the principals' before-state
    is stored as evidence before the first write. A rerun after a crash converges: steps already
    done plan to None and write nothing. `after_each` is called after every step (progress, tests).
    """
    planned = plan_steps(ctx, steps)
    written: list[LedgerEntry] = []
    if any(change is not None for _, change in planned):
        snapshot_evidence(ctx, [step for step, change in planned if change is not None], investigation)
    try:
        for step in steps:
            here = ctx.for_target(step.target)
            entry = step.action.apply(here, step.target)
            step.action.verify(here, step.target)
            if entry is not None:
                written.append(entry)
            if after_each is not None:
                after_each(step, entry)
    finally:
        if written:
            store_ledger(ctx)
    return written


@dataclass
class UndoReport:
    """What one replay of a ledger did, or (dry run) would do.

    `planned`: dry run only, every change that would be undone, newest first, with what AWS shows
    now (`undo_preview`). `undone`: the `undo` entries this run wrote. `skipped`: changes that
    cannot be undone (deletions, unknown actions), with the reason. `already_undone`: changes an
    earlier undo reversed, with that undo entry: a second undo leaves them alone. `unapproved`:
    changes to undo that the approval given did not show (the ledger grew since), left alone.
    """

    incident_id: str = ""
    dry_run: bool = False
    planned: list[tuple[LedgerEntry, dict[str, Any]]] = field(default_factory=list)
    undone: list[LedgerEntry] = field(default_factory=list)
    skipped: list[tuple[LedgerEntry, str]] = field(default_factory=list)
    already_undone: list[tuple[LedgerEntry, LedgerEntry]] = field(default_factory=list)
    #: The ledger's torn last line (a crash mid-append), left out of the replay and reported here.
    torn: TornLine | None = None
    unapproved: list[LedgerEntry] = field(default_factory=list)

    def summary(self) -> str:
        """One sentence: what was (or would be) undone, and what was left alone and why."""
        parts = []
        if self.dry_run:
            parts.append(f"dry run: would undo {len(self.planned)} change(s), newest first; nothing was changed")
        elif self.undone:
            restored = sum(1 for e in self.undone if e.before != e.after)
            parts.append(f"undone {len(self.undone)} change(s) ({restored} restored in AWS, "
                         f"{len(self.undone) - restored} already in their before-state)")
        else:
            parts.append("nothing to undo")
        if self.skipped:
            parts.append(f"{len(self.skipped)} change(s) cannot be undone")
        if self.already_undone:
            parts.append(f"{len(self.already_undone)} change(s) were already undone by an earlier run "
                         "and were left alone (nothing is undone twice)")
        if self.torn is not None:
            parts.append(self.torn.describe())
        if self.unapproved:
            parts.append(f"{len(self.unapproved)} change(s) were not in the approved undo and were left alone")
        return f"incident {self.incident_id}: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data (what `keyresponse undo --json` prints and the undo flow returns)."""
        def ref(entry: LedgerEntry) -> dict[str, Any]:
            return {"entry_id": entry.entry_id, "action": entry.action, "target": entry.target,
                    "label": Target.model_validate(entry.target).label, "applied_at": entry.applied_at}

        return {
            "incident_id": self.incident_id, "dry_run": self.dry_run, "summary": self.summary(),
            "planned": [ref(e) | preview for e, preview in self.planned],
            "undone": [e.model_dump(mode="json") | {"label": Target.model_validate(e.target).label,
                                                    "changed": e.before != e.after} for e in self.undone],
            "skipped": [ref(e) | {"reason": why} for e, why in self.skipped],
            "already_undone": [ref(e) | {"undone_at": u.applied_at, "undo_entry_id": u.entry_id}
                               for e, u in self.already_undone],
            "torn_line": self.torn.model_dump() if self.torn else None,
            "unapproved": [ref(e) for e in self.unapproved],
        }


def _ended_by(later: LedgerEntry, action: Action, earlier: LedgerEntry) -> bool:
    """Whether the change `later` (by `action`) ends the effect of the older change `earlier`."""
    if "*" in action.ends and later.target.get("kind") == "user":
        user = later.target.get("id")
        return _same_account(earlier, later) and bool(
            (earlier.target.get("kind") == "user" and earlier.target.get("id") == user)
            or earlier.target.get("user_name") == user)
    return (earlier.action in action.ends and _same_account(earlier, later)
            and (earlier.target.get("kind"), earlier.target.get("id")) == (later.target.get("kind"), later.target.get("id")))


def _same_account(one: LedgerEntry, other: LedgerEntry) -> bool:
    """Whether two entries' targets are in one account (as far as both say)."""
    def account(entry: LedgerEntry) -> Any:
        return (entry.target.get("data") or {}).get("account_id") or entry.account_id

    return account(one) is None or account(other) is None or account(one) == account(other)


def left_in_place(entries: Sequence[LedgerEntry], registry: Mapping[str, Action]) -> list[tuple[LedgerEntry, str | None]]:
    """The changes of a ledger still in effect, oldest first, each with why it cannot be undone
    (None when `undo_incident` reverses it).

    A change is no longer in effect once it is undone, or once a later change of the incident ended
    it (`Action.ends`: a revocation policy removed in recovery, a deactivated key deleted in
    eradication, anything on a user the incident deleted). A reversible change that ended an
    earlier one (the recovery's removal of that policy) is a return to the state before the
    incident, not a change left in place; an irreversible one (a deletion) stays listed.
    """
    applied = in_effect(entries)
    found: list[tuple[LedgerEntry, str | None]] = []
    for index, entry in enumerate(applied):
        action = registry.get(entry.action)
        if action is None:
            found.append((entry, f"no action named {entry.action} is registered"))
            continue
        if any(_ended_by(later, registry[later.action], entry) for later in applied[index + 1:]
               if later.action in registry):
            continue
        if action.undo_unsupported_reason is None and any(_ended_by(entry, action, earlier)
                                                          for earlier in applied[:index]):
            continue
        found.append((entry, action.undo_unsupported_reason))
    return found


def undo_incident(ctx: ActionContext, registry: Mapping[str, Action], *,
                  only: Collection[str] | None = None) -> UndoReport:
    """Replay the incident's ledger in reverse: undo every applied change that supports it.

    Changes that cannot be undone (deletions) are reported in `skipped` with the reason. In a
    dry-run context nothing changes: every change that would be undone is in `planned`, with the
    state AWS shows now. Changes an earlier run undid are in `already_undone` and left alone.
    With `only` (the entry ids an approval showed), any other change is left alone, in `unapproved`.
    """
    report = UndoReport(incident_id=ctx.incident_id, dry_run=ctx.dry_run,
                        already_undone=ctx.ledger.undone()[::-1])
    pending = ctx.ledger.to_undo()
    report.torn = ctx.ledger.torn
    for entry in pending:
        action = registry.get(entry.action)
        if action is None:
            report.skipped.append((entry, f"no action named {entry.action} is registered"))
        elif action.undo_unsupported_reason is not None:
            report.skipped.append((entry, action.undo_unsupported_reason))
        elif only is not None and entry.entry_id not in only:
            report.unapproved.append(entry)
        elif ctx.dry_run:
            try:
                preview = action.undo_preview(ctx.for_target(Target.model_validate(entry.target)), entry)
            except KeyResponseError as exc:  # listed all the same: the real run would meet it too
                preview = {"would_change": None, "problem": str(exc)}
            report.planned.append((entry, preview))
        else:
            report.undone.append(action.undo(ctx.for_target(Target.model_validate(entry.target)), entry))
    if report.undone:
        store_ledger(ctx)
    return report
