"""The trail bucket has Object Lock with a default retention (once per account).

The bucket is the chosen trail's (`keyresponse.readiness.trails`), else the one named by
`--trail-bucket` or `KEYRESPONSE_CLOUDTRAIL_LOGS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from keyresponse.errors import KeyResponseError
from keyresponse.readiness.checks._common import error_code, unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.trails import TRAIL_PERMISSIONS, trail_bucket
from keyresponse.readiness.unit import ReadinessCheck, Scope

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory


def check_object_lock(clients: ClientFactory, account_id: str, bucket: str | None, home: str) -> Check:
    title = CHECK.title
    check_id = CHECK.id
    fix = CHECK.remediation
    if not bucket:
        return Check(id=check_id, title=title, account_id=account_id, status="fail",
                     evidence="no trail bucket is known (no trail, and no --trail-bucket / "
                              "KEYRESPONSE_CLOUDTRAIL_LOGS=s3://…)",
                     fix="Name the trail bucket, then " + fix[0].lower() + fix[1:])
    try:
        config = clients("s3", home).get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError as exc:
        if error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return Check(id=check_id, title=title, account_id=account_id, status="fail",
                         evidence=f"bucket {bucket} has no Object Lock: an attacker with s3:DeleteObject can erase "
                                  "the logs of the incident", fix=fix, facts={"bucket": bucket})
        return unreadable(check_id, title, account_id, None, exc, fix)
    except (BotoCoreError, KeyResponseError) as exc:
        return unreadable(check_id, title, account_id, None, exc, fix)
    retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
    if config.get("ObjectLockEnabled") == "Enabled" and retention.get("Mode"):
        span = f"{retention.get('Days') or 0} day(s)" if retention.get("Days") else f"{retention.get('Years')} year(s)"
        return Check(id=check_id, title=title, account_id=account_id, status="pass", facts={"bucket": bucket},
                     evidence=f"bucket {bucket}: Object Lock enabled, default {retention['Mode']} retention {span}",
                     fix="")
    return Check(id=check_id, title=title, account_id=account_id, status="fail", facts={"bucket": bucket},
                 evidence=f"bucket {bucket}: Object Lock enabled but no default retention, so CloudTrail's "
                          "objects are not locked", fix=fix)


def _run(scope: Scope, region: str) -> Check:
    return check_object_lock(scope.clients, scope.account_id, trail_bucket(scope), region)


CHECK = ReadinessCheck(
    id="trail_bucket_object_lock",
    title="The trail bucket has Object Lock with a default retention",
    per="account",
    severity="medium",
    rationale="The logs are the evidence: a key allowed s3:DeleteObject on the trail bucket can erase the record "
              "of what it did. Object Lock keeps every log object for its retention, whoever asks to delete it.",
    remediation="Turn on versioning and Object Lock with a default GOVERNANCE retention on the trail bucket "
                "(hardening action enable_bucket_object_lock; it cannot be turned off again).",
    # the bucket is the trail's: running it reads the trails (once per scope, shared with the trail checks)
    permissions=("s3:GetBucketObjectLockConfiguration", *TRAIL_PERMISSIONS),
    run=_run,
    references=(
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html",
    ),
    attack=("T1070",),
    hardened_by=("enable_bucket_object_lock",),
)
