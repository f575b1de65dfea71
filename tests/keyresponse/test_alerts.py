"""Every intake format normalizes to one `Alert`; bad input names the field that is wrong.

Real payloads come from tests/fixtures/alerts/ (see its README); simulator alerts are written by the
simulator's own `write_alerts` for every scenario.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from keyresponse.alerts import (
    Alert,
    NotActionable,
    asff_severity,
    github_alert_ref,
    guardduty_severity,
    normalize,
)
from keyresponse.errors import InputError, InvalidAccessKeyId
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.alerts import FINDINGS, write_alerts
from keyresponse.sandbox.scenarios import SCENARIOS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"
KEY = "AKIAIOSFODNN7EXAMPLE"
ACCOUNT = "123456789012"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def envelope(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A finding inside the EventBridge envelope copied from the AWS docs."""
    return dict(load("eventbridge_envelopes.aws_docs.json")[kind], detail=detail)


def one(source: str, payload: Any) -> Alert:
    alerts = normalize(source, payload)
    assert len(alerts) == 1
    return alerts[0]


def simulator_alerts(folder: Path, scenario: str) -> dict[str, Any]:
    truth = {"account_id": ACCOUNT, "compromised_access_key_id": KEY, "attacker_ips": ["45.134.26.19"],
             "window": {"start": "2026-11-27T19:00:22Z", "end": "2026-11-27T19:03:13Z"},
             "owner": {"user_name": SCENARIOS[scenario].victim}}
    write_alerts(folder, truth, SCENARIOS[scenario], seed=7)
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


# --- the simulator's alerts ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_simulator_alerts_normalize_to_the_compromised_key(scenario: str, tmp_path: Path) -> None:
    payloads = simulator_alerts(tmp_path, scenario)
    victim = SCENARIOS[scenario].victim
    score = FINDINGS[scenario][1]

    guardduty = one("guardduty", payloads["guardduty"])
    assert (guardduty.access_key_id, guardduty.account_id) == (KEY, ACCOUNT)
    assert guardduty.principal == f"arn:aws:iam::{ACCOUNT}:user/{victim}"
    assert guardduty.severity == guardduty_severity(score)
    assert guardduty.high_confidence is (score >= 7)
    assert guardduty.observed_at == datetime(2026, 11, 27, 19, 0, 22, tzinfo=UTC)

    health = one("health", payloads["health"])
    assert (health.access_key_id, health.account_id, health.severity) == (KEY, ACCOUNT, "critical")
    assert health.high_confidence
    assert health.principal == f"arn:aws:iam::{ACCOUNT}:user/{victim}"  # parsed from the description

    github_payload = copy.deepcopy(payloads["github"])
    github_payload["alert"]["secret"] = KEY  # what the receiver fetches from the REST API
    github = one("github", github_payload)
    assert (github.access_key_id, github.account_id, github.severity) == (KEY, None, "critical")
    assert github.alert_id == f"acme-corp/billing-service#{payloads['github']['alert']['number']}"

    generic = one("generic", payloads["generic"])
    assert (generic.access_key_id, generic.severity, generic.high_confidence) == (KEY, "high", False)


# --- real GuardDuty findings ----------------------------------------------------------------------

GUARDDUTY_SEVERITY = {"Critical": "critical", "High": "high", "Medium": "medium", "Low": "low"}


@pytest.mark.parametrize("index", range(8))
def test_real_guardduty_finding_is_rejected_precisely_when_it_names_no_key(index: int) -> None:
    finding = load("guardduty_findings.panther_analysis.json")[index]
    label = load("guardduty_findings.panther_analysis.labels.json")[index]
    if "Sample Data" in label["test_name"]:
        with pytest.raises(NotActionable, match=r"detail\.service\.additionalInfo\.sample is true"):
            normalize("guardduty", envelope("guardduty_finding", finding))
        return
    with pytest.raises(InputError, match=r"^detail\.resource(\.accessKeyDetails)? is missing: .*finding type") as exc:
        normalize("guardduty", envelope("guardduty_finding", finding))
    assert finding["type"] in str(exc.value)


