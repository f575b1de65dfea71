"""The alert receiver: a FastAPI app that authenticates an alert, normalizes it, spools it, starts a run.

    POST /alerts/{guardduty,health,securityhub,cloudtrail,generic}
        X-Keyresponse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>
        or Authorization: Bearer <EventBridge connection token>   (not on /alerts/generic)
        or Authorization: Bearer <static bearer token>             (never automatic containment)
    POST /alerts/github      X-Hub-Signature-256: sha256=<hex HMAC-SHA256(github secret, body)> (GitHub's scheme)
    GET  /healthz            counters kept in memory (never a read of the spool); 429 past a per-address rate

One secret per source, each its own variable; the receiver refuses to start when two are the same, or
one is set but empty:

| credential | variable | routes | may trigger automatic containment |
|---|---|---|---|
| `hmac` | KEYRESPONSE_WEBHOOK_SECRET (+ _SECRETS) | all but github | yes: signed with a timestamp, replays refused after `replay_window_seconds` |
| `eventbridge` | KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN | guardduty, health, securityhub, cloudtrail | yes: AWS's own delivery (below) |
| `bearer` | KEYRESPONSE_WEBHOOK_BEARER_TOKEN | all but github | no: a static header anyone who sees it once can send |
| `github` | KEYRESPONSE_WEBHOOK_GITHUB_SECRET | github | no: GitHub signs without a timestamp (a delivery can be replayed) and its alerts are never high-confidence |

An alert accepted with a credential that may not trigger automatic containment is kept with
`high_confidence` false: neither the receiver's first response nor the flow's early containment runs,
and its containment waits for an approval like any other (the answer says so: `"automatic_containment":
false`). The EventBridge connection's token is the exception among static tokens: EventBridge API
destinations cannot sign a request, the token lives only in the connection (EventBridge keeps it in
Secrets Manager) and in the receiver's environment, it is accepted only on the routes AWS's events
arrive on, and the first response still checks with STS and IAM that the key is in an account in
scope and not the responder's or a protected principal's.

Order of checks: body size (413), authentication (401), JSON (400), alert contents (422); a well-formed
alert that asks for nothing (GitHub alert about another secret type, sample finding) is 200 "ignored".
An accepted alert is written to the spool *before* the launcher runs, then answered with 202
`{"incident_id", "alert_id", "flow_run_id", "ui_url", "status"}`. The same finding again maps to the same
incident and run; another alert about a key whose incident is still open is attached to that incident
(`"duplicate_of"`), never a second run. When the deployment does not exist yet the answer is 503 with
Retry-After, and the spooled alert is launched on redelivery or by `relaunch_pending` at the next start.

The receiver follows its runs. A key stays attached to its incident (`<spool>/open/`) until the run
closes it, `keyresponse release KEY` frees it, or `incident_open_seconds` pass. On each alert about a key
with an open incident, the receiver reads that incident's flow run once, by id (`RunReader.run_state`):

* **Terminal** (the run will never do anything again): Prefect's final states Completed, Failed,
  Crashed and Cancelled, and a run Prefect no longer knows. The key is freed and the alert opens a new
  incident, with a first response when it is high-confidence; the answer names the ended incident
  (`"replaced"`). A Completed run has normally freed its keys itself; one that did not (its spool
  write failed) frees them here.
* **Alive**: everything else — Scheduled, Late, Pending, Running, Paused (waiting for an approval),
  Cancelling, AwaitingRetry — and an incident whose run is still being launched. The alert is
  attached (`"duplicate"` / `"redelivered"`, with `"run_state"`).
* **Prefect cannot be reached** (or does not answer within `run_check_timeout_seconds`): the safe
  answer is to keep the key attached. The alert is spooled and attached as before, the answer says so
  (`"warning"`), and the next alert about the key checks again. An alert is never dropped.

A redelivery is answered from the spool as before, unless the incident it belongs to still holds its
key and that incident's run has ended: then it opens a new incident like any other alert about the key.

Incident generations. An alert's first incident is its generation 1; each time the incident it belongs
to ends without closing, the alert's next incident is one generation more. The Prefect idempotency key
is `source:alert_id@gen<N>` (Prefect never forgets one: without the generation, the alert's old run
would come back forever) and generation N > 1 has an incident id of its own. When a launch is answered
with a run that had already ended (a spool started afresh while Prefect kept its runs), the alert moves
to its next generation and is launched again: the answer is never "launched" with an ended run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable
from uuid import UUID

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyresponse.alerts import (
    SOURCES,
    Alert,
    GitHubAlertRef,
    NotActionable,
    Source,
    github_alert_ref,
    idempotency_key,
    normalize,
)
from keyresponse.errors import ConfigurationError, InputError, KeyResponseError
from keyresponse.files import write_atomic
from keyresponse.notifications import IncidentMessage, alert_stuck, launch_failed
from keyresponse.notifications import send as _send

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Keyresponse-Signature"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
DEFAULT_DEPLOYMENT = "respond-to-exposed-key/respond-to-exposed-key"


def _default_spool() -> Path:
    from keyresponse.settings import get_settings

    return get_settings().home / "webhook-spool"


class WebhookSettings(BaseSettings):
    """The receiver's settings; environment variables carry the `KEYRESPONSE_WEBHOOK_` prefix.

    `KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN` is one setting for both ends of AWS's delivery: the EventBridge
    connection that `keyresponse readiness --apply` creates sends `Authorization: Bearer <it>`
    (`Settings.webhook_eventbridge_token` reads the same variable), and the receiver accepts it.
    """

    model_config = SettingsConfigDict(env_prefix="KEYRESPONSE_WEBHOOK_", env_file=None, extra="ignore")

    secret: SecretStr | None = Field(default=None, description="HMAC secret for X-Keyresponse-Signature.")
    secrets: list[SecretStr] = Field(default_factory=list, description="More HMAC secrets (rotation), JSON list.")
    eventbridge_token: SecretStr | None = Field(
        default=None, description="Token of the EventBridge connection (Authorization: Bearer), the one "
        "`readiness --apply` puts in it from the same variable, KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN.")
    bearer_token: SecretStr | None = Field(default=None, description="Token for Authorization: Bearer.")
    github_secret: SecretStr | None = Field(
        default=None, description="GitHub webhook secret (X-Hub-Signature-256), for /alerts/github only.")
    replay_window_seconds: int = Field(default=300, ge=1, description="Max age (and skew) of a signature.")
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="Larger bodies get 413 before parsing.")
    github_api_url: str = Field(default="https://api.github.com", description="GitHub REST API base URL.")
    github_token: SecretStr | None = Field(default=None, description="Token that may read secret-scanning alerts.")
    deployment_name: str = Field(default=DEFAULT_DEPLOYMENT, description="flow-name/deployment-name to run.")
    spool: Path = Field(default_factory=_default_spool, description="Folder of accepted alerts.")
    prefect_ui_url: str | None = Field(default=None, description="Prefect UI base URL for links in answers.")
    incident_open_seconds: int = Field(
        default=72 * 3600, ge=1, description="How long a key stays mapped to its incident unless closed earlier."
    )
    launch_timeout_seconds: float = Field(default=20.0, gt=0, description="Max wait for the launcher.")
    answer_within_seconds: float = Field(
        default=4.0, gt=0, description="Answer 202 `launching` (alert spooled, launch going on) when the launch "
        "takes longer than this; EventBridge API destinations give up after 5 s.")
    retry_after_seconds: int = Field(default=30, ge=1, description="Retry-After of a 503.")
    unauthenticated_rate_per_second: float = Field(
        default=5.0, gt=0, description="Requests a second one client address may make to the routes that take no "
        "credentials (/healthz, and any path that is not an alert route), after its burst; more get 429.")
    unauthenticated_burst: int = Field(
        default=20, ge=1, description="How many such requests one client address may make at once.")
    run_check_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Max wait for the state of an open incident's flow run; past it (or when "
        "Prefect cannot be reached) the alert stays attached to the incident and the answer says so.")
    stuck_after_seconds: float = Field(
        default=600.0, gt=0, description="An alert still without a flow run this long after it was accepted is "
        "notified (Slack/SNS), once; the relaunch pass (every RETRY_AFTER_SECONDS) finds it.")

    def hmac_secrets(self) -> list[bytes]:
        values = ([self.secret] if self.secret else []) + list(self.secrets)
        return [v.get_secret_value().encode() for v in values if v.get_secret_value()]

    def github_secrets(self) -> list[bytes]:
        """GitHub's secret, and no other: it never falls back to the HMAC secret."""
        if self.github_secret and self.github_secret.get_secret_value():
            return [self.github_secret.get_secret_value().encode()]
        return []

    def credentials(self) -> list[tuple[str, SecretStr]]:
        """Every secret configured, with the variable it comes from."""
        named: list[tuple[str, SecretStr | None]] = [
            ("KEYRESPONSE_WEBHOOK_SECRET", self.secret),
            *((f"KEYRESPONSE_WEBHOOK_SECRETS[{i}]", value) for i, value in enumerate(self.secrets)),
            ("KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN", self.eventbridge_token),
            ("KEYRESPONSE_WEBHOOK_BEARER_TOKEN", self.bearer_token),
            ("KEYRESPONSE_WEBHOOK_GITHUB_SECRET", self.github_secret),
        ]
        return [(name, value) for name, value in named if value is not None]

    def check(self) -> None:
        """Refuse a configuration the receiver must not start with: no credential at all, an empty one, or
        one secret used by two sources (each source's secret is its own: a leak of one must not open the
        others)."""
        credentials = self.credentials()
        for name, value in credentials:
            if not value.get_secret_value().strip():  # it would start, refuse every alert and look healthy
                raise ConfigurationError(f"{name} is set but empty: unset it, or set it to a secret of its own")
        if not credentials:
            raise ConfigurationError("the webhook needs KEYRESPONSE_WEBHOOK_SECRET, KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN, "
                                     "KEYRESPONSE_WEBHOOK_BEARER_TOKEN or KEYRESPONSE_WEBHOOK_GITHUB_SECRET: it never "
                                     "accepts unauthenticated alerts")
        first_use: dict[str, str] = {}
        for name, value in credentials:
            text = value.get_secret_value().strip()
            if text in first_use:
                raise ConfigurationError(f"{first_use[text]} and {name} hold the same secret: give each source its "
                                         "own (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
            first_use[text] = name


# --- signing (what a client does) -----------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `X-Keyresponse-Signature` value for `body`: `t=<unix>,v1=<hex HMAC-SHA256 of "t." + body>`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def sign_github(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends: `sha256=<hex HMAC-SHA256 of body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- launching --------------------------------------------------------------------------------------


#: Prefect's final state types: a run in one of them never does anything again by itself.
TERMINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: Not Prefect state types: a run Prefect no longer knows (deleted, or a new server database), and an
#: incident whose opening alert has since opened a newer one. Nobody responds to either: terminal too.
NOT_FOUND = "NOT_FOUND"
SUPERSEDED = "SUPERSEDED"


@dataclass(frozen=True)
class RunState:
    """A flow run's state as read from Prefect: `name` as the UI shows it (Running, Paused, Late, Crashed,
    ...) and `type`, Prefect's state type (RUNNING, PAUSED, SCHEDULED, CRASHED, ...)."""

    name: str
    type: str

    @property
    def terminal(self) -> bool:
        """Completed, Failed, Crashed, Cancelled, or gone. A Paused run (waiting for an approval), a Late
        one (waiting for a runner) and a Cancelling one are alive."""
        return self.type in TERMINAL_STATE_TYPES or self.type in (NOT_FOUND, SUPERSEDED)


@dataclass(frozen=True)
class LaunchResult:
    flow_run_id: str
    ui_url: str | None
    state: RunState | None = None  # the run's state as the launch answered it (an ended run: a used key)


class DeploymentUnavailable(KeyResponseError):
    """The deployment to run does not exist (yet): answer 503 and launch the spooled alert later."""

    incident_id: str | None = None  # the incident the spooled alert opened, once known


class LaunchFailed(KeyResponseError):
    """The launcher failed for a reason other than a missing deployment; the alert stays spooled."""

    incident_id: str | None = None


class FirstResponder(Protocol):
    """Contains a high-confidence alert's key before any flow run starts (`tasks.first_response.FirstResponder`,
    given by `keyresponse serve-webhook`: the receiver is library code and never imports the tasks layer)."""

    def start(self, alert: Alert, incident_id: str) -> bool: ...


class Launcher(Protocol):
    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult: ...


@runtime_checkable
class RunReader(Protocol):
    async def run_state(self, flow_run_id: str) -> RunState: ...


class PrefectRuns:
    """Reads flow runs from the Prefect API: the current Prefect settings' one, or `api_url`."""

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = api_url

    def _client(self) -> PrefectClient:
        from prefect.client.orchestration import PrefectClient, get_client

        return PrefectClient(self.api_url) if self.api_url else get_client()

    async def run_state(self, flow_run_id: str) -> RunState:
        """One read of the flow run by id. Raises when Prefect cannot be reached."""
        from prefect.exceptions import ObjectNotFound

        async with self._client() as client:
            try:
                run = await client.read_flow_run(UUID(flow_run_id))
            except ObjectNotFound:
                return RunState(name="Not found", type=NOT_FOUND)
        return _run_state(run.state)


class PrefectLauncher(PrefectRuns):
    """Starts the response deployment with `arun_deployment`, without waiting for the run; reads run states."""

    def __init__(self, deployment_name: str = DEFAULT_DEPLOYMENT, *, ui_url: str | None = None,
                 api_url: str | None = None) -> None:
        import prefect.deployments  # noqa: F401 - seconds of imports: pay them at start, not on the first alert

        super().__init__(api_url)
        self.deployment_name = deployment_name
        self.ui_url = ui_url

    def _ui_base(self) -> str | None:
        if self.ui_url:
            return self.ui_url.rstrip("/")
        from prefect.settings import get_current_settings

        current = get_current_settings()
        if current.ui_url and not self.api_url:
            return str(current.ui_url).rstrip("/")
        api = self.api_url or current.api.url
        return str(api).rstrip("/").removesuffix("/api") if api else None

    async def launch(self, alert: Alert, incident_id: str, idempotency_key: str) -> LaunchResult:
        from prefect.deployments import arun_deployment
        from prefect.exceptions import ObjectNotFound

        async with self._client() as client:
            try:
                flow_run = await arun_deployment(
                    self.deployment_name,
                    client=client,
                    parameters={"alert": alert.model_dump(mode="json"), "incident_id": incident_id},
                    idempotency_key=idempotency_key,
                    timeout=0,
                    as_subflow=False,
                    flow_run_name=f"{incident_id}-{alert.source}",
                )
            except ObjectNotFound:
                raise DeploymentUnavailable(f"deployment {self.deployment_name!r} does not exist yet") from None
        base = self._ui_base()
        return LaunchResult(flow_run_id=str(flow_run.id),
                            ui_url=f"{base}/runs/flow-run/{flow_run.id}" if base else None,
                            state=_run_state(flow_run.state))


def _run_state(state: Any) -> RunState:
    """A Prefect `State` as a `RunState`. Prefect gives every run a state; a run without one is not
    called ended."""
    if state is None:
        return RunState(name="Unknown", type="UNKNOWN")
    kind = str(state.type.value)
    return RunState(name=str(state.name or kind.title()), type=kind)


# --- the spool --------------------------------------------------------------------------------------


class Replaced(BaseModel):
    """The incident whose run had ended when an alert about its key opened a new one."""

    incident_id: str
    flow_run_id: str | None
    run_state: str


class SpoolRecord(BaseModel):
    """One accepted alert, as written to `<spool>/alerts/<name>.json` (one file per alert, its latest incident)."""

    alert: Alert
    incident_id: str
    idempotency_key: str
    received_at: datetime
    generation: int = Field(default=1, ge=0, description="How many incidents this alert has opened: 1 for "
                            "its first, one more each time the one it belonged to ended; 0 if only attached.")
    replaced: Replaced | None = Field(default=None, description="The ended incident this one replaced.")
    duplicate_of: str | None = None
    incident_record: str | None = Field(default=None, description="Spool file of the alert that opened the incident.")
    flow_run_id: str | None = None
    ui_url: str | None = None
    launch_error: str | None = None
    notified: list[str] = Field(default_factory=list, description="What was notified about this alert's "
                                "incident (`launch_failed`, `stuck`): each is sent once.")


class OpenIncident(BaseModel):
    """`<spool>/open/<subject hash>.json`: this key (or user) belongs to this incident while it is open."""

    subject: str
    incident_id: str
    alert_file: str
    opened_at: datetime


_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def settled(record: SpoolRecord) -> bool:
    """A record the receiver has nothing more to do for: its incident has a flow run, or it was attached to
    another incident. Only the others (waiting for a launch) stay in `<spool>/alerts/`."""
    return record.flow_run_id is not None or record.duplicate_of is not None


class AlertSpool:
    """Accepted alerts, one JSON file per alert id, and which incident each key belongs to while open.

    `<spool>/alerts/` holds only the alerts still waiting for a flow run, so the relaunch pass reads no
    more than those; a settled record (`settled`) is written to `<spool>/archive/` under the same name
    instead. Lookups by alert id (`find`, a redelivery) and by name (`opener`, the alert that opened an
    incident) read the waiting record first, then the archived one, so the duplicate detection and the
    incident generations see every alert as before. The archive is never listed; its files can be
    deleted by hand once no sender would deliver them again (EventBridge retries for 24 h, GitHub lets a
    person redeliver for 3 days): a redelivery after that opens a new incident.

    One bad file never stops the others: a file that cannot be read as what it should be (cut short,
    not JSON, another schema, a folder) is moved to `<spool>/quarantine/` with an error in the log, and
    the spool goes on as if it were not there; the temporary files of `write_atomic` (`.tmp-*`) are never
    read as records, and `remove_temp_files` deletes those a process left behind when it died mid-write
    (the receiver calls it at start: no other process writes files in the spool, the flow and
    `keyresponse release` only delete them).
    """

    def __init__(self, folder: Path, *, incident_open_seconds: int = 72 * 3600) -> None:
        self.folder = Path(folder)
        self.alerts_dir = self.folder / "alerts"
        self.open_dir = self.folder / "open"
        self.archive_dir = self.folder / "archive"
        self.quarantine_dir = self.folder / "quarantine"
        self.incident_open = timedelta(seconds=incident_open_seconds)
        self.quarantined = 0  # files this instance moved to quarantine

    def record_path(self, alert: Alert) -> Path:
        return self.path_for(alert.source, alert.alert_id)

    def path_for(self, source: str, alert_id: str) -> Path:
        return self.alerts_dir / f"{source}-{_digest(idempotency_key(source, alert_id))}.json"

    def load(self, path: Path) -> SpoolRecord:
        """The record at `path`; raises when it is missing or unreadable (see `read`)."""
        return SpoolRecord.model_validate_json(path.read_bytes())

    def read(self, path: Path) -> SpoolRecord | None:
        """The record at `path`; None when there is none, or when it is unreadable (then quarantined)."""
        return self._read(path, SpoolRecord)

    def _read(self, path: Path, model: type[_M]) -> _M | None:
        try:
            return model.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            self.quarantine(path, f"{type(exc).__name__}: " + " ".join(str(exc).split("\n")[:2]))
            return None

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move an unreadable spool file to `<spool>/quarantine/` (its name kept, with where it was and when)."""
        destination = self.quarantine_dir / f"{path.parent.name}-{path.name}.{time.time_ns()}"
        try:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
        except FileNotFoundError:  # another reader moved it a moment ago
            return None
        except OSError as exc:
            log.error("spool file %s is unreadable (%s) and could not be moved to %s: %s; it is skipped",
                      path, reason[:300], self.quarantine_dir, exc)
            return None
        self.quarantined += 1
        log.error("spool file %s is unreadable (%s): moved to %s; the spool goes on without it",
                  path, reason[:300], destination)
        return destination

    def _files(self, folder: Path) -> list[Path]:
        """The spool files of `folder`, never `write_atomic`'s temporary files (`.tmp-*.json`)."""
        if not folder.exists():
            return []
        return [p for p in folder.glob("*.json") if not p.name.startswith(".")]

    def remove_temp_files(self) -> int:
        """Delete the temporary files a writer that died mid-write left behind; how many there were."""
        removed = 0
        for folder in (self.alerts_dir, self.open_dir, self.archive_dir):
            for path in folder.glob(".tmp-*") if folder.exists() else []:
                with suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if removed:
            log.warning("removed %d temporary file(s) a process left in the spool %s when it stopped mid-write",
                        removed, self.folder)
        return removed

    def find(self, alert: Alert) -> SpoolRecord | None:
        return self.find_id(alert.source, alert.alert_id)

    def find_id(self, source: str, alert_id: str) -> SpoolRecord | None:
        return self._current(self.path_for(source, alert_id))

    def _current(self, live: Path) -> SpoolRecord | None:
        """The record of `<spool>/alerts/<name>`: the waiting one, or the archived one when it is newer
        (its generation, or the same one settled: a save whose removal of the waiting copy was cut short)."""
        record = self.read(live)
        if record is not None and settled(record):
            return record  # an older receiver's spool, not archived yet
        archived = self.read(self.archive_dir / live.name)
        if archived is None or (record is not None and record.generation > archived.generation):
            return record
        return archived

    def save(self, record: SpoolRecord) -> Path:
        """Write `record` (a settled one to the archive); returns its path in `<spool>/alerts/`."""
        path = self.record_path(record.alert)
        data = record.model_dump_json(indent=2).encode()
        if not settled(record):
            write_atomic(path, data)
            return path
        write_atomic(self.archive_dir / path.name, data)
        with suppress(FileNotFoundError):
            path.unlink()
        return path

    def waiting_files(self) -> list[Path]:
        """The files of `<spool>/alerts/` (records waiting for a launch, and those an older receiver left)."""
        return self._files(self.alerts_dir)

    def archive_if_settled(self, path: Path) -> bool:
        """Move the record at `path` (in `<spool>/alerts/`) to the archive if it is settled."""
        record = self.read(path)
        if record is None or not settled(record):
            return False
        archived = self.read(self.archive_dir / path.name)
        if archived is not None and archived.generation > record.generation:
            with suppress(FileNotFoundError):
                path.unlink()
            return True
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        with suppress(FileNotFoundError):  # not fsynced: a move lost in a crash is made again at the next start
            os.replace(path, self.archive_dir / path.name)
        return True

    def _open_path(self, subject: str) -> Path:
        return self.open_dir / f"{_digest(subject)}.json"

    def open_incident(self, subject: str, now: datetime) -> OpenIncident | None:
        path = self._open_path(subject)
        entry = self._read(path, OpenIncident)
        if entry is None:
            return None
        if now - entry.opened_at > self.incident_open:
            with suppress(FileNotFoundError):
                path.unlink()
            return None
        return entry

    def claim(self, subject: str, incident_id: str, alert_file: Path, now: datetime) -> OpenIncident:
        """Map `subject` to `incident_id` unless another incident holds it; returns the holder."""
        entry = OpenIncident(subject=subject, incident_id=incident_id, alert_file=alert_file.name, opened_at=now)
        while not write_atomic(self._open_path(subject), entry.model_dump_json().encode(), exclusive=True):
            holder = self.open_incident(subject, now)
            if holder is not None:
                return holder
        return entry

    def opener(self, holder: OpenIncident) -> SpoolRecord | None:
        """The spooled alert that opened `holder` (where its flow run id is), None when it is gone."""
        return self.named(holder.alert_file)

    def named(self, name: str) -> SpoolRecord | None:
        """The record whose file in `<spool>/alerts/` is (or was, before it was archived) `name`."""
        return self._current(self.alerts_dir / Path(name).name)

    def open_incidents(self, now: datetime) -> list[OpenIncident]:
        """Every key (or user) attached to an incident that is open, oldest first."""
        found: list[OpenIncident] = []
        for path in self._files(self.open_dir):
            listed = self._read(path, OpenIncident)
            entry = self.open_incident(listed.subject, now) if listed is not None else None
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: (e.opened_at, e.subject))

    def release(self, subject: str, now: datetime) -> OpenIncident | None:
        """Free `subject` by hand, whatever holds it (the run is left alone); returns what held it."""
        entry = self.open_incident(subject, now)
        if entry is not None:
            with suppress(FileNotFoundError):
                self._open_path(subject).unlink()
        return entry

    def close_incident(self, incident_id: str) -> int:
        """Forget which keys belong to `incident_id` (call when it ends); returns how many were mapped."""
        closed = 0
        for path in self._files(self.open_dir):
            entry = self._read(path, OpenIncident)
            if entry is not None and entry.incident_id == incident_id:
                with suppress(FileNotFoundError):
                    path.unlink()
                    closed += 1
        return closed

    def pending(self) -> list[SpoolRecord]:
        """Accepted alerts that opened an incident but have no flow run yet, oldest first (reads only
        `<spool>/alerts/`: the waiting records, and any settled one not archived yet)."""
        records = [r for r in map(self.read, self._files(self.alerts_dir)) if r is not None]
        return sorted((r for r in records if not settled(r)), key=lambda r: r.received_at)


