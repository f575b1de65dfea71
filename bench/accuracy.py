"""The robustness grid: attacker-credential recall, benign credentials in the default containment
plan, uncertain credentials, addresses judged wrongly or left uncertain, and the verdict, cell by
cell (issue 17's targets); then, for every cell where it was not sure, what the analysis said.

    .venv/bin/python bench/accuracy.py [--cells base,style-tor,...] [--subset] [--processes 2] [--keep] [--list]

One moto sandbox for the whole run; each scenario is played in it once and its records are reused
by every cell (`keyresponse.sandbox.grid`). Each cell is written with its background, window,
owner habit and attacker style, then investigated with DuckDB over exactly the window its ground
truth names, and the intel files are passed when `investigate` takes an `intel=` keyword.

The cells (`keyresponse.sandbox.grid.GRID`, 38 of them), and why it is not the full cross product:

* `base` - pivot-chain (the deepest credential chain) from a VPS, the owner behind the office NAT,
  3,000 background events a day, a one-day window after seven days of history;
* one-axis sweeps around it: background 100 / 1k / 10k / 100k events a day; window 6 h / 7 d /
  90 d; owner habit residential / ci-cloud / traveller; attacker style slow-low (in a 7-day window,
  which holds its five days) / same-cloud / owner-ua / tor / service-runtime; no history (a new
  key); and every other scenario;
* the hard combinations: quiet key + 6 h window, slow-low in 90 days, same-cloud attacker against
  a ci-cloud owner, the owner's user agent against a residential owner, a Lambda runtime beside a
  ci-cloud owner, the owner abroad the day the attacker uses the owner's agent, a new quiet key;
* no-attack controls (the owner's key investigated directly): each habit, quiet with a 6 h
  window, a new key, and a key a Lambda runtime also uses.

The cross product of 8 scenarios x 4 habits x 6 styles x 7 volumes x 4 windows is thousands of
incidents (hours); a sweep changes one thing, so a failing sweep cell names the axis that breaks
the analysis, and the hard cells add what sweeps cannot reach. It takes a few minutes on 2 cores.

It prints one row per cell and a summary line, and exits 0: it measures, it never asserts (the
slow test `tests/keyresponse/sandbox/test_accuracy_grid.py` asserts the targets on a subset of 16
cells, most with a lighter background: `--subset` prints that subset's table).
"""

from __future__ import annotations

import argparse
import sys
import time

from keyresponse.sandbox.grid import ALL_CELLS, GRID, HEADER, TEST_CELLS, GridRunner, row
from keyresponse.sandbox.server import MotoSandbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--cells", help="comma-separated cell names (default: the whole grid)")
    parser.add_argument("--subset", action="store_true", help="the slow test's 16 cells instead of the grid")
    parser.add_argument("--processes", type=int, default=2, help="log-writer processes")
    parser.add_argument("--keep", action="store_true", help="keep each cell's logs (printed folder)")
    parser.add_argument("--list", action="store_true", help="list the cells and exit")
    args = parser.parse_args()
    if args.list:
        for cell in GRID:
            print(f"{cell.name:28} {cell.why}")
        print("\nthe slow test's subset (--subset):", ", ".join(c.name for c in TEST_CELLS))
        return 0
    cells = TEST_CELLS if args.subset else GRID
    names = [n.strip() for n in args.cells.split(",")] if args.cells else [c.name for c in cells]
    unknown = [n for n in names if n not in ALL_CELLS]
    if unknown:
        print(f"unknown cell(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    met = 0
    failures: list[str] = []
    said: list[str] = []
    with MotoSandbox() as box, GridRunner(box, processes=args.processes, keep=args.keep) as runner:
        print(f"robustness grid: {len(names)} cells, logs under {runner.scratch}")
        print(HEADER)
        for name in names:
            result = runner.run(ALL_CELLS[name])
            print(row(result), flush=True)
            met += result.ok
            failures += [f"  {name}: {reason}" for reason in result.failures()]
            if result.said or result.verdict != result.expected_verdict:
                said.append(f"  {name}: verdict {result.verdict} (expected {result.expected_verdict})")
                said += [f"    {line}" for line in result.said]
        play_s = runner.play_s
    print(f"\ncells meeting all targets: {met}/{len(names)}  (100 % attacker-credential recall, 0 benign "
          "credentials in the default plan, no malicious verdict where nobody attacked)")
    print(f"scenarios played in {play_s:.1f} s; whole run {time.perf_counter() - started:.1f} s")
    if failures:
        print("\nwhat fails:")
        print("\n".join(failures))
    if said:
        print("\nwhere the analysis was not sure, or judged an address wrongly, in its own words:")
        print("\n".join(said))
    return 0


if __name__ == "__main__":
    sys.exit(main())
