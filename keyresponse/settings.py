"""The one place that reads settings. Environment variables carry the `KEYRESPONSE_` prefix.

AWS itself is configured the standard way (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …):
keyresponse never invents its own variables for what boto3 already reads.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description="User or role names (or ARNs) that no action may touch: break-glass identities.",
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
    webhook_secret: str | None = Field(default=None, description="HMAC secret / bearer token for alerts.")
    aws_max_attempts: int = Field(default=8, ge=1, le=20, description="boto3 retry attempts (adaptive).")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
