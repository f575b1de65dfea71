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

`containment_from_aws` plans containment when there is no investigation, from what IAM says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from keyresponse.errors import GuardrailRefusal, InputError
from keyresponse.guardrails import ROOT_STEPS, Principal, parse_principal
from keyresponse.keys import validate_access_key_id
from keyresponse.ledger import LedgerEntry
from tasks.actions import ActionContext, Step, Target, aws_errors, error_code, registry

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
    """Ordered steps of one phase, and what the planner could not plan and a human must do."""

    phase: Phase
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, action: str, target: Target) -> None:
        step = Step(registry()[action], target)
        if all(s.label != step.label for s in self.steps):
            self.steps.append(step)

    def ordered(self) -> ResponsePlan:
        """Steps sorted by registry order (stable within one action)."""
        rank = {name: i for i, name in enumerate(registry())}
        self.steps.sort(key=lambda s: rank[s.action.name])
        return self


def _name_of(value: str) -> str:
    """A user or role name from an ARN or a bare name."""
    return parse_principal(value).name


def _refuse_root(principal: Principal) -> None:
    if principal.kind == "root":
        raise GuardrailRefusal(ROOT_STEPS)


@dataclass
class _Facts:
    """What the phases share, read once from the investigation."""

    account_id: str | None
    region: str
    owner: str | None
    keys: list[tuple[str, str, str]]  # (key id, user name, kind)
    session_users: list[str]
    roles: list[str]
    created_users: list[str]
    persistence: list[Mapping[str, Any]]
    resources: list[Mapping[str, Any]]


def _facts(investigation: Mapping[str, Any], default_region: str) -> _Facts:
    if "access_key_id" not in investigation:
        raise InputError("the investigation has no access_key_id: is it the JSON of `keyresponse investigate`?")
    validate_access_key_id(str(investigation["access_key_id"]))
    top = str(investigation.get("principal_arn") or "")
    owner_principal = parse_principal(top) if top else None
    if owner_principal is not None:
        _refuse_root(owner_principal)
    owner = owner_principal.name if owner_principal and owner_principal.kind == "user" else None
    keys: list[tuple[str, str, str]] = []
    session_users: list[str] = []
    roles: list[str] = []
    credentials = list(investigation.get("credentials") or [])
    if not any(c.get("access_key_id") == investigation["access_key_id"] for c in credentials):
        credentials.insert(0, {"access_key_id": investigation["access_key_id"], "kind": "original",
                               "principal_arn": top})
    for cred in credentials:
        key_id = str(cred.get("access_key_id") or "")
        arn = str(cred.get("principal_arn") or (top if cred.get("kind") == "original" else ""))
        principal = parse_principal(arn) if arn else None
        if principal is not None:
            _refuse_root(principal)
        event = str(cred.get("created_by_event") or "")
        if key_id.startswith("AKIA") and cred.get("kind") in ("original", "access_key"):
            if principal is None or principal.kind != "user":
                raise InputError(f"credential {key_id} has no user principal_arn; cannot deactivate it")
            keys.append((key_id, principal.name, str(cred.get("kind"))))
        elif cred.get("kind") == "session" or key_id.startswith("ASIA") or event in _SESSION_EVENTS_ON_USER:
            if event == "AssumeRole" or (principal is not None and principal.kind == "role"):
                if principal is not None and principal.kind == "role":
                    roles.append(principal.name)
            else:
                parent_user = principal.name if principal is not None and principal.kind == "user" else owner
                if parent_user:
                    session_users.append(parent_user)
    persistence = list(investigation.get("persistence") or [])
    resources = list(investigation.get("resources_created") or [])
    created_users = [_name_of(str(p["resource"])) for p in persistence
                     if p.get("event_name") in _USER_EVENTS and p.get("resource")]
    created_users += [_name_of(str(r["id"])) for r in resources
                      if _RESOURCE_KINDS.get(str(r.get("type", "")).lower()) == "user" and r.get("id")]
    regions = list(investigation.get("regions") or [])
    return _Facts(account_id=investigation.get("account_id"), region=regions[0] if regions else default_region,
                  owner=owner, keys=keys, session_users=session_users, roles=roles,
                  created_users=list(dict.fromkeys(created_users)), persistence=persistence, resources=resources)


def _data(facts: _Facts, **extra: Any) -> dict[str, Any]:
    return {**({"account_id": facts.account_id} if facts.account_id else {}), **extra}


def _revoked_principals(facts: _Facts) -> list[tuple[str, str]]:
    users = [user for _, user, _ in facts.keys] + facts.session_users
    return [("user", u) for u in dict.fromkeys(users)] + [("role", r) for r in dict.fromkeys(facts.roles)]


