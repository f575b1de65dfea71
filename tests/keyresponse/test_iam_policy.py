"""The responder policy is generated from the registries' declared permissions."""

from __future__ import annotations

from typing import Any

from keyresponse.iam_policy import BASE_PERMISSIONS, PERMISSION_RE, required_permissions, responder_policy
from tasks.actions import registry


def test_grants_exactly_the_declared_permissions_when_generated() -> None:
    policy = responder_policy("acme-ir-evidence")
    granted = {a for s in policy["Statement"] for a in s["Action"]}
    declared = {p for action in registry().values() for p in action.permissions}
    assert declared <= granted and set(BASE_PERMISSIONS) <= granted
    assert all(PERMISSION_RE.fullmatch(a) for a in granted)
    assert not any(a.endswith("*") for a in granted)
    s3 = next(s for s in policy["Statement"] if s["Sid"] == "EvidenceStore")
    assert s3["Resource"] == ["arn:aws:s3:::acme-ir-evidence", "arn:aws:s3:::acme-ir-evidence/*"]
    assert required_permissions() == sorted(set(required_permissions()), key=lambda p: (p.split(":")[0], p))


def test_keeps_the_hardening_permissions_out_of_the_responder_policy_when_generated() -> None:
    from keyresponse.iam_policy import readiness_policy
    from keyresponse.readiness import PERMISSIONS as READINESS_READS
    from tasks.hardening import registry as hardening

    def granted(policy: dict[str, Any]) -> set[str]:
        return {a for s in policy["Statement"] for a in s["Action"]}

    policy = readiness_policy()
    readiness, responder = granted(policy), granted(responder_policy())
    declared = {p for action in hardening().values() for p in action.permissions}
    assert declared | set(READINESS_READS) <= readiness and all(PERMISSION_RE.fullmatch(a) for a in readiness)
    assert {"iam:CreateRole", "iam:PassRole", "cloudtrail:StopLogging"} <= readiness - responder  # never the responder's
    assert {"iam:UpdateAccessKey", "iam:DeleteAccessKey"} <= responder - readiness  # nor containment the hardener's
    assert len({s["Sid"] for s in policy["Statement"]}) == len(policy["Statement"])
