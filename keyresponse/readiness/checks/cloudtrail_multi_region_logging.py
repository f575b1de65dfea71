"""A multi-region (or organization) CloudTrail trail is logging, with log-file validation (once per account).

Its facts name the trail the hardening plan should fix (or create) and its bucket; the data-event,
Object Lock and Athena checks act on the same trail.
"""

from __future__ import annotations

from pydantic import JsonValue

from keyresponse.readiness.checks._common import unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.trails import (
    TRAIL_PERMISSIONS,
    Trail,
    good_trails,
    trail_facts,
    trail_gaps,
    trails,
)
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope

#: The title of the check when the trails cannot be read.
UNREADABLE_TITLE = "A multi-region trail is logging"


def check_trail(found: list[Trail], facts: dict[str, JsonValue], account_id: str) -> Check:
    title = CHECK.title
    good = good_trails(found)
    if good:
        return Check(id=CHECK.id, title=title, account_id=account_id, status="pass",
                     evidence=f"trail {good[0]['name']} is multi-region, logging, with log-file validation",
                     fix="", facts=facts)
    if found:
        return Check(id=CHECK.id, title=title, account_id=account_id, status="fail",
                     evidence="; ".join(f"trail {t['name']}: {', '.join(trail_gaps(t))}" for t in found),
                     fix=CHECK.remediation, facts=facts)
    return Check(id=CHECK.id, title=title, account_id=account_id, status="fail",
                 evidence="no CloudTrail trail: only the 90-day event history exists (no data events, "
                          "no Athena, no integrity proof)", fix=CHECK.remediation, facts=facts)


def _run(scope: Scope, region: str) -> Check:
    try:
        found = trails(scope)
    except READ_ERRORS as exc:
        return unreadable(CHECK.id, UNREADABLE_TITLE, scope.account_id, None, exc, CHECK.remediation)
    return check_trail(found, trail_facts(found, scope), scope.account_id)


CHECK = ReadinessCheck(
    id="cloudtrail_multi_region_logging",
    title="A multi-region CloudTrail trail is logging, with log-file validation",
    per="account",
    severity="critical",
    rationale="The investigation is CloudTrail: without a trail only the 90-day event history exists (management "
              "events, per region, no data events, nothing to query with Athena); a single-region trail misses "
              "what the attacker did elsewhere, and without log-file validation the logs cannot be shown untampered.",
    remediation="Create or update the trail: multi-region, log-file validation, logging started (hardening actions "
                "put_trail_bucket_policy and configure_trail; AWS::CloudTrail::Trail and AWS::S3::BucketPolicy).",
    permissions=TRAIL_PERMISSIONS,
    run=_run,
    references=(
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/receive-cloudtrail-log-files-from-multiple-regions.html",
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-intro.html",
        "https://github.com/aws-samples/aws-incident-response-playbooks/blob/master/playbooks/IRP-CredCompromise.md",
    ),
    attack=("T1562.008",),
    cis=("3.1", "3.2"),
    hardened_by=("put_trail_bucket_policy", "configure_trail"),
)
