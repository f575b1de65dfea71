"""The response DAG end to end on a real Prefect server, against its own sandbox and simulated attack."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect_runs import run_answering, saved_input

from keyresponse.alerts import normalize
from keyresponse.approval import answer_pause, paused_runs
from keyresponse.markdown import text
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.server import admin_client
from keyresponse.sandbox.simulate import run_simulation
from keyresponse.settings import get_settings

pytestmark = pytest.mark.slow  # whole responses on a real Prefect server

END = datetime(2026, 11, 20, tzinfo=UTC)


class World:
    def __init__(self, box: MotoSandbox, out: Path, truth: dict[str, Any], home: Path) -> None:
        self.box, self.out, self.truth, self.home = box, out, truth, home

    def alert(self, name: str) -> Any:
        payload = json.loads((self.out / "alerts" / f"{name}.json").read_text())
        return normalize(name if name != "generic" else "generic", payload)[0]


@pytest.fixture(scope="module")
def world(prefect_server: str, sandbox: MotoSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # `sandbox` (unused here) first: the session sandbox exports its AWS_* variables when it starts, and
    # a start during this module would be undone by the restore below, leaving later tests without them.
    saved = dict(os.environ)
    with MotoSandbox() as box:
        account = seed_account(box)
        out = tmp_path_factory.mktemp("respond")
        result = run_simulation(scenario="pivot-chain", out=out / "logs", events=3000, sandbox=box, anchor=END,
                                processes=1)
        home = out / "home"
        os.environ.update(box.env())
        os.environ.update({
            "AWS_ACCESS_KEY_ID": account.responder.access_key_id,
            "AWS_SECRET_ACCESS_KEY": account.responder.secret_access_key,
            "KEYRESPONSE_HOME": str(home), "KEYRESPONSE_CLOUDTRAIL_LOGS": str(out / "logs"),
            "KEYRESPONSE_PROTECTED_PRINCIPALS": '["break-glass"]',
            "KEYRESPONSE_APPROVAL_POLL_SECONDS": "1", "KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "120",
        })
        get_settings.cache_clear()
        try:
            yield World(box, out / "logs", result.ground_truth, home)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()


def run_with_answers(alert: Any, answers: list[dict[str, str]], *, incident_id: str,
                     **kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    """Run the flow in a thread; answer each approval pause of this incident in turn from this thread.

    Only this incident's pauses (its phases' subflows are named `<phase>:<incident id>`): the session's
    Prefect server may hold paused runs of other tests whose process has ended, and answering one of
    those instead would leave this incident's pause to time out.
    """
    from prefect import get_client

    from flows.respond_to_exposed_key import respond_to_exposed_key

    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "r", respond_to_exposed_key(alert, incident_id=incident_id, **kwargs)))
    thread.start()
    descriptions: list[str] = []
    pending = list(answers)
    deadline = time.monotonic() + 240
    with get_client(sync_client=True) as client:
        while thread.is_alive() and time.monotonic() < deadline:
            paused = [run for run in paused_runs(client) if run.name.endswith(f":{incident_id}")]
            if paused and pending:
                run = paused[0]
                keys = run.state.state_details.run_input_keyset or {}
                if "description" in keys:
                    descriptions.append(str(saved_input(client, run.id, keys["description"])))
                assert answer_pause(client, run.id, pending.pop(0)), f"{run.name} was no longer paused"
            time.sleep(0.3)
    thread.join(30)
    assert "r" in result, "the flow did not finish"
    return result["r"], descriptions


class Sink(threading.Thread):
    """A local HTTP endpoint standing in for a Slack incoming webhook: records every POST body."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(daemon=True)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.received = received
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack"

    def run(self) -> None:
        self.server.serve_forever()


def _key_status(world: World) -> str:
    iam = admin_client(world.box.endpoint, "iam")
    owner = world.truth["owner"]["user_name"]
    keys = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=owner)["AccessKeyMetadata"]}
    return keys[world.truth["compromised_access_key_id"]]


