"""An approval binds what runs: the containment flow on the session's Prefect server and moto.

The approver adds an uncertain credential (`also_contain`). The steps that brings were not in the
plan shown, so they are asked for in a second approval that shows only them; approved, everything
runs; denied, only what was approved the first time runs. Each decision is stored with exactly the
changes it approved and their SHA-256 before anything is applied.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from prefect_runs import saved_input

from keyresponse.approval import answer_pause
from keyresponse.evidence import open_store
from keyresponse.incident import minimal_investigation
from keyresponse.markdown import text
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.server import admin_client
from tasks.response import plan_digest


def _investigation(account_id: str, user: str, key: str, other_user: str, other_key: str) -> dict[str, Any]:
    arn = f"arn:aws:iam::{account_id}:user/{user}"
    return minimal_investigation(**{
            "access_key_id": key, "account_id": account_id, "principal_arn": arn,
            "credentials": [{"access_key_id": key, "kind": "original", "created_by_event": None, "parent": None,
                             "principal_arn": arn}],
            "uncertain_credentials": [{"access_key_id": other_key, "kind": "access_key", "created_by_event": None,
                                       "parent": None, "principal_arn": f"arn:aws:iam::{account_id}:user/{other_user}",
                                       "reasons": ["used from 203.0.113.9, which cannot be told from the owner's"]}],
            "persistence": [], "resources_created": [], "regions": []})


def _paused(client: Any, run_name: str, thread: threading.Thread, seen: set[str]) -> tuple[Any, dict[str, str]]:
    """The run once it waits on an approval form not answered before (`seen`: earlier forms' keysets),
    and the form is readable (`prefect_runs.saved_input`)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name]))):
            keys = (run.state.state_details.run_input_keyset or {}) if run.state else {}
            if run.state and run.state.is_paused() and "schema" in keys and keys["schema"] not in seen:
                saved_input(client, run.id, keys["schema"])
                saved_input(client, run.id, keys["description"])
                seen.add(keys["schema"])
                return run, keys
        assert thread.is_alive(), f"the flow ended before it paused: {run_name}"
        time.sleep(0.2)
    raise AssertionError(f"{run_name} did not pause for a new approval")


def _key_status(iam: Any, user: str, key: str) -> str:
    return next(k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
                if k["AccessKeyId"] == key)


