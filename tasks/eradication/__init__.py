"""Eradication actions: remove what the attacker left. Each needs approval; most cannot be undone.

Registry order is the order a plan applies them: keys, then users, trust policies, then the
regional resources (functions, key pairs, ingress rules, instances).
"""

from __future__ import annotations

from tasks.actions import Action
from tasks.eradication import (
    delete_access_key,
    delete_key_pair,
    delete_lambda_function,
    delete_user,
    restore_trust_policy,
    revoke_security_group_ingress,
    terminate_instance,
)

ACTIONS: tuple[Action, ...] = (
    delete_access_key.ACTION,
    delete_user.ACTION,
    restore_trust_policy.ACTION,
    delete_lambda_function.ACTION,
    delete_key_pair.ACTION,
    revoke_security_group_ingress.ACTION,
    terminate_instance.ACTION,
)
