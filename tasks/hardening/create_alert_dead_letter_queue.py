"""The SQS queue where EventBridge puts an alert it could not deliver to the webhook (a dead-letter queue).

Target: `Target(kind="queue", id="keyresponse-alerts-dlq", region=<region>)`: one per region with an
alert rule (a rule's dead-letter queue must be in the rule's region). EventBridge retries a delivery that
failed with a 429, a 5xx or a timeout (the rule's `RetryPolicy`: 185 attempts over 24 h) and drops at once
one answered with any other 4xx (a 401 from a receiver whose token does not match the connection's, say);
either way, with this queue, the event lands here instead of being lost, for 14 days. Read it with
`aws sqs receive-message --queue-url …` and post each body to the receiver again.

The queue is encrypted with SQS-managed keys, and its policy lets only EventBridge rules of this account
named `keyresponse-*` in this region send to it. Done when the queue exists with that policy. Undo deletes a
queue this action created, or puts the previous policy back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.hardening._common import MANAGED_TAG
from tasks.iam_changes import normalize_policy

#: Fourteen days, SQS's longest retention: time to notice the queue and replay what is in it.
RETENTION_SECONDS = 14 * 24 * 3600
_MISSING = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def queue_arn(account_id: str, region: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account_id}:{name}"


def dead_letter_policy(account_id: str, region: str, name: str) -> dict[str, Any]:
    """Only this account's `keyresponse-*` EventBridge rules of `region` may send to the queue."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "KeyResponseAlertRulesDeadLetters", "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn(account_id, region, name),
        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:events:{region}:{account_id}:rule/keyresponse-*"}}}]}


class CreateAlertDeadLetterQueue(Action):
    name: ClassVar[str] = "create_alert_dead_letter_queue"
    summary: ClassVar[str] = "Create the SQS queue that keeps the alerts EventBridge could not deliver to the webhook."
    permissions: ClassVar[tuple[str, ...]] = (
        "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:CreateQueue", "sqs:SetQueueAttributes",
        "sqs:TagQueue", "sqs:DeleteQueue",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("queue",)

    def _url(self, ctx: ActionContext, target: Target) -> str | None:
        try:
            return str(ctx.client("sqs", target.region).get_queue_url(QueueName=target.id)["QueueUrl"])
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return None
            raise

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        url = self._url(ctx, target)
        if url is None:
            return {"exists": False}
        attributes = ctx.client("sqs", target.region).get_queue_attributes(
            QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
        policy = attributes.get("Policy")
        return {"exists": True, "policy": normalize_policy(json.loads(policy)) if policy else None}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        wanted = normalize_policy(dead_letter_policy(ctx.account_id, str(target.region), target.id))
        return bool(state["exists"] and state["policy"] == wanted)

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        verb = "reset the policy of" if before["exists"] else "create"
        return (f"{verb} SQS queue {target.id} in {target.region} (dead letters of the keyresponse alert rules; "
                "only they may send to it)")

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        sqs = ctx.client("sqs", target.region)
        policy = json.dumps(dead_letter_policy(ctx.account_id, str(target.region), target.id))
        if before["exists"]:
            url = self._url(ctx, target)
            if url is not None:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
                return
        sqs.create_queue(QueueName=target.id, tags=dict(MANAGED_TAG), Attributes={
            "Policy": policy, "MessageRetentionPeriod": str(RETENTION_SECONDS), "SqsManagedSseEnabled": "true"})

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        url = self._url(ctx, target)
        if url is None:
            return
        sqs = ctx.client("sqs", target.region)
        if not before["exists"]:
            sqs.delete_queue(QueueUrl=url)
        elif before["policy"] is None:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
        else:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(before["policy"])})


ACTION = CreateAlertDeadLetterQueue()
