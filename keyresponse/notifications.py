"""Incident notifications: approval requests, escalations and outcomes, to Slack and/or SNS.

A failed delivery is logged and never stops the response: containment matters more than chat.
Attacker-controlled text is not sent: messages carry ids, counts and links only. The few that carry
the reason of a failure (an AWS error, a guardrail's refusal, a launch error) send it through
`reason`: cut short, with Slack's control characters (`&`, `<`, `>`) escaped, so no text in it can
mention a channel or make a link.

The receiver's own messages are built here too, so every Slack/SNS text lives in this module:

| builder | sent when |
|---|---|
| `first_response_failed` | the receiver could not contain a high-confidence alert's key (`failed`), a guardrail refused it (`refused`), or the key is contained but the deny on its owner is not |
| `first_response_recontained` | the recheck after the first response found the key re-activated or a key minted since, and contained it again |
| `launch_failed` | a flow run could not be started for an alert (once per alert and incident) |
| `alert_stuck` | an alert has waited longer than `KEYRESPONSE_WEBHOOK_STUCK_AFTER_SECONDS` for its flow run (once) |
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


def reason(text: object, limit: int = 300) -> str:
    """A failure's reason as it may go into a message: one line, at most `limit` characters, with
    Slack's control characters escaped (`<!channel>` or `<https://…|…>` in it stay text)."""
    line = " ".join(str(text).split())
    if len(line) > limit:
        line = line[:limit - 1] + "…"
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def first_response_failed(incident_id: str, outcome: dict[str, Any]) -> IncidentMessage:
    """The first response did not contain the key, or contained it without the deny on its owner."""
    key, status = outcome.get("access_key_id"), outcome.get("status")
    if status in ("failed", "refused"):
        what = "FAILED" if status == "failed" else "REFUSED by a guardrail"
        text = (f"The alert receiver did not deactivate key {key} ({status} after "
                f"{outcome.get('attempts', 1)} attempt(s)): {reason(outcome.get('reason'))}. The key may still "
                "be usable: the flow run contains it when it starts; check it now.")
        return IncidentMessage(incident_id, "escalation", f"[{incident_id}] first response {what}", text)
    deny = outcome.get("owner_deny") or {}
    text = (f"Key {key} is deactivated, but the deny on its user was not applied ({deny.get('status')}): "
            f"{reason(deny.get('reason'))}. Another key or a session of the user may still work.")
    return IncidentMessage(incident_id, "escalation", f"[{incident_id}] first response incomplete", text)


def first_response_recontained(incident_id: str, recheck: dict[str, Any]) -> IncidentMessage:
    """The recheck found the key re-activated, or a key minted since, and contained it again."""
    keys = ", ".join(recheck.get("recontained") or []) or "none"
    parts = [f"key(s) deactivated again: {keys}"]
    if recheck.get("owner_deny_restored"):
        parts.append("the deny on the owner, which was gone, attached again")
    return IncidentMessage(incident_id, "escalation", f"[{incident_id}] contained key re-opened: contained again",
                           f"{recheck.get('seconds_after', '?')} s after the first response: {'; '.join(parts)}. "
                           "Someone still holds a way in: look for it now.")


def launch_failed(incident_id: str, error: object) -> IncidentMessage:
    """No flow run could be started for an alert; it stays spooled and is launched again."""
    return IncidentMessage(incident_id, "escalation", f"[{incident_id}] flow run could not be started",
                           f"The alert is spooled and its launch is tried again: {reason(error)}")


def alert_stuck(incident_id: str, waited_seconds: float, error: object) -> IncidentMessage:
    """An alert has waited too long for its flow run."""
    last = f" Last launch error: {reason(error)}." if error else ""
    return IncidentMessage(incident_id, "escalation", f"[{incident_id}] alert waits for its flow run",
                           f"Accepted {int(waited_seconds)} s ago and still no flow run: nobody is responding "
                           f"to it but the receiver's first response.{last}")


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
