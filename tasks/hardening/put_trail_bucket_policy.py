"""Let CloudTrail write to the trail bucket: the two statements AWS documents, merged into the bucket policy.

Target: `Target(kind="bucket", id=<bucket>, region=<home>, data={"trail": <trail name>})`. Statements of
the existing policy are kept; ours are added (or replaced, by Sid). Done when both statements are
there as written. Undo puts the previous policy back, or deletes the policy when there was none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.iam_changes import normalize_policy

SIDS = ("KeyResponseCloudTrailAclCheck", "KeyResponseCloudTrailWrite")


def trail_bucket_statements(bucket: str, account_id: str, region: str, trail: str) -> list[dict[str, Any]]:
    """The bucket-policy statements CloudTrail needs (AWS CloudTrail user guide, "Amazon S3 bucket policy")."""
    source = {"aws:SourceArn": f"arn:aws:cloudtrail:{region}:{account_id}:trail/{trail}"}
    service = {"Service": "cloudtrail.amazonaws.com"}
    return [
        {"Sid": SIDS[0], "Effect": "Allow", "Principal": service, "Action": "s3:GetBucketAcl",
         "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringEquals": source}},
        {"Sid": SIDS[1], "Effect": "Allow", "Principal": service, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/AWSLogs/{account_id}/*",
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", **source}}},
    ]


class PutTrailBucketPolicy(Action):
    name: ClassVar[str] = "put_trail_bucket_policy"
    summary: ClassVar[str] = "Allow CloudTrail to write the trail's logs to the trail bucket (bucket policy)."
    permissions: ClassVar[tuple[str, ...]] = ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy")
    target_kinds: ClassVar[tuple[str, ...]] = ("bucket",)

    def _wanted(self, ctx: ActionContext, target: Target) -> list[dict[str, Any]]:
        region = target.region or ctx.settings.region
        return [normalize_policy(s) for s in
                trail_bucket_statements(target.id, ctx.account_id, region, str(target.data["trail"]))]

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            policy = ctx.client("s3", target.region).get_bucket_policy(Bucket=target.id)["Policy"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucketPolicy":
                return {"policy": None}
            raise
        return {"policy": normalize_policy(policy)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        present = (state["policy"] or {}).get("Statement") or []
        return all(statement in present for statement in self._wanted(ctx, target))

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        how = "add to" if before["policy"] else "create"
        return f"{how} the bucket policy of {target.id}: CloudTrail may write the logs of trail {target.data['trail']}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        policy = dict(before["policy"] or {"Version": "2012-10-17", "Statement": []})
        statements = policy.get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]
        kept = [s for s in statements if s.get("Sid") not in SIDS]
        policy["Statement"] = [*kept, *self._wanted(ctx, target)]
        ctx.client("s3", target.region).put_bucket_policy(Bucket=target.id, Policy=json.dumps(policy))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        s3 = ctx.client("s3", target.region)
        if before["policy"] is None:
            s3.delete_bucket_policy(Bucket=target.id)
        else:
            s3.put_bucket_policy(Bucket=target.id, Policy=json.dumps(before["policy"]))


ACTION = PutTrailBucketPolicy()
