"""The action contract, kept by every hardening action against moto (the session's sandbox).

Each case makes its own resources (unique names; regions no other test uses for GuardDuty), so the
shared seeded account is never changed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyresponse.errors import ConfigurationError, KeyResponseError
from keyresponse.readiness.routes import ALERT_ROUTES, CONNECTION_NAME
from tasks.actions import Action, ActionContext, Clients, Target
from tasks.hardening import ACTIONS, registry
from tasks.hardening.configure_trail import ACTION as CONFIGURE_TRAIL
from tasks.hardening.create_athena_table import glue_table_input
from tasks.hardening.create_webhook_connection import ACTION as CREATE_CONNECTION
from tasks.iam_policy import PERMISSION_RE

from ..conftest import MakeCtx

US = "us-east-1"
TOKEN = "contract-token-not-real-0123456"
READ_ONLY = re.compile(r"^(List|Get|Describe)[A-Z]")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower())[:40].strip("-")


def _connection(name: str, region: str = US) -> str:
    events = boto3.client("events", region_name=region)
    return str(events.create_connection(Name=name, AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "Authorization", "ApiKeyValue": "Bearer x"}})["ConnectionArn"])


def build_hardening_case(action: str, name: str, ctx: ActionContext) -> Target:
    """A fresh target for `action`, with what it depends on made through the real API."""
    slug = _slug(name)
    s3 = boto3.client("s3", region_name=US)
    if action == "enable_guardduty_detector":
        return Target(kind="region", id="ca-central-1", region="ca-central-1")  # no other test uses it
    if action in ("put_trail_bucket_policy", "enable_bucket_object_lock", "configure_trail"):
        bucket = f"{slug}-trail"[:63]
        s3.create_bucket(Bucket=bucket)
        if action == "put_trail_bucket_policy":
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Sid": "Existing", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
                 "Resource": f"arn:aws:s3:::{bucket}"}]}))
            return Target(kind="bucket", id=bucket, region=US, data={"trail": slug})
        if action == "enable_bucket_object_lock":
            return Target(kind="bucket", id=bucket, region=US, data={"mode": "GOVERNANCE", "days": 1})
        return Target(kind="trail", id=slug, region=US, data={"bucket": bucket,
                                                              "data_events": ["AWS::S3::Object"]})
    if action == "create_athena_table":
        database = slug.replace("-", "_")
        return Target(kind="glue_table", id=f"{database}.cloudtrail", region=US, data={
            "bucket": f"{slug}-logs", "accounts": [ctx.account_id], "regions": [US, "eu-west-1"]})
    if action == "create_webhook_delivery_role":
        return Target(kind="role", id=slug)
    if action == "create_webhook_connection":
        return Target(kind="connection", id=slug, region=US)
    if action == "create_webhook_destination":
        _connection(slug)
        return Target(kind="api_destination", id=slug, region=US,
                      data={"endpoint": "https://ir.example.com/alerts/guardduty", "connection": slug})
    if action == "create_alert_dead_letter_queue":
        return Target(kind="queue", id=slug, region=US)
    if action == "put_alert_rule":
        events = boto3.client("events", region_name=US)
        events.create_api_destination(Name=slug, ConnectionArn=_connection(slug), HttpMethod="POST",
                                      InvocationEndpoint="https://ir.example.com/alerts/health")
        route = ALERT_ROUTES[1]
        return Target(kind="event_rule", id=slug, region=US, data={
            "pattern": route.pattern, "destination": slug, "role": "keyresponse-eventbridge-webhook",
            "dead_letter_queue": f"{slug}-dlq", "description": route.description})
    raise AssertionError(f"no case for hardening action {action}: add one here")


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_declares_the_contract_when_registered(action: Action) -> None:
    module = inspect.getmodule(action)
    assert module is not None and module.__doc__
    assert action.name == Path(str(module.__file__)).stem
    assert action.summary.endswith(".") and action.target_kinds
    assert action.permissions and all(PERMISSION_RE.fullmatch(p) for p in action.permissions)
    assert len(set(action.permissions)) == len(action.permissions)
    assert (type(action).revert is not Action.revert) != (action.undo_unsupported_reason is not None)


def test_registers_every_module_of_the_package_when_imported() -> None:
    folder = Path(str(importlib.import_module("tasks.hardening").__file__)).parent
    assert {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")} == set(registry())


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_keeps_the_contract_when_run_against_moto(
    action: Action, make_ctx: MakeCtx, unique_name: str, write_calls: Callable[[Clients], list[str]]
) -> None:
    ctx = make_ctx(webhook_eventbridge_token=TOKEN)
    target = build_hardening_case(action.name, f"contract-{unique_name}", ctx)
    calls = write_calls(ctx.clients)

    change = action.plan(ctx, target)
    assert change is not None and change.before and change.description
    assert calls and all(READ_ONLY.match(op) for op in calls), f"plan made a write call: {calls}"

    first = action.apply(ctx, target)
    assert first is not None and first.before == change.before and first.after != first.before
    action.verify(ctx, target)
    assert action.apply(ctx, target) is None, "a second apply must find nothing to do"
    assert TOKEN not in ctx.ledger.path.read_text()

    if action.undo_unsupported_reason is None:
        undone = action.undo(ctx, first)
        assert action.read(ctx, target) == first.before
        assert undone.undoes == first.entry_id
        assert action.undo(ctx, first).after == first.before  # idempotent
    else:
        with pytest.raises(KeyResponseError, match="cannot be undone"):
            action.undo(ctx, first)


def test_updates_an_existing_trail_and_restores_it_when_undone(make_ctx: MakeCtx, unique_name: str) -> None:
    ctx = make_ctx()
    slug = _slug(f"upd-{unique_name}")
    boto3.client("s3", region_name=US).create_bucket(Bucket=f"{slug}-b")
    ct = boto3.client("cloudtrail", region_name=US)
    ct.create_trail(Name=slug, S3BucketName=f"{slug}-b", IsMultiRegionTrail=False, EnableLogFileValidation=False)
    target = Target(kind="trail", id=slug, region=US, data={"bucket": "ignored-for-existing-trails",
                                                            "data_events": ["AWS::Lambda::Function"]})
    entry = CONFIGURE_TRAIL.apply(ctx, target)
    assert entry is not None and entry.before["exists"] and not entry.before["logging"]
    assert entry.after["multi_region"] and entry.after["logging"] and entry.after["bucket"] == f"{slug}-b"
    CONFIGURE_TRAIL.undo(ctx, entry)
    state = ct.describe_trails(trailNameList=[slug])["trailList"][0]
    assert not state["IsMultiRegionTrail"] and not ct.get_trail_status(Name=slug)["IsLogging"]


def test_refuses_to_plan_a_connection_when_no_webhook_token_is_set(make_ctx: MakeCtx, unique_name: str) -> None:
    ctx = make_ctx(webhook_eventbridge_token=None)
    with pytest.raises(ConfigurationError, match="KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN"):
        CREATE_CONNECTION.plan(ctx, Target(kind="connection", id=_slug(unique_name), region=US))
    assert CONNECTION_NAME == "keyresponse-webhook"


def test_turns_the_ddl_file_into_the_glue_table_when_parsed() -> None:
    from keyresponse.queries import render_ddl

    database, table = glue_table_input(render_ddl(bucket="acme-logs", accounts=["123456789012"], regions=[US]))
    columns: list[dict[str, Any]] = table["StorageDescriptor"]["Columns"]
    assert database == "security" and table["Name"] == "cloudtrail"
    assert [c["Name"] for c in table["PartitionKeys"]] == ["account", "region", "timestamp"]
    assert {"useridentity", "eventtime", "requestparameters", "tlsdetails"} <= {c["Name"] for c in columns}
    assert next(c for c in columns if c["Name"] == "resources")["Type"] == \
        "array<struct<arn:string,accountid:string,type:string>>"
    assert table["Parameters"]["projection.enabled"] == "true"
    assert table["StorageDescriptor"]["Location"] == "s3://acme-logs/AWSLogs/"
