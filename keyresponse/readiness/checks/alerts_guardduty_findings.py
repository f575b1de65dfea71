"""GuardDuty's findings about access keys reach the webhook: the route `alerts_guardduty_findings` of
`keyresponse.readiness.routes`, checked in every region (GuardDuty's findings stay in their region)."""

from __future__ import annotations

from keyresponse.readiness.checks._alert_route import alert_route_check
from keyresponse.readiness.routes import ROUTES_BY_CHECK

CHECK = alert_route_check(
    ROUTES_BY_CHECK["alerts_guardduty_findings"],
    severity="high",
    rationale="A GuardDuty finding nobody reads starts no response: routed to the webhook, a finding about an "
              "access key opens an incident (and a high-confidence one deactivates the key at once) within "
              "minutes, in every region the attacker works in.",
    references=("https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-guardduty.html",),
    attack=("T1078.004",),
)
