"""A signed alert during an unauthenticated /healthz flood, against a receiver with a large spool.

    python bench/receiver_flood.py [--records 5000] [--healthz 30] [--rounds 5]

Writes N launched alert records into a fresh spool the way a receiver without the archive left them
(every one in `<spool>/alerts/`), starts the receiver (`keyresponse.receiver.app.create_app`, uvicorn on
127.0.0.1, a launcher that answers at once: Prefect is not what is measured), and sends, a few times,
M concurrent GET /healthz with one HMAC-signed alert among them. Prints the time to the alert's answer
(EventBridge API destinations give up after 5 s), the /healthz answers by status (429: over the
per-address rate of the routes that take no credentials) and their p50, and how long the receiver took
to move the old records to `<spool>/archive/` in the background. The first round runs while that move
is going on. Figures only; nothing is asserted (tests/keyresponse/test_webhook_spool.py asserts the
behaviour).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from keyresponse.alerts import Alert
from keyresponse.prefect_server import free_port
from keyresponse.receiver.app import create_app
from keyresponse.receiver.auth import sign
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.launcher import LaunchResult
from keyresponse.receiver.spool import AlertSpool, SpoolRecord

SECRET = secrets.token_hex(16)


class AnsweringLauncher:
    """Answers every launch at once with a run id derived from the idempotency key."""

    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult:
        return LaunchResult(flow_run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key)), ui_url=None)


def fill(spool: AlertSpool, records: int) -> None:
    spool.alerts_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    for i in range(records):
        alert = Alert(source="generic", alert_id=f"bench-old-{i}", access_key_id=f"AKIABENCH{i:011d}",
                      observed_at=now, severity="high", high_confidence=False, title="Manual alert: bench",
                      raw={"access_key_id": f"AKIABENCH{i:011d}", "reason": "bench"})
        record = SpoolRecord(alert=alert, incident_id=alert.incident_id, idempotency_key=alert.launch_key(1),
                             received_at=now, flow_run_id=str(uuid.uuid4()))
        spool.record_path(alert).write_text(record.model_dump_json(indent=2))


async def one_round(url: str, healthz: int, n: int) -> tuple[float, int, Counter[int], list[float]]:
    body = f'{{"access_key_id": "AKIAFLOOD{n:011d}", "reason": "signed, during a flood"}}'.encode()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def timed_get() -> tuple[int, float]:
            started = time.perf_counter()
            answer = await client.get("/healthz")
            return answer.status_code, time.perf_counter() - started

        async def timed_alert() -> tuple[int, float]:
            started = time.perf_counter()
            answer = await client.post("/alerts/generic", content=body,
                                       headers={"X-Keyresponse-Signature": sign(body, SECRET)})
            return answer.status_code, time.perf_counter() - started

        gets = [timed_get() for _ in range(healthz)]
        results = await asyncio.gather(*gets[: healthz // 2], timed_alert(), *gets[healthz // 2:])
    status, took = results.pop(healthz // 2)
    return took, status, Counter(code for code, _ in results), [t for _, t in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--healthz", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyresponse-flood-") as folder:
        spool = AlertSpool(Path(folder) / "spool")
        started = time.perf_counter()
        fill(spool, args.records)
        print(f"spool: {args.records} launched records written in {time.perf_counter() - started:.1f} s")
        app = create_app(WebhookSettings(secret=SECRET, spool=spool.folder), AnsweringLauncher(), relaunch_every=3600)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        up = time.perf_counter()
        url = f"http://127.0.0.1:{port}"
        archived_after: float | None = None
        for n in range(args.rounds):
            took, status, codes, times = asyncio.run(one_round(url, args.healthz, n))
            p50 = statistics.median(times) * 1000
            print(f"round {n + 1}: signed alert answered {status} in {took:.3f} s; {args.healthz} /healthz: "
                  f"{dict(sorted(codes.items()))}, p50 {p50:.1f} ms")
            if archived_after is None and not any(spool.alerts_dir.glob("*.json")):
                archived_after = time.perf_counter() - up
            time.sleep(1)
        while archived_after is None:
            if not any(spool.alerts_dir.glob("*.json")):
                archived_after = time.perf_counter() - up
            time.sleep(0.1)
        print(f"old records moved to the archive within {archived_after:.1f} s of the start (in the background)")
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
