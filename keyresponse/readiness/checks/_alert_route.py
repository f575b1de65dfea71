"""The check of one alert route (`keyresponse.readiness.routes`), shared by the `alerts_*` checks: an
ENABLED EventBridge rule whose pattern covers the route's events, targeting an API destination that posts
to our webhook through an AUTHORIZED connection, with a dead-letter queue and a retry policy."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from keyresponse.readiness.checks._common import paginate, unreadable
from keyresponse.readiness.model import Check, ReadinessOptions
from keyresponse.readiness.routes import AlertRoute, route_matches, webhook_endpoint
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope, Severity

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory

#: The hardening actions that build a route, in the order a plan applies them.
ROUTE_ACTIONS = ("create_webhook_delivery_role", "create_webhook_connection", "create_webhook_destination",
                 "create_alert_dead_letter_queue", "put_alert_rule")
ROUTE_PERMISSIONS = ("events:ListRules", "events:ListTargetsByRule", "events:DescribeApiDestination",
                     "events:DescribeConnection")
ROUTE_REFERENCES = (
    "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-api-destinations.html",
    "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html",
)


def route_title(route: AlertRoute) -> str:
    return route.description[0].upper() + route.description[1:]


def route_fix(route: AlertRoute) -> str:
    return (f"Create the EventBridge rule {route.rule_name} with an API destination to the webhook, a dead-letter "
            "queue and a retry policy (hardening actions create_webhook_delivery_role, create_webhook_connection, "
            "create_webhook_destination, create_alert_dead_letter_queue, put_alert_rule; AWS::Events::Rule, "
            "AWS::Events::Connection, AWS::Events::ApiDestination, AWS::SQS::Queue).")


def check_alert_route(
    clients: ClientFactory, options: ReadinessOptions, route: AlertRoute, account_id: str, region: str
) -> Check:
    title = route_title(route)
    endpoint = webhook_endpoint(options, route)
    try:
        events = clients("events", region)
        rules = paginate(events, "list_rules", "Rules")
        matching = [r for r in rules if r.get("EventPattern") and route_matches(route, json.loads(r["EventPattern"]))]
        seen: list[str] = []
        for rule in matching:
            if rule.get("State") != "ENABLED":
                seen.append(f"rule {rule['Name']} is {rule.get('State')}")
                continue
            targets = paginate(events, "list_targets_by_rule", "Targets", Rule=rule["Name"])
            for target in targets:
                if ":api-destination/" not in target["Arn"]:
                    seen.append(f"rule {rule['Name']} targets {target['Arn']}")
                    continue
                name = target["Arn"].split(":api-destination/", 1)[1].split("/", 1)[0]
                destination = events.describe_api_destination(Name=name)
                if destination.get("InvocationEndpoint") != endpoint:
                    seen.append(f"rule {rule['Name']} posts to {destination.get('InvocationEndpoint')}")
                    continue
                connection_name = str(destination["ConnectionArn"]).split(":connection/", 1)[1].split("/", 1)[0]
                state = events.describe_connection(Name=connection_name).get("ConnectionState")
                if state != "AUTHORIZED":
                    seen.append(f"connection {connection_name} is {state}")
                    continue
                if not (target.get("DeadLetterConfig") or {}).get("Arn") or not target.get("RetryPolicy"):
                    seen.append(f"rule {rule['Name']} delivers to {endpoint} without a dead-letter queue and retry "
                                "policy: an alert the receiver refuses or misses is lost")
                    continue
                return Check(id=route.check_id, title=title, account_id=account_id, region=region, status="pass",
                             evidence=f"rule {rule['Name']} -> API destination {name} -> {endpoint}", fix="")
            if not targets:
                seen.append(f"rule {rule['Name']} has no target")
    except READ_ERRORS as exc:
        return unreadable(route.check_id, title, account_id, region, exc, route_fix(route))
    evidence = "; ".join(seen) if seen else f"no EventBridge rule routes these events in {region}"
    return Check(id=route.check_id, title=title, account_id=account_id, region=region, status="fail",
                 evidence=f"{evidence} (expected a route to {endpoint})", fix=route_fix(route))


def alert_route_check(route: AlertRoute, *, severity: Severity, rationale: str, references: tuple[str, ...],
                      attack: tuple[str, ...] = ()) -> ReadinessCheck:
    """The unit of one route: its id, title, fix and where it runs come from the route itself."""

    def run(scope: Scope, region: str) -> Check:
        return check_alert_route(scope.clients, scope.options, route, scope.account_id, region)

    return ReadinessCheck(
        id=route.check_id, title=route_title(route), per="home_region" if route.home_only else "region",
        severity=severity, rationale=rationale, remediation=route_fix(route), permissions=ROUTE_PERMISSIONS,
        run=run, references=(*references, *ROUTE_REFERENCES), attack=attack, hardened_by=ROUTE_ACTIONS)
