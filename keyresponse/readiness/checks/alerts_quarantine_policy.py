"""AWS attaching its quarantine policy (AWSCompromisedKeyQuarantine*) to a user reaches the webhook: the
route `alerts_quarantine_policy` of `keyresponse.readiness.routes`, checked in the home region (IAM's
CloudTrail events arrive there)."""

from __future__ import annotations

from keyresponse.readiness.checks._alert_route import alert_route_check
from keyresponse.readiness.routes import ROUTES_BY_CHECK

CHECK = alert_route_check(
    ROUTES_BY_CHECK["alerts_quarantine_policy"],
    severity="medium",
    rationale="AWS attaches AWSCompromisedKeyQuarantine* to a user whose key it found exposed: it limits the key, "
              "it does not investigate or rotate it; routed to the webhook, the attachment opens an incident.",
    references=(
        "https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSCompromisedKeyQuarantineV2.html",
    ),
    attack=("T1552.001",),
)
