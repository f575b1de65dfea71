"""What a flow-run process costs before it runs anything: cold (a new interpreter importing what a run
imports, as `python -m prefect.engine` does) against warm (forked from a forkserver that imported it
once, as `keyresponse serve` starts runs: keyresponse/warm_start.py).

    python bench/warm_start.py [--runs 5]

Each process imports `keyresponse.warm_start.WARM_MODULES` (the forked ones find them imported) and
reports its own CPU time and its wall time from the start request. Prints the medians, the ratio
cold / warm, and as its last line one JSON object. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import multiprocessing.forkserver as forkserver
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection

from keyresponse.warm_start import WARM_MODULES

_COLD = ("import importlib, json, sys, time; start = float(sys.argv[1]); "
         "[importlib.import_module(m) for m in sys.argv[2:]]; "
         "print(json.dumps({'cpu': time.process_time(), 'wall': time.time() - start}))")


def _forked(start: float, out: Connection) -> None:
    for module in WARM_MODULES:
        importlib.import_module(module)
    out.send({"cpu": time.process_time(), "wall": time.time() - start})


def cold(runs: int) -> list[dict[str, float]]:
    figures = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _COLD, str(time.time()), *WARM_MODULES],
                              capture_output=True, text=True, check=True)
        figures.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return figures


def warm(runs: int) -> tuple[float, list[dict[str, float]]]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WARM_MODULES))
    started = time.time()
    forkserver.ensure_running()
    figures = []
    for n in range(runs + 1):  # the first waits for the forkserver's own imports: reported apart
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_forked, args=(time.time(), send))
        process.start()
        figure = receive.recv()
        process.join()
        if n == 0:
            ready = time.time() - started
        else:
            figures.append(figure)
    return ready, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cold_runs = cold(args.runs)
    ready, warm_runs = warm(args.runs)
    result = {
        "runs": args.runs,
        "cold_cpu_s": round(statistics.median(r["cpu"] for r in cold_runs), 3),
        "cold_wall_s": round(statistics.median(r["wall"] for r in cold_runs), 3),
        "warm_cpu_s": round(statistics.median(r["cpu"] for r in warm_runs), 3),
        "warm_wall_s": round(statistics.median(r["wall"] for r in warm_runs), 3),
        "forkserver_ready_s": round(ready, 3),
    }
    result["cpu_ratio_cold_over_warm"] = round(result["cold_cpu_s"] / max(result["warm_cpu_s"], 1e-3), 1)
    result["wall_ratio_cold_over_warm"] = round(result["cold_wall_s"] / max(result["warm_wall_s"], 1e-3), 1)
    print(f"cold start (new interpreter): {result['cold_cpu_s']} CPU-s, {result['cold_wall_s']} s wall (median)")
    print(f"warm start (forked):          {result['warm_cpu_s']} CPU-s, {result['warm_wall_s']} s wall (median; "
          f"the forkserver was ready {result['forkserver_ready_s']} s after start)")
    print(f"cold / warm: {result['cpu_ratio_cold_over_warm']}x CPU, {result['wall_ratio_cold_over_warm']}x wall")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
