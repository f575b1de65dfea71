"""Events written per second by the simulator's log writer (goal: >= 200,000/s on 2 cores).

    python bench/simulate.py [--events N] [--processes P]

Runs the pivot-chain scenario once in a fresh sandbox (seeding is not timed), then times writing
the logs with 1 process (the baseline) and with P processes, and prints both and their ratio.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keyresponse.sandbox.background import plan_files, write_logs
from keyresponse.sandbox.cloudtrail import LogLayout
from keyresponse.sandbox.scenarios import get_scenario
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.server import MotoSandbox
from keyresponse.sandbox.simulate import ATTACK_BEFORE_END, REGION_WEIGHTS, background_activities
from keyresponse.sandbox.simulator import Simulation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    end = datetime(2026, 11, 28, tzinfo=UTC)
    with MotoSandbox() as box:
        account = seed_account(box)
        spec = get_scenario("pivot-chain")
        sim = Simulation(account=account, scenario=spec.name, victim=spec.victim, seed=7,
                         attack_start=end - ATTACK_BEFORE_END, expected_verdict=spec.expected_verdict)
        spec.run(sim)
        activities, _ = background_activities(account, sim, random.Random(1))
    jobs = plan_files(start=end - timedelta(days=2), end=end, background_events=args.events,
                      region_weights=REGION_WEIGHTS, scenario_records=sim.records, seed=7)
    results = {}
    for procs in sorted({1, args.processes}):
        out = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
        try:
            started = time.perf_counter()
            files, records, size = write_logs(layout=LogLayout(out, account.account_id), activities=activities,
                                              jobs=jobs, seed=7, account_id=account.account_id, processes=procs)
            seconds = time.perf_counter() - started
        finally:
            shutil.rmtree(out, ignore_errors=True)
        results[procs] = records / seconds
        print(f"processes={procs}: {records:,} events in {files:,} files ({size / 1e6:.1f} MB gz) "
              f"in {seconds:.2f} s = {records / seconds:,.0f} events/s")
    if len(results) > 1:
        print(f"ratio {args.processes} processes / 1 process: {results[args.processes] / results[1]:.2f}x")


if __name__ == "__main__":
    main()
