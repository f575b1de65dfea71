"""Deactivate an MFA device the attacker added to a user (it would let them pass MFA checks).

The device is only detached from the user (and stays listed, unassigned, as evidence). A device
not enabled for the user is done. Not undoable: enabling a device needs two consecutive codes from
it, which only its holder — the attacker — has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


class DeactivateMfaDevice(Action):
    name: ClassVar[str] = "deactivate_mfa_device"
    summary: ClassVar[str] = "Detach an attacker-added MFA device from a user."
    permissions: ClassVar[tuple[str, ...]] = ("iam:ListMFADevices", "iam:DeactivateMFADevice")
    undo_unsupported_reason: ClassVar[str | None] = (
        "enabling an MFA device needs two consecutive codes from the device, which only its holder has"
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("mfa_device",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            devices = ctx.client("iam").list_mfa_devices(UserName=target.user_name)["MFADevices"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return {"enabled": False}
            raise
        return {"enabled": any(d["SerialNumber"] == target.id for d in devices)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return not state["enabled"]

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"deactivate MFA device {target.id} of user {target.user_name}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        try:
            ctx.client("iam").deactivate_mfa_device(UserName=target.user_name, SerialNumber=target.id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise


ACTION = DeactivateMfaDevice()
