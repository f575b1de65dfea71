"""The planner: from an investigation result (docs/architecture.md, "Investigation result") to ordered steps.

    plan = plan_response(investigation, "containment")
    for step in plan.steps: ...              # (action, target) pairs, in the order to apply them
    plan.notes                               # what needs a human (e.g. a backdoor with no prior policy)

Containment, from `credentials`, `persistence` and `principal_arn`:
  * deactivate the original key and every derived access key (each key alone, never "all keys
    of the user");
  * revoke sessions (inline deny on `aws:TokenIssueTime`) on every user owning a compromised key
    (GetSessionToken / GetFederationToken sessions) and on every role the attacker assumed;
  * delete the console password where the attacker created or changed it (CreateLoginProfile /
    UpdateLoginProfile);
  * deactivate MFA devices the attacker enabled (EnableMFADevice);
  * tag every principal touched with the incident id.
Eradication: delete derived keys and the original key, delete attacker-created users, restore
trust policies the attacker changed (when the prior document is known), delete Lambda functions
and key pairs, revoke ingress rules, snapshot-and-terminate instances — each in its own region.
Recovery: a replacement key for the legitimate owner, a new console password where the
attacker changed the owner's, and the session-revocation policies come off.

Every target keeps its account (`Target.data["account_id"]`): the account of the principal's ARN,
the incident's when the investigation names none. A principal in an account that is neither the
incident's nor a member account the responder acts in (`settings.accounts_in_scope`) is never a
target — the attacker can assume a role of the same name as one of ours in an account it owns — and
is reported as attacker infrastructure (`ResponsePlan.attacker_infrastructure`, and the notes).

`investigation_from_aws` plans containment when there is no investigation, from what IAM says.

Size: the facts of the investigation and the rules that turn them into steps are read together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from keyresponse.errors import GuardrailRefusal, InputError
from keyresponse.guardrails import (
    ROOT_STEPS,
    ForeignPrincipal,
    Principal,
    foreign_principals,
    ours,
    parse_principal,
)
from keyresponse.keys import validate_access_key_id
from keyresponse.ledger import LedgerEntry
from keyresponse.model import CredentialRecord, InvestigationRecord, PersistenceEvent, ResourceCreated, Window
from tasks.actions import ActionContext, Step, Target, aws_errors, error_code
from tasks.registry import registry

Phase = Literal["containment", "eradication", "recovery"]
PHASES: tuple[Phase, ...] = ("containment", "eradication", "recovery")

_SESSION_EVENTS_ON_USER = ("GetSessionToken", "GetFederationToken")
_CONSOLE_EVENTS = ("CreateLoginProfile", "UpdateLoginProfile")
_MFA_EVENTS = ("EnableMFADevice",)
_USER_EVENTS = ("CreateUser",)
_TRUST_EVENTS = ("UpdateAssumeRolePolicy",)

#: resources_created `type` (or its `event_name`) -> (eradication action, target kind)
_RESOURCE_KINDS: dict[str, str] = {
    "lambda_function": "lambda_function", "lambda": "lambda_function", "aws::lambda::function": "lambda_function",
    "createfunction": "lambda_function", "createfunction20150331": "lambda_function",
    "key_pair": "key_pair", "keypair": "key_pair", "aws::ec2::keypair": "key_pair",
    "createkeypair": "key_pair", "importkeypair": "key_pair",
    "instance": "instance", "ec2_instance": "instance", "aws::ec2::instance": "instance", "runinstances": "instance",
    "security_group_rule": "security_group_rule", "security_group_ingress": "security_group_rule",
    "aws::ec2::securitygroupingress": "security_group_rule", "authorizesecuritygroupingress": "security_group_rule",
    "user": "user", "iam_user": "user", "aws::iam::user": "user", "createuser": "user",
    "access_key": "access_key", "aws::iam::accesskey": "access_key",
}
_ERADICATE = {"lambda_function": "delete_lambda_function", "key_pair": "delete_key_pair",
              "instance": "terminate_instance", "security_group_rule": "revoke_security_group_ingress",
              "user": "delete_user"}


@dataclass
class ResponsePlan:
    """Ordered steps of one phase, and what the planner could not plan and a human must do.

    `attacker_infrastructure`: principals of the incident in accounts the responder does not act in
    (keyresponse.guardrails.foreign_principals), never targets; each is also in `notes`."""

    phase: Phase
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attacker_infrastructure: list[ForeignPrincipal] = field(default_factory=list)

    def add(self, action: str, target: Target) -> None:
        step = Step(registry()[action], target)
        if all((s.label, s.target.data.get("account_id")) != (step.label, target.data.get("account_id"))
               for s in self.steps):
            self.steps.append(step)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def ordered(self) -> ResponsePlan:
        """Steps sorted by registry order (stable within one action)."""
        rank = {name: i for i, name in enumerate(registry())}
        self.steps.sort(key=lambda s: rank[s.action.name])
        return self


@dataclass
class _Facts:
    """What the phases share, read once from the investigation. Every principal keeps its account (the
    incident's when its record names none): a target is acted on in its own account, never by its name
    alone in ours."""

    account_id: str | None
    accounts: list[str]
    region: str
    owner: Principal | None
    keys: list[tuple[str, Principal, str]]  # (key id, its user, kind)
    session_users: list[Principal]
    roles: list[Principal]
    created_users: list[Principal]
    persistence: list[PersistenceEvent]
    resources: list[ResourceCreated]
    foreign: list[ForeignPrincipal]
    #: the account of each credential's principal, for what the credential did (persistence, resources)
    key_accounts: dict[str, str]
    notes: list[str]

    def at_home(self, principal: Principal) -> Principal:
        """`principal` in its own account, the incident's when it names none."""
        if principal.account_id is None and self.account_id:
            return Principal(principal.kind, principal.name, self.account_id)
        return principal

    def acts_in(self, account_id: str | None) -> bool:
        return ours(account_id, self.account_id, self.accounts)

    def account_of(self, item: PersistenceEvent | ResourceCreated, resource: str = "") -> str | None:
        """Where a persistence entry or a created resource is: its ARN's account, else the account of
        the credential that made it, else the incident's."""
        if resource.startswith("arn:"):
            parts = resource.split(":")
            if len(parts) > 4 and parts[4]:
                return parts[4]
        return self.key_accounts.get(item.access_key_id or "") or self.account_id


def _facts(investigation: InvestigationRecord, default_region: str, accounts: Sequence[str]) -> _Facts:
    validate_access_key_id(investigation.access_key_id)
    home = investigation.account_id or None
    top = investigation.principal_arn or ""
    owner_principal = parse_principal(top) if top else None
    if owner_principal is not None and owner_principal.kind == "root":
        raise GuardrailRefusal(ROOT_STEPS)  # the investigated key itself: nothing here can contain it
    facts = _Facts(account_id=home, accounts=list(accounts), region=default_region, owner=None, keys=[],
                   session_users=[], roles=[], created_users=[], persistence=[], resources=[], foreign=[],
                   key_accounts={}, notes=[])
    if owner_principal is not None and owner_principal.kind == "user":
        facts.owner = facts.at_home(owner_principal)
    credentials = list(investigation.credentials)
    if not any(c.access_key_id == investigation.access_key_id for c in credentials):
        credentials.insert(0, CredentialRecord(access_key_id=investigation.access_key_id, kind="original",
                                               created_by_event=None, parent=None, principal_arn=top or None))

    def arn_of(cred: CredentialRecord) -> str:
        return cred.principal_arn or (top if cred.kind == "original" else "")

    facts.foreign = foreign_principals(
        [{"access_key_id": c.access_key_id, "principal_arn": arn_of(c) or None} for c in credentials], home, accounts)
    foreign_keys = {key for f in facts.foreign for key in f.access_key_ids}
    for cred in credentials:
        key_id = cred.access_key_id
        arn = arn_of(cred)
        principal = facts.at_home(parse_principal(arn)) if arn else None
        if principal is not None and principal.account_id:
            facts.key_accounts[key_id] = principal.account_id
        if key_id in foreign_keys:
            continue  # the attacker's own infrastructure: reported (`foreign`), never a target
        if principal is not None and principal.kind == "root":
            facts.notes.append(f"credential {key_id} belongs to the root user: {ROOT_STEPS}")
            continue
        event = cred.created_by_event or ""
        if key_id.startswith("AKIA") and cred.kind in ("original", "access_key"):
            if principal is None or principal.kind != "user":
                raise InputError(f"credential {key_id} has no user principal_arn; cannot deactivate it")
            facts.keys.append((key_id, principal, cred.kind))
        elif cred.kind == "session" or key_id.startswith("ASIA") or event in _SESSION_EVENTS_ON_USER:
            if event == "AssumeRole" or (principal is not None and principal.kind == "role"):
                if principal is not None and principal.kind == "role":
                    facts.roles.append(principal)
            else:
                parent_user = principal if principal is not None and principal.kind == "user" else facts.owner
                if parent_user is not None:
                    facts.session_users.append(parent_user)
    facts.persistence = list(investigation.persistence)
    facts.resources = list(investigation.resources_created)
    created = [_principal_of(facts, p, p.resource, "user") for p in facts.persistence
               if p.event_name in _USER_EVENTS and p.resource]
    created += [_principal_of(facts, r, r.id, "user") for r in facts.resources
                if _RESOURCE_KINDS.get(r.type.lower()) == "user" and r.id]
    facts.created_users = list(dict.fromkeys(created))
    regions = list(investigation.regions)
    facts.region = regions[0] if regions else default_region
    return facts


def _principal_of(facts: _Facts, item: PersistenceEvent | ResourceCreated, resource: str, kind: str) -> Principal:
    """The user or role a persistence entry or a created resource names, in its account."""
    named = parse_principal(resource, kind=kind)
    return Principal(named.kind, named.name, named.account_id or facts.account_of(item, resource))


def _data(account_id: str | None, **extra: Any) -> dict[str, Any]:
    return {**({"account_id": account_id} if account_id else {}), **extra}


def _revoked_principals(facts: _Facts) -> list[Principal]:
    users = [user for _, user, _ in facts.keys] + facts.session_users
    return list(dict.fromkeys(users)) + list(dict.fromkeys(facts.roles))


def _target(principal: Principal, **extra: Any) -> Target:
    return Target(kind=principal.kind, id=principal.name, data=_data(principal.account_id, **extra))


def _acted_on(facts: _Facts, plan: ResponsePlan, principal: Principal, what: str) -> bool:
    """Whether the planner may act on `principal`: one in an account the responder does not act in is
    left alone, with a note (the attacker's own, like the principals of `facts.foreign`)."""
    if facts.acts_in(principal.account_id):
        return True
    plan.note(f"{what}: {principal.label} is outside the incident's account and the accounts the responder "
              "acts in: left alone (the attacker's own infrastructure)")
    return False


def _start(facts: _Facts, plan: ResponsePlan) -> None:
    plan.attacker_infrastructure = list(facts.foreign)
    for foreign in facts.foreign:
        plan.note(f"attacker infrastructure: {foreign.note} (credentials {', '.join(foreign.access_key_ids)})")
    for note in facts.notes:
        plan.note(note)


def _containment(facts: _Facts, plan: ResponsePlan) -> None:
    for key_id, user, _ in facts.keys:
        plan.add("deactivate_access_key", Target(kind="access_key", id=key_id, user_name=user.name,
                                                 data=_data(user.account_id)))
    for principal in _revoked_principals(facts):
        plan.add("attach_session_revocation_policy", _target(principal))
    for item in facts.persistence:
        event, resource = item.event_name, item.resource or ""
        if event in _CONSOLE_EVENTS and resource:
            user = _principal_of(facts, item, resource, "user")
            if _acted_on(facts, plan, user, f"{event} of {user.name}"):
                plan.add("delete_login_profile", _target(user))
        if event in _MFA_EVENTS and resource:
            named = item.user_name or (facts.owner.name if facts.owner else "")
            if not named:
                plan.note(f"MFA device {resource}: its user is unknown; deactivate it by hand")
                continue
            user = _principal_of(facts, item, named, "user")
            if _acted_on(facts, plan, user, f"MFA device {resource}"):
                plan.add("deactivate_mfa_device", Target(kind="mfa_device", id=resource, user_name=user.name,
                                                         data=_data(user.account_id)))
    for principal in _revoked_principals(facts):
        plan.add("tag_principal", _target(principal))


def _eradication(facts: _Facts, plan: ResponsePlan) -> None:
    for key_id, user, _ in facts.keys:
        if user not in facts.created_users:
            plan.add("delete_access_key", Target(kind="access_key", id=key_id, user_name=user.name,
                                                 data=_data(user.account_id)))
    for user in facts.created_users:
        if _acted_on(facts, plan, user, f"user {user.name} the attacker created"):
            plan.add("delete_user", _target(user))
    for item in facts.persistence:
        if item.event_name not in _TRUST_EVENTS or not item.resource:
            continue
        role = _principal_of(facts, item, item.resource, "role")
        prior = item.prior_policy
        if not prior:
            plan.note(f"role {role.name}: its trust policy was changed but the prior policy is unknown; "
                      "review it and restore by hand (or add `prior_policy` to the persistence entry)")
            continue
        if _acted_on(facts, plan, role, f"trust policy of role {role.name}"):
            plan.add("restore_trust_policy", _target(role, trust_policy=prior))
    for res in facts.resources:
        kind = _RESOURCE_KINDS.get(res.type.lower()) or _RESOURCE_KINDS.get(res.event_name.lower())
        if kind is None or kind not in _ERADICATE or kind == "user":
            if kind is None:
                plan.note(f"resource {res.type} {res.id}: no eradication action; review by hand")
            continue
        account = facts.account_of(res, res.id)
        if not facts.acts_in(account):
            plan.note(f"{kind} {res.id}: in account {account}, outside the incident's account and the accounts "
                      "the responder acts in: left alone")
            continue
        extra = {"group_id": res.group_id} if res.group_id else {}
        plan.add(_ERADICATE[kind], Target(kind=kind, id=res.id, region=res.region or facts.region,
                                          data=_data(account, **extra)))


def _recovery(facts: _Facts, plan: ResponsePlan, ledger_entries: Sequence[LedgerEntry]) -> None:
    if facts.owner is not None and facts.owner not in facts.created_users:
        plan.add("create_replacement_access_key", _target(facts.owner))
    created_console = {_principal_of(facts, p, p.resource, "user") for p in facts.persistence
                       if p.event_name == "CreateLoginProfile" and p.resource}
    restore = {_principal_of(facts, p, p.resource, "user") for p in facts.persistence
               if p.event_name == "UpdateLoginProfile" and p.resource}
    restore |= {Principal("user", str(e.target["id"]), e.target.get("data", {}).get("account_id") or facts.account_id)
                for e in ledger_entries
                if e.kind == "apply" and e.action == "delete_login_profile" and e.before.get("login_profile")}
    for user in sorted(restore - created_console - set(facts.created_users),
                       key=lambda p: (p.name, p.account_id or "")):
        if _acted_on(facts, plan, user, f"console password of {user.name}"):
            plan.add("restore_login_profile", _target(user))
    for principal in _revoked_principals(facts):
        if not (principal.kind == "user" and principal in facts.created_users):
            plan.add("remove_session_revocation_policy", _target(principal))


def plan_response(
    investigation: InvestigationRecord,
    phase: Phase,
    *,
    ledger_entries: Iterable[LedgerEntry] = (),
    default_region: str = "us-east-1",
    accounts_in_scope: Iterable[str] | None = None,
) -> ResponsePlan:
    """The ordered steps of `phase` for an investigation (`keyresponse.model.InvestigationRecord`).

    Every target carries its account (`data.account_id`): the account of its ARN in the investigation,
    the incident's when the investigation names none. A principal of an account that is neither the
    incident's nor one of `accounts_in_scope` (default: `settings.accounts_in_scope`, the member
    accounts the responder acts in) is never a target: it is the attacker's, listed in
    `attacker_infrastructure` and the notes.

    Raises `GuardrailRefusal` when the investigated key's principal is the root user (with the manual
    steps; a derived credential of the root user is a note), and `InputError` when the investigation
    lacks what a step needs.
    """
    if phase not in PHASES:
        raise InputError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    if accounts_in_scope is None:
        from keyresponse.settings import get_settings

        accounts_in_scope = get_settings().accounts_in_scope
    facts = _facts(investigation, default_region, list(accounts_in_scope))
    plan = ResponsePlan(phase)
    _start(facts, plan)
    if phase == "containment":
        _containment(facts, plan)
    elif phase == "eradication":
        _eradication(facts, plan)
    else:
        _recovery(facts, plan, list(ledger_entries))
    return plan.ordered()


def key_only_investigation(access_key_id: str, account_id: str | None, principal_arn: str | None, *,
                           at: str, engine: str, logging_gaps: Sequence[str] = (),
                           persistence: Sequence[PersistenceEvent] = ()) -> InvestigationRecord:
    """An investigation that knows only the key and its owner (no logs read): containment planned before or
    without an analysis. Its window is the instant `at` (nothing was read), its verdict `unknown`."""
    return InvestigationRecord(
        access_key_id=access_key_id, account_id=account_id, principal_arn=principal_arn,
        window=Window(start=at, end=at), first_seen=None, last_seen=None, event_count=0, source_ips=[], regions=[],
        credentials=[CredentialRecord(access_key_id=access_key_id, kind="original", created_by_event=None, parent=None,
                                      principal_arn=principal_arn)],
        principals=[principal_arn] if principal_arn else [], persistence=list(persistence), data_access=[],
        resources_created=[], recon_errors=[], severity="P1", verdict="unknown", logging_gaps=list(logging_gaps),
        bytes_scanned=0, engine=engine)


def investigation_from_aws(ctx: ActionContext, access_key_id: str) -> InvestigationRecord:
    """A minimal investigation (`key_only_investigation`) from what IAM itself says about the key.

    The owner comes from `iam:GetAccessKeyLastUsed`. Without CloudTrail nothing is known about
    derived credentials, so `credentials` holds only the original key, and the containment plan
    revokes the owner's sessions (any GetSessionToken / GetFederationToken session of the user).
    The console password counts as attacker persistence only when it was created after the key
    (an attacker holding the key could have made it; a password older than the key cannot be the
    attacker's creation) — it is then deleted, and recovery restores one if the owner needs it.
    A password the attacker merely changed is invisible without logs: run `investigate` for that.
    """
    key = validate_access_key_id(access_key_id)
    iam = ctx.client("iam")
    with aws_errors(f"looking up the owner of {key}"):
        try:
            owner = iam.get_access_key_last_used(AccessKeyId=key).get("UserName")
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                raise InputError(f"no IAM user in account {ctx.account_id} holds access key {key} "
                                 "(deleted, another account, or the root user's key)") from exc
            raise
        if not owner or owner in ("root", "<root_account>"):
            raise GuardrailRefusal(ROOT_STEPS)
        user = iam.get_user(UserName=owner)["User"]
        keys = iam.list_access_keys(UserName=owner)["AccessKeyMetadata"]
        key_created = next((k["CreateDate"] for k in keys if k["AccessKeyId"] == key), None)
        try:
            profile_created = iam.get_login_profile(UserName=owner)["LoginProfile"]["CreateDate"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            profile_created = None
    persistence = []
    if profile_created is not None and key_created is not None and profile_created > key_created:
        persistence.append(PersistenceEvent(event_name="CreateLoginProfile", event_time=profile_created.isoformat(),
                                            resource=user["Arn"], access_key_id=None,
                                            detail="inferred: login profile created after the compromised key"))
    return key_only_investigation(key, ctx.account_id, user["Arn"], at=f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
                                  engine="aws", persistence=persistence,
                                  logging_gaps=["no investigation: planned from IAM state only (no CloudTrail)"])
