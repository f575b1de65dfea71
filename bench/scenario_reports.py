"""Every sandbox scenario's investigation and report, written to a folder: the before/after check of
a change that must not change what the analysis finds.

    .venv/bin/python bench/scenario_reports.py --logs /tmp/sr/logs --out /tmp/sr/before   # once, before
    ... change the code ...
    .venv/bin/python bench/scenario_reports.py --logs /tmp/sr/logs --out /tmp/sr/after
    diff -r /tmp/sr/before /tmp/sr/after

The logs are simulated once (when `--logs` holds none yet: 1,500 events a scenario, anchored at a
fixed end) and reused by every run, because the sandbox's key ids are random: two simulations
differ, two analyses of the same logs must not. For each scenario, `<out>/<scenario>/` gets

* `investigation.json`: what the flow's analysis stores (`tasks.analysis.assess_impact`): the full
  investigation, the five intel answers and the attacker events;
* `report.md`: that investigation rendered as a closed incident's Markdown report.

The key facts are fixed (what AWS would say of the key) and the intel files are the test samples,
so nothing but the logs and the code decides the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 20, tzinfo=UTC)
EVENTS = 1500
INTEL = ROOT / "tests" / "fixtures" / "intel"


def simulate(logs: Path) -> None:
    """Play every scenario into `logs/<scenario>`, in one sandbox, unless already there."""
    from keyresponse.sandbox.scenarios import SCENARIOS
    from keyresponse.sandbox.seed import seed_account
    from keyresponse.sandbox.server import MotoSandbox
    from keyresponse.sandbox.simulate import run_simulation

    missing = [name for name in SCENARIOS if not (logs / name / "ground_truth.json").exists()]
    if not missing:
        return
    with MotoSandbox() as box:
        seed_account(box)
        for name in missing:
            print(f"simulating {name}", file=sys.stderr)
            run_simulation(scenario=name, out=logs / name, events=EVENTS, sandbox=box, anchor=END, processes=1)


def analyse(run: Path) -> dict[str, Any]:
    """The stored analysis of one scenario's logs, as `assess_impact` makes it."""
    from keyresponse.engines.duckdb_engine import DuckDBEngine
    from keyresponse.investigation import Window, investigate
    from keyresponse.validation import KeyFacts

    truth = json.loads((run / "ground_truth.json").read_text())
    key = truth["compromised_access_key_id"]
    owner_arn = truth["owner"]["arn"]
    account = owner_arn.split(":")[4]
    facts = KeyFacts(access_key_id=key, account_id=account, responder_account_id=account,
                     responder_arn=f"arn:aws:sts::{account}:assumed-role/KeyResponseResponder/prefect",
                     owner=owner_arn.rsplit("/", 1)[1], owner_arn=owner_arn, status="Active",
                     created_at="2025-02-21T10:14:03Z", age_days=636, is_ours=True)
    intel: dict[str, Any] = {
        "aws_ranges": INTEL / "aws-ip-ranges.sample.json", "gcp_ranges": INTEL / "gcp-cloud.sample.json",
        "azure_ranges": INTEL / "azure-servicetags.sample.json", "tor_exits": INTEL / "tor-exits.sample.txt",
        "threat_lists": {"sample": INTEL / "threat-list.sample.txt"}}
    alert = run / "alerts" / "guardduty.json"
    source, payload = ("guardduty", json.loads(alert.read_text())) if alert.exists() else (None, None)
    window = Window.parse(truth["investigate_window"]["start"], truth["investigate_window"]["end"])
    with DuckDBEngine(run, cache_dir=run / ".cache") as engine:
        result = investigate(engine, key, window, facts=facts, intel=intel)
        full = result.to_full_json()
        full.update(result.answers(source, payload, intel))
        full["events"] = [dict(e) for e in result.events]
    return full


def report(name: str, full: dict[str, Any]) -> str:
    """The Markdown report of a closed incident holding this analysis."""
    from keyresponse.incident import Incident
    from keyresponse.report import render_markdown

    investigation = {k: v for k, v in full.items() if k != "events"}
    incident = Incident.model_validate({"incident_id": f"ir-2026-11-19-{name}", "status": "closed",
                                        "investigation": investigation, "events": full["events"],
                                        "timeline": {"first_malicious_at": full["first_seen"]}})
    return render_markdown(incident)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--logs", type=Path, required=True, help="the scenarios' logs (simulated when absent)")
    parser.add_argument("--out", type=Path, required=True, help="where to write <scenario>/{investigation.json,report.md}")
    args = parser.parse_args()
    simulate(args.logs)
    from keyresponse.sandbox.scenarios import SCENARIOS

    for name in SCENARIOS:
        full = analyse(args.logs / name)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "investigation.json").write_text(json.dumps(full, indent=2, sort_keys=True, default=str) + "\n")
        (folder / "report.md").write_text(report(name, full))
        print(f"{name}: {full['verdict']} {full['severity']}, {full['event_count']} events, "
              f"cost {full['cost_estimate_usd']:.2f} / {full['damage']['cost_estimate']['total_usd']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
