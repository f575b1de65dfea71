"""Three incidents wait for approval; `keyresponse serve` is restarted, then the Prefect server is:
all three are still waiting, a responder approves each one in the real Prefect UI (headless
Chromium), and all three complete with their keys contained.

A deployment run waiting for approval is suspended (`keyresponse.approval`): no process holds it, so
stopping the runner takes nothing from it, and the question lives in the Prefect server's database.
The stack has a Prefect server of its own here (`own_prefect`), restarted on the same port and
database. The approval timeout is short (15 s): each waiting incident is escalated to Slack (a fake
on 127.0.0.1) while it waits, and keeps waiting (`keyresponse.waiting`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from browser import (
    APPROVAL,
    CHROMIUM,
    approve_in_resume_dialog,
    local_page,
)
from local_servers import FakeSlack

from keyresponse.approval import answer_pause, paused_phase, paused_runs
from keyresponse.demo import Stack, wait_until
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.server import admin_client
from keyresponse.sandbox.simulate import run_simulation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_three_waiting_approvals_survive_a_serve_restart_and_a_server_restart_and_are_approved_in_the_ui(
        tmp_path: Path) -> None:
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)"
    with MotoSandbox() as box:
        account = seed_account(box)
        run_simulation(scenario="recon-only", out=tmp_path / "logs", events=600, sandbox=box, processes=1)
        iam = admin_client(box.endpoint, "iam")
        victims = {}
        for n in range(3):
            user = f"waiting-victim-{n}"
            iam.create_user(UserName=user)
            victims[user] = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
        slack = FakeSlack().__enter__()
        env = {"KEYRESPONSE_SLACK_WEBHOOK_URL": slack.url, "KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "15"}
        # One run slot (--limit 1): three incidents waiting at once shows that a run waiting for its
        # approval is suspended and holds no slot (its process has exited).
        with Stack(box, account, tmp_path, logs=tmp_path / "logs", own_prefect=True, extra_env=env,
                   serve_args=["--limit", "1"]) as stack:
            runs = {}
            for user, key in victims.items():
                body = json.dumps({"access_key_id": key, "reason": f"{user}'s key seen in a paste"}).encode()
                runs[key] = stack.post("generic", body)["flow_run_id"]

            def all_waiting() -> dict[str, Any] | None:
                with stack.client() as client:
                    found = {key: next((r for r in paused_runs(client, within=run_id)
                                        if paused_phase(r) == "containment"), None) for key, run_id in runs.items()}
                return found if all(found.values()) else None

            wait_until(all_waiting, "three containment approvals", timeout=240, every=0.5)
            stack.stop_serve()  # a clean restart: SIGTERM
            stack.start_serve()
            # A run whose process was still exiting after it suspended is cancelled by the runner's clean
            # stop (Prefect's runner cancels every process it still has); the new serve retries it and it
            # asks again (keyresponse.orphans), so every approval is waiting again within seconds.
            wait_until(all_waiting, "the approvals after the restart of keyresponse serve", timeout=120, every=0.5)
            stack.restart_prefect()
            waiting = wait_until(all_waiting, "the approvals after the Prefect server's restart", timeout=60, every=0.5)
            incidents = [p.name for p in (tmp_path / "home" / "incidents").iterdir()]

            def escalated() -> bool:
                said = [m for m in slack.messages if "containment waits for approval" in m]
                return all(any(f"[{i}]" in m for m in said) for i in incidents)

            wait_until(escalated, "an escalation of each waiting approval", timeout=120, every=0.5)
            assert all_waiting(), "an escalation ended a waiting response"

            foreign: list[str] = []
            with local_page(foreign) as page:
                for key, run in waiting.items():
                    body = approve_in_resume_dialog(page, stack.ui_url, str(run.id), key, state="Suspended",
                                                    auth_string=stack.auth_string)
                    assert body["status"] == "ACCEPT", body
            assert not foreign, f"the page tried to leave 127.0.0.1: {foreign}"

            def all_ended() -> bool:
                with stack.client() as client:
                    for run_id in runs.values():  # nothing more to approve: deny what comes after containment
                        for paused in paused_runs(client, within=run_id):
                            answer_pause(client, paused.id, {"approver": "ops@example.com", "decision": "deny",
                                                             "reason": "restart test: containment is enough"})
                    return all(client.read_flow_run(r).state.is_final() for r in runs.values())

            wait_until(all_ended, "the three runs to end", timeout=300, every=0.5)
            with stack.client() as client:
                states = {key: client.read_flow_run(run_id).state.name for key, run_id in runs.items()}
            assert states == dict.fromkeys(victims.values(), "Completed"), states
        statuses = {k["AccessKeyId"]: k["Status"] for user in victims
                    for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    slack.__exit__()
    assert statuses == dict.fromkeys(victims.values(), "Inactive"), statuses
    approvals = []
    for record_path in (tmp_path / "home" / "incidents").glob("*/incident.json"):
        approvals += [(a["phase"], a["approver"], a["decision"])
                      for a in json.loads(record_path.read_text())["approvals"]]
    assert approvals.count(("containment", APPROVAL["approver"], "approve")) == 3, approvals
