"""Scheduled preventive scan: active long-lived, unused and never-used access keys, org-wide.

    list_scan_targets ─► scan_account (one per account, in parallel) ─► assemble (pure, diff with the previous scan)
        ─► owner notifications (Slack/SNS, and <home>/notifications.jsonl) ─► JSON + artifacts
        ─► [remediate only] approval pause ─► deactivate_access_key (never delete) ─► verify

Owner notifications go out the way incident messages do (`keyresponse.notifications.send`), before
the scan is saved, so the saved scan, the summary and the notifications file say which channels took
each one; a notification no channel took is a warning of the run.

The CLI `keyresponse scan-keys` runs the same task bodies without a Prefect server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from pydantic import BaseModel, Field

from keyresponse import markdown as md
from keyresponse.approval import approval_form
from keyresponse.errors import AwsCallError
from keyresponse.keyscan import (
    AccountFindings,
    AccountScan,
    Finding,
    ScanPolicy,
    ScanResult,
    assemble_scan,
    load_exceptions,
    load_previous_scan,
    render_markdown,
    save_scan,
    table_rows,
)
from keyresponse.notifications import record, send
from keyresponse.settings import Settings, get_settings
from tasks.credential_report import (
    DeactivationRecord,
    ScanTarget,
    deactivate_access_key_after_scan,
    list_scan_targets,
    remediation_id,
    scan_account,
)


class KeyScanOutcome(BaseModel):
    """What the flow returns: the scan, and what remediation did (if asked to)."""

    result: ScanResult
    saved_to: str
    approval: dict[str, str] | None = None
    deactivated: list[DeactivationRecord] = Field(default_factory=list)


def scope_of(targets: list[ScanTarget], organization: bool) -> str:
    own = targets[0].account_id if targets else "unknown"
    return f"organization-{own}" if organization else f"account-{own}"


def _approval_request(candidates: list[Finding]) -> str:
    """The Resume dialog's description; user names and details come from the accounts (keyresponse.markdown)."""
    rows = [[md.code(f.account_id), md.code(f.user_name), md.code(f.access_key_id or ""), f.check.value, f.detail]
            for f in candidates]
    return "\n".join([
        f"### Deactivate {len(candidates)} access key(s)?", "",
        "Keys are set **Inactive** (reversible), never deleted. Owners were notified and their grace "
        "period is over.", "", md.table(["account", "user", "key", "check", "why"], rows)])


