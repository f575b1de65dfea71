"""Containment is checked after it is applied (issue 16, finding H5): the real response flow on the
session's Prefect server and moto, its logs read by DuckDB.

The race: the attacker minted a second key before CloudTrail delivered the record of it, so the
analysis cannot see it. Once the first key is contained, the attacker sets it Active again with the
second key and goes on calling with it; CloudTrail delivers those records late. The check after
CloudTrail's delivery delay finds all three (the key Active again, its successful calls after
containment, the key minted in the gap), reopens the incident, and a new containment approval round
contains both keys; the report says so. A key nobody touches after containment reopens nothing.
And `require_approval` is no parameter of the deployment: it is the responder's setting.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from prefect_runs import saved_input

from keyresponse.alerts import normalize
from keyresponse.approval import answer_pause, paused_runs
from keyresponse.engines.layout import write_trail_files
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.cloudtrail import Identity, build_record
from keyresponse.sandbox.server import admin_client
from keyresponse.settings import get_settings

pytestmark = pytest.mark.slow  # whole responses on a real Prefect server

ATTACKER_IP = "203.0.113.66"
APPROVE = {"approver": "ana@example.com", "decision": "approve", "reason": "SEC-16"}
STOP = {"approver": "ana@example.com", "decision": "deny", "reason": "the owner eradicates by hand"}


@dataclass
class Victim:
    account: str
    user: str
    key: str
    logs: Path
    home: Path

    def record(self, user: str, key: str, at: datetime, service: str, operation: str,
               request: dict[str, Any] | None = None, response: dict[str, Any] | None = None) -> dict[str, Any]:
        return build_record(rng=random.Random(at.timestamp()), identity=Identity.iam_user(self.account, user, "AIDA" + user[:8].upper(), key),
                            event_time=at.strftime("%Y-%m-%dT%H:%M:%SZ"), service=service, operation=operation,
                            region="us-east-1", source_ip=ATTACKER_IP, user_agent="aws-cli/2.15.0",
                            account_id=self.account, request_parameters=request, response_elements=response)


@pytest.fixture
def victim(sandbox: MotoSandbox, prefect_server: str, unique_name: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Victim]:
    """An owner with one key, the logs the analysis reads (an unrelated call only: the key's own use
    is not delivered yet) and the response's settings."""
    iam = admin_client(sandbox.endpoint, "iam")
    account = admin_client(sandbox.endpoint, "sts").get_caller_identity()["Account"]
    user = unique_name[:50]
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    found = Victim(account, user, key, tmp_path / "logs", tmp_path / "home")
    other = found.record("someone-else", "AKIAIOSFODNN7EXAMPLE", datetime.now(UTC) - timedelta(hours=2), "sts",
                         "GetCallerIdentity")
    write_trail_files([other], found.logs)
    for name, value in {"KEYRESPONSE_HOME": str(found.home), "KEYRESPONSE_CLOUDTRAIL_LOGS": str(found.logs),
                        "KEYRESPONSE_APPROVAL_POLL_SECONDS": "1", "KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "120",
                        "KEYRESPONSE_CONTAINMENT_GRACE_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield found
    monkeypatch.undo()
    get_settings.cache_clear()


def _respond(victim: Victim, incident_id: str, answers: list[dict[str, str]],
             meanwhile: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The response flow in a thread; each approval pause of it answered in turn (returns the forms'
    descriptions). `meanwhile` runs once the first check after containment is journaled, while the
    run waits for CloudTrail's delivery delay: what the attacker does then."""
    from prefect import get_client

    from flows.respond_to_exposed_key import respond_to_exposed_key

    alert = normalize("generic", {"access_key_id": victim.key, "account_id": victim.account, "reason": "exposed",
                                  "alert_id": incident_id})[0]
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["record"] = respond_to_exposed_key(alert, incident_id=incident_id)
        except BaseException as exc:  # raised again below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    pending, shown, seen = list(answers), [], set()
    journal = victim.home / "incidents" / incident_id / "journal"
    deadline = time.monotonic() + 180
    with get_client(sync_client=True) as client:
        while thread.is_alive() and time.monotonic() < deadline:
            if meanwhile is not None and list(journal.glob("*/containment-check-after-containment.json")):
                meanwhile()
                meanwhile = None
            for run_ in paused_runs(client):
                keys = (run_.state.state_details.run_input_keyset or {}) if run_.state else {}
                if run_.name != f"respond:{incident_id}" or "description" not in keys or keys["schema"] in seen:
                    continue
                seen.add(keys["schema"])
                shown.append(json.loads(saved_input(client, run_.id, keys["description"])))
                assert pending, f"an approval nobody expected: {shown[-1][:300]}"
                assert answer_pause(client, run_.id, pending.pop(0))
            time.sleep(0.2)
    thread.join(30)
    if "error" in result:
        raise result["error"]
    assert "record" in result, "the response did not finish"
    assert pending == [], f"{len(pending)} approval(s) never asked"
    return result["record"], shown


def _status(sandbox: MotoSandbox, user: str, key: str) -> str:
    keys = admin_client(sandbox.endpoint, "iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return next(k["Status"] for k in keys if k["AccessKeyId"] == key)


def test_a_key_set_active_again_by_a_key_minted_in_the_gap_reopens_the_incident_and_both_are_contained(
        sandbox: MotoSandbox, victim: Victim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYRESPONSE_RECHECK_DELAY_SECONDS", "3")  # room for the attacker to act in the test
    get_settings.cache_clear()
    iam = admin_client(sandbox.endpoint, "iam")
    backdoor = f"{victim.user[:40]}-bd"
    iam.create_user(UserName=backdoor)
    second = iam.create_access_key(UserName=backdoor)["AccessKey"]
    minted_at = datetime.now(UTC) - timedelta(seconds=30)  # before the analysis; delivered after it
    incident_id = f"inc-h5-race-{int(time.time() * 1000) % 10**8}"

    def attacker() -> None:
        assert _status(sandbox, victim.user, victim.key) == "Inactive"  # contained, and checked once
        boto3.client("iam", endpoint_url=sandbox.endpoint, region_name="us-east-1",
                     aws_access_key_id=second["AccessKeyId"], aws_secret_access_key=second["SecretAccessKey"]
                     ).update_access_key(UserName=victim.user, AccessKeyId=victim.key, Status="Active")
        now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        write_trail_files([  # CloudTrail delivers: the mint, the re-activation, the key's calls since
            victim.record(victim.user, victim.key, minted_at, "iam", "CreateAccessKey", {"userName": backdoor},
                          {"accessKey": {"accessKeyId": second["AccessKeyId"], "userName": backdoor,
                                         "status": "Active", "createDate": minted_at.isoformat()}}),
            victim.record(backdoor, second["AccessKeyId"], now, "iam", "UpdateAccessKey",
                          {"userName": victim.user, "accessKeyId": victim.key, "status": "Active"}),
            *[victim.record(victim.user, victim.key, now + timedelta(seconds=i), "s3", "ListBuckets") for i in range(3)],
        ], victim.logs)

    record, shown = _respond(victim, incident_id, [APPROVE, APPROVE, STOP], meanwhile=attacker)

    assert _status(sandbox, victim.user, victim.key) == "Inactive"
    assert _status(sandbox, backdoor, second["AccessKeyId"]) == "Inactive"
    checks = {c["stage"]: c for c in record["containment_checks"]}
    assert list(checks) == ["after_containment", "after_delivery_delay", "before_post_incident"]
    assert checks["after_containment"]["breaches"] == []
    reopened = checks["after_delivery_delay"]
    assert {(b["kind"], b["subject"].split(" ")[0]) for b in reopened["breaches"]} == {
        ("reverted", f"access_key:{victim.key}"), ("activity", victim.key), ("minted", second["AccessKeyId"])}
    assert reopened["round"] == "applied"
    calls = [a for a in reopened["activity"] if a["breach"]]
    assert [(a["event_name"], a["call_count"], a["error_code"]) for a in calls] == [("ListBuckets", 3, None)]
    assert checks["before_post_incident"]["breaches"] == []  # re-contained: quiet again
    # the new round asked for exactly what was found, and said why
    assert "Containment did not hold" in shown[1] and second["AccessKeyId"] in shown[1] and victim.key in shown[1]
    assert [a["decision"] for a in record["approvals"]] == ["approve", "approve", "deny"]
    deactivated = [e["target"]["id"] for e in record["ledger"] if e["action"] == "deactivate_access_key"]
    assert deactivated == [victim.key, victim.key, second["AccessKeyId"]]
    assert second["AccessKeyId"] in {c["access_key_id"] for c in record["investigation"]["credentials"]}
    report = (victim.home / "incidents" / incident_id / "report" / "report.md").read_text()
    assert "reopened 1 time(s)" in report and "## Did containment hold" in report
    stored = json.loads((victim.home / "incidents" / incident_id / "incident.json").read_text())
    assert stored["containment_checks"] == record["containment_checks"]


def test_a_quiet_contained_key_reopens_nothing(sandbox: MotoSandbox, victim: Victim) -> None:
    incident_id = f"inc-h5-quiet-{int(time.time() * 1000) % 10**8}"
    record, _ = _respond(victim, incident_id, [APPROVE, STOP])
    assert _status(sandbox, victim.user, victim.key) == "Inactive"
    assert [c["stage"] for c in record["containment_checks"]] == [
        "after_containment", "after_delivery_delay", "before_post_incident"]
    assert all(c["breaches"] == [] and c["round"] is None and c["credentials"] == [victim.key]
               for c in record["containment_checks"])
    assert [a["decision"] for a in record["approvals"]] == ["approve", "deny"]  # no round was added
    report = (victim.home / "incidents" / incident_id / "report" / "report.md").read_text()
    assert "Containment held" in report and "reopened" not in report


def test_the_deployment_takes_no_require_approval_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who reaches the Prefect API can start a run with the parameters they like (finding H7):
    whether a human approves is the responder's setting."""
    from flows.respond_to_exposed_key import respond_to_exposed_key

    deployment = respond_to_exposed_key.to_deployment(name="respond-to-exposed-key")
    schema = deployment._parameter_openapi_schema.model_dump()
    assert set(schema["properties"]) == {"alert", "incident_id", "dry_run", "logs"}
    assert "approval" not in json.dumps(schema["properties"])
    monkeypatch.setenv("KEYRESPONSE_REQUIRE_APPROVAL", "false")
    get_settings.cache_clear()
    try:
        assert get_settings().require_approval is False
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert get_settings().require_approval is True
