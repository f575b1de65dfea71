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
                                       intel=settings.intel, accounts_in_scope=settings.accounts_in_scope)
            payload = result.to_json()
            payload.update(result.answers(alert_source, _read_alert(alert), settings.intel))
    if json_:
        print_json(payload)
        return
    _print_summary(payload, facts.not_ours)


def _lines(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    """A table as plain lines, each column as wide as its widest cell: no cell is ever cut or wrapped
    (a terminal too narrow wraps the line, the identifiers stay whole and copyable)."""
    cells = [tuple(str(v) if v is not None else "" for v in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [title] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                      for row in cells]


def _creation(inv: dict[str, Any]) -> str:
    made = inv.get("key_creation")
    if not made:
        return (f"Key created: no creation event for {inv['access_key_id']} in the logs searched "
                f"({inv['window']['start']} → {inv['window']['end']})")
    key = f", with key {made['created_by_access_key_id']}" if made.get("created_by_access_key_id") else ""
    return (f"Key created: {made['event_name']} at {made['event_time']} for {made['user_name']} by "
            f"{made['created_by_arn']} ({made['created_by_type']}{key}) from {made['source_ip']}")


def _print_summary(inv: dict[str, Any], not_ours: bool) -> None:
    """The investigation as plain text. Key ids, ARNs and other identifiers are printed whole: a
    table that cut them to fit the terminal once made 14 credentials look alike."""
    from rich.console import Console

    out = Console()
    lines = []
    if not_ours:
        lines.append(f"{inv['access_key_id']} belongs to account {inv['account_id']}, not ours: stop here and tell "
                     "that account's owner.")
    lines.append(f"{inv['access_key_id']}  verdict {inv['verdict']}  severity {inv['severity']}  "
                 f"({inv['event_count']} attacker events, {inv['first_seen']} → {inv['last_seen']})")
    lines.append(_creation(inv))
    lines += _lines("Credentials", ("credential", "kind", "created by", "parent", "principal", "why"),
                    [(c["access_key_id"], c["kind"], c["created_by_event"], c["parent"], c["principal_arn"],
                      "; ".join(c.get("evidence") or [])) for c in inv["credentials"]])
    if inv.get("uncertain_credentials"):
        lines += _lines("Uncertain credentials (not in the default plan: the approver decides)",
                        ("credential", "kind", "created by", "parent", "why uncertain"),
                        [(c["access_key_id"], c["kind"], c["created_by_event"], c["parent"], "; ".join(c["reasons"]))
                         for c in inv["uncertain_credentials"]])
    if inv.get("attacker_infrastructure"):
        lines += _lines("Attacker infrastructure (accounts outside ours: reported, never contained here)",
                        ("principal", "account", "credentials"),
                        [(f["principal_arn"], f["account_id"], ", ".join(f["access_key_ids"]))
                         for f in inv["attacker_infrastructure"]])
    lines += _lines("Source IPs", ("source IP", "whose", "events", "first seen", "last seen", "evidence"),
                    [(ip["ip"], f"{ip.get('classification')} ({ip.get('confidence')})", ip["event_count"],
                      ip["first_seen"], ip["last_seen"], "; ".join(ip.get("evidence") or []))
                     for ip in inv["source_ips"]])
    if inv["persistence"]:
        lines += _lines("Persistence", ("time", "event", "resource", "detail", "key"),
                        [(p["event_time"], p["event_name"], p["resource"], p.get("detail"), p["access_key_id"])
                         for p in inv["persistence"]])
    if inv["resources_created"]:
        lines += _lines("Resources created", ("type", "id", "region"),
                        [(r["type"], r["id"], r["region"]) for r in inv["resources_created"]])
    lines += [f"gap: {gap}" for gap in inv["logging_gaps"]]
    for line in lines:  # attacker text stays text: no markup, no highlighting, no re-wrapping
        out.print(line, markup=False, highlight=False, soft_wrap=True, emoji=False)
