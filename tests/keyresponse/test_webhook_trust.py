"""One secret per source, and only what AWS delivers or a timestamped signature contains a key at once.

Real components: the receiver under uvicorn on 127.0.0.1 spoken to over HTTP, its first responder
(`tasks.first_response.FirstResponder`) against the session's moto server, and the
`keyresponse serve-webhook` command. The Prefect side is a `Launcher` that records what it is asked
to run (a high-confidence alert still high-confidence there means the flow contains it early too).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from local_servers import Receiver, RecordingLauncher
from typer.testing import CliRunner

from keyresponse.errors import ConfigurationError
from keyresponse.receiver.app import create_app
from keyresponse.receiver.auth import sign, sign_github
from keyresponse.receiver.config import WebhookSettings
from keyresponse.sandbox import MotoSandbox
from keyresponse.settings import get_settings
from tasks import first_response

HMAC_SECRET = "trust-hmac-secret-0123456789abcdef"
EVENTBRIDGE_TOKEN = "trust-eventbridge-token-0123456789"
BEARER_TOKEN = "trust-static-bearer-token-0123456789"
GITHUB_SECRET = "trust-github-secret-0123456789abcd"
ACCOUNT = "123456789012"  # moto's


@dataclass
class Trusting:
    url: str
    launcher: RecordingLauncher
    http: httpx.Client

    def post(self, route: str, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return self.http.post(f"{self.url}/alerts/{route}", content=json.dumps(payload).encode(),
                              headers={"Content-Type": "application/json", **headers})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hmac_signed(payload: dict[str, Any], secret: str = HMAC_SECRET) -> dict[str, str]:
    return {"X-Keyresponse-Signature": sign(json.dumps(payload).encode(), secret)}


@pytest.fixture(scope="module")
def trusting(sandbox: MotoSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trusting]:
    from tasks.first_response import FirstResponder

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEYRESPONSE_HOME", str(home))
        patch.delenv("KEYRESPONSE_EVIDENCE_BUCKET", raising=False)
        get_settings.cache_clear()
        responder = FirstResponder()
        launcher = RecordingLauncher()
        config = WebhookSettings(secret=HMAC_SECRET, eventbridge_token=EVENTBRIDGE_TOKEN, bearer_token=BEARER_TOKEN,
                                 github_secret=GITHUB_SECRET, spool=home / "spool")
        try:
            with Receiver(create_app(config, launcher, first_responder=responder)) as receiver, \
                    httpx.Client(timeout=30) as http:
                yield Trusting(receiver.url, launcher, http)
        finally:
            responder.close()
            get_settings.cache_clear()


def victim(name: str) -> str:
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    return str(iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"])


def key_status(name: str) -> str:
    return str(boto3.client("iam").list_access_keys(UserName=name)["AccessKeyMetadata"][0]["Status"])


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


def outcome(incident_id: str) -> dict[str, Any] | None:
    """The first response's outcome once it is no longer pending (30 s at most)."""
    deadline = time.monotonic() + 30
    found = first_response.read(incident_id)
    while found is not None and found.get("status") == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
        found = first_response.read(incident_id)
    return found


def test_a_high_confidence_alert_with_the_static_bearer_token_triggers_no_automatic_containment(
        trusting: Trusting, unique_name: str) -> None:
    key = victim(unique_name)
    before = len(trusting.launcher.calls)
    answer = trusting.post("guardduty", guardduty(key, unique_name), bearer(BEARER_TOKEN))
    assert answer.status_code == 202, answer.text
    assert answer.json()["automatic_containment"] is False and "approval" in answer.json()["note"]
    time.sleep(2)  # what a first response would have needed, and more
    assert first_response.read(answer.json()["incident_id"]) is None
    assert key_status(unique_name) == "Active"
    launched = trusting.launcher.calls[before:]
    assert [a.access_key_id for a in launched] == [key]
    assert launched[0].high_confidence is False  # the flow does not contain it early either


