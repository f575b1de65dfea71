"""`keyresponse serve` at start: which runs it reclaims (`keyresponse.orphans`), on the real Prefect server.

Runs of a response deployment that no runner serves, each with the lock file a flow-run process
leaves in the home: free when the process is gone, held when it lives (held here by this test).
"""

from __future__ import annotations

import fcntl
import time
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


def test_a_run_attached_to_a_runner_that_is_not_its_parent_holds_its_lock_and_exits_when_that_runner_dies(
        tmp_path: Path) -> None:
    """A warm run (`keyresponse.warm_start`) is a child of the runner's forkserver, which outlives the
    runner while the run lives: the run watches the runner itself."""
    import os
    import signal
    import subprocess
    import sys

    from keyresponse.orphans import _process_gone

    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    env = {**os.environ, "KEYRESPONSE_HOME": str(tmp_path)}
    env.pop("PREFECT__FLOW_RUN_ID", None)
    run = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from keyresponse.orphans import attach_to_runner; "
        f"attach_to_runner('run-1', runner_pid={runner.pid}, poll_seconds=0.2); "
        "print('attached', flush=True); time.sleep(600)")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "attached"
        assert _process_gone("run-1", tmp_path) is False  # the run holds its lock
        time.sleep(1.0)
        assert run.poll() is None  # its runner lives: it goes on
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        assert run.wait(10) == 143  # the runner is gone: so is the run, as if stopped with SIGTERM
        assert _process_gone("run-1", tmp_path) is True
    finally:
        for process in (run, runner):
            if process.poll() is None:
                process.kill()
                process.wait(10)
