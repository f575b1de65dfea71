"""The alert receiver, running for real under uvicorn on 127.0.0.1, spoken to over HTTP.

The Prefect side is `RecordingLauncher`, a real `Launcher` that records its calls (the response
deployment does not exist yet); one test runs `PrefectLauncher` against a real Prefect server.
GitHub's REST API is a small HTTP server of ours on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_servers import FakeGitHub, Receiver

from keyresponse.alerts import Alert
from keyresponse.receiver.app import create_app
from keyresponse.receiver.auth import sign, sign_github
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.intake import relaunch_pending
from keyresponse.receiver.launcher import DeploymentUnavailable, LaunchResult, PrefectLauncher
from keyresponse.receiver.spool import AlertSpool
from keyresponse.sandbox.alerts import write_alerts
from keyresponse.sandbox.scenarios import SCENARIOS

SECRET = "test-hmac-secret"
TOKEN = "test-bearer-token"
GITHUB_SECRET = "test-github-secret"
GITHUB_TOKEN = "ghp_test_token"
ACCOUNT = "123456789012"
_keys = itertools.count(1)


def new_key() -> str:
    """An access key id no other test uses (the app and its spool are shared by the module)."""
    return f"AKIATEST{next(_keys):012d}"


# --- test doubles -------------------------------------------------------------------------------


@dataclass
class LaunchCall:
    alert: Alert
    incident_id: str
    idempotency_key: str


@dataclass
class RecordingLauncher:
    """A `Launcher` that records calls and answers like Prefect's idempotency key does."""

    calls: list[LaunchCall] = field(default_factory=list)
    unavailable: bool = False
    delay: float = 0.0
    runs: dict[str, str] = field(default_factory=dict)

    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult:
        if self.unavailable:
            raise DeploymentUnavailable("deployment 'respond-to-exposed-key/respond-to-exposed-key' does not exist yet")
        await asyncio.sleep(self.delay)
        self.calls.append(LaunchCall(alert, incident_id, idempotency_key))
        run_id = self.runs.setdefault(idempotency_key, str(uuid.uuid4()))
        return LaunchResult(flow_run_id=run_id, ui_url=f"http://127.0.0.1:4200/runs/flow-run/{run_id}")

    def keys(self) -> list[str | None]:
        return [c.alert.access_key_id for c in self.calls]


