"""The replacement key is never left Active with its secret lost.

Recovery creates the owner's new key, then stores its secret key (shown by IAM only once) in Secrets
Manager. When the store fails (the sandbox answers Secrets Manager with 503s), the key is deleted
again and both steps are in the ledger; when the process dies between the two (a crash: no
compensation runs), the ledger names the key, and the rerun deletes it before making a new one
instead of running into IAM's two-key limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from keyresponse.errors import AwsCallError
from keyresponse.sandbox import MotoSandbox
from tasks.actions import Clients, Target, left_in_place
from tasks.iam_changes import secret_name
from tasks.recovery.create_replacement_access_key import ACTION
from tasks.registry import registry

from .conftest import MakeCtx


@pytest.fixture
def faults(sandbox: MotoSandbox) -> Iterator[MotoSandbox]:
    sandbox.inject_faults()
    try:
        yield sandbox
    finally:
        sandbox.inject_faults()


def _keys(user: str) -> dict[str, str]:
    return {k["AccessKeyId"]: k["Status"] for k in
            boto3.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]}


def _owner(name: str) -> str:
    """The owner, still holding the compromised key (its deletion was not approved)."""
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")
    return str(key)


def test_a_failed_store_deletes_the_new_key_and_the_ledger_says_both(
    faults: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    compromised = _owner(unique_name)
    ctx = make_ctx(clients=Clients(max_attempts=1))
    target = Target(kind="user", id=unique_name)
    faults.inject_faults()  # counters at 0: plan's DescribeSecret passes, the store's CreateSecret fails
    faults.inject_faults(service="secretsmanager", fail_after=1)
    with pytest.raises(AwsCallError, match="deleted again"):
        ACTION.apply(ctx, target)
    faults.inject_faults()

    assert _keys(unique_name) == {compromised: "Inactive"}  # no Active key with its secret lost
    made, undone = ctx.ledger.entries()
    assert made.kind == "apply" and made.after["replacement_key_id"] not in (None, compromised)
    assert undone.kind == "undo" and undone.undoes == made.entry_id
    assert ctx.ledger.to_undo() == [] and left_in_place(ctx.ledger.entries(), registry()) == []

    entry = ACTION.apply(ctx, target)  # the rerun: one new key, stored
    assert entry is not None
    new = entry.after["replacement_key_id"]
    assert _keys(unique_name) == {compromised: "Inactive", new: "Active"}
    ACTION.verify(ctx, target)


def test_a_crash_between_the_key_and_its_secret_is_cleaned_up_by_the_rerun(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    compromised = _owner(unique_name)
    ctx = make_ctx()
    target = Target(kind="user", id=unique_name)

    def die(model: Any, **_: Any) -> None:
        if model.name == "CreateSecret":
            raise SystemExit("the process is killed while the secret is being stored")

    ctx.clients.register("before-call", die)
    with pytest.raises(SystemExit):
        ACTION.apply(ctx, target)
    ctx.clients.unregister("before-call", die)
    [crashed] = ctx.ledger.entries()
    orphan = crashed.after["replacement_key_id"]
    assert _keys(unique_name) == {compromised: "Inactive", orphan: "Active"}  # the user is at IAM's limit

    entry = ACTION.apply(ctx, target)
    assert entry is not None and entry.after["replacement_key_id"] != orphan
    assert _keys(unique_name) == {compromised: "Inactive", entry.after["replacement_key_id"]: "Active"}
    assert [(e.kind, e.undoes) for e in ctx.ledger.entries()] == [
        ("apply", None), ("undo", crashed.entry_id), ("apply", None)]

    # the secret: only sessions issued after it was written may read it (no customer-managed key needed)
    sm = boto3.client("secretsmanager")
    name = secret_name(ctx, unique_name, "access-key")
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["AccessKeyId"] == entry.after[
        "replacement_key_id"]
    [statement] = json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "secretsmanager:GetSecretValue"
    assert "aws:TokenIssueTime" in statement["Condition"]["DateLessThan"]
