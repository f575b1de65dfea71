"""The receiver's settings: `WebhookSettings` (the `KEYRESPONSE_WEBHOOK_*` variables), and `check`,
which refuses a configuration the receiver must not start with."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyresponse.errors import ConfigurationError

DEFAULT_DEPLOYMENT = "respond-to-exposed-key/respond-to-exposed-key"


def _default_spool() -> Path:
    from keyresponse.settings import get_settings

    return get_settings().home / "webhook-spool"


class WebhookSettings(BaseSettings):
    """The receiver's settings; environment variables carry the `KEYRESPONSE_WEBHOOK_` prefix.

    `KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN` is one setting for both ends of AWS's delivery: the EventBridge
    connection that `keyresponse readiness --apply` creates sends `Authorization: Bearer <it>`
    (`Settings.webhook_eventbridge_token` reads the same variable), and the receiver accepts it.
    """

    model_config = SettingsConfigDict(env_prefix="KEYRESPONSE_WEBHOOK_", env_file=None, extra="ignore")

    secret: SecretStr | None = Field(default=None, description="HMAC secret for X-Keyresponse-Signature.")
    secrets: list[SecretStr] = Field(default_factory=list, description="More HMAC secrets (rotation), JSON list.")
    eventbridge_token: SecretStr | None = Field(
        default=None, description="Token of the EventBridge connection (Authorization: Bearer), the one "
        "`readiness --apply` puts in it from the same variable, KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN.")
    bearer_token: SecretStr | None = Field(default=None, description="Token for Authorization: Bearer.")
    github_secret: SecretStr | None = Field(
        default=None, description="GitHub webhook secret (X-Hub-Signature-256), for /alerts/github only.")
    replay_window_seconds: int = Field(default=300, ge=1, description="Max age (and skew) of a signature.")
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="Larger bodies get 413 before parsing.")
    github_api_url: str = Field(default="https://api.github.com", description="GitHub REST API base URL.")
    github_token: SecretStr | None = Field(default=None, description="Token that may read secret-scanning alerts.")
    deployment_name: str = Field(default=DEFAULT_DEPLOYMENT, description="flow-name/deployment-name to run.")
    spool: Path = Field(default_factory=_default_spool, description="Folder of accepted alerts.")
    prefect_ui_url: str | None = Field(default=None, description="Prefect UI base URL for links in answers.")
    incident_open_seconds: int = Field(
        default=72 * 3600, ge=1, description="How long a key stays mapped to its incident unless closed earlier."
    )
    launch_timeout_seconds: float = Field(default=20.0, gt=0, description="Max wait for the launcher.")
    answer_within_seconds: float = Field(
        default=4.0, gt=0, description="Answer 202 `launching` (alert spooled, launch going on) when the launch "
        "takes longer than this; EventBridge API destinations give up after 5 s.")
    retry_after_seconds: int = Field(default=30, ge=1, description="Retry-After of a 503.")
    unauthenticated_rate_per_second: float = Field(
        default=5.0, gt=0, description="Requests a second one client address may make to the routes that take no "
        "credentials (/healthz, and any path that is not an alert route), after its burst; more get 429.")
    unauthenticated_burst: int = Field(
        default=20, ge=1, description="How many such requests one client address may make at once.")
    run_check_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Max wait for the state of an open incident's flow run; past it (or when "
        "Prefect cannot be reached) the alert stays attached to the incident and the answer says so.")
    stuck_after_seconds: float = Field(
        default=600.0, gt=0, description="An alert still without a flow run this long after it was accepted is "
        "notified (Slack/SNS), once; the relaunch pass (every RETRY_AFTER_SECONDS) finds it.")

    def hmac_secrets(self) -> list[bytes]:
        values = ([self.secret] if self.secret else []) + list(self.secrets)
        return [v.get_secret_value().encode() for v in values if v.get_secret_value()]

    def github_secrets(self) -> list[bytes]:
        """GitHub's secret, and no other: it never falls back to the HMAC secret."""
        if self.github_secret and self.github_secret.get_secret_value():
            return [self.github_secret.get_secret_value().encode()]
        return []

    def credentials(self) -> list[tuple[str, SecretStr]]:
        """Every secret configured, with the variable it comes from."""
        named: list[tuple[str, SecretStr | None]] = [
            ("KEYRESPONSE_WEBHOOK_SECRET", self.secret),
            *((f"KEYRESPONSE_WEBHOOK_SECRETS[{i}]", value) for i, value in enumerate(self.secrets)),
            ("KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN", self.eventbridge_token),
            ("KEYRESPONSE_WEBHOOK_BEARER_TOKEN", self.bearer_token),
            ("KEYRESPONSE_WEBHOOK_GITHUB_SECRET", self.github_secret),
        ]
        return [(name, value) for name, value in named if value is not None]

    def check(self) -> None:
        """Refuse a configuration the receiver must not start with: no credential at all, an empty one, or
        one secret used by two sources (each source's secret is its own: a leak of one must not open the
        others)."""
        credentials = self.credentials()
        for name, value in credentials:
            if not value.get_secret_value().strip():  # it would start, refuse every alert and look healthy
                raise ConfigurationError(f"{name} is set but empty: unset it, or set it to a secret of its own")
        if not credentials:
            raise ConfigurationError("the webhook needs KEYRESPONSE_WEBHOOK_SECRET, KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN, "
                                     "KEYRESPONSE_WEBHOOK_BEARER_TOKEN or KEYRESPONSE_WEBHOOK_GITHUB_SECRET: it never "
                                     "accepts unauthenticated alerts")
        first_use: dict[str, str] = {}
        for name, value in credentials:
            text = value.get_secret_value().strip()
            if text in first_use:
                raise ConfigurationError(f"{first_use[text]} and {name} hold the same secret: give each source its "
                                         "own (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
            first_use[text] = name
