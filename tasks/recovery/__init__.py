"""Recovery actions: give the owner working credentials back and lift the containment.

Registry order is the order a plan applies them: the replacement key first, then console access,
then the session-revocation policy comes off (once the owner has confirmed the rotation).
"""

from __future__ import annotations

from tasks.actions import Action
from tasks.recovery import (
    create_replacement_access_key,
    remove_session_revocation_policy,
    restore_login_profile,
)

ACTIONS: tuple[Action, ...] = (
    create_replacement_access_key.ACTION,
    restore_login_profile.ACTION,
    remove_session_revocation_policy.ACTION,
)
