"""The response's action registries, composed: containment, eradication and recovery, in the order an
incident runs them.

Each phase package keeps its own explicit `ACTIONS` tuple (one module per action, one line there).
This module only puts them together, so the action contract (`tasks.actions`) never imports the
actions built on it: the import graph points one way (`tests/test_layers.py`). The hardening
actions of `keyresponse readiness --apply` are a registry of their own (`tasks.hardening`).
"""

from __future__ import annotations

from tasks import containment, eradication, recovery
from tasks.actions import Action


def phases() -> dict[str, tuple[Action, ...]]:
    """The three registries, in the order an incident runs them."""
    return {"containment": containment.ACTIONS, "eradication": eradication.ACTIONS,
            "recovery": recovery.ACTIONS}


def registry() -> dict[str, Action]:
    """Every registered action by name (containment, then eradication, then recovery order)."""
    return {action.name: action for actions in phases().values() for action in actions}
