"""Given each Stratus Red Team technique's key, persistence_events yields the technique's persistence calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from footholds import ADMIN_ACCOUNT, ADMIN_USER, sign_in_as

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files

#: technique → the persistence (or defense-evasion) calls its detonation made, as the labels name them.
EXPECTED = {
    "aws.persistence.iam-backdoor-role": {"UpdateAssumeRolePolicy"},
    "aws.persistence.iam-backdoor-user": {"CreateAccessKey"},
    "aws.persistence.iam-create-admin-user": {"CreateUser", "AttachUserPolicy", "CreateAccessKey"},
    "aws.persistence.iam-create-backdoor-role": {"CreateRole", "AttachRolePolicy"},
    "aws.persistence.iam-create-user-login-profile": {"CreateLoginProfile"},
    "aws.persistence.lambda-backdoor-function": {"AddPermission20150331v2"},
    "aws.persistence.lambda-layer-extension": {"UpdateFunctionConfiguration20150331v2"},
    "aws.persistence.lambda-overwrite-code": {"UpdateFunctionCode20150331v2"},
    "aws.persistence.rolesanywhere-create-trust-anchor": {"CreateTrustAnchor", "CreateProfile"},
    "aws.persistence.sts-federation-token": {"GetFederationToken"},
    "aws.privilege-escalation.iam-update-user-login-profile": {"UpdateLoginProfile"},
    "aws.defense-evasion.cloudtrail-delete": {"DeleteTrail"},
    "aws.defense-evasion.cloudtrail-event-selectors": {"PutEventSelectors"},
    "aws.defense-evasion.cloudtrail-stop": {"StopLogging"},
    "aws.defense-evasion.dns-delete-logs": {"DeleteResolverQueryLogConfig"},
    "aws.defense-evasion.organizations-leave": {"LeaveOrganization"},
    "aws.defense-evasion.vpc-remove-flow-logs": {"DeleteFlowLogs"},
    "aws.exfiltration.ec2-security-group-open-port-22-ingress": {"AuthorizeSecurityGroupIngress"},
    "aws.lateral-movement.ec2-instance-connect": {"SendSSHPublicKey"},
    "aws.lateral-movement.ec2-serial-console-send-ssh-public-key": {
        "SendSerialConsoleSSHPublicKey", "EnableSerialConsoleAccess"},
    "aws.impact.bedrock-invoke-model": {
        "PutUseCaseForModelAccess", "PutFoundationModelEntitlement", "CreateFoundationModelAgreement"},
    "aws.execution.ssm-send-command": {"SendCommand"},
    "aws.execution.ssm-start-session": {"StartSession"},
}
#: techniques whose detonation creates no foothold: nothing may come back.
NONE_EXPECTED = [
    "aws.credential-access.secretsmanager-retrieve-secrets",
    "aws.credential-access.ssm-retrieve-securestring-parameters",
    "aws.discovery.ec2-download-user-data",
    "aws.exfiltration.ec2-share-ebs-snapshot",
]


@pytest.mark.parametrize("technique", sorted(EXPECTED))
def test_yields_the_techniques_persistence_calls(
    technique: str,
    engine: DuckDBEngine,
    wide: dict[str, str],
    technique_keys: dict[str, list[str]],
    stratus_by_technique: dict[str, list[dict[str, Any]]],
) -> None:
    rows = engine.run("persistence_events", {"access_key_ids": technique_keys[technique], **wide})
    assert {r["event_name"] for r in rows} == EXPECTED[technique]
    technique_events = {r["eventID"] for r in stratus_by_technique[technique]}
    assert {r["event_id"] for r in rows} <= technique_events
    assert [r["event_time"] for r in rows] == sorted(r["event_time"] for r in rows)


@pytest.mark.parametrize("technique", NONE_EXPECTED)
def test_is_empty_when_the_technique_creates_no_foothold(
    technique: str, engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]
) -> None:
    assert engine.run("persistence_events", {"access_key_ids": technique_keys[technique], **wide}) == []


def test_names_the_target_and_category(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    rows = engine.run(
        "persistence_events", {"access_key_ids": technique_keys["aws.persistence.iam-create-admin-user"], **wide}
    )
    by_name = {r["event_name"]: r for r in rows}
    assert by_name["CreateUser"]["target"] == "malicious-iam-user"
    assert by_name["CreateUser"]["category"] == "identity"
    assert by_name["CreateAccessKey"]["category"] == "credentials"
    stop = engine.run(
        "persistence_events", {"access_key_ids": technique_keys["aws.defense-evasion.cloudtrail-stop"], **wide}
    )
    assert [r["category"] for r in stop] == ["logging"]


def test_is_empty_outside_the_window(engine: DuckDBEngine, technique_keys: dict[str, list[str]]) -> None:
    rows = engine.run("persistence_events", {
        "access_key_ids": technique_keys["aws.persistence.iam-create-admin-user"],
        "start_day": "2030/01/01", "end_day": "2030/01/02",
        "start_time": "2030-01-01T00:00:00Z", "end_time": "2030-01-03T00:00:00Z",
    })
    assert rows == []


def test_names_the_policy_attached(engine: DuckDBEngine, wide: dict[str, str], technique_keys: dict[str, list[str]]) -> None:
    """Stratus's real AttachUserPolicy / AttachRolePolicy records: the entry says which policy, by name."""
    for technique, event_name, target in (
            ("aws.persistence.iam-create-admin-user", "AttachUserPolicy", "malicious-iam-user"),
            ("aws.persistence.iam-create-backdoor-role", "AttachRolePolicy", "stratus-red-team-malicious-iam-role")):
        rows = engine.run("persistence_events", {"access_key_ids": technique_keys[technique], **wide})
        (row,) = [r for r in rows if r["event_name"] == event_name]
        assert (row["target"], row["detail"]) == (target, "AdministratorAccess")
        assert all(r["detail"] is None for r in rows if r is not row)


def test_finds_console_sign_ins_of_the_users_the_keys_created_only(
    stratus_records: list[dict[str, Any]], tmp_path: Path, wide: dict[str, str],
) -> None:
    """The real create-admin-user detonation (CreateUser malicious-iam-user) and a ConsoleLogin by that
    user, hand-written from Stratus's real console-login record (no public log holds both); the real
    record, another user's sign-in, must not come back."""
    login = sign_in_as(stratus_records, ADMIN_USER, ADMIN_ACCOUNT, "2024-08-01T13:40:00Z")
    write_trail_files([*stratus_records, login], tmp_path / "logs")
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as eng:
        rows = eng.run("created_user_sign_ins", {"user_names": [ADMIN_USER], "account_ids": [ADMIN_ACCOUNT], **wide})
        assert [(r["event_name"], r["target"], r["category"], r["detail"], r["access_key_id"], r["error_code"])
                for r in rows] == [("ConsoleLogin", ADMIN_USER, "sign_in", "MFA used: No", None, None)]
        assert eng.run("created_user_sign_ins", {"user_names": [ADMIN_USER], "account_ids": ["562283505220"],
                                                 **wide}) == []

