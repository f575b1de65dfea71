"""`keyresponse simulate`: run an attack scenario in the sandbox and write its CloudTrail logs."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from keyresponse.cli._common import command, fail, print_json


@command
def simulate(
    scenario: Annotated[str | None, typer.Option(
        help="Scenario name (see --list), or no-attack: a control where only the owner uses the key.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for AWSLogs/, ground_truth.json and alerts/.")] = None,
    events: Annotated[int, typer.Option(help="Total CloudTrail events, background included.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    days: Annotated[float, typer.Option(help="Days of the window to investigate, ending at --end.")] = 2.0,
    history_days: Annotated[float, typer.Option(
        help="Days of logs before the window (the key's past; 0 = a new key).")] = 0.0,
    events_per_day: Annotated[float | None, typer.Option(
        help="Background events a day for the whole account, instead of --events.")] = None,
    habit: Annotated[str | None, typer.Option(
        help="The owner's habit: office-nat | residential | ci-cloud | traveller (default: the original "
             "simulator's owner).")] = None,
    style: Annotated[str | None, typer.Option(
        help="The attacker's style: burst-vps (default) | slow-low | same-cloud | owner-ua | tor | "
             "service-runtime.")] = None,
    end: Annotated[str | None, typer.Option(help="End of the log span, ISO-8601 (default: today 00:00 UTC).")] = None,
    upload: Annotated[bool, typer.Option(help="Also upload the logs to the sandbox's trail bucket.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run SCENARIO against the sandbox (the one AWS_ENDPOINT_URL names, or a fresh one) and write its logs."""
    from keyresponse.sandbox.scenarios import SCENARIOS

    if list_:
        for spec in SCENARIOS.values():
            typer.echo(f"{spec.name:20} {spec.expected_verdict:10} {spec.summary}")
        return
    if scenario is None or out is None:
        fail("--scenario and --out are required (or --list)")
    anchor = None
    if end:
        try:
            anchor = datetime.fromisoformat(end.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--end {end!r} is not an ISO-8601 time")
        if anchor.tzinfo is None:
            fail(f"--end {end!r} needs a time zone, e.g. {end}Z")

    from keyresponse.sandbox.server import MotoSandbox
    from keyresponse.sandbox.simulate import run_simulation

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    box = MotoSandbox.attach(endpoint) if endpoint else None
    result = run_simulation(scenario=scenario, out=out, events=events, seed=seed, anchor=anchor, days=days,
                            sandbox=box, upload=upload and box is not None, events_per_day=events_per_day,
                            history_days=history_days, habit=habit, style=style)
    summary = result.summary()
    if json_:
        print_json(summary)
        return
    typer.echo(f"{summary['scenario']}: {summary['records']:,} events in {summary['files']:,} files "
               f"({summary['bytes'] / 1e6:.1f} MB) in {summary['seconds']} s")
    typer.echo(f"compromised key {summary['compromised_access_key_id']}; "
               f"{summary['attacker_credentials']} attacker credentials")
    typer.echo(f"logs: {out / 'AWSLogs'}   truth: {out / 'ground_truth.json'}   alerts: {out / 'alerts'}")
