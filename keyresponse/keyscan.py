"""The preventive key scan's analysis: parse an IAM credential report, apply the rules, compare scans.

Pure functions over data (no AWS calls). The AWS side is `tasks/credential_report.py`; the flow is
`flows/preventive_key_scan.py`; the CLI is `keyresponse scan-keys`.

Rules, for every *active* access key of every user (`now` is the scan time):

| check | condition |
|---|---|
| `long_lived` | key created more than `max_age_days` ago |
| `unused` | key used, but last used more than `unused_days` ago |
| `never_used` | key never used and created more than `unused_days` ago (an unused key, counted even though it has no last-used date) |
| `two_active_keys` | the user has two active keys |
| `console_without_mfa` | the user has a console password, no MFA device, and at least one active key |
| `root_access_key` | the account's root user (`<root_account>` row) has an active key: always a finding |

"Unused" is judged on the last-used date and "long-lived" on the creation date; the two are never
confused, and a key that was never used is not silently skipped.

Size: the scan's rules, suppressions, comparison between scans and the notices they plan are one set of pure functions over one report.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, Field, JsonValue, ValidationError, field_validator

from keyresponse import markdown as md
from keyresponse.errors import InputError, KeyResponseError
from keyresponse.notifications import UNOWNED_RECIPIENT, Notification

NotificationReason = Literal["new_finding", "grace_period_over"]

ROOT_USER = "<root_account>"
#: Values the credential report uses for "no value".
SENTINELS = frozenset({"", "N/A", "not_supported", "no_information"})
REQUIRED_COLUMNS: tuple[str, ...] = (
    "user", "arn", "password_enabled", "mfa_active",
    "access_key_1_active", "access_key_1_last_rotated", "access_key_1_last_used_date",
    "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date",
)
_BOOL_COLUMNS = ("password_enabled", "mfa_active", "access_key_1_active", "access_key_2_active")
_DATE_COLUMNS = ("access_key_1_last_rotated", "access_key_1_last_used_date",
                 "access_key_2_last_rotated", "access_key_2_last_used_date")
KEY_SLOTS = (1, 2)


class CredentialReportError(KeyResponseError):
    """A credential report could not be fetched or is unusable as a whole (not one bad row)."""


class Check(StrEnum):
    LONG_LIVED = "long_lived"
    UNUSED = "unused"
    NEVER_USED = "never_used"
    TWO_ACTIVE_KEYS = "two_active_keys"
    CONSOLE_WITHOUT_MFA = "console_without_mfa"
    ROOT_ACCESS_KEY = "root_access_key"


#: Checks about one key, which deactivating that key resolves.
KEY_CHECKS = frozenset({Check.LONG_LIVED, Check.UNUSED, Check.NEVER_USED})


class ScanPolicy(BaseModel):
    """The thresholds of a scan. Defaults follow Prowler, Flowpipe and the AWS Config rules."""

    max_age_days: int = Field(default=90, ge=1, description="An active key older than this is long-lived.")
    unused_days: int = Field(default=45, ge=1, description="An active key idle (or never used) this long is unused.")
    grace_days: int = Field(default=7, ge=0, description="Days between the owner's notice and deactivation.")
    protected_principals: list[str] = Field(
        default_factory=list, description="Break-glass users, as settings spell them (keyresponse.guardrails."
                                          "ProtectedPrincipal): reported, never acted on.")

    @field_validator("protected_principals")
    @classmethod
    def _protected(cls, entries: list[str]) -> list[str]:
        from keyresponse.guardrails import protected_entries

        protected_entries(entries)
        return entries


class ReportProblem(BaseModel):
    """A row of a credential report that could not be read; the rest of the report still counts."""

    account_id: str
    line: int
    user: str
    message: str


class CredentialReport(BaseModel):
    """A credential report as fetched from IAM (the raw CSV), before parsing."""

    account_id: str
    content: str
    generated_at: datetime | None = None


class ParsedReport:
    """A credential report in pandas: typed columns, one row per readable user, and the rows that were not."""

    def __init__(self, account_id: str, frame: pd.DataFrame, problems: list[ReportProblem]) -> None:
        self.account_id = account_id
        self.frame = frame
        self.problems = problems

    @property
    def user_count(self) -> int:
        return int((self.frame["user"] != ROOT_USER).sum())


class Finding(BaseModel):
    """One rule broken by one user (and, for key checks, one key)."""

    check: Check
    account_id: str
    user_name: str
    user_arn: str
    key_slot: int | None = None
    access_key_id: str | None = None
    key_created_at: datetime | None = None
    key_last_used_at: datetime | None = None
    age_days: int | None = None
    idle_days: int | None = None
    owner: str | None = None
    first_seen_at: datetime | None = None
    detail: str = ""

    @property
    def fingerprint(self) -> str:
        """Stable across scans: the key is named by its creation time, which no rotation reuses."""
        key = self.key_created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.key_created_at else "-"
        return f"{self.account_id}/{self.user_name}/{self.check.value}/{key}"


class ScanException(BaseModel):
    """An accepted risk: a principal (user name or ARN) the scan must not flag until `expires`."""

    principal: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: date
    checks: list[Check] | None = Field(default=None, description="Only these checks; all when omitted.")
    account_id: str | None = None

    def matches(self, finding: Finding) -> bool:
        if self.principal not in (finding.user_name, finding.user_arn):
            return False
        if self.account_id and self.account_id != finding.account_id:
            return False
        return self.checks is None or finding.check in self.checks


class Suppressed(BaseModel):
    finding: Finding
    by: Literal["protected_principal", "exception"]
    reason: str
    expires: date | None = None


class ExpiredException(BaseModel):
    exception: ScanException
    still_matching: list[str] = Field(description="Fingerprints of findings the exception covered before it expired.")


class AccountScan(BaseModel):
    """How the scan of one account went."""

    account_id: str
    status: Literal["ok", "error", "skipped"]
    message: str = ""
    user_count: int = 0
    problems: list[ReportProblem] = Field(default_factory=list)
    report_generated_at: datetime | None = None


class AccountFindings(BaseModel):
    """What one account's scan produced before suppression and comparison."""

    scan: AccountScan
    findings: list[Finding] = Field(default_factory=list)


