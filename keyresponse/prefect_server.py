"""Start (or reuse) a local Prefect server: SQLite under a folder of ours, bound to 127.0.0.1.

If `PREFECT_API_URL` is already set and answers, that server is reused and never stopped by us.

The Prefect API is keyresponse's control plane: whoever reaches it can answer an approval under any
name, or start `undo-incident`. A server started here with an `auth_string` (`user:password`; the
demo makes a random one, `new_auth_string()`) refuses every request without it (HTTP 401, all but
`GET /api/health` and `/api/ready`): it is Prefect's basic auth, `PREFECT_SERVER_API_AUTH_STRING`
on the server and `PREFECT_API_AUTH_STRING` on every client (`env()` gives both to the processes we
start: `keyresponse serve`, its flow runs, the receiver). `prefect_client()` is a client bound to
an API URL with the auth string of the current settings; `get_client()` alone reads the URL too.
SECURITY.md says how to deploy it behind TLS.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from keyresponse.children import die_with_parent
from keyresponse.errors import ConfigurationError

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def new_auth_string() -> str:
    """A fresh `user:password` for Prefect's basic auth (the password: 32 random bytes, URL-safe)."""
    return f"keyresponse:{secrets.token_urlsafe(32)}"


def prefect_client(api_url: str | None = None, *, auth_string: str | None = None, sync: bool = True) -> Any:
    """A Prefect client (sync by default) for `api_url` (default: the current settings' URL) that sends
    `auth_string`, by default the current settings' `PREFECT_API_AUTH_STRING`. A client built from
    a URL alone (`SyncPrefectClient(url)`) sends no credentials: a server with auth answers it 401."""
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
    from prefect.settings import get_current_settings

    if api_url is None and auth_string is None:
        return get_client(sync_client=True) if sync else get_client()
    current = get_current_settings().api
    url = api_url or current.url
    if not url:
        raise ConfigurationError("no Prefect API URL: set PREFECT_API_URL")
    secret = auth_string if auth_string is not None else (
        current.auth_string.get_secret_value() if current.auth_string else None)
    kind = SyncPrefectClient if sync else PrefectClient
    return kind(url, auth_string=secret)


class PrefectServer:
    """`with PrefectServer(home) as server:` sets `PREFECT_API_URL` (and with `auth_string`,
    `PREFECT_API_AUTH_STRING`) for this process and its children."""

    def __init__(self, home: Path, *, port: int | None = None, reuse_existing: bool = True,
                 auth_string: str | None = None) -> None:
        self.home = Path(home)
        self.port = port
        self.reuse_existing = reuse_existing
        self.auth_string = auth_string
        self.api_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def start(self) -> PrefectServer:
        existing = os.environ.get("PREFECT_API_URL")
        if self.reuse_existing and existing and api_healthy(existing):
            self.api_url = existing
            self.auth_string = os.environ.get("PREFECT_API_AUTH_STRING")  # that server's, if it has one
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        port = self.port or free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        env = dict(os.environ)
        env.update(self.env())
        env.pop("PREFECT_API_URL", None)
        env.pop("PREFECT_SERVER_API_AUTH_STRING", None)  # this server's, and only when asked for
        if self.auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not api_healthy(self.api_url, timeout=1.0):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(f"the Prefect server did not start; see {self.home / 'server.log'}")
            time.sleep(0.25)
        for key, value in self.env().items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def env(self) -> dict[str, str]:
        """What a client process needs to talk to this server (its auth string included)."""
        env = {
            "PREFECT_HOME": str(self.home.resolve()),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # The UI's home page opens the V1 UI, whose Resume dialog is the one the approval forms and
            # their escaping are tested in (tests/flows/test_approval_in_browser.py). Prefect 3.9 defaults
            # to V2 there, which also fetches a config from amplitude.com with analytics disabled.
            "PREFECT_SERVER_UI_V2_ENABLED": "false",
            "PREFECT_SERVER_UI_API_URL": self.api_url,
        }
        if self.auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.auth_string
        return env

    def client(self, *, sync: bool = True) -> Any:
        """A Prefect client of this server, with its auth string."""
        return prefect_client(self.api_url, auth_string=self.auth_string or "", sync=sync)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
