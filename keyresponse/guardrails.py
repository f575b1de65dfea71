"""Guardrails: what no action may touch, whatever the plan says.

* the responder's own identity (its user, its role, its access key) — found with
  `sts:GetCallerIdentity`, so a responder can never lock itself out mid-incident;
* protected (break-glass) principals named in `settings.protected_principals` (`ProtectedPrincipal`
  reads each entry: a bare name, `user/NAME` or `role/NAME`, or an ARN, which also names the account);
* accounts outside `settings.accounts_in_scope` (empty: only the responder's own account); a
  principal of such an account that the investigation found (a role the attacker assumed in an
  account it owns) is the attacker's own infrastructure (`foreign_principals`): reported, never a
  target;
* the root user, whose credentials no IAM API can manage: the refusal says what to do by hand.

Each refusal raises `GuardrailRefusal` whose message is the reason.

Names are compared as IAM compares them for uniqueness: without regard to case (IAM refuses a
user `Break-Glass` beside a user `break-glass`, so both spell the same principal, and a protected
`break-glass` protects `Break-Glass`). A principal's kind and account are compared whenever both
sides know them: a protected `role/ops` leaves a user `ops` alone, and a protected ARN protects that
account's principal only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from keyresponse.errors import GuardrailRefusal

if TYPE_CHECKING:  # the settings validate their protected principals here: a runtime import would be a cycle
    from keyresponse.settings import Settings

ROOT_STEPS = (
    "the root user cannot be contained through IAM APIs; escalate and act by hand: sign in as root "
    "(with the account owner), delete the root access keys under Security credentials, change the root "
    "password, enable (or reset) root MFA, review account contact details, and open a case with AWS Support"
)

#: How a plan shows a step the guardrails refused: its summary is this, then the reason (the plan the
#: approver sees, the incident record's plan and the report all say it so).
REFUSAL_PREFIX = "refused by the guardrails: "

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

    def same_as(self, other: Principal) -> bool:
        """The same IAM principal: same kind, the same name whatever its case, and the same account when
        both accounts are known."""
        return (self.kind == other.kind and self.name.casefold() == other.name.casefold()
                and (self.account_id is None or other.account_id is None or self.account_id == other.account_id))


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


_KIND_NAME = re.compile(r"^(?P<kind>user|role)/(?:[^/]+/)*(?P<name>[^/]+)$")


def _kind(text: str) -> Literal["user", "role"]:
    return "role" if text == "role" else "user"


class ProtectedPrincipal(BaseModel):
    """One entry of `settings.protected_principals`: a name, with the kind and the account when it says them.

    Spellings: `break-glass` (a user or a role of that name, in any account), `user/break-glass` or
    `role/break-glass` (that kind only, any account), or an ARN: `arn:aws:iam::111122223333:role/break-glass`
    (that kind in that account; `*` as the account means any). A path in front of the name is ignored,
    as IAM's uniqueness ignores it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Literal["user", "role"] | None = None
    account_id: str | None = None

    @classmethod
    def parse(cls, entry: str) -> ProtectedPrincipal:
        """Raise `ValueError` on an entry that names no IAM user or role."""
        text = entry.strip()
        if not text:
            raise ValueError("an empty protected principal")
        if text.startswith("arn:"):
            match = re.match(r"^arn:aws[\w-]*:iam::(?P<account>\d{12}|\*):(?P<resource>.+)$", text)
            kind_name = _KIND_NAME.match(match["resource"]) if match else None
            if match is None or kind_name is None:
                raise ValueError(f"{entry!r} is not the ARN of an IAM user or role")
            account = None if match["account"] == "*" else match["account"]
            return cls(name=kind_name["name"], kind=_kind(kind_name["kind"]), account_id=account)
        kind_name = _KIND_NAME.match(text)
        if kind_name is not None:
            return cls(name=kind_name["name"], kind=_kind(kind_name["kind"]))
        if "/" in text or ":" in text:
            raise ValueError(f"{entry!r} is neither a name, user/NAME, role/NAME nor an IAM user or role ARN")
        return cls(name=text)

    def protects(self, principal: Principal) -> bool:
        """Does this entry name `principal`? Never the root user, which no entry can name."""
        if principal.kind not in ("user", "role"):
            return False
        return (self.name.casefold() == principal.name.casefold()
                and (self.kind is None or self.kind == principal.kind)
                and (self.account_id is None or principal.account_id is None
                     or self.account_id == principal.account_id))

    @property
    def label(self) -> str:
        kind = self.kind or "user or role"
        return f"{kind} {self.name}" + (f" in account {self.account_id}" if self.account_id else "")


