"""What a ledger leaves in place: changes not undone and not ended by a later change of the incident."""

from __future__ import annotations

from typing import Any

from keyresponse.ledger import LedgerEntry
from tasks.actions import left_in_place
from tasks.registry import registry


def _entry(action: str, target_kind: str, id_: str, *, user_name: str | None = None, **kw: Any) -> LedgerEntry:
    target: dict[str, Any] = {"kind": target_kind, "id": id_, **({"user_name": user_name} if user_name else {})}
    return LedgerEntry(incident_id="ir-1", action=action, target=target, before={"b": 1}, after={"a": 1}, **kw)


def test_lists_what_is_still_in_effect_and_leaves_out_what_a_later_change_ended() -> None:
    attached = _entry("attach_session_revocation_policy", "user", "owner")
    deactivated = _entry("deactivate_access_key", "access_key", "AKIAAAAAAAAAAAAAAAAA", user_name="owner")
    tagged = _entry("tag_principal", "user", "owner")
    backdoor_tag = _entry("tag_principal", "user", "backdoor")
    backdoor_key = _entry("deactivate_access_key", "access_key", "AKIABBBBBBBBBBBBBBBB", user_name="backdoor")
    role_policy = _entry("attach_session_revocation_policy", "role", "ops")
    deleted_key = _entry("delete_access_key", "access_key", "AKIAAAAAAAAAAAAAAAAA", user_name="owner")
    deleted_user = _entry("delete_user", "user", "backdoor")
    removed = _entry("remove_session_revocation_policy", "user", "owner")
    undone_role_policy = _entry("attach_session_revocation_policy", "role", "ops", kind="undo",
                                undoes=role_policy.entry_id)
    ledger = [attached, deactivated, tagged, backdoor_tag, backdoor_key, role_policy, deleted_key, deleted_user,
              removed, undone_role_policy]

    found = left_in_place(ledger, registry())

    assert [(e.action, e.target["id"]) for e, _ in found] == [
        ("tag_principal", "owner"),  # still tagged
        ("delete_access_key", "AKIAAAAAAAAAAAAAAAAA"),  # ended the deactivation; itself permanent
        ("delete_user", "backdoor"),  # ended every change on the user and its keys
    ]
    reasons = dict((e.action, why) for e, why in found)
    assert reasons["tag_principal"] is None
    assert reasons["delete_access_key"] and reasons["delete_user"]  # cannot be undone, and says why


def test_a_denied_containment_leaves_every_change_in_place() -> None:
    ledger = [_entry("deactivate_access_key", "access_key", "AKIAAAAAAAAAAAAAAAAA", user_name="owner"),
              _entry("attach_session_revocation_policy", "user", "owner"), _entry("tag_principal", "user", "owner"),
              _entry("deactivate_access_key", "access_key", "AKIACCCCCCCCCCCCCCCC", user_name="x", dry_run=True)]
    assert [(e.entry_id, why) for e, why in left_in_place(ledger, registry())] == [
        (e.entry_id, None) for e in ledger[:3]]
