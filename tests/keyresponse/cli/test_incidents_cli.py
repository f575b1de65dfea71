"""`keyresponse incidents` and `keyresponse release KEY` as a responder runs them: real processes, on the
spool of a real receiver (under uvicorn, over HTTP) that launched its runs on the session's Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_servers import Receiver
from prefect_runs import read_run, set_state, unserved_deployment

from keyresponse.prefect_server import free_port
from keyresponse.receiver.app import create_app
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.launcher import PrefectLauncher

TOKEN = "incidents-cli-token"


def run_cli(*args: str, spool: Path, api_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYRESPONSE_WEBHOOK_SPOOL": str(spool)}
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run([sys.executable, "-m", "keyresponse", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def new_key() -> str:
    return f"AKIACLI0{uuid.uuid4().int % 10**12:012d}"


class Stack:
    def __init__(self, url: str, spool: Path) -> None:
        self.url, self.spool = url, spool

    def alert(self, key: str, reason: str) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/alerts/generic", json={"access_key_id": key, "reason": reason},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def stack(prefect_server: str, tmp_path: Path) -> Iterator[Stack]:
    config = WebhookSettings(bearer_token=TOKEN, spool=tmp_path / "spool")
    with Receiver(create_app(config, PrefectLauncher(unserved_deployment()))) as receiver:
        yield Stack(receiver.url, tmp_path / "spool")


def test_incidents_lists_each_open_incident_with_its_run_state(stack: Stack) -> None:
    alive_key, crashed_key = new_key(), new_key()
    alive, crashed = stack.alert(alive_key, "alive"), stack.alert(crashed_key, "will crash")
    set_state(crashed["flow_run_id"], "Crashed")

    listed = run_cli("incidents", "--json", spool=stack.spool)
    assert listed.returncode == 0, listed.stderr
    rows = {row["incident_id"]: row for row in json.loads(listed.stdout)["incidents"]}
    assert set(rows) == {alive["incident_id"], crashed["incident_id"]}
    assert rows[alive["incident_id"]]["subjects"] == [f"key:{alive_key}"]
    assert rows[alive["incident_id"]]["flow_run_id"] == alive["flow_run_id"]
    assert rows[alive["incident_id"]]["run_state"] in ("Scheduled", "Late")
    assert rows[alive["incident_id"]]["terminal"] is False
    assert (rows[crashed["incident_id"]]["run_state"], rows[crashed["incident_id"]]["terminal"]) == ("Crashed", True)
    assert "next alert about the key opens a new incident" in rows[crashed["incident_id"]]["note"]
    assert rows[crashed["incident_id"]]["generation"] == 1

    text = run_cli("incidents", spool=stack.spool)
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith(crashed["incident_id"]))
    assert f"key:{crashed_key}" in line and "Crashed" in line and crashed["flow_run_id"] in line
    assert "2 open incident(s)" in text.stdout


def test_incidents_says_when_prefect_cannot_be_reached(stack: Stack) -> None:
    opened = stack.alert(new_key(), "prefect down")
    down = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    listed = run_cli("incidents", "--json", spool=stack.spool, api_url=down)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)["incidents"]
    assert (row["incident_id"], row["flow_run_id"], row["run_state"]) == (opened["incident_id"],
                                                                          opened["flow_run_id"], None)
    assert "could not read the run's state from Prefect" in row["note"]


def test_release_frees_the_key_and_the_next_alert_opens_a_new_incident(stack: Stack) -> None:
    key = new_key()
    opened = stack.alert(key, "stuck: its run hangs in Running after the host died")
    assert stack.alert(key, "attached")["duplicate_of"] == opened["incident_id"]

    released = run_cli("release", key, spool=stack.spool)
    assert released.returncode == 0, released.stderr
    assert f"released {key} from incident {opened['incident_id']}" in released.stdout
    after = stack.alert(key, "seen again after the release")
    assert after["status"] == "launched" and "duplicate_of" not in after
    assert after["incident_id"] != opened["incident_id"] and after["flow_run_id"] != opened["flow_run_id"]
    assert read_run(opened["flow_run_id"]).state.type.value == "SCHEDULED"  # the old run is left as it is

    listed = json.loads(run_cli("incidents", "--json", spool=stack.spool).stdout)["incidents"]
    assert [(r["incident_id"], r["subjects"]) for r in listed] == [(after["incident_id"], [f"key:{key}"])]
    other = new_key()
    nothing = json.loads(run_cli("release", other, "--json", spool=stack.spool).stdout)
    assert nothing == {"access_key_id": other, "released": False, "incident_id": None}
    bad = run_cli("release", "not-a-key", spool=stack.spool)
    assert bad.returncode == 2 and "is not an AWS access key id" in bad.stderr