class ScanResult(BaseModel):
    """The scan's output; also its JSON (`model_dump(mode="json")`) and the next scan's `previous`."""

    scope: str
    scanned_at: datetime
    policy: ScanPolicy
    accounts: list[AccountScan]
    findings: list[Finding]
    suppressed: list[Suppressed] = Field(default_factory=list)
    expired_exceptions: list[ExpiredException] = Field(default_factory=list)
    new: list[str] = Field(default_factory=list, description="Fingerprints of findings the previous scan did not have.")
    resolved: list[Finding] = Field(default_factory=list, description="Findings of the previous scan that are gone.")
    previous_scanned_at: datetime | None = None
    notifications: list[Notification] = Field(default_factory=list)
    remediation_candidates: list[Finding] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {check.value: sum(1 for f in self.findings if f.check == check) for check in Check}


# -- parsing -------------------------------------------------------------------------------------
def _text(content: str | bytes) -> str:
    if isinstance(content, bytes):
        try:
            return content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CredentialReportError(f"the credential report is not UTF-8 text: {exc}") from None
    return content.removeprefix("\ufeff")


def parse_credential_report(content: str | bytes, *, account_id: str = "") -> ParsedReport:
    """Parse the CSV of `GetCredentialReport`. Bad rows become `problems`; a bad header raises.

    Raises `CredentialReportError` when the text is empty or lacks the report's columns.
    """
    text = _text(content)
    if not text.strip():
        raise CredentialReportError(f"the credential report of account {account_id or '?'} is empty")
    rows = list(csv.reader(io.StringIO(text)))
    header = [name.strip() for name in rows[0]]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise CredentialReportError(
            f"the credential report of account {account_id or '?'} lacks the columns {', '.join(missing)}: "
            f"is it an IAM credential report? (header: {','.join(header)[:200]})"
        )
    problems: list[ReportProblem] = []
    kept: list[list[str]] = []
    lines: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(ReportProblem(
                account_id=account_id, line=line, user=row[0] if row else "",
                message=f"has {len(row)} fields where the header has {len(header)} (truncated or malformed row): skipped"))
            continue
        kept.append([cell.strip() for cell in row])
        lines.append(line)
    raw = pd.DataFrame(kept, columns=header, dtype="string")
    raw["_line"] = lines
    frame, bad = _typed(raw)
    for line, user, message in bad:
        problems.append(ReportProblem(account_id=account_id, line=line, user=user, message=message))
    problems.sort(key=lambda p: p.line)
    return ParsedReport(account_id, frame, problems)


