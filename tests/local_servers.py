"""Servers the tests run on 127.0.0.1: the receiver app under uvicorn, a fake of GitHub's REST API, and
`LocalHTTPServer`, the base of such small HTTP servers (GitHub's fake, the busy Prefect proxy)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import uvicorn

from keyresponse.alerts import Alert, github_alert_ref
from keyresponse.prefect_server import free_port
from keyresponse.receiver.launcher import LaunchResult


class LocalHTTPServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (a free port), served in a daemon thread while its context is open."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
    """Send one whole response from a request handler."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class FakeGitHub(LocalHTTPServer):
    """GitHub's secret-scanning REST API: `GET <path>` answers `alerts[path]`, anything else 404 Not
    Found; every request is recorded as (path, Authorization). A context manager serves it in a thread."""

    def __init__(self) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None]] = []
        super().__init__(_GitHubHandler)

    def holds(self, payload: dict[str, Any], secret: str) -> str:
        """Make the alert a `secret_scanning_alert` webhook names hold `secret`; its REST path."""
        ref = github_alert_ref(payload)
        self.alerts[ref.api_path] = {"number": ref.number, "secret_type": "aws_access_key_id",
                                     "secret": secret, "state": "open"}
        return ref.api_path


class _GitHubHandler(BaseHTTPRequestHandler):
    server: FakeGitHub

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Authorization")))
        found = self.server.alerts.get(self.path)
        reply(self, 200 if found else 404, json.dumps(found if found else {"message": "Not Found"}).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """An ASGI app (the alert receiver) under uvicorn in a background thread."""

    def __init__(self, app: Any, log_level: str = "warning") -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class FakeSlack(LocalHTTPServer):
    """A Slack incoming webhook: keeps the text of every message posted. A context manager serves it."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        super().__init__(_SlackHandler)

    def said(self, *words: str) -> list[str]:
        """The messages that hold every one of `words`."""
        return [m for m in list(self.messages) if all(w in m for w in words)]


class _SlackHandler(BaseHTTPRequestHandler):
    server: FakeSlack

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.messages.append(json.loads(body)["text"])
        reply(self, 200, b"ok", "text/plain")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class RecordingLauncher:
    """A `Launcher` standing in for Prefect: records the alerts that got past every check and answers
    with a run id derived from the idempotency key, as Prefect's would be."""

    calls: list[Alert] = field(default_factory=list)

    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult:
        self.calls.append(alert)
        return LaunchResult(flow_run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key)), ui_url=None)
