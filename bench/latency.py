"""Webhook received → key Inactive, with automatic containment (goal here: p50 ≤ 3 s, p99 ≤ 10 s).

    python bench/latency.py [--keys 50]

Starts the whole system on 127.0.0.1 (moto, a Prefect server, `keyresponse serve`), creates N
victim users with one key each, then posts AWS Health AWS_RISK_CREDENTIALS_EXPOSED alerts (high
confidence: containment needs no approval): first 1 alert alone, then N alerts at once. Prints the
time from each POST to the key reading Inactive in IAM (one sandbox call per round reads every
key), as p50 / p99 / max, the burst's HTTP answers, and the ratio of the burst's p50 to the single
alert's. The receiver's first response does the containing (tasks/first_response.py); the
flow runs start meanwhile at nice +10. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from keyresponse.demo import Stack
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.server import access_key_statuses, admin_client
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


class Watcher(threading.Thread):
    """Reads every key's status in one sandbox call per round (a poller per key would load moto)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.pending: dict[str, float] = {}  # key → posted at
        self.took: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def watch(self, key: str, posted: float) -> None:
        with self.lock:
            self.pending[key] = posted

    def run(self) -> None:
        while not self.stop.is_set():
            statuses = access_key_statuses(self.endpoint)
            seen = time.perf_counter()
            with self.lock:
                for key, posted in list(self.pending.items()):
                    if statuses.get(key) != "Active":
                        self.took[key] = seen - posted
                        del self.pending[key]
            time.sleep(0.05)

    def wait(self, keys: list[str], timeout: float = 120) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if all(k in self.took for k in keys):
                    return
            time.sleep(0.1)


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
            watcher = Watcher(box.endpoint)
            watcher.start()
            user, key = victims[0]
            watcher.watch(key, time.perf_counter())
            stack.post("health", health_alert(key, user, 0))
            watcher.wait([key])
            single = watcher.took.get(key, float("inf"))
            print(f"1 alert: webhook → key Inactive in {single:.2f} s")

            answers: list[str] = []
            answered: list[float] = []  # seconds from POST to its answer

            def one(n: int, user: str, key: str) -> None:
                watcher.watch(key, time.perf_counter())
                try:
                    posted = time.perf_counter()
                    answer = stack.post("health", health_alert(key, user, n), wait_for_run=False)
                    answered.append(time.perf_counter() - posted)
                    answers.append(f"202 {answer.get('status')}")
                except Exception as exc:  # a 503 after 6 tries (the alert is spooled) or a client timeout
                    answers.append(type(exc).__name__ + (f" {exc.code}" if hasattr(exc, "code") else ""))

            threads = [threading.Thread(target=one, args=(n, u, k)) for n, (u, k) in enumerate(victims[1:], 1)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            watcher.wait([k for _, k in victims[1:]])
            wall = time.perf_counter() - started
            watcher.stop.set()
            results = [watcher.took[k] for _, k in victims[1:] if k in watcher.took]
    done = results
    print(f"{args.keys} alerts at once: {len(done)}/{args.keys} keys Inactive within 120 s; "
          f"p50 {statistics.median(done):.2f} s, p99 {pct(done, 0.99):.2f} s, max {max(done):.2f} s; "
          f"all done in {wall:.1f} s")
    print(f"answers to the burst's POSTs: {dict(Counter(answers))}; the slowest answered in "
          f"{max(answered, default=float('nan')):.2f} s")
    print(f"ratio burst p50 / single alert: {statistics.median(done) / single:.2f}x")


if __name__ == "__main__":
    main()
