"""Flow runs in Prefect: `PrefectLauncher` starts the response deployment for an alert, `PrefectRuns` reads
a run's state; `RunState.terminal` is what "the run has ended" means to the receiver (package docstring).
The protocols (`Launcher`, `RunReader`) are what the intake needs, so tests give it stand-ins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from keyresponse.alerts import Alert
from keyresponse.errors import KeyResponseError
from keyresponse.receiver.config import DEFAULT_DEPLOYMENT

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

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
