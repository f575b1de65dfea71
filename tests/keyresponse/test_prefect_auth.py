"""The Prefect API behind basic auth: who lacks the auth string can neither start a run nor answer one.

The demo's stack (keyresponse.demo.Stack) starts a Prefect server of its own with a random auth string
(`PREFECT_SERVER_API_AUTH_STRING`) and `keyresponse serve` with `PREFECT_API_AUTH_STRING`. Without
the string (or with a wrong one) the API answers 401 to reading a deployment, to starting the
`undo-incident` deployment and to resuming a paused run; keyresponse's own clients work: the runner
registers the deployments and runs the undo, which pauses for its approval; `answer_pause` (what the
demo approves with) denies it through the stack's client, and the key stays as it was.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from keyresponse.approval import answer_pause, paused_runs
from keyresponse.demo import Stack
from keyresponse.ledger import Ledger
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.settings import get_settings
from tasks.actions import ActionContext, Target
from tasks.containment.deactivate_access_key import ACTION as DEACTIVATE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

UNDO = "undo-incident/undo-incident"


def _basic(auth_string: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


def _wait(predicate: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _deployment(client: Any, name: str) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


def _ended(client: Any, run_id: Any) -> Any:
    run = client.read_flow_run(run_id)
    return run if run.state and run.state.is_final() else None


def test_the_prefect_api_refuses_whoever_lacks_the_auth_string_and_keyresponse_works_with_it(
        sandbox: MotoSandbox, seeded: SeededAccount, tmp_path: Path, unique_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    session_api = os.environ["PREFECT_API_URL"]
    monkeypatch.delenv("PREFECT_API_URL")  # the stack starts a server of its own, with an auth string
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))  # the stack's home: the undo reads this ledger
    get_settings.cache_clear()
    iam = boto3.client("iam")
    iam.create_user(UserName=unique_name)
    key = iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"]
    incident_id = f"ir-auth-{unique_name}"[:60]
    DEACTIVATE.apply(ActionContext.create(incident_id, dry_run=False),
                     Target(kind="access_key", id=key, user_name=unique_name))
    lines = len(Ledger(incident_id).entries())
    get_settings.cache_clear()

    with Stack(sandbox, seeded, tmp_path) as stack:
        api, secret = stack.api_url, stack.auth_string
        assert secret and api != session_api, "the stack reused a server instead of starting one with auth"
        with stack.client() as client:  # the runner registers the deployments one after another
            deployment = _wait(lambda: _deployment(client, UNDO), f"the runner to register {UNDO}")
        for headers in ({}, _basic("keyresponse:not-the-password")):
            assert httpx.get(f"{api}/deployments/name/{UNDO}", headers=headers).status_code == 401
            started = httpx.post(f"{api}/deployments/{deployment.id}/create_flow_run", headers=headers,
                                 json={"parameters": {"incident_id": incident_id, "dry_run": False}})
            assert started.status_code == 401, started.text
        assert httpx.get(f"{api}/health").status_code == 200  # probes stay open

        with stack.client() as client:
            run = client.create_flow_run_from_deployment(deployment.id, parameters={
                "incident_id": incident_id, "dry_run": False})
            paused = _wait(lambda: [r for r in paused_runs(client, within=run.id)
                                    if "description" in (r.state.state_details.run_input_keyset or {})],
                           "the real undo to pause for its approval")
            assert [r.id for r in paused] == [run.id]
            forged = {"approver": "attacker@example.com", "decision": "approve", "reason": "let me back in"}
            for headers in ({}, _basic("keyresponse:not-the-password")):
                resumed = httpx.post(f"{api}/flow_runs/{run.id}/resume", headers=headers, json={"run_input": forged})
                assert resumed.status_code == 401, resumed.text
            assert client.read_flow_run(run.id).state.is_paused()
            assert answer_pause(client, run.id, {"approver": "ana@example.com", "decision": "deny",
                                                 "reason": "auth test: the incident is open"})
            final = _wait(lambda: _ended(client, run.id), "the undo run to end")
            assert final.state.is_completed(), final.state

    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=unique_name)["AccessKeyMetadata"]}
    assert statuses == {key: "Inactive"}, "a denied undo changed the key"
    assert len(Ledger(incident_id, tmp_path / "home").entries()) == lines
    get_settings.cache_clear()

