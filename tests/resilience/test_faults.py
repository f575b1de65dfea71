"""Faults against the running system: AWS down mid-containment, throttling, Prefect and receiver restarts.

(a) IAM answers 503 from the middle of containment on (the sandbox's `fail_after`): the run fails
    visibly, the ledger holds exactly what was applied, and a rerun converges with no duplicate.
(b) The Prefect server restarts (same port, same SQLite home) while a run waits for approval: the
    paused run survives, the approval given after the restart is applied.
(c) The receiver restarts: alerts accepted while the launcher was down are spooled, and the next
    receiver launches each exactly once.
(d) ThrottlingException on 30% of IAM calls: full response runs still complete.

The AWS faults use a sandbox of this module's own (faults are per moto server), never the session's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_servers import Receiver

from keyresponse.alerts import Alert, normalize
from keyresponse.approval import answer_pause
from keyresponse.incident import minimal_investigation
from keyresponse.ledger import Ledger
from keyresponse.prefect_server import PrefectServer, free_port
from keyresponse.receiver.app import create_app
from keyresponse.receiver.auth import sign
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.launcher import DeploymentUnavailable, LaunchResult
from keyresponse.receiver.spool import AlertSpool
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount, seed_account
from keyresponse.sandbox.server import admin_client
from keyresponse.sandbox.simulate import run_simulation
from keyresponse.settings import get_settings

pytestmark = pytest.mark.slow  # faults and retries against running servers: minutes in all

ROOT = Path(__file__).resolve().parents[2]
EARLY = ["deactivate_access_key", "attach_session_revocation_policy", "tag_principal"]


@dataclass
class World:
    box: MotoSandbox
    account: SeededAccount
    home: Path
    counter: int = 0

    def victim(self) -> tuple[str, str]:
        self.counter += 1
        name = f"fault-victim-{self.counter}-{uuid.uuid4().hex[:6]}"
        iam = admin_client(self.box.endpoint, "iam")
        iam.create_user(UserName=name)
        return name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]

    def key_status(self, user: str, key: str) -> str:
        metas = admin_client(self.box.endpoint, "iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
        return {m["AccessKeyId"]: m["Status"] for m in metas}.get(key, "deleted")

    def investigation(self, user: str, key: str) -> dict[str, Any]:
        arn = f"arn:aws:iam::{self.account.account_id}:user/{user}"
        return minimal_investigation(**{
            "access_key_id": key, "account_id": self.account.account_id, "principal_arn": arn,
            "credentials": [{"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
                             "principal_arn": arn}],
            "persistence": [], "resources_created": [], "regions": []})


@pytest.fixture(scope="module")
def world(prefect_server: str, sandbox: MotoSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # `sandbox` (unused here) first: the session sandbox exports its AWS_* variables when it starts, and
    # a start during this module would be undone by the restore below, leaving later tests without them.
    saved = dict(os.environ)
    folder = tmp_path_factory.mktemp("faults")
    with MotoSandbox() as box:
        account = seed_account(box)
        run_simulation(scenario="pivot-chain", out=folder / "logs", events=300, sandbox=box, processes=1)
        os.environ.update(box.env())
        os.environ.update({
            "AWS_ACCESS_KEY_ID": account.responder.access_key_id,
            "AWS_SECRET_ACCESS_KEY": account.responder.secret_access_key,
            "KEYRESPONSE_HOME": str(folder / "home"), "KEYRESPONSE_CLOUDTRAIL_LOGS": str(folder / "logs"),
            "KEYRESPONSE_PROTECTED_PRINCIPALS": json.dumps(account.protected_principals),
            "KEYRESPONSE_APPROVAL_POLL_SECONDS": "1", "KEYRESPONSE_AWS_MAX_ATTEMPTS": "2",
        })
        os.environ.pop("KEYRESPONSE_EVIDENCE_BUCKET", None)
        get_settings.cache_clear()
        try:
            yield World(box, account, folder / "home")
        finally:
            box.inject_faults()
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()


class _TripOn:
    """A botocore hook that makes IAM answer 503 from the next call on, the first time `event` fires."""

    def __init__(self, box: MotoSandbox) -> None:
        self.box = box
        self.tripped = False

    def __call__(self, **_: Any) -> None:
        if not self.tripped:
            self.tripped = True
            calls = int(self.box.call_extension("GET", "faults")["calls"].get("iam", 0))
            self.box.inject_faults(service="iam", fail_after=calls)


def _arm(monkeypatch: pytest.MonkeyPatch, event: str, trip: _TripOn) -> None:
    """Every `Clients` the response tasks make carries the hook (the tasks run in this process)."""
    import tasks.response
    from tasks.actions import Clients

    class TrippingClients(Clients):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.register(event, trip)

    monkeypatch.setattr(tasks.response, "Clients", TrippingClients)


def _contain(incident: str, investigation: dict[str, Any]) -> Any:
    from flows.containment import containment

    return containment(incident, investigation, dry_run=False, approval=False, only=EARLY, return_state=True)


def _ledger_keys(incident: str, home: Path) -> list[tuple[str, str]]:
    return [(e.action, e.target["id"]) for e in Ledger(incident, home).applied()]


def _revocation_policies(world: World, user: str) -> list[str]:
    names = admin_client(world.box.endpoint, "iam").list_user_policies(UserName=user)["PolicyNames"]
    return [n for n in names if n.startswith("keyresponse-revoke-sessions-")]


def test_iam_down_mid_containment_fails_visibly_and_a_rerun_converges(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    user, key = world.victim()
    incident = f"inc-fault-a-{uuid.uuid4().hex[:6]}"
    investigation = world.investigation(user, key)
    trip = _TripOn(world.box)
    _arm(monkeypatch, "before-call.iam.PutUserPolicy", trip)  # the 2nd step's write: IAM goes down
    world.box.inject_faults()
    try:
        state = _contain(incident, investigation)
        injected = world.box.call_extension("GET", "faults")["injected"].get("iam", 0)
    finally:
        world.box.inject_faults()
    assert trip.tripped and injected >= 1
    assert state.is_failed(), state
    assert "503" in str(state.message) or "Unavailable" in str(state.message) or state.is_failed()
    # the ledger holds exactly what was applied: the key deactivation, not the policy that never got written
    assert _ledger_keys(incident, world.home) == [("deactivate_access_key", key)]
    assert world.key_status(user, key) == "Inactive"
    assert _revocation_policies(world, user) == []

    monkeypatch.undo()
    state = _contain(incident, investigation)
    assert state.is_completed(), state
    assert state.result()["status"] == "applied"
    entries = _ledger_keys(incident, world.home)
    assert sorted(entries) == sorted({(a, t) for a, t in entries}), f"duplicate ledger entries: {entries}"
    assert {a for a, _ in entries} == set(EARLY)
    assert _revocation_policies(world, user) != []
    again = _contain(incident, investigation)
    assert again.is_completed() and again.result()["status"] == "nothing_to_do"
    assert _ledger_keys(incident, world.home) == entries

    from typer.testing import CliRunner

    from keyresponse.cli import app

    verified = CliRunner().invoke(app, ["verify-evidence", incident])
    assert verified.exit_code == 0, verified.output


def test_change_applied_just_before_iam_goes_down_is_in_the_ledger(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    user, key = world.victim()
    incident = f"inc-fault-a2-{uuid.uuid4().hex[:6]}"
    trip = _TripOn(world.box)
    _arm(monkeypatch, "after-call.iam.UpdateAccessKey", trip)  # the write went through; IAM goes down
    world.box.inject_faults()
    try:
        state = _contain(incident, world.investigation(user, key))
    finally:
        world.box.inject_faults()
    assert state.is_failed()
    assert world.key_status(user, key) == "Inactive"
    assert ("deactivate_access_key", key) in _ledger_keys(incident, world.home)


def test_every_incident_completes_with_30_percent_of_iam_calls_throttled(world: World) -> None:
    from flows.respond_to_exposed_key import respond_to_exposed_key

    victims = [world.victim() for _ in range(2)]
    alerts: list[Alert] = [normalize("generic", {"access_key_id": key, "reason": "throttling test",
                                                 "account_id": world.account.account_id,
                                                 "alert_id": f"throttle-{uuid.uuid4().hex[:8]}"})[0]
                           for _, key in victims]
    results: dict[str, Any] = {}

    def run(alert: Alert) -> None:
        results[str(alert.access_key_id)] = respond_to_exposed_key(alert, return_state=True)

    world.box.inject_faults()
    world.box.inject_faults(service="iam", throttle_rate=0.3, seed=1)
    saved = os.environ["KEYRESPONSE_AWS_MAX_ATTEMPTS"]
    os.environ["KEYRESPONSE_AWS_MAX_ATTEMPTS"] = "10"
    os.environ["KEYRESPONSE_REQUIRE_APPROVAL"] = "false"  # the responder's setting, not a run's parameter
    get_settings.cache_clear()
    try:
        threads = [threading.Thread(target=run, args=(alert,)) for alert in alerts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        counters = world.box.call_extension("GET", "faults")
    finally:
        world.box.inject_faults()
        os.environ["KEYRESPONSE_AWS_MAX_ATTEMPTS"] = saved
        os.environ.pop("KEYRESPONSE_REQUIRE_APPROVAL")
        get_settings.cache_clear()
    print(f"\nthrottling: {counters['injected'].get('iam', 0)} of {counters['calls'].get('iam', 0)} IAM calls throttled")
    assert counters["injected"].get("iam", 0) >= 10
    for user, key in victims:
        state = results.get(key)
        assert state is not None and state.is_completed(), state
        record = state.result()
        assert record["status"] == "recovered", record["status"]
        assert world.key_status(user, key) in ("Inactive", "deleted")


# --- (b) the Prefect server restarts while a run waits for approval --------------------------------

_PAUSED_RUN = textwrap.dedent("""
    import json, sys
    from flows.containment import containment
    state = containment(sys.argv[1], json.loads(sys.argv[2]), dry_run=False, approval=True,
                        only=["deactivate_access_key"], return_state=True)
    print("RESULT " + json.dumps({"type": state.type.value, "outcome": state.result(raise_on_failure=False)
                                  if state.is_completed() else str(state.message)}, default=str))
