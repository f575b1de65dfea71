"""Flow runs nobody runs, for tests of the alert receiver against the real Prefect server.

`unserved_deployment()` registers a deployment that no runner serves (its runs stay Scheduled, alive,
and no `keyresponse serve` of another test ever picks them up: the name is of these tests only);
`set_state` ends or pauses a run through the Prefect client, as a crash, a cancel or an approval
pause leaves it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

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
