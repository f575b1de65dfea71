"""`keyresponse sandbox up` and `keyresponse demo`."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from keyresponse.cli._common import command, print_json

app = typer.Typer(help="The embedded AWS sandbox (a moto server on 127.0.0.1).", no_args_is_help=True)


@app.command("up")
@command
def up(
    seed: Annotated[int, typer.Option(help="Seed for the account's generated ids.")] = 7,
    no_seed: Annotated[bool, typer.Option("--no-seed", help="Start empty.")] = False,
) -> None:
    """Start a sandbox, seed the account, print the env exports, and stay until Ctrl-C."""
    from keyresponse.sandbox.seed import seed_account
    from keyresponse.sandbox.server import MotoSandbox

    with MotoSandbox() as box:
        if not no_seed:
            account = seed_account(box, seed=seed)
            typer.echo(f"seeded account {account.account_id}: {len(account.users)} users, "
                       f"{len(account.roles)} roles, {len(account.buckets)} buckets", err=True)
        typer.echo(f"sandbox endpoint {box.endpoint} (Ctrl-C to stop)", err=True)
        for key, value in box.env().items():
            typer.echo(f"export {key}={value}")
        stop = {"now": False}

        def _stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop["now"] and box.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    typer.echo("sandbox stopped", err=True)


@command
def demo(
    scenario: Annotated[str, typer.Option(help="Scenario to play (keyresponse simulate --list).")] = "pivot-chain",
    events: Annotated[int, typer.Option(help="CloudTrail events to generate.")] = 20_000,
    out: Annotated[Path | None, typer.Option(help="Where to keep logs, evidence and reports (default: a temp folder).")] = None,
    interactive: Annotated[bool, typer.Option(help="Wait for a person to approve each phase in the Prefect UI.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """The whole story: sandbox, attack, alert, automatic containment, approvals, eradication, recovery, report."""
    from keyresponse.demo import run_demo
    from keyresponse.sandbox.scenarios import get_scenario

    get_scenario(scenario)
    say = (lambda _line: None) if json_ else (lambda line: typer.echo(f"  {line}"))
    if not json_:
        typer.echo(f"keyresponse demo — scenario {scenario}")
    summary = run_demo(scenario=scenario, events=events, out=out, interactive=interactive, say=say)
    if json_:
        print_json(summary)
        return
    typer.echo(f"  verdict {summary['verdict']}; incident {summary['incident_id']} ended {summary['status']} "
               f"(flow run {summary['flow_run_state']})")
    typer.echo(f"  time from alert to containment: {summary['seconds_alert_to_containment']} s")
    typer.echo(f"  credentials in scope ({len(summary['credentials'])}), "
               f"{len(summary['credentials_contained'])} contained:")
    for cred in summary["credentials"]:
        typer.echo(f"    {cred['access_key_id']} ({cred['kind']}): {cred['how']}")
    typer.echo(f"  report: {summary['report']['html']}")
    typer.echo(f"  done in {summary['seconds']} s; sandbox, Prefect server and runner stopped")
