"""Guardrails: what no action may touch, whatever the plan says.

* the responder's own identity (its user, its role, its access key) — found with
  `sts:GetCallerIdentity`, so a responder can never lock itself out mid-incident;
* protected (break-glass) principals named in `settings.protected_principals`;
* accounts outside `settings.accounts_in_scope` (empty: only the responder's own account);
* the root user, whose credentials no IAM API can manage: the refusal says what to do by hand.

Each refusal raises `GuardrailRefusal` whose message is the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyresponse.errors import GuardrailRefusal
from keyresponse.settings import Settings

ROOT_STEPS = (
    "the root user cannot be contained through IAM APIs; escalate and act by hand: sign in as root "
    "(with the account owner), delete the root access keys under Security credentials, change the root "
    "password, enable (or reset) root MFA, review account contact details, and open a case with AWS Support"
)

_ARN = re.compile(r"^arn:aws[\w-]*:(?P<service>iam|sts)::(?P<account>[0-9]{12}):(?P<resource>.+)$", re.ASCII)


@dataclass(frozen=True)
class Principal:
    """An IAM principal as guardrails see it. `kind` is user, role or root."""

    kind: str
    name: str
    account_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" in account {self.account_id}" if self.account_id else "")


def parse_principal(arn_or_name: str, *, kind: str = "user") -> Principal:
    """A `Principal` from an ARN (user, role, assumed-role, root) or from a bare name of `kind`."""
    match = _ARN.fullmatch(arn_or_name)
    if not match:
        if arn_or_name in ("root", "<root_account>"):
            return Principal("root", "root")
        return Principal(kind, arn_or_name)
    account, resource = match["account"], match["resource"]
    if resource == "root":
        return Principal("root", "root", account)
    head, _, rest = resource.partition("/")
    name = rest.rsplit("/", 1)[-1] if head in ("user", "role") else rest.split("/", 1)[0]
    if head == "user":
        return Principal("user", name, account)
    if head in ("role", "assumed-role"):
        return Principal("role", name, account)
    if head == "federated-user":
        return Principal("federated-user", name, account)
    return Principal(head, rest, account)


@dataclass(frozen=True)
class Responder:
    """Who we are, from `sts:GetCallerIdentity` and the credentials in use."""

    arn: str
    account_id: str
    access_key_id: str | None

    @property
    def principal(self) -> Principal:
        return parse_principal(self.arn)


def refuse_account(account_id: str | None, responder: Responder, settings: Settings) -> None:
    """Raise unless `account_id` is in scope (the responder's own account when the scope list is empty)."""
    if account_id is None:
        return
    scope = settings.accounts_in_scope or [responder.account_id]
    if account_id not in scope:
        raise GuardrailRefusal(
            f"account {account_id} is outside the accounts in scope ({', '.join(scope)}); "
            "add it to KEYRESPONSE_ACCOUNTS_IN_SCOPE to act there"
        )


def refuse_principal(principal: Principal, responder: Responder, settings: Settings) -> None:
    """Raise `GuardrailRefusal` if `principal` is root, the responder itself, protected, or out of scope."""
    if principal.kind == "root":
        raise GuardrailRefusal(ROOT_STEPS)
    refuse_account(principal.account_id, responder, settings)
    own = responder.principal
    if own.kind == principal.kind and own.name == principal.name:
        raise GuardrailRefusal(
            f"{principal.label} is the responder's own identity ({responder.arn}); "
            "act from another identity if it really is compromised"
        )
    if any(_same(principal, entry) for entry in settings.protected_principals):
        raise GuardrailRefusal(
            f"{principal.label} is a protected principal (KEYRESPONSE_PROTECTED_PRINCIPALS); "
            "a break-glass identity is handled by hand"
        )


def _same(principal: Principal, protected: str) -> bool:
    """Does a protected entry (a bare name, or an ARN) name `principal`? Accounts must agree when both are known."""
    if not protected.startswith("arn:"):
        return protected == principal.name
    other = parse_principal(protected)
    return (other.kind, other.name) == (principal.kind, principal.name) and (
        other.account_id is None or principal.account_id is None or other.account_id == principal.account_id)


def refuse_access_key(access_key_id: str, responder: Responder) -> None:
    """Raise if `access_key_id` is the key the responder itself is signing with."""
    if responder.access_key_id and access_key_id == responder.access_key_id:
        raise GuardrailRefusal(
            f"access key {access_key_id} is the responder's own key ({responder.arn}); "
            "act from another identity if it really is compromised"
        )
