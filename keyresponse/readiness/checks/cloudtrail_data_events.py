"""The trail records the data events asked for (`ReadinessOptions.data_events`: S3 objects and Lambda
invocations by default), once per account. Not run when no data events are wanted, nor when the trails
could not be read (the trail check says so).
"""

from __future__ import annotations

from pydantic import JsonValue

from keyresponse.readiness.model import Check
from keyresponse.readiness.trails import TRAIL_PERMISSIONS, Trail, good_trails, trail_facts, trails
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope


def check_data_events(found: list[Trail], wanted: set[str], facts: dict[str, JsonValue],
                      account_id: str) -> Check:
    title = f"{CHECK.title} ({', '.join(sorted(wanted))})"
    recording = [t for t in (good_trails(found) or found) if wanted <= set(t["data_events"])]
    if recording:
        return Check(id=CHECK.id, title=title, account_id=account_id, status="pass",
                     evidence=f"trail {recording[0]['name']} records {', '.join(recording[0]['data_events'])}",
                     fix="", facts=facts)
    evidence = ("no trail, so no data events: an incident cannot say which objects were read or functions invoked"
                if not found else "; ".join(
                    f"trail {t['name']} records {', '.join(t['data_events']) or 'no data events'}" for t in found))
    return Check(id=CHECK.id, title=title, account_id=account_id, status="fail",
                 evidence=evidence, fix=CHECK.remediation, facts=facts)


def _run(scope: Scope, region: str) -> Check | None:
    if not scope.options.data_events:
        return None
    try:
        found = trails(scope)
    except READ_ERRORS:
        return None  # cloudtrail_multi_region_logging reports the failed read
    return check_data_events(found, set(scope.options.data_events), trail_facts(found, scope), scope.account_id)


CHECK = ReadinessCheck(
    id="cloudtrail_data_events",
    title="The trail records data events",
    per="account",
    severity="medium",
    rationale="Management events say a key listed buckets or functions; only data events say which objects it "
              "read or wrote and which functions it invoked: the damage answer and the data-access part of the "
              "report depend on them.",
    remediation="Add data-event selectors to the trail (hardening action configure_trail; EventSelectors of "
                "AWS::CloudTrail::Trail). Data events are billed per event: scope them to sensitive buckets "
                "if the volume is high.",
    permissions=TRAIL_PERMISSIONS,
    run=_run,
    references=(
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-data-events-with-cloudtrail.html",
        "https://github.com/aws-samples/aws-incident-response-playbooks/blob/master/playbooks/IRP-CredCompromise.md",
    ),
    attack=("T1530",),
    hardened_by=("put_trail_bucket_policy", "configure_trail"),
)
