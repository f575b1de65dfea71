"""Webhook received → key Inactive, with automatic containment (goal here: p50 ≤ 3 s, p99 ≤ 10 s).

    python bench/latency.py [--keys 50]

Starts the whole system on 127.0.0.1 (moto, a Prefect server, `keyresponse serve`), creates N
victim users with one key each, then posts AWS Health AWS_RISK_CREDENTIALS_EXPOSED alerts (high
confidence: containment needs no approval): first 1 alert alone, then N alerts at once. Prints the
time from each POST to the key reading Inactive in IAM, as p50 / p99 / max, and the ratio of the
burst's p50 to the single alert's. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyresponse.demo import Stack
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.server import admin_client
from keyresponse.sandbox.simulate import run_simulation


def health_alert(key: str, user: str, n: int) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({
        "version": "0", "id": f"bench-{n}", "detail-type": "AWS Health Event", "source": "aws.health",
        "account": "123456789012", "time": now, "region": "us-east-1", "resources": [],
        "detail": {"eventArn": f"arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/BENCH{n:06d}",
                   "service": "RISK", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "eventTypeCategory": "issue",
                   "startTime": now, "eventDescription": [{"language": "en_US", "latestDescription":
                       f"Your AWS Access Key {key} belonging to IAM User {user} is publicly available."}],
                   "affectedEntities": [{"entityValue": key}]}}).encode()


def time_to_inactive(stack: Stack, iam: Any, key: str, user: str, body: bytes, timeout: float = 120) -> float:
    started = time.perf_counter()
    stack.post("health", body)
    deadline = started + timeout
    while time.perf_counter() < deadline:
        status = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
        if status.get(key) != "Active":
            return time.perf_counter() - started
        time.sleep(0.1)
    return float("inf")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    with MotoSandbox() as box:
        account = seed_account(box)
        run_simulation(scenario="scanner-validation", out=folder / "logs", events=2000, sandbox=box)
        iam = admin_client(box.endpoint, "iam")
        victims = []
        for n in range(args.keys + 1):
            user = f"bench-victim-{n:03d}"
            iam.create_user(UserName=user)
            victims.append((user, iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]))
        with Stack(box, account, folder, logs=folder / "logs",
                   extra_env={"KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "30"}) as stack:
            user, key = victims[0]
            single = time_to_inactive(stack, iam, key, user, health_alert(key, user, 0))
            print(f"1 alert: webhook → key Inactive in {single:.2f} s")
            results: list[float] = []
            lock = threading.Lock()

            def one(n: int, user: str, key: str) -> None:
                took = time_to_inactive(stack, iam, key, user, health_alert(key, user, n))
                with lock:
                    results.append(took)

            threads = [threading.Thread(target=one, args=(n, u, k)) for n, (u, k) in enumerate(victims[1:], 1)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
    done = [r for r in results if r != float("inf")]
    print(f"{args.keys} alerts at once: {len(done)}/{args.keys} keys Inactive within 120 s; "
          f"p50 {statistics.median(done):.2f} s, p99 {pct(done, 0.99):.2f} s, max {max(done):.2f} s; "
          f"all done in {wall:.1f} s")
    print(f"ratio burst p50 / single alert: {statistics.median(done) / single:.2f}x")


if __name__ == "__main__":
    main()
