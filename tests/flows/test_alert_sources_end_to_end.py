"""From each real alert fixture and each simulator alert to a contained key, through the running
system: the signed webhook, the Prefect deployment run by `keyresponse serve`, approvals in the
Prefect API, and the key Inactive in the sandbox.

Real fixtures carry placeholder or made-up keys (AWS's docs, Panther's tests): each gets the key of
a victim user created for it. GitHub alerts carry no key: the receiver fetches it from a fake
GitHub REST API on 127.0.0.1, as it would from api.github.com.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_servers import FakeGitHub

from keyresponse.alerts import SOURCES
from keyresponse.approval import answer_pause, paused_phase, paused_runs
from keyresponse.demo import Stack
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.seed import seed_account
from keyresponse.sandbox.server import admin_client
from keyresponse.sandbox.simulate import run_simulation

pytestmark = pytest.mark.slow  # a receiver, a runner and a sandbox per module; every alert source end to end

ALERTS = Path(__file__).parents[1] / "fixtures" / "alerts"
ACCOUNT = "123456789012"


def _load(name: str) -> Any:
    return json.loads((ALERTS / name).read_text())


def _envelope(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    return dict(_load("eventbridge_envelopes.aws_docs.json")[kind], detail=detail)


def _payloads(keys: dict[str, tuple[str, str]], sim_alerts: Path) -> dict[str, tuple[str, bytes]]:
    """name → (route, body): every alert source, each about its own victim key."""
    out: dict[str, tuple[str, Any]] = {}
    health = _load("health_risk_credentials_exposed.aws_health_tools.json")
    health["detail"]["affectedEntities"][0]["entityValue"] = keys["real-health"][1]
    out["real-health"] = ("health", health)
    finding = copy.deepcopy(_load("guardduty_findings.panther_analysis.json")[2])
    finding["resource"] = {"resourceType": "AccessKey", "accessKeyDetails": {
        "accessKeyId": keys["real-guardduty"][1], "principalId": "AIDAEXAMPLE", "userName": keys["real-guardduty"][0],
        "userType": "IAMUser"}}
    finding["accountId"] = ACCOUNT
    out["real-guardduty"] = ("guardduty", _envelope("guardduty_finding", finding))
    text = json.dumps(_load("securityhub_asff_findings.panther_analysis.json")[0])
    for fake in ("ABC9ONWNS3155VIEJC8U", "ABCDEFG1HIJ2KLMNOPQR", "ABC12DEFSG3455VIEJC8U"):
        text = text.replace(f'"AccessKeyId": "{fake}"', f'"AccessKeyId": "{keys["real-securityhub"][1]}"')
    asff = json.loads(text)
    asff["AwsAccountId"] = ACCOUNT
    out["real-securityhub"] = ("securityhub", _envelope("securityhub_findings_imported", {"findings": [asff]}))
    record = copy.deepcopy(_load("cloudtrail_quarantine.panther_analysis.json")["Records"][0])
    record["requestParameters"]["userName"] = keys["real-cloudtrail"][0]
    record["recipientAccountId"] = ACCOUNT
    out["real-cloudtrail"] = ("cloudtrail", record)
    github = _load("github_secret_scanning_alert_reopened.octokit.json")
    github["alert"]["secret_type"] = "aws_access_key_id"
    github["alert"]["number"] = 1
    out["real-github"] = ("github", github)
    for name in ("guardduty", "health", "github", "generic"):
        text = (sim_alerts / f"{name}.json").read_text()
        payload = json.loads(text.replace(keys["_original"][1], keys[f"sim-{name}"][1]))
        if name == "github":
            payload["alert"]["number"] = 2
        out[f"sim-{name}"] = (name, payload)
    return {name: (route, json.dumps(body).encode()) for name, (route, body) in out.items()}


@pytest.fixture(scope="module")
def system(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Any, dict]]:
    folder = tmp_path_factory.mktemp("sources")
    with MotoSandbox() as box:
        account = seed_account(box)
        sim = run_simulation(scenario="scanner-validation", out=folder / "logs", events=1500, sandbox=box,
                             processes=1)
        iam = admin_client(box.endpoint, "iam")
        names = ["real-health", "real-guardduty", "real-securityhub", "real-cloudtrail", "real-github",
                 "sim-guardduty", "sim-health", "sim-github", "sim-generic"]
        keys = {"_original": ("", sim.ground_truth["compromised_access_key_id"])}
        for name in names:
            user = f"victim-{name}"
            iam.create_user(UserName=user)
            keys[name] = (user, iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"])
        payloads = _payloads(keys, folder / "logs" / "alerts")
        with FakeGitHub() as github:
            for name in ("real-github", "sim-github"):
                github.holds(json.loads(payloads[name][1]), keys[name][1])
            env = {"KEYRESPONSE_WEBHOOK_GITHUB_API_URL": github.url, "KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS": "120"}
            with Stack(box, account, folder, logs=folder / "logs", extra_env=env) as stack:
                yield stack, iam, {"keys": keys, "payloads": payloads, "github": github}


def test_every_alert_source_ends_with_its_key_contained(system: tuple[Stack, Any, dict]) -> None:
    stack, iam, data = system
    keys, payloads = data["keys"], data["payloads"]
    answers = {}
    for name, (route, body) in payloads.items():
        answers[name] = stack.post(route, body)
    assert {route for route, _ in payloads.values()} == set(SOURCES), "an alert source without an end-to-end case"
    assert all(a["flow_run_id"] for a in answers.values()), answers
    assert len({a["incident_id"] for a in answers.values()}) == len(payloads)

    def status(name: str) -> str:
        user, key = keys[name]
        return {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}[key]

    deadline = time.monotonic() + 400
    with stack.client() as client:
        while time.monotonic() < deadline and any(status(n) == "Active" for n in payloads):
            # approve containment; deny what comes after, to finish quickly. Only these incidents'
            # pauses: the server may hold paused runs of other tests whose process has ended.
            mine = [run for a in answers.values() for run in paused_runs(client, within=a["flow_run_id"])]
            for run in mine:
                decision = "approve" if paused_phase(run) == "containment" else "deny"
                answer_pause(client, run.id, {"approver": "e2e@example.com", "decision": decision,
                                              "reason": "end-to-end test"})
            time.sleep(0.5)
    assert {n: status(n) for n in payloads} == {n: "Inactive" for n in payloads}
    assert len(data["github"].requests) == 2  # the key of each GitHub alert was fetched from the API


def _health(key: str, user: str, n: str) -> bytes:
    health = _load("health_risk_credentials_exposed.aws_health_tools.json")
    health["id"] = f"first-response-{n}"
    health["detail"]["eventArn"] = f"arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/FR{n}"
    health["detail"]["affectedEntities"][0]["entityValue"] = key
    health["detail"]["eventDescription"][0]["latestDescription"] = f"Access key {key} of {user} is public."
    return json.dumps(health).encode()


def _finish(stack: Stack, run_id: str, timeout: float = 300) -> str:
    """Deny every pause of the run (its subflows) until it ends; return its final state's name."""
    deadline = time.monotonic() + timeout
    with stack.client() as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state and run.state.is_final():
                return str(run.state.name)
            for paused in paused_runs(client, within=run_id):
                answer_pause(client, paused.id, {"approver": "e2e@example.com", "decision": "deny",
                                                 "reason": "first-response test: nothing more"})
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end within {timeout} s")


