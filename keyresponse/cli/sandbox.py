"""`keyresponse sandbox up` and `keyresponse demo`."""

from __future__ import annotations

import signal
import tempfile
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
    scenario: Annotated[str, typer.Option(help="Scenario to play.")] = "pivot-chain",
    events: Annotated[int, typer.Option(help="CloudTrail events to generate.")] = 20_000,
    out: Annotated[Path | None, typer.Option(help="Where to write logs and results (default: a temp folder).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """The whole story on the embedded sandbox: start it, seed it, play a scenario, summarise."""
    from keyresponse.sandbox.server import MotoSandbox
    from keyresponse.sandbox.simulate import run_simulation

    folder = out or Path(tempfile.mkdtemp(prefix="keyresponse-demo-"))
    started = time.perf_counter()
    with MotoSandbox() as box:
        result = run_simulation(scenario=scenario, out=folder, events=events, sandbox=box)
    truth = result.ground_truth
    summary = {"scenario": scenario, "out": str(folder), "events": result.records, "files": result.files,
               "compromised_access_key_id": truth["compromised_access_key_id"],
               "attacker_credentials": [c["access_key_id"] for c in truth["attacker_credentials"]],
               "attacker_ips": truth["attacker_ips"], "seconds": round(time.perf_counter() - started, 1)}
    if json_:
        print_json(summary)
        return
    typer.echo(f"keyresponse demo — scenario {scenario}")
    typer.echo(f"  sandbox started, account seeded, attack played: {result.records:,} CloudTrail events "
               f"in {result.files:,} files under {folder}/AWSLogs")
    typer.echo(f"  compromised key: {truth['compromised_access_key_id']}")
    typer.echo(f"  attacker credentials ({len(truth['attacker_credentials'])}):")
    for cred in truth["attacker_credentials"]:
        via = f" via {cred['created_by_event']} from {cred['parent']}" if cred["parent"] else ""
        typer.echo(f"    {cred['access_key_id']} ({cred['kind']}){via}")
    typer.echo(f"  attacker IPs: {', '.join(truth['attacker_ips'])}")
    typer.echo(f"  done in {summary['seconds']} s; sandbox stopped, nothing left running")
