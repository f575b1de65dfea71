"""The scan's rules, parser, suppressions and scan-to-scan comparison, on made-up report fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from keyresponse.errors import InputError
from keyresponse.keyscan import (
    AccountFindings,
    AccountScan,
    Check,
    CredentialReportError,
    ScanException,
    ScanPolicy,
    assemble_scan,
    find_findings,
    load_exceptions,
    load_previous_scan,
    parse_credential_report,
    render_markdown,
    save_scan,
    table_rows,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "iam"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ACCOUNT = "111122223333"


def _by_check(findings: list) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for finding in findings:
        out.setdefault(finding.check.value, set()).add(finding.user_name)
    return out


def _scan(name: str, policy: ScanPolicy | None = None) -> AccountFindings:
    report = parse_credential_report((FIXTURES / name).read_bytes(), account_id=ACCOUNT)
    findings = find_findings(report, policy or ScanPolicy(), NOW)
    return AccountFindings(scan=AccountScan(account_id=ACCOUNT, status="ok", user_count=report.user_count,
                                            problems=report.problems), findings=findings)


def test_finds_each_kind_and_the_root_key_when_report_has_root_row() -> None:
    found = _by_check(_scan("credential_report_with_root.csv").findings)
    assert found == {
        "root_access_key": {"<root_account>"},
        "long_lived": {"old-key"},
        "unused": {"idle-key"},
        "never_used": {"never-used"},
        "two_active_keys": {"two-keys"},
        "console_without_mfa": {"console-no-mfa"},
    }


def test_never_used_key_is_unused_only_once_older_than_unused_days() -> None:
    found = _by_check(_scan("credential_report_with_root.csv", ScanPolicy(unused_days=5)).findings)
    assert found["never_used"] == {"never-used", "fresh-never-used"}  # 8 days old, never used
    found = _by_check(_scan("credential_report_with_root.csv", ScanPolicy(unused_days=100)).findings)
    assert "never_used" not in found and "unused" not in found


def test_old_but_used_key_is_long_lived_not_unused_when_thresholds_differ() -> None:
    findings = _scan("credential_report_with_root.csv").findings
    old = [f for f in findings if f.user_name == "old-key"]
    assert [f.check for f in old] == [Check.LONG_LIVED]
    assert old[0].age_days is not None and old[0].age_days > 600 and old[0].idle_days == 1


def test_skips_bad_rows_with_a_message_and_scans_the_rest_when_report_is_malformed() -> None:
    report = parse_credential_report((FIXTURES / "credential_report_malformed.csv").read_text(), account_id=ACCOUNT)
    problems = {p.user: p for p in report.problems}
    assert set(problems) == {"too-few-fields", "bad-date", "bad-bool", "active-undated", "", "truncated"}
    assert "fields where the header has 22" in problems["too-few-fields"].message
    assert "last tuesday" in problems["bad-date"].message and "not a date" in problems["bad-date"].message
    assert "yes" in problems["bad-bool"].message
    assert "no creation date" in problems["active-undated"].message
    assert problems["truncated"].line == 10
    assert _by_check(find_findings(report, ScanPolicy(), NOW)) == {
        "long_lived": {"good-old"}, "never_used": {"good-never-used"}}
    assert set(report.frame["user"]) == {"good-old", "all-na", "good-never-used"}


@pytest.mark.parametrize("content", ["", "\n\n", "id,name\n1,alice\n"])
def test_raises_a_clear_error_when_text_is_not_a_credential_report(content: str) -> None:
    with pytest.raises(CredentialReportError, match="credential report of account 111122223333"):
        parse_credential_report(content, account_id=ACCOUNT)


def test_protected_principals_and_live_exceptions_suppress_and_expired_ones_are_reported(tmp_path: Path) -> None:
    exceptions_file = tmp_path / "exceptions.yaml"
    exceptions_file.write_text(
        "exceptions:\n"
        "  - principal: arn:aws:iam::111122223333:user/idle-key\n"
        "    reason: vendor batch runs quarterly (SEC-12)\n"
        "    expires: 2027-01-31\n"
        "  - principal: never-used\n"
        "    reason: was waiting for the migration\n"
        "    expires: 2026-11-01\n"
        "  - principal: two-keys\n"
        "    reason: rotation in progress\n"
        "    expires: 2027-01-01\n"
        "    checks: [long_lived]\n")
    policy = ScanPolicy(protected_principals=["old-key", "<root_account>"])
    result = assemble_scan(scope="account-x", now=NOW, policy=policy, accounts=[_scan("credential_report_with_root.csv")],
                           exceptions=load_exceptions(exceptions_file))
    open_users = _by_check(result.findings)
    assert "long_lived" not in open_users  # old-key is protected
    assert "unused" not in open_users  # idle-key is excepted by ARN
    assert open_users["two_active_keys"] == {"two-keys"}  # the exception covers another check only
    assert open_users["root_access_key"] == {"<root_account>"}  # the root key is never suppressed
    assert {(s.finding.user_name, s.by) for s in result.suppressed} == {
        ("old-key", "protected_principal"), ("idle-key", "exception")}
    [expired] = result.expired_exceptions
    assert expired.exception.principal == "never-used" and len(expired.still_matching) == 1
    assert "Expired exceptions (1)" in render_markdown(result)


@pytest.mark.parametrize(("text", "message"), [
    ("- principal: bob\n  reason: r\n", "expires: Field required"),
    ("- principal: bob\n  reason: r\n  expires: someday\n", "expires"),
    ("principal: [unclosed\n", "neither YAML nor JSON"),
    ('{"exceptions": 3}', "must hold a list"),
])
def test_rejects_exceptions_file_with_a_clear_message_when_invalid(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_exceptions(path)


def test_reads_json_exceptions_file(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.json"
    path.write_text('[{"principal": "bob", "reason": "r", "expires": "2027-01-01", "checks": ["unused"]}]')
    assert load_exceptions(path) == [ScanException(principal="bob", reason="r", expires=date(2027, 1, 1),
                                                   checks=[Check.UNUSED])]


def test_reports_new_and_resolved_and_keeps_first_seen_when_compared_with_previous_scan(tmp_path: Path) -> None:
    policy = ScanPolicy(grace_days=7)
    first = assemble_scan(scope="account-x", now=NOW, policy=policy, accounts=[_scan("credential_report_with_root.csv")])
    assert len(first.new) == len(first.findings) and not first.resolved
    save_scan(first, tmp_path)
    previous = load_previous_scan(tmp_path, "account-x")
    assert previous is not None and previous.findings == first.findings

    later = NOW + timedelta(days=8)
    second_accounts = [_scan("credential_report_malformed.csv")]
    second = assemble_scan(scope="account-x", now=later, policy=policy, accounts=second_accounts, previous=previous)
    assert {f.user_name for f in second.resolved} == {f.user_name for f in first.findings}
    assert {fp.split("/")[1] for fp in second.new} == {"good-old", "good-never-used"}

    third = assemble_scan(scope="account-x", now=later, policy=policy, accounts=[_scan("credential_report_with_root.csv")],
                          previous=previous)
    assert not third.new and not third.resolved
    assert all(f.first_seen_at == NOW for f in third.findings)
    reasons = {n.reason for n in third.notifications}
    assert reasons == {"grace_period_over"}  # 8 days after first seen, grace of 7


def test_findings_of_an_unscanned_account_are_not_resolved_when_its_scan_failed() -> None:
    first = assemble_scan(scope="s", now=NOW, policy=ScanPolicy(), accounts=[_scan("credential_report_with_root.csv")])
    failed = AccountFindings(scan=AccountScan(account_id=ACCOUNT, status="error", message="AccessDenied"))
    second = assemble_scan(scope="s", now=NOW, policy=ScanPolicy(), accounts=[failed], previous=first)
    assert second.resolved == []
    assert "Accounts not scanned" in render_markdown(second) and "AccessDenied" in render_markdown(second)


def test_notifies_owner_or_security_team_and_offers_due_keys_for_remediation() -> None:
    scanned = _scan("credential_report_with_root.csv")
    for finding in scanned.findings:
        finding.owner = "ops@example.com" if finding.user_name == "old-key" else None
        finding.access_key_id = f"AKIA{finding.user_name.upper().replace('-', '')[:16]:0<16}"
    result = assemble_scan(scope="s", now=NOW, policy=ScanPolicy(grace_days=0), accounts=[scanned])
    recipients = {n.user_name: n.recipient for n in result.notifications}
    assert recipients["old-key"] == "ops@example.com" and recipients["idle-key"] == "security-team"
    assert {f.user_name for f in result.remediation_candidates} == {"old-key", "idle-key", "never-used"}
    assert len(table_rows(result)) == len(result.findings)


def test_summary_says_how_many_notifications_no_channel_took_once_they_were_sent() -> None:
    result = assemble_scan(scope="s", now=NOW, policy=ScanPolicy(), accounts=[_scan("credential_report_with_root.csv")])
    assert len(result.notifications) >= 2
    assert f"Notifications: {len(result.notifications)}. " in render_markdown(result)  # planned, not sent (the CLI)
    for notification in result.notifications:
        notification.delivered = ["slack"]
    result.notifications[0].delivered = []
    assert (f"Notifications: {len(result.notifications)} ({len(result.notifications) - 1} delivered, "
            "1 taken by no channel). ") in render_markdown(result)
