"""Benchmark: a cold investigation of one key - `keyresponse investigate` - vs a naive DuckDB scan.

    .venv/bin/python bench/investigate.py [--logs DIR] [--events 5000000] [--repeat 1]

Without --logs it simulates a pivot-chain scenario of --events events into /tmp/bench<N> (reused
when ground_truth.json is there). Each approach runs in a fresh child process, so its time is cold
(no index, no cache) and its peak RSS is its own (`ru_maxrss` of the child; the engine's scan
workers are reported apart):

  naive     DuckDB `read_json_objects` view over every file, one scoping query for the original
            key (a single DuckDB read_json pass)
  engine    `keyresponse.investigation.investigate` - what the CLI and the flow's analysis run: every
            scoping round and every impact query - on the DuckDB engine (indicator-driven
            materialisation), each query timed; then a further query on the warm engine
  engine-numpy  the same with the numpy index kernel and ISA-L instead of `_scan.c`'s kernel
            and libdeflate: the baseline for the C half
  full      the same on `materialise="full"` (the old Parquet ingest; slow, opt-in)

It checks the result against the simulator's ground truth (credentials found) and prints
figures; it never asserts. `host_steal_s` is the CPU time the VM's host took away during the
child's run (from /proc/stat): on a shared host, compare runs with little of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NAIVE_SQL = """
SELECT rec->>'eventName' AS event_name, rec->>'sourceIPAddress' AS source_ip,
       regexp_extract(filename, '/CloudTrail/([a-z0-9-]+)/', 1) AS region,
       count(*) AS events, min(rec->>'eventTime') AS first_seen, max(rec->>'eventTime') AS last_seen
FROM (SELECT unnest(CAST(json->'Records' AS JSON[])) AS rec, filename
      FROM read_json_objects($glob, format='auto', filename=true, maximum_object_size=268435456))
