"""A responder approves containment in the real Prefect UI (headless Chromium), and the key is contained;
hostile resource names in a plan show as text in the Resume dialog and fetch nothing.

The containment flow runs in a thread against the session's Prefect server and moto sandbox and pauses
for an `Approval`. The test opens the paused run in the default Prefect UI, clicks Resume, fills the
schema form of the Resume Flow Run dialog (approver, decision, reason) and submits it, exactly as a
person would. The flow then resumes, applies the plan and the sandbox shows the key Inactive.

The browser is Debian's Chromium (`make browser`); Playwright never downloads one. Every request the
page makes to a host other than 127.0.0.1 is aborted and fails the test.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser import (
    APPROVAL,
    CHROMIUM,
    UI_TIMEOUT_MS,
    approve_in_resume_dialog,
    local_page,
)
from prefect import flow

from keyresponse.approval import PlanChange, PlanView, answer_pause, request_approval
from keyresponse.incident import minimal_investigation
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import SeededAccount
from keyresponse.sandbox.server import admin_client
from keyresponse.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def responder_env(seeded: SeededAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The responder's credentials and fast approval settings while the flow runs; restored afterwards."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seeded.responder.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seeded.responder.secret_access_key)
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYRESPONSE_APPROVAL_POLL_SECONDS", "1")
    # Long enough for a slow browser, short enough that a broken test never hangs the session.
    monkeypatch.setenv("KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS", "90")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _investigation(account_id: str, user: str, key: str) -> dict[str, Any]:
    arn = f"arn:aws:iam::{account_id}:user/{user}"
    return minimal_investigation(**{
            "access_key_id": key, "account_id": account_id, "principal_arn": arn,
            "credentials": [{"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
                             "principal_arn": arn}],
            "persistence": [], "resources_created": [], "regions": []})


def _wait_until_paused(client: Any, run_name: str, thread: threading.Thread, timeout: float = 45.0) -> Any:
    """The flow run named `run_name` once it is PAUSED with its approval form stored."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
        for run in runs:
            keys = (run.state.state_details.run_input_keyset or {}) if run.state else {}
            if run.state and run.state.is_paused() and "schema" in keys:
                return run
        assert thread.is_alive(), f"the flow ended before it paused for approval: {run_name}"
        time.sleep(0.2)
    raise AssertionError(f"{run_name} did not pause for approval within {timeout} s")


def test_responder_approves_containment_in_the_prefect_ui_and_the_key_is_deactivated(
    prefect_server: str, sandbox: MotoSandbox, seeded: SeededAccount, unique_name: str, tmp_path: Path,
    responder_env: None,
) -> None:
    from playwright.sync_api import expect
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    from flows.containment import containment

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)"
    started = time.monotonic()
    ui_url = prefect_server.removesuffix("/api")

    iam = admin_client(sandbox.endpoint, "iam")
    user = unique_name[:64]
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    incident_id = f"INC-{unique_name[:20]}"

    result: dict[str, Any] = {}

    def run_flow() -> None:
        try:
            result["outcome"] = containment(incident_id, _investigation(seeded.account_id, user, key))
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    thread = threading.Thread(target=run_flow, name="containment-in-browser-test", daemon=True)
    thread.start()
    foreign: list[str] = []
    screenshot = tmp_path / "resume-dialog.png"
    with get_client(sync_client=True) as client:
        run = _wait_until_paused(client, f"containment:{incident_id}", thread)
        paused = time.monotonic()
        try:
            with local_page(foreign) as page:
                page_errors: list[str] = []
                page.on("pageerror", lambda error: page_errors.append(str(error)[:300]))
                try:
                    body = approve_in_resume_dialog(page, ui_url, str(run.id), key)
                except Exception:
                    page.screenshot(path=str(screenshot), full_page=True)
                    print(f"screenshot of the failing page: {screenshot}; page errors: {page_errors}")
                    raise
                assert body["state"]["type"] == "RUNNING", body
                submitted = time.monotonic()
                thread.join(30)
                assert not thread.is_alive(), "the flow did not finish within 30 s of the resume"
                # The run page follows the run to its end.
                expect(page.locator(".state-badge").first).to_have_text("Completed", timeout=UI_TIMEOUT_MS)
        finally:
            if thread.is_alive():  # the browser failed: unblock the flow with a denial, so it changes nothing
                with contextlib.suppress(Exception):  # e.g. NotPausedError: the UI's resume went through
                    resume_flow_run(run.id, run_input={"approver": "pytest", "decision": "deny",
                                                       "reason": "browser test failed"})
                thread.join(30)

    assert not foreign, f"the page tried to leave 127.0.0.1: {foreign}"
    assert "error" not in result, f"the flow failed: {result.get('error')!r}"
    outcome = result["outcome"]
    assert outcome["status"] == "applied", outcome["status"]
    approval = outcome["approval"]
    assert {k: approval[k] for k in APPROVAL} == APPROVAL
    assert outcome["verified"] == len(outcome["ledger"]) >= 1
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    assert statuses == {key: "Inactive"}
    print(f"paused after {paused - started:.1f} s, submitted in the browser after {submitted - paused:.1f} s, "
          f"all done after {time.monotonic() - started:.1f} s (server already up)")


