"""Benchmark: the credential-report scan vs a per-user API crawl, on 10,000 users in a fresh sandbox.

    .venv/bin/python bench/scan.py [--users 10000] [--threads 16]

Both approaches must find the same (user, check) pairs; the script prints API calls, seconds and
the ratios. It prints figures and never asserts timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from keyresponse import aws
from keyresponse.credential_reports import fetch_report
from keyresponse.keyscan import Check, ScanPolicy, find_findings, parse_credential_report
from keyresponse.sandbox import MotoSandbox
from tasks.credential_report import enrich


class CallCounter:
    """Counts every AWS API call made through the clients it is attached to."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self._count)
        return client

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plant(index: int) -> dict[str, Any]:
    """The shape of user `index`: most are healthy, a few percent break a rule."""
    return {"old": index % 97 == 0, "idle": index % 89 == 1, "never": index % 83 == 2,
            "console_no_mfa": index % 79 == 3, "two_keys": index % 73 == 4}


def populate(sandbox: MotoSandbox, users: int, threads: int) -> float:
    now = datetime.now(UTC)
    local = threading.local()

    def make(index: int) -> None:
        if not hasattr(local, "iam"):
            local.iam = aws.client("iam")
        iam, name, shape = local.iam, f"user-{index:05d}", plant(index)
        iam.create_user(UserName=name, Tags=[{"Key": "owner", "Value": f"team-{index % 40}@example.com"}])
        for slot in range(2 if shape["two_keys"] else 1):
            key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
            age = 200 if shape["old"] else 60 if (shape["never"] or shape["idle"]) else 20 + slot
            used = None if shape["never"] else now - timedelta(days=70 if shape["idle"] else 1)
            sandbox.backdate(user_name=name, access_key_id=key, created_at=_iso(now - timedelta(days=age)),
                             **({"last_used_at": _iso(used)} if used else {}))
        if shape["console_no_mfa"]:
            iam.create_login_profile(UserName=name, Password="Bench-only-Passw0rd!")  # noqa: S106

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(make, range(users)))
    return time.perf_counter() - started


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0]
    elapsed.append(time.perf_counter() - started)


def report_scan(policy: ScanPolicy, now: datetime) -> tuple[set[tuple[str, str]], int]:
    counter = CallCounter()
    iam = counter.attach(aws.client("iam"))
    report = fetch_report(iam, "123456789012", poll_s=0.2)
    findings = enrich(iam, find_findings(parse_credential_report(report.content, account_id="123456789012"),
                                         policy, now))
    assert all(f.owner for f in findings), "enrichment should name every owner"
    return {(f.user_name, f.check.value) for f in findings}, counter.calls


def api_scan(policy: ScanPolicy, now: datetime, threads: int) -> tuple[set[tuple[str, str]], int]:
    """What a tool without the credential report does: list every user, then ask about each one."""
    counter = CallCounter()
    local = threading.local()
    found: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def client() -> Any:
        if not hasattr(local, "iam"):
            local.iam = counter.attach(aws.client("iam"))
        return local.iam

    names = [u["UserName"] for page in client().get_paginator("list_users").paginate() for u in page["Users"]]

    def examine(name: str) -> None:
        iam = client()
        hits: list[str] = []
        active = [k for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"] if k["Status"] == "Active"]
        for key in active:
            age = (now - key["CreateDate"]).total_seconds() / 86400
            last = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"].get("LastUsedDate")
            if age > policy.max_age_days:
                hits.append(Check.LONG_LIVED)
            if last is None and age > policy.unused_days:
                hits.append(Check.NEVER_USED)
            elif last is not None and (now - last).total_seconds() / 86400 > policy.unused_days:
                hits.append(Check.UNUSED)
        if len(active) >= 2:
            hits.append(Check.TWO_ACTIVE_KEYS)
        if active and not iam.list_mfa_devices(UserName=name)["MFADevices"]:
            try:
                iam.get_login_profile(UserName=name)
                hits.append(Check.CONSOLE_WITHOUT_MFA)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "NoSuchEntity":
                    raise
        if hits:
            iam.list_user_tags(UserName=name)  # the owner, as the report scan's enrichment fetches it
            with lock:
                found.update((name, str(hit)) for hit in hits)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(examine, names))
    return found, counter.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16, help="threads for populating and for the API crawl")
    args = parser.parse_args()
    with MotoSandbox() as sandbox:
        os.environ.update(sandbox.env())
        print(f"populating {args.users} users with {args.threads} threads …", flush=True)
        seconds = populate(sandbox, args.users, args.threads)
        print(f"  populated in {seconds:.1f} s ({args.users / seconds:.0f} users/s)")
        policy, now = ScanPolicy(), datetime.now(UTC)

        with timed() as report_time:
            by_report, report_calls = report_scan(policy, now)
        with timed() as api_time:
            by_api, api_calls = api_scan(policy, now, args.threads)

        print(f"\n{'approach':<44}{'API calls':>12}{'seconds':>10}{'findings':>10}")
        print(f"{'credential report (+2 calls per flagged user)':<44}{report_calls:>12}{report_time():>10.2f}"
              f"{len(by_report):>10}")
        print(f"{f'per-user API crawl ({args.threads} threads)':<44}{api_calls:>12}{api_time():>10.2f}"
              f"{len(by_api):>10}")
        print(f"\nratio: {api_calls / report_calls:.1f}x fewer calls, {api_time() / report_time():.1f}x faster "
              "(goal: >= 20x fewer calls, >= 5x faster)")
        same = by_report == by_api
        print(f"same findings: {same}" + ("" if same else
              f" (report only: {sorted(by_report - by_api)[:5]}, API only: {sorted(by_api - by_report)[:5]})"))
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
