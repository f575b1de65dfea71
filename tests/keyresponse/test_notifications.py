"""One way out for every message: the receiver's incident messages and the key scan's owner
notifications go through the same `send`, to a Slack incoming webhook (a fake on 127.0.0.1) and an
SNS topic (the session's moto server, read back through an SQS subscription).

The owner notifications are planned by the scan itself (`keyresponse.keyscan.plan_notifications`)
for a user whose name an attacker chose."""

from __future__ import annotations

import importlib
import json
import logging
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from local_servers import FakeSlack, LocalHTTPServer, reply

from keyresponse import notifications
from keyresponse.keyscan import Check, Finding, ScanPolicy, plan_notifications
from keyresponse.notifications import IncidentMessage, Notification, first_response_failed, record, send
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.server import admin_client
from keyresponse.settings import Settings

ACCOUNT = "111122223333"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
#: A user name that, sent as it is, would page the whole channel and plant a link.
HOSTILE = "<!channel> <https://evil|click>"
ESCAPED = "&lt;!channel&gt; &lt;https://evil|click&gt;"


def _owner_notification(user_name: str = HOSTILE, owner: str | None = "ops@example.com") -> Notification:
    """What the scan plans for a user with a 200-day-old key (a new finding)."""
    finding = Finding(check=Check.LONG_LIVED, account_id=ACCOUNT, user_name=user_name,
                      user_arn=f"arn:aws:iam::{ACCOUNT}:user/{user_name}", key_slot=1,
                      access_key_id="AKIAEXAMPLEHOSTILE01", key_created_at=NOW - timedelta(days=200), age_days=200,
                      owner=owner, detail=f"key of {user_name} created 200 days ago")
    [notification] = plan_notifications([finding], new={finding.fingerprint}, previous_at=None,
                                        policy=ScanPolicy(), now=NOW)
    return notification


def _slack_only(url: str) -> Settings:
    return Settings(slack_webhook_url=url, sns_topic_arn=None)


def test_incident_message_and_owner_notification_reach_slack_through_the_one_path() -> None:
    incident = first_response_failed("inc-notify-1", {"access_key_id": "AKIAEXAMPLEINCIDENT1", "status": "failed",
                                                      "reason": f"AccessDenied for {HOSTILE}"})
    owner = _owner_notification()
    with FakeSlack() as slack:
        assert send(incident, _slack_only(slack.url)) == ["slack"]
        assert send(owner, _slack_only(slack.url)) == ["slack"]
    [incident_text] = slack.said("inc-notify-1")
    [owner_text] = slack.said("AKIAEXAMPLEHOSTILE01")
    assert "first response FAILED" in incident_text and ESCAPED in incident_text
    assert f"IAM user {ESCAPED} in {ACCOUNT}" in owner_text  # the subject
    assert f"key of {ESCAPED} created 200 days ago" in owner_text  # the body
    assert "For ops@example.com (owner tag of the user)." in owner_text
    for text in slack.messages:
        assert "<!channel>" not in text and "<https://evil" not in text


def test_owner_notification_without_owner_names_the_security_team_and_escapes_every_line() -> None:
    notification = _owner_notification(owner=None)
    assert notification.recipient == notifications.UNOWNED_RECIPIENT and not notification.has_owner
    message = notification.message()
    assert message.kind == "owner_notification" and message.recipient == "security-team"
    assert message.text.startswith("For security-team: the user has no owner tag.")
    assert "<" not in message.subject + message.text
    assert message.details["notification"]["user_name"] == HOSTILE  # SNS gets the data as data (JSON)


def test_a_slack_endpoint_answering_500_delivers_nothing_and_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    posted: list[bytes] = []

    class Failing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            reply(self, 500, b"internal_error", "text/plain")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    caplog.set_level(logging.WARNING, logger="keyresponse.notifications")
    with LocalHTTPServer(Failing) as server:
        assert send(_owner_notification(), _slack_only(server.url)) == []
        assert send(IncidentMessage("inc-notify-500", "escalation", "subject", "text"), _slack_only(server.url)) == []
    assert len(posted) == 2  # both were tried
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Slack notification for inc-notify-500 failed" in w and "500" in w for w in warnings), warnings
    assert any(f"Slack notification for new_finding {ACCOUNT}/{ESCAPED} failed" in w for w in warnings), warnings


def test_nothing_is_sent_when_no_channel_is_configured() -> None:
    assert send(_owner_notification(), Settings(slack_webhook_url=None, sns_topic_arn=None)) == []


def test_owner_notification_reaches_sns_with_its_recipient_as_an_attribute(sandbox: MotoSandbox) -> None:
    sns, sqs = admin_client(sandbox.endpoint, "sns"), admin_client(sandbox.endpoint, "sqs")
    topic = sns.create_topic(Name="keyresponse-owner-notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="owner-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    notification = _owner_notification()
    incident = IncidentMessage("inc-notify-sns", "escalation", "[inc-notify-sns] subject", "text")
    settings = Settings(slack_webhook_url=None, sns_topic_arn=topic)
    assert send(notification, settings) == ["sns"] and send(incident, settings) == ["sns"]

    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    by_kind = {b["MessageAttributes"]["kind"]["Value"]: b for b in bodies}
    owner = by_kind["owner_notification"]
    assert owner["MessageAttributes"]["recipient"]["Value"] == "ops@example.com"
    assert owner["Subject"] == notification.message().subject[:99]
    assert json.loads(owner["Message"])["notification"]["access_key_ids"] == ["AKIAEXAMPLEHOSTILE01"]
    # an incident message's JSON is what it always was
    assert json.loads(by_kind["escalation"]["Message"]) == {
        "incident_id": "inc-notify-sns", "kind": "escalation", "subject": "[inc-notify-sns] subject",
        "text": "text", "link": None}


def test_record_appends_the_notification_with_the_channels_that_took_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "notifications.jsonl"
    first, second = _owner_notification(), _owner_notification(user_name="plain-user", owner=None)
    first.delivered, second.delivered = ["slack", "sns"], []
    record(first, path)
    record(second, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(n["user_name"], n["delivered"]) for n in lines] == [(HOSTILE, ["slack", "sns"]), ("plain-user", [])]
    assert Notification.model_validate(lines[0]) == first
    older = {k: v for k, v in lines[1].items() if k != "delivered"}  # a line written before `delivered`
    assert Notification.model_validate(older).delivered is None


def test_there_is_one_notifier_and_every_sender_uses_it() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("keyresponse.notify")
    import flows.phase
    import flows.preventive_key_scan
    import flows.undo_incident
    import keyresponse.receiver.intake
    import keyresponse.waiting

    assert flows.preventive_key_scan.send is notifications.send  # the scan's owner notifications
    assert keyresponse.receiver.intake._send is notifications.send  # the receiver's messages
    assert flows.phase.send is notifications.send and flows.undo_incident.send is notifications.send
    assert keyresponse.waiting.send is notifications.send
