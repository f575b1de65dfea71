"""Guardrails refuse the responder itself, protected principals, the root user and foreign accounts."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from keyresponse.errors import GuardrailRefusal
from keyresponse.guardrails import Principal, ProtectedPrincipal, Responder, parse_principal, refuse_principal
from keyresponse.incident import minimal_investigation_record
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import Settings
from tasks.actions import ActionContext, Clients, Target
from tasks.plan import plan_response
from tasks.registry import registry

ACCOUNT = "123456789012"


def _ctx(tmp_path: Path, session: boto3.Session | None = None, **settings: object) -> ActionContext:
    values: dict[str, object] = {"home": tmp_path, "evidence_bucket": None, **settings}
    return ActionContext.create("ir-guardrails", dry_run=False, clients=Clients(session),
                                settings=Settings(**values))  # type: ignore[arg-type]


def test_refuses_the_responders_own_key_when_asked_to_deactivate_it(
    sandbox: MotoSandbox, tmp_path: Path, unique_name: str
) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]
    session = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                            region_name="us-east-1")
    ctx = _ctx(tmp_path, session)
    assert ctx.responder.arn.endswith(f":user/{unique_name}")
    target = Target(kind="access_key", id=key["AccessKeyId"], user_name=unique_name)
    with pytest.raises(GuardrailRefusal, match="responder's own identity"):
        registry()["deactivate_access_key"].apply(ctx, target)
    with pytest.raises(GuardrailRefusal, match="responder's own key"):
        registry()["deactivate_access_key"].apply(ctx, target.model_copy(update={"user_name": None}))
    assert {k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]} == {"Active"}
    assert ctx.ledger.entries() == []


def test_refuses_a_protected_user_when_its_key_is_in_the_plan(
    sandbox: MotoSandbox, tmp_path: Path, unique_name: str
) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    ctx = _ctx(tmp_path, protected_principals=[f"arn:aws:iam::{ACCOUNT}:user/{unique_name}"])
    with pytest.raises(GuardrailRefusal, match="protected principal"):
        registry()["attach_session_revocation_policy"].apply(ctx, Target(kind="user", id=unique_name))
    with pytest.raises(GuardrailRefusal, match="protected principal"):
        registry()["deactivate_access_key"].plan(ctx, Target(kind="access_key", id=key, user_name=unique_name))
    assert iam.list_user_policies(UserName=unique_name)["PolicyNames"] == []
    assert ctx.ledger.entries() == []


def test_refuses_the_root_user_with_manual_steps_when_the_investigation_names_it() -> None:
    investigation = minimal_investigation_record(access_key_id="AKIAROOTROOTROOTROOT", account_id=ACCOUNT,
                                                 principal_arn=f"arn:aws:iam::{ACCOUNT}:root", credentials=[])
    with pytest.raises(GuardrailRefusal, match=r"root user .* delete the root access keys"):
        plan_response(investigation, "containment")


def test_refuses_root_when_a_target_names_it(sandbox: MotoSandbox, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(GuardrailRefusal, match="root user"):
        registry()["tag_principal"].plan(ctx, Target(kind="user", id="root"))


def test_refuses_an_account_outside_scope(sandbox: MotoSandbox, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    target = Target(kind="user", id="alice", data={"account_id": "999999999999"})
    with pytest.raises(GuardrailRefusal, match="outside the accounts in scope"):
        registry()["tag_principal"].plan(ctx, target)


def test_refuses_own_role_when_responder_is_an_assumed_role() -> None:
    responder = Responder(arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/KeyResponseResponder/s1",
                          account_id=ACCOUNT, access_key_id="ASIAXXXXXXXXXXXXXXXX")
    with pytest.raises(GuardrailRefusal, match="own identity"):
        refuse_principal(Principal("role", "KeyResponseResponder", ACCOUNT), responder, Settings(home=Path(".")))
    refuse_principal(Principal("role", "other", ACCOUNT), responder, Settings(home=Path(".")))


def test_parses_principal_arns() -> None:
    assert parse_principal(f"arn:aws:iam::{ACCOUNT}:user/path/bob") == Principal("user", "bob", ACCOUNT)
    assert parse_principal(f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/sess") == Principal("role", "ops", ACCOUNT)
    assert parse_principal(f"arn:aws:iam::{ACCOUNT}:root").kind == "root"
    assert parse_principal("carol", kind="role") == Principal("role", "carol")


def test_refuses_a_protected_user_whatever_the_case_of_its_name(
    sandbox: MotoSandbox, tmp_path: Path, unique_name: str
) -> None:
    """IAM names are unique without regard to case, so `Break-Glass` is the principal `break-glass`
    protects: its key is never deactivated (the old check compared names case-sensitively)."""
    user = f"Bg-{unique_name}"
    iam = boto3.client("iam")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    ctx = _ctx(tmp_path, protected_principals=[user.lower()])
    with pytest.raises(GuardrailRefusal, match="protected principal"):
        registry()["deactivate_access_key"].apply(ctx, Target(kind="access_key", id=key, user_name=user))
    ctx = _ctx(tmp_path, protected_principals=[f"arn:aws:iam::{ACCOUNT}:user/{user.upper()}"])
    with pytest.raises(GuardrailRefusal, match="protected principal"):
        registry()["attach_session_revocation_policy"].apply(ctx, Target(kind="user", id=user))
    assert {k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]} == {"Active"}
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
    assert ctx.ledger.entries() == []


def test_a_protected_entry_names_its_kind_and_account(
    sandbox: MotoSandbox, tmp_path: Path, unique_name: str
) -> None:
    """`role/NAME` protects the role only, and an ARN that account's principal only: a user of the same
    name, or the same name in this account, is still contained."""
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    target = Target(kind="access_key", id=key, user_name=unique_name)
    for entry in (f"role/{unique_name}", f"arn:aws:iam::999988887777:user/{unique_name}"):
        ctx = _ctx(tmp_path / entry.replace("/", "_").replace(":", "_"), protected_principals=[entry])
        assert registry()["deactivate_access_key"].plan(ctx, target) is not None, entry
    ctx = _ctx(tmp_path, protected_principals=[f"user/{unique_name.upper()}"])
    with pytest.raises(GuardrailRefusal, match=f"user {unique_name} in account {ACCOUNT} is a protected"):
        registry()["deactivate_access_key"].plan(ctx, target)
    assert ProtectedPrincipal.parse(f"arn:aws:iam::*:role/ops/{unique_name}") == ProtectedPrincipal(
        name=unique_name, kind="role")
    for bad in ("arn:aws:s3:::bucket", "group/admins", ""):
        with pytest.raises(ValueError):
            ProtectedPrincipal.parse(bad)
    with pytest.raises(ValueError, match="group/admins"):
        Settings(home=tmp_path, protected_principals=["group/admins"])
