"""The response survives its runner being killed at the worst moments, with no Retry by hand.

One incident (the pivot-chain scenario: steps in all three phases) runs under `keyresponse serve`
against a moto sandbox and the session's Prefect server. For each phase the runner is killed with
SIGKILL twice:
- while the run waits for the phase's approval: the run is suspended, nothing of it is in the killed
  process, and after a restart it is still waiting and is answered;
- during the phase's apply, in the worst place: moto has made a change but its answer is held back
  (the sandbox's `delay_s` fault), so the killed process changed AWS without recording it.
After each kill `keyresponse serve` starts again; it finds the killed run (its process lock is
free while Prefect shows it Running) and retries it, never showing it ended; the run resumes from its
journal. The test makes no Retry call. The process killed in the middle of an apply is a run forked
from the runner's forkserver (`keyresponse.warm_start`, never a cold `python -m prefect.engine`), and
it exits with the runner, forkserver and all: a forkserver outlives its client while any child lives. At the end: every change in the ledger exactly once, the
interrupted ones recorded from their intents, every approval once, and the report naming every
change of every attempt.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from keyresponse.approval import answer_pause, paused_phase, paused_runs
from keyresponse.demo import Stack, wait_until
from keyresponse.incident import minimal_investigation_record
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.simulate import run_simulation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: The IAM and Lambda writes the three phases make: each answered late, after moto made the change.
WRITES = ["UpdateAccessKey", "PutUserPolicy", "PutRolePolicy", "TagUser", "TagRole", "DeleteAccessKey",
          "CreateAccessKey", "DeleteUserPolicy", "DeleteRolePolicy", "DeleteLoginProfile", "UpdateLoginProfile"]
HELD_S = 5.0
APPROVE = {"approver": "ops@example.com", "decision": "approve", "reason": "durability test"}


def _faults(box: MotoSandbox, body: dict[str, Any]) -> None:
    httpx.post(f"{box.endpoint}/_keyresponse/faults", json=body, timeout=10).raise_for_status()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _warm_runs(serve_pid: int) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """The forkservers `keyresponse serve` started, and the flow-run processes they forked; asserts
    that serve started no flow run cold (`python -m prefect.engine`)."""
    serve = psutil.Process(serve_pid)
    cold = [p.pid for p in serve.children(recursive=True) if "prefect.engine" in " ".join(p.cmdline())]
    assert cold == [], f"flow runs started cold: {cold}"
    forkservers = [p for p in serve.children() if "multiprocessing.forkserver" in " ".join(p.cmdline())]
    return forkservers, [run for server in forkservers for run in server.children()]


def test_killed_during_every_approval_and_every_apply_the_incident_completes_once(
        prefect_server: str, tmp_path: Path) -> None:
    with MotoSandbox() as box:
        account = seed_account(box)
        # a seed of its own: the demo's test plays pivot-chain with the default seed against the same
        # Prefect server, and Prefect never forgets a launch's idempotency key (the alert's id): the
        # same finding posted again by a later test would be handed the earlier test's ended run
        sim = run_simulation(scenario="pivot-chain", out=tmp_path / "logs", events=3000, sandbox=box, processes=1,
                             seed=11)
        with Stack(box, account, tmp_path, logs=tmp_path / "logs") as stack:
            answer = stack.post("guardduty", (tmp_path / "logs" / "alerts" / "guardduty.json").read_bytes())
            run_id, incident = answer["flow_run_id"], answer["incident_id"]
            folder = stack.home / "incidents" / incident
            ledger, intents = folder / "ledger.jsonl", folder / "intents.jsonl"
            kills = {"approval": 0, "apply": 0}
            interrupted: list[dict[str, Any]] = []
            with stack.client() as client:
                def waiting_on(phase: str) -> Any:
                    runs = paused_runs(client, within=run_id)
                    return next((r for r in runs if paused_phase(r) == phase), None)

                for phase in ("containment", "eradication", "recovery"):
                    wait_until(lambda p=phase: waiting_on(p), f"the {phase} approval", timeout=240, every=0.3)
                    stack.stop_serve(kill=True)
                    kills["approval"] += 1
                    stack.start_serve()
                    run = waiting_on(phase)
                    assert run is not None, f"the {phase} approval did not survive the runner's death"

                    _faults(box, {"service": "iam", "delay_s": HELD_S, "delay_actions": WRITES})
                    before = len(_lines(intents))
                    assert answer_pause(client, run.id, APPROVE)
                    wait_until(lambda n=before: len(_lines(intents)) > n, f"a {phase} write", timeout=120, every=0.3)
                    time.sleep(HELD_S / 3)  # moto has made the change; its answer is held back
                    assert stack.serve_pid is not None
                    forkservers, runs = _warm_runs(stack.serve_pid)
                    assert len(forkservers) == 1 and runs, (forkservers, runs)
                    stack.stop_serve(kill=True)
                    kills["apply"] += 1
                    _, alive = psutil.wait_procs(forkservers + runs, timeout=15)
                    assert alive == [], f"left running after the runner was killed: {alive}"
                    intent = _lines(intents)[-1]
                    recorded = {(e["action"], json.dumps(e["target"], sort_keys=True)) for e in _lines(ledger)}
                    assert (intent["action"], json.dumps(intent["target"], sort_keys=True)) not in recorded
                    interrupted.append(intent)
                    _faults(box, {})
                    stack.start_serve()

                final = wait_until(lambda: (lambda r: r if r.state.is_final() else None)(
                    client.read_flow_run(run_id)), "the run to end", timeout=300, every=0.3)
            assert final.state.name == "Completed", final.state
    serve_log = (tmp_path / "serve.log").read_text()
    assert serve_log.count("had no process left: retried") == 3, serve_log[-3000:]

    entries = _lines(ledger)
    undone = {e["undoes"] for e in entries if e["kind"] == "undo"}
    in_effect = [(e["action"], json.dumps(e["target"], sort_keys=True)) for e in entries
                 if e["kind"] == "apply" and e["entry_id"] not in undone]
    duplicated = [change for change, n in Counter(in_effect).items() if n > 1]
    assert duplicated == [], duplicated
    notes = [e for e in entries if e.get("note")]
    for intent in interrupted:  # each change the killed process made is in the ledger, from its intent
        match = [e for e in notes if e["action"] == intent["action"] and e["target"] == intent["target"]
                 and e["kind"] == "apply" and e["applied_at"] >= intent["at"]]
        assert len(match) == 1 and match[0]["before"] == intent["before"], (intent, notes)
    record = json.loads((folder / "incident.json").read_text())
    assert [e["entry_id"] for e in record["ledger"]] == [e["entry_id"] for e in entries]
    assert record["status"] == "recovered", record["status"]
    assert Counter(a["phase"] for a in record["approvals"]) == {"containment": 1, "eradication": 1, "recovery": 1}
    report = (folder / "report" / "report.md").read_text()
    missing = [e["entry_id"] for e in entries if e["kind"] == "apply" and e["target"]["id"] not in report]
    assert missing == [], missing
    assert kills == {"approval": 3, "apply": 3}
    print(f"crashes injected: {sum(kills.values())} ({kills}); incidents completed: 1; ledger entries: "
          f"{len(entries)} ({len(notes)} recorded after an interruption); changes duplicated: {len(duplicated)}; "
          f"changes missing from the report: {len(missing)}")
    assert sim.ground_truth["compromised_access_key_id"] in report


def test_a_run_killed_after_its_last_write_but_before_closing_the_phase_keeps_its_approval(
        prefect_server: str, sandbox: MotoSandbox, unique_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The window the kills above cannot hit for sure: every step of the phase applied and recorded,
    the journal not yet told the phase is over. Executed again, the phase has nothing left to do:
    it must still say applied, with the approval that allowed it, not "nothing to do" without one."""
    from prefect import flow

    from flows.phase import run_phase
    from keyresponse.journal import Journal
    from keyresponse.sandbox.server import admin_client
    from keyresponse.settings import get_settings

    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    iam = admin_client(sandbox.endpoint, "iam")
    account = admin_client(sandbox.endpoint, "sts").get_caller_identity()["Account"]
    user = unique_name[:60]
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")  # applied before the kill
    arn = f"arn:aws:iam::{account}:user/{user}"
    investigation = minimal_investigation_record(
        access_key_id=key, account_id=account, principal_arn=arn,
        credentials=[{"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
                      "principal_arn": arn}])
    answer = {"phase": "containment", "approver": "ops@example.com", "decision": "approve", "reason": "INC",
              "at": "2026-12-04T00:00:00Z", "also_contain": [], "plan_sha256": "0" * 64}
    incident = f"INC-CLOSE-{unique_name[:20]}"
    run_id = "00000000-0000-4000-8000-000000000001"
    Journal(incident, run_id).put("approval-containment-1", {"answer": answer, "changes": []})

    @flow(name="phase-executed-again")
    def again() -> dict[str, Any]:
        return run_phase("containment", incident, investigation, dry_run=False, approval=True,
                         only=["deactivate_access_key"], journal=Journal(incident, run_id))

    try:
        outcome = again()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert outcome["status"] == "applied", outcome
    assert outcome["approvals"] == [answer] and outcome["approval"] == answer
