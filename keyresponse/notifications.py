"""Incident notifications: approval requests, escalations and outcomes, to Slack and/or SNS.

A failed delivery is logged and never stops the response: containment matters more than chat.
Attacker-controlled text is not sent: messages carry ids, counts and links only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from keyresponse.settings import Settings, get_settings

log = logging.getLogger("keyresponse.notifications")


@dataclass(frozen=True)
class IncidentMessage:
    incident_id: str
    kind: str  # approval_requested | escalation | outcome
    subject: str
    text: str
    link: str | None = None

    def slack_payload(self) -> dict[str, Any]:
        link = f"\n<{self.link}|Open in Prefect>" if self.link else ""
        return {"text": f"*{self.subject}*\n{self.text}{link}"}


def send(message: IncidentMessage, settings: Settings | None = None) -> list[str]:
    """Deliver to every configured channel; returns the channels that accepted the message."""
    settings = settings or get_settings()
    delivered: list[str] = []
    if settings.slack_webhook_url:
        try:
            response = httpx.post(settings.slack_webhook_url, json=message.slack_payload(), timeout=10)
            response.raise_for_status()
            delivered.append("slack")
        except httpx.HTTPError as exc:
            log.warning("Slack notification for %s failed: %s", message.incident_id, exc)
    if settings.sns_topic_arn:
        from botocore.exceptions import BotoCoreError, ClientError

        from keyresponse.aws import client

        try:
            region = settings.sns_topic_arn.split(":")[3]
            client("sns", region=region).publish(
                TopicArn=settings.sns_topic_arn, Subject=message.subject[:99],
                Message=json.dumps(asdict(message)),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": message.kind}})
            delivered.append("sns")
        except (BotoCoreError, ClientError, IndexError) as exc:
            log.warning("SNS notification for %s failed: %s", message.incident_id, exc)
    return delivered
