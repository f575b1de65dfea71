"""Load: a burst of alerts about a few keys against the real receiver, Prefect server and runner.

    .venv/bin/python bench/load.py                 # 500 alerts about 25 keys
    .venv/bin/python bench/load.py --alerts 60 --keys 6

A fresh sandbox (moto) is seeded, N victim users with one key each are created, a small scenario
is played so the analysis has CloudTrail files, then `keyresponse serve` (receiver + runner) runs
as a child process in front of a Prefect server, exactly as `keyresponse demo` starts it. The burst
mixes GuardDuty (severity 8), AWS Health, Security Hub (GuardDuty product, severity 8) and generic
alerts; about a third are redeliveries of an alert already sent (same finding id).

Approvals: every incident's *containment* pause is approved (an incident opened by a generic,
low-confidence alert is contained only then) and every *eradication* pause is denied, so each run
ends quickly after containment (status `denied`) and no key is deleted: the figure measured is
alert -> key Inactive.

Prints figures (no asserts); `tests/resilience/test_load.py` runs a small burst and asserts on the
same figures. Everything listens on 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from keyresponse.approval import phase_of  # noqa: E402
from keyresponse.children import die_with_parent  # noqa: E402
from keyresponse.prefect_server import PrefectServer, free_port  # noqa: E402
from keyresponse.receiver.auth import sign  # noqa: E402
from keyresponse.receiver.spool import AlertSpool  # noqa: E402
from keyresponse.sandbox import MotoSandbox  # noqa: E402
from keyresponse.sandbox.seed import SeededAccount, seed_account  # noqa: E402
from keyresponse.sandbox.server import access_key_statuses, admin_client  # noqa: E402
from keyresponse.sandbox.simulate import run_simulation  # noqa: E402

DEPLOYMENT = "respond-to-exposed-key/respond-to-exposed-key"
APPROVER = "load-bench@keyresponse.local"
SOURCES = ("guardduty", "health", "securityhub", "generic")


@dataclass(frozen=True)
class Victim:
    user_name: str
    access_key_id: str


@dataclass
class Sent:
    """One alert of the burst and its answer."""

    route: str
    key: str
    idempotency_key: str
    sent_at: float
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class LoadResult:
    alerts: list[Sent]
    victims: list[Victim]
    contained_at: dict[str, float]
    first_sent: dict[str, float]
    runs: dict[str, str]  # incident id -> final state name of its parent run
    run_messages: dict[str, str]  # incident id -> state message of a parent run that did not complete
    run_count: int
    spool_records: int
    spool_pending: int
    approvals: Counter[str]
    burst_seconds: float
    total_seconds: float

    def figures(self) -> dict[str, Any]:
        statuses = Counter(a.status for a in self.alerts)
        incidents = {a.answer.get("incident_id") for a in self.alerts if a.status == 202}
        unique = {a.idempotency_key for a in self.alerts}
        latencies = sorted(self.contained_at[k] - self.first_sent[k] for k in self.contained_at
                           if k in self.first_sent)
        # A 503 (launcher busy) is answered only after the alert is spooled; the receiver's relaunch
        # loop starts it later, so it is lost only if the spool lacks it or still holds it at the end.
        refused = [a.idempotency_key for a in self.alerts if a.status not in (202, 503)]
        busy = [a.idempotency_key for a in self.alerts if a.status == 503]
        return {
            "alerts_sent": len(self.alerts), "distinct_alerts": len(unique), "keys": len(self.victims),
            "http_statuses": dict(sorted(statuses.items())), "incidents": len(incidents - {None}),
            "parent_runs": self.run_count, "run_states": dict(Counter(self.runs.values())),
            "run_messages": self.run_messages,
            "keys_inactive": len(self.contained_at), "spool_records": self.spool_records,
            "spool_pending": self.spool_pending, "approvals": dict(self.approvals),
            "burst_seconds": round(self.burst_seconds, 2),
            "throughput_alerts_per_s": round(len(self.alerts) / self.burst_seconds, 1) if self.burst_seconds else 0,
            "alert_to_inactive_p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "alert_to_inactive_p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2)
            if latencies else None,
            "alert_to_inactive_max_s": round(latencies[-1], 2) if latencies else None,
            "answered_503_then_relaunched": len(busy) if not self.spool_pending else 0,
            "lost_alerts": len(refused) + max(0, len(unique) - self.spool_records) + self.spool_pending,
            "keys_not_contained": sorted(v.access_key_id for v in self.victims
                                         if v.access_key_id not in self.contained_at),
            "total_seconds": round(self.total_seconds, 1),
        }


# --- alerts --------------------------------------------------------------------------------------


def alert_body(source: str, victim: Victim, account_id: str, finding: str) -> dict[str, Any]:
    """A well-formed alert of `source` about `victim`; `finding` is the source's finding id."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    arn = f"arn:aws:iam::{account_id}:user/{victim.user_name}"
    if source == "guardduty":
        detail = {"accountId": account_id, "id": finding, "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
                  "arn": f"arn:aws:guardduty:us-east-1:{account_id}:detector/d/finding/{finding}",
                  "severity": 8, "createdAt": when, "title": "load bench",
                  "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                      "accessKeyId": victim.access_key_id, "userName": victim.user_name, "userType": "IAMUser"}},
                  "service": {"archived": False, "eventFirstSeen": when}}
        return {"version": "0", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
                "account": account_id, "time": when, "detail": detail}
    if source == "health":
        return {"version": "0", "detail-type": "AWS Health Event", "source": "aws.health", "account": account_id,
                "time": when, "detail": {
                    "eventArn": f"arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/{finding}",
                    "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "startTime": when,
                    "affectedEntities": [{"entityValue": victim.access_key_id}],
                    "eventMetadata": {"userName": victim.user_name}}}
    if source == "securityhub":
        finding_doc = {
            "Id": f"arn:aws:securityhub:us-east-1:{account_id}:finding/{finding}",
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty", "AwsAccountId": account_id,
            "Title": "load bench", "CreatedAt": when, "Severity": {"Label": "HIGH", "Product": 8},
            "Workflow": {"Status": "NEW"}, "RecordState": "ACTIVE",
            "Resources": [{"Type": "AwsIamAccessKey", "Id": f"AWS::IAM::AccessKey:{victim.access_key_id}",
                           "Details": {"AwsIamAccessKey": {"AccessKeyId": victim.access_key_id,
                                                           "UserName": victim.user_name}}},
                          {"Type": "AwsIamUser", "Id": arn}]}
        return {"version": "0", "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
                "account": account_id, "time": when, "detail": {"findings": [finding_doc]}}
    return {"access_key_id": victim.access_key_id, "reason": "load bench", "account_id": account_id,
            "principal": arn, "alert_id": finding}


