"""The preventive_key_scan flow on a real Prefect server and the moto server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from local_servers import FakeSlack
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flows import load_flow_from_entrypoint

from flows.preventive_key_scan import KeyScanOutcome, preventive_key_scan
from keyresponse import aws
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.settings import get_settings
from tasks.actions import ActionContext, Clients, undo_incident
from tasks.registry import registry

ROOT = Path(__file__).parents[2]


def _session_in(account_id: str, role: str) -> boto3.Session:
    creds = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/{role}",
                                            RoleSessionName="pytest")["Credentials"]
    return aws.session(access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"],
                       session_token=creds["SessionToken"])


def test_deployment_runs_the_flow_daily_on_the_keyresponse_pool() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [deployment] = [d for d in config["deployments"] if d["name"] == "preventive-key-scan"]
    assert deployment["work_pool"]["name"] == "keyresponse"
    assert deployment["schedules"][0]["cron"] == "0 6 * * *"
    path, name = deployment["entrypoint"].split(":")
    assert load_flow_from_entrypoint(f"{ROOT / path}:{name}").name == "preventive_key_scan"


def test_finds_the_planted_cases_and_publishes_artifacts_when_scanning_the_seeded_account(
    prefect_server: str, seeded: SeededAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owners hear of their findings on Slack (a fake incoming webhook), the way incident messages
    go out, and the notifications file says which channel took each one."""
    exceptions = tmp_path / "exceptions.yaml"
    exceptions.write_text(f"- principal: dual-key-svc\n  reason: rotating\n  expires: {datetime.now(UTC).date() + timedelta(30)}\n")
    with FakeSlack() as slack:
        monkeypatch.setenv("KEYRESPONSE_SLACK_WEBHOOK_URL", slack.url)
        monkeypatch.delenv("KEYRESPONSE_SNS_TOPIC_ARN", raising=False)
        get_settings.cache_clear()
        try:
            outcome = preventive_key_scan(state_dir=str(tmp_path), exceptions_file=str(exceptions))
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()
    assert isinstance(outcome, KeyScanOutcome)
    found: dict[str, list[str]] = {check: [] for check in seeded.planted}
    for finding in outcome.result.findings:
        if finding.user_name in seeded.users:
            found[finding.check.value].append(finding.user_name)
    expected = {check: sorted(users) for check, users in seeded.planted.items()}
    expected["two_active_keys"] = []  # excepted
    assert {check: sorted(users) for check, users in found.items()} == expected
    assert [s.finding.user_name for s in outcome.result.suppressed if s.finding.user_name in seeded.users] == [
        "dual-key-svc"]

    saved = json.loads(Path(outcome.saved_to).read_text())
    assert saved["scope"] == f"account-{seeded.account_id}" and (tmp_path / "scans").is_dir()
    notified = [json.loads(line) for line in (tmp_path / "notifications.jsonl").read_text().splitlines()]
    assert {"rupert@example.com", "security-team"} <= {n["recipient"] for n in notified}
    assert notified and all(n["delivered"] == ["slack"] for n in notified)
    assert len(slack.messages) == len(notified) and slack.said("For rupert@example.com (owner tag of the user).")
    assert all(n.delivered == ["slack"] for n in outcome.result.notifications)
    assert [n["delivered"] for n in saved["notifications"]] == [["slack"]] * len(notified)
    with get_client(sync_client=True) as client:
        for key in ("preventive-key-scan-findings", "preventive-key-scan-summary"):
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            assert artifacts, f"no artifact {key}"


def _wait_paused(client: Any, timeout: float = 60) -> FlowRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["preventive_key_scan"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
        if runs:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError("the flow never paused for approval")


def test_deactivates_due_keys_only_after_approval_and_reports_them_resolved_next_time(
    prefect_server: str, sandbox: MotoSandbox, tmp_path: Path
) -> None:
    account = str(100000000000 + uuid.uuid4().int % 800000000000)
    hub_arn = f"arn:aws:iam::{account}:role/pytest-hub"
    iam = aws.client("iam", boto_session=_session_in(account, "pytest-hub"))
    iam.create_user(UserName="stale-svc", Tags=[{"Key": "owner", "Value": "owner@example.com"}])
    key = iam.create_access_key(UserName="stale-svc")["AccessKey"]["AccessKeyId"]
    sandbox.backdate(account_id=account, user_name="stale-svc", access_key_id=key,
                     created_at=(datetime.now(UTC) - timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ"))

    outcome: dict[str, KeyScanOutcome] = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("first", preventive_key_scan(
        assume_role_arn=hub_arn, grace_days=0, remediate=True, approval_timeout_s=60, state_dir=str(tmp_path))))
    runner.start()
    with get_client(sync_client=True) as client:
        run = _wait_paused(client)
        assert iam.list_access_keys(UserName="stale-svc")["AccessKeyMetadata"][0]["Status"] == "Active"
        empty = client.resume_flow_run(run.id, run_input={"reason": "no approver given"})
        assert empty.status.value == "REJECT"  # approver and decision are required: no silent approval
        accepted = client.resume_flow_run(run.id, run_input={"approver": "pytest", "decision": "approve",
                                                             "reason": "SEC-1"})
        assert accepted.status.value == "ACCEPT"
    runner.join(60)
    first = outcome["first"]
    assert first.approval == {"approver": "pytest", "decision": "approve", "reason": "SEC-1"}
    assert [(r.access_key_id, r.before, r.after) for r in first.deactivated] == [(key, "Active", "Inactive")]
    keys = iam.list_access_keys(UserName="stale-svc")["AccessKeyMetadata"]
    assert {k["AccessKeyId"]: k["Status"] for k in keys} == {key: "Inactive"}  # deactivated, never deleted
    ledger = [json.loads(line) for line in (tmp_path / "remediation.jsonl").read_text().splitlines()]
    assert ledger[0]["approval"]["approver"] == "pytest"

    second = preventive_key_scan(assume_role_arn=hub_arn, grace_days=0, state_dir=str(tmp_path))
    assert second.result.findings == [] and second.result.new == []
    assert {(f.user_name, f.check.value) for f in second.result.resolved} == {
        ("stale-svc", "long_lived"), ("stale-svc", "never_used")}

    # the deactivation went through the action contract: a ledger entry, and undo from it
    record = first.deactivated[0]
    assert record.incident_id == f"scan-{first.result.scope}-{first.result.scanned_at:%Y%m%dT%H%M%SZ}"
    ctx = ActionContext.create(record.incident_id, dry_run=False, clients=Clients(_session_in(account, "pytest-hub")))
    assert [(e.action, e.target["id"], e.before, e.after) for e in ctx.ledger.applied()] == [
        ("deactivate_access_key", key, {"status": "Active"}, {"status": "Inactive"})]
    assert ctx.ledger.applied()[0].entry_id == record.entry_id
    undone = undo_incident(ctx, registry())
    assert [e.undoes for e in undone.undone] == [record.entry_id]
    assert iam.list_access_keys(UserName="stale-svc")["AccessKeyMetadata"][0]["Status"] == "Active"