def _containment(facts: _Facts, plan: ResponsePlan) -> None:
    for key_id, user, _ in facts.keys:
        plan.add("deactivate_access_key", Target(kind="access_key", id=key_id, user_name=user, data=_data(facts)))
    for kind, name in _revoked_principals(facts):
        plan.add("attach_session_revocation_policy", Target(kind=kind, id=name, data=_data(facts)))
    for item in facts.persistence:
        event, resource = item.get("event_name"), str(item.get("resource") or "")
        if event in _CONSOLE_EVENTS and resource:
            plan.add("delete_login_profile", Target(kind="user", id=_name_of(resource), data=_data(facts)))
        if event in _MFA_EVENTS and resource:
            user = str(item.get("user_name") or facts.owner or "")
            if not user:
                plan.notes.append(f"MFA device {resource}: its user is unknown; deactivate it by hand")
                continue
            plan.add("deactivate_mfa_device", Target(kind="mfa_device", id=resource, user_name=user,
                                                     data=_data(facts)))
    for kind, name in _revoked_principals(facts):
        plan.add("tag_principal", Target(kind=kind, id=name, data=_data(facts)))


def _eradication(facts: _Facts, plan: ResponsePlan) -> None:
    for key_id, user, _ in facts.keys:
        if user not in facts.created_users:
            plan.add("delete_access_key", Target(kind="access_key", id=key_id, user_name=user, data=_data(facts)))
    for user in facts.created_users:
        plan.add("delete_user", Target(kind="user", id=user, data=_data(facts)))
    for item in facts.persistence:
        if item.get("event_name") not in _TRUST_EVENTS or not item.get("resource"):
            continue
        role = _name_of(str(item["resource"]))
        prior = item.get("before") or item.get("prior_policy") or item.get("previous_policy")
        if prior is None:
            plan.notes.append(f"role {role}: its trust policy was changed but the prior policy is unknown; "
                              "review it and restore by hand (or add `prior_policy` to the persistence entry)")
            continue
        plan.add("restore_trust_policy", Target(kind="role", id=role, data=_data(facts, trust_policy=prior)))
    for item in facts.resources:
        kind = _RESOURCE_KINDS.get(str(item.get("type", "")).lower()) or _RESOURCE_KINDS.get(
            str(item.get("event_name", "")).lower())
        if kind is None or kind not in _ERADICATE or kind == "user":
            if kind is None:
                plan.notes.append(f"resource {item.get('type')} {item.get('id')}: no eradication action; review by hand")
            continue
        extra = {"group_id": item["group_id"]} if item.get("group_id") else {}
        plan.add(_ERADICATE[kind], Target(kind=kind, id=str(item["id"]), region=item.get("region") or facts.region,
                                          data=_data(facts, **extra)))


def _recovery(facts: _Facts, plan: ResponsePlan, ledger_entries: Sequence[LedgerEntry]) -> None:
    if facts.owner and facts.owner not in facts.created_users:
        plan.add("create_replacement_access_key", Target(kind="user", id=facts.owner, data=_data(facts)))
    created_console = {_name_of(str(p["resource"])) for p in facts.persistence
                       if p.get("event_name") == "CreateLoginProfile" and p.get("resource")}
    restore = {_name_of(str(p["resource"])) for p in facts.persistence
               if p.get("event_name") == "UpdateLoginProfile" and p.get("resource")}
    restore |= {str(e.target["id"]) for e in ledger_entries
                if e.kind == "apply" and e.action == "delete_login_profile" and e.before.get("login_profile")}
    for user in sorted(restore - created_console - set(facts.created_users)):
        plan.add("restore_login_profile", Target(kind="user", id=user, data=_data(facts)))
    for kind, name in _revoked_principals(facts):
        if not (kind == "user" and name in facts.created_users):
            plan.add("remove_session_revocation_policy", Target(kind=kind, id=name, data=_data(facts)))


def plan_response(
    investigation: Mapping[str, Any],
    phase: Phase,
    *,
    ledger_entries: Iterable[LedgerEntry] = (),
    default_region: str = "us-east-1",
) -> ResponsePlan:
    """The ordered steps of `phase` for an investigation result (a dict of the shape in docs/architecture.md).

    Raises `GuardrailRefusal` when the compromised principal is the root user (with the manual
    steps), and `InputError` when the investigation lacks what a step needs.
    """
    if phase not in PHASES:
        raise InputError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    facts = _facts(investigation, default_region)
    plan = ResponsePlan(phase)
    if phase == "containment":
        _containment(facts, plan)
    elif phase == "eradication":
        _eradication(facts, plan)
    else:
        _recovery(facts, plan, list(ledger_entries))
    return plan.ordered()


def investigation_from_aws(ctx: ActionContext, access_key_id: str) -> dict[str, Any]:
    """A minimal investigation (the shape in docs/architecture.md) from what IAM itself says about the key.

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
        persistence.append({"event_name": "CreateLoginProfile", "event_time": profile_created.isoformat(),
                            "resource": user["Arn"], "access_key_id": None,
                            "inferred": "login profile created after the compromised key"})
    return {
        "access_key_id": key, "account_id": ctx.account_id, "principal_arn": user["Arn"],
        "credentials": [{"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
                         "principal_arn": user["Arn"]}],
        "principals": [user["Arn"]], "persistence": persistence, "resources_created": [], "regions": [],
        "logging_gaps": ["no investigation: planned from IAM state only (no CloudTrail)"], "engine": "aws",
    }
