"""`keyresponse demo`: the whole story on the embedded sandbox, and nothing left running after.

1. start the sandbox (moto) and seed the account; play a scenario and write its CloudTrail logs;
2. start a Prefect server with basic auth (a random auth string, that only this process and its
   children know), or reuse the one PREFECT_API_URL names, and `keyresponse serve` (alert receiver +
   runner) as a child process;
3. post the scenario's GuardDuty alert with a valid signature;
4. approve each pause through the Prefect API as a named demo approver (or, with `interactive`,
   wait for a person to approve in the UI);
5. wait for the response to finish and summarise it: time from alert to containment, every
   credential in scope and how each was contained, report paths.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, TypeVar
from uuid import UUID

from pydantic import JsonValue

from keyresponse.children import die_with_parent
from keyresponse.prefect_server import PrefectServer, free_port, new_auth_string
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount, seed_account
from keyresponse.sandbox.server import admin_client
from keyresponse.sandbox.simulate import run_simulation

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

T = TypeVar("T")

DEMO_APPROVER = "demo-approver@keyresponse.local"
STEP_TIMEOUT_S = 300


def wait_until(predicate: Callable[[], T], what: str, timeout: float = STEP_TIMEOUT_S, every: float = 0.25) -> T:
    """`predicate()`'s first truthy value, asked every `every` s; TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"demo: timed out waiting for {what}")


def _post_alert(url: str, body: bytes, headers: Callable[[], dict[str, str]], attempts: int = 6) -> dict[str, JsonValue]:
    """POST an alert like EventBridge's API destinations do: retry a 503 after its Retry-After."""
    import urllib.error

    for attempt in range(attempts):
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - 127.0.0.1
            "Content-Type": "application/json", **headers()})
        try:
            with urllib.request.urlopen(request, timeout=90) as response:  # noqa: S310
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(min(float(exc.headers.get("Retry-After") or 5), 10.0))
    raise AssertionError("unreachable")


