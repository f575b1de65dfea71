"""Hardening actions: what readiness found missing, put in place under the same action contract.

One action per module; the registry is explicit, in the order a plan applies them (the trail bucket
is locked and opened to CloudTrail before the trail writes to it; the delivery role, connection and
API destinations and the dead-letter queues exist before the rules that use them). Undo runs in reverse.
"""

from __future__ import annotations

from tasks.actions import Action
from tasks.hardening import (
    configure_trail,
    create_alert_dead_letter_queue,
    create_athena_table,
    create_webhook_connection,
    create_webhook_delivery_role,
    create_webhook_destination,
    enable_bucket_object_lock,
    enable_guardduty_detector,
    put_alert_rule,
    put_trail_bucket_policy,
)

ACTIONS: tuple[Action, ...] = (
    enable_guardduty_detector.ACTION,
    put_trail_bucket_policy.ACTION,
    enable_bucket_object_lock.ACTION,
    configure_trail.ACTION,
    create_athena_table.ACTION,
    create_webhook_delivery_role.ACTION,
    create_webhook_connection.ACTION,
    create_webhook_destination.ACTION,
    create_alert_dead_letter_queue.ACTION,
    put_alert_rule.ACTION,
)


def registry() -> dict[str, Action]:
    """The hardening actions by name (for `undo_incident` of a hardening run)."""
    return {action.name: action for action in ACTIONS}
