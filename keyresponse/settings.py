"""The one place that reads settings. Environment variables carry the `KEYRESPONSE_` prefix.

AWS itself is configured the standard way (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …):
keyresponse never invents its own variables for what boto3 already reads.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyresponse.guardrails import protected_entries


class Settings(BaseSettings):
    """Everything a deployment can tune. Defaults suit the embedded sandbox."""

    model_config = SettingsConfigDict(env_prefix="KEYRESPONSE_", env_file=None, extra="ignore")

    home: Path = Field(
        default=Path(".keyresponse"),
        description="Working folder: evidence (when no bucket is set), ledgers, caches, reports.",
    )
    region: str = Field(default="us-east-1", description="Home region for global services (IAM, STS).")
    protected_principals: list[str] = Field(
        default_factory=lambda: ["break-glass"],
        description="Users or roles no action may touch (break-glass identities): a name (a user or a role, any "
                    "account), user/NAME or role/NAME (that kind), or an ARN (that kind in that account). Names "
                    "match whatever their case, as IAM's uniqueness does (keyresponse.guardrails.ProtectedPrincipal).",
    )
    accounts_in_scope: list[str] = Field(
        default_factory=list,
        description="Account ids the responder may act in. Empty means only the responder's own account.",
    )
    response_role_name: str = Field(
        default="KeyResponseResponder",
        description="Role assumed in member accounts of an AWS Organization.",
    )
    evidence_bucket: str | None = Field(default=None, description="S3 bucket with Object Lock for evidence.")
    athena_database: str = Field(default="security", description="Athena database of the CloudTrail table.")
    athena_table: str = Field(default="cloudtrail", description="Athena CloudTrail table.")
    athena_workgroup: str = Field(default="primary", description="Athena workgroup.")
    athena_output: str | None = Field(default=None, description="s3:// location for Athena results.")
    cloudtrail_logs: str | None = Field(
        default=None, description="Where the CloudTrail files are: a folder or s3://bucket/prefix."
    )
    webhook_eventbridge_token: str | None = Field(
        default=None,
        description="KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN: the bearer token of the EventBridge connection. "
                    "`readiness --apply` puts `Authorization: Bearer <it>` in the connection, and the receiver "
                    "(`WebhookSettings.eventbridge_token`, the same variable) accepts it on the AWS alert routes.")
    engine: str = Field(default="duckdb", pattern="^(duckdb|athena)$",
                        description="Query engine of the analysis phase: duckdb (cloudtrail_logs) or athena.")
    auto_contain: bool = Field(
        default=True,
        description="Contain the compromised key right after validation, without approval, when the alert is "
                    "high confidence (AWS Health exposure, AWS itself attaching its quarantine policy, GuardDuty severity >= 7).",
    )
    first_response_deny_owner: bool = Field(
        default=True,
        description="With the key of a high-confidence alert deactivated, the receiver's first response also "
                    "denies every request of the key's user (every other key, every session) with an inline "
                    "policy, until recovery removes it or `keyresponse undo` does: a second key the attacker "
                    "minted before the alert is stopped too (tasks/first_response.py says why).")
    first_response_attempts: int = Field(
        default=5, ge=1, le=10,
        description="How many times the first response tries each AWS step that failed on throttling, a 5xx or "
                    "a broken connection (exponential backoff with jitter); a refusal is never tried again.")
    first_response_retry_seconds: float = Field(
        default=30.0, gt=0, le=300,
        description="No new try of the first response starts after this many seconds from its start.")
    first_response_recheck_seconds: float = Field(
        default=60.0, ge=0,
        description="This long after the first response, the receiver reads the key and the owner's keys again "
                    "and contains again a key re-activated or a key minted since (0: never).")
    require_approval: bool = Field(
        default=True,
        description="KEYRESPONSE_REQUIRE_APPROVAL: ask a named human before each mutating phase (and each new "
                    "containment round). false applies every plan without asking: a lab setting, never a flow "
                    "parameter, so that whoever can start a deployment run cannot turn approvals off.")
    recheck_delay_seconds: int = Field(
        default=900, ge=0,
        description="CloudTrail's delivery delay (it delivers in about 5 to 15 min): how long after containment "
                    "the response waits before it re-verifies the contained keys, re-scopes for credentials "
                    "minted in the gap and checks the contained credentials' activity again "
                    "(keyresponse.containment_check).")
    containment_grace_seconds: int = Field(
        default=15, ge=0,
        description="IAM is eventually consistent: a successful call by a contained credential this soon after "
                    "its containment is shown in the report but does not reopen the incident.")
    approval_timeout_seconds: int = Field(
        default=3600, ge=5, description="How long an approval waits before it is escalated (again after every such period; the response keeps waiting: keyresponse.waiting).")
    approval_poll_seconds: int = Field(default=2, ge=1, le=10, description="How often a paused run checks for input.")
    slack_webhook_url: str | None = Field(default=None, description="Slack incoming webhook for notifications.")
    sns_topic_arn: str | None = Field(default=None, description="SNS topic for notifications.")
    ui_url: str | None = Field(default=None, description="Prefect UI base URL, for links in notifications.")
    intel: dict[str, Any] = Field(
        default_factory=dict,
        description='Attribution sources, JSON: {"aws_ranges": path|url, "gcp_ranges", "azure_ranges", '
                    '"tor_exits", "threat_lists": {name: path|url}, "cache_dir"}; URLs are fetched and cached.',
    )
    aws_max_attempts: int = Field(default=8, ge=1, le=20, description="boto3 retry attempts.")
    aws_retry_mode: Literal["adaptive", "standard"] = Field(
        default="adaptive",
        description="boto3 retry mode: adaptive (backoff with jitter plus client-side rate limiting, for "
                    "production) or standard (backoff with jitter only).")

    @field_validator("protected_principals")
    @classmethod
    def _protected(cls, entries: list[str]) -> list[str]:
        protected_entries(entries)  # a malformed entry fails here, when the settings load, not mid-incident
        return entries


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