def _typed(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Type the columns; rows with a value that is neither valid nor a sentinel are dropped and reported."""
    frame = raw.copy()
    reasons = pd.Series("", index=raw.index, dtype="string")

    def flag(mask: pd.Series, message: pd.Series | str) -> None:
        nonlocal reasons
        addition = pd.Series(message, index=raw.index, dtype="string") if isinstance(message, str) else message
        reasons = reasons.mask(mask & (reasons == ""), addition)

    empty_user = raw["user"].fillna("") == ""
    flag(empty_user, "has no user name: skipped")
    for column in _BOOL_COLUMNS:
        values = raw[column].fillna("").str.lower()
        frame[column] = values.map({"true": True, "false": False}).astype("boolean")
        bad = ~values.isin(["true", "false"]) & ~raw[column].fillna("").isin(SENTINELS)
        flag(bad, column + " is " + raw[column].fillna("") + ", not true or false: skipped")
    for column in _DATE_COLUMNS:
        present = ~raw[column].fillna("").isin(SENTINELS)
        parsed = pd.to_datetime(raw[column].where(present), utc=True, errors="coerce", format="ISO8601")
        frame[column] = parsed
        flag(present & parsed.isna(), column + " is " + raw[column].fillna("") + ", not a date: skipped")
    for slot in KEY_SLOTS:
        undated = frame[f"access_key_{slot}_active"].fillna(False) & frame[f"access_key_{slot}_last_rotated"].isna()
        flag(undated.astype(bool), f"access key {slot} is active but has no creation date: skipped")
    broken = reasons != ""
    bad = [(int(line), str(user), str(reason)) for line, user, reason in
           zip(raw.loc[broken, "_line"], raw.loc[broken, "user"].fillna(""), reasons[broken], strict=True)]
    return frame.loc[~broken].drop(columns="_line").reset_index(drop=True), bad


# -- rules ---------------------------------------------------------------------------------------
def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def _stamp(value: Any) -> datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def find_findings(report: ParsedReport, policy: ScanPolicy, now: datetime) -> list[Finding]:
    """Apply every rule to a parsed report. Protected principals and exceptions are applied later."""
    frame = report.frame
    now_ts = pd.Timestamp(now).tz_convert(UTC) if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz=UTC)
    slots = []
    for slot in KEY_SLOTS:
        part = frame[["user", "arn", f"access_key_{slot}_active", f"access_key_{slot}_last_rotated",
                      f"access_key_{slot}_last_used_date"]].copy()
        part.columns = ["user", "arn", "active", "created_at", "last_used_at"]
        part["slot"] = slot
        slots.append(part)
    keys = pd.concat(slots, ignore_index=True)
    keys = keys[keys["active"].fillna(False).astype(bool)].copy()
    keys["age_days"] = _days(now_ts - keys["created_at"])
    keys["idle_days"] = _days(now_ts - keys["last_used_at"])
    is_root = keys["user"] == ROOT_USER

    findings: list[Finding] = []

    def add(rows: pd.DataFrame, check: Check, detail: str) -> None:
        for row in rows.itertuples(index=False):
            age = None if pd.isna(row.age_days) else int(row.age_days)
            idle = None if pd.isna(row.idle_days) else int(row.idle_days)
            findings.append(Finding(
                check=check, account_id=report.account_id, user_name=str(row.user), user_arn=str(row.arn),
                key_slot=int(row.slot), key_created_at=_stamp(row.created_at),
                key_last_used_at=_stamp(row.last_used_at), age_days=age, idle_days=idle,
                detail=detail.format(slot=row.slot, age=age, idle=idle)))

    users = keys[~is_root]
    never = users["last_used_at"].isna()
    add(users[users["age_days"] > policy.max_age_days], Check.LONG_LIVED,
        f"access key {{slot}} is {{age}} days old (limit {policy.max_age_days})")
    add(users[~never & (users["idle_days"] > policy.unused_days)], Check.UNUSED,
        f"access key {{slot}} was last used {{idle}} days ago (limit {policy.unused_days})")
    add(users[never & (users["age_days"] > policy.unused_days)], Check.NEVER_USED,
        f"access key {{slot}} was never used in the {{age}} days since it was created (limit {policy.unused_days})")
    add(keys[is_root], Check.ROOT_ACCESS_KEY, "the root user has an active access key (slot {slot})")

    per_user = frame.assign(
        active_keys=sum(frame[f"access_key_{slot}_active"].fillna(False).astype(int) for slot in KEY_SLOTS))
    per_user = per_user[per_user["user"] != ROOT_USER]
    for row in per_user[per_user["active_keys"] >= 2].itertuples(index=False):
        findings.append(Finding(check=Check.TWO_ACTIVE_KEYS, account_id=report.account_id, user_name=str(row.user),
                                user_arn=str(row.arn), detail="the user has two active access keys"))
    no_mfa = (per_user["password_enabled"].fillna(False).astype(bool)
              & ~per_user["mfa_active"].fillna(False).astype(bool) & (per_user["active_keys"] >= 1))
    for row in per_user[no_mfa].itertuples(index=False):
        findings.append(Finding(check=Check.CONSOLE_WITHOUT_MFA, account_id=report.account_id,
                                user_name=str(row.user), user_arn=str(row.arn),
                                detail="console password without MFA, and an active access key"))
    return findings


# -- exceptions and protected principals ----------------------------------------------------------
def load_exceptions(path: Path) -> list[ScanException]:
    """Read an exceptions file (YAML or JSON): a list, or `{"exceptions": [...]}`, of principal/reason/expires."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the exceptions file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"the exceptions file {path} is neither YAML nor JSON: {exc}") from None
    if data is None:
        return []
    if isinstance(data, dict):
        data = data.get("exceptions", None)
    if not isinstance(data, list):
        raise InputError(f"the exceptions file {path} must hold a list of exceptions (or an `exceptions:` list)")
    exceptions = []
    for index, entry in enumerate(data):
        try:
            exceptions.append(ScanException.model_validate(entry))
        except ValidationError as exc:
            what = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors())
            raise InputError(f"exception #{index + 1} in {path} is invalid: {what}") from None
    return exceptions


