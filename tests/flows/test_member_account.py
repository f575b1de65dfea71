"""A key of a member account of the Organization is handled in that account, through the response
role the responder assumes there (moto's multi-account support: keys route to their own account)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyresponse.incident import minimal_investigation
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.server import admin_client
from keyresponse.settings import get_settings
from keyresponse.validation import validate_key


def _member_iam(endpoint: str, member: str) -> Any:
    """An IAM client acting in the member account as its admin (moto routes by x-moto-account-id)."""
    member_iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
    member_iam.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", member))
    return member_iam


@pytest.fixture
def organization(prefect_server: str, sandbox: MotoSandbox, tmp_path: Path) -> Iterator[dict[str, str]]:
    # `sandbox` (unused here) first: the session sandbox exports its AWS_* variables when it starts, and
    # a start during this test would be undone by the restore below, leaving later tests without them.
    saved = dict(os.environ)
    with MotoSandbox() as box:
        orgs = admin_client(box.endpoint, "organizations")
        orgs.create_organization(FeatureSet="ALL")
        member = orgs.create_account(AccountName="payments", Email="payments@example.com")[
            "CreateAccountStatus"]["AccountId"]
        iam = admin_client(box.endpoint, "iam")  # the management account (123456789012)
        iam.create_user(UserName="ir-responder")
        responder = iam.create_access_key(UserName="ir-responder")["AccessKey"]
        # In the member account: the response role, and a workload user whose key leaked.
        member_iam = _member_iam(box.endpoint, member)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"AWS": "arn:aws:iam::123456789012:user/ir-responder"}}]}
        member_iam.create_role(RoleName="KeyResponseResponder", AssumeRolePolicyDocument=json.dumps(trust))
        member_iam.create_user(UserName="payments-batch")
        leaked = member_iam.create_access_key(UserName="payments-batch")["AccessKey"]["AccessKeyId"]
        other = member_iam.create_access_key(UserName="payments-batch")["AccessKey"]["AccessKeyId"]
        os.environ.update(box.env())
        os.environ.update({"AWS_ACCESS_KEY_ID": responder["AccessKeyId"],
                           "AWS_SECRET_ACCESS_KEY": responder["SecretAccessKey"],
                           "KEYRESPONSE_HOME": str(tmp_path), "KEYRESPONSE_ACCOUNTS_IN_SCOPE": json.dumps([member])})
        get_settings.cache_clear()
        try:
            yield {"member": member, "leaked": leaked, "other": other, "endpoint": box.endpoint}
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()


def test_the_receivers_first_response_contains_a_member_accounts_key_in_that_account(
        organization: dict[str, str]) -> None:
    from tasks import first_response

    member, leaked = organization["member"], organization["leaked"]
    outcome = first_response.contain("inc-member-first", leaked)
    assert outcome["status"] == "applied" and outcome["account_id"] == member, outcome
    assert outcome["owner"] == "payments-batch"
    entry, denied = outcome["ledger"]  # the key, then the deny on its owner, both in the member account
    assert entry["action"] == "deactivate_access_key" and entry["target"]["data"]["account_id"] == member
    assert denied["action"] == "attach_session_revocation_policy" and denied["target"]["id"] == "payments-batch"
    assert denied["target"]["data"]["account_id"] == member and denied["account_id"] == member
    assert entry["before"] == {"status": "Active"} and entry["after"] == {"status": "Inactive"}
    assert not any(n.startswith("after the change") for n in outcome["plan"]["notes"]), outcome["plan"]["notes"]
    status = {k["AccessKeyId"]: k["Status"]
              for k in _member_iam(organization["endpoint"], member).list_access_keys(UserName="payments-batch")["AccessKeyMetadata"]}
    assert status == {leaked: "Inactive", organization["other"]: "Active"}  # that key only, in that account
    assert json.loads(first_response.path_of("inc-member-first").read_text())["status"] == "applied"


def test_a_member_accounts_key_is_contained_in_that_account(organization: dict[str, str]) -> None:
    from flows.containment import containment

    member, leaked = organization["member"], organization["leaked"]
    facts = validate_key(leaked, accounts_in_scope=[member])
    assert facts.account_id == member and facts.is_ours is True
    investigation = minimal_investigation(**{
        "access_key_id": leaked, "account_id": member,
        "principal_arn": f"arn:aws:iam::{member}:user/payments-batch",
        "credentials": [{"access_key_id": leaked, "kind": "original", "created_by_event": None, "parent": None,
                         "principal_arn": f"arn:aws:iam::{member}:user/payments-batch"}],
        "persistence": [], "resources_created": [], "regions": []})
    outcome = containment("inc-member-1", investigation, dry_run=False, approval=False)
    assert outcome["status"] == "applied"
    assert {e["action"] for e in outcome["ledger"]} >= {"deactivate_access_key", "attach_session_revocation_policy"}
    member_iam = _member_iam(organization["endpoint"], member)
    status = {k["AccessKeyId"]: k["Status"]
              for k in member_iam.list_access_keys(UserName="payments-batch")["AccessKeyMetadata"]}
    assert status == {leaked: "Inactive", organization["other"]: "Active"}  # exactly the leaked key
    policies = member_iam.list_user_policies(UserName="payments-batch")["PolicyNames"]
    assert any("inc-member-1" in p or "revoke" in p.lower() for p in policies)
    # and nothing of the kind happened in the management account
    assert admin_client(organization["endpoint"], "iam").list_user_policies(UserName="ir-responder")[
        "PolicyNames"] == []


def test_an_undo_run_from_the_responders_own_account_undoes_in_the_member_account(
        organization: dict[str, str]) -> None:
    """`keyresponse undo` makes its context in the responder's own account; each change is undone in
    the account its target is in (the ledger's `data.account_id`), never on a same-named principal of
    the responder's account."""
    from flows.containment import containment
    from tasks.actions import ActionContext, undo_incident
    from tasks.registry import registry

    member, leaked = organization["member"], organization["leaked"]
    member_iam = _member_iam(organization["endpoint"], member)
    management = admin_client(organization["endpoint"], "iam")
    management.create_user(UserName="payments-batch")  # a namesake in the responder's own account
    namesake = management.create_access_key(UserName="payments-batch")["AccessKey"]["AccessKeyId"]
    investigation = minimal_investigation(**{
        "access_key_id": leaked, "account_id": member,
        "principal_arn": f"arn:aws:iam::{member}:user/payments-batch",
        "credentials": [{"access_key_id": leaked, "kind": "original", "created_by_event": None, "parent": None,
                         "principal_arn": f"arn:aws:iam::{member}:user/payments-batch"}],
        "persistence": [], "resources_created": [], "regions": []})
    assert containment("inc-member-undo", investigation, dry_run=False, approval=False)["status"] == "applied"
    assert member_iam.list_user_policies(UserName="payments-batch")["PolicyNames"] != []

    ctx = ActionContext.create("inc-member-undo", dry_run=False)
    assert ctx.account_id != member
    report = undo_incident(ctx, registry())
    assert len(report.undone) == 3 and not report.skipped
    status = {k["AccessKeyId"]: k["Status"]
              for k in member_iam.list_access_keys(UserName="payments-batch")["AccessKeyMetadata"]}
    assert status == {leaked: "Active", organization["other"]: "Active"}
    assert member_iam.list_user_policies(UserName="payments-batch")["PolicyNames"] == []
    assert member_iam.list_user_tags(UserName="payments-batch")["Tags"] == []
    assert [k["Status"] for k in management.list_access_keys(UserName="payments-batch")["AccessKeyMetadata"]
            if k["AccessKeyId"] == namesake] == ["Active"]
    assert management.list_user_policies(UserName="payments-batch")["PolicyNames"] == []
