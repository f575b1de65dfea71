"""The receiver's spool under damage and load, with the receiver running for real under uvicorn on
127.0.0.1 and spoken to over HTTP. The Prefect side is a `Launcher` that records its calls.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from local_servers import Receiver

from keyresponse.alerts import Alert
from keyresponse.webhook import (
    AlertSpool,
    LaunchResult,
    OpenIncident,
    SpoolRecord,
    WebhookSettings,
    create_app,
    sign,
)

SECRET = "spool-test-hmac-secret-0123456789"
_keys = itertools.count(1)


def new_key() -> str:
    return f"AKIASPOOL{next(_keys):011d}"


@dataclass
class RecordingLauncher:
    """A `Launcher` that records the alerts it is asked to run and answers with a run id."""

    calls: list[Alert] = field(default_factory=list)

    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult:
        self.calls.append(alert)
        return LaunchResult(flow_run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key)), ui_url=None)


def generic_alert(key: str, alert_id: str | None = None) -> Alert:
    return Alert(source="generic", alert_id=alert_id or f"spool-{key}", access_key_id=key,
                 observed_at=datetime.now(UTC), severity="high", high_confidence=False,
                 title="Manual alert: spool test", raw={"access_key_id": key, "reason": "spool test"})


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- H3: a leftover temporary file or a corrupt record stops nothing -----------------------------------


def test_a_leftover_temp_file_and_corrupt_spool_files_never_stop_health_relaunch_or_intake(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = AlertSpool(tmp_path / "spool")
    waiting = generic_alert(new_key())  # spooled by an earlier receiver that never got it a run
    spool.save(SpoolRecord(alert=waiting, incident_id=waiting.incident_id,
                           idempotency_key=waiting.launch_key(1), received_at=datetime.now(UTC)))
    # What a receiver killed mid-write leaves, and files damaged on disk:
    (spool.alerts_dir / ".tmp-k2j4h6.json").write_bytes(b'{"alert": {"source": "gen')
    (spool.open_dir).mkdir(parents=True)
    (spool.open_dir / ".tmp-9x8y7z.json").write_bytes(b"")
    corrupt_record = spool.alerts_dir / "generic-0123456789abcdef01234567.json"
    corrupt_record.write_bytes(b"\x00\x00 not json")
    stranger = spool.alerts_dir / "guardduty-ffffffffffffffffffffffff.json"
    stranger.write_text('{"alert": {"source": "guardduty"}, "incident_id": 7}')
    held_key = new_key()  # its open-incident entry is damaged: an alert about it must still get in
    corrupt_open = spool.open_dir / f"{hashlib.sha256(f'key:{held_key}'.encode()).hexdigest()[:24]}.json"
    corrupt_open.write_text('{"subject": ')
    folder_named_like_a_record = spool.alerts_dir / "health-aaaaaaaaaaaaaaaaaaaaaaaa.json"
    folder_named_like_a_record.mkdir()

    launcher = RecordingLauncher()
    config = WebhookSettings(secret=SECRET, spool=tmp_path / "spool")
    caplog.set_level(logging.WARNING, logger="keyresponse.webhook")
    with Receiver(create_app(config, launcher, relaunch_every=0.05)) as receiver, httpx.Client(timeout=10) as http:
        health = http.get(f"{receiver.url}/healthz")
        assert health.status_code == 200, health.text
        assert wait_for(lambda: [a.access_key_id for a in launcher.calls] == [waiting.access_key_id]), \
            "the relaunch pass stopped at a bad file"

        body = f'{{"access_key_id": "{held_key}", "reason": "its open entry was damaged"}}'.encode()
        answer = http.post(f"{receiver.url}/alerts/generic", content=body,
                           headers={"X-Keyresponse-Signature": sign(body, SECRET)})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "launched" and "duplicate_of" not in answer.json()
        assert http.get(f"{receiver.url}/healthz").status_code == 200

    assert not list(spool.alerts_dir.glob(".tmp-*")) and not list(spool.open_dir.glob(".tmp-*"))
    for bad in (corrupt_record, stranger, folder_named_like_a_record):
        assert not bad.exists(), f"{bad} is still in the spool"
    quarantined = sorted(p.name.rsplit(".", 1)[0] for p in spool.quarantine_dir.iterdir())
    assert quarantined == sorted([f"alerts-{corrupt_record.name}", f"alerts-{stranger.name}",
                                  f"alerts-{folder_named_like_a_record.name}", f"open-{corrupt_open.name}"])
    moved = next(spool.quarantine_dir.glob(f"alerts-{corrupt_record.name}.*"))
    assert moved.read_bytes() == b"\x00\x00 not json"  # kept as it was, for whoever looks into it
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(corrupt_record) in m and "moved to" in m for m in errors), errors
    assert any("temporary file" in r.getMessage() for r in caplog.records)
    assert spool.pending() == []
    entry = spool.open_incident(f"key:{held_key}", datetime.now(UTC))
    assert isinstance(entry, OpenIncident) and entry.incident_id == answer.json()["incident_id"]
