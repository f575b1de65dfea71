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

A server's SQLite database starts as a copy of an already-migrated one when there is one for this
Prefect version (`~/.cache/keyresponse/prefect-<version>.db`, or under `XDG_CACHE_HOME`): Prefect
migrates a new database from scratch at every first start, about 9 CPU-seconds of the 17 a start
costs, and the demo and the tests start several. The first server of a version makes the copy,
under a lock, right after it answers; the others wait for it. Nothing is copied when
`PREFECT_API_DATABASE_CONNECTION_URL` names a database of its own (PostgreSQL).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, overload

from keyresponse.children import die_with_parent
from keyresponse.errors import ConfigurationError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient

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


@overload
def prefect_client(api_url: str | None = None, *, auth_string: str | None = None,
                   sync: Literal[True] = True) -> SyncPrefectClient: ...
@overload
def prefect_client(api_url: str | None = None, *, auth_string: str | None = None,
                   sync: Literal[False]) -> PrefectClient: ...
def prefect_client(api_url: str | None = None, *, auth_string: str | None = None,
                   sync: bool = True) -> SyncPrefectClient | PrefectClient:
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


def _template() -> Path:
    """The migrated database kept for this Prefect version."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keyresponse"
    return cache / f"prefect-{version('prefect')}.db"


@contextmanager
def _fresh_database(db: Path) -> Iterator[bool]:
    """Around the first start of a server whose database is `db` (not there yet): `db` is copied from
    the template when there is one (yields True); otherwise the lock on the template is held until the
    block ends, so that the caller can `_save_template` once its server has migrated `db` (yields False)."""
    template = _template()
    template.parent.mkdir(parents=True, exist_ok=True)
    with open(template.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another server making the template: wait for it
        if template.exists():
            db.parent.mkdir(parents=True, exist_ok=True)
            _copy_database(template, db)
            yield True
        else:
            yield False


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (one a server may be writing), made whole then renamed."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(partial)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.replace(partial, target)


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
        db = self.home / "prefect.db"
        if db.exists() or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
            return self._launch()
        with _fresh_database(db) as copied:
            self._launch()
            if not copied:
                _copy_database(db, _template())
        return self

    def _launch(self) -> PrefectServer:
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

    @overload
    def client(self, *, sync: Literal[True] = True) -> SyncPrefectClient: ...
    @overload
    def client(self, *, sync: Literal[False]) -> PrefectClient: ...
    def client(self, *, sync: bool = True) -> SyncPrefectClient | PrefectClient:
        """A Prefect client of this server, with its auth string."""
        if sync:
            return prefect_client(self.api_url, auth_string=self.auth_string or "")
        return prefect_client(self.api_url, auth_string=self.auth_string or "", sync=False)

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
