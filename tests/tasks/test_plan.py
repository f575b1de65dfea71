"""The planner turns an investigation (the shape in docs/architecture.md) into ordered steps for each phase."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from keyresponse.cli.contain import load_investigation
from keyresponse.errors import InputError
from keyresponse.incident import minimal_investigation_record
from keyresponse.model import InvestigationRecord
from keyresponse.sandbox import MotoSandbox
from tasks.plan import investigation_from_aws, plan_response

from .conftest import MakeCtx

A = "123456789012"
KEY, DERIVED = "AKIAAAAAAAAAAAAAAAA1", "AKIAAAAAAAAAAAAAAAA2"


def _investigation() -> InvestigationRecord:
    user = f"arn:aws:iam::{A}:user/victim"
    t = "2026-11-20T10:00:00Z"
    return minimal_investigation_record(**{
        "access_key_id": KEY, "account_id": A, "principal_arn": user, "regions": ["us-east-1", "eu-west-1"],
        "credentials": [
            {"access_key_id": KEY, "kind": "original", "created_by_event": None, "parent": None, "principal_arn": user},
            {"access_key_id": DERIVED, "kind": "access_key", "created_by_event": "CreateAccessKey",
             "parent": KEY, "principal_arn": f"arn:aws:iam::{A}:user/backdoor"},
            {"access_key_id": "ASIAAAAAAAAAAAAAAAA3", "kind": "session", "created_by_event": "AssumeRole",
             "parent": KEY, "principal_arn": f"arn:aws:sts::{A}:assumed-role/ops-admin/x"},
            {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "kind": "session", "created_by_event": "GetFederationToken",
             "parent": KEY, "principal_arn": f"arn:aws:sts::{A}:federated-user/evil"},
        ],
        "persistence": [
            {"event_name": "CreateUser", "event_time": t, "resource": f"arn:aws:iam::{A}:user/backdoor"},
            {"event_name": "UpdateLoginProfile", "event_time": t, "resource": user},
            {"event_name": "EnableMFADevice", "event_time": t, "resource": f"arn:aws:iam::{A}:mfa/evil", "user_name": "victim"},
            {"event_name": "UpdateAssumeRolePolicy", "event_time": t, "resource": f"arn:aws:iam::{A}:role/partner-audit",
             "prior_policy": {"Version": "2012-10-17", "Statement": []}},
            {"event_name": "UpdateAssumeRolePolicy", "event_time": t, "resource": f"arn:aws:iam::{A}:role/data-pipeline"},
        ],
        "resources_created": [
            {"type": "AWS::EC2::Instance", "id": "i-0abc", "region": "eu-west-1", "event_name": "RunInstances"},
            {"type": "key_pair", "id": "evil-kp", "region": "eu-west-1", "event_name": "CreateKeyPair"},
            {"type": "lambda_function", "id": "miner", "region": "us-east-1", "event_name": "CreateFunction20150331"},
            {"type": "security_group_rule", "id": "sgr-1", "region": "eu-west-1", "event_name": "AuthorizeSecurityGroupIngress",
             "group_id": "sg-1"},
        ],
    })


def _labels(phase: str) -> list[str]:
    return [s.label for s in plan_response(_investigation(), phase).steps]  # type: ignore[arg-type]


def test_contains_each_key_alone_and_revokes_user_and_role_sessions_when_planned() -> None:
    labels = _labels("containment")
    assert labels[:2] == [f"deactivate_access_key:access_key:{KEY} (victim)",
                          f"deactivate_access_key:access_key:{DERIVED} (backdoor)"]
    assert "attach_session_revocation_policy:user:victim" in labels
    assert "attach_session_revocation_policy:role:ops-admin" in labels
    assert "delete_login_profile:user:victim" in labels
    assert "deactivate_mfa_device:mfa_device:arn:aws:iam::123456789012:mfa/evil (victim)" in labels
    assert labels[-1].startswith("tag_principal:")


def test_eradicates_in_every_region_and_notes_backdoors_without_prior_policy() -> None:
    plan = plan_response(_investigation(), "eradication")
    labels = [s.label for s in plan.steps]
    assert labels == [
        f"delete_access_key:access_key:{KEY} (victim)", "delete_user:user:backdoor",
        "restore_trust_policy:role:partner-audit", "delete_lambda_function:lambda_function:miner@us-east-1",
        "delete_key_pair:key_pair:evil-kp@eu-west-1", "revoke_security_group_ingress:security_group_rule:sgr-1@eu-west-1",
        "terminate_instance:instance:i-0abc@eu-west-1",
    ]
    assert any("data-pipeline" in note for note in plan.notes)
    assert all(s.action.requires_approval for s in plan.steps)


def test_recovers_the_owner_and_lifts_revocation_when_planned() -> None:
    assert _labels("recovery") == [
        "create_replacement_access_key:user:victim", "restore_login_profile:user:victim",
        "remove_session_revocation_policy:user:victim", "remove_session_revocation_policy:role:ops-admin",
    ]


def test_rejects_an_investigation_without_a_key_id(tmp_path: Path) -> None:
    (tmp_path / "inv.json").write_text(json.dumps({"access_key_id": KEY, "credentials": []}))
    with pytest.raises(InputError, match=r"access_key_id|account_id"):
        load_investigation(tmp_path / "inv.json", KEY)


def test_plans_from_iam_state_when_there_is_no_investigation(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    sandbox.backdate(user_name=unique_name, access_key_id=key, created_at="2026-01-01T00:00:00Z")
    iam.create_login_profile(UserName=unique_name, Password="Later-Than-Key-1!")
    investigation = investigation_from_aws(make_ctx(dry_run=True), key)
    labels = [s.label for s in plan_response(investigation, "containment").steps]
    assert labels == [f"deactivate_access_key:access_key:{key} ({unique_name})",
                      f"attach_session_revocation_policy:user:{unique_name}",
                      f"delete_login_profile:user:{unique_name}", f"tag_principal:user:{unique_name}"]
    with pytest.raises(InputError, match="no IAM user"):
        investigation_from_aws(make_ctx(dry_run=True), "AKIAZZZZZZZZZZZZZZZZ")