""")


def _paused(api: str) -> list[dict[str, Any]]:
    try:
        response = httpx.post(f"{api}/flow_runs/filter", timeout=10,
                              json={"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}})
    except httpx.HTTPError:
        return []
    return list(response.json()) if response.status_code == 200 else []


def test_approval_survives_a_prefect_server_restart(sandbox: MotoSandbox, seeded: SeededAccount,
                                                    tmp_path: Path) -> None:
    iam = admin_client(sandbox.endpoint, "iam")
    user = f"restart-victim-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    arn = f"arn:aws:iam::{seeded.account_id}:user/{user}"
    investigation = minimal_investigation(
        access_key_id=key, account_id=seeded.account_id, principal_arn=arn,
        credentials=[{"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
                      "principal_arn": arn}])
    incident = f"inc-restart-{uuid.uuid4().hex[:6]}"
    home, port = tmp_path / "prefect", free_port()
    server = PrefectServer(home, port=port, reuse_existing=False).start()
    api = server.api_url
    env = {**os.environ, **sandbox.env(), **server.env(),
           "AWS_ACCESS_KEY_ID": seeded.responder.access_key_id,
           "AWS_SECRET_ACCESS_KEY": seeded.responder.secret_access_key,
           "KEYRESPONSE_HOME": str(tmp_path / "home"), "KEYRESPONSE_APPROVAL_POLL_SECONDS": "1",
           "KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "300", "PYTHONPATH": str(ROOT)}
    env.pop("KEYRESPONSE_EVIDENCE_BUCKET", None)
    script = tmp_path / "paused_run.py"
    script.write_text(_PAUSED_RUN)
    child = subprocess.Popen([sys.executable, str(script), incident, json.dumps(investigation)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (paused := _paused(api)):
            assert child.poll() is None, child.stdout.read().decode() if child.stdout else ""
            assert time.monotonic() < deadline, "the run never paused"
            time.sleep(0.5)
        run_id = paused[0]["id"]
        server.stop()  # the server goes away while the run waits...
        time.sleep(3)
        server = PrefectServer(home, port=port, reuse_existing=False).start()  # ...and comes back
        assert [r["id"] for r in _paused(api)] == [run_id]
        # as a person (the UI) or the demo answers: a server just back may answer 503 (SQLite busy) for a
        # while, which a raw POST met under load in a full run; answer_pause retries it
        with server.client() as client:
            assert answer_pause(client, run_id, {
                "approver": "restart@example.com", "decision": "approve", "reason": "server restart test"})
        output, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        server.stop()
    text = output.decode()
    assert child.returncode == 0, text[-3000:]
    result = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    assert result["type"] == "COMPLETED", text[-3000:]
    assert result["outcome"]["status"] == "applied"
    assert result["outcome"]["approval"]["approver"] == "restart@example.com"
    metas = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert {m["AccessKeyId"]: m["Status"] for m in metas}[key] == "Inactive"


# --- (c) the receiver restarts -----------------------------------------------------------------------


@dataclass
class SwitchableLauncher:
    """Down (`DeploymentUnavailable` or a connection error) until switched on; records real launches."""

    mode: str = "missing"  # missing | unreachable | up
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult:
        if self.mode == "missing":
            raise DeploymentUnavailable("deployment does not exist yet")
        if self.mode == "unreachable":
            raise ConnectionError("Prefect API unreachable")
        await asyncio.sleep(0.01)
        self.calls.append((incident_id, idempotency_key))
        return LaunchResult(flow_run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key)), ui_url=None)


def test_alerts_accepted_while_the_launcher_is_down_are_launched_once_by_the_next_receiver(tmp_path: Path) -> None:
    secret = "restart-secret"
    config = WebhookSettings(secret=secret, spool=tmp_path / "spool", launch_timeout_seconds=5)
    keys = [f"AKIARESTART{i:09d}" for i in range(10)]
    alerts = [{"access_key_id": keys[i % 10], "reason": "restart", "alert_id": f"restart-{i % 15}"}
              for i in range(30)]  # 15 distinct alerts, 10 keys, each sent twice
    answers: list[httpx.Response] = []
    down = SwitchableLauncher("missing")
    with Receiver(create_app(config, down), log_level="critical") as receiver, httpx.Client(timeout=30) as http:
        url = receiver.url
        for i, alert in enumerate(alerts):
            down.mode = "missing" if i % 2 else "unreachable"
            body = json.dumps(alert).encode()
            answers.append(http.post(f"{url}/alerts/generic", content=body,
                                     headers={"X-Keyresponse-Signature": sign(body, secret)}))
    codes = {a.status_code for a in answers}
    assert codes <= {202, 503}, [a.text for a in answers if a.status_code not in (202, 503)]
    assert {a.json()["error"] for a in answers if a.status_code == 503} <= {"deployment_not_found", "launch_failed"}
    assert not down.calls
    spool = AlertSpool(tmp_path / "spool")
    spooled = [*spool.alerts_dir.glob("*.json"), *spool.archive_dir.glob("*.json")]  # waiting, and attached
    assert len(spooled) == 15, "an answered alert is not in the spool"
    assert len(spool.pending()) == 10

    up = SwitchableLauncher("up")
    with Receiver(create_app(config, up, relaunch_every=0.2), log_level="critical"):
        deadline = time.monotonic() + 20
        while spool.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert spool.pending() == []
    incidents = [incident for incident, _ in up.calls]
    assert len(incidents) == 10 and len(set(incidents)) == 10, up.calls
    launched_keys = {spool.load(p).alert.access_key_id for p in spool.archive_dir.glob("*.json")  # launched: settled
                     if spool.load(p).flow_run_id is not None and spool.load(p).duplicate_of is None}
    assert launched_keys == set(keys)