@dataclass
class Stack:
    url: str
    launcher: RecordingLauncher
    github: FakeGitHub
    spool: AlertSpool
    http: httpx.Client

    def post(self, route: str, payload: Any, *, auth: str = "hmac", raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"}
        if auth == "hmac":
            sent["X-Keyresponse-Signature"] = sign(body, SECRET)
        elif auth == "bearer":
            sent["Authorization"] = f"Bearer {TOKEN}"
        elif auth == "github":
            sent.update({"X-Hub-Signature-256": sign_github(body, GITHUB_SECRET),
                         "X-GitHub-Event": "secret_scanning_alert"})
        sent.update(headers or {})
        return self.http.post(f"{self.url}/alerts/{route}", content=body, headers=sent)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    spool_dir = tmp_path_factory.mktemp("spool")
    launcher = RecordingLauncher()
    with FakeGitHub() as github:
        config = WebhookSettings(secret=SECRET, bearer_token=TOKEN, github_secret=GITHUB_SECRET,
                                 github_token=GITHUB_TOKEN, github_api_url=github.url, spool=spool_dir,
                                 launch_timeout_seconds=5)
        with Receiver(create_app(config, launcher)) as receiver, httpx.Client(timeout=10) as http:
            yield Stack(receiver.url, launcher, github, AlertSpool(spool_dir), http)


def simulator_alerts(folder: Path, key: str, scenario: str = "pivot-chain") -> dict[str, Any]:
    truth = {"account_id": ACCOUNT, "compromised_access_key_id": key, "attacker_ips": ["45.134.26.19"],
             "window": {"start": "2026-11-27T19:00:22Z", "end": "2026-11-27T19:03:13Z"},
             "owner": {"user_name": SCENARIOS[scenario].victim}}
    write_alerts(folder, truth, SCENARIOS[scenario], seed=next(_keys))
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


# --- accepted alerts ------------------------------------------------------------------------------


def test_healthz_answers(stack: Stack) -> None:
    response = stack.http.get(f"{stack.url}/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_generic_alert_with_bearer_token_is_spooled_then_launched(stack: Stack) -> None:
    key, before = new_key(), len(stack.launcher.calls)
    response = stack.post("generic", {"access_key_id": key, "reason": "seen in a pastebin"}, auth="bearer")
    assert response.status_code == 202, response.text
    body = response.json()
    call = stack.launcher.calls[before]
    assert call.alert.access_key_id == key
    assert call.idempotency_key == f"generic:{body['alert_id']}@gen1"  # the incident generation: 1, its first
    assert body["incident_id"] == call.incident_id == call.alert.incident_id
    assert body["flow_run_id"] == stack.launcher.runs[call.idempotency_key]
    assert body["ui_url"].endswith(body["flow_run_id"])
    spooled = stack.spool.find(call.alert)
    assert spooled is not None and spooled.flow_run_id == body["flow_run_id"]


@pytest.mark.parametrize("source", ["guardduty", "health", "generic"])
def test_signed_simulator_alert_is_accepted(stack: Stack, source: str, tmp_path: Path) -> None:
    key = new_key()
    response = stack.post(source, simulator_alerts(tmp_path, key)[source])
    assert response.status_code == 202, response.text
    assert stack.launcher.calls[-1].alert.access_key_id == key
    assert stack.launcher.calls[-1].alert.source == source


def test_same_alert_delivered_twice_maps_to_one_incident_and_one_launch(stack: Stack, tmp_path: Path) -> None:
    payload = simulator_alerts(tmp_path, new_key())["guardduty"]
    before = len(stack.launcher.calls)
    first = stack.post("guardduty", payload)
    again = stack.post("guardduty", payload)
    assert first.status_code == again.status_code == 202
    assert again.json()["incident_id"] == first.json()["incident_id"]
    assert again.json()["flow_run_id"] == first.json()["flow_run_id"]
    assert again.json()["status"] == "redelivered"
    assert len(stack.launcher.calls) == before + 1


def test_second_alert_about_an_open_key_is_attached_to_its_incident(stack: Stack, tmp_path: Path) -> None:
    key = new_key()
    payloads = simulator_alerts(tmp_path, key)
    before = len(stack.launcher.calls)
    opened = stack.post("health", payloads["health"]).json()
    attached = stack.post("guardduty", payloads["guardduty"])
    assert attached.status_code == 202
    body = attached.json()
    assert body["incident_id"] == body["duplicate_of"] == opened["incident_id"]
    assert body["flow_run_id"] == opened["flow_run_id"]
    assert body["alert_id"] != opened["alert_id"]
    assert stack.launcher.keys()[before:] == [key]


def test_concurrent_alerts_about_one_key_start_one_run(stack: Stack, tmp_path: Path) -> None:
    payloads = simulator_alerts(tmp_path, new_key())
    before = len(stack.launcher.calls)
    stack.launcher.delay = 0.2  # the first launch is still running when the others arrive

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            async def post(route: str) -> httpx.Response:
                body = json.dumps(payloads[route]).encode()
                return await client.post(f"{stack.url}/alerts/{route}", content=body,
                                         headers={"X-Keyresponse-Signature": sign(body, SECRET)})
            return list(await asyncio.gather(*(post(r) for r in ("guardduty", "health", "generic"))))

    try:
        responses = asyncio.run(fire())
    finally:
        stack.launcher.delay = 0.0
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert len({r.json()["incident_id"] for r in responses}) == 1
    assert sum("duplicate_of" in r.json() for r in responses) == 2
    assert len(stack.launcher.calls) == before + 1


def test_missing_deployment_answers_503_and_the_spooled_alert_is_launched_later(stack: Stack) -> None:
    key, before = new_key(), len(stack.launcher.calls)
    payload = {"access_key_id": key, "reason": "deployment race"}
    stack.launcher.unavailable = True
    try:
        response = stack.post("generic", payload)
    finally:
        stack.launcher.unavailable = False
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "deployment_not_found"
    pending = stack.spool.pending()
    assert [r.alert.access_key_id for r in pending] == [key]
    assert len(stack.launcher.calls) == before

    relaunched = asyncio.run(relaunch_pending(stack.spool, stack.launcher))  # what a restart does
    assert [a.alert.access_key_id for a in relaunched] == [key]
    assert stack.spool.pending() == []
    again = stack.post("generic", payload)  # the sender's retry now finds the run
    assert again.status_code == 202 and again.json()["flow_run_id"] == relaunched[0].flow_run_id
    assert stack.launcher.keys()[before:] == [key]


def test_receiver_keeps_launching_spooled_alerts_nobody_redelivers(tmp_path: Path) -> None:
    config = WebhookSettings(bearer_token=TOKEN, spool=tmp_path / "spool")
    launcher = RecordingLauncher(unavailable=True)
    key = new_key()
    with Receiver(create_app(config, launcher, relaunch_every=0.05)) as receiver:
        response = httpx.post(f"{receiver.url}/alerts/generic", json={"access_key_id": key, "reason": "once"},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert response.status_code == 503
        launcher.unavailable = False  # the deployment appears; the sender never retries
        deadline = time.monotonic() + 5
        while not launcher.calls and time.monotonic() < deadline:
            time.sleep(0.05)
    assert launcher.keys() == [key]
    assert AlertSpool(tmp_path / "spool").pending() == []


def test_closed_incident_frees_its_key_for_a_new_incident(stack: Stack) -> None:
    key = new_key()
    first = stack.post("generic", {"access_key_id": key, "reason": "first exposure"}).json()
    assert stack.spool.close_incident(first["incident_id"]) == 1
    second = stack.post("generic", {"access_key_id": key, "reason": "exposed again next month"}).json()
    assert second["incident_id"] != first["incident_id"] and "duplicate_of" not in second


# --- GitHub -----------------------------------------------------------------------------------------


def test_github_alert_fetches_the_key_from_the_rest_api(stack: Stack, tmp_path: Path) -> None:
    key = new_key()
    payload = simulator_alerts(tmp_path, key)["github"]
    number = payload["alert"]["number"] + 1000 * next(_keys)
    payload["alert"]["number"] = number
    path = stack.github.holds(payload, key)
    assert path == f"/repos/acme-corp/billing-service/secret-scanning/alerts/{number}"
    response = stack.post("github", payload, auth="github")
    assert response.status_code == 202, response.text
    assert response.json()["alert_id"] == f"acme-corp/billing-service#{number}"
    assert stack.launcher.calls[-1].alert.access_key_id == key
    assert (path, f"Bearer {GITHUB_TOKEN}") in stack.github.requests
    fetched, launches = len(stack.github.requests), len(stack.launcher.calls)
    again = stack.post("github", payload, auth="github")  # GitHub's redelivery: the key comes from the spool
    assert again.status_code == 202, again.text
    assert (again.json()["status"], again.json()["flow_run_id"]) == ("redelivered", response.json()["flow_run_id"])
    assert (len(stack.github.requests), len(stack.launcher.calls)) == (fetched, launches)


def test_github_alert_unknown_to_the_api_is_422(stack: Stack, tmp_path: Path) -> None:
    payload = simulator_alerts(tmp_path, new_key())["github"]
    payload["alert"]["number"] = 999_999
    before = len(stack.launcher.calls)
    response = stack.post("github", payload, auth="github")
    assert response.status_code == 422
    assert "no secret-scanning alert acme-corp/billing-service#999999" in response.json()["detail"]
    assert len(stack.launcher.calls) == before


def test_github_alert_about_another_secret_type_is_ignored(stack: Stack) -> None:
    payload = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "alerts" /
                          "github_secret_scanning_alert_reopened.octokit.json").read_text())
    before = len(stack.launcher.calls)
    response = stack.post("github", payload, auth="github")
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert "adafruit_io_key" in response.json()["detail"]
    assert len(stack.launcher.calls) == before


def test_github_route_needs_githubs_signature(stack: Stack, tmp_path: Path) -> None:
    payload = simulator_alerts(tmp_path, new_key())["github"]
    assert stack.post("github", payload, auth="hmac").status_code == 401
    bad = stack.post("github", payload, auth="none", headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert bad.status_code == 401 and bad.json()["error"] == "bad_signature"
    ping = stack.post("github", {"zen": "Keep it logically awesome."}, auth="github", headers={"X-GitHub-Event": "ping"})
    assert ping.status_code == 200 and ping.json()["status"] == "pong"


# --- rejected input -------------------------------------------------------------------------------


def test_bad_signature_is_401_and_launches_nothing(stack: Stack) -> None:
    before = len(stack.launcher.calls)
    payload = {"access_key_id": new_key(), "reason": "x"}
    body = json.dumps(payload).encode()
    forged = stack.post("generic", payload, auth="none",
                        headers={"X-Keyresponse-Signature": sign(body, "not-the-secret")})
    tampered = stack.post("generic", payload, auth="none",
                          headers={"X-Keyresponse-Signature": sign(body + b" ", SECRET)})
    garbled = stack.post("generic", payload, auth="none", headers={"X-Keyresponse-Signature": "v1=abc"})
    missing = stack.post("generic", payload, auth="none")
    wrong_token = stack.post("generic", payload, auth="none", headers={"Authorization": "Bearer nope"})
    for response, error in [(forged, "bad_signature"), (tampered, "bad_signature"), (garbled, "bad_signature"),
                            (missing, "missing_credentials"), (wrong_token, "bad_token")]:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == error
    assert len(stack.launcher.calls) == before


def test_replayed_signature_outside_the_window_is_401(stack: Stack) -> None:
    before = len(stack.launcher.calls)
    body = json.dumps({"access_key_id": new_key(), "reason": "replay"}).encode()
    old = sign(body, SECRET, timestamp=int(time.time()) - 301)
    response = stack.post("generic", None, raw=body, auth="none", headers={"X-Keyresponse-Signature": old})
    assert response.status_code == 401
    assert response.json()["error"] == "stale_signature"
    assert "outside the 300 s replay window" in response.json()["detail"]
    assert len(stack.launcher.calls) == before


def test_oversized_body_is_413_before_parsing(stack: Stack) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    response = stack.post("generic", None, raw=body, auth="bearer")
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


@pytest.mark.parametrize(("raw", "detail"), [
    (b"{not json", "body is not valid JSON"),
    (b"\xff\xfe", "body is not UTF-8 text"),
    (b"[1, 2]", "body must be a JSON object, got list"),
    (b"", "body is not valid JSON"),
])
def test_malformed_json_is_400(stack: Stack, raw: bytes, detail: str) -> None:
    response = stack.post("guardduty", None, raw=raw)
    assert response.status_code == 400
    assert response.json() == {"error": "malformed_json", "detail": response.json()["detail"]}
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(("route", "payload", "detail"), [
    ("generic", {"access_key_id": 12345, "reason": "x"}, "access_key_id: Input should be a valid string"),
    ("generic", {"access_key_id": "AKIA-not-a-key", "reason": "x"}, "'AKIA-not-a-key' is not an AWS access key id"),
    ("guardduty", {"source": "aws.guardduty", "detail": {"type": "x", "severity": "high"}},
     "detail.resource is missing"),
    ("health", {"source": "aws.guardduty", "detail": {}}, "post it to /alerts/guardduty"),
    ("cloudtrail", {"eventSource": "iam.amazonaws.com"}, "eventName is missing"),
    ("securityhub", {"detail": {"findings": "all"}}, "detail.findings must be a JSON array, got a string"),
])
def test_wrong_types_and_unknown_key_formats_are_422(stack: Stack, route: str, payload: Any, detail: str) -> None:
    before = len(stack.launcher.calls)
    response = stack.post(route, payload)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_alert"
    assert detail in response.json()["detail"]
    assert len(stack.launcher.calls) == before


def test_unknown_route_and_method_are_json_errors(stack: Stack) -> None:
    missing = stack.http.post(f"{stack.url}/alerts/pagerduty", content=b"{}")
    wrong = stack.http.get(f"{stack.url}/alerts/generic")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


ROUTES = ["guardduty", "health", "github", "securityhub", "cloudtrail", "generic"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
near_miss = st.fixed_dictionaries({}, optional={
    "access_key_id": st.sampled_from(["AKIA", "AKIAIOSFODNN7EXAMPL", "akiaiosfodnn7example", "ASIA" + "é" * 16]),
    "reason": st.text(max_size=5), "source": st.sampled_from(["aws.guardduty", "aws.health", "aws.iam"]),
    "detail": json_values, "action": st.sampled_from(["created", "resolved"]), "alert": json_values,
    "repository": json_values, "eventName": st.just("AttachUserPolicy"), "requestParameters": json_values,
})
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_miss.map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_random_bodies_never_500_and_never_launch(stack: Stack, route: str, body: bytes) -> None:
    before = len(stack.launcher.calls)
    response = stack.post(route, None, raw=body, auth="github" if route == "github" else "hmac")
    assert response.status_code < 500, response.text
    assert set(response.json()) >= {"error", "detail"} or response.json().get("status") in {"pong", "ignored"}
    assert response.status_code != 202
    assert len(stack.launcher.calls) == before


# --- the real Prefect side ------------------------------------------------------------------------


def test_prefect_launcher_answers_503_when_the_deployment_does_not_exist(prefect_server: str, tmp_path: Path) -> None:
    config = WebhookSettings(bearer_token=TOKEN, spool=tmp_path / "spool", prefect_ui_url=None)
    launcher = PrefectLauncher("respond-to-exposed-key/no-such-deployment")
    key = new_key()
    with Receiver(create_app(config, launcher)) as receiver:
        response = httpx.post(f"{receiver.url}/alerts/generic", json={"access_key_id": key, "reason": "race"},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "deployment_not_found"
    assert "respond-to-exposed-key/no-such-deployment" in response.json()["detail"]
    pending = AlertSpool(tmp_path / "spool").pending()
    assert [copy.copy(r.alert.access_key_id) for r in pending] == [key]


# --- a slow launcher: answer in time, launch in the background --------------------------------------


def test_a_slow_launch_is_answered_in_time_and_finished_in_the_background(tmp_path: Path) -> None:
    config = WebhookSettings(bearer_token=TOKEN, spool=tmp_path / "spool", answer_within_seconds=0.3,
                             launch_timeout_seconds=10)
    launcher = RecordingLauncher(delay=1.5)
    key = new_key()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Receiver(create_app(config, launcher)) as receiver, httpx.Client(timeout=10) as http:
        def send(alert_id: str, reason: str = "slow") -> tuple[float, httpx.Response]:
            started = time.monotonic()
            answer = http.post(f"{receiver.url}/alerts/generic", headers=auth,
                               json={"access_key_id": key, "reason": reason, "alert_id": alert_id})
            return time.monotonic() - started, answer

        took, first = send("slow-1")
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "launching" and first.json()["flow_run_id"] is None
        assert took < 1.5  # answered before the launch finished (a bound, not a speed goal)
        _, again = send("slow-1")  # redelivered while the launch is in flight: no second launch
        _, other = send("slow-2", "another alert about the same key")
        assert again.json()["incident_id"] == other.json()["incident_id"] == first.json()["incident_id"]
        assert other.json()["status"] == "duplicate"
        deadline = time.monotonic() + 10
        spool = AlertSpool(tmp_path / "spool")
        while spool.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spool.pending() == []
        _, later = send("slow-1")
    assert len(launcher.calls) == 1
    assert later.json()["status"] == "redelivered"
    assert later.json()["flow_run_id"] == launcher.runs[launcher.calls[0].idempotency_key]
