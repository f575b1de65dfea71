"""An EventBridge API destination: POST to one route of our webhook (`<webhook_url>/alerts/<source>`).

Target: `Target(kind="api_destination", id=<name>, region=<region>, data={"endpoint": <url>,
"connection": "keyresponse-webhook"})`. Done when the destination posts to that endpoint through that
connection. Undo deletes a destination this action created, or puts the previous endpoint back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code

RATE_PER_SECOND = 10


def _name_in(arn: str, kind: str) -> str:
    return arn.split(f":{kind}/", 1)[1].split("/", 1)[0]


class CreateWebhookDestination(Action):
    name: ClassVar[str] = "create_webhook_destination"
    summary: ClassVar[str] = "Create the EventBridge API destination that posts alerts to one webhook route."
    permissions: ClassVar[tuple[str, ...]] = (
        "events:DescribeApiDestination", "events:CreateApiDestination", "events:UpdateApiDestination",
        "events:DeleteApiDestination", "events:DescribeConnection",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("api_destination",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            found = ctx.client("events", target.region).describe_api_destination(Name=target.id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return {"exists": False}
            raise
        return {"exists": True, "endpoint": found.get("InvocationEndpoint"), "method": found.get("HttpMethod"),
                "connection": _name_in(str(found.get("ConnectionArn")), "connection")}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["exists"] and state["endpoint"] == target.data["endpoint"] and state["method"] == "POST"
                    and state["connection"] == target.data["connection"])

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        verb = "point" if before["exists"] else "create"
        return f"{verb} API destination {target.id} in {target.region} -> POST {target.data['endpoint']}"

    def _connection_arn(self, ctx: ActionContext, target: Target, name: str) -> str:
        return str(ctx.client("events", target.region).describe_connection(Name=name)["ConnectionArn"])

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        events = ctx.client("events", target.region)
        fields = {"Name": target.id, "InvocationEndpoint": str(target.data["endpoint"]), "HttpMethod": "POST",
                  "ConnectionArn": self._connection_arn(ctx, target, str(target.data["connection"]))}
        if before["exists"]:
            events.update_api_destination(**fields)
        else:
            events.create_api_destination(**fields, InvocationRateLimitPerSecond=RATE_PER_SECOND,
                                          Description="keyresponse alert webhook")

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        events = ctx.client("events", target.region)
        if not before["exists"]:
            events.delete_api_destination(Name=target.id)
            return
        events.update_api_destination(Name=target.id, InvocationEndpoint=before["endpoint"],
                                      HttpMethod=before["method"],
                                      ConnectionArn=self._connection_arn(ctx, target, before["connection"]))


ACTION = CreateWebhookDestination()
