"""The responder's least-privilege IAM policy, generated from what the actions declare.

Every action lists the IAM actions its plan, apply, verify and undo need (`Action.permissions`);
the evidence store, the guardrails and the planner add the read-only calls they make. Nothing
else is granted: a test runs every action under moto's IAM enforcement with exactly this policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from keyresponse.evidence import PERMISSIONS as EVIDENCE_PERMISSIONS

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


def _checked(wanted: set[str]) -> list[str]:
    bad = sorted(p for p in wanted if not PERMISSION_RE.fullmatch(p))
    if bad:
        raise ValueError(f"malformed IAM actions: {', '.join(bad)}")
    return sorted(wanted, key=lambda p: (p.split(":")[0], p))


def required_permissions(extra: Iterable[str] = ()) -> list[str]:
    """Every IAM action the responder needs, sorted and without duplicates."""
    from tasks.actions import registry

    wanted = set(BASE_PERMISSIONS) | set(EVIDENCE_PERMISSIONS) | set(extra)
    for action in registry().values():
        wanted.update(action.permissions)
    return _checked(wanted)


def readiness_permissions() -> list[str]:
    """Every IAM action `keyresponse readiness --apply` needs: the checks' reads, the hardening
    actions' declared permissions and the evidence store (a hardening run keeps a ledger too)."""
    from keyresponse.readiness import PERMISSIONS as READINESS_PERMISSIONS
    from tasks.hardening import registry

    wanted = set(READINESS_PERMISSIONS) | set(EVIDENCE_PERMISSIONS)
    for action in registry().values():
        wanted.update(action.permissions)
    return _checked(wanted)


def _document(permissions: list[str], evidence_bucket: str | None, sids: dict[str, str]) -> dict[str, Any]:
    by_service: dict[str, list[str]] = {}
    for permission in permissions:
        by_service.setdefault(permission.split(":")[0], []).append(permission)
    statements: list[dict[str, Any]] = []
    for service, actions in by_service.items():
        resource: str | list[str] = "*"
        if service == "s3" and evidence_bucket:
            resource = [f"arn:aws:s3:::{evidence_bucket}", f"arn:aws:s3:::{evidence_bucket}/*"]
        statements.append({"Sid": sids.get(service, service.title().replace("-", "")), "Effect": "Allow",
                           "Action": actions, "Resource": resource})
    return {"Version": "2012-10-17", "Statement": statements}


def responder_policy(evidence_bucket: str | None = None) -> dict[str, Any]:
    """The policy document, one statement per service. S3 is limited to the evidence bucket when named."""
    return _document(required_permissions(["s3:ListBucket"] if evidence_bucket else []), evidence_bucket, _SIDS)


def readiness_policy() -> dict[str, Any]:
    """The policy of whoever runs `keyresponse readiness --apply`, one statement per service.

    A role of its own, not the responder's: it creates trails, rules and roles (`iam:CreateRole`,
    `iam:PassRole`), which an incident responder never needs. Its S3 statement is not limited to one
    bucket, as it reads and locks the trail bucket, whichever that is.
    """
    permissions = readiness_permissions()
    sids = {p.split(":")[0]: "Readiness" + p.split(":")[0].title().replace("-", "") for p in permissions}
    return _document(permissions, None, sids)
