"""Every target keeps its account; a principal of an account that is neither the incident's nor a member
account the responder acts in is the attacker's, never a target.

The attack: the leaked key assumes a role it controls in the attacker's own account (its trust policy
lets anyone in), named like one of the victim's roles. CloudTrail logs the AssumeRole beside the
victim's calls. A planner that keeps only the role's name revokes the sessions of the victim's role.

From CloudTrail records (Stratus Red Team's real AssumeRole record, re-aimed) through the
investigation, the plan and its application in moto: the victim's same-named role and the attacker's
are untouched, the role the key assumed in a member account is revoked there, and the attacker's
account is reported in the plan's notes, the investigation and its attribution answer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files
from keyresponse.incident import make_incident
from keyresponse.investigation import Window, investigate
from keyresponse.model import InvestigationRecord
from keyresponse.report import credential_containment, render_markdown
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.server import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY
from tasks.actions import apply_steps
from tasks.iam_changes import INCIDENT_TAG, revocation_policy_name
from tasks.plan import plan_response

from .conftest import MakeCtx

HOME = "123456789012"  # the victim's account: moto's default
MEMBER = "210987654321"  # a member account the responder acts in
ATTACKER = "999988887777"  # an account the attacker owns
STRATUS = Path(__file__).parents[1] / "fixtures" / "cloudtrail" / "stratus_red_team_detonation_logs.json"
ATTACKER_IP = "200.249.253.51"
WINDOW = Window.parse("2024-07-30T00:00:00Z", "2024-07-31T00:00:00Z")


def _iam(sandbox: MotoSandbox, account: str) -> Any:
    """IAM in `account` as moto's administrator there (moto routes by the x-moto-account-id header)."""
    client = boto3.client("iam", endpoint_url=sandbox.endpoint, region_name="us-east-1",
                          aws_access_key_id=SANDBOX_ACCESS_KEY_ID, aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY)
    client.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", account))
    return client


def _trust(account: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})


def _assume_role(real: dict[str, Any], key: str, user: str, account: str, role: str, session_key: str,
                 minute: int) -> dict[str, Any]:
    """The real record, as the victim's key assuming `role` in `account` from the attacker's address."""
    record = copy.deepcopy(real)
    record.update(eventID=f"7d0c5a3e-0000-4000-8000-00000000{minute:04d}", eventTime=f"2024-07-30T21:{minute:02d}:15Z",
                  recipientAccountId=HOME, sourceIPAddress=ATTACKER_IP)
    record["userIdentity"] = {"type": "IAMUser", "principalId": "AIDAFSHDVNSWGFKZR06G", "accountId": HOME,
                              "arn": f"arn:aws:iam::{HOME}:user/{user}", "accessKeyId": key, "userName": user}
    record["requestParameters"]["roleArn"] = f"arn:aws:iam::{account}:role/{role}"
    record["resources"] = [{"ARN": f"arn:aws:iam::{account}:role/{role}", "accountId": account,
                            "type": "AWS::IAM::Role"}]
    record["responseElements"]["assumedRoleUser"]["arn"] = f"arn:aws:sts::{account}:assumed-role/{role}/s{minute}"
    record["responseElements"]["credentials"]["accessKeyId"] = session_key
    return record