#: Names an attacker gives what it creates (EC2 key pairs, roles, users…), as CloudTrail then shows them.
HOSTILE_NAMES = [
    "![x](https://attacker.example/p.gif)",
    '<img src="https://attacker.example/raw.gif">',
    "[open the runbook](https://attacker.example/phish)",
    "[click](javascript:alert(document.domain))",
    "https://attacker.example/bare-link",
    "key`with`ticks|and|pipes",
]


@flow(name="approval-with-hostile-names", flow_run_name="approval-with-hostile-names:{incident_id}")
def _asks_about_hostile_names(incident_id: str) -> dict[str, Any]:
    plan = PlanView(phase="eradication", changes=tuple(
        PlanChange(action="delete_key_pair", target={"kind": "key_pair", "id": name}, label=name,
                   summary=f"delete key pair {name}", done=False) for name in HOSTILE_NAMES),
        notes=(f"the attacker also created {HOSTILE_NAMES[0]}",))
    return request_approval("eradication", incident_id, plan, timeout=120, poll_interval=1)


def test_hostile_resource_names_show_as_text_in_the_resume_dialog_and_fetch_nothing(
        prefect_server: str, tmp_path: Path) -> None:
    """The plan's names are the attacker's: in the real Resume dialog each shows literally, in its own
    cell, and the page requests nothing from a host other than 127.0.0.1 (an image in the old form
    fetched the attacker's pixel and showed its alt text instead of the name)."""
    from playwright.sync_api import expect
    from prefect import get_client

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)"
    ui_url = prefect_server.removesuffix("/api")
    incident_id = f"inc-hostile-{time.monotonic_ns()}"
    result: dict[str, Any] = {}

    def run_flow() -> None:
        try:
            result["answer"] = _asks_about_hostile_names(incident_id)
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    thread = threading.Thread(target=run_flow, name="hostile-names-in-browser-test", daemon=True)
    thread.start()
    foreign: list[str] = []
    requested: list[str] = []
    screenshot = tmp_path / "hostile-names.png"
    with get_client(sync_client=True) as client:
        run = _wait_until_paused(client, f"approval-with-hostile-names:{incident_id}", thread)
        try:
            with local_page(foreign) as page:
                page.on("request", lambda request: requested.append(request.url))
                page.goto(f"{ui_url}/runs/flow-run/{run.id}")
                expect(page.locator(".state-badge").first).to_have_text("Paused", timeout=UI_TIMEOUT_MS)
                page.get_by_role("button", name="Resume", exact=True).click()
                dialog = page.get_by_role("dialog").filter(has_text="Resume Flow Run")
                try:
                    expect(dialog.get_by_text("Eradication of incident")).to_be_visible(timeout=UI_TIMEOUT_MS)
                    page.wait_for_timeout(1000)  # an image in the description would have been requested by now
                    description = dialog.locator(".markdown-renderer").first
                    shown = {"cells": description.get_by_role("cell").all_inner_texts(),
                             "links and images": description.locator("img, a").count(),
                             "code": description.locator("code").all_inner_texts(),
                             "note": description.get_by_text(f"Needs a human: the attacker also created "
                                                             f"{HOSTILE_NAMES[0]}", exact=True).count()}
                except Exception:
                    page.screenshot(path=str(screenshot), full_page=True)
                    print(f"screenshot of the failing dialog: {screenshot}")
                    raise
        finally:
            answer_pause(client, run.id, {"approver": "pytest", "decision": "deny",
                                          "reason": "hostile names test: nothing to approve"})
            thread.join(60)

    assert not foreign, f"the page tried to leave 127.0.0.1: {foreign}"
    assert [url for url in requested if urlparse(url).hostname != "127.0.0.1"
            and not url.startswith(("data:", "blob:"))] == []
    for name in HOSTILE_NAMES:  # each literally, in its own cell: the target, and in the summary
        assert name in shown["cells"] and f"delete key pair {name}" in shown["cells"], (name, shown["cells"])
    assert shown["links and images"] == 0 and shown["code"] == [incident_id] and shown["note"] == 1, shown
    assert "error" not in result, f"the flow failed: {result.get('error')!r}"
    assert result["answer"]["decision"] == "deny"
