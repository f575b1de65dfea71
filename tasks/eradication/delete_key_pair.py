"""Delete an EC2 key pair the attacker created or imported (in its region).

A key pair that is gone is done. Not undoable: AWS never keeps the private key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


class DeleteKeyPair(Action):
    name: ClassVar[str] = "delete_key_pair"
    summary: ClassVar[str] = "Delete an attacker-created EC2 key pair."
    permissions: ClassVar[tuple[str, ...]] = ("ec2:DescribeKeyPairs", "ec2:DeleteKeyPair")
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = "AWS does not keep a key pair's private key"
    target_kinds: ClassVar[tuple[str, ...]] = ("key_pair",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            pairs = ctx.client("ec2", target.region).describe_key_pairs(KeyNames=[target.id])["KeyPairs"]
        except ClientError as exc:
            if error_code(exc) == "InvalidKeyPair.NotFound":
                return {"exists": False}
            raise
        return {"exists": bool(pairs), "fingerprint": pairs[0].get("KeyFingerprint") if pairs else None}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return not state["exists"]

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"delete EC2 key pair {target.id} in {target.region}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        ctx.client("ec2", target.region).delete_key_pair(KeyName=target.id)  # AWS: deleting a missing pair succeeds


ACTION = DeleteKeyPair()