class Stack:
    """The running system on 127.0.0.1: a Prefect server with basic auth (or the one PREFECT_API_URL
    names, unless `own_prefect`) and a `keyresponse serve` child (receiver + runner) acting in `box` as
    the seeded responder.

    >>> with Stack(box, account, folder) as stack: stack.post("guardduty", body)
    """

    def __init__(self, box: MotoSandbox, account: SeededAccount, folder: Path, *, logs: Path | None = None,
                 extra_env: dict[str, str] | None = None, own_prefect: bool = False,
                 serve_args: Sequence[str] = ()) -> None:
        self.box, self.account, self.folder = box, account, folder
        self.own_prefect = own_prefect
        self.home = folder / "home"
        self.logs = logs
        self.secret = secrets.token_hex(16)
        self.github_secret = secrets.token_hex(16)  # each source its own secret (keyresponse/receiver/)
        self.extra_env = extra_env or {}
        self.serve_args = list(serve_args)  # more options of `keyresponse serve` (e.g. --limit)
        self._prefect: PrefectServer | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self.port = 0

    def env(self) -> dict[str, str]:
        account = self.account
        env = {**os.environ, **self.box.env(),
               "AWS_ACCESS_KEY_ID": account.responder.access_key_id,
               "AWS_SECRET_ACCESS_KEY": account.responder.secret_access_key,
               "KEYRESPONSE_HOME": str(self.home),
               "KEYRESPONSE_EVIDENCE_BUCKET": account.evidence_bucket,
               "KEYRESPONSE_PROTECTED_PRINCIPALS": json.dumps(account.protected_principals),
               "KEYRESPONSE_APPROVAL_POLL_SECONDS": "1",
               "KEYRESPONSE_WEBHOOK_SECRET": self.secret, "KEYRESPONSE_WEBHOOK_GITHUB_SECRET": self.github_secret,
               "KEYRESPONSE_WEBHOOK_SPOOL": str(self.home / "spool"),
               "KEYRESPONSE_WEBHOOK_LAUNCH_TIMEOUT_SECONDS": "60", "KEYRESPONSE_WEBHOOK_RETRY_AFTER_SECONDS": "5",
               "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        if self.logs:
            env["KEYRESPONSE_CLOUDTRAIL_LOGS"] = str(self.logs)
        # the simulator writes its CloudTrail files at once: no delivery delay to wait for before the
        # response checks that containment held (a real trail's is 15 min, the default)
        env.setdefault("KEYRESPONSE_RECHECK_DELAY_SECONDS", "2")
        return {**env, **self.extra_env}

    def __enter__(self) -> Stack:
        self._prefect = PrefectServer(self.folder / "prefect", reuse_existing=not self.own_prefect,
                                      auth_string=new_auth_string()).start()
        self.port = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.start_serve()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start_serve(self) -> None:
        """Start `keyresponse serve` (receiver and runner) and wait until both answer."""
        assert self._prefect is not None and self._child is None
        env = {**self.env(), **self._prefect.env(), "KEYRESPONSE_UI_URL": self._prefect.ui_url,
               "KEYRESPONSE_WEBHOOK_PREFECT_UI_URL": self._prefect.ui_url}
        log = open(self.folder / "serve.log", "ab")  # noqa: SIM115 - handed to the child
        self._child = subprocess.Popen([sys.executable, "-m", "keyresponse", "serve", "--port", str(self.port),
                                        *self.serve_args], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       preexec_fn=die_with_parent)
        log.close()
        wait_until(lambda: _ok(f"{self.base}/healthz"), "the receiver")
        with self.client() as client:
            wait_until(lambda: _deployment_ready(client), "the response deployment")

    def stop_serve(self, *, kill: bool = False) -> None:
        """Stop `keyresponse serve`: SIGTERM (a clean stop), or SIGKILL with `kill` (a crash: the runner
        tells no one; its flow-run processes and the receiver die with it)."""
        child, self._child = self._child, None
        if child is None:
            return
        if kill:
            child.kill()
            child.wait(20)
            return
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)

    def restart_prefect(self) -> None:
        """Stop this stack's own Prefect server (`own_prefect`) and start it again on the same port and
        database."""
        assert self._prefect is not None and self.own_prefect
        port = int(self.api_url.rsplit(":", 1)[1].split("/")[0])
        self._prefect.stop()
        self._prefect = PrefectServer(self.folder / "prefect", port=port, reuse_existing=False,
                                      auth_string=self._prefect.auth_string).start()

    def __exit__(self, *_: object) -> None:
        self.stop_serve()
        if self._prefect is not None:
            self._prefect.stop()
            self._prefect = None

    @property
    def serve_pid(self) -> int | None:
        """The process id of `keyresponse serve`, while it runs."""
        return self._child.pid if self._child is not None else None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        assert self._prefect is not None
        return self._prefect.api_url

    @property
    def ui_url(self) -> str:
        assert self._prefect is not None
        return self._prefect.ui_url

    @property
    def auth_string(self) -> str | None:
        """What the Prefect API (and its UI's sign-in) asks for; None when the server has no auth."""
        assert self._prefect is not None
        return self._prefect.auth_string

    def client(self) -> SyncPrefectClient:
        """A sync Prefect client on this stack's server, with its auth string."""
        assert self._prefect is not None
        return self._prefect.client()

    def post(self, source: str, body: bytes, *, wait_for_run: bool = True) -> dict[str, JsonValue]:
        """POST an alert with the signature its route expects (GitHub's for /alerts/github); with
        `wait_for_run`, an answer `launching` is followed by redeliveries until the run id is known
        (120 s at most)."""
        from keyresponse.receiver.auth import sign, sign_github

        if source == "github":
            def headers() -> dict[str, str]:
                return {"X-GitHub-Event": "secret_scanning_alert",
                        "X-Hub-Signature-256": sign_github(body, self.github_secret)}
        else:
            def headers() -> dict[str, str]:
                return {"X-Keyresponse-Signature": sign(body, self.secret)}
        answer = _post_alert(f"{self.base}/alerts/{source}", body, headers)
        deadline = time.monotonic() + 120
        while wait_for_run and answer.get("status") == "launching" and time.monotonic() < deadline:
            # Answered within the receiver's bound while the launch goes on (a busy Prefect server):
            # the alert is spooled; a redelivery joins the launch in flight and carries its run id.
            time.sleep(1.0)
            answer = _post_alert(f"{self.base}/alerts/{source}", body, headers)
        return answer


class DemoSummary(TypedDict):
    """What the demo reports (and `keyresponse demo --json` prints)."""

    scenario: str
    incident_id: str
    flow_run_state: str | None
    status: JsonValue
    flow_run_url: str
    compromised_access_key_id: str
    seconds_alert_to_containment: float
    credentials: list[dict[str, JsonValue]]
    credentials_contained: list[JsonValue]
    approvals: int
    verdict: JsonValue
    report: dict[str, str]
    seconds: NotRequired[float]
    out: NotRequired[str]


