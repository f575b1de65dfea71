"""Given each Stratus Red Team technique's key, persistence_events yields the technique's persistence calls."""

from __future__ import annotations

from typing import Any

import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine

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
