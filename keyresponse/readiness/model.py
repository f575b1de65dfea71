"""What a readiness check finds (`Check`), and what the checks and the hardening plan are told (`ReadinessOptions`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["pass", "fail", "not_verifiable"]

#: The trail the hardening plan creates when no trail fits.
TRAIL_NAME = "keyresponse-trail"
#: The data events a trail should record unless told otherwise (S3 objects, Lambda invocations).
DATA_EVENT_TYPES = ("AWS::S3::Object", "AWS::Lambda::Function")


class ReadinessOptions(BaseModel):
    """What the readiness check and the hardening plan need beyond `Settings` (candidates for settings)."""

    regions: list[str] | None = Field(
        default=None, description="Regions to check; None means every region enabled in the account.")
    webhook_url: str = Field(
        default="https://keyresponse.example.com",
        description="Base URL of the alert receiver; EventBridge posts to <webhook_url>/alerts/<source>.")
    trail_name: str = Field(default=TRAIL_NAME, description="Name of the trail the plan creates when none fits.")
    trail_bucket: str | None = Field(
        default=None, description="The trail bucket when no trail exists yet (else the trail's own bucket).")
    data_events: list[str] = Field(
        default_factory=lambda: list(DATA_EVENT_TYPES),
        description="Data event resource types the trail must record (empty: data-access answers not wanted).")
    object_lock_days: int = Field(default=365, ge=1, description="Default retention (GOVERNANCE) on the trail bucket.")
    max_key_age_days: int = Field(default=90, ge=1, description="The preventive scan's long-lived key limit.")


class Check(BaseModel):
    """One readiness fact about one account (and region, for regional checks)."""

    id: str
    title: str
    account_id: str
    region: str | None = None
    status: Status
    evidence: str
    fix: str
    #: What the hardening planner needs to close the gap (names found while checking).
    facts: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.id}@{self.region}" if self.region else self.id
