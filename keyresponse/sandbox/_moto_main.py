"""Entry point of the sandbox's moto server process: `python -m keyresponse.sandbox._moto_main PORT`.

It serves moto's own WSGI app, wrapped by a small extension under `/_keyresponse/` that real AWS
has no equivalent for and tests need:

* `POST /_keyresponse/backdate` — set the creation / last-used dates of users, keys and passwords,
  so a seeded account can hold keys "older than a year" (moto stamps everything with now).
* `POST /_keyresponse/faults` — inject failures: `{"service": "iam", "throttle_rate": 0.3,
  "seed": 1}` answers that fraction of the service's calls with a Throttling error, and
  `{"service": "iam", "fail_after": N}` answers every call after the Nth with HTTP 503.
  `{"service": "iam", "delay_s": 2, "delay_actions": ["UpdateAccessKey"]}` answers those calls (all
  of the service's without `delay_actions`) `delay_s` late, *after* moto made the change: a process
  killed meanwhile changed AWS without hearing so.
  `{}` clears all faults. `GET /_keyresponse/faults` returns the counters.
* `POST|GET /_keyresponse/state/<name>` — keep a JSON document beside moto's state (the seed's
  description of the account, so a later `simulate` against a running sandbox can find it).
* `GET /_keyresponse/access-keys[?account_id=…]` — every access key of the account with its user and
  status in one answer (benches watch many keys without loading the server they measure).
* `GET /_keyresponse/health` — 200 once the app is importable and ready.

The extension only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

StartResponse = Callable[..., Any]


class _Faults:
    """Per-service fault rules; thread-safe (werkzeug serves each request on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.injected: dict[str, int] = {}
        self._rng = random.Random(0)

    def configure(self, body: dict[str, Any]) -> None:
        with self._lock:
            if not body:
                self.rules.clear()
                self.calls.clear()
                self.injected.clear()
                return
            service = str(body["service"])
            self.rules[service] = body
            self._rng = random.Random(int(body.get("seed", 0)))

    def decide(self, service: str) -> str | None:
        """None to pass the call through, else the kind of failure to answer with."""
        with self._lock:
            self.calls[service] = self.calls.get(service, 0) + 1
            rule = self.rules.get(service) or self.rules.get("*")
            if not rule:
                return None
            verdict = None
            fail_after = rule.get("fail_after")
            if fail_after is not None and self.calls[service] > int(fail_after):
                verdict = "unavailable"
            elif self._rng.random() < float(rule.get("throttle_rate", 0.0)):
                verdict = "throttle"
            elif rule.get("deny"):
                verdict = "deny"
            if verdict:
                self.injected[service] = self.injected.get(service, 0) + 1
            return verdict

    def delay(self, service: str, action: str | None) -> float:
        """How late to answer a call moto has served (0: at once)."""
        with self._lock:
            rule = self.rules.get(service) or self.rules.get("*") or {}
            actions = rule.get("delay_actions")
            if actions is not None and action not in actions:
                return 0.0
            return float(rule.get("delay_s", 0.0))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"rules": self.rules, "calls": self.calls, "injected": self.injected}


def _service_of(environ: dict[str, Any]) -> str | None:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


def _action_of(environ: dict[str, Any]) -> str | None:
    """The API action of a query-protocol call (`Action=` in the form body or the query string); the
    body is read and put back for moto."""
    import io
    from urllib.parse import parse_qs

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    fields = parse_qs(body.decode("utf-8", "replace")) or parse_qs(environ.get("QUERY_STRING", ""))
    values = fields.get("Action")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return values[0] if values else (target.rsplit(".", 1)[-1] or None)