@pytest.mark.parametrize("index", [0, 2, 4, 6])
def test_real_guardduty_finding_maps_severity_when_given_key_details(index: int) -> None:
    finding = copy.deepcopy(load("guardduty_findings.panther_analysis.json")[index])
    label = load("guardduty_findings.panther_analysis.labels.json")[index]
    finding["resource"] = {"resourceType": "AccessKey", "accessKeyDetails": {
        "accessKeyId": KEY, "principalId": "AIDA3UBBJ2K3TVEXAMPLE", "userName": "john_doe", "userType": "IAMUser"}}
    for payload in (envelope("guardduty_finding", finding), finding):  # EventBridge envelope and bare finding
        alert = one("guardduty", payload)
        expected = next(v for k, v in GUARDDUTY_SEVERITY.items() if f".{k}Sev" in label["rule_id"])
        assert (alert.access_key_id, alert.account_id, alert.severity) == (KEY, ACCOUNT, expected)
        assert alert.high_confidence is (finding["severity"] >= 7)
        assert alert.alert_id == finding["arn"]
        assert alert.principal == f"arn:aws:iam::{ACCOUNT}:user/john_doe"


# --- real AWS Health, Security Hub, CloudTrail and GitHub payloads ---------------------------------


def test_real_health_event_is_rejected_for_its_placeholder_key() -> None:
    event = load("health_risk_credentials_exposed.aws_health_tools.json")
    with pytest.raises(InvalidAccessKeyId, match=r"^detail\.affectedEntities\[0\]\.entityValue: 'ACCESS_KEY_ID_HERE'"):
        normalize("health", event)


def test_real_health_event_normalizes_when_it_names_a_real_key() -> None:
    event = load("health_risk_credentials_exposed.aws_health_tools.json")
    event["detail"]["affectedEntities"][0]["entityValue"] = KEY
    alert = one("health", event)
    assert (alert.access_key_id, alert.account_id, alert.severity, alert.high_confidence) == (
        KEY, ACCOUNT, "critical", True)
    assert alert.observed_at == datetime(2016, 6, 5, 15, 10, 9, tzinfo=UTC)  # RFC 1123 startTime
    assert alert.alert_id == event["detail"]["eventArn"]


def test_health_event_with_two_keys_gives_two_alerts() -> None:
    event = load("health_risk_credentials_exposed.aws_health_tools.json")
    other = "AKIAJ7EXAMPLEOTHER22"
    event["detail"]["affectedEntities"] = [{"entityValue": KEY}, {"entityValue": other}]
    alerts = normalize("health", event)
    assert [a.access_key_id for a in alerts] == [KEY, other]
    assert len({a.alert_id for a in alerts}) == 2


SECURITYHUB_FAKE_KEYS = ("ABC9ONWNS3155VIEJC8U", "ABCDEFG1HIJ2KLMNOPQR", "ABC12DEFSG3455VIEJC8U")


@pytest.mark.parametrize("index", range(10))
def test_real_securityhub_finding_is_rejected_for_its_made_up_key(index: int) -> None:
    finding = load("securityhub_asff_findings.panther_analysis.json")[index]
    with pytest.raises(InvalidAccessKeyId, match=r"^detail\.findings\[0\]\.Resources\[\d\]\.Details\.AwsIamAccessKey"
                                                 r"\.AccessKeyId: 'ABC"):
        normalize("securityhub", envelope("securityhub_findings_imported", {"findings": [finding]}))


@pytest.mark.parametrize("index", range(10))
def test_real_securityhub_finding_normalizes_when_it_names_a_real_key(index: int) -> None:
    text = json.dumps(load("securityhub_asff_findings.panther_analysis.json")[index])
    for fake in SECURITYHUB_FAKE_KEYS:
        text = text.replace(f'"AccessKeyId": "{fake}"', f'"AccessKeyId": "{KEY}"')
    finding = json.loads(text)
    alert = one("securityhub", envelope("securityhub_findings_imported", {"findings": [finding]}))
    assert (alert.access_key_id, alert.account_id, alert.severity) == (KEY, ACCOUNT, "high")
    assert alert.alert_id == finding["Id"]
    assert alert.high_confidence is False  # a custom product, not GuardDuty
    assert alert.observed_at.year == 2024