# --- intake -----------------------------------------------------------------------------------------

Status = Literal["launched", "launching", "duplicate", "redelivered"]

#: An alert moves to its next generation when a launch is answered with an ended run; past this many,
#: something other than old runs is wrong, and the launch fails (the alert stays spooled).
MAX_GENERATIONS = 50


@dataclass(frozen=True)
class RunCheck:
    """What the receiver found about the flow run of an open incident."""

    incident_id: str
    flow_run_id: str | None
    state: RunState | None = None
    error: str | None = None  # the state could not be read: the incident is kept

    @property
    def ended(self) -> bool:
        return self.state is not None and self.state.terminal

    def warning(self) -> str | None:
        if self.error is None:
            return None
        return (f"{self.error}; the alert is spooled and attached to {self.incident_id}, and the next alert "
                "about the key checks its run again")


@dataclass(frozen=True)
class Accepted:
    alert: Alert
    incident_id: str
    status: Status
    flow_run_id: str | None
    ui_url: str | None
    duplicate_of: str | None = None
    launch_error: str | None = None
    run_state: str | None = None  # the open incident's run, as read when this alert was attached to it
    warning: str | None = None
    replaced: Replaced | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"incident_id": self.incident_id, "alert_id": self.alert.alert_id,
                               "flow_run_id": self.flow_run_id, "ui_url": self.ui_url, "status": self.status}
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        if self.run_state is not None:
            out["run_state"] = self.run_state
        if self.replaced is not None:
            out["replaced"] = self.replaced.model_dump()
        if self.warning is not None:
            out["warning"] = self.warning
        return out


