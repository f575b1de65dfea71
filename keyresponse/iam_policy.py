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


def required_permissions(extra: Iterable[str] = ()) -> list[str]:
    """Every IAM action the responder needs, sorted and without duplicates."""
    from tasks.actions import registry

    wanted = set(BASE_PERMISSIONS) | set(EVIDENCE_PERMISSIONS) | set(extra)
    for action in registry().values():
        wanted.update(action.permissions)
    bad = sorted(p for p in wanted if not PERMISSION_RE.fullmatch(p))
    if bad:
        raise ValueError(f"malformed IAM actions: {', '.join(bad)}")
    return sorted(wanted, key=lambda p: (p.split(":")[0], p))


def responder_policy(evidence_bucket: str | None = None) -> dict[str, Any]:
    """The policy document, one statement per service. S3 is limited to the evidence bucket when named."""
    by_service: dict[str, list[str]] = {}
    permissions = required_permissions(["s3:ListBucket"] if evidence_bucket else [])
    for permission in permissions:
        by_service.setdefault(permission.split(":")[0], []).append(permission)
    statements: list[dict[str, Any]] = []
    for service, actions in by_service.items():
        resource: str | list[str] = "*"
        if service == "s3" and evidence_bucket:
            resource = [f"arn:aws:s3:::{evidence_bucket}", f"arn:aws:s3:::{evidence_bucket}/*"]
        statements.append({"Sid": _SIDS.get(service, service.title().replace("-", "")), "Effect": "Allow",
                           "Action": actions, "Resource": resource})
    return {"Version": "2012-10-17", "Statement": statements}
