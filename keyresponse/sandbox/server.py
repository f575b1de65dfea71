"""Start and stop the sandbox's moto server as a child process on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import JsonValue

from keyresponse.children import die_with_parent
from keyresponse.errors import SandboxError

#: Credentials the sandbox accepts for the responder; any value works while moto's auth is off.
SANDBOX_ACCESS_KEY_ID = "AKIASANDBOXRESPONDER"
SANDBOX_SECRET_ACCESS_KEY = "sandbox-secret-not-real"  # noqa: S105
SANDBOX_REGION = "us-east-1"
START_TIMEOUT_S = 30.0


def admin_client(endpoint: str, service: str, region: str = SANDBOX_REGION) -> Any:
    """A boto3 client on the sandbox with its administrator credentials (moto's auth is off)."""
    import boto3

    # boto3-stubs type each service name as a Literal and have no overload for a name known only at run time
    return boto3.client(service, endpoint_url=endpoint, region_name=region,  # type: ignore[call-overload]
                        aws_access_key_id=SANDBOX_ACCESS_KEY_ID, aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY)


def access_key_statuses(endpoint: str, account_id: str = "123456789012") -> dict[str, str]:
    """Every access key of the account → Active / Inactive, in one sandbox call (keys deleted are absent)."""
    url = f"{endpoint}/_keyresponse/access-keys?account_id={account_id}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - always http://127.0.0.1
        keys = json.loads(resp.read())["access_keys"]
    return {key: str(meta["status"]) for key, meta in keys.items()}


#: What to install for the sandbox, the simulator and the demo (moto's server is not in the base install).
SANDBOX_EXTRA_HINT = "pip install 'keyresponse[sandbox]'"


def require_sandbox_extra() -> None:
    """Raise SandboxError naming the extra to install when moto's server is not installed."""
    import importlib.util

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise SandboxError(f"the embedded AWS sandbox needs moto's server, which the base install leaves out: "
                           f"{SANDBOX_EXTRA_HINT}")


class MotoSandbox:
    """A moto server in a child process. Use as a context manager; nothing is left running on exit.

    >>> with MotoSandbox() as sandbox:
    ...     os.environ.update(sandbox.env())
    """

    def __init__(self, *, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def attach(cls, endpoint_url: str) -> MotoSandbox:
        """A handle on a sandbox another process started (`keyresponse sandbox up`); never stopped by us."""
        from urllib.parse import urlparse

        parsed = urlparse(endpoint_url)
        if parsed.hostname not in ("127.0.0.1", "localhost") or not parsed.port:
            raise SandboxError(f"{endpoint_url} is not a local sandbox (expected http://127.0.0.1:PORT)")
        box = cls(port=parsed.port)
        box._attached = True
        box.call_extension("GET", "health")
        return box

    _attached = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> MotoSandbox:
        if self._attached:
            return self
        if self._proc is not None:
            return self
        require_sandbox_extra()
        self._tmp = tempfile.TemporaryDirectory(prefix="keyresponse-sandbox-")
        port_file = Path(self._tmp.name) / "port"
        log_path = self.log_path or Path(self._tmp.name) / "moto.log"
        env = dict(os.environ)
        env.update(
            MOTO_IAM_LOAD_MANAGED_POLICIES="true",
            KEYRESPONSE_SANDBOX_PORT_FILE=str(port_file),
            AWS_ACCESS_KEY_ID=SANDBOX_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=SANDBOX_SECRET_ACCESS_KEY,
        )
        env.pop("AWS_ENDPOINT_URL", None)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "keyresponse.sandbox._moto_main", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_file.exists():
            if self._proc.poll() is not None:
                self.stop()
                raise SandboxError(f"the moto server exited at start (code {self._proc.returncode}); log: {log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"the moto server did not start within {START_TIMEOUT_S:.0f} s; log: {log_path}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self._wait_healthy(deadline)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                self.call_extension("GET", "health")
                return
            except (OSError, SandboxError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise SandboxError("the moto server did not answer its health check") from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None  # type: ignore[assignment]
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> MotoSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        if self._attached:
            return True
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- what clients need -------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and pyathena) at this sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_ACCESS_KEY,
            "AWS_REGION": SANDBOX_REGION,
            "AWS_DEFAULT_REGION": SANDBOX_REGION,
        }

    # -- moto's own control API and our extension --------------------------------------------
    def _post(self, path: str, data: bytes = b"", content_type: str = "application/json") -> bytes:
        req = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.endpoint + path, data=data, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"sandbox {path} answered {exc.code}: {exc.read()[:300]!r}") from exc

    def reset(self) -> None:
        """Wipe every account's state."""
        self._post("/moto-api/reset")

    def seed_random(self, seed: int) -> None:
        """Make moto's generated ids (keys, instances, …) deterministic from here on."""
        self._post(f"/moto-api/seed?a={int(seed)}")

    def set_auth(self, enforce: bool) -> None:
        """Switch moto's IAM authorization on (signatures and identity policies checked) or off."""
        self._post("/moto-api/reset-auth", b"0" if enforce else b"inf")

    def call_extension(self, method: str, route: str, body: JsonValue = None) -> JsonValue:
        url = f"{self.endpoint}/_keyresponse/{route}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                answer: JsonValue = json.loads(resp.read() or b"null")
                return answer
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"sandbox extension {route} answered {exc.code}: {exc.read()[:300]!r}") from exc

    def inject_faults(self, **rule: JsonValue) -> JsonValue:
        """`inject_faults(service="iam", throttle_rate=0.3)`, `fail_after=N` (then 503s), `deny=True` (every
        call AccessDenied); `inject_faults()` clears every rule."""
        return self.call_extension("POST", "faults", rule)

    def store(self, name: str, document: JsonValue) -> None:
        """Keep a JSON document in the sandbox process (lost when the sandbox stops, like moto's state)."""
        self.call_extension("POST", f"state/{name}", document)

    def load(self, name: str) -> JsonValue:
        """A document kept by `store`, or None."""
        try:
            return self.call_extension("GET", f"state/{name}")
        except SandboxError as exc:
            if "404" in str(exc):
                return None
            raise

    def backdate(self, **fields: JsonValue) -> JsonValue:
        """Set IAM dates moto cannot set through the API (see `_moto_main._backdate`)."""
        return self.call_extension("POST", "backdate", fields)
