"""The receiver follows its runs: an alert about a key whose incident's run has ended opens a new incident.

Real components: the receiver under uvicorn spoken to over HTTP, `PrefectLauncher` against the
session's Prefect server, the first responder against the session's moto server. The deployment the
receiver launches is registered but served by no runner, so its runs stay Scheduled (alive) until a
test ends one through the Prefect client, as a crash or a cancel leaves it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from local_servers import Receiver, reply
from prefect_runs import read_run, set_state, unserved_deployment

from keyresponse.prefect_server import free_port
from keyresponse.receiver.app import create_app
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.launcher import PrefectLauncher
from keyresponse.receiver.spool import AlertSpool
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings

TOKEN = "runs-test-token"
EVENTBRIDGE_TOKEN = "runs-test-eventbridge-token"  # AWS's delivery: its alerts may be contained at once
ACCOUNT = "123456789012"  # moto's account
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def deployment(prefect_server: str) -> str:
    return unserved_deployment()


def guardduty(key: str, user: str, severity: float = 9.5) -> dict[str, Any]:
    """A GuardDuty finding (EventBridge envelope) about `key`, a new finding id each time."""
    finding, now = uuid.uuid4().hex, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    detail = {"schemaVersion": "2.0", "accountId": ACCOUNT, "region": "us-east-1", "partition": "aws",
              "id": finding, "arn": f"arn:aws:guardduty:us-east-1:{ACCOUNT}:detector/d0/finding/{finding}",
              "type": "CredentialAccess:IAMUser/AnomalousBehavior", "severity": severity, "createdAt": now,
              "updatedAt": now, "title": f"Anomalous API calls by IAMUser/{user}",
              "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                  "accessKeyId": key, "principalId": "AIDA" + "X" * 17, "userName": user, "userType": "IAMUser"}},
              "service": {"serviceName": "guardduty", "count": 1, "eventFirstSeen": now, "eventLastSeen": now}}
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": ACCOUNT, "time": now, "region": "us-east-1", "resources": [], "detail": detail}


def new_key() -> str:
    return f"AKIARUNS{uuid.uuid4().int % 10**12:012d}"


def receiver(spool: Path, deployment: str, **kwargs: Any) -> Receiver:
    config = WebhookSettings(bearer_token=TOKEN, eventbridge_token=EVENTBRIDGE_TOKEN, spool=spool,
                             launch_timeout_seconds=20)
    api_url = kwargs.pop("api_url", None)
    launcher = PrefectLauncher(deployment, api_url=api_url) if api_url else PrefectLauncher(deployment)
    return Receiver(create_app(config, launcher, **kwargs))


def post(url: str, route: str, payload: dict[str, Any], token: str = TOKEN) -> dict[str, Any]:
    response = httpx.post(f"{url}/alerts/{route}", json=payload, headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the case: a crashed run no longer swallows the key's alerts --------------------------------


@pytest.fixture
def first_responder(sandbox: MotoSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tasks.first_response import FirstResponder

    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
    get_settings.cache_clear()
    responder = FirstResponder()
    yield responder
    responder.close()
    get_settings.cache_clear()


def test_an_alert_about_a_key_whose_run_crashed_opens_a_new_incident_with_a_first_response(
        deployment: str, first_responder: Any, tmp_path: Path, unique_name: str) -> None:
    from tasks import first_response

    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    with receiver(tmp_path / "spool", deployment, first_responder=first_responder) as app:
        opened = post(app.url, "generic", {"access_key_id": key, "reason": "seen in a paste"})
        assert opened["status"] == "launched"
        set_state(opened["flow_run_id"], "Crashed")  # the run's process died; nobody responds any more

        answer = post(app.url, "guardduty", guardduty(key, unique_name, severity=9.5), token=EVENTBRIDGE_TOKEN)
        assert answer["status"] == "launched" and "duplicate_of" not in answer, answer
        assert answer["incident_id"] != opened["incident_id"]
        assert answer["flow_run_id"] != opened["flow_run_id"]
        assert answer["replaced"] == {"incident_id": opened["incident_id"], "flow_run_id": opened["flow_run_id"],
                                      "run_state": "Crashed"}
        assert read_run(answer["flow_run_id"]).state.type.value == "SCHEDULED"  # a new run, alive

        deadline = time.monotonic() + 30  # the first response runs in the receiver's worker threads
        outcome = first_response.read(answer["incident_id"])
        while (outcome is None or outcome["status"] == "pending") and time.monotonic() < deadline:
            time.sleep(0.1)
            outcome = first_response.read(answer["incident_id"])
        assert outcome is not None and outcome["status"] == "applied", outcome
        status = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]}
        assert status == {key: "Inactive"}

        # The key now belongs to the new incident, whose run is alive: the next alert joins it.
        joined = post(app.url, "generic", {"access_key_id": key, "reason": "again"})
        assert joined["duplicate_of"] == answer["incident_id"] and joined["flow_run_id"] == answer["flow_run_id"]
        assert joined["run_state"] in ("Scheduled", "Late")


def test_a_paused_run_keeps_its_key_and_a_cancelled_one_frees_it_for_the_same_alert_redelivered(
        deployment: str, tmp_path: Path) -> None:
    key, finding = new_key(), f"finding-{uuid.uuid4().hex[:8]}"  # ids of their own: a reused server keeps runs
    alert = {"access_key_id": key, "reason": "a redelivered finding", "alert_id": finding}
    with receiver(tmp_path / "spool", deployment) as app:
        first = post(app.url, "generic", alert)
        set_state(first["flow_run_id"], "Paused")  # waiting for an approval: alive
        again = post(app.url, "generic", alert)
        other = post(app.url, "generic", {"access_key_id": key, "reason": "another"})
        assert (again["status"], again["flow_run_id"], again["run_state"]) == ("redelivered", first["flow_run_id"],
                                                                             "Paused")
        assert (other["duplicate_of"], other["run_state"]) == (first["incident_id"], "Paused")

        set_state(first["flow_run_id"], "Cancelled")
        reopened = post(app.url, "generic", alert)  # the same alert: its incident ended, it opens generation 2
        assert reopened["status"] == "launched" and reopened["incident_id"] != first["incident_id"]
        assert reopened["replaced"]["run_state"] == "Cancelled"
        runs = [read_run(first["flow_run_id"]), read_run(reopened["flow_run_id"])]
        assert [r.idempotency_key for r in runs] == [f"generic:{finding}@gen1", f"generic:{finding}@gen2"]
        assert post(app.url, "generic", alert)["flow_run_id"] == reopened["flow_run_id"]  # answered from the spool
        joined = post(app.url, "generic", {"access_key_id": key, "reason": "later"})
        assert joined["duplicate_of"] == reopened["incident_id"]


def test_a_fresh_spool_is_never_answered_launched_with_an_ended_run(deployment: str, tmp_path: Path) -> None:
    key, lost = new_key(), f"lost-spool-{uuid.uuid4().hex[:8]}"
    alert = {"access_key_id": key, "reason": "the receiver's spool was lost", "alert_id": lost}
    with receiver(tmp_path / "old-spool", deployment) as app:
        before = post(app.url, "generic", alert)
    set_state(before["flow_run_id"], "Crashed")
    with receiver(tmp_path / "fresh-spool", deployment) as app:  # Prefect still holds the old run and its key
        after = post(app.url, "generic", alert)
    assert after["status"] == "launched", after
    assert after["flow_run_id"] != before["flow_run_id"] and after["incident_id"] != before["incident_id"]
    assert after["replaced"] == {"incident_id": before["incident_id"], "flow_run_id": before["flow_run_id"],
                                 "run_state": "Crashed"}
    assert read_run(before["flow_run_id"]).idempotency_key == f"generic:{lost}@gen1"
    assert read_run(after["flow_run_id"]).idempotency_key == f"generic:{lost}@gen2"
    assert read_run(after["flow_run_id"]).state.type.value == "SCHEDULED"
    spooled = AlertSpool(tmp_path / "fresh-spool").open_incidents(datetime.now(UTC))
    assert [(e.subject, e.incident_id) for e in spooled] == [(f"key:{key}", after["incident_id"])]


def test_alerts_arriving_together_about_a_crashed_runs_key_open_one_incident(deployment: str, tmp_path: Path) -> None:
    key = new_key()
    with receiver(tmp_path / "spool", deployment) as app:
        opened = post(app.url, "generic", {"access_key_id": key, "reason": "first"})
        set_state(opened["flow_run_id"], "Crashed")

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return list(await asyncio.gather(*(
                    client.post(f"{app.url}/alerts/generic", headers=AUTH,
                                json={"access_key_id": key, "reason": f"burst {i}"}) for i in range(6))))

        answers = [r.json() for r in asyncio.run(burst())]
    assert all(a["incident_id"] != opened["incident_id"] for a in answers), answers
    assert len({a["incident_id"] for a in answers}) == 1  # one new incident, one new run: the key's
    assert [a["status"] for a in answers].count("launched") == 1
    assert {a["flow_run_id"] for a in answers} == {next(a for a in answers if a["status"] == "launched")["flow_run_id"]}


# --- Prefect cannot be reached while checking ------------------------------------------------------------


class PrefectProxy:
    """Forwards to the session's Prefect API on a port of its own: `down()` closes the port (Prefect
    cannot be reached: connections are refused), `up()` listens on it again."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/api")
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def up(self) -> None:
        upstream = self.upstream

        class Forward(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                response = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=30)
                reply(self, response.status_code, response.content, response.headers.get("content-type", ""))

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Forward)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def test_when_prefect_cannot_be_reached_the_alert_stays_attached_and_the_answer_says_so(
        prefect_server: str, deployment: str, tmp_path: Path) -> None:
    key, tag = new_key(), uuid.uuid4().hex[:8]
    proxy = PrefectProxy(prefect_server)
    proxy.up()
    try:
        with receiver(tmp_path / "spool", deployment, api_url=proxy.api_url) as app:
            opened = post(app.url, "generic", {"access_key_id": key, "reason": "first", "alert_id": f"down-1-{tag}"})
            assert opened["status"] == "launched"
            proxy.down()
            set_state(opened["flow_run_id"], "Crashed")  # ended, but the receiver cannot know it now
            started = time.monotonic()
            kept = post(app.url, "generic", {"access_key_id": key, "reason": "second", "alert_id": f"down-2-{tag}"})
            assert time.monotonic() - started < 4  # answered in time (EventBridge waits 5 s)
            assert (kept["status"], kept["duplicate_of"]) == ("duplicate", opened["incident_id"])
            assert kept["flow_run_id"] == opened["flow_run_id"] and "run_state" not in kept
            assert "could not read the state of flow run" in kept["warning"]
            assert f"attached to {opened['incident_id']}" in kept["warning"]
            spool = AlertSpool(tmp_path / "spool")
            spooled = spool.find_id("generic", f"down-2-{tag}")
            assert spooled is not None and spooled.duplicate_of == opened["incident_id"]  # never dropped
            assert [e.incident_id for e in spool.open_incidents(datetime.now(UTC))] == [opened["incident_id"]]

            proxy.up()  # Prefect is back: the next alert finds the run ended and opens a new incident
            reopened = post(app.url, "generic", {"access_key_id": key, "reason": "third", "alert_id": f"down-3-{tag}"})
            assert reopened["status"] == "launched" and reopened["replaced"]["run_state"] == "Crashed"
            assert reopened["incident_id"] != opened["incident_id"]
    finally:
        proxy.down()
