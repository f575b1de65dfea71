"""The EventBridge connection that authenticates alerts to our webhook (Authorization: Bearer <token>).

Target: `Target(kind="connection", id="keyresponse-webhook", region=<region>)`. The token is
`settings.webhook_eventbridge_token`, read from KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN: the one setting
the receiver reads too (`WebhookSettings.eventbridge_token`), so what the connection sends is what the
receiver accepts. It goes to EventBridge (which keeps it in Secrets Manager) and never to the target,
the plan or the ledger. An existing connection of that name is kept as it is (it holds
credentials keyresponse cannot read back). Undo deletes the connection this action created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from keyresponse.errors import ConfigurationError, GuardrailRefusal
from tasks.actions import Action, ActionContext, Change, Target, error_code

API_KEY_NAME = "Authorization"


class CreateWebhookConnection(Action):
    name: ClassVar[str] = "create_webhook_connection"
    summary: ClassVar[str] = "Create the EventBridge connection that signs alerts to the webhook with its token."
    permissions: ClassVar[tuple[str, ...]] = (
        "events:DescribeConnection", "events:CreateConnection", "events:DeleteConnection",
        "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret",
        "secretsmanager:DeleteSecret",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("connection",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            found = ctx.client("events", target.region).describe_connection(Name=target.id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return {"exists": False}
            raise
        api_key = (found.get("AuthParameters") or {}).get("ApiKeyAuthParameters") or {}
        return {"exists": True, "authorization_type": found.get("AuthorizationType"),
                "api_key_name": api_key.get("ApiKeyName")}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["exists"])

    def plan(self, ctx: ActionContext, target: Target) -> Change | None:
        change = super().plan(ctx, target)
        if change is not None and not ctx.settings.webhook_eventbridge_token:
            raise ConfigurationError("the webhook connection needs the receiver's EventBridge token: set "
                                     "KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN here and where the receiver runs (it is "
                                     "stored by EventBridge, never by keyresponse)")
        return change

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"create EventBridge connection {target.id} in {target.region} (API key {API_KEY_NAME}: Bearer <token>)"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        token = ctx.settings.webhook_eventbridge_token
        if not token:
            raise ConfigurationError("KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN is not set")
        events = ctx.client("events", target.region)
        try:
            events.create_connection(
                Name=target.id, Description="keyresponse alert webhook", AuthorizationType="API_KEY",
                AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": API_KEY_NAME, "ApiKeyValue": f"Bearer {token}"}})
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
            raise GuardrailRefusal(f"connection {target.id} appeared meanwhile: not overwriting its credentials") from exc

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        ctx.client("events", target.region).delete_connection(Name=target.id)


ACTION = CreateWebhookConnection()
