"""`keyresponse serve-webhook`: the alert receiver under uvicorn, starting runs of the response deployment."""

from __future__ import annotations

from typing import Annotated

import typer

from keyresponse.cli._common import command


@command
def serve_webhook(
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 behind a proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    relaunch: Annotated[bool, typer.Option(help="Launch spooled alerts that never got a run, at start and every RETRY_AFTER_SECONDS.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Receive alerts (GuardDuty, AWS Health, GitHub, Security Hub, CloudTrail, generic) and start responses.

    Settings come from KEYRESPONSE_WEBHOOK_* variables (SECRET, EVENTBRIDGE_TOKEN, BEARER_TOKEN, GITHUB_SECRET,
    GITHUB_TOKEN, DEPLOYMENT_NAME, SPOOL, ...); at least one of SECRET, EVENTBRIDGE_TOKEN, BEARER_TOKEN or
    GITHUB_SECRET is required, each a secret of its own (keyresponse/receiver/: which routes take each).
    """
    import uvicorn

    from keyresponse.receiver.app import create_app
    from keyresponse.receiver.config import WebhookSettings
    from keyresponse.receiver.launcher import PrefectLauncher
    from tasks.first_response import FirstResponder

    settings = WebhookSettings()
    settings.check()  # before seconds of imports: a receiver that must not start says so at once
    launcher = PrefectLauncher(settings.deployment_name, ui_url=settings.prefect_ui_url)
    app = create_app(settings, launcher, relaunch_every=settings.retry_after_seconds if relaunch else None,
                     first_responder=FirstResponder())
    typer.echo(f"keyresponse: receiving alerts on http://{host}:{port}/alerts/<source>; "
               f"spool {settings.spool}; deployment {settings.deployment_name}", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