def _is_protected(finding: Finding, protected: Sequence[str]) -> bool:
    """The guardrails' own test (keyresponse.guardrails.is_protected): names match whatever their case."""
    from keyresponse.guardrails import Principal, is_protected

    return finding.check != Check.ROOT_ACCESS_KEY and is_protected(
        Principal("user", finding.user_name, finding.account_id), protected)


def apply_suppressions(
    findings: Iterable[Finding], *, protected: Sequence[str], exceptions: Sequence[ScanException], today: date
) -> tuple[list[Finding], list[Suppressed], list[ExpiredException]]:
    """Split findings into (open, suppressed) and list the exceptions that have expired."""
    live = [e for e in exceptions if e.expires >= today]
    expired = [e for e in exceptions if e.expires < today]
    kept: list[Finding] = []
    suppressed: list[Suppressed] = []
    matched_by_expired: dict[int, list[str]] = {i: [] for i in range(len(expired))}
    for finding in findings:
        if _is_protected(finding, protected):
            suppressed.append(Suppressed(finding=finding, by="protected_principal",
                                         reason="protected (break-glass) principal: reported, never acted on"))
            continue
        exception = next((e for e in live if e.matches(finding)), None)
        if exception is not None:
            suppressed.append(Suppressed(finding=finding, by="exception", reason=exception.reason,
                                         expires=exception.expires))
            continue
        for i, old in enumerate(expired):
            if old.matches(finding):
                matched_by_expired[i].append(finding.fingerprint)
        kept.append(finding)
    return kept, suppressed, [ExpiredException(exception=e, still_matching=matched_by_expired[i])
                              for i, e in enumerate(expired)]


# -- assembling a scan ---------------------------------------------------------------------------
def deadline_of(finding: Finding, policy: ScanPolicy, now: datetime) -> datetime:
    return (finding.first_seen_at or now) + timedelta(days=policy.grace_days)


