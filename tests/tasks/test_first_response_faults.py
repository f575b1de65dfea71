"""The receiver's first response when AWS fails, when the attacker holds a second key, when the key is
re-opened, and when nobody would hear of it (issue 16: H5's receiver part and M6).

Real components: the receiver under uvicorn on 127.0.0.1 spoken to over HTTP, its first responder
against a moto server of this module's own (faults are per server: `/_keyresponse/faults`; moto's IAM
authorization is switched on for one test), Slack as a fake incoming webhook on 127.0.0.1, and, for
launch failures, `PrefectLauncher` against a Prefect API address where nothing listens. Elsewhere
the Prefect side is a `Launcher` that records what it is asked to run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_servers import FakeSlack, Receiver, RecordingLauncher

from keyresponse.ledger import Ledger
from keyresponse.prefect_server import free_port
from keyresponse.receiver.app import create_app
from keyresponse.receiver.config import WebhookSettings
from keyresponse.receiver.launcher import PrefectLauncher
from keyresponse.sandbox import MotoSandbox
from keyresponse.sandbox.server import admin_client
from keyresponse.settings import Settings, get_settings
from tasks import first_response
from tasks.first_response import FirstResponder

EVENTBRIDGE_TOKEN = "faults-eventbridge-token-0123456789"  # AWS's delivery: its alerts are contained at once
BEARER_TOKEN = "faults-static-bearer-token-0123456789"  # never contained at once
ACCOUNT = "123456789012"  # moto's


@dataclass
class World:
    box: MotoSandbox
    home: Path
    slack: FakeSlack

    @property
    def iam(self) -> Any:
        return admin_client(self.box.endpoint, "iam")

    def faults(self, rule: dict[str, Any] | None = None) -> dict[str, Any]:
        """Clear every fault (and its counters), then set `rule`; the counters as the sandbox has them."""
        self.box.call_extension("POST", "faults", {})
        return dict(self.box.call_extension("POST", "faults", rule or {}))

    def victim(self, name: str) -> str:
        self.iam.create_user(UserName=name)
        return str(self.iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"])

    def statuses(self, user: str) -> dict[str, str]:
        return {k["AccessKeyId"]: k["Status"] for k in self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}

    def settings(self, **changes: Any) -> Settings:
        """The process's settings (this module's home, Slack) with the first response's knobs for a test."""
        return get_settings().model_copy(update={"first_response_retry_seconds": 6.0,
                                                 "first_response_recheck_seconds": 0.0, **changes})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("home")
    with MotoSandbox() as box, FakeSlack() as slack, pytest.MonkeyPatch.context() as patch:
        for name, value in {**box.env(), "KEYRESPONSE_HOME": str(home),
                            "KEYRESPONSE_SLACK_WEBHOOK_URL": slack.url}.items():
            patch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "KEYRESPONSE_EVIDENCE_BUCKET", "KEYRESPONSE_SNS_TOPIC_ARN"):
            patch.delenv(name, raising=False)
        get_settings.cache_clear()
        try:
            yield World(box, home, slack)
        finally:
            get_settings.cache_clear()


@contextmanager
def receiving(world: World, settings: Settings, launcher: Any = None, **options: Any) -> Iterator[str]:
    """The receiver, with a first responder of `settings`, under uvicorn; yields its URL."""
    responder = FirstResponder(settings)
    config = WebhookSettings(eventbridge_token=EVENTBRIDGE_TOKEN, bearer_token=BEARER_TOKEN,
                             spool=world.home / f"spool-{uuid.uuid4().hex[:8]}",
                             **{k: v for k, v in options.items() if k != "relaunch_every"})
    app = create_app(config, launcher or RecordingLauncher(), first_responder=responder,
                     relaunch_every=options.get("relaunch_every"))
    try:
        with Receiver(app) as receiver:
            yield receiver.url
    finally:
        responder.close()