def _error_response(environ: dict[str, Any], start_response: StartResponse, status: str, json_type: str,
                    code: str, message: str) -> Iterable[bytes]:
    """An AWS error in the protocol the caller speaks: JSON (`X-Amz-Target`) or query / rest-xml."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": json_type, "message": message}).encode()
        ctype = "application/x-amz-json-1.1"
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                "</Error><RequestId>sandbox-fault</RequestId></ErrorResponse>").encode()
        ctype = "text/xml"
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _throttle_response(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _error_response(environ, start_response, "400 Bad Request", "ThrottlingException", "Throttling",
                           "Rate exceeded")


def _denied_response(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """AccessDenied, as AWS answers a caller without the permission: a permanent error."""
    return _error_response(environ, start_response, "403 Forbidden", "AccessDeniedException", "AccessDenied",
                           "sandbox fault: not authorized")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def _backdate(body: dict[str, Any]) -> dict[str, Any]:
    from moto.iam.models import AccessKeyLastUsed, iam_backends

    backend = iam_backends[body.get("account_id", "123456789012")]["global"]
    user = backend.get_user(body["user_name"])
    if "user_created_at" in body:
        user.create_date = _parse_time(body["user_created_at"])
    if "password_last_used_at" in body:
        # moto initialises it to None without an annotation, so mypy infers None; it holds a datetime once used
        user.password_last_used = _parse_time(body["password_last_used_at"])  # type: ignore[assignment]
    changed = []
    for key in user.access_keys:
        if body.get("access_key_id") not in (None, key.access_key_id):
            continue
        if "created_at" in body:
            key.create_date = _parse_time(body["created_at"])
        if body.get("last_used_at"):
            key.last_used = AccessKeyLastUsed(
                _parse_time(body["last_used_at"]),
                body.get("last_used_service", "s3"),
                body.get("last_used_region", "us-east-1"),
            )
        changed.append(key.access_key_id)
    return {"user_name": user.name, "access_keys": changed}


def _access_keys(account_id: str) -> dict[str, Any]:
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["global"]
    return {"access_keys": {key.access_key_id: {"user_name": user.name, "status": key.status}
                            for user in list(backend.users.values()) for key in list(user.access_keys)}}


class SandboxExtension:
    """WSGI middleware: the `/_keyresponse/` routes, and fault injection in front of moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.faults = _Faults()
        self.state: dict[str, Any] = {}

    def _json(self, start_response: StartResponse, status: str, payload: Any) -> Iterable[bytes]:
        body = json.dumps(payload, default=str).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_keyresponse/"):
            return self._extension(path, environ, start_response)
        service = _service_of(environ)
        if service:
            verdict = self.faults.decide(service)
            if verdict == "throttle":
                return _throttle_response(environ, start_response)
            if verdict == "deny":
                return _denied_response(environ, start_response)
            if verdict == "unavailable":
                return self._json(start_response, "503 Service Unavailable", {"message": "sandbox fault"})
            if self.faults.rules:
                action = _action_of(environ)
                delay = self.faults.delay(service, action)
                if delay:
                    answer = list(self.app(environ, start_response))  # moto serves the call now
                    time.sleep(delay)
                    return answer
        return self.app(environ, start_response)

    def _extension(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            body = json.loads(raw) if raw else {}
            if path == "/_keyresponse/health":
                return self._json(start_response, "200 OK", {"ok": True})
            if path == "/_keyresponse/faults" and method == "GET":
                return self._json(start_response, "200 OK", self.faults.snapshot())
            if path == "/_keyresponse/faults" and method == "POST":
                self.faults.configure(body)
                return self._json(start_response, "200 OK", self.faults.snapshot())
            if path.startswith("/_keyresponse/state/"):
                name = path.rsplit("/", 1)[1]
                if method == "POST":
                    self.state[name] = body
                    return self._json(start_response, "200 OK", {"stored": name})
                if name in self.state:
                    return self._json(start_response, "200 OK", self.state[name])
                return self._json(start_response, "404 Not Found", {"error": f"no state {name!r}"})
            if path == "/_keyresponse/access-keys" and method == "GET":
                from urllib.parse import parse_qs

                query = parse_qs(environ.get("QUERY_STRING", ""))
                return self._json(start_response, "200 OK", _access_keys(query.get("account_id", ["123456789012"])[0]))
            if path == "/_keyresponse/backdate" and method == "POST":
                return self._json(start_response, "200 OK", _backdate(body))
        except Exception as exc:  # an extension call with bad input must never kill the server
            return self._json(start_response, "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"})
        return self._json(start_response, "404 Not Found", {"error": f"no sandbox route {method} {path}"})


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    args = argv if argv is not None else sys.argv[1:]
    port = int(args[0]) if args else 0
    app = SandboxExtension(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    port_file = os.environ.get("KEYRESPONSE_SANDBOX_PORT_FILE")
    if port_file:  # the parent reads the bound port from here; written whole, then renamed
        with open(port_file + ".tmp", "w") as fh:
            fh.write(str(server.server_address[1]))
        os.replace(port_file + ".tmp", port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