@pytest.mark.parametrize("credential", ["eventbridge", "hmac"])
def test_a_high_confidence_alert_from_aws_delivery_or_signed_with_a_timestamp_is_contained_at_once(
        trusting: Trusting, unique_name: str, credential: str) -> None:
    key = victim(unique_name)
    payload = guardduty(key, unique_name)
    answer = trusting.post("guardduty", payload,
                           bearer(EVENTBRIDGE_TOKEN) if credential == "eventbridge" else hmac_signed(payload))
    assert answer.status_code == 202, answer.text
    assert "automatic_containment" not in answer.json()
    found = outcome(answer.json()["incident_id"])
    assert found is not None and found["status"] == "applied", found
    assert key_status(unique_name) == "Inactive"
    assert trusting.launcher.calls[-1].high_confidence is True


def test_each_credential_is_accepted_only_on_its_own_routes(trusting: Trusting) -> None:
    before = len(trusting.launcher.calls)
    generic = {"access_key_id": "AKIATRUST00000000001", "reason": "which credential opens which route"}
    refused = trusting.post("generic", generic, bearer(EVENTBRIDGE_TOKEN))
    assert refused.status_code == 401 and "only on /alerts/{cloudtrail,guardduty,health,securityhub}" in \
        refused.json()["detail"]
    github_as_hmac = trusting.post("generic", generic, hmac_signed(generic, GITHUB_SECRET))
    assert (github_as_hmac.status_code, github_as_hmac.json()["error"]) == (401, "bad_signature")
    body = json.dumps({"zen": "Design for failure."}).encode()
    hmac_as_github = trusting.http.post(f"{trusting.url}/alerts/github", content=body, headers={
        "X-Hub-Signature-256": sign_github(body, HMAC_SECRET), "X-GitHub-Event": "ping"})
    assert (hmac_as_github.status_code, hmac_as_github.json()["error"]) == (401, "bad_signature")
    pong = trusting.http.post(f"{trusting.url}/alerts/github", content=body, headers={
        "X-Hub-Signature-256": sign_github(body, GITHUB_SECRET), "X-GitHub-Event": "ping"})
    assert pong.status_code == 200 and pong.json()["status"] == "pong"
    assert len(trusting.launcher.calls) == before


@pytest.mark.parametrize(("settings", "names"), [
    ({"secret": "one-secret-for-everything-0123", "github_secret": "one-secret-for-everything-0123"},
     ("KEYRESPONSE_WEBHOOK_SECRET", "KEYRESPONSE_WEBHOOK_GITHUB_SECRET")),
    ({"eventbridge_token": "shared-token-0123456789abcdef", "bearer_token": "shared-token-0123456789abcdef"},
     ("KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN", "KEYRESPONSE_WEBHOOK_BEARER_TOKEN")),
    ({"secret": "hmac-0123456789abcdef0123", "secrets": ["older-0123456789abcdef", "eb-token-0123456789abcdef"],
      "eventbridge_token": "eb-token-0123456789abcdef"},
     ("KEYRESPONSE_WEBHOOK_SECRETS[1]", "KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN")),
], ids=["hmac-is-github", "eventbridge-is-bearer", "rotation-list-holds-the-eventbridge-token"])
def test_the_receiver_refuses_to_start_with_a_secret_shared_between_sources(
        settings: dict[str, Any], names: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="hold the same secret") as refused:
        create_app(WebhookSettings(**settings, spool=tmp_path / "spool"), RecordingLauncher())
    assert all(name in str(refused.value) for name in names), str(refused.value)

    from keyresponse.cli import app

    for name in [n for n in WebhookSettings.model_fields if n.endswith(("secret", "token", "secrets"))]:
        monkeypatch.delenv(f"KEYRESPONSE_WEBHOOK_{name.upper()}", raising=False)
    env = {f"KEYRESPONSE_WEBHOOK_{key.upper()}": json.dumps(value) if isinstance(value, list) else value
           for key, value in settings.items()}
    result = CliRunner().invoke(app, ["serve-webhook", "--port", "1"], env=env)
    assert result.exit_code != 0
    assert "hold the same secret" in result.output and all(name in result.output for name in names), result.output
