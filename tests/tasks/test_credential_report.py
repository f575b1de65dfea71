"""The AWS side of the key scan against the moto server: the seeded account, report readiness,
throttling, and an AWS Organization whose member account is reached through an assumed role."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from keyresponse import aws
from keyresponse.credential_reports import fetch_report
from keyresponse.keyscan import (
    AccountFindings,
    Check,
    CredentialReportError,
    ScanException,
    ScanPolicy,
    assemble_scan,
)
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from tasks.credential_report import ScanTarget, list_scan_targets, scan_account

pytestmark = pytest.mark.slow  # credential reports under throttling and across accounts

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,"
    "mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,"
    "access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,"
    "access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n"
)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_account_id() -> str:
    return str(100000000000 + uuid.uuid4().int % 800000000000)


def _session_in(account_id: str, role: str = "pytest-admin") -> boto3.Session:
    """Credentials in another moto account: moto picks the account from assumed-role credentials."""
    creds = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/{role}",
                                            RoleSessionName="pytest")["Credentials"]
    return aws.session(access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"],
                       session_token=creds["SessionToken"])


def _planted_of(findings: AccountFindings, users: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {c: [] for c in ("long_lived", "unused", "never_used", "two_active_keys",
                                                   "console_without_mfa")}
    for finding in findings.findings:
        if finding.user_name in users:  # other tests of the session add t<N>- users to this account
            found.setdefault(finding.check.value, []).append(finding.user_name)
    return {check: sorted(names) for check, names in found.items()}


@pytest.fixture(scope="module")
def seeded_scan(seeded: SeededAccount) -> AccountFindings:
    now = datetime.now(UTC)
    return scan_account.fn(ScanTarget(account_id=seeded.account_id), ScanPolicy(), now, poll_s=0.05)


def test_finds_exactly_the_planted_cases_when_scanning_the_seeded_account(
    seeded: SeededAccount, seeded_scan: AccountFindings
) -> None:
    assert seeded_scan.scan.status == "ok" and seeded_scan.scan.problems == []
    expected = {check: sorted(names) for check, names in seeded.planted.items()}
    assert _planted_of(seeded_scan, seeded.users) == expected


def test_names_the_key_and_its_owner_when_a_finding_is_enriched(
    seeded: SeededAccount, seeded_scan: AccountFindings
) -> None:
    legacy = next(f for f in seeded_scan.findings if f.user_name == "legacy-integration")
    assert legacy.access_key_id == seeded.key_of("legacy-integration").access_key_id
    assert legacy.owner == "rupert@example.com"
    dual = [k.access_key_id for k in seeded.keys if k.user_name == "dual-key-svc"]
    assert all(f.access_key_id is None for f in seeded_scan.findings if f.check == Check.TWO_ACTIVE_KEYS)
    assert len(dual) == 2


def test_honours_protected_principals_and_exceptions_when_scanning_the_seeded_account(
    seeded: SeededAccount, seeded_scan: AccountFindings
) -> None:
    now = datetime.now(UTC)
    policy = ScanPolicy(protected_principals=["legacy-integration", "break-glass"])
    exception = ScanException(principal="marketing-sync", reason="seasonal campaign", expires=now.date() + timedelta(1))
    result = assemble_scan(scope="t", now=now, policy=policy, accounts=[seeded_scan], exceptions=[exception])
    open_users = {f.user_name for f in result.findings}
    assert "legacy-integration" not in open_users and "marketing-sync" not in open_users
    assert {s.finding.user_name: s.by for s in result.suppressed} == {
        "legacy-integration": "protected_principal", "marketing-sync": "exception"}
    assert "old-monitoring" in open_users


def test_generates_the_report_when_iam_answers_report_not_present(sandbox: MotoSandbox) -> None:
    account = _new_account_id()
    iam = aws.client("iam", boto_session=_session_in(account))
    iam.create_user(UserName="solo")
    with pytest.raises(iam.exceptions.CredentialReportNotPresentException):
        iam.get_credential_report()
    report = fetch_report(iam, account, poll_s=0.05)
    assert report.content.startswith("user,arn,") and "\nsolo,arn:aws:iam::" + account in report.content


def _stubbed_iam() -> tuple[object, Stubber]:
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                       aws_access_key_id="x", aws_secret_access_key="x")
    return iam, Stubber(iam)


def test_waits_while_report_is_in_progress_and_then_reads_it() -> None:
    iam, stub = _stubbed_iam()
    stub.add_response("generate_credential_report", {"State": "STARTED"})
    stub.add_response("generate_credential_report", {"State": "INPROGRESS"})
    stub.add_response("generate_credential_report", {"State": "COMPLETE"})
    stub.add_client_error("get_credential_report", service_error_code="ReportInProgress", http_status_code=404)
    stub.add_response("generate_credential_report", {"State": "COMPLETE"})
    stub.add_response("get_credential_report", {"Content": HEADER.encode(), "ReportFormat": "text/csv",
                                                "GeneratedTime": datetime(2026, 11, 28, tzinfo=UTC)})
    with stub:
        report = fetch_report(iam, "111122223333", poll_s=0.01)
        stub.assert_no_pending_responses()
    assert report.content == HEADER and report.generated_at == datetime(2026, 11, 28, tzinfo=UTC)


def test_raises_a_clear_error_when_report_is_never_ready() -> None:
    iam, stub = _stubbed_iam()
    for _ in range(50):
        stub.add_response("generate_credential_report", {"State": "INPROGRESS"})
    with stub, pytest.raises(CredentialReportError, match=r"111122223333 was not ready after 0 s \(last answer: INPROGRESS\)"):
        fetch_report(iam, "111122223333", timeout_s=0.2, poll_s=0.02)


def test_completes_when_iam_throttles_a_quarter_of_the_calls(sandbox: MotoSandbox) -> None:
    account = _new_account_id()
    iam = aws.client("iam", boto_session=_session_in(account))
    iam.create_user(UserName="throttled-old-key")
    key = iam.create_access_key(UserName="throttled-old-key")["AccessKey"]["AccessKeyId"]
    sandbox.backdate(account_id=account, user_name="throttled-old-key", access_key_id=key,
                     created_at=_iso(datetime.now(UTC) - timedelta(days=400)), last_used_at=_iso(datetime.now(UTC)))
    target = ScanTarget(account_id=account, role_arn=f"arn:aws:iam::{account}:role/pytest-admin")
    sandbox.inject_faults(service="iam", throttle_rate=0.25, seed=4)
    try:
        scanned = scan_account.fn(target, ScanPolicy(), datetime.now(UTC), poll_s=0.05)
        injected = sandbox.call_extension("GET", "faults")["injected"].get("iam", 0)
    finally:
        sandbox.inject_faults()
    assert injected >= 1
    assert scanned.scan.status == "ok"
    assert [(f.user_name, f.check.value, f.access_key_id) for f in scanned.findings] == [
        ("throttled-old-key", "long_lived", key)]


def _organization_with_member(sandbox: MotoSandbox, role_name: str) -> tuple[str, str, str, str]:
    """A management account with an Organization, one member holding `role_name` and an old key,
    and one closed member. Returns (hub role arn, management, member, closed member)."""
    management = _new_account_id()
    hub_arn = f"arn:aws:iam::{management}:role/pytest-hub"
    hub = _session_in(management, "pytest-hub")
    org = aws.client("organizations", boto_session=hub)
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(Email="member@example.com", AccountName="member")["CreateAccountStatus"]["AccountId"]
    closed = org.create_account(Email="closed@example.com", AccountName="closed")["CreateAccountStatus"]["AccountId"]
    org.close_account(AccountId=closed)

    # bootstrap the member (as OrganizationAccountAccessRole would): the scan role, trusted by the management account
    bootstrap = aws.client("iam", boto_session=_session_in(member, "OrganizationAccountAccessRole"))
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{management}:root"}}]}
    bootstrap.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
    now = datetime.now(UTC)
    for account, session, user, age in ((member, bootstrap, "member-old-key", 400),
                                        (management, aws.client("iam", boto_session=hub), "mgmt-never-used", 100)):
        session.create_user(UserName=user, Tags=[{"Key": "owner", "Value": f"{user}@example.com"}])
        key = session.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
        sandbox.backdate(account_id=account, user_name=user, access_key_id=key, created_at=_iso(now - timedelta(age)))
    return hub_arn, management, member, closed


def test_scans_every_account_through_the_assumed_role_when_in_organization_mode(sandbox: MotoSandbox) -> None:
    role_name = "KeyScanAudit"
    hub_arn, management, member, closed = _organization_with_member(sandbox, role_name)
    targets = list_scan_targets.fn(organization=True, role_name=role_name, assume_role_arn=hub_arn)
    assert targets[0].account_id == management and targets[0].role_arn is None
    assert {t.account_id: t.role_arn for t in targets}[member] == f"arn:aws:iam::{member}:role/{role_name}"

    now = datetime.now(UTC)
    scans = [scan_account.fn(t, ScanPolicy(), now, hub_arn, poll_s=0.05) for t in targets]
    status = {s.scan.account_id: s.scan.status for s in scans}
    assert status == {management: "ok", member: "ok", closed: "skipped"}
    found = {(f.account_id, f.user_name, f.check.value, f.owner) for s in scans for f in s.findings}
    assert found == {(member, "member-old-key", "long_lived", "member-old-key@example.com"),
                     (member, "member-old-key", "never_used", "member-old-key@example.com"),
                     (management, "mgmt-never-used", "long_lived", "mgmt-never-used@example.com"),
                     (management, "mgmt-never-used", "never_used", "mgmt-never-used@example.com")}


def test_refuses_to_deactivate_the_scanners_own_key_or_identity_and_changes_nothing(
        sandbox: MotoSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The remediation is the response's `deactivate_access_key` action, with its guardrails: the scanner
    never deactivates the key it signs with, nor another key of its own user (the old key check
    compared the caller's user id with a key id, which can never match)."""
    from keyresponse.errors import GuardrailRefusal
    from keyresponse.keyscan import Finding
    from tasks.credential_report import deactivate_access_key_after_scan

    account = _new_account_id()
    iam = aws.client("iam", boto_session=_session_in(account))
    iam.create_user(UserName="scanner")
    own = iam.create_access_key(UserName="scanner")["AccessKey"]
    other = iam.create_access_key(UserName="scanner")["AccessKey"]["AccessKeyId"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", own["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", own["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    for key in (own["AccessKeyId"], other):
        finding = Finding(check=Check.LONG_LIVED, account_id=account, user_name="scanner",
                          user_arn=f"arn:aws:iam::{account}:user/scanner", access_key_id=key)
        with pytest.raises(GuardrailRefusal, match="responder's own"):
            deactivate_access_key_after_scan.fn(finding, ScanTarget(account_id=account), incident_id="scan-own-key")
    assert {k["Status"] for k in iam.list_access_keys(UserName="scanner")["AccessKeyMetadata"]} == {"Active"}
