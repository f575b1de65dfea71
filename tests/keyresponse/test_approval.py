"""Answering an approval pause on the real Prefect server: `paused_runs` and `answer_pause`.

The busy server is real in CI (SQLite answers 503 to a resume that straddles another writer's
commit); here a proxy on 127.0.0.1 in front of the session's server answers 503 to the first
resumes, so the retry is shown every time, not only on a loaded host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from local_servers import LocalHTTPServer, reply
from prefect import flow

from keyresponse.approval import PlanChange, PlanView, answer_pause, paused_runs, request_approval
from keyresponse.incident import minimal_investigation_record
from keyresponse.model import UncertainCredential

PLAN = PlanView(phase="containment", changes=(PlanChange(action="deactivate_access_key", target="AKIAEXAMPLEEXAMPLE01",
                                                         done=False, summary="set the key Inactive"),))


@flow(name="approval-under-test", flow_run_name="approval-under-test:{incident_id}")
def _asks(incident_id: str) -> dict[str, Any]:
    return request_approval("containment", incident_id, PLAN, timeout=120, poll_interval=1)


class BusyProxy(LocalHTTPServer):
    """Forwards to the Prefect API, but answers the first `busy` resumes 503, as a locked SQLite does."""

    def __init__(self, upstream: str, busy: int) -> None:
        super().__init__(_ProxyHandler)
        self.upstream, self.busy, self.refused, self.forwarded_resumes = upstream.rstrip("/"), busy, 0, 0

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: BusyProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "POST" and self.path.endswith("/resume"):
            if self.server.refused < self.server.busy:
                self.server.refused += 1
                reply(self, 503, b'{"exception_message": "Service Unavailable"}')
                return
            self.server.forwarded_resumes += 1
        upstream = self.server.upstream.removesuffix("/api") + self.path
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
        response = httpx.request(self.command, upstream, content=body, headers=headers, timeout=30)
        reply(self, response.status_code, response.content, response.headers.get("content-type", ""))

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def asking(prefect_server: str) -> Iterator[tuple[dict[str, Any], str]]:
    """A flow run paused on the approval form, in a thread; yields (its result holder, its incident id)."""
    incident = f"inc-approval-{time.monotonic_ns()}"
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("answer", _asks(incident)))
    thread.start()
    yield result, incident
    thread.join(150)


def _own_pause(client: Any, incident: str, flow_name: str = "approval-under-test") -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [r for r in paused_runs(client) if r.name == f"{flow_name}:{incident}"]
        if mine:
            return mine[0]
        time.sleep(0.2)
    raise AssertionError(f"no paused run for {incident}")


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    """What the paused flow received, once it has it."""
    deadline = time.monotonic() + 60
    while "answer" not in result and time.monotonic() < deadline:
        time.sleep(0.2)
    return {k: result["answer"][k] for k in ("approver", "decision", "reason")}


def test_an_answer_through_a_busy_server_resumes_the_run_once(
        prefect_server: str, asking: tuple[dict[str, Any], str]) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    result, incident = asking
    with BusyProxy(prefect_server, busy=3) as proxy, SyncPrefectClient(proxy.api_url) as client:
        run = _own_pause(client, incident)
        assert [r.id for r in paused_runs(client, within=run.id)] == [run.id]
        answer = {"approver": "alice@example.com", "decision": "approve", "reason": "INC-7"}
        assert answer_pause(client, run.id, answer) is True
        assert (proxy.refused, proxy.forwarded_resumes) == (3, 1)  # three 503s waited out, one resume sent
        assert answer_pause(client, run.id, answer) is False  # already answered: nothing resumed twice
    assert _outcome(result) == {"approver": "alice@example.com", "decision": "approve", "reason": "INC-7"}


def test_an_answer_the_form_refuses_raises_and_leaves_the_run_paused(
        prefect_server: str, asking: tuple[dict[str, Any], str]) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    result, incident = asking
    with SyncPrefectClient(prefect_server) as client:
        run = _own_pause(client, incident)
        with pytest.raises(ValueError, match="refused"):
            answer_pause(client, run.id, {"approver": "alice@example.com", "decision": "maybe", "reason": "x"})
        assert client.read_flow_run(run.id).state.is_paused()
        assert paused_runs(client, within="00000000-0000-0000-0000-000000000000") == []  # never another's
        assert answer_pause(client, run.id, {"approver": "bob@example.com", "decision": "deny", "reason": "no"})
    assert _outcome(result) == {"approver": "bob@example.com", "decision": "deny", "reason": "no"}


UNCERTAIN = [{"access_key_id": "ASIAUNCERTAIN0000001", "kind": "session", "created_by_event": "AssumeRole",
              "parent": "AKIAEXAMPLEEXAMPLE01", "principal_arn": "arn:aws:iam::111122223333:role/ops",
              "reasons": ["minted from 203.0.113.9, new to the key, with the owner's client"]},
             {"access_key_id": "ASIAUNCERTAIN0000002", "kind": "session", "created_by_event": "GetSessionToken",
              "parent": "AKIAEXAMPLEEXAMPLE01", "principal_arn": "arn:aws:iam::111122223333:user/ci",
              "reasons": ["minted from 198.51.100.77 | <b>x</b>"]}]


@flow(name="approval-with-offers", flow_run_name="approval-with-offers:{incident_id}")
def _offers(incident_id: str) -> dict[str, Any]:
    return request_approval("containment", incident_id, PLAN.model_copy(update={"uncertain_credentials": tuple(UncertainCredential.model_validate(c) for c in UNCERTAIN)}),
                            timeout=120, poll_interval=1)


def test_uncertain_credentials_are_offered_unchecked_and_only_those_can_be_added(prefect_server: str) -> None:
    """The form's `also_contain` lists exactly the uncertain credentials, none picked by default; an id that
    was not offered is refused by the server, and the pick comes back to the flow."""
    from prefect.client.orchestration import SyncPrefectClient

    incident = f"inc-offers-{time.monotonic_ns()}"
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("answer", _offers(incident)))
    thread.start()
    try:
        with SyncPrefectClient(prefect_server) as client:
            run = _own_pause(client, incident, "approval-with-offers")
            base = {"approver": "alice@example.com", "decision": "approve", "reason": "INC-9"}
            with pytest.raises(ValueError, match="refused"):
                answer_pause(client, run.id, {**base, "also_contain": ["AKIANOTOFFERED000001"]})
            assert answer_pause(client, run.id, {**base, "also_contain": ["ASIAUNCERTAIN0000002"]})
    finally:
        thread.join(150)
    assert result["answer"]["also_contain"] == ["ASIAUNCERTAIN0000002"]


def test_the_form_says_what_is_not_in_the_plan_and_why() -> None:
    from keyresponse.approval import Approval, approval_form, plan_markdown, with_uncertain

    text = plan_markdown("containment", "inc-1", PLAN.model_copy(update={"uncertain_credentials": tuple(UncertainCredential.model_validate(c) for c in UNCERTAIN)}))
    assert "approve 1 change(s)" in text and "Not in this plan: 2 uncertain credential(s)" in text
    assert "ASIAUNCERTAIN0000001" in text and "<b>" not in text and "\\|" in text
    form = approval_form(["ASIAUNCERTAIN0000001"])
    assert form(approver="a", decision="approve", reason="r").also_contain == []  # type: ignore[attr-defined]
    assert approval_form([]) is Approval
    original = {"access_key_id": "AKIAEXAMPLEEXAMPLE01", "kind": "original", "created_by_event": None,
                "parent": None, "principal_arn": "arn:aws:iam::111122223333:user/alice"}
    moved = with_uncertain(minimal_investigation_record(credentials=[original], uncertain_credentials=UNCERTAIN),
                           ["ASIAUNCERTAIN0000001"])
    assert [c.access_key_id for c in moved.credentials] == ["AKIAEXAMPLEEXAMPLE01", "ASIAUNCERTAIN0000001"]
    assert "reasons" not in moved.model_dump(exclude_unset=True)["credentials"][1]
    assert [c.access_key_id for c in moved.uncertain_credentials] == ["ASIAUNCERTAIN0000002"]