def protected_entries(entries: Iterable[str]) -> list[ProtectedPrincipal]:
    """The parsed `settings.protected_principals` (settings validate them when they load)."""
    return [ProtectedPrincipal.parse(entry) for entry in entries]


def is_protected(principal: Principal, entries: Iterable[str]) -> bool:
    """Whether any protected entry names `principal` (names compared without regard to case)."""
    return any(entry.protects(principal) for entry in protected_entries(entries))


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
    if own.same_as(principal):
        raise GuardrailRefusal(
            f"{principal.label} is the responder's own identity ({responder.arn}); "
            "act from another identity if it really is compromised"
        )
    if is_protected(principal, settings.protected_principals):
        raise GuardrailRefusal(
            f"{principal.label} is a protected principal (KEYRESPONSE_PROTECTED_PRINCIPALS); "
            "a break-glass identity is handled by hand"
        )


def refuse_access_key(access_key_id: str, responder: Responder) -> None:
    """Raise if `access_key_id` is the key the responder itself is signing with."""
    if responder.access_key_id and access_key_id == responder.access_key_id:
        raise GuardrailRefusal(
            f"access key {access_key_id} is the responder's own key ({responder.arn}); "
            "act from another identity if it really is compromised"
        )


def ours(account_id: str | None, home_account: str | None, accounts_in_scope: Iterable[str]) -> bool:
    """Whether the responder acts in `account_id` for an incident of `home_account`: the incident's own
    account, or a member account it is configured to act in (`settings.accounts_in_scope`). An account
    that is not known (a bare name) is the incident's."""
    return account_id is None or account_id == home_account or account_id in set(accounts_in_scope)


class ForeignPrincipal(BaseModel):
    """A principal in scope of an incident that lives in an account the responder does not act in.

    The compromised key can assume a role in an account the attacker owns (its trust policy lets
    anyone in), and CloudTrail logs the session beside ours: that role is the attacker's
    infrastructure. It is never a target — acting on it by name would act on our own role of the
    same name — and is reported, with its account, which is the strongest lead to hand AWS.
    """

    model_config = ConfigDict(frozen=True)

    principal_arn: str
    account_id: str
    kind: str
    name: str
    access_key_ids: list[str] = Field(description="The credentials of the incident that belong to it.")
    note: str


def foreign_principals(credentials: Iterable[Mapping[str, object]], home_account: str | None,
                       accounts_in_scope: Iterable[str]) -> list[ForeignPrincipal]:
    """The principals of `credentials` (investigation credentials: `access_key_id`, `principal_arn`)
    in an account that is neither `home_account` nor in `accounts_in_scope`, in order of first mention.
    Nothing is foreign while the incident's own account is unknown."""
    if not home_account:
        return []
    scope = list(accounts_in_scope)
    found: dict[tuple[str, str, str], list[str]] = {}
    arns: dict[tuple[str, str, str], str] = {}
    for cred in credentials:
        arn = str(cred.get("principal_arn") or "")
        principal = parse_principal(arn) if arn else None
        if principal is None or principal.account_id is None or ours(principal.account_id, home_account, scope):
            continue
        key = (principal.account_id, principal.kind, principal.name)
        found.setdefault(key, []).append(str(cred.get("access_key_id") or ""))
        arns.setdefault(key, arn)
    return [ForeignPrincipal(
        principal_arn=arns[key], account_id=key[0], kind=key[1], name=key[2], access_key_ids=ids,
        note=(f"{key[1]} {key[2]} is in account {key[0]}, neither this incident's account ({home_account}) nor one "
              "the responder acts in: the attacker's own infrastructure. Not a target (acting on the name would act "
              f"on our own {key[1]} of that name); report account {key[0]} to AWS."))
        for key, ids in found.items()]
