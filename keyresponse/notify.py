"""Notifications to the owners of flagged credentials, as data, and the small protocol that delivers them.

A notification is a record first: the scan decides who must hear what and by when, and a
`Notifier` delivers it. `RecordingNotifier` (the default) appends each one as a JSON line to a file
and keeps it in memory; Slack or SNS delivery is another class with the same `send` method.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

#: Where notifications go when the user carries no `owner` tag.
UNOWNED_RECIPIENT = "security-team"


class Notification(BaseModel):
    """One message to one owner about one IAM user's credentials."""

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


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications. Raise on failure; never return False."""

    def send(self, notification: Notification) -> None: ...


class RecordingNotifier:
    """Keeps every notification in `sent` and, if given a path, appends it as a JSON line."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(notification.model_dump(mode="json"), sort_keys=True) + "\n")
        self.sent.append(notification)
