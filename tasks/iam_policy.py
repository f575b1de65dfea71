"""The responder's least-privilege IAM policy, generated from what the actions declare.

Every action lists the IAM actions its plan, apply, verify and undo need (`Action.permissions`);
the evidence store, the guardrails and the planner add the read-only calls they make. Nothing
else is granted: a test runs every action under moto's IAM enforcement with exactly this policy.

IAM's writes have to be granted on `Resource: "*"` (the users and roles to contain are not known in
advance), so the policy also carries explicit `Deny` statements, which win over any `Allow`, for the
principals no action may touch, whatever a bug or a hostile plan asks:

* `DenyProtectedPrincipals`: every IAM write on the protected principals of the settings
  (`KEYRESPONSE_PROTECTED_PRINCIPALS`), each in the account its entry names (any account for a bare
  name), with any path;
* `DenyTheResponderItself`: every IAM write on the responder's own role (`response_role_name`, the
  role it is in every member account) and on any `responder_principals` given (`keyresponse policy
  --responder ARN`, e.g. the identity it runs as in its home account).

IAM compares resource ARNs case-sensitively, so these statements name the principals as configured;
the guardrails in the code (`keyresponse/guardrails.py`) match any case, before any call is made.
Secrets Manager is granted on `arn:aws:secretsmanager:*:*:secret:keyresponse/*` only: the secrets
recovery writes (`tasks.iam_changes.secret_name`), never the account's others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from keyresponse import readiness
from keyresponse.evidence import PERMISSIONS as EVIDENCE_PERMISSIONS
from keyresponse.guardrails import ProtectedPrincipal, parse_principal, protected_entries
from keyresponse.readiness.assessment import ASSESS_PERMISSIONS
from keyresponse.settings import Settings, get_settings
from tasks import hardening
from tasks.registry import registry as response_registry

#: IAM actions are `service:Action`, e.g. `iam:UpdateAccessKey`.
PERMISSION_RE = re.compile(r"^[a-z0-9-]+:[A-Z][A-Za-z0-9]+$")

#: Read-only calls outside the actions: who am I (guardrails), whose key is this (planner).
BASE_PERMISSIONS: tuple[str, ...] = (
    "sts:GetCallerIdentity",
    "iam:GetAccessKeyLastUsed",
    "iam:ListAccessKeys",
    "iam:GetLoginProfile",
    "iam:GetUser",
)

_SIDS = {"iam": "IamResponse", "sts": "WhoAmI", "ec2": "Ec2Eradication", "lambda": "LambdaEradication",
         "secretsmanager": "RecoverySecrets", "s3": "EvidenceStore"}
#: The only secrets the responder touches (tasks.iam_changes.secret_name).
SECRETS_RESOURCE = "arn:aws:secretsmanager:*:*:secret:keyresponse/*"
#: IAM calls that only read: everything else the policy grants on IAM is a write, denied on the principals above.
_READ_PREFIXES = ("Get", "List", "Describe", "Generate", "Simulate")


def _checked(wanted: set[str]) -> list[str]:
    bad = sorted(p for p in wanted if not PERMISSION_RE.fullmatch(p))
    if bad:
        raise ValueError(f"malformed IAM actions: {', '.join(bad)}")
    return sorted(wanted, key=lambda p: (p.split(":")[0], p))


def required_permissions(extra: Iterable[str] = ()) -> list[str]:
    """Every IAM action the responder needs, sorted and without duplicates."""
    wanted = set(BASE_PERMISSIONS) | set(EVIDENCE_PERMISSIONS) | set(extra)
    for action in response_registry().values():
        wanted.update(action.permissions)
    return _checked(wanted)


def readiness_permissions() -> list[str]:
    """Every IAM action `keyresponse readiness --apply` needs: the assessment's and every registered check's
    reads, the hardening actions' declared permissions and the evidence store (a hardening run keeps a ledger too)."""
    wanted = set(ASSESS_PERMISSIONS) | set(EVIDENCE_PERMISSIONS)
    for check in readiness.CHECKS:
        wanted.update(check.permissions)
    for action in hardening.ACTIONS:
        wanted.update(action.permissions)
    return _checked(wanted)


