"""`keyresponse serve` at start: which runs it reclaims (`keyresponse.orphans`), on the real Prefect server.

Runs of a response deployment that no runner serves, each with the lock file a flow-run process
leaves in the home: free when the process is gone, held when it lives (held here by this test).
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from keyresponse.orphans import RUNNER_SHUTDOWN, lock_path, reclaim


def _run(client: Any, deployment_id: Any, state: Any) -> str:
    run = client.create_flow_run_from_deployment(deployment_id, parameters={
        "alert": {"source": "generic", "alert_id": "orphan-test", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                  "observed_at": "2026-12-04T00:00:00Z", "severity": "high", "high_confidence": False,
                  "title": "orphan test", "raw": {}}, "incident_id": "inc-orphan"})
    client.set_flow_run_state(run.id, state, force=True)
    return str(run.id)


def test_serve_retries_runs_left_running_or_cancelled_by_a_runner_shutdown_and_nothing_else(
        prefect_server: str, tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.states import Cancelled, Paused, Running

    from flows.respond_to_exposed_key import respond_to_exposed_key

    deployment_id = respond_to_exposed_key.to_deployment(name="orphans-under-test").apply()
    with get_client(sync_client=True) as client:
        runs = {
            "running, process gone": _run(client, deployment_id, Running()),
            "cancelled by a runner shutting down": _run(client, deployment_id, Cancelled(message=RUNNER_SHUTDOWN)),
            "cancelled by a person": _run(client, deployment_id, Cancelled(message="cancelled in the UI")),
            "suspended for an approval": _run(client, deployment_id, Paused(reschedule=True)),
            "running, process alive": _run(client, deployment_id, Running()),
        }
        for run_id in runs.values():
            path = lock_path(run_id, tmp_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        with open(lock_path(runs["running, process alive"], tmp_path), "a+b") as alive:
            fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
            done = reclaim(client, home=tmp_path, settle_s=0.1)
        states = {what: client.read_flow_run(run_id).state for what, run_id in runs.items()}
        # what anyone polling the run could have read: it was never in a final state on its way back
        # (it was Crashed, then AwaitingRetry: the receiver or a watcher reading in between took it for
        # ended; the durable-runs test met it in CI)
        history = [(st.name, st.is_final()) for st in client.read_flow_run_states(runs["running, process gone"])]

    assert sorted((d["flow_run_id"], d["action"]) for d in done) == sorted(
        (runs[w], "retried") for w in ("running, process gone", "cancelled by a runner shutting down"))
    assert states["running, process gone"].name == "AwaitingRetry"
    assert history[-2:] == [("Running", False), ("AwaitingRetry", False)], history
    assert not any(final for _, final in history), history
    assert states["cancelled by a runner shutting down"].name == "AwaitingRetry"
    assert states["cancelled by a person"].is_cancelled()
    assert states["suspended for an approval"].is_paused()
    assert states["running, process alive"].is_running()
    assert lock_path(runs["running, process alive"], tmp_path).exists()
    assert not lock_path(runs["cancelled by a person"], tmp_path).exists()  # ended: its lock file is cleaned up