def test_securityhub_event_without_key_resources_is_rejected() -> None:
    finding = load("securityhub_asff_findings.panther_analysis.json")[0]
    finding = dict(finding, Resources=[r for r in finding["Resources"] if r["Type"] != "AwsIamAccessKey"])
    with pytest.raises(InputError, match=r"no finding in detail has a Resources\[\] entry of Type AwsIamAccessKey"):
        normalize("securityhub", envelope("securityhub_findings_imported", {"findings": [finding]}))


def test_resolved_securityhub_finding_is_not_actionable() -> None:
    text = json.dumps(load("securityhub_asff_findings.panther_analysis.json")[0]).replace(
        '"AccessKeyId": "ABC9ONWNS3155VIEJC8U"', f'"AccessKeyId": "{KEY}"')
    finding = dict(json.loads(text), Workflow={"Status": "RESOLVED"})
    with pytest.raises(NotActionable, match="RESOLVED"):
        normalize("securityhub", envelope("securityhub_findings_imported", {"findings": [finding]}))


@pytest.mark.parametrize("index", range(3))
def test_real_cloudtrail_quarantine_attach_becomes_a_keyless_alert_of_normal_confidence(index: int) -> None:
    """The real records name a customer's own caller (a console session, the user itself): anyone with
    iam:AttachUserPolicy can make them, so they wait for approval. The same record made by AWS itself
    (`userIdentity.type` AWSService) is high confidence."""
    record = load("cloudtrail_quarantine.panther_analysis.json")["Records"][index]
    label = load("cloudtrail_quarantine.panther_analysis.labels.json")[index]
    wrapped = {"version": "0", "id": "6f87d04b-9f74-4f04-a780-7acf4b0a9b38", "detail-type": "AWS API Call via CloudTrail",
               "source": "aws.iam", "account": ACCOUNT, "time": record["eventTime"], "region": "us-east-1",
               "resources": [], "detail": record}
    if not label["expected_result"]:
        with pytest.raises(InputError, match=r"^requestParameters\.policyName 'TestUserDenyAll' is not AWS's"):
            normalize("cloudtrail", record)
        return
    for payload in (record, wrapped):
        alert = one("cloudtrail", payload)
        user = record["requestParameters"]["userName"]
        assert (alert.access_key_id, alert.account_id, alert.principal) == (
            None, ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/{user}")
        assert (alert.severity, alert.high_confidence, alert.alert_id) == ("high", False, record["eventID"])
        assert record["userIdentity"]["arn"] in alert.title and "not by AWS" in alert.title
        assert alert.subjects == (f"principal:arn:aws:iam::{ACCOUNT}:user/{user}",)
    by_aws = dict(record, userIdentity={"type": "AWSService", "invokedBy": "AWS Internal"})
    alert = one("cloudtrail", by_aws)
    assert (alert.severity, alert.high_confidence) == ("critical", True) and alert.title.startswith("AWS applied")


def test_cloudtrail_record_of_another_event_is_rejected() -> None:
    record = dict(load("cloudtrail_quarantine.panther_analysis.json")["Records"][0], eventName="DetachUserPolicy")
    with pytest.raises(InputError, match=r"^eventName 'DetachUserPolicy' is not a quarantine-policy attach"):
        normalize("cloudtrail", record)


def test_real_github_alert_about_another_secret_type_is_not_actionable() -> None:
    payload = load("github_secret_scanning_alert_reopened.octokit.json")
    with pytest.raises(NotActionable, match=r"alert\.secret_type 'adafruit_io_key' is not an AWS access key id"):
        normalize("github", payload)


def test_real_github_alert_about_an_aws_key_needs_the_fetched_secret() -> None:
    payload = load("github_secret_scanning_alert_reopened.octokit.json")
    payload["alert"]["secret_type"] = "aws_access_key_id"
    assert github_alert_ref(payload).api_path == "/repos/Codertocat/Hello-World/secret-scanning/alerts/191"
    with pytest.raises(InputError, match=r"^alert\.secret is missing: GitHub webhooks do not carry the secret; "
                                         r"fetch it from GET /repos/Codertocat/Hello-World/secret-scanning/alerts/191"):
        normalize("github", payload)
    payload["alert"]["secret"] = KEY
    alert = one("github", payload)
    assert (alert.access_key_id, alert.alert_id, alert.severity) == (KEY, "Codertocat/Hello-World#191", "medium")


# --- identity, severities, malformed input --------------------------------------------------------


def test_same_finding_delivered_twice_gives_the_same_ids(tmp_path: Path) -> None:
    payloads = simulator_alerts(tmp_path, "pivot-chain")
    first, again = one("guardduty", payloads["guardduty"]), one("guardduty", copy.deepcopy(payloads["guardduty"]))
    assert (first.alert_id, first.idempotency_key, first.incident_id) == (
        again.alert_id, again.idempotency_key, again.incident_id)
    assert first.incident_id.startswith("inc-")
    assert one("generic", payloads["generic"]).alert_id == one("generic", payloads["generic"]).alert_id


@pytest.mark.parametrize(("score", "expected"), [(1.0, "low"), (3.9, "low"), (4.0, "medium"), (6.9, "medium"),
                                                 (7.0, "high"), (8.9, "high"), (9.0, "critical"), (10.0, "critical")])
def test_guardduty_severity_bands(score: float, expected: str) -> None:
    assert guardduty_severity(score) == expected


def test_asff_severity_prefers_the_label_then_normalized() -> None:
    assert asff_severity("INFORMATIONAL", 0) == "low"
    assert asff_severity(None, 95) == "critical"
    assert asff_severity("BOGUS", 45) == "medium"
    assert asff_severity(None, None) is None


def _guardduty(tmp_path: Path) -> dict[str, Any]:
    return simulator_alerts(tmp_path, "persistence")["guardduty"]


MALFORMED: list[tuple[str, str, Any]] = [
    ("guardduty", r"^detail\.resource\.accessKeyDetails\.accessKeyId is missing",
     lambda p: p["detail"]["resource"]["accessKeyDetails"].pop("accessKeyId")),
    ("guardduty", r"^detail\.resource\.accessKeyDetails\.accessKeyId: 'AKIA123' is not an AWS access key id",
     lambda p: p["detail"]["resource"]["accessKeyDetails"].update(accessKeyId="AKIA123")),
    ("guardduty", r"^detail\.severity must be a number, got a string",
     lambda p: p["detail"].update(severity="8")),
    ("guardduty", r"^detail\.accountId must be a 12-digit AWS account id",
     lambda p: p["detail"].update(accountId="12345")),
    ("guardduty", r"^detail\.service\.eventFirstSeen is not a time: 'yesterday'",
     lambda p: p["detail"]["service"].update(eventFirstSeen="yesterday")),
    ("guardduty", r"^detail\.resource must be a JSON object, got an array",
     lambda p: p["detail"].update(resource=[])),
    ("guardduty", r"^source is 'aws.health', expected 'aws.guardduty' on /alerts/guardduty; post it to /alerts/health",
     lambda p: p.update(source="aws.health")),
    ("guardduty", r"^detail-type 'Nope' is not one of",
     lambda p: p.update({"detail-type": "Nope"})),
]


@pytest.mark.parametrize(("source", "message", "mutate"), MALFORMED)
def test_malformed_payload_names_the_field(source: str, message: str, mutate: Any, tmp_path: Path) -> None:
    payload = _guardduty(tmp_path)
    mutate(payload)
    with pytest.raises(InputError, match=message):
        normalize(source, payload)


@pytest.mark.parametrize(("payload", "message"), [
    ({"reason": "x"}, r"^access_key_id: Field required"),
    ({"access_key_id": KEY}, r"^reason: Field required"),
    ({"access_key_id": 123, "reason": "x"}, r"^access_key_id: Input should be a valid string"),
    ({"access_key_id": "AKIAshort", "reason": "x"}, r"^access_key_id: 'AKIAshort' is not an AWS access key id"),
    ({"access_key_id": KEY, "reason": "x", "color": "red"}, r"^color: Extra inputs are not permitted"),
    ({"access_key_id": KEY, "reason": "x", "severity": "urgent"}, r"^severity: Input should be 'low'"),
    ({"access_key_id": KEY, "reason": "   "}, r"^reason must be a non-empty string"),
    ({"access_key_id": KEY, "reason": "x", "account_id": "abc"}, r"^account_id must be a 12-digit AWS account id"),
    ([KEY], r"^the body must be a JSON object, got an array"),
])
def test_malformed_generic_alert_names_the_field(payload: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        normalize("generic", payload)


def test_unknown_source_is_rejected() -> None:
    with pytest.raises(InputError, match="unknown alert source 'pagerduty'"):
        normalize("pagerduty", {})


def test_health_event_of_another_type_is_rejected() -> None:
    event = load("health_risk_credentials_exposed.aws_health_tools.json")
    event["detail"]["eventTypeCode"] = "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED"
    with pytest.raises(InputError, match=r"^detail\.eventTypeCode 'AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED' is not a "
                                         "credential-exposure event"):
        normalize("health", event)


def test_alert_model_dumps_to_json_for_flow_parameters(tmp_path: Path) -> None:
    alert = one("guardduty", _guardduty(tmp_path))
    dumped = alert.model_dump(mode="json")
    assert dumped["observed_at"].endswith("Z")
    assert Alert.model_validate(dumped) == alert


def test_a_quarantine_policy_an_attacker_attached_is_no_reason_to_contain_without_approval(
    sandbox: MotoSandbox, unique_name: str
) -> None:
    """The attack: a key holding only iam:AttachUserPolicy attaches AWS's quarantine policy to another
    user (moto, with IAM enforcement on), sending the user agent AWS's own calls show. The record
    CloudTrail writes for that call names the attacker as the caller: the alert is not high confidence,
    so the response contains nothing before a human approves (the run's early containment is for
    high-confidence alerts only)."""
    iam = boto3.client("iam")
    victim, attacker = f"{unique_name}-victim", f"{unique_name}-attacker"
    iam.create_user(UserName=victim)
    iam.create_user(UserName=attacker)
    iam.put_user_policy(UserName=attacker, PolicyName="attach-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:AttachUserPolicy", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=attacker)["AccessKey"]
    session = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                            region_name="us-east-1")
    as_attacker = session.client("iam", config=Config(user_agent="AWS Internal"))
    quarantine = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"
    sandbox.set_auth(True)
    try:
        as_attacker.attach_user_policy(UserName=victim, PolicyArn=quarantine)
        caller = session.client("sts").get_caller_identity()
    finally:
        sandbox.set_auth(False)
    assert [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=victim)["AttachedPolicies"]] == [quarantine]

    record = {  # what CloudTrail writes for that call: the caller is the attacker's own identity
        "eventVersion": "1.09", "eventTime": "2026-11-19T10:00:00Z", "eventSource": "iam.amazonaws.com",
        "eventName": "AttachUserPolicy", "awsRegion": "us-east-1", "sourceIPAddress": "45.134.26.19",
        "userAgent": "AWS Internal", "requestParameters": {"userName": victim, "policyArn": quarantine},
        "responseElements": None, "eventID": "3b1f0c2e-5d4a-4e8b-9c7d-6a5b4c3d2e1f", "readOnly": False,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": caller["Account"],
        "userIdentity": {"type": "IAMUser", "principalId": caller["UserId"], "arn": caller["Arn"],
                         "accountId": caller["Account"], "accessKeyId": key["AccessKeyId"], "userName": attacker}}
    alert = one("cloudtrail", record)
    assert alert.high_confidence is False and alert.severity == "high"
    assert alert.principal == f"arn:aws:iam::{caller['Account']}:user/{victim}" and caller["Arn"] in alert.title
    by_aws = one("cloudtrail", dict(record, userIdentity={"type": "AWSService", "invokedBy": "AWS Internal"}))
    assert by_aws.high_confidence is True
