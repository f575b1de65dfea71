"""`create_app`: the receiver as a FastAPI app, its routes, and the work it does in the background.

A route reads the body (`wire`), authenticates it (`auth`), normalizes it into alerts and hands them to
the `AlertIntake`, which answers within `answer_within_seconds` (EventBridge gives up after 5 s): the
routes and their order of checks are in the package docstring.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyresponse.alerts import (
    SOURCES,
    Alert,
    GitHubAlertRef,
    NotActionable,
    Source,
    github_alert_ref,
    normalize,
)
from keyresponse.errors import InputError
from keyresponse.receiver import log
from keyresponse.receiver.auth import CONTAINING_CREDENTIALS, Credential, authenticate, authenticate_github
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.intake import Accepted, AlertIntake, FirstResponder
from keyresponse.receiver.launcher import DeploymentUnavailable, Launcher, LaunchFailed, RunReader
from keyresponse.receiver.spool import AlertSpool
from keyresponse.receiver.throttle import Throttle, TokenBuckets
from keyresponse.receiver.wire import Rejected, error_response, parse_json, read_body


def create_app(settings: WebhookSettings, launcher: Launcher, *, relaunch_every: float | None = None,
               github_client: httpx.AsyncClient | None = None,
               first_responder: FirstResponder | None = None, runs: RunReader | None = None) -> FastAPI:
    """The receiver. `launcher` starts runs (a `PrefectLauncher` in production).

    With `relaunch_every` (seconds), spooled alerts that never got a run are launched at start and then
    that often (GitHub, unlike EventBridge, does not redeliver after a 503). `runs` reads the state of
    an open incident's run (default: the launcher, when it can, as a `PrefectLauncher` does); without
    one, an alert about a key with an open incident is attached to it unchecked.
    """
    settings.check()
    spool = AlertSpool(settings.spool, incident_open_seconds=settings.incident_open_seconds)
    if runs is None and isinstance(launcher, RunReader):
        runs = launcher
    intake = AlertIntake(spool, launcher, launch_timeout_seconds=settings.launch_timeout_seconds,
                         answer_within_seconds=settings.answer_within_seconds, first_responder=first_responder,
                         runs=runs, run_check_timeout_seconds=settings.run_check_timeout_seconds,
                         stuck_after_seconds=settings.stuck_after_seconds)
    receiver = _Receiver(settings, intake, relaunch_every=relaunch_every, github_client=github_client)

    app = FastAPI(title="keyresponse alert receiver", lifespan=receiver.lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.spool = spool
    app.state.intake = intake
    app.add_middleware(Throttle, buckets=TokenBuckets(settings.unauthenticated_rate_per_second,
                                                      settings.unauthenticated_burst),
                       authenticated=frozenset(f"/alerts/{source}" for source in SOURCES))
    app.exception_handler(Rejected)(_rejected)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
    for source in SOURCES:
        if source != "github":
            app.post(f"/alerts/{source}", status_code=202)(receiver.route(source))
    app.post("/alerts/github", status_code=202)(receiver.receive_github)
    app.get("/healthz")(receiver.healthz)
    return app


class _Receiver:
    """What the routes share: the settings, the intake, and the GitHub API client (open while the app runs)."""

    def __init__(self, settings: WebhookSettings, intake: AlertIntake, *, relaunch_every: float | None,
                 github_client: httpx.AsyncClient | None) -> None:
        self.settings, self.intake, self.relaunch_every = settings, intake, relaunch_every
        self.github_client = github_client  # given: the caller closes it
        self.clients: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(self.intake.spool.remove_temp_files)  # left by a receiver that died mid-write
        self.clients["github"] = self.github_client or httpx.AsyncClient(timeout=10.0)
        background = asyncio.create_task(self._maintain(self.relaunch_every))
        try:
            yield
        finally:
            if not background.done():
                background.cancel()
            if self.github_client is None:
                await self.clients["github"].aclose()

    async def _maintain(self, every: float | None) -> None:
        """Archive what an older receiver left settled in alerts/; then, with `every`, relaunch forever."""
        try:
            await self.intake.archive_settled()
        except Exception:
            log.exception("archiving settled alert records failed")
        while every is not None:
            try:
                await self.intake.relaunch_pending()
            except Exception:  # a broken spool file must not stop the loop
                log.exception("relaunching spooled alerts failed")
            await asyncio.sleep(every)

    def route(self, source: Source) -> Callable[[Request], Awaitable[JSONResponse]]:
        """The route of `source` (any but github): a signature or a token, then the alerts in the body."""

        async def receive(request: Request) -> JSONResponse:
            body = await read_body(request, self.settings.max_body_bytes)
            credential = authenticate(request, body, self.settings, source)
            payload = parse_json(body)
            with _judged():
                alerts = normalize(source, payload)
            return await self.accept(alerts, credential)

        receive.__name__ = f"receive_{source}"
        return receive

    async def receive_github(self, request: Request) -> JSONResponse:
        body = await read_body(request, self.settings.max_body_bytes)
        authenticate_github(request, body, self.settings)
        event = request.headers.get("x-github-event")
        if event == "ping":
            return JSONResponse({"status": "pong"})
        if event is not None and event != "secret_scanning_alert":
            return JSONResponse({"status": "ignored", "error": "ignored",
                                 "detail": f"X-GitHub-Event {event[:60]!r} is not secret_scanning_alert"})
        payload = parse_json(body)
        with _judged():
            ref = github_alert_ref(payload)
            known = await self.intake.find_id("github", ref.alert_id)
            if known is not None:  # a redelivery: its key is in the spool, GitHub's API is not asked again
                return await self.accept([known.alert], "github")
            enriched = await fetch_github_secret(self.clients["github"], payload, ref, self.settings)
        with _judged():
            alerts = normalize("github", enriched)
        return await self.accept(alerts, "github")

    async def healthz(self) -> dict[str, Any]:
        """O(1): counters in memory, never a read of the spool (anyone may call it)."""
        return {"status": "ok", **self.intake.health()}

    async def accept(self, alerts: list[Alert], credential: Credential) -> JSONResponse:
        """Hand `alerts` (one body's) to the intake; 202 with the first one's answer (and every one's)."""
        held_back = credential not in CONTAINING_CREDENTIALS and any(a.high_confidence for a in alerts)
        if held_back:  # kept, but its containment waits for an approval (package docstring)
            log.warning("alert %s is high-confidence but came with the %s credential: no automatic containment",
                        ", ".join(a.idempotency_key for a in alerts), credential)
            alerts = [a.model_copy(update={"high_confidence": False}) for a in alerts]
        accepted = [await self._accept_one(alert) for alert in alerts]
        body = accepted[0].body()
        if len(accepted) > 1:
            body["alerts"] = [a.body() for a in accepted]
        if held_back:
            body["automatic_containment"] = False
            body["note"] = (f"accepted with the {credential} credential, which may not trigger automatic "
                            "containment: the containment waits for an approval")
        return JSONResponse(body, status_code=202)

    async def _accept_one(self, alert: Alert) -> Accepted:
        """The intake's answer; 503 with Retry-After when the launch cannot be made (the alert is spooled)."""
        try:
            return await self.intake.accept(alert)
        except DeploymentUnavailable as exc:
            raise self._unavailable(alert, exc.incident_id, "deployment_not_found", f"{exc}; the alert is spooled "
                                    "and is launched when it is delivered again or the receiver restarts") from None
        except LaunchFailed as exc:
            raise self._unavailable(alert, exc.incident_id, "launch_failed", f"{exc}; the alert is spooled") from None

    def _unavailable(self, alert: Alert, incident_id: str | None, error: str, detail: str) -> Rejected:
        return Rejected(503, error, detail, headers={"Retry-After": str(self.settings.retry_after_seconds)},
                        extra={"incident_id": incident_id or alert.incident_id, "alert_id": alert.alert_id})


@contextmanager
def _judged() -> Iterator[None]:
    """What an alert that asks for nothing (200 "ignored") and one that is not valid (422) are answered."""
    try:
        yield
    except NotActionable as exc:
        raise Rejected(200, "ignored", str(exc), extra={"status": "ignored"}) from None
    except InputError as exc:
        raise Rejected(422, "invalid_alert", str(exc)) from None


async def fetch_github_secret(client: httpx.AsyncClient, payload: dict[str, JsonValue], ref: GitHubAlertRef,
                              settings: WebhookSettings) -> dict[str, JsonValue]:
    """The webhook payload (checked into `ref` by `github_alert_ref`) with `alert.secret` filled in
    from `GET /repos/{o}/{r}/secret-scanning/alerts/{n}`."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if settings.github_token is not None:
        headers["Authorization"] = f"Bearer {settings.github_token.get_secret_value()}"
    url = settings.github_api_url.rstrip("/") + ref.api_path
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise Rejected(502, "github_api_unavailable", f"GET {ref.api_path}: {type(exc).__name__}: {exc}") from None
    if response.status_code == 404:
        raise Rejected(422, "invalid_alert", f"GitHub has no secret-scanning alert {ref.repository}#{ref.number} "
                                             "(or the token may not read it)")
    if response.status_code in (401, 403):
        raise Rejected(502, "github_api_refused", f"GET {ref.api_path} answered {response.status_code}: check "
                                                  "KEYRESPONSE_WEBHOOK_GITHUB_TOKEN (secret scanning alerts: read)")
    if response.status_code != 200:
        raise Rejected(502, "github_api_error", f"GET {ref.api_path} answered {response.status_code}")
    try:
        fetched = response.json()
        secret = fetched["secret"]
    except (ValueError, KeyError, TypeError):
        raise Rejected(502, "github_api_error", f"GET {ref.api_path} returned no 'secret' field") from None
    alert = payload["alert"]
    if not isinstance(alert, dict):  # github_alert_ref checked it is an object
        raise Rejected(422, "invalid_alert", "alert must be a JSON object")
    return {**payload, "alert": {**alert, "secret": secret}}


async def _rejected(_: Request, exc: Rejected) -> JSONResponse:
    return error_response(exc.status, exc.error, exc.detail, exc.headers, exc.extra)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "validation_error", [{"loc": list(e.get("loc", ())), "msg": e.get("msg")}
                                                    for e in exc.errors()])


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    names = {404: "not_found", 405: "method_not_allowed"}
    return error_response(exc.status_code, names.get(exc.status_code, "http_error"), exc.detail,
                          dict(exc.headers) if exc.headers else None)