def idempotency_key(source: str, body: dict[str, Any]) -> str:
    """The `source:alert_id` the receiver derives (mirrors keyresponse.alerts, for accounting)."""
    from keyresponse.alerts import normalize

    return normalize(source, body)[0].idempotency_key


Burst = list[tuple[str, dict[str, Any], str]]  # (source, body, access key id)


def make_burst(victims: list[Victim], account_id: str, count: int, seed: int = 8) -> Burst:
    """`count` alerts about `victims`, every source mixed, about a third redeliveries, shuffled."""
    rng = random.Random(seed)
    burst: Burst = []
    for i in range(count):
        victim = victims[i % len(victims)]
        same = [b for b in burst if b[2] == victim.access_key_id]
        if same and rng.random() < 0.33:
            burst.append(rng.choice(same))
            continue
        source = SOURCES[(i // len(victims)) % len(SOURCES)]
        burst.append((source, alert_body(source, victim, account_id, f"{rng.getrandbits(96):024x}"),
                      victim.access_key_id))
    rng.shuffle(burst)
    return burst


# --- the running system ----------------------------------------------------------------------------


def create_victims(endpoint: str, count: int, prefix: str = "load-victim") -> list[Victim]:
    iam = admin_client(endpoint, "iam")
    victims = []
    for i in range(count):
        name = f"{prefix}-{i:03d}"
        iam.create_user(UserName=name)
        made = iam.create_access_key(UserName=name)["AccessKey"]
        victims.append(Victim(name, made["AccessKeyId"]))
    return victims


@dataclass
class Serve:
    """`keyresponse serve` as a child process, as keyresponse.demo starts it."""

    url: str
    secret: str
    home: Path
    api_url: str
    process: subprocess.Popen[bytes]


@contextmanager
def serve(box: MotoSandbox, account: SeededAccount, folder: Path, api_url: str,
          extra_env: dict[str, str] | None = None, ready_timeout: float = 120.0) -> Iterator[Serve]:
    home = folder / "home"
    secret = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, **box.env(),
           "AWS_ACCESS_KEY_ID": account.responder.access_key_id,
           "AWS_SECRET_ACCESS_KEY": account.responder.secret_access_key,
           "KEYRESPONSE_HOME": str(home), "KEYRESPONSE_CLOUDTRAIL_LOGS": str(folder / "logs"),
           "KEYRESPONSE_PROTECTED_PRINCIPALS": json.dumps(account.protected_principals),
           "KEYRESPONSE_APPROVAL_POLL_SECONDS": "1", "KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "600",
           "KEYRESPONSE_RECHECK_DELAY_SECONDS": os.environ.get("KEYRESPONSE_RECHECK_DELAY_SECONDS", "2"),
           "KEYRESPONSE_WEBHOOK_SECRET": secret, "KEYRESPONSE_WEBHOOK_SPOOL": str(home / "spool"),
           "PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(extra_env or {})}
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "serve.log", "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "keyresponse", "serve", "--port", str(port)], env=env,
                                 stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                 cwd=str(ROOT))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while not (_healthy(url) and _deployment_ready(api_url)):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"keyresponse serve did not come up; see {folder / 'serve.log'}")
            time.sleep(0.25)
        yield Serve(url, secret, home, api_url, child)
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _deployment_ready(api_url: str) -> bool:
    try:
        response = httpx.get(f"{api_url}/deployments/name/{DEPLOYMENT}", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def _send_all(url: str, secret: str, burst: Burst, concurrency: int) -> list[Sent]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(source: str, body: dict[str, Any], key: str) -> Sent:
            raw = json.dumps(body).encode()
            sent = Sent(source, key, idempotency_key(source, body), time.monotonic())
            async with gate:
                sent.sent_at = time.monotonic()
                try:
                    response = await client.post(f"{url}/alerts/{source}", content=raw, headers={
                        "Content-Type": "application/json", "X-Keyresponse-Signature": sign(raw, secret)})
                    sent.status = response.status_code
                    with suppress(ValueError):
                        sent.answer = response.json()
                except httpx.HTTPError as exc:
                    sent.error = f"{type(exc).__name__}: {exc}"
            return sent

        return list(await asyncio.gather(*(one(s, b, k) for s, b, k in burst)))


class Watcher:
    """Background threads: note when each key turns Inactive; answer our incidents' approval pauses."""

    def __init__(self, endpoint: str, victims: list[Victim], api_url: str) -> None:
        self.endpoint = endpoint
        self.victims = victims
        self.api_url = api_url
        self.contained_at: dict[str, float] = {}
        self.approvals: Counter[str] = Counter()
        self.incidents: set[str] = set()
        self.answered: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch_keys, daemon=True),
                         threading.Thread(target=self._answer_pauses, daemon=True)]

    def __enter__(self) -> Watcher:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _watch_keys(self) -> None:  # one sandbox call per round: watching must not load what it measures
        while not self._stop.is_set() and len(self.contained_at) < len(self.victims):
            with suppress(Exception):
                statuses = access_key_statuses(self.endpoint)
                now = time.monotonic()
                for victim in self.victims:
                    if victim.access_key_id not in self.contained_at and \
                            statuses.get(victim.access_key_id, "deleted") != "Active":
                        self.contained_at[victim.access_key_id] = now
            self._stop.wait(0.1)

    def _answer_pauses(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=30) as api:
            while not self._stop.is_set():
                with suppress(httpx.HTTPError):
                    paused = api.post("/flow_runs/filter", json={
                        "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}, "limit": 200}).json()
                    for run in paused:
                        incident = str(run.get("name", "")).partition(":")[2]
                        # the response run suspends itself at each phase: the pause key names the question
                        key = ((run.get("state") or {}).get("state_details") or {}).get("pause_key")
                        phase = phase_of(key) or "?"
                        question = f"{run['id']}:{key}"
                        if incident not in self.incidents or question in self.answered:
                            continue
                        decision = "approve" if phase == "containment" else "deny"
                        answer = api.post(f"/flow_runs/{run['id']}/resume", json={"run_input": {
                            "approver": APPROVER, "decision": decision,
                            "reason": f"load bench: {decision} {phase}"}}).json()
                        if answer.get("status") == "ACCEPT":
                            self.answered.add(question)
                            self.approvals[f"{phase}:{decision}"] += 1
                self._stop.wait(0.5)


def parent_runs(api_url: str, incidents: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Flow runs of the response deployment, by incident id (only the incidents given)."""
    with httpx.Client(base_url=api_url, timeout=30) as api:
        deployment = api.get(f"/deployments/name/{DEPLOYMENT}").json()
        found: dict[str, list[dict[str, Any]]] = {}
        offset = 0
        while True:
            page = api.post("/flow_runs/filter", json={
                "deployments": {"id": {"any_": [deployment["id"]]}}, "limit": 200, "offset": offset}).json()
            for run in page:
                incident = (run.get("parameters") or {}).get("incident_id")
                if incident in incidents:
                    found.setdefault(incident, []).append(run)
            if len(page) < 200:
                return found
            offset += 200


def run_load(alerts: int = 500, keys: int = 25, *, api_url: str | None = None, folder: Path | None = None,
             concurrency: int = 50, finish_timeout: float = 600.0) -> LoadResult:
    """The whole load run; with `api_url` the Prefect server there is used, else one is started."""
    folder = folder or Path(tempfile.mkdtemp(prefix="keyresponse-load-"))
    started = time.monotonic()
    with MotoSandbox() as box:
        account = seed_account(box)
        run_simulation(scenario="pivot-chain", out=folder / "logs", events=300, sandbox=box, processes=1)
        victims = create_victims(box.endpoint, keys)
        burst = make_burst(victims, account.account_id, alerts)
        with _prefect(folder, api_url) as api, serve(box, account, folder, api) as stack, \
                Watcher(box.endpoint, victims, api) as watcher:
            burst_started = time.monotonic()
            sent = asyncio.run(_send_all(stack.url, stack.secret, burst, concurrency))
            burst_seconds = time.monotonic() - burst_started
            incidents = {a.answer["incident_id"] for a in sent if a.status == 202 and "incident_id" in a.answer}
            watcher.incidents.update(incidents)
            states: dict[str, str] = {}
            deadline = time.monotonic() + finish_timeout
            while time.monotonic() < deadline:
                runs = parent_runs(api, incidents)
                states = {i: (r[-1].get("state") or {}).get("type", "?") for i, r in runs.items()}
                if len(states) == len(incidents) and all(
                        s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states.values()):
                    break
                time.sleep(1)
            runs = parent_runs(api, incidents)
            spool = AlertSpool(stack.home / "spool")
            records = [p for folder in (spool.alerts_dir, spool.archive_dir) if folder.exists()  # waiting, settled
                       for p in folder.glob("*.json") if not p.name.startswith(".")]
            first_sent: dict[str, float] = {}
            for item in sent:
                first_sent[item.key] = min(first_sent.get(item.key, item.sent_at), item.sent_at)
            return LoadResult(
                alerts=sent, victims=victims, contained_at=dict(watcher.contained_at), first_sent=first_sent,
                runs={i: (r[-1].get("state") or {}).get("name", "?") for i, r in runs.items()},
                run_messages={i: str((r[-1].get("state") or {}).get("message"))[:300] for i, r in runs.items()
                              if (r[-1].get("state") or {}).get("type") != "COMPLETED"},
                run_count=sum(len(r) for r in runs.values()), spool_records=len(records),
                spool_pending=len(spool.pending()), approvals=Counter(watcher.approvals),
                burst_seconds=burst_seconds, total_seconds=time.monotonic() - started)


@contextmanager
def _prefect(folder: Path, api_url: str | None) -> Iterator[str]:
    if api_url:
        yield api_url
        return
    with PrefectServer(folder / "prefect", reuse_existing=False) as server:
        yield server.api_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--keys", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    result = run_load(args.alerts, args.keys, concurrency=args.concurrency)
    print(json.dumps(result.figures(), indent=2))


if __name__ == "__main__":
    main()