def plan_notifications(
    findings: Sequence[Finding], *, new: set[str], previous_at: datetime | None, policy: ScanPolicy, now: datetime
) -> list[Notification]:
    """One notification per user with a new finding, and one when a finding's grace period ran out."""
    by_user: dict[tuple[str, str, NotificationReason], list[Finding]] = {}
    for finding in findings:
        reason: NotificationReason
        if finding.fingerprint in new:
            reason = "new_finding"
        elif (finding.check in KEY_CHECKS and deadline_of(finding, policy, now) <= now
              and (previous_at is None or deadline_of(finding, policy, now) > previous_at)):
            reason = "grace_period_over"
        else:
            continue
        by_user.setdefault((finding.account_id, finding.user_name, reason), []).append(finding)
    notifications = []
    for (account_id, user_name, reason), group in sorted(by_user.items()):
        owner = next((f.owner for f in group if f.owner), None)
        deadline = min(deadline_of(f, policy, now) for f in group)
        keys = sorted({f.access_key_id for f in group if f.access_key_id})
        lines = [f"- {f.check.value}: {f.detail}" + (f" ({f.access_key_id})" if f.access_key_id else "")
                 for f in group]
        if reason == "new_finding":
            subject = f"[keyresponse] IAM user {user_name} in {account_id}: {len(group)} credential finding(s)"
            if any(f.check in KEY_CHECKS for f in group):
                action = (f"Rotate or remove the key(s), or file an exception, before {deadline:%Y-%m-%d %H:%M} UTC: "
                          "after that the keys may be deactivated (never deleted) once a responder approves.")
            else:
                action = "Please fix this (enable MFA, keep one active key) or file an exception."
        else:
            subject = f"[keyresponse] grace period over for IAM user {user_name} in {account_id}"
            action = "The grace period is over: the key(s) may now be deactivated once a responder approves."
        notifications.append(Notification(
            recipient=owner or UNOWNED_RECIPIENT, has_owner=owner is not None, reason=reason,
            account_id=account_id, user_name=user_name, findings=[f.fingerprint for f in group],
            access_key_ids=keys, deadline_at=deadline, created_at=now, subject=subject,
            body="\n".join([*lines, "", action])))
    return notifications


def assemble_scan(
    *,
    scope: str,
    now: datetime,
    policy: ScanPolicy,
    accounts: Sequence[AccountFindings],
    exceptions: Sequence[ScanException] = (),
    previous: ScanResult | None = None,
) -> ScanResult:
    """Suppress, compare with the previous scan, plan notifications and remediation: the whole result."""
    everything = [f for account in accounts for f in account.findings]
    kept, suppressed, expired = apply_suppressions(
        everything, protected=policy.protected_principals, exceptions=exceptions, today=now.date())
    before = {f.fingerprint: f for f in previous.findings} if previous else {}
    for finding in kept:
        earlier = before.get(finding.fingerprint)
        finding.first_seen_at = (earlier.first_seen_at or previous.scanned_at) if earlier and previous else now
    new = [f.fingerprint for f in kept if f.fingerprint not in before]
    # A finding of an account that could not be scanned this time is unknown, not resolved.
    scanned_ok = {a.scan.account_id for a in accounts if a.scan.status == "ok"}
    current = {f.fingerprint for f in kept} | {s.finding.fingerprint for s in suppressed}
    resolved = [f for fp, f in before.items() if fp not in current and f.account_id in scanned_ok]
    notifications = plan_notifications(kept, new=set(new), previous_at=previous.scanned_at if previous else None,
                                       policy=policy, now=now)
    candidates = [f for f in kept if f.check in KEY_CHECKS and f.access_key_id
                  and deadline_of(f, policy, now) <= now]
    # one candidate per key, even when a key breaks two rules
    unique: dict[str, Finding] = {}
    for finding in candidates:
        unique.setdefault(f"{finding.account_id}/{finding.access_key_id}", finding)
    return ScanResult(
        scope=scope, scanned_at=now, policy=policy, accounts=[a.scan for a in accounts], findings=kept,
        suppressed=suppressed, expired_exceptions=expired, new=new, resolved=resolved,
        previous_scanned_at=previous.scanned_at if previous else None, notifications=notifications,
        remediation_candidates=list(unique.values()))


# -- storage of scans ----------------------------------------------------------------------------
def _scope_file(scans_dir: Path, scope: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in scope)
    return scans_dir / f"{safe}-latest.json"


def load_previous_scan(scans_dir: Path, scope: str) -> ScanResult | None:
    """The last scan of the same scope, or None. An unreadable file is a clear error, not a silent reset."""
    path = _scope_file(scans_dir, scope)
    if not path.exists():
        return None
    try:
        return ScanResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as exc:
        raise InputError(f"the previous scan {path} is unreadable ({exc.__class__.__name__}); "
                         "move it away to start afresh") from None


