"""Fixtures for action tests: contexts on the session's moto server, and one case per action.

`build_case(action_name, name, ctx)` creates, through the real API, a fresh target the action can
act on (a user, key, role, function, instance … named `name`) and returns its `Target`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import Settings
from tasks.actions import ActionContext, Clients, Target
from tasks.iam_changes import put_inline_policy, revocation_policy, revocation_policy_name

ACCOUNT = "123456789012"
EU = "eu-west-1"
US = "us-east-1"


def _trust(principal: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return 1\n")
    return buffer.getvalue()


def build_case(action_name: str, name: str, ctx: ActionContext) -> Target:
    """A fresh target for `action_name`, made with the sandbox's default (admin) credentials."""
    iam = boto3.client("iam")
    ec2_eu = boto3.client("ec2", region_name=EU)

    def user(*, key: bool = False, console: bool = False) -> str | None:
        iam.create_user(UserName=name)
        if console:
            iam.create_login_profile(UserName=name, Password="Case-Passw0rd!")
        return iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] if key else None

    if action_name in ("deactivate_access_key", "delete_access_key"):
        return Target(kind="access_key", id=str(user(key=True)), user_name=name)
    if action_name == "attach_session_revocation_policy":
        user(key=True)
        return Target(kind="user", id=name)
    if action_name == "remove_session_revocation_policy":
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
        target = Target(kind="role", id=name)
        put_inline_policy(ctx, target, revocation_policy_name(ctx.incident_id), revocation_policy("2026-01-01T00:00:00Z"))
        return target
    if action_name == "delete_login_profile":
        user(console=True)
        return Target(kind="user", id=name)
    if action_name in ("restore_login_profile", "create_replacement_access_key"):
        user(key=True)
        return Target(kind="user", id=name)
    if action_name == "deactivate_mfa_device":
        user()
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(UserName=name, SerialNumber=serial, AuthenticationCode1="123456",
                              AuthenticationCode2="654321")
        return Target(kind="mfa_device", id=serial, user_name=name)
    if action_name == "tag_principal":
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust({"Service": "ec2.amazonaws.com"}))
        return Target(kind="role", id=name)
    if action_name == "delete_user":
        user(key=True, console=True)
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(UserName=name, SerialNumber=serial, AuthenticationCode1="123456",
                              AuthenticationCode2="654321")
        iam.put_user_policy(UserName=name, PolicyName="backdoor", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
        iam.create_group(GroupName=name)
        iam.add_user_to_group(GroupName=name, UserName=name)
        return Target(kind="user", id=name)
    if action_name == "restore_trust_policy":
        prior = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        backdoor = {"Version": "2012-10-17", "Statement": [*prior["Statement"], {
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"}, "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(backdoor))
        return Target(kind="role", id=name, data={"trust_policy": prior})
    if action_name == "delete_lambda_function":
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust({"Service": "lambda.amazonaws.com"}))
        boto3.client("lambda", region_name=US).create_function(
            FunctionName=name, Runtime="python3.12", Handler="index.handler",
            Role=f"arn:aws:iam::{ACCOUNT}:role/{name}", Code={"ZipFile": _zip()})
        return Target(kind="lambda_function", id=name, region=US)
    if action_name == "delete_key_pair":
        ec2_eu.create_key_pair(KeyName=name)
        return Target(kind="key_pair", id=name, region=EU)
    if action_name == "revoke_security_group_ingress":
        group = ec2_eu.create_security_group(GroupName=name, Description="case")["GroupId"]
        rule = ec2_eu.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}])
        return Target(kind="security_group_rule", id=rule["SecurityGroupRules"][0]["SecurityGroupRuleId"],
                      region=EU, data={"group_id": group})
    if action_name == "terminate_instance":
        ec2_us = boto3.client("ec2", region_name=US)
        image = ec2_us.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2_us.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")[
            "Instances"][0]["InstanceId"]
        ec2_us.modify_instance_attribute(InstanceId=instance, DisableApiTermination={"Value": True})
        return Target(kind="instance", id=instance, region=US)
    raise AssertionError(f"no test case for action {action_name}: add one to tests/tasks/conftest.py")


def locked_bucket(name: str) -> str:
    """An S3 bucket with Object Lock (COMPLIANCE, 1 day), like the seed's evidence bucket."""
    bucket = name.lower().replace("_", "-")[:63].rstrip("-")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    return bucket


MakeCtx = Callable[..., ActionContext]


@pytest.fixture
def make_ctx(sandbox: MotoSandbox, tmp_path: Path, unique_name: str) -> MakeCtx:
    """`make_ctx(dry_run=False, clients=None, **settings)`: a context with its home under tmp_path."""

    def make(*, dry_run: bool = False, clients: Clients | None = None, incident_id: str | None = None,
             **settings: Any) -> ActionContext:
        values: dict[str, Any] = {"home": tmp_path / "home", "evidence_bucket": None}
        values.update(settings)
        return ActionContext.create(incident_id or f"ir-{unique_name}"[:60], dry_run=dry_run, clients=clients,
                                    settings=Settings(**values))

    return make


@pytest.fixture
def write_calls() -> Callable[[Clients], list[str]]:
    """`recorder = write_calls(clients)`: a list that fills with every operation name the clients call."""

    def attach(clients: Clients) -> list[str]:
        seen: list[str] = []

        def record(model: Any, **_: Any) -> None:
            seen.append(str(model.name))

        clients.register("before-call", record)
        return seen

    return attach