def guardduty(key: str, user: str) -> dict[str, Any]:
    """A GuardDuty finding of severity 9 (high confidence: the receiver contains its key itself)."""
    now, finding = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"), uuid.uuid4().hex
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": ACCOUNT, "time": now, "region": "us-east-1", "resources": [],
            "detail": {"accountId": ACCOUNT, "region": "us-east-1", "id": finding, "severity": 9,
                       "type": "CredentialAccess:IAMUser/AnomalousBehavior", "createdAt": now, "updatedAt": now,
                       "title": f"Anomalous API calls by IAMUser/{user}",
                       "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                           "accessKeyId": key, "userName": user, "userType": "IAMUser"}},
                       "service": {"serviceName": "guardduty", "eventFirstSeen": now, "eventLastSeen": now}}}


def post(url: str, route: str, payload: dict[str, Any], token: str = EVENTBRIDGE_TOKEN) -> httpx.Response:
    return httpx.post(f"{url}/alerts/{route}", json=payload, headers={"Authorization": f"Bearer {token}"},
                      timeout=30)


def alert_about(url: str, key: str, user: str) -> str:
    answer = post(url, "guardduty", guardduty(key, user))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["incident_id"])


def until(what: str, found: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(every)
    return value


def settled(incident_id: str) -> dict[str, Any]:
    """The first response's outcome once it is no longer pending."""
    outcome = until("first response outcome", lambda: (o := first_response.read(incident_id)) is not None
                    and o.get("status") != "pending" and o)
    return dict(outcome)


# --- M6 (1): transient failures are tried again ------------------------------------------------------


@pytest.mark.parametrize("fault", [
    pytest.param({"service": "iam", "fail_after": 2}, id="503-from-the-write-on"),
    pytest.param({"service": "iam", "throttle_rate": 1.0}, id="every-iam-call-throttled"),
])
def test_key_ends_inactive_with_one_ledger_entry_when_iam_fails_for_a_while(
        world: World, unique_name: str, fault: dict[str, Any]) -> None:
    """IAM answers 503 (from the third IAM call on, the deactivation's own write: its name lookup and key
    listing pass) or throttles every call, for 1.5 s: more than the clients' own two attempts. The first
    response tries again with backoff, and the key ends Inactive with one ledger entry for it."""
    key = world.victim(unique_name)
    with receiving(world, world.settings()) as url:
        world.faults(fault)
        back = threading.Timer(1.5, world.box.call_extension, ("POST", "faults", {"service": "iam"}))
        back.start()  # IAM comes back (the counters stay)
        incident = alert_about(url, key, unique_name)
        outcome = settled(incident)
        back.join()
    injected = world.box.call_extension("GET", "faults")["injected"].get("iam", 0)
    assert outcome["status"] == "applied", outcome
    assert world.statuses(unique_name) == {key: "Inactive"}
    if "fail_after" in fault:  # the write's 503s outlast the client's two attempts: the first response tries again
        assert outcome["attempts"] > 1, outcome
        assert {f["step"] for f in outcome["transient_failures"]} == {"deactivate_access_key"}, outcome
        # each failed try met at least one 503 (how many depends on whether botocore parsed the body and
        # retried it itself: a 503 body it cannot parse is raised at once, see keyresponse.retry)
        assert injected >= outcome["attempts"] - 1 >= 1, (injected, outcome)
    else:  # boto3's adaptive mode waits out a throttled IAM itself, its rate limiter slowing the client down
        assert injected >= 1, injected
    keys = [e for e in Ledger(incident, world.home).entries() if e.action == "deactivate_access_key"]
    assert [(e.kind, e.before, e.after) for e in keys] == [("apply", {"status": "Active"}, {"status": "Inactive"})]
    assert world.slack.said(incident) == []  # nothing went wrong in the end: nobody is paged


@pytest.mark.parametrize(("fault", "tries"), [
    pytest.param({"service": "iam", "fail_after": 0}, "several", id="iam-down"),
    pytest.param({"service": "iam", "deny": True}, "one", id="access-denied"),
])
def test_a_first_response_that_cannot_contain_is_failed_and_notified(
        world: World, unique_name: str, fault: dict[str, Any], tries: str) -> None:
    """IAM down for good: tried with backoff until the budget (2 s here) is spent. AccessDenied: a
    refusal, not tried again. Either way the outcome is `failed` and Slack hears it once."""
    key = world.victim(unique_name)
    with receiving(world, world.settings(first_response_retry_seconds=2.0)) as url:
        world.faults(fault)
        try:
            started = time.monotonic()
            incident = alert_about(url, key, unique_name)
            outcome = settled(incident)
            took = time.monotonic() - started
        finally:
            world.faults()
    assert outcome["status"] == "failed", outcome
    assert world.statuses(unique_name) == {key: "Active"}
    if tries == "one":
        assert outcome["attempts"] == 1 and "AccessDenied" in outcome["reason"], outcome
    else:
        assert outcome["attempts"] >= 3 and took < 8, (outcome, took)
    said = until("a Slack message", lambda: world.slack.said(incident))
    assert len(said) == 1 and "first response FAILED" in said[0] and key in said[0], said


# --- H5: the owner is stopped, not only the key --------------------------------------------------------


def test_a_second_key_minted_before_the_alert_is_stopped_by_the_deny_on_the_owner(
        world: World, unique_name: str) -> None:
    """The attacker minted a second key on the owner before the alert. With moto's IAM authorization on
    (identity policies evaluated, an explicit Deny winning), that key can re-activate the contained key
    before the first response and can do nothing after it: the deny on the owner stops it. Undo lifts it."""
    from tasks.actions import ActionContext, undo_incident
    from tasks.registry import registry

    iam = world.iam
    responder = f"{unique_name}-responder"
    iam.create_user(UserName=responder)
    allow_all = json.dumps({"Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    iam.put_user_policy(UserName=responder, PolicyName="responder", PolicyDocument=allow_all)
    responder_key = iam.create_access_key(UserName=responder)["AccessKey"]
    owner = f"{unique_name}-owner"
    leaked = world.victim(owner)
    iam.put_user_policy(UserName=owner, PolicyName="owner-work", PolicyDocument=allow_all)
    second = iam.create_access_key(UserName=owner)["AccessKey"]  # the attacker's, minted with the leaked key
    import boto3

    attacker = boto3.client("iam", endpoint_url=world.box.endpoint, region_name="us-east-1",
                            aws_access_key_id=second["AccessKeyId"], aws_secret_access_key=second["SecretAccessKey"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", responder_key["AccessKeyId"])  # the first response acts as the responder
        patch.setenv("AWS_SECRET_ACCESS_KEY", responder_key["SecretAccessKey"])
        world.box.set_auth(True)
        try:
            attacker.list_access_keys(UserName=owner)  # the second key works: the test can fail
            with receiving(world, world.settings()) as url:
                incident = alert_about(url, leaked, owner)
                outcome = settled(incident)
            assert outcome["status"] == "applied" and outcome["owner_deny"]["status"] == "applied", outcome
            with pytest.raises(attacker.exceptions.ClientError, match="AccessDenied"):
                attacker.update_access_key(UserName=owner, AccessKeyId=leaked, Status="Active")
            with pytest.raises(attacker.exceptions.ClientError, match="AccessDenied"):
                attacker.create_access_key(UserName=responder)
            assert "the deny on the owner verified" in outcome["plan"]["notes"], outcome["plan"]["notes"]

            ctx = ActionContext.create(incident, dry_run=False)  # as the responder
            report = undo_incident(ctx, registry())
            assert sorted(e.action for e in report.undone) == ["attach_session_revocation_policy",
                                                                "deactivate_access_key"]
            attacker.list_access_keys(UserName=owner)  # the deny is gone: the owner's keys work again
        finally:
            world.box.set_auth(False)
    assert world.statuses(owner)[leaked] == "Active"
    assert iam.list_user_policies(UserName=owner)["PolicyNames"] == ["owner-work"]


def test_the_recheck_contains_again_a_key_reactivated_and_a_key_minted_after_the_first_response(
        world: World, unique_name: str) -> None:
    """Whoever still has a way in (a role session with IAM rights, which the receiver cannot know of
    before CloudTrail delivers) re-activates the key, mints a new one and deletes the deny; the recheck,
    a second later, contains all three again, each with its ledger entry, and says so on Slack once."""
    key = world.victim(unique_name)
    with receiving(world, world.settings(first_response_recheck_seconds=1.5)) as url:
        incident = alert_about(url, key, unique_name)
        outcome = settled(incident)
        assert outcome["status"] == "applied", outcome
        policy = str(world.iam.list_user_policies(UserName=unique_name)["PolicyNames"][0])
        world.iam.update_access_key(UserName=unique_name, AccessKeyId=key, Status="Active")
        minted = str(world.iam.create_access_key(UserName=unique_name)["AccessKey"]["AccessKeyId"])
        world.iam.delete_user_policy(UserName=unique_name, PolicyName=policy)
        rechecked = until("recheck", lambda: (first_response.read(incident) or {}).get("rechecks"), timeout=15)
    assert rechecked[0]["status"] == "recontained", rechecked
    assert rechecked[0]["recontained"] == [key, minted] and rechecked[0]["owner_deny_restored"] is True
    assert world.statuses(unique_name) == {key: "Inactive", minted: "Inactive"}
    assert world.iam.list_user_policies(UserName=unique_name)["PolicyNames"] == [policy]
    applied = [(e.action, e.target["id"]) for e in Ledger(incident, world.home).applied()]
    assert applied == [("deactivate_access_key", key), ("attach_session_revocation_policy", unique_name),
                       ("deactivate_access_key", key), ("deactivate_access_key", minted),
                       ("attach_session_revocation_policy", unique_name)]
    said = until("a Slack message", lambda: world.slack.said(incident))
    assert len(said) == 1 and "contained again" in said[0] and minted in said[0], said


def test_the_recheck_leaves_alone_a_key_a_person_has_undone(world: World, unique_name: str) -> None:
    """An undo is a person's decision: the recheck finds the key Active again and leaves it so."""
    from tasks.actions import ActionContext, undo_incident
    from tasks.registry import registry

    key = world.victim(unique_name)
    incident = f"inc-recheck-undone-{uuid.uuid4().hex[:8]}"
    settings = world.settings()
    assert first_response.claim(incident, key, world.home)
    assert first_response.contain(incident, key, settings)["status"] == "applied"
    undo_incident(ActionContext.create(incident, dry_run=False), registry())
    result = first_response.recheck(incident, settings)
    assert result["status"] == "skipped" and "undone" in result["reason"], result
    assert world.statuses(unique_name) == {key: "Active"}


# --- M6 (2): nobody is left unaware of a launch that does not happen ---------------------------------


def test_a_launch_failure_and_a_stuck_alert_are_each_notified_once(world: World, unique_name: str) -> None:
    """Prefect cannot be reached: the alert is spooled (503), Slack hears that its run could not be
    started, and once it has waited past `stuck_after_seconds`, that it is stuck: once each, however
    many relaunch passes fail after."""
    nowhere = PrefectLauncher("respond-to-exposed-key/respond-to-exposed-key",
                              api_url=f"http://127.0.0.1:{free_port()}/api")
    key = world.victim(unique_name)
    with receiving(world, world.settings(), nowhere, relaunch_every=0.2, stuck_after_seconds=1.0,
                   launch_timeout_seconds=1, answer_within_seconds=3) as url:
        answer = post(url, "generic", {"access_key_id": key, "reason": "seen in a paste"}, token=BEARER_TOKEN)
        assert answer.status_code == 503 and answer.json()["error"] == "launch_failed", answer.text
        incident = answer.json()["incident_id"]
        until("a stuck alert message", lambda: world.slack.said(incident, "waits for its flow run"))
        passes = httpx.get(f"{url}/healthz", timeout=10).json()["launch_attempts"]
        until("three more relaunch passes",
              lambda: httpx.get(f"{url}/healthz", timeout=10).json()["launch_attempts"] >= passes + 3,
              every=0.5)  # /healthz is unauthenticated: 5 requests a second after a burst of 20
        health = httpx.get(f"{url}/healthz", timeout=10).json()
    said = world.slack.said(incident)
    assert len(world.slack.said(incident, "could not be started")) == 1, said
    assert len(world.slack.said(incident, "waits for its flow run")) == 1, said
    assert len(said) == 2, said
    assert (health["notified_launch_failed"], health["notified_stuck"]) == (1, 1), health