class AlertIntake:
    """Spool, then launch: one incident per key, however many alerts arrive at once.

    Every file of the spool is read and written in worker threads (`asyncio.to_thread`), never on the
    event loop, so a slow disk or a large spool never holds up other requests. Deciding (find the
    spooled alert, find or claim the key's open incident, spool) happens under one lock (`_deciding`),
    one alert at a time, as it did when that work ran on the event loop and was atomic there; launching
    and reading a run's state happen outside it, and an alert is always spooled before either. A launch
    in flight is shared: a redelivery of that alert, or a duplicate about the same key, waits for it
    instead of launching again, and alerts about other keys launch in parallel. Reads of one run's
    state at once are shared too. With a `first_responder`, a new incident's key is contained in the
    background the moment the alert is spooled (see `tasks.first_response`). With `runs`, an
    alert about a key with an open incident first reads that incident's run: an ended run frees the key
    (module docstring). `counts` (accepted, launched, first responses, ...) and `pending` (as the last
    relaunch pass found it) are what `/healthz` reports, without reading the spool.
    """

    def __init__(self, spool: AlertSpool, launcher: Launcher, *, launch_timeout_seconds: float = 20.0,
                 answer_within_seconds: float = 4.0, first_responder: FirstResponder | None = None,
                 runs: RunReader | None = None, run_check_timeout_seconds: float = 2.0,
                 stuck_after_seconds: float = 600.0,
                 notify: Callable[[IncidentMessage], object] | None = None) -> None:
        self.spool = spool
        self.launcher = launcher
        self.launch_timeout_seconds = launch_timeout_seconds
        self.first_responder = first_responder
        self.answer_within_seconds = answer_within_seconds
        self.runs = runs
        self.run_check_timeout_seconds = run_check_timeout_seconds
        self._inflight: dict[str, asyncio.Future[Accepted]] = {}  # by incident id
        self._reads: dict[str, asyncio.Future[RunState]] = {}  # by flow run id
        self._deciding = asyncio.Lock()
        self.counts: Counter[str] = Counter()
        self.pending: int | None = None  # alerts waiting for a launch, as the last relaunch pass found them
        self.stuck_after = timedelta(seconds=stuck_after_seconds)
        self.notify = notify or _send
        self._sending: set[asyncio.Future[object]] = set()

    @staticmethod
    async def _io(work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`work` (spool file I/O) in a worker thread: the event loop goes on serving other requests."""
        return await asyncio.to_thread(work, *args, **kwargs)

    async def accept(self, alert: Alert) -> Accepted:
        now = datetime.now(UTC)
        async with self._deciding:
            existing = await self._io(self.spool.find, alert)
            then = await (self._again(existing, now) if existing is not None else self._first(alert, now))
        return await then

    async def find_id(self, source: Source, alert_id: str) -> SpoolRecord | None:
        """The spooled alert of `source` with `alert_id` (a GitHub redelivery is answered from it)."""
        return await self._io(self.spool.find_id, source, alert_id)

    async def _first(self, alert: Alert, now: datetime) -> Awaitable[Accepted]:
        """(Under `_deciding`.) An alert not spooled before: attached to its key's open incident, or opening one."""
        holder = await self._io(self._holder, alert, None, now)
        if holder is None:
            return await self._open(alert, 1, now, replaced=None)
        attached = await self._io(self._attach_record, alert, holder, now, generation=0)  # spooled before any wait
        return self._attached(attached, holder, now)

    async def _attached(self, attached: SpoolRecord, holder: OpenIncident, now: datetime) -> Accepted:
        check = await self._check(holder)
        if not check.ended:
            return await self._answer(attached, "duplicate", check)
        return await self._reopen(attached.alert, 1, now, check)

    async def _again(self, existing: SpoolRecord, now: datetime) -> Awaitable[Accepted]:
        """(Under `_deciding`.) An alert already spooled: answered from the spool, unless the incident it
        belongs to still holds its key and that incident's run has ended; then it opens its next generation."""
        if existing.duplicate_of is None:
            if existing.incident_id in self._inflight:
                return self._rejoin(existing, self._inflight[existing.incident_id])
            if existing.flow_run_id is None:  # spooled before, launch failed: try again
                return self._finish_launch(existing, self._start_launch(existing))
        belongs_to = existing.duplicate_of or existing.incident_id
        holder = await self._io(self._holder, existing.alert, belongs_to, now)
        if holder is None:  # its incident closed, was released or expired: nothing to follow
            return self._answer(existing, "redelivered")
        return self._redelivered(existing, holder, now)

    async def _rejoin(self, existing: SpoolRecord, task: asyncio.Future[Accepted]) -> Accepted:
        launched = await self._finish_launch(existing, task)
        return replace(launched, status="redelivered" if launched.flow_run_id else launched.status)

    async def _redelivered(self, existing: SpoolRecord, holder: OpenIncident, now: datetime) -> Accepted:
        check = await self._check(holder)
        if not check.ended:
            return await self._answer(existing, "redelivered", check)
        return await self._reopen(existing.alert, existing.generation + 1, now, check)

    async def _reopen(self, alert: Alert, generation: int, now: datetime, check: RunCheck) -> Accepted:
        """The incident `alert` belongs to has ended: free its keys, open the alert's `generation`-th."""
        async with self._deciding:
            replaced = await self._io(self._release, check)
            then = await self._open(alert, generation, now, replaced=replaced)
        return await then

    def _holder(self, alert: Alert, incident_id: str | None, now: datetime) -> OpenIncident | None:
        """(Worker thread.) The open incident holding one of the alert's subjects (`incident_id`'s, if given)."""
        for subject in alert.subjects:
            holder = self.spool.open_incident(subject, now)
            if holder is not None and incident_id in (None, holder.incident_id):
                return holder
        return None

    async def _check(self, holder: OpenIncident) -> RunCheck:
        """The state of `holder`'s flow run: one read by id (shared with concurrent checks of that run)."""
        opener = await self._io(self.spool.opener, holder)
        if opener is None:
            return RunCheck(holder.incident_id, None, error=f"the alert that opened {holder.incident_id} is gone "
                            "from the spool, so its run is unknown (`keyresponse release KEY` frees the key)")
        if opener.incident_id != holder.incident_id:  # its alert has opened a newer incident since
            return RunCheck(holder.incident_id, None, state=RunState(name="Superseded", type=SUPERSEDED))
        if opener.flow_run_id is None or self.runs is None:  # still being launched: alive
            return RunCheck(holder.incident_id, opener.flow_run_id)
        try:
            state = await asyncio.wait_for(asyncio.shield(self._read(opener.flow_run_id)),
                                           timeout=self.run_check_timeout_seconds)
        except TimeoutError:
            return RunCheck(holder.incident_id, opener.flow_run_id, error=f"Prefect did not answer with the "
                            f"state of flow run {opener.flow_run_id} within {self.run_check_timeout_seconds:g} s")
        except Exception as exc:
            log.warning("reading flow run %s of %s failed: %s", opener.flow_run_id, holder.incident_id, exc)
            return RunCheck(holder.incident_id, opener.flow_run_id, error=f"could not read the state of flow run "
                            f"{opener.flow_run_id} from Prefect ({type(exc).__name__}: {exc})"[:400])
        return RunCheck(holder.incident_id, opener.flow_run_id, state=state)

    def _read(self, flow_run_id: str) -> asyncio.Future[RunState]:
        assert self.runs is not None
        task = self._reads.get(flow_run_id)
        if task is None:
            task = asyncio.ensure_future(self.runs.run_state(flow_run_id))
            self._reads[flow_run_id] = task

            def done(finished: asyncio.Future[RunState]) -> None:
                if self._reads.get(flow_run_id) is finished:
                    del self._reads[flow_run_id]
                if not finished.cancelled():
                    finished.exception()  # retrieved: each waiter reports it

            task.add_done_callback(done)
        return task

    def _release(self, check: RunCheck) -> Replaced:
        """(Worker thread.) The incident's run has ended: free its keys (the run is left as it is)."""
        assert check.state is not None
        if freed := self.spool.close_incident(check.incident_id):  # 0: another alert freed them a moment ago
            log.warning("incident %s: flow run %s is %s; %d key(s) freed for a new incident", check.incident_id,
                        check.flow_run_id, check.state.name, freed)
        return Replaced(incident_id=check.incident_id, flow_run_id=check.flow_run_id, run_state=check.state.name)

    async def _open(self, alert: Alert, generation: int, now: datetime, *, replaced: Replaced | None,
                    bounded: bool = True) -> Awaitable[Accepted]:
        """(Under `_deciding`.) Spool the alert as the opener of its `generation`-th incident, claim its key,
        start the first response and the launch; what is returned waits for the launch (or answers)."""
        record = SpoolRecord(alert=alert, incident_id=alert.incident_id_at(generation), generation=generation,
                             idempotency_key=alert.launch_key(generation), received_at=now, replaced=replaced)
        attached = await self._io(self._spool_and_claim, record, now)
        self.counts["accepted"] += 1
        if attached is not None:  # another alert (or process) won the key first
            return self._answer(attached, "duplicate")
        if self.first_responder is not None:
            try:
                if await self._io(self.first_responder.start, alert, record.incident_id):
                    self.counts["first_responses"] += 1
            except Exception:  # never lose the alert over it: the flow contains the key anyway
                log.exception("first response for %s could not start", record.incident_id)
        return self._finish_launch(record, self._start_launch(record), bounded=bounded)

    def _spool_and_claim(self, record: SpoolRecord, now: datetime) -> SpoolRecord | None:
        """(Worker thread.) Spool `record`, claim its subjects; the alert attached to the incident that
        holds one of them already, or None when they are all this incident's."""
        path = self.spool.save(record)
        for subject in record.alert.subjects:
            holder = self.spool.claim(subject, record.incident_id, path, now)
            if holder.incident_id != record.incident_id:
                with suppress(FileNotFoundError):
                    path.unlink()
                return self._attach_record(record.alert, holder, now, generation=record.generation - 1)
        return None

    def _attach_record(self, alert: Alert, holder: OpenIncident, now: datetime, *, generation: int) -> SpoolRecord:
        """(Worker thread.)"""
        record = SpoolRecord(alert=alert, incident_id=holder.incident_id, idempotency_key=alert.idempotency_key,
                             received_at=now, generation=generation, duplicate_of=holder.incident_id,
                             incident_record=holder.alert_file)
        self.spool.save(record)
        self.counts["attached"] += 1
        return record

    async def _answer(self, record: SpoolRecord, status: Status, check: RunCheck | None = None) -> Accepted:
        flow_run_id, ui_url = record.flow_run_id, record.ui_url
        if record.duplicate_of is not None and record.duplicate_of in self._inflight:
            # The opener's run is being launched right now: answer with it. If that launch fails, the
            # opener's own request reports it; this alert is spooled and attached all the same.
            with suppress(Exception):
                opened = await asyncio.wait_for(asyncio.shield(self._inflight[record.duplicate_of]),
                                                timeout=self.answer_within_seconds)
                flow_run_id, ui_url = opened.flow_run_id, opened.ui_url
        elif record.incident_record is not None:  # the opener's run, which may have started since
            first = await self._io(self.spool.named, record.incident_record)
            if first is not None:
                if first.incident_id == record.incident_id:
                    flow_run_id, ui_url = first.flow_run_id, first.ui_url
                elif first.replaced is not None and first.replaced.incident_id == record.incident_id:
                    flow_run_id, ui_url = first.replaced.flow_run_id, None  # the opener has opened a newer one
        return Accepted(alert=record.alert, incident_id=record.incident_id, status=status,
                        flow_run_id=flow_run_id, ui_url=ui_url, duplicate_of=record.duplicate_of,
                        run_state=check.state.name if check and check.state else None,
                        warning=check.warning() if check else None, replaced=record.replaced)

    async def relaunch_pending(self) -> list[Accepted]:
        """Launch every spooled alert that opened an incident but never got a flow run; skip failures."""
        launched: list[Accepted] = []
        waiting = await self._io(self.spool.pending)
        self.pending = len(waiting)
        now = datetime.now(UTC)
        for record in waiting:
            if now - record.received_at > self.stuck_after:
                await self._notify_once(record, "stuck", lambda r: alert_stuck(
                    r.incident_id, (now - r.received_at).total_seconds(), r.launch_error))
        for record in waiting:
            async with self._deciding:
                current = await self._io(self.spool.find, record.alert)
                if current is None or current.flow_run_id is not None or current.incident_id in self._inflight:
                    continue
                task = self._start_launch(current)
            try:
                launched.append(await self._finish_launch(current, task, bounded=False))
            except (DeploymentUnavailable, LaunchFailed) as exc:
                log.warning("relaunch of %s failed: %s", record.idempotency_key, exc)
            except Exception:  # one alert's failure never stops the others' relaunch
                log.exception("relaunch of %s failed", record.idempotency_key)
        return launched

    async def archive_settled(self) -> int:
        """Move the settled records an older receiver left in `<spool>/alerts/` to the archive, one at a
        time between alerts; returns how many. Run once at start."""
        moved = 0
        for path in await self._io(self.spool.waiting_files):
            async with self._deciding:
                moved += await self._io(self.spool.archive_if_settled, path)
        if moved:
            log.info("moved %d settled alert record(s) to %s", moved, self.spool.archive_dir)
        return moved

    def _start_launch(self, record: SpoolRecord) -> asyncio.Future[Accepted]:
        """(Under `_deciding`.) The launch of `record`'s incident: the one in flight, or a new one."""
        task = self._inflight.get(record.incident_id)
        if task is None:
            task = asyncio.ensure_future(self._launch_now(record))
            self._inflight[record.incident_id] = task
            task.add_done_callback(lambda done: self._launched(record.incident_id, done))
        return task

    async def _finish_launch(self, record: SpoolRecord, task: asyncio.Future[Accepted], *,
                             bounded: bool = True) -> Accepted:
        """Wait for the launch; with `bounded`, answer `launching` after `answer_within_seconds` while the
        launch goes on in the background (the alert is spooled, and a launch that then fails is retried by
        the relaunch loop)."""
        if not bounded:
            return await asyncio.shield(task)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=self.answer_within_seconds)
        except TimeoutError:
            return Accepted(alert=record.alert, incident_id=record.incident_id, status="launching",
                            flow_run_id=None, ui_url=None, replaced=record.replaced)

    def _launched(self, incident_id: str, task: asyncio.Future[Accepted]) -> None:
        if self._inflight.get(incident_id) is task:
            del self._inflight[incident_id]
        if not task.cancelled():
            task.exception()  # retrieved here: `_launch_now` has logged it and the spool records it

    async def _save(self, record: SpoolRecord) -> None:
        async with self._deciding:
            await self._io(self._save_keeping_marks, record)

    def _save_keeping_marks(self, record: SpoolRecord) -> None:
        """(Worker thread, under `_deciding`.) Save `record`, keeping what the spooled copy of the same
        incident says was notified (`record` may be a copy taken before a notification)."""
        current = self.spool.find(record.alert)
        if current is not None and current.incident_id == record.incident_id and current.notified:
            record = record.model_copy(update={"notified": sorted({*record.notified, *current.notified})})
        self.spool.save(record)

    async def _notify_once(self, record: SpoolRecord, mark: str,
                           message: Callable[[SpoolRecord], IncidentMessage]) -> None:
        """Send `message(record)` unless `mark` was sent for this alert's incident before; the mark is
        spooled first, so neither the next relaunch pass nor a restarted receiver sends it again."""
        async with self._deciding:
            current = await self._io(self.spool.find, record.alert)
            if current is None or current.incident_id != record.incident_id or mark in current.notified:
                return
            await self._io(self.spool.save, current.model_copy(update={"notified": [*current.notified, mark]}))
        self.counts[f"notified_{mark}"] += 1
        sending = asyncio.ensure_future(asyncio.to_thread(self.notify, message(current)))
        self._sending.add(sending)  # kept until sent (the loop holds tasks weakly)
        sending.add_done_callback(self._sending.discard)

    async def _launch_now(self, record: SpoolRecord) -> Accepted:
        self.counts["launch_attempts"] += 1
        try:
            result = await asyncio.wait_for(
                self.launcher.launch(record.alert, record.incident_id, record.idempotency_key),
                timeout=self.launch_timeout_seconds,
            )
        except DeploymentUnavailable as exc:
            unavailable = str(exc)
            await self._save(record.model_copy(update={"launch_error": unavailable}))
            await self._notify_once(record, "launch_failed", lambda r: launch_failed(r.incident_id, unavailable))
            exc.incident_id = record.incident_id
            raise
        except Exception as exc:  # Prefect unreachable, timeout, ...: the alert stays spooled
            log.exception("launching %s failed; the alert stays spooled", record.idempotency_key)
            message = f"{type(exc).__name__}: {exc}"[:300]
            await self._save(record.model_copy(update={"launch_error": message}))
            await self._notify_once(record, "launch_failed", lambda r: launch_failed(r.incident_id, message))
            failed = LaunchFailed(message)
            failed.incident_id = record.incident_id
            raise failed from exc
        if result.state is not None and result.state.terminal:
            return await self._launched_an_ended_run(record, result)
        await self._save(record.model_copy(update={"flow_run_id": result.flow_run_id, "ui_url": result.ui_url,
                                                   "launch_error": None}))
        self.counts["launched"] += 1
        return Accepted(alert=record.alert, incident_id=record.incident_id, status="launched",
                        flow_run_id=result.flow_run_id, ui_url=result.ui_url, replaced=record.replaced)

    async def _launched_an_ended_run(self, record: SpoolRecord, result: LaunchResult) -> Accepted:
        """Prefect answered the launch with a run that had already ended: its idempotency key was used
        before (a spool started afresh while Prefect kept its runs), or this incident's run ended before
        the launch was confirmed. Nobody is responding either way: the alert opens its next generation."""
        assert result.state is not None
        if record.generation >= MAX_GENERATIONS:
            failed = LaunchFailed(f"{record.idempotency_key}: Prefect answered with an ended run "
                                  f"({result.state.name}) for {MAX_GENERATIONS} generations of this alert")
            failed.incident_id = record.incident_id
            await self._save(record.model_copy(update={"launch_error": str(failed)}))
            await self._notify_once(record, "launch_failed", lambda r: launch_failed(r.incident_id, failed))
            raise failed
        log.warning("launching %s answered flow run %s, already %s: the alert opens generation %d",
                    record.idempotency_key, result.flow_run_id, result.state.name, record.generation + 1)
        check = RunCheck(record.incident_id, result.flow_run_id, state=result.state)
        async with self._deciding:
            replaced = await self._io(self._release, check)
            then = await self._open(record.alert, record.generation + 1, datetime.now(UTC), replaced=replaced,
                                    bounded=False)
        return await then

    def health(self) -> dict[str, Any]:
        """What `/healthz` reports: counters kept in memory, never a read of the spool."""
        return {"spool": str(self.spool.folder), "pending": self.pending, "quarantined": self.spool.quarantined,
                **{name: self.counts[name] for name in ("accepted", "attached", "launch_attempts", "launched",
                                                        "first_responses", "notified_launch_failed",
                                                        "notified_stuck")}}


