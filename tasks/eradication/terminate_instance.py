"""Snapshot, then terminate, an EC2 instance the attacker launched (in its region).

First every attached EBS volume is snapshotted (tagged with the incident and instance, and reused
on a rerun, so a crash never makes a second snapshot), then termination protection the attacker
set is cleared, then the instance is terminated. Shutting-down, terminated or gone is done. Not
undoable; the snapshots stay as evidence (they are listed in the ledger's after-state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.iam_changes import INCIDENT_TAG

INSTANCE_TAG = "keyresponse-instance"


class TerminateInstance(Action):
    name: ClassVar[str] = "terminate_instance"
    summary: ClassVar[str] = "Snapshot the volumes of an attacker-launched instance, then terminate it."
    permissions: ClassVar[tuple[str, ...]] = (
        "ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags",
        "ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute", "ec2:TerminateInstances",
    )
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = "a terminated instance cannot be restarted (its snapshots remain)"
    target_kinds: ClassVar[tuple[str, ...]] = ("instance",)

    def _snapshots(self, ctx: ActionContext, target: Target) -> list[str]:
        found = ctx.client("ec2", target.region).describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{INSTANCE_TAG}", "Values": [target.id]}])["Snapshots"]
        return sorted(s["SnapshotId"] for s in found)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            reservations = ctx.client("ec2", target.region).describe_instances(InstanceIds=[target.id])["Reservations"]
        except ClientError as exc:
            if error_code(exc) == "InvalidInstanceID.NotFound":
                return {"state": "absent", "snapshots": []}
            raise
        instances = [i for r in reservations for i in r["Instances"]]
        state = instances[0]["State"]["Name"] if instances else "absent"
        return {"state": state, "snapshots": self._snapshots(ctx, target)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["state"] in ("shutting-down", "terminated", "absent")

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"snapshot the volumes of instance {target.id} in {target.region}, then terminate it"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        ec2 = ctx.client("ec2", target.region)
        instance = ec2.describe_instances(InstanceIds=[target.id])["Reservations"][0]["Instances"][0]
        if not before["snapshots"]:
            for mapping in instance.get("BlockDeviceMappings", []):
                volume = mapping.get("Ebs", {}).get("VolumeId")
                if volume:
                    ec2.create_snapshot(
                        VolumeId=volume, Description=f"keyresponse {ctx.incident_id}: {target.id} {volume}",
                        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                            {"Key": INCIDENT_TAG, "Value": ctx.incident_id},
                            {"Key": INSTANCE_TAG, "Value": target.id}]}])
        protected = ec2.describe_instance_attribute(InstanceId=target.id, Attribute="disableApiTermination")
        if protected.get("DisableApiTermination", {}).get("Value"):
            ec2.modify_instance_attribute(InstanceId=target.id, DisableApiTermination={"Value": False})
        ec2.terminate_instances(InstanceIds=[target.id])


ACTION = TerminateInstance()