def test_the_receiver_contains_a_high_confidence_key_once_and_the_run_records_it(
        system: tuple[Stack, Any, dict]) -> None:
    stack, iam, _ = system
    user = "victim-first-response"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    other = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    answer = stack.post("health", _health(key, user, "1"))
    incident = stack.home / "incidents" / answer["incident_id"]
    assert _finish(stack, answer["flow_run_id"]) == "Completed"

    first = json.loads((incident / "first_response.json").read_text())
    assert first["status"] == "applied", first
    status = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    assert status == {key: "Inactive", other: "Active"}  # only the alert's key, never the user's other one
    ledger = [json.loads(line) for line in (incident / "ledger.jsonl").read_text().splitlines()]
    deactivations = [e for e in ledger if e["action"] == "deactivate_access_key"]
    assert len(deactivations) == 1, deactivations  # the run's own early containment found it done
    assert deactivations[0]["target"]["id"] == key and deactivations[0]["flow_run_id"] is None
    assert deactivations[0]["before"] == {"status": "Active"} and deactivations[0]["after"] == {"status": "Inactive"}
    record = json.loads((incident / "incident.json").read_text())
    assert deactivations[0]["entry_id"] in {e["entry_id"] for e in record["ledger"]}
    assert record["timeline"]["contained_at"] == deactivations[0]["applied_at"][:19] + "Z"
    assert {e["action"] for e in record["ledger"]} >= {"deactivate_access_key", "attach_session_revocation_policy"}

    # The incident is over: the same alert delivered again still maps to it, a new alert opens a new one.
    redelivered = stack.post("health", _health(key, user, "1"))
    assert redelivered["incident_id"] == answer["incident_id"] and redelivered["status"] == "redelivered"
    exposed_again = stack.post("health", _health(key, user, "1-again"))
    assert exposed_again["incident_id"] != answer["incident_id"] and "duplicate_of" not in exposed_again


def test_the_receiver_never_contains_a_protected_principals_key(system: tuple[Stack, Any, dict]) -> None:
    from keyresponse.sandbox.seed import BREAK_GLASS_USER

    stack, iam, _ = system
    key = iam.create_access_key(UserName=BREAK_GLASS_USER)["AccessKey"]["AccessKeyId"]
    answer = stack.post("health", _health(key, BREAK_GLASS_USER, "2"))
    incident = stack.home / "incidents" / answer["incident_id"]
    _finish(stack, answer["flow_run_id"])
    first = json.loads((incident / "first_response.json").read_text())
    assert first["status"] == "refused" and BREAK_GLASS_USER in first["reason"], first
    status = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=BREAK_GLASS_USER)["AccessKeyMetadata"]}
    assert status[key] == "Active"
    assert not (incident / "ledger.jsonl").exists() or "deactivate_access_key" not in (incident / "ledger.jsonl").read_text()