@flow(name="preventive_key_scan", description="Active long-lived / unused / never-used access keys, org-wide.")
def preventive_key_scan(
    max_age_days: int = 90,
    unused_days: int = 45,
    grace_days: int = 7,
    organization: bool = False,
    role_name: str | None = None,
    assume_role_arn: str | None = None,
    exceptions_file: str | None = None,
    remediate: bool = False,
    approval_timeout_s: int = 3600,
    state_dir: str | None = None,
) -> KeyScanOutcome:
    """Scan one account, or every account of the Organization (`organization=True`, assuming `role_name`,
    default `settings.response_role_name`, in each member). With `remediate`, keys past their grace
    period are deactivated after a person approves."""
    logger = get_run_logger()
    settings = get_settings()
    now = datetime.now(UTC).replace(microsecond=0)
    policy = ScanPolicy(max_age_days=max_age_days, unused_days=unused_days, grace_days=grace_days,
                        protected_principals=list(settings.protected_principals))
    exceptions = load_exceptions(Path(exceptions_file)) if exceptions_file else []
    home = Path(state_dir) if state_dir else settings.home
    scans_dir = home / "scans"

    targets = list_scan_targets(organization=organization, role_name=role_name or settings.response_role_name,
                                assume_role_arn=assume_role_arn)
    futures = scan_account.map(targets, policy=unmapped(policy), now=unmapped(now),
                               assume_role_arn=unmapped(assume_role_arn))
    accounts: list[AccountFindings] = []
    for target, future in zip(targets, futures, strict=True):
        future.wait()
        state = future.state
        if state.is_completed():
            accounts.append(state.result())
        else:
            accounts.append(AccountFindings(scan=AccountScan(
                account_id=target.account_id, status="error", message=state.message or "the scan task failed")))

    scope = scope_of(targets, organization)
    result = assemble_scan(scope=scope, now=now, policy=policy, accounts=accounts, exceptions=exceptions,
                           previous=load_previous_scan(scans_dir, scope))
    _notify_owners(result, home / "notifications.jsonl", settings)
    saved = save_scan(result, scans_dir)
    for account in result.accounts:
        if account.status != "ok":
            logger.warning("account %s not scanned: %s", account.account_id, account.message)
        for problem in account.problems:
            logger.warning("account %s, report line %d (%s): %s", problem.account_id, problem.line,
                           problem.user, problem.message)
    create_table_artifact(key="preventive-key-scan-findings",
                          table=md.table_cells(table_rows(result)) or [{"finding": "none"}],
                          description=f"Open findings of the preventive key scan ({md.text(scope)})")
    create_markdown_artifact(key="preventive-key-scan-summary", markdown=render_markdown(result),
                             description=f"Preventive key scan summary ({md.text(scope)})")
    logger.info("%d open finding(s), %d new, %d resolved, %d notification(s) (%d delivered); saved to %s",
                len(result.findings), len(result.new), len(result.resolved), len(result.notifications),
                sum(1 for n in result.notifications if n.delivered), saved)

    outcome = KeyScanOutcome(result=result, saved_to=str(saved))
    if not remediate or not result.remediation_candidates:
        return outcome
    try:
        approval = pause_flow_run(
            wait_for_input=approval_form([]).with_initial_data(
                description=_approval_request(result.remediation_candidates)),
            timeout=approval_timeout_s, poll_interval=2)
    except FlowPauseTimeout:
        logger.warning("no approval within %d s: no key was deactivated", approval_timeout_s)
        return outcome
    outcome.approval = approval.model_dump(include={"approver", "decision", "reason"})
    logger.info("remediation %s by %s (%s)", approval.decision, approval.approver, approval.reason or "no reason")
    if approval.decision != "approve":
        _log_remediation(home, outcome)
        return outcome

    target_of = {t.account_id: t for t in targets}
    failures = []
    ledger = remediation_id(result.scope, result.scanned_at)
    for finding in result.remediation_candidates:
        state = deactivate_access_key_after_scan(finding, target_of[finding.account_id], assume_role_arn,
                                                 incident_id=ledger, return_state=True)
        if state.is_completed():
            outcome.deactivated.append(state.result())
        else:
            failures.append(f"{finding.access_key_id}: {state.message}")
    _log_remediation(home, outcome)
    if outcome.deactivated:
        logger.info("the deactivations are ledger entries of %s: `keyresponse undo %s --apply` sets the keys "
                    "Active again", ledger, ledger)
    if failures:
        raise AwsCallError(f"{len(failures)} key(s) could not be deactivated: " + "; ".join(failures))
    return outcome


def _notify_owners(result: ScanResult, path: Path, settings: Settings) -> None:
    """Send each planned notification, note in it which channels took it, and append it to `path`.
    A channel that did not take one is a warning, never a failed run (as for incident messages)."""
    logger = get_run_logger()
    configured = [name for name, target in (("slack", settings.slack_webhook_url), ("sns", settings.sns_topic_arn))
                  if target]
    if result.notifications and not configured:
        logger.warning("no Slack webhook or SNS topic is configured: %d owner notification(s) recorded in %s "
                       "only", len(result.notifications), path)
    for notification in result.notifications:
        notification.delivered = send(notification, settings)
        record(notification, path)
        missed = [name for name in configured if name not in notification.delivered]
        if missed:
            logger.warning("notification to %s about %s/%s not delivered by %s", notification.recipient,
                           notification.account_id, notification.user_name, ", ".join(missed))


def _log_remediation(home: Path, outcome: KeyScanOutcome) -> None:
    """Append who decided what, and what changed (with the before-state), to the remediation ledger."""
    home.mkdir(parents=True, exist_ok=True)
    entry = {"scope": outcome.result.scope, "scanned_at": outcome.result.scanned_at.isoformat(),
             "approval": outcome.approval,
             "deactivated": [r.model_dump(mode="json") for r in outcome.deactivated]}
    with (home / "remediation.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
