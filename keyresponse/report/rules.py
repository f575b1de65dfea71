"""Recommendations are rules (`RULES`). Each rule reads the record and either returns a
recommendation tied to the finding that triggered it, or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from keyresponse.incident import Incident
from keyresponse.intel.taxonomy import OBJECT_READS, SECRET_READS
from keyresponse.model import InvestigationRecord
from keyresponse.report.formatting import short_arn
from keyresponse.report.reading import read_investigation


@dataclass(frozen=True)
class Recommendation:
    """What to change, and the finding that calls for it."""

    key: str
    title: str
    finding: str
    action: str


#: A rule reads the incident and its investigation (typed), and finds a recommendation or nothing.
Rule = Callable[[Incident, InvestigationRecord], Recommendation | None]


def _has_event(incident: Incident, names: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(names)
    return [e for e in incident.events if e.get("event_name") in wanted and not e.get("error_code")]


def _long_term_key(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    keys = [c.access_key_id for c in inv.credentials if c.access_key_id.startswith("AKIA")]
    if not keys:
        return None
    age = inv.key.age_days if inv.key else None
    aged = f", {age} days old" if age is not None else ""
    return Recommendation(
        "long_term_keys", "Replace long-term access keys with short-lived credentials",
        f"The exposed credential {inv.access_key_id} is a long-term IAM user key{aged}; "
        f"{len(keys)} long-term key(s) are in scope.",
        "Move the workload to an IAM role (IAM Roles Anywhere outside AWS, OIDC federation for CI, IAM "
        "Identity Center for people) and delete the user's access keys; until then rotate every 90 days.")


def _scp_create_access_key(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    created = _has_event(incident, {"CreateAccessKey"})
    if not created:
        return None
    return Recommendation(
        "scp_create_access_key", "Deny iam:CreateAccessKey outside the provisioning pipeline",
        f"The attacker created {len(created)} access key(s) with CreateAccessKey, including for other users.",
        "Add a service control policy that denies iam:CreateAccessKey (and iam:CreateLoginProfile) unless "
        "aws:PrincipalArn is the pipeline's role.")


def _s3_data_events(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    gaps = [g for g in inv.logging_gaps if "S3 data events" in g or "data events" in g]
    failing = [r for r in incident.readiness or [] if r.check == "s3_data_events" and r.status != "pass"]
    if not gaps and not failing:
        return None
    finding = gaps[0] if gaps else f"Readiness check s3_data_events: {failing[0].evidence}"
    return Recommendation(
        "s3_data_events", "Enable S3 data events on the trail", f"Logging gap: {finding}",
        "Add an S3 data-event selector (at least for buckets holding sensitive data) to the organization trail, "
        "so object reads by a stolen key are on record.")


def _lambda_data_events(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    lambdas = [r for r in inv.resources_created if "lambda" in r.type.lower()]
    failing = [r for r in incident.readiness or [] if r.check == "lambda_data_events" and r.status != "pass"]
    gaps = [g for g in inv.logging_gaps if "Lambda" in g]
    if not lambdas and not failing and not gaps:
        return None
    if lambdas:
        finding = (f"The attacker created {len(lambdas)} Lambda function(s) ({', '.join(r.id for r in lambdas)}); "
                   "their invocations are data events the trail may not record.")
    else:
        finding = gaps[0] if gaps else f"Readiness check lambda_data_events: {failing[0].evidence}"
    return Recommendation(
        "lambda_data_events", "Enable Lambda data events on the trail", finding,
        "Add an AWS::Lambda::Function data-event selector so every Invoke is logged.")


def _guardduty(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    failing = [r for r in incident.readiness or [] if r.check.startswith("guardduty") and r.status != "pass"]
    by_guardduty = incident.alert is not None and incident.alert.source == "guardduty"
    if failing:
        finding = f"Readiness check {failing[0].check}: {failing[0].evidence}"
    elif not by_guardduty and inv.event_count and incident.readiness is None:
        source = incident.alert.source if incident.alert else "a manual report"
        finding = f"The attacker's calls were detected by {source}, not by GuardDuty."
    else:
        return None
    return Recommendation(
        "guardduty", "Enable GuardDuty in every region and account", finding,
        "Enable GuardDuty organization-wide with a delegated administrator, and route its findings to the "
        "keyresponse webhook.")


def _rotate_secrets(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    reads = [d for d in inv.data_access if d.event_name in SECRET_READS and not d.error_count]
    if not reads:
        return None
    names = ", ".join(sorted({str(d.resource) for d in reads}))
    return Recommendation(
        "rotate_secrets", "Rotate every secret the attacker read",
        f"The attacker read {len(reads)} secret(s) or parameter(s): {names}.",
        "Rotate each secret at its source (database password, API token), then update Secrets Manager / "
        "Parameter Store; treat the old values as public.")


def _trust_policies(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    assumed = _has_event(incident, {"AssumeRole", "UpdateAssumeRolePolicy"})
    if not assumed:
        return None
    roles = sorted({str(c.principal_arn) for c in inv.credentials if c.created_by_event == "AssumeRole"})
    return Recommendation(
        "trust_policies", "Review the trust policies of the roles the attacker reached",
        f"The attacker called AssumeRole or UpdateAssumeRolePolicy {len(assumed)} time(s)"
        + (f", reaching {', '.join(short_arn(r) or r for r in roles)}." if roles else "."),
        "Restrict who may assume each role (named principals, aws:PrincipalOrgID, ExternalId), and alert on "
        "UpdateAssumeRolePolicy.")


def _data_notification(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    reads = [d for d in inv.data_access if d.event_name in OBJECT_READS and not d.error_count]
    if not reads:
        return None
    objects = sum(d.count for d in reads)
    return Recommendation(
        "data_notification", "Assess the data read for notification duties",
        f"The attacker read {objects} S3 object(s) in {len(reads)} location(s).",
        "Have the data owner and legal classify what was read; regulatory clocks (GDPR Art. 33: 72 hours) "
        "start at awareness.")


def _exposure_source(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    exposure = inv.exposure
    from_github = incident.alert is not None and incident.alert.source == "github"
    if (exposure is None or not exposure.model_fields_set) and not from_github:  # no answer, or an empty one
        return None
    where = "a source repository"
    if exposure is not None:
        source = (exposure.model_extra or {}).get("source")  # a hand-made answer's own word for it
        where = str(exposure.repository or exposure.url or source or where)
    return Recommendation(
        "secret_scanning", "Stop keys from reaching source code",
        f"The key was exposed in {where}.",
        "Turn on secret-scanning push protection for the organization, add a pre-commit secret scanner, and "
        "purge the key from the repository history.")


def _readiness_failures(incident: Incident) -> list[Recommendation]:
    covered = {"s3_data_events", "lambda_data_events"}
    return [Recommendation(f"readiness_{r.check}", f"Fix readiness check {r.check}",
                           f"Readiness check {r.check} is {r.status}: {r.evidence}", r.fix or "See the check.")
            for r in incident.readiness or []
            if r.status in ("fail", "warn") and r.check not in covered and not r.check.startswith("guardduty")]


def _missing_logs(incident: Incident, inv: InvestigationRecord) -> Recommendation | None:
    days = [g for g in inv.logging_gaps if g.startswith("no CloudTrail files")]
    if not days:
        return None
    return Recommendation(
        "trail_delivery", "Find out why CloudTrail files are missing",
        f"{len(days)} day(s) of the window had no CloudTrail files ({days[0]}…).",
        "Check the trail is multi-region and logging, the bucket policy, and any lifecycle rule on the bucket; "
        "turn on log file integrity validation.")


#: The recommendation rules, in the order the report lists what they find.
RULES: tuple[Rule, ...] = (_long_term_key, _scp_create_access_key, _rotate_secrets, _data_notification,
                           _trust_policies, _s3_data_events, _lambda_data_events, _guardduty, _missing_logs,
                           _exposure_source)


def recommendations(incident: Incident, record: InvestigationRecord | None = None) -> list[Recommendation]:
    """What the findings call for; empty for a key that was not ours (its owner decides)."""
    if incident.status == "not_ours":
        return []
    inv = read_investigation(incident) if record is None else record
    found = [rec for rule in RULES if (rec := rule(incident, inv)) is not None]
    return found + _readiness_failures(incident)


