"""With moto's IAM enforcement on, the generated `keyresponse policy` is enough for every action, and
`keyresponse policy --readiness` for the readiness checks and every hardening action.

Auth-on affects every request to the session's moto server, so it lives in these tests and is
switched off in `finally`. moto ignores policy conditions and still accepts Inactive keys, so
success is shown by state (each action's `read`/`verify`), not by a failing call.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from keyresponse.errors import MissingPermission
from keyresponse.evidence import verify_manifest
from keyresponse.readiness import ReadinessOptions, assess
from keyresponse.sandbox import MotoSandbox
from tasks.actions import (
    Action,
    ActionContext,
    Clients,
    Step,
    Target,
    snapshot_evidence,
    store_ledger,
)
from tasks.hardening import ACTIONS as HARDENING
from tasks.iam_policy import SECRETS_RESOURCE, readiness_policy, responder_policy
from tasks.registry import registry

from .conftest import MakeCtx, build_case, locked_bucket
from .hardening.test_hardening_actions import TOKEN, build_hardening_case

#: moto 5.2.5 answers every Lambda call made with a moto-issued key SignatureDoesNotMatch when
#: auth is on (the same key works for IAM, EC2, S3, STS, Secrets Manager), so Lambda cannot be
#: checked here; its permissions are still in the policy and its contract test runs with auth off.
MOTO_AUTH_GAPS = {"delete_lambda_function"}
#: GuardDuty has the same gap in moto 5.2.5 (SignatureDoesNotMatch with auth on).
MOTO_AUTH_GAPS_HARDENING = {"enable_guardduty_detector"}
DENIED = ("AccessDenied", "not authorized", "SignatureDoesNotMatch")
#: moto 5.2.5 authorizes S3's object-lock calls under other names (its ACTION_MAP has no
#: `object-lock`: GET falls to ListBucket, PUT to CreateBucket). The test policy grants the stand-in
#: only where the real IAM action is declared, so a missing declaration still fails.
MOTO_S3_STANDINS = {"s3:GetBucketObjectLockConfiguration": "s3:ListBucket",
                    "s3:PutBucketObjectLockConfiguration": "s3:CreateBucket"}


#: moto 5.2.5 authorizes every Secrets Manager call against the resource "*" (it names no secret), so a
#: statement scoped to `keyresponse/*` secrets matches nothing there: for moto only, the generated
#: policy's secrets statement is widened back to "*" (test_iam_policy.py checks the scope itself).
MOTO_SECRETS_STANDIN = "*"


def _with_moto_standins(policy: dict[str, Any]) -> dict[str, Any]:
    for statement in policy["Statement"]:
        statement["Action"] += [MOTO_S3_STANDINS[a] for a in statement["Action"] if a in MOTO_S3_STANDINS]
        if statement["Effect"] == "Allow" and statement["Resource"] == SECRETS_RESOURCE:
            statement["Resource"] = MOTO_SECRETS_STANDIN
    return policy


def _responder(name: str, policy: dict[str, object]) -> boto3.Session:
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                         region_name="us-east-1")


def _plan_apply_verify_undo(ctx: ActionContext, actions: list[Action], targets: dict[str, Target]) -> None:
    """Each action's whole cycle, with the evidence snapshot before the first write."""
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


