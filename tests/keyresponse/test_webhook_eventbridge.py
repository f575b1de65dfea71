"""AWS's own delivery reaches the receiver: what `keyresponse readiness --apply` builds in EventBridge is
what the receiver accepts.

Real components: `keyresponse readiness --apply` (the CLI) against a moto server of this module's own,
the receiver under uvicorn on 127.0.0.1 configured from the same environment, and an alert posted the
way the API destination would post it: to the destination's endpoint, with the header the connection
holds, read back from where EventBridge keeps it (the connection's Secrets Manager secret).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from local_servers import Receiver, RecordingLauncher
from typer.testing import CliRunner

from keyresponse.readiness.routes import ALERT_ROUTES, CONNECTION_NAME, DEAD_LETTER_QUEUE_NAME
from keyresponse.receiver.app import create_app
from keyresponse.receiver.config import WebhookSettings
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import Settings, get_settings

pytestmark = pytest.mark.slow  # a moto server of its own and a whole readiness --apply

US = "us-east-1"
EVENTBRIDGE_TOKEN = "eventbridge-connection-token-0123456789"
HMAC_SECRET = "receiver-hmac-secret-0123456789abcdef"


@dataclass
class Applied:
    box: MotoSandbox
    receiver_url: str
    launcher: RecordingLauncher
    readiness: dict[str, Any]


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    home = tmp_path_factory.mktemp("home")
    env = {"KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN": EVENTBRIDGE_TOKEN, "KEYRESPONSE_WEBHOOK_SECRET": HMAC_SECRET,
           "KEYRESPONSE_HOME": str(home), "KEYRESPONSE_WEBHOOK_SPOOL": str(home / "spool")}
    with MotoSandbox() as box, pytest.MonkeyPatch.context() as patch:
        for key, value in {**box.env(), **env}.items():
            patch.setenv(key, value)
        patch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
        get_settings.cache_clear()
        launcher = RecordingLauncher()
        # The receiver reads its settings from the environment, like `keyresponse serve-webhook`.
        with Receiver(create_app(WebhookSettings(), launcher)) as receiver:
            from keyresponse.cli import app

            result = CliRunner().invoke(app, ["readiness", "--apply", "--yes", "--json", "--regions", US,
                                              "--no-data-events", "--webhook-url", receiver.url])
            get_settings.cache_clear()
            assert result.exit_code == 0, result.output
            yield Applied(box, receiver.url, launcher, json.loads(result.stdout))
    get_settings.cache_clear()


def guardduty_finding(key: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    finding = uuid.uuid4().hex
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": "123456789012", "time": now, "region": US, "resources": [],
            "detail": {"schemaVersion": "2.0", "accountId": "123456789012", "region": US, "id": finding,
                       "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller", "severity": 8, "createdAt": now,
                       "updatedAt": now, "title": "API called from a known malicious IP",
                       "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                           "accessKeyId": key, "userName": "alice", "userType": "IAMUser"}},
                       "service": {"serviceName": "guardduty", "eventFirstSeen": now, "eventLastSeen": now}}}


def test_readiness_and_the_receiver_read_one_eventbridge_token_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN", EVENTBRIDGE_TOKEN)
    receiver = WebhookSettings().eventbridge_token
    assert receiver is not None and receiver.get_secret_value() == Settings().webhook_eventbridge_token


def test_an_alert_sent_with_the_connection_readiness_created_is_accepted(applied: Applied) -> None:
    events = boto3.client("events", region_name=US)
    route = next(r for r in ALERT_ROUTES if r.source == "guardduty")
    destination = events.describe_api_destination(Name=route.destination_name)
    assert destination["InvocationEndpoint"] == f"{applied.receiver_url}/alerts/guardduty"
    connection = events.describe_connection(Name=CONNECTION_NAME)
    assert destination["ConnectionArn"] == connection["ConnectionArn"]
    # What EventBridge sends: the API key it keeps in the connection's secret (moto stores it as AWS does).
    stored = json.loads(boto3.client("secretsmanager", region_name=US)
                        .get_secret_value(SecretId=connection["SecretArn"])["SecretString"])
    header = {stored["api_key_name"]: stored["api_key_value"]}

    key = "AKIAEVENTBRIDGE00001"
    before = len(applied.launcher.calls)
    response = httpx.request(destination["HttpMethod"], destination["InvocationEndpoint"],
                             content=json.dumps(guardduty_finding(key)).encode(),
                             headers={"Content-Type": "application/json", **header}, timeout=10)
    assert response.status_code == 202, response.text
    assert [a.access_key_id for a in applied.launcher.calls[before:]] == [key]


def test_the_alert_rules_keep_undeliverable_alerts_in_a_dead_letter_queue(applied: Applied) -> None:
    events = boto3.client("events", region_name=US)
    sqs = boto3.client("sqs", region_name=US)
    url = sqs.get_queue_url(QueueName=DEAD_LETTER_QUEUE_NAME)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    statement = json.loads(attributes["Policy"])["Statement"][0]
    for route in ALERT_ROUTES:
        targets = events.list_targets_by_rule(Rule=route.rule_name)["Targets"]
        assert len(targets) == 1, targets
        target = targets[0]
        assert target["DeadLetterConfig"] == {"Arn": attributes["QueueArn"]}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
        rule_arn = events.describe_rule(Name=route.rule_name)["Arn"]
        pattern = statement["Condition"]["ArnLike"]["aws:SourceArn"]
        assert rule_arn.startswith(pattern.removesuffix("*")), (rule_arn, pattern)
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    routes = {c["id"]: c["status"] for c in applied.readiness["checks"] if c["id"].startswith("alerts_")}
    assert routes == {r.check_id: "pass" for r in ALERT_ROUTES}


def test_a_rule_without_a_dead_letter_queue_fails_readiness(applied: Applied, tmp_path: Path) -> None:
    from keyresponse.readiness import ReadinessOptions
    from keyresponse.readiness.checks._alert_route import check_alert_route
    from tasks.actions import Clients

    events = boto3.client("events", region_name=US)
    route = next(r for r in ALERT_ROUTES if r.source == "health")
    target = events.list_targets_by_rule(Rule=route.rule_name)["Targets"][0]
    bare = {k: target[k] for k in ("Id", "Arn", "RoleArn")}
    events.put_targets(Rule=route.rule_name, Targets=[bare])
    try:
        check = check_alert_route(Clients(), ReadinessOptions(webhook_url=applied.receiver_url), route,
                                  "123456789012", US)
    finally:
        events.put_targets(Rule=route.rule_name, Targets=[target])
    assert check.status == "fail" and "without a dead-letter queue" in check.evidence
