"""Readiness on the seeded sandbox: the planted gaps, the hardening plan, apply, re-check, undo, IaC.

One moto server of its own (module scope), seeded like the session's, so applying the hardening
never touches the shared `seeded` account. The whole before/apply/after/undo story runs once in
the `story` fixture; the tests read what it recorded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from keyresponse.readiness import Check, ReadinessOptions, assess, readiness_for_report
from keyresponse.readiness.checks.guardduty_enabled import check_guardduty
from keyresponse.readiness.routes import ALERT_ROUTES, route_matches
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount, seed_account
from keyresponse.settings import Settings
from tasks.actions import ActionContext, UndoReport, apply_steps, undo_incident
from tasks.hardening import registry
from tasks.hardening._plan import HardeningPlan, cloudformation_template, plan_hardening

pytestmark = pytest.mark.slow  # a seeded sandbox per module, apply and undo

REGIONS = ["us-east-1", "eu-west-1"]
TOKEN = "test-bearer-token-not-real-0123"
PLANTED_FAILURES = {
    "guardduty_enabled@us-east-1", "guardduty_enabled@eu-west-1", "cloudtrail_multi_region_logging",
    "cloudtrail_data_events", "trail_bucket_object_lock", "athena_cloudtrail_table",
    "alerts_guardduty_findings@us-east-1", "alerts_guardduty_findings@eu-west-1",
    "alerts_health_exposure@us-east-1", "alerts_quarantine_policy@us-east-1", "long_lived_access_keys",
}
NOT_VERIFIABLE_HERE = {"root_access_keys", "root_mfa"}


@dataclass
class Story:
    box: MotoSandbox
    account: SeededAccount
    settings: Settings
    options: ReadinessOptions
    before: list[Check]
    plan: HardeningPlan
    template: dict[str, Any]
    written: int
    after: list[Check]
    replan: HardeningPlan
    undo: UndoReport
    after_undo: list[Check]


def _by_status(checks: list[Check], status: str) -> set[str]:
    return {c.label for c in checks if c.status == status}


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    with MotoSandbox() as box, pytest.MonkeyPatch.context() as env:
        for key, value in box.env().items():
            env.setenv(key, value)
        account = seed_account(box)
        settings = Settings(home=tmp_path_factory.mktemp("home"), webhook_eventbridge_token=TOKEN, evidence_bucket=None)
        options = ReadinessOptions(regions=REGIONS, trail_bucket=account.trail_bucket)
        ctx = ActionContext.create("hardening-test", dry_run=False, settings=settings)
        before = assess(ctx.clients, settings, options)
        plan = plan_hardening(before, options, settings)
        template = cloudformation_template(plan, options, settings)
        written = apply_steps(ctx, plan.steps)
        after = assess(ctx.clients, settings, options)
        replan = plan_hardening(after, options, settings)
        undo = undo_incident(ctx, registry())
        after_undo = assess(ctx.clients, settings, options)
        yield Story(box, account, settings, options, before, plan, template, len(written), after, replan, undo,
                    after_undo)


def test_reports_exactly_the_planted_gaps_when_the_sandbox_is_seeded(story: Story) -> None:
    assert _by_status(story.before, "fail") == PLANTED_FAILURES
    assert _by_status(story.before, "not_verifiable") == NOT_VERIFIABLE_HERE
    assert _by_status(story.before, "pass") == {"responder_role"}
    long_lived = next(c for c in story.before if c.id == "long_lived_access_keys")
    assert long_lived.facts["users"] == sorted(story.account.planted["long_lived"])
    assert all(c.fix for c in story.before if c.status != "pass")
    assert all(c.account_id == story.account.account_id for c in story.before)


def test_never_passes_root_checks_when_the_sandbox_cannot_show_them(story: Story) -> None:
    for check in (c for c in story.before if c.id in NOT_VERIFIABLE_HERE):
        assert check.status == "not_verifiable"
        assert check.evidence.startswith("not verifiable here") and "no root user" in check.evidence


def test_marks_a_check_not_verifiable_when_the_read_is_denied() -> None:
    def denied(service: str, region: str | None = None) -> Any:
        class Client:
            def can_paginate(self, method: str) -> bool:
                return False

            def list_detectors(self, **_: Any) -> Any:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListDetectors")

        return Client()

    check = check_guardduty(denied, "123456789012", "us-east-1")
    assert check.status == "not_verifiable" and "AccessDenied" in check.evidence


def test_plans_one_step_per_gap_in_registry_order_when_gaps_are_found(story: Story) -> None:
    labels = [s.label for s in story.plan.steps]
    assert labels[:2] == ["enable_guardduty_detector:region:us-east-1@us-east-1",
                          "enable_guardduty_detector:region:eu-west-1@eu-west-1"]
    assert len(labels) == len(set(labels)) == 19  # a dead-letter queue per region with an alert rule
    assert [s.action.name for s in story.plan.steps].count("put_alert_rule") == 4
    assert any(note.startswith("long_lived_access_keys:") for note in story.plan.manual)
    assert sum(note.startswith("root_") for note in story.plan.manual) == 2


def test_closes_every_gap_the_sandbox_can_emulate_when_the_plan_is_applied(story: Story) -> None:
    assert story.written == len(story.plan.steps)
    assert _by_status(story.after, "fail") == {"long_lived_access_keys"}  # people's keys: never auto-hardened
    assert _by_status(story.after, "not_verifiable") == NOT_VERIFIABLE_HERE
    assert story.replan.steps == []


def test_restores_the_account_when_the_hardening_is_undone(story: Story) -> None:
    skipped = [(entry.action, why) for entry, why in story.undo.skipped]
    assert skipped == [("enable_bucket_object_lock", registry()["enable_bucket_object_lock"].undo_unsupported_reason)]
    assert len(story.undo.undone) == story.written - 1
    assert _by_status(story.after_undo, "fail") == PLANTED_FAILURES - {"trail_bucket_object_lock"}


def test_keeps_the_webhook_token_out_of_the_ledger_when_the_connection_is_made(story: Story) -> None:
    ledger = story.settings.home / "incidents" / "hardening-test" / "ledger.jsonl"
    assert ledger.exists() and TOKEN not in ledger.read_text()


def test_lists_gaps_and_fixes_for_the_report_when_checks_fail(story: Story) -> None:
    rows = readiness_for_report(story.before)
    assert {tuple(row) for row in rows} == {("check", "status", "evidence", "fix")}
    assert [r["status"] for r in rows] == ["fail"] * len(PLANTED_FAILURES) + ["not_verifiable"] * 2
    assert all(r["fix"] for r in rows)
    assert readiness_for_report(story.after)[0]["check"].startswith("long_lived_access_keys")


def test_emits_a_valid_cloudformation_template_when_every_gap_is_planned(story: Story, tmp_path: Path) -> None:
    template = json.loads(json.dumps(story.template))
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    types = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::GuardDuty::Detector", "AWS::CloudTrail::Trail", "AWS::Events::Rule", "AWS::Events::Connection",
            "AWS::Events::ApiDestination", "AWS::Glue::Table", "AWS::S3::BucketPolicy", "AWS::IAM::Role",
            "AWS::SQS::Queue", "AWS::SQS::QueuePolicy"} <= types
    rules = [r for r in template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == len(ALERT_ROUTES)
    assert all(t["DeadLetterConfig"] and t["RetryPolicy"] for r in rules for t in r["Properties"]["Targets"])
    assert TOKEN not in json.dumps(template)
    assert template["Resources"]["Trail"]["Properties"]["S3BucketName"] == story.account.trail_bucket
    cfn_lint = shutil.which("cfn-lint") or str(Path(__file__).parents[2] / ".venv" / "bin" / "cfn-lint")
    if not Path(cfn_lint).exists():
        pytest.skip("cfn-lint is not installed")
    path = tmp_path / "hardening.json"
    path.write_text(json.dumps(template))
    linted = subprocess.run([cfn_lint, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_prints_json_and_writes_the_template_when_run_from_the_cli(story: Story, tmp_path: Path) -> None:
    from keyresponse.cli import app

    out = tmp_path / "template.json"
    env = {**story.box.env(), "KEYRESPONSE_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(app, ["readiness", "--json", "--regions", "us-east-1", "--trail-bucket",
                                      story.account.trail_bucket, "--cloudformation", str(out)], env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    failing = {c["id"] for c in payload["checks"] if c["status"] == "fail"}
    assert "guardduty_enabled" in failing and "trail_bucket_object_lock" not in failing  # locked for good
    assert payload["summary"]["not_verifiable"] == 2
    assert json.loads(out.read_text())["Resources"]


def test_refuses_a_bad_region_list_when_run_from_the_cli() -> None:
    from keyresponse.cli import app

    result = CliRunner().invoke(app, ["readiness", "--regions", "us-east-1,not a region"])
    assert result.exit_code == 2 and "not a region name" in result.output


@pytest.mark.parametrize("route", ALERT_ROUTES, ids=lambda r: r.source)
def test_accepts_an_equivalent_hand_made_rule_when_matching_routes(route: Any) -> None:
    assert route_matches(route, route.pattern)
    hand_made = {"source": route.pattern["source"]}
    if route.source == "health":
        hand_made["detail"] = {"eventTypeCode": ["AWS_RISK_CREDENTIALS_EXPOSED"]}  # type: ignore[assignment]
    if route.source == "cloudtrail":
        hand_made["detail"] = {"eventName": ["AttachUserPolicy", "DetachUserPolicy"]}  # type: ignore[assignment]
    assert route_matches(route, hand_made)
    assert not route_matches(route, {"source": ["aws.ec2"]})
