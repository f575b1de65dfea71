"""Every message keyresponse sends, to Slack and/or SNS, on one path: incident messages (approval
requests, escalations and outcomes) and the preventive key scan's notifications to the owners of
flagged credentials.

Both kinds become one `Message` (`IncidentMessage.message`, `Notification.message`), which `send`
hands to the one function that posts to Slack (`post_to_slack`) and the one that publishes to SNS
(`publish_to_sns`), each only when `Settings` names it (`slack_webhook_url`, `sns_topic_arn`). `send`
returns the channels that accepted the message. A failed delivery is logged and never stops the
response: containment matters more than chat.

Attacker-controlled text is not sent as it is. Incident messages carry ids, counts and links only;
the few that carry the reason of a failure (an AWS error, a guardrail's refusal, a launch error) send
it through `reason`: cut short, with Slack's control characters (`&`, `<`, `>`) escaped, so no text
in it can mention a channel or make a link. An owner notification names a user, its owner tag and
its keys, which come from the accounts (an attacker who created users chose those names): its
subject, recipient and every line of its body go through `reason` too. Slack is asked not to unfurl
links in any message, so it fetches nothing a message names.

A `Notification` is a record first: the scan decides who must hear what and by when, the flow sends
it, notes the channels that took it in `delivered` and appends it to `<home>/notifications.jsonl`
(`record`), whether or not a channel is configured.

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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from keyresponse.settings import Settings, get_settings

log = logging.getLogger("keyresponse.notifications")

#: Where owner notifications go when the user carries no `owner` tag.
UNOWNED_RECIPIENT = "security-team"


def reason(text: object, limit: int = 300) -> str:
    """Attacker-controlled text (a failure's reason, a name from the accounts) as it may go into a
    message: one line, at most `limit` characters, with Slack's control characters escaped
    (`<!channel>` or `<https://…|…>` in it stay text)."""
    line = " ".join(str(text).split())
    if len(line) > limit:
        line = line[:limit - 1] + "…"
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Message(BaseModel):
    """One message as the channels carry it, whatever it is about. `subject`, `text` and `link` are
    Slack-safe already (whoever builds a Message escapes attacker text); SNS gets them as JSON with
    `details`, and `kind` (and `recipient`, if any) as attributes a subscription can filter on."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="approval_requested | escalation | outcome | owner_notification")
    subject: str
    text: str
    link: str | None = None
    about: str = Field(description="What it is about, for the log line of a failed delivery.")
    recipient: str | None = Field(default=None, description="Who must act on it (an owner notification's).")
    details: dict[str, Any] = Field(default_factory=dict, description="More fields of the SNS message's JSON.")

    def slack_payload(self) -> dict[str, JsonValue]:
        link = f"\n<{self.link}|Open in Prefect>" if self.link else ""
        return {"text": f"*{self.subject}*\n{self.text}{link}", "unfurl_links": False, "unfurl_media": False}

    def sns_message(self) -> str:
        return json.dumps({**self.details, "kind": self.kind, "subject": self.subject, "text": self.text,
                           "link": self.link})


@dataclass(frozen=True)
class IncidentMessage:
    """A message about an incident; its SNS JSON is its fields, as it always was."""

    incident_id: str
    kind: str  # approval_requested | escalation | outcome
    subject: str
    text: str
    link: str | None = None

    def message(self) -> Message:
        return Message(kind=self.kind, subject=self.subject, text=self.text, link=self.link,
                       about=self.incident_id, details=asdict(self))


class Notification(BaseModel):
    """One message to one owner about one IAM user's credentials (planned by `keyresponse.keyscan`)."""

    recipient: str = Field(description="The owner tag of the user, or the security team when there is none.")
    has_owner: bool = Field(description="False when the user carries no owner tag (sent to the security team).")
    reason: Literal["new_finding", "grace_period_over"]
    account_id: str
    user_name: str
    findings: list[str] = Field(description="Fingerprints of the findings this message is about.")
    access_key_ids: list[str] = Field(default_factory=list)
    deadline_at: datetime = Field(description="When the key may be deactivated unless fixed or excepted.")
    created_at: datetime
    subject: str
    body: str
    delivered: list[str] | None = Field(
        default=None, description="The channels (slack, sns) that accepted it once sent: [] when none did or "
                                  "none is configured; None when it was not sent (`keyresponse scan-keys`).")

    def message(self) -> Message:
        """As the channels carry it. The user name, owner tag and key ids come from the accounts, so
        the subject, recipient and each line of the body are escaped (`reason`); SNS also gets the
        notification's own fields, as data."""
        to = (f"For {reason(self.recipient, 200)} (owner tag of the user)." if self.has_owner
              else f"For {reason(self.recipient, 200)}: the user has no owner tag.")
        lines = [reason(line, 1000) for line in self.body.splitlines()]
        return Message(kind="owner_notification", subject=reason(self.subject, 300), text="\n".join([to, *lines]),
                       about=reason(f"{self.reason} {self.account_id}/{self.user_name}", 200),
                       recipient=self.recipient,
                       details={"notification": self.model_dump(mode="json", exclude={"delivered"})})


def record(notification: Notification, path: Path) -> None:
    """Append `notification` (with `delivered`) to `path` as one JSON line: the scan's own record of
    what it told whom, kept whether or not a channel is configured or took it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(notification.model_dump(mode="json"), sort_keys=True) + "\n")


def first_response_failed(incident_id: str, outcome: Mapping[str, object]) -> IncidentMessage:
    """The first response did not contain the key, or contained it without the deny on its owner."""
    key, status = outcome.get("access_key_id"), outcome.get("status")
    if status in ("failed", "refused"):
        what = "FAILED" if status == "failed" else "REFUSED by a guardrail"
        text = (f"The alert receiver did not deactivate key {key} ({status} after "
                f"{outcome.get('attempts', 1)} attempt(s)): {reason(outcome.get('reason'))}. The key may still "
                "be usable: the flow run contains it when it starts; check it now.")
        return IncidentMessage(incident_id, "escalation", f"[{incident_id}] first response {what}", text)
    given = outcome.get("owner_deny")
    deny: Mapping[str, object] = given if isinstance(given, Mapping) else {}
    text = (f"Key {key} is deactivated, but the deny on its user was not applied ({deny.get('status')}): "
            f"{reason(deny.get('reason'))}. Another key or a session of the user may still work.")
    return IncidentMessage(incident_id, "escalation", f"[{incident_id}] first response incomplete", text)


def first_response_recontained(incident_id: str, recheck: Mapping[str, object]) -> IncidentMessage:
    """The recheck found the key re-activated, or a key minted since, and contained it again."""
    recontained = recheck.get("recontained")
    keys = (", ".join(str(k) for k in recontained) if isinstance(recontained, list) else "") or "none"
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


def send(message: IncidentMessage | Notification, settings: Settings | None = None) -> list[str]:
    """Deliver to every configured channel; returns the channels that accepted the message. The one
    path out for incident messages and owner notifications alike."""
    settings = settings or get_settings()
    shaped = message.message()
    delivered: list[str] = []
    if settings.slack_webhook_url and post_to_slack(shaped, settings.slack_webhook_url):
        delivered.append("slack")
    if settings.sns_topic_arn and publish_to_sns(shaped, settings.sns_topic_arn):
        delivered.append("sns")
    return delivered


def post_to_slack(message: Message, webhook_url: str) -> bool:
    """Post to a Slack incoming webhook; False (and a warning) when it is not accepted."""
    try:
        response = httpx.post(webhook_url, json=message.slack_payload(), timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("Slack notification for %s failed: %s", message.about, exc)
        return False
    return True


def publish_to_sns(message: Message, topic_arn: str) -> bool:
    """Publish to an SNS topic (in the topic's region); False (and a warning) when it is not accepted.
    SNS takes a subject of fewer than 100 characters."""
    from botocore.exceptions import BotoCoreError, ClientError

    from keyresponse.aws import client

    attributes = {"kind": {"DataType": "String", "StringValue": message.kind}}
    if message.recipient:
        attributes["recipient"] = {"DataType": "String", "StringValue": message.recipient}
    try:
        region = topic_arn.split(":")[3]
        client("sns", region=region).publish(TopicArn=topic_arn, Subject=message.subject[:99],
                                             Message=message.sns_message(), MessageAttributes=attributes)
    except (BotoCoreError, ClientError, IndexError) as exc:
        log.warning("SNS notification for %s failed: %s", message.about, exc)
        return False
    return True