WHERE rec->'userIdentity'->>'accessKeyId' = $key
GROUP BY ALL
"""


def _cpu_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of the whole machine (/proc/stat): steal is CPU time the VM's host
    gave to someone else while this VM wanted it - on a shared host, wall times vary with it."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return fields[0] + fields[1] + fields[2], fields[7] if len(fields) > 7 else 0


def _rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def child_naive(logs: Path) -> dict[str, Any]:
    import duckdb

    truth = json.loads((logs / "ground_truth.json").read_text())
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    start = time.perf_counter()
    rows = con.execute(NAIVE_SQL, {"glob": str(logs / "AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz"),
                                   "key": truth["compromised_access_key_id"]}).fetchall()
    elapsed = time.perf_counter() - start
    return {"total_s": elapsed, "groups": len(rows), "events": sum(r[3] for r in rows), "queries": []}


def child_engine(logs: Path, materialise: str, kernel: str | None = None) -> dict[str, Any]:
    t_import = time.perf_counter()
    from keyresponse.engines import indicators
    from keyresponse.engines.duckdb_engine import DuckDBEngine
    from keyresponse.investigation import default_window, investigate

    import_s = time.perf_counter() - t_import
    if kernel:
        indicators.KERNEL, indicators.DECOMPRESSOR = kernel, "isal"
    truth = json.loads((logs / "ground_truth.json").read_text())
    attacker_keys = {c["access_key_id"] for c in truth["attacker_credentials"]}
    timings: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as cache:
        start = time.perf_counter()
        with DuckDBEngine(logs, cache_dir=Path(cache), materialise=materialise) as engine:
            run = engine.run

            def timed(name: str, params: Any) -> list[dict[str, Any]]:
                t0 = time.perf_counter()
                rows = run(name, params)
                timings.append((name, time.perf_counter() - t0, len(rows)))
                return rows

            engine.run = timed  # type: ignore[method-assign]
            result = investigate(engine, truth["compromised_access_key_id"], default_window(str(logs))).to_json()
            elapsed = time.perf_counter() - start
            found = {c["access_key_id"] for c in result["credentials"]}
            t0 = time.perf_counter()
            again = run("persistence_events", {**_window_params(logs), "access_key_ids": sorted(found),
                                               "exclude_ips": []})
            further = time.perf_counter() - t0
            rows_in_table = engine._con.execute("SELECT count(*) FROM cloudtrail").fetchone()[0]
    return {"total_s": elapsed, "import_s": round(import_s, 2), "kernel": indicators.KERNEL, "decompressor": indicators.DECOMPRESSOR,
            "further_query_s": round(further, 3), "further_rows": len(again),
            "credentials": len(found), "attacker_credentials_found": f"{len(found & attacker_keys)}/{len(attacker_keys)}",
            "benign_credentials_found": len(found & set(truth["benign_credentials"])),
            "verdict": result["verdict"], "rows_loaded": rows_in_table, "queries": timings}


def _window_params(logs: Path) -> dict[str, str]:
    from keyresponse.investigation import default_window

    return default_window(str(logs)).params()


def child(approach: str, logs: Path) -> None:
    if approach == "naive":
        result = child_naive(logs)
    else:
        result = child_engine(logs, "full" if approach == "full" else "indicators",
                              "numpy" if approach == "engine-numpy" else None)
    own, workers = _rss_mb()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(approach=approach, peak_rss_mb=round(own), workers_peak_rss_mb=round(workers),
                  cpu_s=round(me.ru_utime + me.ru_stime, 2), workers_cpu_s=round(kids.ru_utime + kids.ru_stime, 2))
    print(json.dumps(result))


def ensure_logs(logs: Path | None, events: int) -> Path:
    if logs is not None:
        return logs
    out = Path(f"/tmp/bench{events // 1_000_000}m" if events >= 1_000_000 else f"/tmp/bench{events // 1000}k")
    if not (out / "ground_truth.json").exists():
        print(f"simulating {events:,} events into {out} (a few minutes for 5M) ...", flush=True)
        subprocess.run([str(ROOT / ".venv/bin/keyresponse"), "simulate", "--scenario", "pivot-chain",
                        "--events", str(events), "--out", str(out), "--end", "2026-11-20T00:00:00Z"], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=Path, help="a simulator output folder (AWSLogs/ + ground_truth.json)")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--approaches", default="naive,engine", help="comma-separated: naive, engine, engine-numpy, full")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each approach")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.logs)
        return
    logs = ensure_logs(args.logs, args.events)
    files = list(logs.glob("AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz"))
    print(f"logs: {logs}  files: {len(files):,}  compressed: {sum(f.stat().st_size for f in files) / 1e6:,.1f} MB")
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for approach in args.approaches.split(","):
            busy0, steal0 = _cpu_ticks()
            out = subprocess.run([sys.executable, __file__, "--child", approach, "--logs", str(logs)],
                                 capture_output=True, text=True, check=True)
            busy1, steal1 = _cpu_ticks()
            result = json.loads(out.stdout.strip().splitlines()[-1])
            hz = os.sysconf("SC_CLK_TCK")
            result["host_steal_s"] = round((steal1 - steal0) / hz, 2)
            result["machine_busy_s"] = round((busy1 - busy0) / hz, 2)
            results.setdefault(approach, []).append(result)
            extra = {k: v for k, v in result.items() if k not in ("queries", "approach", "total_s")}
            print(f"{approach:7s} total {result['total_s']:7.2f} s  {extra}", flush=True)
            for name, seconds, rows in result["queries"]:
                print(f"    {name:32s} {seconds:7.3f} s  {rows:6d} rows")
    if "naive" in results:
        naive = min(r["total_s"] for r in results["naive"])
        for approach, runs in results.items():
            best = min(r["total_s"] for r in runs)
            print(f"{approach:7s} best {best:7.2f} s  ({best / naive:.2f}x the naive scan's {naive:.2f} s)")


if __name__ == "__main__":
    main()