def _document(permissions: list[str], evidence_bucket: str | None, sids: dict[str, str],
              resources: dict[str, str | list[str]] | None = None) -> dict[str, Any]:
    by_service: dict[str, list[str]] = {}
    for permission in permissions:
        by_service.setdefault(permission.split(":")[0], []).append(permission)
    statements: list[dict[str, Any]] = []
    for service, actions in by_service.items():
        resource: str | list[str] = (resources or {}).get(service, "*")
        if service == "s3" and evidence_bucket:
            resource = [f"arn:aws:s3:::{evidence_bucket}", f"arn:aws:s3:::{evidence_bucket}/*"]
        statements.append({"Sid": sids.get(service, service.title().replace("-", "")), "Effect": "Allow",
                           "Action": actions, "Resource": resource})
    return {"Version": "2012-10-17", "Statement": statements}


def _principal_arns(entry: ProtectedPrincipal) -> list[str]:
    """The ARNs of a protected entry, with any path: both kinds for a bare name, any account for none."""
    kinds = [entry.kind] if entry.kind else ["user", "role"]
    account = entry.account_id or "*"
    return [f"arn:aws:iam::{account}:{kind}/{path}{entry.name}" for kind in kinds for path in ("", "*/")]


def _iam_writes(permissions: list[str]) -> list[str]:
    return [p for p in permissions if p.startswith("iam:") and not p.split(":", 1)[1].startswith(_READ_PREFIXES)]


def responder_policy(evidence_bucket: str | None = None, *, settings: Settings | None = None,
                     responder_principals: Iterable[str] = ()) -> dict[str, Any]:
    """The policy document: one `Allow` statement per service (S3 limited to the evidence bucket when
    named, Secrets Manager to `keyresponse/*`), then the `Deny` statements of the module docstring for
    the protected principals of `settings` and the responder itself (`settings.response_role_name`,
    and `responder_principals`: ARNs or role names)."""
    settings = settings or get_settings()
    permissions = required_permissions(["s3:ListBucket"] if evidence_bucket else [])
    document = _document(permissions, evidence_bucket, _SIDS, {"secretsmanager": SECRETS_RESOURCE})
    writes = _iam_writes(permissions)
    protected = [arn for entry in protected_entries(settings.protected_principals) for arn in _principal_arns(entry)]
    if protected:
        document["Statement"].append({"Sid": "DenyProtectedPrincipals", "Effect": "Deny", "Action": writes,
                                      "Resource": list(dict.fromkeys(protected))})
    own = [ProtectedPrincipal(name=settings.response_role_name, kind="role")]
    for given in responder_principals:
        principal = parse_principal(given, kind="role")
        if principal.kind in ("user", "role"):
            own.append(ProtectedPrincipal(name=principal.name, kind="user" if principal.kind == "user" else "role",
                                          account_id=principal.account_id))
    document["Statement"].append({"Sid": "DenyTheResponderItself", "Effect": "Deny", "Action": writes,
                                  "Resource": list(dict.fromkeys(arn for entry in own for arn in _principal_arns(entry)))})
    return document


def readiness_policy() -> dict[str, Any]:
    """The policy of whoever runs `keyresponse readiness --apply`, one statement per service.

    A role of its own, not the responder's: it creates trails, rules and roles (`iam:CreateRole`,
    `iam:PassRole`), which an incident responder never needs. Its S3 statement is not limited to one
    bucket, as it reads and locks the trail bucket, whichever that is.
    """
    permissions = readiness_permissions()
    sids = {p.split(":")[0]: "Readiness" + p.split(":")[0].title().replace("-", "") for p in permissions}
    return _document(permissions, None, sids)
