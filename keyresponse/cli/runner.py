"""`keyresponse serve`: the alert receiver and a Prefect runner for every deployment, in one process.

The runner (`prefect.serve`) polls every second, keeps cron schedules on shutdown
(`pause_on_shutdown=False`), and runs the deployments of prefect.yaml under the same names.

The receiver contains the key of a high-confidence alert itself (`keyresponse.first_response`), so
it must never wait for CPU behind a burst of flow runs starting (each spends seconds importing):
flow runs start from the runner's thread, which runs at nice +10, while the receiver's threads keep
the default priority (Linux keeps a nice value per thread; a child inherits its parent thread's).
"""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from keyresponse.cli._common import command

DEPLOYMENTS = ("respond-to-exposed-key", "preventive-key-scan", "undo-incident")


@command
def serve(
    host: Annotated[str, typer.Option(help="Address of the alert receiver.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the alert receiver.")] = 8080,
    limit: Annotated[int, typer.Option(help="Flow runs at once; a run waiting for approval holds its slot.")] = 60,
) -> None:
    """Receive alerts on http://HOST:PORT/alerts/<source> and run the response, scan and undo deployments."""
    import os

    # A burst makes a SQLite Prefect server answer 503 now and then: let every flow run's client retry.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "10")
    import uvicorn
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    from flows.preventive_key_scan import preventive_key_scan
    from flows.respond_to_exposed_key import respond_to_exposed_key
    from flows.undo_incident import undo_incident_flow
    from keyresponse.first_response import FirstResponder
    from keyresponse.webhook import PrefectLauncher, WebhookSettings, create_app

    settings = WebhookSettings()
    app = create_app(settings, PrefectLauncher(settings.deployment_name, ui_url=settings.prefect_ui_url),
                     relaunch_every=settings.retry_after_seconds, first_responder=FirstResponder())
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    receiver = threading.Thread(target=server.run, name="alert-receiver", daemon=True)
    receiver.start()
    _lower_runner_priority()
    typer.echo(f"keyresponse: alerts on http://{host}:{port}/alerts/<source>; runner for "
               f"{', '.join(DEPLOYMENTS)}", err=True)
    try:
        with temporary_settings(updates={PREFECT_RUNNER_POLL_FREQUENCY: 1}):
            prefect_serve(
                respond_to_exposed_key.to_deployment(name="respond-to-exposed-key"),
                preventive_key_scan.to_deployment(name="preventive-key-scan", cron="0 6 * * *"),
                undo_incident_flow.to_deployment(name="undo-incident"),
                limit=limit, pause_on_shutdown=False, print_starting_message=False,
            )
    finally:
        server.should_exit = True
        receiver.join(10)


def _lower_runner_priority(increment: int = 10) -> None:
    """Nice the calling thread only (Linux: a thread id is a valid PRIO_PROCESS target)."""
    import os
    import threading

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except (AttributeError, OSError):  # not Linux, or not allowed: same priority for all, still correct
        pass