async def relaunch_pending(spool: AlertSpool, launcher: Launcher,
                           *, launch_timeout_seconds: float = 20.0) -> list[Accepted]:
    """Launch every spooled alert that opened an incident but never got a flow run (after a restart).

    Failures are logged and skipped: the alert stays spooled for the next attempt.
    """
    intake = AlertIntake(spool, launcher, launch_timeout_seconds=launch_timeout_seconds)
    return await intake.relaunch_pending()


# --- the app ----------------------------------------------------------------------------------------


class TokenBuckets:
    """A token bucket per client address: `burst` requests at once, then `rate` a second.

    In the receiver's process only (one process serves the receiver), and bounded: past `max_clients`
    addresses, the idle ones (whose bucket has filled up again) are forgotten, then the longest unseen.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate, float(burst), max_clients, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when they were counted)

    def take(self, client: str) -> bool:
        """Take one token from `client`'s bucket; False when it is empty (the request is refused)."""
        now = self.clock()
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)  # re-inserted: newest last
        if len(self._buckets) > self.max_clients:
            self._forget(now)
        return allowed

    def _forget(self, now: float) -> None:
        for client, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.rate >= self.burst:
                del self._buckets[client]
        for client in list(self._buckets)[:max(0, len(self._buckets) - self.max_clients // 2)]:
            del self._buckets[client]  # the longest unseen first (insertion order)


class _Throttle:
    """ASGI middleware: the routes that take no credentials answer 429 to a client address over its rate.

    The alert routes are left alone: each request there is authenticated (an HMAC or a token compared in
    constant time over at most `max_body_bytes`), and EventBridge delivers from addresses AWS shares. The
    client address is the socket's peer, or what a trusted proxy says in X-Forwarded-For (uvicorn's
    `--forwarded-allow-ips`, 127.0.0.1 by default).
    """

    def __init__(self, app: Any, buckets: TokenBuckets, authenticated: frozenset[str]) -> None:
        self.app, self.buckets, self.authenticated = app, buckets, authenticated

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.authenticated:
            client = scope.get("client")
            if not self.buckets.take(str(client[0]) if client else "unknown"):
                retry = max(1, int(1 / self.buckets.rate + 0.999))
                answer = _error(429, "rate_limited", f"over {self.buckets.rate:g} requests a second (burst "
                                f"{self.buckets.burst:g}) from this address to a route that takes no credentials",
                                headers={"Retry-After": str(retry)})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)



class Rejected(Exception):
    """An HTTP error answer: `{"error": code, "detail": ...}`."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.headers = headers or {}
        self.extra = extra or {}


def _error(status: int, error: str, detail: Any, headers: dict[str, str] | None = None,
           extra: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **(extra or {})}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _LENGTH_RE.fullmatch(declared):
            raise Rejected(400, "bad_content_length", f"Content-Length {declared[:20]!r} is not a number of at "
                           "most 19 digits")
        if int(declared) > limit:
            raise Rejected(413, "body_too_large", f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body_too_large", f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "malformed_json", "body is not UTF-8 text") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Rejected(400, "malformed_json", f"body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "malformed_json", f"body must be a JSON object, got {type(payload).__name__}")
    if _depth(payload) > MAX_JSON_DEPTH:
        raise Rejected(400, "malformed_json", f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return payload


#: No alert format nests anywhere near this deep; deeper bodies are hostile.
MAX_JSON_DEPTH = 64


def _depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """Nesting depth of a JSON value, counted iteratively and capped at `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level >= limit:
            return level
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


#: A signature's timestamp: ASCII digits only (`str.isdigit` also takes "²" and other scripts' digits,
#: which `int` refuses), at most 12 of them (never a 5,000-digit number to convert before authentication).
_STAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)
#: A Content-Length the receiver reads: ASCII digits, at most 19 (any larger is over every limit anyway).
_LENGTH_RE = re.compile(r"[0-9]{1,19}", re.ASCII)


def _check_signature(header: str, body: bytes, secrets: list[bytes], window: int) -> None:
    if not secrets:
        raise Rejected(401, "bad_signature", f"{SIGNATURE_HEADER} is not accepted: no HMAC secret is configured")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            parts = {}
            break
        parts.setdefault(name, []).append(value)
    stamps, given = parts.get("t", []), parts.get("v1", [])
    if len(stamps) != 1 or not _STAMP_RE.fullmatch(stamps[0]) or not given:
        raise Rejected(401, "bad_signature",
                       f"malformed {SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex hmac-sha256>")
    stamp = int(stamps[0])
    skew = abs(time.time() - stamp)
    if skew > window:
        raise Rejected(401, "stale_signature",
                       f"signature timestamp {stamp} is {int(skew)} s from now, outside the {window} s replay window")
    signed = stamps[0].encode() + b"." + body
    expected = [hmac.new(secret, signed, hashlib.sha256).hexdigest() for secret in secrets]
    if not any(hmac.compare_digest(e.encode(), g.strip().lower().encode()) for e in expected for g in given):
        raise Rejected(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the body")


#: How an alert was authenticated (module docstring: which routes take each, which may contain).
Credential = Literal["hmac", "eventbridge", "bearer", "github"]
#: The routes AWS's events arrive on through EventBridge (the rules of `keyresponse/readiness/routes.py`, and a
#: hand-made Security Hub rule): the only ones the EventBridge connection's token is accepted on.
AWS_SOURCES: frozenset[Source] = frozenset({"guardduty", "health", "securityhub", "cloudtrail"})
#: The credentials whose alerts may trigger automatic containment (the receiver's first response and the
#: flow's early containment): a signature with a timestamp, and AWS's own delivery.
CONTAINING_CREDENTIALS: frozenset[Credential] = frozenset({"hmac", "eventbridge"})


def _token(secret: SecretStr | None) -> bytes | None:
    return secret.get_secret_value().strip().encode() if secret is not None else None


def _authenticate(request: Request, body: bytes, settings: WebhookSettings, source: Source) -> Credential:
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        _check_signature(signature, body, settings.hmac_secrets(), settings.replay_window_seconds)
        return "hmac"
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Rejected(401, "bad_token", "Authorization must be 'Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})
        given = token.strip().encode()
        eventbridge, bearer = _token(settings.eventbridge_token), _token(settings.bearer_token)
        is_eventbridge = eventbridge is not None and hmac.compare_digest(given, eventbridge)
        is_bearer = bearer is not None and hmac.compare_digest(given, bearer)
        if is_eventbridge and source in AWS_SOURCES:
            return "eventbridge"
        if is_eventbridge:
            raise Rejected(401, "bad_token", "the EventBridge connection's token is accepted only on "
                           f"/alerts/{{{','.join(sorted(AWS_SOURCES))}}}", headers={"WWW-Authenticate": "Bearer"})
        if is_bearer:
            return "bearer"
        raise Rejected(401, "bad_token", "bearer token is not valid", headers={"WWW-Authenticate": "Bearer"})
    raise Rejected(401, "missing_credentials",
                   f"send {SIGNATURE_HEADER}: t=<unix>,v1=<hmac> or Authorization: Bearer <token>",
                   headers={"WWW-Authenticate": "Bearer"})


def _authenticate_github(request: Request, body: bytes, settings: WebhookSettings) -> None:
    header = request.headers.get(GITHUB_SIGNATURE_HEADER)
    if header is None:
        raise Rejected(401, "missing_credentials", f"{GITHUB_SIGNATURE_HEADER} is missing")
    secrets = settings.github_secrets()
    if not header.startswith("sha256=") or not secrets:
        raise Rejected(401, "bad_signature", f"{GITHUB_SIGNATURE_HEADER} must be sha256=<hex hmac-sha256 of the body>")
    given = header.removeprefix("sha256=").strip().lower().encode()
    if not any(hmac.compare_digest(hmac.new(s, body, hashlib.sha256).hexdigest().encode(), given) for s in secrets):
        raise Rejected(401, "bad_signature", f"{GITHUB_SIGNATURE_HEADER} does not match the body")


async def _fetch_github_secret(client: httpx.AsyncClient, payload: dict[str, Any], ref: GitHubAlertRef,
                               settings: WebhookSettings) -> dict[str, Any]:
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
    return {**payload, "alert": {**payload["alert"], "secret": secret}}


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
    clients: dict[str, httpx.AsyncClient] = {}

    async def _maintain(every: float | None) -> None:
        """Archive what an older receiver left settled in alerts/; then, with `every`, relaunch forever."""
        try:
            await intake.archive_settled()
        except Exception:
            log.exception("archiving settled alert records failed")
        while every is not None:
            try:
                await intake.relaunch_pending()
            except Exception:  # a broken spool file must not stop the loop
                log.exception("relaunching spooled alerts failed")
            await asyncio.sleep(every)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(spool.remove_temp_files)  # left by a receiver that died mid-write
        clients["github"] = github_client or httpx.AsyncClient(timeout=10.0)
        background = asyncio.create_task(_maintain(relaunch_every))
        try:
            yield
        finally:
            if not background.done():
                background.cancel()
            if github_client is None:
                await clients["github"].aclose()

    app = FastAPI(title="keyresponse alert receiver", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.spool = spool
    app.state.intake = intake
    app.add_middleware(_Throttle, buckets=TokenBuckets(settings.unauthenticated_rate_per_second,
                                                       settings.unauthenticated_burst),
                       authenticated=frozenset(f"/alerts/{source}" for source in SOURCES))

    @app.exception_handler(Rejected)
    async def _rejected(_: Request, exc: Rejected) -> JSONResponse:
        return _error(exc.status, exc.error, exc.detail, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "validation_error", [{"loc": list(e.get("loc", ())), "msg": e.get("msg")}
                                                for e in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, names.get(exc.status_code, "http_error"), exc.detail,
                      dict(exc.headers) if exc.headers else None)

    async def _accept(alerts: list[Alert], credential: Credential) -> JSONResponse:
        held_back = credential not in CONTAINING_CREDENTIALS and any(a.high_confidence for a in alerts)
        if held_back:  # kept, but its containment waits for an approval (module docstring)
            log.warning("alert %s is high-confidence but came with the %s credential: no automatic containment",
                        ", ".join(a.idempotency_key for a in alerts), credential)
            alerts = [a.model_copy(update={"high_confidence": False}) for a in alerts]
        accepted: list[Accepted] = []
        for alert in alerts:
            try:
                accepted.append(await intake.accept(alert))
            except DeploymentUnavailable as exc:
                raise Rejected(503, "deployment_not_found", f"{exc}; the alert is spooled and is launched when "
                               "it is delivered again or the receiver restarts",
                               headers={"Retry-After": str(settings.retry_after_seconds)},
                               extra={"incident_id": exc.incident_id or alert.incident_id,
                                      "alert_id": alert.alert_id}) from None
            except LaunchFailed as exc:
                raise Rejected(503, "launch_failed", f"{exc}; the alert is spooled",
                               headers={"Retry-After": str(settings.retry_after_seconds)},
                               extra={"incident_id": exc.incident_id or alert.incident_id,
                                      "alert_id": alert.alert_id}) from None
        body = accepted[0].body()
        if len(accepted) > 1:
            body["alerts"] = [a.body() for a in accepted]
        if held_back:
            body["automatic_containment"] = False
            body["note"] = (f"accepted with the {credential} credential, which may not trigger automatic "
                            "containment: the containment waits for an approval")
        return JSONResponse(body, status_code=202)

    def _normalize(source: Source, payload: dict[str, Any]) -> list[Alert]:
        try:
            return normalize(source, payload)
        except NotActionable as exc:
            raise Rejected(200, "ignored", str(exc), extra={"status": "ignored"}) from None
        except InputError as exc:
            raise Rejected(422, "invalid_alert", str(exc)) from None

    def _route(source: Source) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def receive(request: Request) -> JSONResponse:
            body = await _read_body(request, settings.max_body_bytes)
            credential = _authenticate(request, body, settings, source)
            return await _accept(_normalize(source, _parse_json(body)), credential)

        receive.__name__ = f"receive_{source}"
        return receive

    for source in SOURCES:
        if source != "github":
            app.post(f"/alerts/{source}", status_code=202)(_route(source))

    @app.post("/alerts/github", status_code=202)
    async def receive_github(request: Request) -> JSONResponse:
        body = await _read_body(request, settings.max_body_bytes)
        _authenticate_github(request, body, settings)
        event = request.headers.get("x-github-event")
        if event == "ping":
            return JSONResponse({"status": "pong"})
        if event is not None and event != "secret_scanning_alert":
            return JSONResponse({"status": "ignored", "error": "ignored",
                                 "detail": f"X-GitHub-Event {event[:60]!r} is not secret_scanning_alert"})
        payload = _parse_json(body)
        try:
            ref = github_alert_ref(payload)
            known = await intake.find_id("github", ref.alert_id)
            if known is not None:  # a redelivery: its key is in the spool, GitHub's API is not asked again
                return await _accept([known.alert], "github")
            enriched = await _fetch_github_secret(clients["github"], payload, ref, settings)
        except NotActionable as exc:
            raise Rejected(200, "ignored", str(exc), extra={"status": "ignored"}) from None
        except InputError as exc:
            raise Rejected(422, "invalid_alert", str(exc)) from None
        return await _accept(_normalize("github", enriched), "github")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """O(1): counters in memory, never a read of the spool (anyone may call it)."""
        return {"status": "ok", **intake.health()}

    return app
