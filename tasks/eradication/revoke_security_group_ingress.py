"""Revoke a security-group ingress rule the attacker added (by its `sgr-` rule id, in its region).

The target is the rule id; `target.data["group_id"]` names the group when known (else it is read).
A rule that is gone is done. Not undoable on purpose: re-opening attacker-added ingress is never
wanted; the rule itself is in the ledger's before-state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code

_GONE = ("InvalidSecurityGroupRuleId.NotFound", "InvalidGroup.NotFound", "InvalidPermission.NotFound")


class RevokeSecurityGroupIngress(Action):
    name: ClassVar[str] = "revoke_security_group_ingress"
    summary: ClassVar[str] = "Revoke an attacker-added security-group ingress rule."
    permissions: ClassVar[tuple[str, ...]] = ("ec2:DescribeSecurityGroupRules", "ec2:RevokeSecurityGroupIngress")
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = (
        "re-opening attacker-added ingress is never wanted; the rule is in the ledger's before-state"
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("security_group_rule",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            rules = ctx.client("ec2", target.region).describe_security_group_rules(
                SecurityGroupRuleIds=[target.id])["SecurityGroupRules"]
        except ClientError as exc:
            if error_code(exc) in _GONE:
                return {"rule": None}
            raise
        rule = next((r for r in rules if r["SecurityGroupRuleId"] == target.id and not r.get("IsEgress")), None)
        if rule is None:
            return {"rule": None}
        return {"rule": {k: rule.get(k) for k in ("GroupId", "IpProtocol", "FromPort", "ToPort", "CidrIpv4",
                                                   "CidrIpv6", "ReferencedGroupInfo", "PrefixListId")
                         if rule.get(k) is not None}}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["rule"] is None

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        rule = before["rule"]
        source = rule.get("CidrIpv4") or rule.get("CidrIpv6") or "a group"
        return (f"revoke ingress {rule.get('IpProtocol')} {rule.get('FromPort')}-{rule.get('ToPort')} "
                f"from {source} on {rule['GroupId']} in {target.region}")

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        group_id = target.data.get("group_id") or before["rule"]["GroupId"]
        try:
            ctx.client("ec2", target.region).revoke_security_group_ingress(
                GroupId=group_id, SecurityGroupRuleIds=[target.id])
        except ClientError as exc:
            if error_code(exc) not in _GONE:
                raise


ACTION = RevokeSecurityGroupIngress()
