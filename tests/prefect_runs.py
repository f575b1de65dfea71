"""Flow runs nobody runs, for tests of the alert receiver against the real Prefect server.

`unserved_deployment()` registers a deployment that no runner serves (its runs stay Scheduled, alive,
and no `keyresponse serve` of another test ever picks them up: the name is of these tests only);
`set_state` ends or pauses a run through the Prefect client, as a crash, a cancel or an approval
pause leaves it; `run_answering` runs a flow and answers its approval pause.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import flow

T = TypeVar("T")

DEPLOYMENT = "receiver-runs-under-test/receiver-runs"


@flow(name="receiver-runs-under-test")
def _never_run(alert: dict[str, Any], incident_id: str) -> None:
    """The response's parameters; never runs."""


def unserved_deployment() -> str:
    """Register the deployment on the current Prefect server; its `flow/deployment` name."""
    _never_run.to_deployment(name="receiver-runs").apply()
    return DEPLOYMENT


def set_state(run_id: str, state: str) -> None:
    """Move a run to Crashed, Cancelled or Paused (forced, as Prefect itself records them)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Crashed, Paused

    made = {"Crashed": lambda: Crashed(message="the flow run's process died"),
            "Cancelled": lambda: Cancelled(message="cancelled in the UI"),
            "Paused": lambda: Paused(timeout_seconds=3600, reschedule=False)}[state]()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, made, force=True)
        assert client.read_flow_run(run_id).state.name == state


def read_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)



def saved_input(client: Any, run_id: Any, key: str, *, patience_s: float = 30.0) -> Any:
    """A paused run's input once Prefect has saved it. `pause_flow_run` proposes the Paused state
    first and saves the form's schema and description just after, so a poller can see the pause (and
    the keys in its state) before the input exists: a 404, seen in CI on a loaded host. Every test
    that reads a paused form reads it through here."""
    from prefect.exceptions import PrefectHTTPStatusError

    deadline = time.monotonic() + patience_s
    while True:
        try:
            return client.read_flow_run_input(run_id, key)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)

def run_answering(call: Callable[[], T], run_name: str, answer: dict[str, str],
                  timeout: float = 120.0) -> tuple[T, str | None]:
    """Run `call` (a flow) in a thread and answer the approval pause of the flow run named `run_name`
    with `answer`, as a person would in the Resume dialog; returns (what `call` returned, the form's
    description as it was shown), the description None when the run ended without pausing."""
    from prefect.client.orchestration import get_client

    from keyresponse.approval import answer_pause, paused_runs

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # raised again in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=run, name=f"answering-{run_name}", daemon=True)
    thread.start()
    shown: str | None = None
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while thread.is_alive() and shown is None:
            assert time.monotonic() < deadline, f"{run_name} neither paused nor ended within {timeout} s"
            mine = [r for r in paused_runs(client) if r.name == run_name]
            keys = (mine[0].state.state_details.run_input_keyset or {}) if mine and mine[0].state else {}
            if "description" not in keys:
                time.sleep(0.2)
                continue
            shown = str(json.loads(saved_input(client, mine[0].id, keys["description"])))
            assert answer_pause(client, mine[0].id, answer), f"{run_name} was no longer paused"
    thread.join(timeout)
    assert not thread.is_alive(), f"{run_name} did not end within {timeout} s of the answer"
    if "error" in result:
        raise result["error"]
    return result["value"], shown
