"""AWS Health's exposed-credential events reach the webhook: the route `alerts_health_exposure` of
`keyresponse.readiness.routes`, checked in the home region."""

from __future__ import annotations

from keyresponse.readiness.checks._alert_route import alert_route_check
from keyresponse.readiness.routes import ROUTES_BY_CHECK

CHECK = alert_route_check(
    ROUTES_BY_CHECK["alerts_health_exposure"],
    severity="high",
    rationale="When AWS finds one of the account's keys published (a public repository, a paste), it says so as "
              "an AWS Health event (AWS_RISK_CREDENTIALS_EXPOSED): often the first and earliest sign of an "
              "exposed key, and lost in an inbox unless it is routed.",
    references=("https://docs.aws.amazon.com/health/latest/ug/cloudwatch-events-health.html",),
    attack=("T1552.001",),
)
