"""`keyresponse investigate`: the analysis phase on the logs, as JSON or a readable summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keyresponse.cli._common import command, fail, print_json


def _read_alert(path: Path | None) -> dict[str, Any] | None:
    import json

    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"--alert {path}: {exc}")
    if not isinstance(data, dict):
        fail(f"--alert {path}: not a JSON object")
    return data


def _check_logs(logs: str) -> None:
    if logs.startswith("s3://"):
        return
    path = Path(logs)
    if not path.exists():
        fail(f"--logs {logs}: no such folder")
    if not any(path.rglob("*.json.gz")) and not any(path.rglob("*.json")):
        fail(f"--logs {logs}: no CloudTrail files (*.json.gz or *.json) under it")


@command
def investigate(
    access_key_id: Annotated[str, typer.Option(help="The exposed key (AKIA… or ASIA…).")],
    logs: Annotated[str | None, typer.Option(help="CloudTrail logs: a folder or s3://bucket/prefix.")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (local files) or athena (the organization trail table).")] = "duckdb",
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 (default: the logs' first day, "
                                                   "or 90 days ago).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 (default: now).")] = None,
    known_ip: Annotated[list[str] | None, typer.Option(help="An IP that is the owner's (repeatable).")] = None,
    attacker_ip: Annotated[list[str] | None, typer.Option(help="An IP known to be the attacker's.")] = None,
    alert: Annotated[Path | None, typer.Option(help="The alert payload (JSON), for the exposure answer.")] = None,
    alert_source: Annotated[str | None, typer.Option(help="Its source: guardduty, health, github, securityhub, "
                                                          "cloudtrail or generic.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the investigation object as JSON.")] = False,
) -> None:
    """Scope every credential derived from the key, and what they did; validate the key when AWS is reachable."""
    from rich.console import Console

    from keyresponse.investigation import Window, default_window, open_engine
    from keyresponse.investigation import investigate as run_investigation
    from keyresponse.keys import validate_access_key_id
    from keyresponse.settings import get_settings
    from keyresponse.validation import validate_key

    key = validate_access_key_id(access_key_id)
    if engine not in ("duckdb", "athena"):
        fail(f"--engine must be duckdb or athena, not {engine!r}")
    settings = get_settings()
    if engine == "duckdb":
        logs = logs or settings.cloudtrail_logs
        if not logs:
            fail("--logs is required with the duckdb engine (a folder or s3://bucket/prefix)")
        _check_logs(logs)
    if start is None and end is None and engine == "duckdb":
        window = default_window(logs)
    else:
        window = Window.parse(start, end)
    console = Console(stderr=True)
    with console.status("validating the key…") as status:
        facts = validate_key(key, accounts_in_scope=settings.accounts_in_scope)
        with open_engine(logs, engine) as query_engine:
            result = run_investigation(query_engine, key, window, facts=facts, known_ips=known_ip or (),
                                       attacker_ips=attacker_ip or (), progress=status.update,
                                       intel=settings.intel)
            payload = result.to_json()
            payload.update(result.answers(alert_source, _read_alert(alert), settings.intel))
    if json_:
        print_json(payload)
        return
    _print_summary(payload, facts.not_ours)


def _print_summary(inv: dict[str, Any], not_ours: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    if not_ours:
        out.print(f"[bold]{inv['access_key_id']}[/] belongs to account {inv['account_id']}, not ours: stop here "
                  "and tell that account's owner.", markup=True)
    out.print(f"[bold]{inv['access_key_id']}[/]  verdict [bold]{inv['verdict']}[/]  severity {inv['severity']}  "
              f"({inv['event_count']} attacker events, {inv['first_seen']} → {inv['last_seen']})", highlight=False)
    table = Table("credential", "kind", "created by", "parent", "principal", title="Credentials")
    for c in inv["credentials"]:
        table.add_row(c["access_key_id"], c["kind"], c["created_by_event"] or "", c["parent"] or "",
                      c["principal_arn"] or "")
    out.print(table)
    if inv.get("uncertain_credentials"):
        table = Table("credential", "kind", "created by", "parent", "why uncertain",
                      title="Uncertain credentials (not in the default plan: the approver decides)")
        for c in inv["uncertain_credentials"]:
            table.add_row(c["access_key_id"], c["kind"], c["created_by_event"] or "", c["parent"] or "",
                          "; ".join(c["reasons"]))
        out.print(table)
    ips = Table("source IP", "whose", "events", "first seen", "last seen", "evidence", title="Source IPs")
    for ip in inv["source_ips"]:
        ips.add_row(ip["ip"], f"{ip['classification']} ({ip['confidence']})", str(ip["event_count"]),
                    ip["first_seen"], ip["last_seen"], "; ".join(ip["evidence"]))
    out.print(ips)
    if inv["persistence"]:
        table = Table("time", "event", "resource", "key", title="Persistence")
        for p in inv["persistence"]:
            table.add_row(p["event_time"], p["event_name"], str(p["resource"] or ""), p["access_key_id"])
        out.print(table)
    if inv["resources_created"]:
        table = Table("type", "id", "region", title="Resources created")
        for r in inv["resources_created"]:
            table.add_row(r["type"], r["id"], r["region"])
        out.print(table)
    for gap in inv["logging_gaps"]:
        out.print(f"[yellow]gap:[/] {gap}", highlight=False)
