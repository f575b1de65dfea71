"""Response runs whose process is gone while Prefect still shows them running, and their retry.

When the runner (`keyresponse serve`) is killed, its flow-run processes exit with it (`flows`), and
no one tells Prefect: their runs stay Running forever, and their incidents wait. Every flow-run
process that a runner starts holds an exclusive lock on `<home>/runs/<flow_run_id>.lock` for its
whole life (`hold_run_lock`; the kernel frees it however the process ends). So a run that Prefect
shows Running or Pending, whose lock file is in this home and free, has no process: it is an orphan.

`keyresponse serve` reclaims orphans when it starts, before its runner takes new work: a response
run is scheduled again (AwaitingRetry, as the UI's Retry does, its message saying why) in one state
change, never through Crashed, so no reader sees it ended in between. A response
run that the previous runner cancelled while shutting down (`RUNNER_SHUTDOWN`: a clean stop cancels
every run whose process is still alive, even one that has just suspended itself for an approval and
is exiting) is scheduled again too: a person's cancel says something else. The run is
then executed from the top by the new runner and resumes from its journal (`keyresponse.journal`):
nothing applied twice, nothing asked twice. Runs whose lock file is not in this home (another host,
another home) are left alone. Only the response deployment is retried; other orphans (a scan, an
undo) are marked Crashed, to be retried by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID

from keyresponse.settings import get_settings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

RETRIED_FLOWS = ("respond-to-exposed-key",)
#: The message a Prefect runner that is shutting down gives the runs it cancels: its processes, even
#: one that had just suspended its run for an approval and was still exiting.
RUNNER_SHUTDOWN = "Runner is shutting down."
_held: list[IO[bytes]] = []


def lock_path(flow_run_id: str, home: Path | None = None) -> Path:
    return (home or get_settings().home) / "runs" / f"{flow_run_id}.lock"


def hold_run_lock(flow_run_id: str) -> None:
    """Hold this flow-run process's lock until the process ends (called once, at import)."""
    path = lock_path(flow_run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - held for the life of the process
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held.append(handle)


def attach_to_runner(flow_run_id: str, *, runner_pid: int | None = None, poll_seconds: float = 2.0) -> None:
    """In a flow-run process that a runner started: hold the run's lock, and exit when the runner goes.
    The runner is the parent process (`python -m prefect.engine`, from `flows` at import), or
    `runner_pid` for a run forked from the runner's forkserver (`keyresponse.warm_start`): a forkserver
    outlives its client while any child it forked lives, so the run must watch the runner itself. A run
    left alone would go on holding memory and retrying a server that may be gone: it is a crashed run
    instead, and the ledger says what it applied, as after any crash."""
    try:
        hold_run_lock(flow_run_id)
    except OSError as exc:  # the run goes on; only its reclaiming after a runner crash is lost
        print(f"keyresponse: could not hold the lock of flow run {flow_run_id}: {exc}")
    parent = os.getppid() if runner_pid is None else runner_pid
    watched = _pidfd(parent) if runner_pid is not None else None

    def gone() -> bool:
        if runner_pid is None:
            return os.getppid() != parent
        if watched is not None:  # readable once that very process has exited (no pid reuse)
            return bool(select.select([watched], [], [], 0)[0])
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if gone():
                os._exit(143)  # as if SIGTERM: the runner is gone

    if gone():
        os._exit(143)
    threading.Thread(target=watch, name="exit-with-the-runner", daemon=True).start()


def _pidfd(pid: int) -> int | None:
    """A descriptor of process `pid` (Linux 5.3+), or None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _process_gone(flow_run_id: str, home: Path) -> bool | None:
    """True when the run's lock is free, False when held, None when this home never ran it."""
    path = lock_path(flow_run_id, home)
    if not path.exists():
        return None
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def reclaim(client: SyncPrefectClient, *, home: Path | None = None, settle_s: float = 3.0) -> list[dict[str, str]]:
    """Schedule every orphaned response run of this home again and mark other orphans Crashed; returns what was done
    to which run. Lock files of runs that ended are removed on the way.

    Call it before the runner starts (a run it starts could be Pending with its lock not yet taken).
    A killed runner's processes notice within two seconds and exit: locks still held are looked at
    again after `settle_s`."""
    done = _reclaim(client, home or get_settings().home)
    if done["held"]:
        time.sleep(settle_s)
        again = _reclaim(client, home or get_settings().home)
        done["runs"] += again["runs"]
    runs: list[dict[str, str]] = done["runs"]
    return runs


def _reclaim(client: Any, home: Path) -> dict[str, Any]:
    from prefect.exceptions import ObjectNotFound
    from prefect.states import AwaitingRetry, Crashed

    folder = home / "runs"
    done: list[dict[str, str]] = []
    held = 0
    for path in sorted(folder.glob("*.lock")) if folder.exists() else []:
        run_id = path.stem
        gone = _process_gone(run_id, home)
        if gone is False:
            held += 1
        if gone is not True:
            continue
        try:
            run = client.read_flow_run(UUID(run_id))
        except (ObjectNotFound, ValueError):  # another server's run, or not a run id
            continue
        stopped = (run.state is not None and run.state.is_cancelled()
                   and (run.state.message or "") == RUNNER_SHUTDOWN)
        if run.state is None or not (run.state.is_running() or run.state.is_pending() or stopped
                                     or run.state.type.value == "CANCELLING"):
            with contextlib.suppress(OSError):
                path.unlink()  # it ended (or waits suspended, with no process): nothing to reclaim
            continue
        if run.deployment_id is None:
            continue
        flow = client.read_flow(run.flow_id).name
        if stopped and flow not in RETRIED_FLOWS:
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        # One state change: a retried run goes straight to AwaitingRetry. Crashed first, then AwaitingRetry,
        # showed a final state in between, and whoever read it then (the receiver deciding whether an
        # incident's run is alive, a person, a test) took the run for ended.
        gone_why = "its process is gone (the runner was stopped or killed); found by keyresponse serve at start"
        if flow in RETRIED_FLOWS:
            client.set_flow_run_state(run.id, AwaitingRetry(
                message=f"{gone_why}; retried: it resumes from its journal"), force=True)
            action = "retried"
        else:
            if not stopped:
                client.set_flow_run_state(run.id, Crashed(message=gone_why), force=True)
            action = "crashed"
        with contextlib.suppress(OSError):
            path.unlink()
        done.append({"flow_run_id": str(run.id), "name": str(run.name), "flow": flow, "action": action})
    return {"runs": done, "held": held}
