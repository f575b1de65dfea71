"""The responder policy is generated from the registries' declared permissions."""

from __future__ import annotations

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
