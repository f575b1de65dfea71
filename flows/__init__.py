"""Prefect flows: which tasks run in what order, and the approval pauses.

A flow run started by `keyresponse serve` is a child process of the runner (or of the forkserver
it forks them from, `keyresponse.warm_start`). If the runner dies without stopping it (killed, or
stopped with more runs than its shutdown grace allows), the run would go on alone, holding memory and
retrying a server that may be gone. So a run that a runner started (`PREFECT__FLOW_RUN_ID` set, as
`python -m prefect.engine` has it) exits when its parent goes: it is then a crashed run, and the
ledger says what it applied, as after any crash.

Such a process also holds its run's lock for its whole life (`keyresponse.orphans`): the next
`keyresponse serve` finds the runs whose lock is free while Prefect shows them running, and retries
them.
"""

from __future__ import annotations

import os

from keyresponse.orphans import attach_to_runner

if _run_id := os.environ.get("PREFECT__FLOW_RUN_ID"):
    attach_to_runner(_run_id)