def save_scan(result: ScanResult, scans_dir: Path) -> Path:
    """Write the scan as `<scope>-<time>.json` and as `<scope>-latest.json`; return the dated file."""
    scans_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(result.model_dump(mode="json"), indent=2)
    latest = _scope_file(scans_dir, result.scope)
    dated = latest.with_name(latest.name.replace("-latest", f"-{result.scanned_at:%Y%m%dT%H%M%SZ}"))
    dated.write_text(payload, encoding="utf-8")
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(payload, encoding="utf-8")
    tmp.replace(latest)
    return dated


# -- rendering -----------------------------------------------------------------------------------
def table_rows(result: ScanResult) -> list[dict[str, JsonValue]]:
    """One row per open finding, for a Prefect table artifact or a terminal table."""
    new = set(result.new)
    return [{
        "account_id": f.account_id, "user_name": f.user_name, "check": f.check.value,
        "access_key_id": f.access_key_id or (f"slot {f.key_slot}" if f.key_slot else ""),
        "age_days": f.age_days if f.age_days is not None else "",
        "idle_days": f.idle_days if f.idle_days is not None else ("never used" if f.check == Check.NEVER_USED else ""),
        "owner": f.owner or "", "is_new": f.fingerprint in new,
        "deadline_at": deadline_of(f, result.policy, result.scanned_at).strftime("%Y-%m-%d")
        if f.check in KEY_CHECKS else "",
    } for f in sorted(result.findings, key=lambda f: (f.account_id, f.user_name, f.check.value))]


def render_markdown(result: ScanResult) -> str:
    """The responder's summary: counts, changes since the last scan, exceptions, unreadable rows. User
    names, report rows and exception texts come from the accounts scanned: each goes through
    keyresponse.markdown."""
    p = result.policy
    ok = [a for a in result.accounts if a.status == "ok"]
    out = [f"# Preventive key scan — {md.text(result.scope)}", "",
           f"Scanned {len(ok)}/{len(result.accounts)} account(s), {sum(a.user_count for a in ok)} user(s), "
           f"at {result.scanned_at:%Y-%m-%d %H:%M} UTC. Long-lived > {p.max_age_days} d, "
           f"unused > {p.unused_days} d, grace {p.grace_days} d.", "",
           md.table(["check", "open findings"], [[md.code(check), str(count)] for check, count in result.counts().items()])]
    since = f"{result.previous_scanned_at:%Y-%m-%d %H:%M} UTC" if result.previous_scanned_at else "(no previous scan)"
    out += ["", f"**Since the previous scan** {since}: {len(result.new)} new, {len(result.resolved)} resolved."]
    if result.resolved:
        out += [f"- resolved: {md.code(f.user_name)} {md.text(f.check.value)} ({md.code(f.account_id)})" for f in result.resolved]
    failed = [a for a in result.accounts if a.status != "ok"]
    if failed:
        out += ["", "## Accounts not scanned", ""] + [
            f"- {md.code(a.account_id)} ({md.text(a.status)}): {md.text(a.message)}" for a in failed]
    problems = [pr for a in result.accounts for pr in a.problems]
    if problems:
        out += ["", f"## Unreadable report rows ({len(problems)})", ""]
        out += [f"- {md.code(pr.account_id)} line {pr.line} {md.code(pr.user)}: {md.text(pr.message)}" for pr in problems[:50]]
    if result.suppressed:
        out += ["", f"## Suppressed ({len(result.suppressed)})", ""]
        out += [f"- {md.code(s.finding.user_name)} {md.text(s.finding.check.value)}: {md.text(s.by)} — {md.text(s.reason)}"
                + (f" (until {md.text(s.expires)})" if s.expires else "") for s in result.suppressed]
    if result.expired_exceptions:
        out += ["", f"## Expired exceptions ({len(result.expired_exceptions)})", ""]
        out += [f"- {md.code(e.exception.principal)} expired {md.text(e.exception.expires)}: {md.text(e.exception.reason)}"
                f" — {len(e.still_matching)} finding(s) open again" for e in result.expired_exceptions]
    sent = [n for n in result.notifications if n.delivered is not None]
    missed = sum(1 for n in sent if not n.delivered)
    delivery = f" ({len(sent) - missed} delivered, {missed} taken by no channel)" if sent else ""
    out += ["", f"Notifications: {len(result.notifications)}{delivery}. "
            f"Keys due for deactivation after approval: {len(result.remediation_candidates)}."]
    return "\n".join(out) + "\n"
