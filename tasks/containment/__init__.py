"""Containment actions: stop the bleeding, reversibly. One action per module; the registry is explicit.

Order matters: the plan applies them in registry order (keys first, then sessions, console, MFA, tag).
"""

from __future__ import annotations

from tasks.actions import Action
from tasks.containment import (
    attach_session_revocation_policy,
    deactivate_access_key,
    deactivate_mfa_device,
    delete_login_profile,
    tag_principal,
)

ACTIONS: tuple[Action, ...] = (
    deactivate_access_key.ACTION,
    attach_session_revocation_policy.ACTION,
    delete_login_profile.ACTION,
    deactivate_mfa_device.ACTION,
    tag_principal.ACTION,
)
