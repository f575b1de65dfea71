"""Prefect flows: which tasks run in what order, and the approval pauses.

A flow run started by `keyresponse serve` is a child process of the runner. If the runner dies
without stopping it (killed, or stopped with more runs than its shutdown grace allows), the run
would go on alone, holding memory and retrying a server that may be gone. So a run that the runner
started (`PREFECT__FLOW_RUN_ID` set) exits when its parent goes: it is then a crashed run, and the
ledger says what it applied, as after any crash.

Such a process also holds its run's lock for its whole life (`keyresponse.orphans`): the next
`keyresponse serve` finds the runs whose lock is free while Prefect shows them running, and retries
them.
"""

from __future__ import annotations

import os
import threading
import time


def _exit_with_the_runner(poll_seconds: float = 2.0) -> None:
    if not os.environ.get("PREFECT__FLOW_RUN_ID"):
        return
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(143)  # as if SIGTERM: the runner is gone

    threading.Thread(target=watch, name="exit-with-the-runner", daemon=True).start()


def _hold_run_lock() -> None:
    run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not run_id:
        return
    from keyresponse.orphans import hold_run_lock

    try:
        hold_run_lock(run_id)
    except OSError as exc:  # the run goes on; only its reclaiming after a runner crash is lost
        print(f"keyresponse: could not hold the lock of flow run {run_id}: {exc}")


_exit_with_the_runner()
_hold_run_lock()
