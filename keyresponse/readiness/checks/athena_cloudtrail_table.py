"""The Glue/Athena table of the trail exists, with partition projection, over the trail bucket (once per
account, in the home region)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from keyresponse.errors import KeyResponseError
from keyresponse.readiness.checks._common import error_code, unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.trails import TRAIL_PERMISSIONS, trail_bucket
from keyresponse.readiness.unit import ReadinessCheck, Scope
from keyresponse.settings import Settings

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory


def check_athena_table(clients: ClientFactory, settings: Settings, account_id: str, home: str,
                       bucket: str | None) -> Check:
    title = CHECK.title
    check_id = CHECK.id
    fix = CHECK.remediation
    name = f"{settings.athena_database}.{settings.athena_table}"
    facts: dict[str, Any] = {"database": settings.athena_database, "table": settings.athena_table, "bucket": bucket}
    try:
        table = clients("glue", home).get_table(DatabaseName=settings.athena_database,
                                                Name=settings.athena_table)["Table"]
    except ClientError as exc:
        if error_code(exc) == "EntityNotFoundException":
            facts["database_exists"] = "database" not in str(exc).lower()
            return Check(id=check_id, title=title, account_id=account_id, status="fail", facts=facts,
                         evidence=f"no table {name} in the Glue catalog of {home}: Athena cannot scope an incident",
                         fix=fix)
        return unreadable(check_id, title, account_id, None, exc, fix)
    except (BotoCoreError, KeyResponseError) as exc:
        return unreadable(check_id, title, account_id, None, exc, fix)
    parameters = table.get("Parameters") or {}
    location = str((table.get("StorageDescriptor") or {}).get("Location") or "")
    gaps = []
    if parameters.get("projection.enabled") != "true":
        gaps.append("no partition projection (every query lists S3 and scans every partition)")
    if bucket and not location.startswith(f"s3://{bucket}/"):
        gaps.append(f"its location {location or '(none)'} is not the trail bucket {bucket}")
    if gaps:
        return Check(id=check_id, title=title, account_id=account_id, status="fail", facts=facts,
                     evidence=f"table {name}: " + "; ".join(gaps), fix=fix)
    return Check(id=check_id, title=title, account_id=account_id, status="pass", facts=facts,
                 evidence=f"table {name} over {location}, partition projection on", fix="")


def _run(scope: Scope, region: str) -> Check:
    return check_athena_table(scope.clients, scope.settings, scope.account_id, region, trail_bucket(scope))


CHECK = ReadinessCheck(
    id="athena_cloudtrail_table",
    title="The Athena table of the trail exists, with partition projection",
    per="account",
    severity="low",
    rationale="At organization scale the investigation runs on Athena: with the table in place (partition "
              "projection, so a query reads only the days and regions it asks for) scoping starts at once, "
              "instead of with DDL written under pressure.",
    remediation="Create the CloudTrail table from queries/ddl/cloudtrail.sql, with partition projection (hardening "
                "action create_athena_table, through Glue; AWS::Glue::Table in the template).",
    # the table must be over the trail's bucket: running it reads the trails (shared, once per scope)
    permissions=("glue:GetTable", *TRAIL_PERMISSIONS),
    run=_run,
    references=(
        "https://docs.aws.amazon.com/athena/latest/ug/create-cloudtrail-table-partition-projection.html",
        "https://github.com/aws-samples/aws-incident-response-playbooks/blob/master/playbooks/IRP-CredCompromise.md",
    ),
    hardened_by=("create_athena_table",),
)
