"""Delete a user the attacker created, with everything IAM requires to go first.

In order: console password, access keys, signing certificates, SSH keys, MFA devices (deactivated,
and deleted when virtual), inline policies, attached policies, group memberships, then the user.
Every step treats "already gone" as success, so a rerun after a crash finishes the job. The full
before-state is in the evidence snapshot. Not undoable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


def _gone_ok(call: Callable[..., Any], **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise


class DeleteUser(Action):
    name: ClassVar[str] = "delete_user"
    summary: ClassVar[str] = "Delete an attacker-created user and everything attached to it."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:GetUser", "iam:DeleteUser", "iam:DeleteLoginProfile",
        "iam:ListAccessKeys", "iam:DeleteAccessKey",
        "iam:ListSigningCertificates", "iam:DeleteSigningCertificate",
        "iam:ListSSHPublicKeys", "iam:DeleteSSHPublicKey",
        "iam:ListMFADevices", "iam:DeactivateMFADevice", "iam:DeleteVirtualMFADevice",
        "iam:ListUserPolicies", "iam:DeleteUserPolicy",
        "iam:ListAttachedUserPolicies", "iam:DetachUserPolicy",
        "iam:ListGroupsForUser", "iam:RemoveUserFromGroup",
    )
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = (
        "a deleted user cannot be recreated as it was (its keys and ARN-bound grants are gone); "
        "its before-state is in the evidence store"
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("user",)
    ends: ClassVar[tuple[str, ...]] = ("*",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            ctx.client("iam").get_user(UserName=target.id)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return {"exists": False}
            raise
        return {"exists": True}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return not state["exists"]

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"delete user {target.id} (password, keys, MFA, policies and groups first)"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        iam = ctx.client("iam")
        user = target.id
        _gone_ok(iam.delete_login_profile, UserName=user)
        for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            _gone_ok(iam.delete_access_key, UserName=user, AccessKeyId=key["AccessKeyId"])
        for cert in iam.list_signing_certificates(UserName=user)["Certificates"]:
            _gone_ok(iam.delete_signing_certificate, UserName=user, CertificateId=cert["CertificateId"])
        for ssh in iam.list_ssh_public_keys(UserName=user)["SSHPublicKeys"]:
            _gone_ok(iam.delete_ssh_public_key, UserName=user, SSHPublicKeyId=ssh["SSHPublicKeyId"])
        for device in iam.list_mfa_devices(UserName=user)["MFADevices"]:
            serial = device["SerialNumber"]
            _gone_ok(iam.deactivate_mfa_device, UserName=user, SerialNumber=serial)
            if ":mfa/" in serial:
                _gone_ok(iam.delete_virtual_mfa_device, SerialNumber=serial)
        for policy_name in iam.list_user_policies(UserName=user)["PolicyNames"]:
            _gone_ok(iam.delete_user_policy, UserName=user, PolicyName=policy_name)
        for policy in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]:
            _gone_ok(iam.detach_user_policy, UserName=user, PolicyArn=policy["PolicyArn"])
        for group in iam.list_groups_for_user(UserName=user)["Groups"]:
            _gone_ok(iam.remove_user_from_group, UserName=user, GroupName=group["GroupName"])
        _gone_ok(iam.delete_user, UserName=user)


ACTION = DeleteUser()
