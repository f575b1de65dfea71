"""Flow runs of `keyresponse serve` start warm: forked from a process that has imported them already.

Prefect's runner starts every flow run in a new Python process, which imports Prefect, the flows,
boto3's service models, DuckDB, sqlglot and the report again: 3-5 CPU-seconds before the run does
anything, at every start and at every resume after an approval (a run suspended for an approval has
no process). On a busy host that is seconds of delay per phase, and it was the largest single cost
of the test suite.

`keyresponse serve` gives its runner the flow objects themselves (`Runner.add_flow`), so Prefect
starts their runs with `prefect.flow_engine.run_flow_in_subprocess` (a `multiprocessing` "spawn"
child), and `install()` has those children forked from a `multiprocessing` forkserver instead. The
forkserver is started once, at `install()`, and imports `WARM_MODULES` (it runs nothing: no thread,
no client, no credentials). A forked run is a process like any other: its own pid, which the runner
stops on cancel or shutdown; it holds its run's lock and exits when the runner goes, as
`keyresponse.orphans.attach_to_runner` says (it watches the runner itself: a forkserver outlives its
client while a child it forked lives). Each run still reads its
settings and credentials afresh from the environment it is given.

Two Prefect seams are used: `prefect.runner._starter_direct.run_flow_in_subprocess` (the module says
"patch the module to override") and the `multiprocessing` that `prefect.flow_engine` asks for a
"spawn" context. The flow handed to a run is pickled by reference (`_flow_by_reference`). Should a
Prefect release change the seams, runs start cold again (slower, never wrong), and
`tests/keyresponse/test_warm_start.py` and `tests/flows/test_durable_runs.py` (no run started cold)
fail. A forkserver that dies (killed, out of memory) is started again by the next run's start.
"""

from __future__ import annotations

import copyreg
import importlib
import multiprocessing
import multiprocessing.forkserver as forkserver
import os
import sys
from contextvars import ContextVar
from multiprocessing.context import ForkServerContext, ForkServerProcess
from typing import Any

#: What a flow run imports, imported once by the forkserver. A module missing here costs time, never
#: correctness: the run imports it itself.
WARM_MODULES = (
    "prefect.flow_engine",
    "prefect.utilities.visualization",
    "flows.respond_to_exposed_key",
    "flows.preventive_key_scan",
    "flows.undo_incident",
    "keyresponse.engines.duckdb_engine",
    "keyresponse.readiness",
    "keyresponse.report",
    "keyresponse.receiver.config",
    "keyresponse.receiver.spool",
    "sqlglot.dialects.athena",
    "sqlglot.dialects.duckdb",
    "keyresponse.warm_start",
    "keyresponse._warm_models",  # last: parses the service models of WARM_SERVICES
)

#: Services whose models (botocore's JSON files) the forkserver parses once for every run.
WARM_SERVICES = ("iam", "sts", "s3", "cloudtrail", "secretsmanager", "sns", "sqs", "organizations", "ec2",
                 "lambda", "events", "athena", "guardduty", "ses")

_starting: ContextVar[str | None] = ContextVar("keyresponse_warm_start_run", default=None)


class WarmProcess(ForkServerProcess):
    """A flow-run process forked from the forkserver; it knows its run before Prefect's code runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flow_run_id = _starting.get()
        self.runner_pid = os.getpid()

    def run(self) -> None:  # pragma: no cover - runs in the forked child
        if self.flow_run_id:
            from keyresponse.orphans import attach_to_runner

            os.environ["PREFECT__FLOW_RUN_ID"] = self.flow_run_id  # as `python -m prefect.engine` has it
            attach_to_runner(self.flow_run_id, runner_pid=self.runner_pid)
        super().run()


def _module_flow(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _flow_by_reference(flow: Any) -> Any:
    """Pickle a flow defined at the top of a module as that module's name for it. Prefect pickles the
    flow it hands a subprocess by value (cloudpickle copies its function, with the globals the function
    body names but not those its annotations name): such a copy of `respond_to_exposed_key(alert:
    Alert, ...)` cannot validate its parameters, `Alert` being unknown to it. By reference, the child
    runs the module's own flow, already imported by the forkserver."""
    module = sys.modules.get(getattr(flow.fn, "__module__", "") or "")
    if module is not None:
        for name, value in vars(module).items():
            if value is flow:
                return _module_flow, (module.__name__, name)
    return object.__reduce_ex__(flow, 2)


class _WarmContext(ForkServerContext):
    Process = WarmProcess


_CONTEXT = _WarmContext()


class _Multiprocessing:
    """`multiprocessing` as `prefect.flow_engine` sees it: its "spawn" context is the warm one."""

    def __getattr__(self, name: str) -> Any:
        return getattr(multiprocessing, name)

    def get_context(self, method: str | None = None) -> Any:
        return _CONTEXT if method == "spawn" else multiprocessing.get_context(method)


def install() -> None:
    """Start the forkserver (importing `WARM_MODULES`) and have this process's runner fork its runs
    from it. Call it in the runner's process, after its environment and priority are set: the
    forkserver and every run inherit both."""
    import prefect.flow_engine
    import prefect.runner._starter_direct as starter
    from prefect.flows import Flow

    seams, engine = vars(starter), vars(prefect.flow_engine)  # module namespaces: the names Prefect looks up
    if getattr(seams["run_flow_in_subprocess"], "warm", False):
        return
    cold = seams["run_flow_in_subprocess"]

    def run_flow_in_warm_subprocess(flow: Any, flow_run: Any = None, *args: Any, **kwargs: Any) -> Any:
        token = _starting.set(str(flow_run.id) if flow_run is not None else None)
        try:
            return cold(flow, flow_run, *args, **kwargs)
        finally:
            _starting.reset(token)

    run_flow_in_warm_subprocess.warm = True  # type: ignore[attr-defined]
    _CONTEXT.set_forkserver_preload(list(WARM_MODULES))
    forkserver.ensure_running()
    copyreg.pickle(Flow, _flow_by_reference)
    engine["multiprocessing"] = _Multiprocessing()
    seams["run_flow_in_subprocess"] = run_flow_in_warm_subprocess