def _owner_and_other(sandbox: MotoSandbox, unique_name: str) -> tuple[Any, str, tuple[str, str], tuple[str, str]]:
    """(iam client, account, (owner, owner's key), (other user, its key)): two users made for one test."""
    iam = admin_client(sandbox.endpoint, "iam")
    account = admin_client(sandbox.endpoint, "sts").get_caller_identity()["Account"]
    users = (f"{unique_name[:50]}-own", f"{unique_name[:50]}-unc")
    keys = []
    for name in users:
        iam.create_user(UserName=name)
        keys.append(iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"])
    return iam, account, (users[0], keys[0]), (users[1], keys[1])


def _contain_in_thread(incident_id: str, investigation: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """The containment flow in a thread; its `outcome` (or `error`) lands in the dict returned."""
    from flows.containment import containment

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = containment(incident_id, investigation)
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("second", ["approve", "deny"])
def test_steps_added_after_an_approval_are_asked_for_again_and_only_approved_steps_run(
        prefect_server: str, sandbox: MotoSandbox, unique_name: str, second: str) -> None:
    from prefect import get_client

    iam, account, (user, key), (other, other_key) = _owner_and_other(sandbox, unique_name)
    incident_id = f"INC-BIND-{second}-{time.monotonic_ns() % 10**9}"
    thread, result = _contain_in_thread(incident_id, _investigation(account, user, key, other, other_key))
    seen: set[str] = set()
    try:
        with get_client(sync_client=True) as client:
            first, _ = _paused(client, f"containment:{incident_id}", thread, seen)
            assert answer_pause(client, first.id, {"approver": "alice@example.com", "decision": "approve",
                                                   "reason": "INC-1", "also_contain": [other_key]})
            again, keys = _paused(client, f"containment:{incident_id}", thread, seen)
            form = json.loads(saved_input(client, again.id, keys["description"]))
            assert other_key in form and key not in form.split("approve", 1)[1], form
            assert text("were not in the plan alice@example.com approved") in form  # the approver's name, escaped
            assert _key_status(iam, other, other_key) == "Active"  # nothing of it ran before the answer
            assert answer_pause(client, again.id, {"approver": "bob@example.com", "decision": second,
                                                   "reason": "INC-2"})
    finally:
        thread.join(120)
    assert "error" not in result, result.get("error")
    outcome = result["outcome"]
    assert outcome["status"] == "applied"
    assert _key_status(iam, user, key) == "Inactive"
    assert _key_status(iam, other, other_key) == ("Inactive" if second == "approve" else "Active")
    applied = {(e["action"], e["target"]["id"]) for e in outcome["ledger"]}
    assert ("deactivate_access_key", key) in applied
    assert (("deactivate_access_key", other_key) in applied) is (second == "approve")
    assert [a["decision"] for a in outcome["approvals"]] == ["approve", second]
    if second == "deny":
        assert any(other_key in k for k in outcome["unapproved"])
    # each approval stored with exactly what it approved, and that SHA-256
    store = open_store(incident_id)
    stored = [json.loads(store.get(f"approval-containment-{n}.json") or b"null")
              for n in (1, 2)]
    assert stored[0]["plan_sha256"] == plan_digest(stored[0]["changes"]) == outcome["approvals"][0]["plan_sha256"]
    assert all(other_key not in c["key"] for c in stored[0]["changes"])
    if second == "approve":
        assert {c["key"] for c in stored[1]["changes"]} == {c for c in [c["key"] for c in stored[1]["changes"]]
                                                            if other in c or other_key in c}
    else:
        assert stored[1] is None  # a denial approves nothing, so nothing is stored as approved


@pytest.mark.parametrize("second", ["approve", "deny"])
def test_a_key_the_attacker_mints_while_the_approver_reads_is_asked_for_never_applied_silently(
        prefect_server: str, sandbox: MotoSandbox, unique_name: str, second: str) -> None:
    """The plan shown holds the owner's key; while the run waits, a second key appears on the owner
    (minted after the logs the investigation read). Approved, the first plan runs, and the new key's
    steps are asked for in a new approval that names it and says why; only if that is approved is
    the new key deactivated."""
    from prefect import get_client

    iam, account, (user, key), (other, other_key) = _owner_and_other(sandbox, unique_name)
    investigation = _investigation(account, user, key, other, other_key)
    investigation["window"] = {"start": "2026-01-01T00:00:00Z",
                               "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))}
    incident_id = f"INC-MINT-{second}-{time.monotonic_ns() % 10**9}"
    thread, result = _contain_in_thread(incident_id, investigation)
    seen: set[str] = set()
    try:
        with get_client(sync_client=True) as client:
            first, keys = _paused(client, f"containment:{incident_id}", thread, seen)
            minted = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]  # the attacker races
            assert minted not in saved_input(client, first.id, keys["description"])
            assert answer_pause(client, first.id, {"approver": "alice@example.com", "decision": "approve",
                                                   "reason": "INC-1"})
            again, keys = _paused(client, f"containment:{incident_id}", thread, seen)
            form = saved_input(client, again.id, keys["description"])
            assert minted in form and "minted while the response was under way" in form, form
            assert _key_status(iam, user, key) == "Inactive"  # what was approved ran
            assert _key_status(iam, user, minted) == "Active"  # the new key waits for its own answer
            assert answer_pause(client, again.id, {"approver": "bob@example.com", "decision": second,
                                                   "reason": "INC-2"})
    finally:
        thread.join(120)
    assert "error" not in result, result.get("error")
    outcome = result["outcome"]
    assert outcome["status"] == "applied"
    assert _key_status(iam, user, minted) == ("Inactive" if second == "approve" else "Active")
    assert _key_status(iam, other, other_key) == "Active"  # uncertain, never picked
    assert [a["decision"] for a in outcome["approvals"]] == ["approve", second]
    if second == "deny":
        assert any(minted in k for k in outcome["unapproved"])
    assert minted in {c["access_key_id"] for c in outcome["investigation"]["credentials"]}
