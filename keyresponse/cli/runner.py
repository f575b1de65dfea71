"""`keyresponse serve`: the alert receiver and a Prefect runner for every deployment, in one command.

The runner (`prefect.serve`) polls every second, keeps cron schedules on shutdown
(`pause_on_shutdown=False`), and runs the deployments of prefect.yaml under the same names.

The receiver contains the key of a high-confidence alert itself (`keyresponse.first_response`), so
it must never wait behind a burst of flow runs starting (each spends seconds of CPU importing, and
the runner's own bookkeeping holds its process's GIL): the receiver runs as a child process
(`keyresponse serve-webhook`, which dies with this one) at normal priority, while this process and
every flow run it starts run at nice +10.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keyresponse.cli._common import command

if TYPE_CHECKING:  # prefect is imported when the command runs
    from prefect.deployments.runner import RunnerDeployment

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
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    from flows.preventive_key_scan import preventive_key_scan
    from flows.respond_to_exposed_key import respond_to_exposed_key
    from flows.undo_incident import undo_incident_flow

    _reclaim_orphans()
    threading.Thread(target=_escalate_waiting, args=(stopping,), name="escalations", daemon=True).start()
    typer.echo(f"keyresponse: alerts on http://{host}:{port}/alerts/<source>; runner for "
               f"{', '.join(DEPLOYMENTS)}", err=True)
    try:
        with temporary_settings(updates={PREFECT_RUNNER_POLL_FREQUENCY: 1}):
            prefect_serve(
                _built(respond_to_exposed_key.to_deployment(name="respond-to-exposed-key")),
                _built(preventive_key_scan.to_deployment(name="preventive-key-scan", cron="0 6 * * *")),
                _built(undo_incident_flow.to_deployment(name="undo-incident")),
                limit=limit, pause_on_shutdown=False, print_starting_message=False,
            )
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


def _built(deployment: RunnerDeployment | Coroutine[Any, Any, RunnerDeployment]) -> RunnerDeployment:
    """What `Flow.to_deployment` returns outside an event loop (as in `serve`): the deployment itself; it
    returns a coroutine only to async callers."""
    from prefect.deployments.runner import RunnerDeployment

    if not isinstance(deployment, RunnerDeployment):
        deployment.close()
        raise TypeError("Flow.to_deployment returned a coroutine: serve must not run in an event loop")
    return deployment


def _lower_priority(increment: int = 10) -> None:
    """Nice this process (and so every flow run it starts); where that is not possible, leave it."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(increment)