def test_a_role_the_attacker_assumed_in_its_own_account_is_reported_and_never_a_target(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str, tmp_path: Path
) -> None:
    victim, role, deploy, responder_role = (f"{unique_name}-v"[:64], f"{unique_name}-ops"[:64],
                                            f"{unique_name}-deploy"[:64], f"{unique_name}-ir"[:64])
    home_iam, member_iam, attacker_iam = _iam(sandbox, HOME), _iam(sandbox, MEMBER), _iam(sandbox, ATTACKER)
    home_iam.create_user(UserName=victim)
    key = home_iam.create_access_key(UserName=victim)["AccessKey"]["AccessKeyId"]
    home_iam.create_role(RoleName=role, AssumeRolePolicyDocument=_trust(HOME))  # the victim's own "ops"
    attacker_iam.create_role(RoleName=role, AssumeRolePolicyDocument=_trust(HOME))  # the attacker's, same name
    member_iam.create_role(RoleName=deploy, AssumeRolePolicyDocument=_trust(HOME))
    member_iam.create_role(RoleName=responder_role, AssumeRolePolicyDocument=_trust(HOME))

    real = next(r for r in json.loads(STRATUS.read_text())["Records"] if r["eventName"] == "AssumeRole")
    foreign_session, member_session = "ASIA7RQR64ZWATTACK01", "ASIA7RQR64ZWMEMBER01"
    write_trail_files([_assume_role(real, key, victim, ATTACKER, role, foreign_session, 31),
                       _assume_role(real, key, victim, MEMBER, deploy, member_session, 33)], tmp_path / "logs")
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as engine:
        result = investigate(engine, key, WINDOW, attacker_ips=[ATTACKER_IP], accounts_in_scope=[HOME, MEMBER])
        investigation = result.to_json()
        attribution = result.answers()["attribution"]

    # the investigation: the session is in scope, its role is attacker infrastructure
    assert {c["access_key_id"] for c in investigation["credentials"]} == {key, foreign_session, member_session}
    [foreign] = investigation["attacker_infrastructure"]
    assert (foreign["account_id"], foreign["kind"], foreign["name"], foreign["access_key_ids"]) == (
        ATTACKER, "role", role, [foreign_session])
    session = next(c for c in investigation["credentials"] if c["access_key_id"] == foreign_session)
    assert any("attacker infrastructure" in line for line in session["evidence"])
    external = {a["account_id"]: a for a in attribution["external_accounts"]}
    assert external[ATTACKER]["principals"] == [f"arn:aws:iam::{ATTACKER}:role/{role}"]
    assert MEMBER not in {f["account_id"] for f in investigation["attacker_infrastructure"]}

    # the plan: every target in its account; nothing of the attacker's account
    plan = plan_response(InvestigationRecord.model_validate(investigation), "containment", accounts_in_scope=[HOME, MEMBER])
    targets = {(s.action.name, s.target.kind, s.target.id, s.target.data.get("account_id")) for s in plan.steps}
    assert targets == {
        ("deactivate_access_key", "access_key", key, HOME),
        ("attach_session_revocation_policy", "user", victim, HOME), ("tag_principal", "user", victim, HOME),
        ("attach_session_revocation_policy", "role", deploy, MEMBER), ("tag_principal", "role", deploy, MEMBER)}
    assert [f.account_id for f in plan.attacker_infrastructure] == [ATTACKER]
    assert any(ATTACKER in note and "attacker infrastructure" in note and role in note for note in plan.notes)

    # applied for real: the member account's role in the member account, nothing of either "ops"
    ctx = make_ctx(accounts_in_scope=[HOME, MEMBER], response_role_name=responder_role)
    apply_steps(ctx, plan.steps, investigation=InvestigationRecord.model_validate(investigation))
    policy = revocation_policy_name(ctx.incident_id)
    assert home_iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert attacker_iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert home_iam.list_role_tags(RoleName=role)["Tags"] == []
    assert member_iam.list_role_policies(RoleName=deploy)["PolicyNames"] == [policy]
    assert {t["Key"] for t in member_iam.list_role_tags(RoleName=deploy)["Tags"]} == {INCIDENT_TAG}
    assert home_iam.list_user_policies(UserName=victim)["PolicyNames"] == [policy]
    assert [k["Status"] for k in home_iam.list_access_keys(UserName=victim)["AccessKeyMetadata"]] == ["Inactive"]
    accounts = {(e.target["id"], e.target["data"]["account_id"]) for e in ctx.ledger.applied()}
    assert (deploy, MEMBER) in accounts and not any(name == role for name, _ in accounts)

    # the report: the member account's session contained, the attacker's named as its infrastructure
    incident = make_incident(investigation=investigation, ledger=ctx.ledger.entries(), status="contained")
    rows = {row["access_key_id"]: row for row in credential_containment(incident)}
    assert rows[member_session]["contained"] and f"role {deploy}" in rows[member_session]["how"]
    assert not rows[foreign_session]["contained"]
    assert "attacker infrastructure" in rows[foreign_session]["how"] and ATTACKER in rows[foreign_session]["how"]
    assert "attacker infrastructure" in render_markdown(incident)


def test_a_target_in_another_account_is_refused_by_a_context_of_this_one(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str
) -> None:
    """The guardrail under the routing: an action never acts on a target's name in the wrong account."""
    from keyresponse.errors import GuardrailRefusal
    from tasks.actions import Target
    from tasks.registry import registry

    ctx = make_ctx(accounts_in_scope=[HOME, MEMBER])
    with pytest.raises(GuardrailRefusal, match=f"in account {MEMBER}, but this context acts in account {HOME}"):
        registry()["tag_principal"].plan(ctx, Target(kind="role", id=unique_name, data={"account_id": MEMBER}))
