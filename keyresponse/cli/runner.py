"""`keyresponse serve`: the alert receiver and a Prefect runner for every deployment, in one command.

The runner (Prefect's `Runner`, as `prefect.serve` builds it) polls every second, keeps cron
schedules on shutdown (`pause_on_shutdown=False`), and runs the deployments of prefect.yaml under the
same names. It holds the flow objects (`add_flow`), and each run is forked from a process that has
imported them already (`keyresponse.warm_start`): a run starts, or resumes after an approval, in a
fraction of a second instead of seconds of CPU importing.

The receiver contains the key of a high-confidence alert itself (`tasks.first_response`), so
it must never wait behind a burst of flow runs (each a process with seconds of CPU work, and the
runner's own bookkeeping holds its process's GIL): the receiver runs as a child process
(`keyresponse serve-webhook`, which dies with this one) at normal priority, while this process and
every flow run it starts run at nice +10.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import Annotated

import typer

from keyresponse.cli._common import command

DEPLOYMENTS = ("respond-to-exposed-key", "preventive-key-scan", "undo-incident")


@command
def serve(
    host: Annotated[str, typer.Option(help="Address of the alert receiver.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the alert receiver.")] = 8080,
    limit: Annotated[int, typer.Option(help="Flow runs at once; a run waiting for approval is suspended and holds no slot.")] = 60,
) -> None:
    """Receive alerts on http://HOST:PORT/alerts/<source> and run the response, scan and undo deployments."""
    # A burst makes a SQLite Prefect server answer 503 now and then: let every flow run's client retry.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "10")
    from keyresponse.children import die_with_parent

    receiver = subprocess.Popen([sys.executable, "-m", "keyresponse", "serve-webhook", "--host", host,
                                 "--port", str(port), "--log-level", "warning"],
                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    stopping = threading.Event()

    def watch_receiver() -> None:  # a receiver that dies (port taken, crash) stops the whole command
        code = receiver.wait()
        if not stopping.is_set():
            typer.echo(f"keyresponse: the alert receiver exited with code {code}; stopping", err=True)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch_receiver, name="receiver-watch", daemon=True).start()
    _lower_priority()
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    from flows.preventive_key_scan import preventive_key_scan
    from flows.respond_to_exposed_key import respond_to_exposed_key
    from flows.undo_incident import undo_incident_flow
    from keyresponse import warm_start

    _reclaim_orphans()
    threading.Thread(target=_escalate_waiting, args=(stopping,), name="escalations", daemon=True).start()
    typer.echo(f"keyresponse: alerts on http://{host}:{port}/alerts/<source>; runner for "
               f"{', '.join(DEPLOYMENTS)}", err=True)
    try:
        with temporary_settings(updates={PREFECT_RUNNER_POLL_FREQUENCY: 1}):
            # The flow objects themselves (add_flow, not deployments built from them): Prefect then runs
            # them in subprocesses that warm_start forks from a process that has imported them already.
            runner = Runner(limit=limit, pause_on_shutdown=False)
            runner.add_flow(respond_to_exposed_key, name="respond-to-exposed-key")
            runner.add_flow(preventive_key_scan, name="preventive-key-scan", cron="0 6 * * *")
            runner.add_flow(undo_incident_flow, name="undo-incident")
            warm_start.install()
            asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):  # as prefect.serve: a stop, not an error
        typer.echo("keyresponse: stopping", err=True)
    finally:
        stopping.set()
        receiver.terminate()
        try:
            receiver.wait(10)
        except subprocess.TimeoutExpired:
            receiver.kill()


def _reclaim_orphans() -> None:
    """Runs a killed runner left Running (their processes died with it): Crashed, and the response's
    retried (`keyresponse.orphans`). Prefect unreachable: said, and serving goes on."""
    from prefect import get_client

    from keyresponse.orphans import reclaim

    try:
        with get_client(sync_client=True) as client:
            reclaimed = reclaim(client)
    except Exception as exc:  # serving must not wait on this
        typer.echo(f"keyresponse: could not look for runs a stopped runner left running: {exc}", err=True)
        return
    for run in reclaimed:
        typer.echo(f"keyresponse: flow run {run['name']} ({run['flow_run_id']}) had no process left: {run['action']}",
                   err=True)


def _escalate_waiting(stopping: threading.Event) -> None:
    """Every few seconds (a quarter of the approval timeout, at most a minute), escalate the
    approvals that waited another timeout (`keyresponse.waiting`)."""
    from prefect import get_client

    from keyresponse.settings import get_settings
    from keyresponse.waiting import escalate

    every = min(60.0, max(1.0, get_settings().approval_timeout_seconds / 4))
    while not stopping.wait(every):
        try:
            with get_client(sync_client=True) as client:
                escalate(client)
        except Exception as exc:  # the next pass tries again
            typer.echo(f"keyresponse: could not look at waiting approvals: {exc}", err=True)


def _lower_priority(increment: int = 10) -> None:
    """Nice this process (and so every flow run it starts); where that is not possible, leave it."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(increment)
