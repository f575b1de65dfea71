"""A crash mid-plan then a rerun converges; injected throttling on IAM does not stop any action."""

from __future__ import annotations

import time

import boto3
import pytest

from keyresponse.incident import minimal_investigation_record
from keyresponse.model import InvestigationRecord
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings
from tasks.actions import LedgerEntry, Step, apply_steps, undo_incident
from tasks.plan import plan_response
from tasks.registry import registry

from .conftest import ACCOUNT, MakeCtx, build_case


class Crash(Exception):
    """Stands in for the worker dying between two actions."""


def _compromised_user(name: str) -> InvestigationRecord:
    """A user with a leaked key, a key the attacker made for a second user, and a console password it set."""
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    original = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    iam.create_user(UserName=f"{name}-x")
    derived = iam.create_access_key(UserName=f"{name}-x")["AccessKey"]["AccessKeyId"]
    iam.create_login_profile(UserName=name, Password="Attacker-Set-1!")
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    return minimal_investigation_record(**{
        "access_key_id": original, "account_id": ACCOUNT, "principal_arn": user_arn, "regions": ["us-east-1"],
        "credentials": [
            {"access_key_id": original, "kind": "original", "created_by_event": None, "parent": None,
             "principal_arn": user_arn},
            {"access_key_id": derived, "kind": "access_key", "created_by_event": "CreateAccessKey",
             "parent": original, "principal_arn": f"arn:aws:iam::{ACCOUNT}:user/{name}-x"},
            {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "kind": "session", "created_by_event": "GetSessionToken",
             "parent": original, "principal_arn": user_arn},
        ],
        "principals": [user_arn],
        "persistence": [{"event_name": "CreateLoginProfile", "event_time": "2026-11-27T10:00:00Z",
                         "resource": user_arn, "access_key_id": original}],
        "resources_created": [],
    })


def _once_each(entries: list[LedgerEntry]) -> None:
    labels = [(e.action, e.target["kind"], e.target["id"]) for e in entries]
    assert len(labels) == len(set(labels)), f"a change was recorded twice: {labels}"


def test_converges_without_duplicates_when_rerun_after_a_crash(make_ctx: MakeCtx, unique_name: str) -> None:
    investigation = _compromised_user(unique_name)
    plan = plan_response(investigation, "containment")
    assert len(plan.steps) >= 6
    done: list[Step] = []

    def crash_after_second(step: Step, entry: LedgerEntry | None) -> None:
        done.append(step)
        if len(done) == 2:
            raise Crash("worker died")

    ctx = make_ctx()
    with pytest.raises(Crash):
        apply_steps(ctx, plan.steps, investigation=investigation, after_each=crash_after_second)
    assert len(ctx.ledger.applied()) == 2

    rerun = make_ctx(incident_id=ctx.incident_id)
    written = apply_steps(rerun, plan.steps, investigation=investigation)
    assert len(written) == len(plan.steps) - 2
    entries = rerun.ledger.applied()
    assert len(entries) == len(plan.steps)
    _once_each(entries)
    for step in plan.steps:
        step.action.verify(rerun, step.target)
    assert apply_steps(make_ctx(incident_id=ctx.incident_id), plan.steps) == []

    report = undo_incident(rerun, registry())
    assert len(report.undone) == len(plan.steps) and not report.skipped
    assert undo_incident(rerun, registry()).undone == []
    iam = boto3.client("iam")
    statuses = {k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]}
    assert statuses == {"Active"}


@pytest.mark.slow
def test_completes_every_action_when_a_third_of_iam_calls_are_throttled(
    sandbox: MotoSandbox, make_ctx: MakeCtx, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx()
    actions = list(registry().values())
    targets = {a.name: build_case(a.name, f"{unique_name}-{i}", ctx) for i, a in enumerate(actions)}
    # Standard mode: the same backoff with jitter, without adaptive mode's client-side rate limiter
    # (right in production, where it protects the account's API quota, and only slow here).
    monkeypatch.setenv("KEYRESPONSE_AWS_RETRY_MODE", "standard")
    get_settings.cache_clear()
    sandbox.inject_faults(service="iam", throttle_rate=0.3, seed=11)
    started = time.monotonic()
    try:
        for action in actions:
            # A fresh context (fresh clients) per action: botocore's adaptive rate limiter, once a
            # client has seen throttling, slows that client to ~1 call/s, which is right in
            # production and only slow here.
            each = make_ctx(incident_id=ctx.incident_id)
            target = targets[action.name]
            entry = action.apply(each, target)
            assert entry is not None, action.name
            action.verify(each, target)
        counters = sandbox.call_extension("GET", "faults")
    finally:
        sandbox.inject_faults()
        monkeypatch.delenv("KEYRESPONSE_AWS_RETRY_MODE")
        get_settings.cache_clear()
    assert counters["injected"].get("iam", 0) >= 10, counters
    _once_each(ctx.ledger.applied())
    print(f"throttled {counters['injected']['iam']} of {counters['calls']['iam']} IAM calls; "
          f"{time.monotonic() - started:.1f} s")