def run_demo(*, scenario: str = "pivot-chain", events: int = 20_000, out: Path | None = None,
             interactive: bool = False, say: Callable[[str], None] = print) -> DemoSummary:
    """Play the whole response; returns the summary (also what `--json` prints)."""
    folder = out or Path(tempfile.mkdtemp(prefix="keyresponse-demo-"))
    started = time.perf_counter()
    with MotoSandbox() as box:
        account = seed_account(box)
        sim = run_simulation(scenario=scenario, out=folder / "logs", events=events, sandbox=box)
        say(f"sandbox {box.endpoint}: account seeded; scenario {scenario} played "
            f"({sim.records:,} CloudTrail events)")
        with Stack(box, account, folder, logs=folder / "logs") as stack:
            summary = _respond(stack, sim.ground_truth, interactive, say)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["out"] = str(folder)
    return summary


def _respond(stack: Stack, truth: dict[str, Any], interactive: bool, say: Callable[[str], None]) -> DemoSummary:
    from keyresponse.approval import answer_pause, paused_phase, paused_runs

    ui = stack.ui_url
    home = stack.home
    body = (stack.folder / "logs" / "alerts" / "guardduty.json").read_bytes()
    key = truth["compromised_access_key_id"]
    owner = truth["owner"]["user_name"]
    iam = admin_client(stack.box.endpoint, "iam")

    with stack.client() as client:  # bound to the stack's server: no global API URL needed
        posted = time.perf_counter()
        answer = stack.post("guardduty", body)
        run_id = UUID(str(answer["flow_run_id"]))
        say(f"alert posted: incident {answer['incident_id']}, flow run {ui}/runs/flow-run/{run_id}")
        if interactive and stack.auth_string:
            say(f"the Prefect UI asks for its auth string: {stack.auth_string}")
        wait_until(lambda: _status(iam, owner, key) in ("Inactive", "deleted"), "the key to be deactivated")
        contained_s = time.perf_counter() - posted
        say(f"key {key} Inactive {contained_s:.1f} s after the alert (automatic containment)")
        approvals = 0
        while True:
            run = client.read_flow_run(run_id)
            if run.state and run.state.is_final():
                break
            for paused in paused_runs(client, within=run_id):  # the run suspends itself at each phase
                if interactive:
                    say(f"waiting for your approval in the UI: {ui}/runs/flow-run/{paused.id}")
                    time.sleep(5)
                    continue
                if answer_pause(client, paused.id, {"approver": DEMO_APPROVER, "decision": "approve",
                                                    "reason": "keyresponse demo: approve every phase"}):
                    approvals += 1
                    say(f"approved {paused_phase(paused)} of {paused.name} as {DEMO_APPROVER}")
                time.sleep(1.5)
            time.sleep(0.5)
        final = run.state.name if run.state else "unknown"
    incident = str(answer["incident_id"])
    record_path = home / "incidents" / incident / "incident.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    credentials = credentials_in_scope(record)
    report = home / "incidents" / incident / "report"
    return {"scenario": truth["scenario"], "incident_id": incident, "flow_run_state": final,
            "status": record.get("status"), "flow_run_url": f"{ui}/runs/flow-run/{run_id}",
            "compromised_access_key_id": key, "seconds_alert_to_containment": round(contained_s, 2),
            "credentials": credentials,
            "credentials_contained": [c["access_key_id"] for c in credentials if c["contained"]],
            "approvals": approvals,
            "verdict": (record.get("investigation") or {}).get("verdict"),
            "report": {"html": str(report / "report.html"), "markdown": str(report / "report.md"),
                       "json": str(report / "incident.json")}}


def credentials_in_scope(record: Mapping[str, JsonValue]) -> list[dict[str, JsonValue]]:
    """Every credential the incident holds in scope, each with how it was contained (a key
    deactivated or deleted, a session revoked by the policy on its user or role) or "not contained"."""
    if not record.get("investigation"):
        return []
    from keyresponse.incident import Incident
    from keyresponse.report import credential_containment

    return [{k: row[k] for k in ("access_key_id", "kind", "principal_arn", "contained", "how")}
            for row in credential_containment(Incident.model_validate(record))]


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1 only
            return bool(response.status == 200)
    except OSError:
        return False


def _deployment_ready(client: Any) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_deployment_by_name("respond-to-exposed-key/respond-to-exposed-key")
    except ObjectNotFound:
        return False
    return True


def _status(iam: Any, user: str, key: str) -> str | None:
    for meta in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
        if meta["AccessKeyId"] == key:
            return str(meta["Status"])
    return "deleted"
