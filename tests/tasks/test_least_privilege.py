"""With moto's IAM enforcement on, the generated `keyresponse policy` is enough for every action.

Auth-on affects every request to the session's moto server, so it lives in this one test and is
switched off in `finally`. moto ignores policy conditions and still accepts Inactive keys, so
success is shown by state (each action's `read`/`verify`), not by a failing call.
"""

from __future__ import annotations

import json

import boto3
import pytest

from keyresponse.errors import MissingPermission
from keyresponse.evidence import verify_manifest
from keyresponse.iam_policy import responder_policy
from keyresponse.sandbox import MotoSandbox
from tasks.actions import Clients, Step, registry, snapshot_evidence, store_ledger

from .conftest import MakeCtx, build_case, locked_bucket

#: moto 5.2.5 answers every Lambda call made with a moto-issued key SignatureDoesNotMatch when
#: auth is on (the same key works for IAM, EC2, S3, STS, Secrets Manager), so Lambda cannot be
#: checked here; its permissions are still in the policy and its contract test runs with auth off.
MOTO_AUTH_GAPS = {"delete_lambda_function"}


def _responder(name: str, policy: dict[str, object]) -> boto3.Session:
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                         region_name="us-east-1")


def test_runs_every_action_when_responder_holds_only_the_generated_policy(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    bucket = locked_bucket(f"lp-{unique_name}")
    session = _responder(f"{unique_name}-responder", responder_policy(bucket))
    ctx = make_ctx(clients=Clients(session, max_attempts=2), evidence_bucket=bucket)
    actions = [a for a in registry().values() if a.name not in MOTO_AUTH_GAPS]
    targets = {a.name: build_case(a.name, f"{unique_name}-{i}", ctx) for i, a in enumerate(actions)}

    sandbox.set_auth(True)
    try:
        with pytest.raises(MissingPermission, match="iam:CreateUser"):
            ctx.client("iam").create_user(UserName=f"{unique_name}-nope")
        snapshot_evidence(ctx, [Step(a, targets[a.name]) for a in actions], {"access_key_id": "AKIA-test"})
        for action in actions:
            target = targets[action.name]
            assert action.plan(ctx, target) is not None, action.name
            entry = action.apply(ctx, target)
            assert entry is not None, action.name
            action.verify(ctx, target)
            if action.undo_unsupported_reason is None:
                action.undo(ctx, entry)
                assert action.read(ctx, target) == entry.before, action.name
        store_ledger(ctx)
        assert ctx.evidence is not None
        names = {item.name for item in verify_manifest(ctx.evidence)}
        assert {"investigation.json", "ledger.jsonl"} <= names
    finally:
        sandbox.set_auth(False)
