"""`keyresponse scan-keys`: the preventive key scan, run directly (no Prefect server needed).

It runs the same task bodies as the `preventive_key_scan` flow, compares with the previous scan
of the same scope (kept under `<home>/scans/`) and saves this one. It never notifies and never
remediates: that is the flow's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from keyresponse.cli._common import command, print_json

if TYPE_CHECKING:  # keyscan imports pandas and boto3: only when the command runs
    from keyresponse.keyscan import ScanPolicy, ScanResult


def run_scan(
    policy: ScanPolicy,
    *,
    exceptions_file: Path | None = None,
    organization: bool = False,
    role_name: str | None = None,
    assume_role_arn: str | None = None,
    state_dir: Path | None = None,
    save: bool = True,
) -> ScanResult:
    """The scan without Prefect orchestration: the tasks' plain bodies, in order."""
    from flows.preventive_key_scan import scope_of
    from keyresponse.keyscan import assemble_scan, load_exceptions, load_previous_scan, save_scan
    from keyresponse.settings import get_settings
    from tasks.credential_report import list_scan_targets, scan_account  # imports prefect: only when needed

    settings = get_settings()
    exceptions = load_exceptions(exceptions_file) if exceptions_file else []
    scans_dir = (state_dir or settings.home) / "scans"
    now = datetime.now(UTC).replace(microsecond=0)
    targets = list_scan_targets.fn(organization=organization, role_name=role_name or settings.response_role_name,
                                   assume_role_arn=assume_role_arn)
    accounts = [scan_account.fn(target, policy, now, assume_role_arn) for target in targets]
    scope = scope_of(targets, organization)
    result = assemble_scan(scope=scope, now=now, policy=policy, accounts=accounts, exceptions=exceptions,
                           previous=load_previous_scan(scans_dir, scope))
    if save:
        save_scan(result, scans_dir)
    return result


def _print_table(rows: Sequence[Mapping[str, object]]) -> None:
    if not rows:
        typer.echo("No open finding.")
        return
    columns = ["account_id", "user_name", "check", "access_key_id", "age_days", "idle_days", "owner", "is_new"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


@command
def scan_keys(
    max_age_days: int = typer.Option(90, "--max-age-days", min=1, help="An active key older than this is long-lived."),
    unused_days: int = typer.Option(45, "--unused-days", min=1, help="An active key idle (or never used) this long is unused."),
    exceptions: Path | None = typer.Option(None, "--exceptions", help="YAML or JSON file: principal, reason, expires."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as one JSON object."),
    organization: bool = typer.Option(False, "--organization", help="Scan every account of the AWS Organization."),
    role_name: str | None = typer.Option(None, "--role-name", help="Role assumed in member accounts."),
    no_save: bool = typer.Option(False, "--no-save", help="Do not keep this scan as the next scan's baseline."),
) -> None:
    """Find active long-lived, unused and never-used access keys, double keys, console users without MFA
    and root access keys, from the IAM credential report."""
    from keyresponse.keyscan import ScanPolicy, render_markdown, table_rows
    from keyresponse.settings import get_settings

    policy = ScanPolicy(max_age_days=max_age_days, unused_days=unused_days,
                        protected_principals=list(get_settings().protected_principals))
    result = run_scan(policy, exceptions_file=exceptions, organization=organization, role_name=role_name,
                      save=not no_save)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    typer.echo(render_markdown(result))
    _print_table(table_rows(result))
