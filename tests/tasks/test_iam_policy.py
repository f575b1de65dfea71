"""The responder policy is generated from the registries' declared permissions."""

from __future__ import annotations

from typing import Any

from tasks.iam_policy import BASE_PERMISSIONS, PERMISSION_RE, required_permissions, responder_policy
from tasks.registry import registry


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
    from keyresponse.readiness import PERMISSIONS as READINESS_READS
    from tasks.hardening import registry as hardening
    from tasks.iam_policy import readiness_policy

    def granted(policy: dict[str, Any]) -> set[str]:
        return {a for s in policy["Statement"] for a in s["Action"]}

    policy = readiness_policy()
    readiness, responder = granted(policy), granted(responder_policy())
    declared = {p for action in hardening().values() for p in action.permissions}
    assert declared | set(READINESS_READS) <= readiness and all(PERMISSION_RE.fullmatch(a) for a in readiness)
    assert {"iam:CreateRole", "iam:PassRole", "cloudtrail:StopLogging"} <= readiness - responder  # never the responder's
    assert {"iam:UpdateAccessKey", "iam:DeleteAccessKey"} <= responder - readiness  # nor containment the hardener's
    assert len({s["Sid"] for s in policy["Statement"]}) == len(policy["Statement"])


def test_denies_iam_writes_on_protected_principals_and_the_responder_and_scopes_secrets() -> None:
    from pathlib import Path

    from keyresponse.settings import Settings
    from tasks.iam_policy import SECRETS_RESOURCE

    settings = Settings(home=Path("."), protected_principals=["break-glass", "arn:aws:iam::111122223333:role/audit"],
                        response_role_name="KeyResponseResponder")
    policy = responder_policy(settings=settings, responder_principals=["arn:aws:iam::123456789012:user/ir-responder"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["RecoverySecrets"]["Resource"] == SECRETS_RESOURCE == "arn:aws:secretsmanager:*:*:secret:keyresponse/*"
    protected, own = by_sid["DenyProtectedPrincipals"], by_sid["DenyTheResponderItself"]
    for deny in (protected, own):
        assert deny["Effect"] == "Deny"
        assert {"iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteUser", "iam:CreateAccessKey",
                "iam:UpdateAccessKey", "iam:PutUserPolicy", "iam:DeleteRolePolicy", "iam:TagRole"} <= set(deny["Action"])
        assert not any(a.split(":")[1].startswith(("Get", "List")) for a in deny["Action"])
    assert protected["Resource"] == [
        "arn:aws:iam::*:user/break-glass", "arn:aws:iam::*:user/*/break-glass",
        "arn:aws:iam::*:role/break-glass", "arn:aws:iam::*:role/*/break-glass",
        "arn:aws:iam::111122223333:role/audit", "arn:aws:iam::111122223333:role/*/audit"]
    assert own["Resource"] == [
        "arn:aws:iam::*:role/KeyResponseResponder", "arn:aws:iam::*:role/*/KeyResponseResponder",
        "arn:aws:iam::123456789012:user/ir-responder", "arn:aws:iam::123456789012:user/*/ir-responder"]
