"""`keyresponse incidents` and `keyresponse release KEY`: the incidents the alert receiver holds open.

The receiver attaches every alert about a key to the key's open incident (`<spool>/open/`) until the
incident's run closes it, the next alert about the key finds its run ended (Completed, Failed, Crashed,
Cancelled, or gone from Prefect), `release` frees the key, or KEYRESPONSE_WEBHOOK_INCIDENT_OPEN_SECONDS
pass. Both commands work on the receiver's spool (KEYRESPONSE_WEBHOOK_SPOOL, default
`<home>/webhook-spool`), so run them where the receiver runs, with its settings. `incidents` also reads
each incident's flow run from Prefect (PREFECT_API_URL), one read by id each; `release` needs no Prefect.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import typer

from keyresponse.cli._common import command, print_json

#: How long `incidents` waits for one run's state (a person is waiting, not a webhook sender).
READ_TIMEOUT_SECONDS = 10.0


@command
def incidents(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the open incidents: their keys, the alert that opened each, its flow run and the run's state."""
    from keyresponse.receiver.config import WebhookSettings
    from keyresponse.receiver.launcher import PrefectRuns
    from keyresponse.receiver.spool import AlertSpool

    settings = WebhookSettings()
    spool = AlertSpool(settings.spool, incident_open_seconds=settings.incident_open_seconds)
    rows = asyncio.run(_describe(spool, PrefectRuns(), datetime.now(UTC)))
    if as_json:
        print_json({"spool": str(spool.folder), "incidents": rows})
        return
    if not rows:
        typer.echo(f"no open incidents (spool {spool.folder})")
        return
    for row in rows:
        state = row["run_state"] or ("no run yet" if row["flow_run_id"] is None else "state unknown")
        typer.echo(f"{row['incident_id']}  {', '.join(row['subjects'])}  {state}  flow run "
                   f"{row['flow_run_id'] or '-'}  opened {row['opened_at']}  alert {row['alert']} "
                   f"(generation {row['generation']})")
        if row["note"]:
            typer.echo(f"  {row['note']}")
    typer.echo(f"{len(rows)} open incident(s); spool {spool.folder}")


@command
def release(
    access_key_id: str = typer.Argument(..., help="The access key to free from its open incident."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Free a key from its open incident by hand: the next alert about it opens a new incident.

    The incident's flow run is left as it is (cancel it in Prefect if it must stop); a run still
    going and the new incident's run never act on the key at once (each holds the key's lock).
    """
    from keyresponse.keys import validate_access_key_id
    from keyresponse.receiver.config import WebhookSettings
    from keyresponse.receiver.spool import AlertSpool

    key = validate_access_key_id(access_key_id)
    settings = WebhookSettings()
    spool = AlertSpool(settings.spool, incident_open_seconds=settings.incident_open_seconds)
    held = spool.release(f"key:{key}", datetime.now(UTC))
    if as_json:
        print_json({"access_key_id": key, "released": held is not None,
                    "incident_id": held.incident_id if held else None})
        return
    if held is None:
        typer.echo(f"{key}: no open incident holds it (spool {spool.folder}); the next alert about it opens one")
        return
    typer.echo(f"released {key} from incident {held.incident_id}; the next alert about it opens a new incident")


async def _describe(spool: Any, runs: Any, now: datetime) -> list[dict[str, Any]]:
    """One row per open incident (its keys together), with its run's state read from Prefect."""
    from keyresponse.receiver.spool import OpenIncident

    by_incident: dict[str, list[OpenIncident]] = {}
    for entry in spool.open_incidents(now):
        by_incident.setdefault(entry.incident_id, []).append(entry)

    async def row(incident_id: str, entries: list[OpenIncident]) -> dict[str, Any]:
        first = entries[0]
        opener = spool.opener(first)
        out: dict[str, Any] = {
            "incident_id": incident_id, "subjects": [e.subject for e in entries],
            "opened_at": _stamp(first.opened_at), "expires_at": _stamp(first.opened_at + spool.incident_open),
            "alert": None, "generation": None, "flow_run_id": None, "ui_url": None,
            "run_state": None, "run_state_type": None, "terminal": None, "note": "",
        }
        if opener is None or opener.incident_id != incident_id:
            out["note"] = (f"the alert that opened it ({first.alert_file}) is gone from the spool or opened a "
                           "newer incident; `keyresponse release KEY` frees the key")
            return out
        out.update(alert=opener.alert.idempotency_key, generation=opener.generation,
                   flow_run_id=opener.flow_run_id, ui_url=opener.ui_url)
        if opener.flow_run_id is None:
            out["note"] = "no flow run yet: the receiver is launching it" + (
                f" (last launch failed: {opener.launch_error})" if opener.launch_error else "")
            return out
        try:
            state = await asyncio.wait_for(runs.run_state(opener.flow_run_id), timeout=READ_TIMEOUT_SECONDS)
        except Exception as exc:
            reason = f"no answer within {READ_TIMEOUT_SECONDS:g} s" if isinstance(exc, TimeoutError) else \
                f"{type(exc).__name__}: {exc}"
            out["note"] = f"could not read the run's state from Prefect ({reason})"[:400]
            return out
        out.update(run_state=state.name, run_state_type=state.type, terminal=state.terminal)
        if state.terminal:
            out["note"] = ("the run has ended: the next alert about the key opens a new incident "
                           "(`keyresponse release KEY` frees it now)")
        return out

    return list(await asyncio.gather(*(row(i, e) for i, e in by_incident.items())))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