def test_runs_every_action_when_responder_holds_only_the_generated_policy(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    bucket = locked_bucket(f"lp-{unique_name}")
    session = _responder(f"{unique_name}-responder", _with_moto_standins(responder_policy(bucket)))
    ctx = make_ctx(clients=Clients(session, max_attempts=2), evidence_bucket=bucket)
    actions = [a for a in registry().values() if a.name not in MOTO_AUTH_GAPS]
    targets = {a.name: build_case(a.name, f"{unique_name}-{i}", ctx) for i, a in enumerate(actions)}

    sandbox.set_auth(True)
    try:
        with pytest.raises(MissingPermission, match="iam:CreateUser"):
            ctx.client("iam").create_user(UserName=f"{unique_name}-nope")
        _plan_apply_verify_undo(ctx, actions, targets)
        store_ledger(ctx)
        assert ctx.evidence is not None
        names = {item.name for item in verify_manifest(ctx.evidence)}
        assert {"investigation.json", "ledger.jsonl"} <= names
    finally:
        sandbox.set_auth(False)


def test_readiness_and_every_hardening_action_run_when_holding_only_the_readiness_policy(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    session = _responder(f"{unique_name}-hardener", _with_moto_standins(readiness_policy()))
    ctx = make_ctx(clients=Clients(session, max_attempts=2), webhook_eventbridge_token=TOKEN)
    actions = [a for a in HARDENING if a.name not in MOTO_AUTH_GAPS_HARDENING]
    targets = {a.name: build_hardening_case(a.name, f"lp{i}-{unique_name}", ctx) for i, a in enumerate(actions)}

    sandbox.set_auth(True)
    try:
        with pytest.raises(MissingPermission, match="iam:CreateUser"):
            ctx.client("iam").create_user(UserName=f"{unique_name}-nope")
        checks = assess(ctx.clients, ctx.settings, ReadinessOptions(regions=["us-east-1"]))
        assert {c.id for c in checks} >= {"cloudtrail_multi_region_logging", "trail_bucket_object_lock",
                                           "athena_cloudtrail_table", "responder_role", "long_lived_access_keys"}
        denied = [(c.id, c.evidence) for c in checks
                  if c.id != "guardduty_enabled" and any(word in c.evidence for word in DENIED)]
        assert denied == []
        _plan_apply_verify_undo(ctx, actions, targets)
    finally:
        sandbox.set_auth(False)


def test_readiness_reads_are_denied_without_the_readiness_policy(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    """The check above can fail: with the responder's policy, readiness's reads are refused."""
    ctx = make_ctx(clients=Clients(_responder(f"{unique_name}-responder", _with_moto_standins(responder_policy())),
                                   max_attempts=2))
    sandbox.set_auth(True)
    try:
        checks = assess(ctx.clients, ctx.settings, ReadinessOptions(regions=["us-east-1"]))
    finally:
        sandbox.set_auth(False)
    denied = {c.id for c in checks if any(word in c.evidence for word in DENIED)}
    assert {"cloudtrail_multi_region_logging", "athena_cloudtrail_table"} <= denied


def test_the_generated_policy_denies_writes_on_protected_principals_and_the_responder_itself(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    """Defence in depth under the guardrails: with the code's own check switched off (a context whose
    settings protect nothing), IAM itself refuses the generated policy's holder any write on a
    protected role and on the responder's own role, and allows it on any other role."""
    from keyresponse.settings import Settings

    protected, own, other = f"{unique_name}-bg", f"{unique_name}-ir", f"{unique_name}-ops"
    iam = boto3.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]})
    for role in (protected, own, other):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    policy = responder_policy(settings=Settings(protected_principals=[f"role/{protected}"], response_role_name=own))
    ctx = make_ctx(clients=Clients(_responder(f"{unique_name}-responder", _with_moto_standins(policy)), max_attempts=2),
                   protected_principals=[])
    revoke, tag = registry()["attach_session_revocation_policy"], registry()["tag_principal"]
    sandbox.set_auth(True)
    try:
        for role in (protected, own):
            for action in (revoke, tag):
                with pytest.raises(MissingPermission, match="AccessDenied"):
                    action.apply(ctx, Target(kind="role", id=role))
        assert revoke.apply(ctx, Target(kind="role", id=other)) is not None
    finally:
        sandbox.set_auth(False)
    assert iam.list_role_policies(RoleName=protected)["PolicyNames"] == []
    assert iam.list_role_tags(RoleName=protected)["Tags"] == [] and iam.list_role_tags(RoleName=own)["Tags"] == []
    assert iam.list_role_policies(RoleName=other)["PolicyNames"] != []