def test_deny_changes_nothing_and_the_report_says_who_and_why(world: World) -> None:
    alert = world.alert("generic")  # not high confidence: nothing happens before the approval
    record, _ = run_with_answers(alert, [{"approver": "bob@example.com", "decision": "deny",
                                          "reason": "owner confirms a planned rotation test"}],
                                 incident_id="inc-deny-test")
    assert record["status"] == "denied"
    assert record["ledger"] == [] and _key_status(world) == "Active"
    report = (world.home / "incidents" / "inc-deny-test" / "report" / "report.md").read_text()
    assert text("bob@example.com") in report and "planned rotation test" in report


def test_timeout_escalates_to_slack_and_sns_and_changes_nothing(world: World) -> None:
    sink = Sink()
    sink.start()
    sns = admin_client(world.box.endpoint, "sns")
    sqs = admin_client(world.box.endpoint, "sqs")
    topic = sns.create_topic(Name="keyresponse-incidents")["TopicArn"]
    queue = sqs.create_queue(QueueName="incident-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    os.environ.update(KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS="6", KEYRESPONSE_SLACK_WEBHOOK_URL=sink.url,
                      KEYRESPONSE_SNS_TOPIC_ARN=topic)
    get_settings.cache_clear()
    try:
        record, _ = run_with_answers(world.alert("generic"), [], incident_id="inc-timeout-test")
    finally:
        for name in ("KEYRESPONSE_SLACK_WEBHOOK_URL", "KEYRESPONSE_SNS_TOPIC_ARN"):
            os.environ.pop(name)
        os.environ["KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS"] = "120"
        get_settings.cache_clear()
        sink.server.shutdown()
    assert record["status"] == "timed_out"
    assert record["approvals"] == [] and record["ledger"] == []
    assert _key_status(world) == "Active"
    texts = [m["text"] for m in sink.received]
    assert any("approve containment" in t for t in texts) and any("NOT approved in time" in t for t in texts)
    bodies = [json.loads(m["Body"])["Message"] for m in sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    assert any(json.loads(b)["kind"] == "escalation" for b in bodies)


def test_a_denial_after_early_containment_reports_what_is_left_in_place_and_how_to_undo_it(world: World) -> None:
    """A high-confidence alert: the receiver deactivates the key at once, the run revokes the owner's
    sessions and tags them, then the containment plan is denied. What stays in place is reported, with
    how to undo it, and the timeline has the alert received (the receiver's spool time) before containment.
    Last, the undo flow the report names puts the sandbox back for the next test."""
    from keyresponse.receiver.config import WebhookSettings
    from keyresponse.receiver.spool import AlertSpool, SpoolRecord
    from tasks import first_response
    from tasks.iam_changes import INCIDENT_TAG, revocation_policy_name

    alert = world.alert("guardduty")
    assert alert.high_confidence
    incident_id = "inc-left-in-place-test"
    key, owner = world.truth["compromised_access_key_id"], world.truth["owner"]["user_name"]
    # What the receiver does with such an alert (keyresponse.receiver.intake.AlertIntake): spool it, then
    # deactivate its key in a worker thread while the run is launched.
    received = datetime.now(UTC)
    AlertSpool(WebhookSettings().spool).save(SpoolRecord(alert=alert, incident_id=incident_id,
                                                         idempotency_key=alert.idempotency_key, received_at=received))
    assert first_response.claim(incident_id, key)
    assert first_response.contain(incident_id, key)["status"] == "applied"
    time.sleep(1.5)  # the run starts later (a fresh process): that is not when the alert was received
    record, _ = run_with_answers(alert, [{"approver": "carol@example.com", "decision": "deny",
                                          "reason": "the owner rotates the key themselves"}], incident_id=incident_id)
    assert record["status"] == "denied"

    timeline = record["timeline"]
    assert timeline["alert_received_at"] == received.strftime("%Y-%m-%dT%H:%M:%SZ"), timeline
    assert timeline["alert_received_at"] <= timeline["contained_at"] <= timeline["closed_at"], timeline

    iam = admin_client(world.box.endpoint, "iam")
    policy = revocation_policy_name(incident_id)
    assert _key_status(world) == "Inactive"
    assert policy in iam.list_user_policies(UserName=owner)["PolicyNames"]
    left = record["left_in_place"]
    assert {(c["action"], c["label"]) for c in left["changes"]} == {
        ("deactivate_access_key", f"access_key:{key} ({owner})"),
        ("attach_session_revocation_policy", f"user:{owner}"), ("tag_principal", f"user:{owner}")}
    assert all(c["undo_supported"] for c in left["changes"])
    assert left["undo"]["apply"] == f"keyresponse undo {incident_id} --apply"
    assert left["undo"]["deployment"] == "undo-incident/undo-incident"
    folder = world.home / "incidents" / incident_id
    for path in (folder / "incident.json", folder / "report" / "incident.json"):
        assert json.loads(path.read_text())["left_in_place"] == left, path
    report = (folder / "report" / "report.md").read_text()
    section = report[report.index("## Left in place"):report.index("## Actions")]
    assert f"user:{owner}" in section and "revoke the sessions of user" in section and key in section
    assert f"`keyresponse undo {incident_id} --apply`" in section and "`undo-incident/undo-incident`" in section
    assert text("carol@example.com") in report
    assert text("3 change(s) applied before this point are left in place") in report

    from flows.undo_incident import undo_incident_flow

    undone, _ = run_answering(lambda: undo_incident_flow(incident_id, dry_run=False), f"undo:{incident_id}",
                              {"approver": "carol@example.com", "decision": "approve", "reason": "key rotated"})
    assert len(undone["undone"]) == 3 and undone["skipped"] == [], undone
    assert _key_status(world) == "Active"
    assert policy not in iam.list_user_policies(UserName=owner)["PolicyNames"]
    tags = {t["Key"] for t in iam.list_user_tags(UserName=owner)["Tags"]}
    assert INCIDENT_TAG not in tags


def test_pivot_chain_is_contained_eradicated_and_recovered_with_named_approvals(world: World) -> None:
    alert = world.alert("guardduty")
    approve = {"approver": "ana@example.com", "decision": "approve", "reason": "SEC-42"}
    record, descriptions = run_with_answers(alert, [approve, approve, approve], incident_id="inc-pivot-test")
    assert record["status"] == "recovered", record["status"]
    assert [a["approver"] for a in record["approvals"]] == ["ana@example.com"] * 3
    assert "deactivate_access_key" in descriptions[0]
    iam = admin_client(world.box.endpoint, "iam")
    original = world.truth["compromised_access_key_id"]
    owner = world.truth["owner"]["user_name"]
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=owner)["AccessKeyMetadata"]}
    assert statuses.get(original) in ("Inactive", None)
    for cred in world.truth["attacker_credentials"]:
        if cred["kind"] == "access_key":
            user = cred["principal_arn"].rsplit("/", 1)[1]
            keys = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
            assert cred["access_key_id"] not in keys, "attacker-created key still exists"
    functions = {f["FunctionName"] for f in admin_client(world.box.endpoint, "lambda").list_functions()["Functions"]}
    assert "cost-optimizer" not in functions
    # recovery removed the revocation policies and eradication deleted the deactivated keys: neither is
    # left in place; the deletions are, as changes that cannot be undone
    left = {(c["action"], c["undo_supported"]) for c in record["left_in_place"]["changes"]}
    assert not {a for a, _ in left} & {"attach_session_revocation_policy", "deactivate_access_key"}, left
    assert ("delete_access_key", False) in left and ("tag_principal", True) in left
    report = world.home / "incidents" / record["incident_id"] / "report"
    assert (report / "report.html").exists()
    # the sandbox has no GuardDuty and no trail: the report's recommendations say so, with the fix
    gaps = {r["check"].split(" (")[0] for r in record["readiness"] if r["status"] == "fail"}
    assert any(g.startswith("guardduty_enabled") for g in gaps), gaps
    assert "cloudtrail_multi_region_logging" in gaps, gaps
    assert text("guardduty_enabled") in (report / "report.md").read_text()  # through keyresponse.markdown
