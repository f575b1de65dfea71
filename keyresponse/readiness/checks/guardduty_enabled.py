"""GuardDuty is enabled: a detector is ENABLED in the region (checked in every region).

GuardDuty raises the findings about a leaked or misused access key (anomalous calls, calls from Tor or a
known-bad address, an instance's credentials used elsewhere) that start a response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyresponse.readiness.checks._common import paginate, unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory


def check_guardduty(clients: ClientFactory, account_id: str, region: str) -> Check:
    title = CHECK.title
    try:
        gd = clients("guardduty", region)
        detectors = paginate(gd, "list_detectors", "DetectorIds")
        statuses = {d: gd.get_detector(DetectorId=d)["Status"] for d in detectors}
    except READ_ERRORS as exc:
        return unreadable(CHECK.id, title, account_id, region, exc, CHECK.remediation)
    enabled = [d for d, status in statuses.items() if status == "ENABLED"]
    if enabled:
        return Check(id=CHECK.id, title=title, account_id=account_id, region=region, status="pass",
                     evidence=f"detector {enabled[0]} is ENABLED", fix="", facts={"detector_id": enabled[0]})
    evidence = (f"detector(s) {', '.join(f'{d} ({s})' for d, s in statuses.items())} not enabled" if statuses
                else "no GuardDuty detector in this region: findings about leaked keys are never raised")
    return Check(id=CHECK.id, title=title, account_id=account_id, region=region, status="fail",
                 evidence=evidence, fix=CHECK.remediation)


def _run(scope: Scope, region: str) -> Check:
    return check_guardduty(scope.clients, scope.account_id, region)


CHECK = ReadinessCheck(
    id="guardduty_enabled",
    title="GuardDuty is enabled",
    per="region",
    severity="high",
    rationale="GuardDuty's IAM findings (anomalous API calls, calls from Tor or known-bad addresses, instance "
              "credentials used outside AWS) are how a misused key is noticed; without a detector in a region, "
              "nothing is raised about what an attacker does there.",
    remediation="Enable GuardDuty in this region (hardening action enable_guardduty_detector; "
                "AWS::GuardDuty::Detector in the CloudFormation template, deployed to every region by StackSet).",
    permissions=("guardduty:ListDetectors", "guardduty:GetDetector"),
    run=_run,
    references=(
        "https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_settingup.html",
        "https://github.com/aws-samples/aws-incident-response-playbooks/blob/master/playbooks/IRP-CredCompromise.md",
    ),
    attack=("T1078.004",),
    hardened_by=("enable_guardduty_detector",),
)
