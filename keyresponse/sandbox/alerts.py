"""The alerts a simulated incident raises, in the payload shapes AWS and GitHub send.

* `guardduty.json` — a GuardDuty finding in its EventBridge envelope ("GuardDuty Finding").
* `health.json` — an AWS Health `AWS_RISK_CREDENTIALS_EXPOSED` event (AWS found the key public).
* `github.json` — a GitHub `secret_scanning_alert` webhook (`created`); like the real one it does not
  carry the secret: a receiver fetches it from the GitHub REST API.
* `generic.json` — `{"access_key_id", "reason"}` for manual triggering.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.sandbox.cloudtrail import uuid_from

if TYPE_CHECKING:
    from keyresponse.sandbox.scenarios import Scenario

#: GuardDuty finding type and severity per scenario (types from the GuardDuty finding catalogue).
FINDINGS = {
    "recon-only": ("Recon:IAMUser/MaliciousIPCaller", 5.0, "ListUsers"),
    "scanner-validation": ("UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom", 5.0, "GetCallerIdentity"),
    "persistence": ("Persistence:IAMUser/AnomalousBehavior", 8.0, "CreateUser"),
    "cryptomining": ("Impact:IAMUser/AnomalousBehavior", 8.0, "RunInstances"),
    "data-exfiltration": ("Exfiltration:IAMUser/AnomalousBehavior", 8.0, "GetSecretValue"),
    "pivot-chain": ("CredentialAccess:IAMUser/AnomalousBehavior", 8.0, "CreateAccessKey"),
    "llmjacking-ses": ("Impact:IAMUser/AnomalousBehavior", 7.0, "InvokeModel"),
    "false-positive": ("UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B", 2.0, "GetCallerIdentity"),
    # the control: GuardDuty's anomaly model flags the owner's own discovery calls now and then
    "no-attack": ("Discovery:IAMUser/AnomalousBehavior", 2.0, "DescribeInstances"),
}
REPOSITORY: dict[str, Any] = {"full_name": "acme-corp/billing-service",
                              "html_url": "https://github.com/acme-corp/billing-service",
                              "id": 661_234_567, "name": "billing-service", "private": False}


def _guardduty(truth: dict[str, Any], scenario: str, rng: random.Random) -> dict[str, Any]:
    finding_type, severity, api = FINDINGS[scenario]
    account = truth["account_id"]
    owner = truth["owner"]
    finding_id = f"{rng.getrandbits(128):032x}"
    detector = f"{rng.getrandbits(128):032x}"
    ip = (truth["attacker_ips"] or ["3.91.171.44"])[0]
    when = truth["window"]["end"]
    detail = {
        "schemaVersion": "2.0", "accountId": account, "region": "us-east-1", "partition": "aws",
        "id": finding_id, "arn": f"arn:aws:guardduty:us-east-1:{account}:detector/{detector}/finding/{finding_id}",
        "type": finding_type, "severity": severity, "createdAt": when, "updatedAt": when,
        "title": f"{finding_type.split('/')[0]} activity by IAMUser/{owner['user_name']}",
        "description": f"APIs were invoked by IAM principal {owner['user_name']} from an unusual location.",
        "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
            "accessKeyId": truth["compromised_access_key_id"], "principalId": "AIDA" + "X" * 17,
            "userName": owner["user_name"], "userType": "IAMUser"}},
        "service": {"serviceName": "guardduty", "detectorId": detector, "archived": False, "count": 1,
                    "eventFirstSeen": truth["window"]["start"], "eventLastSeen": when, "resourceRole": "TARGET",
                    "action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {
                        "api": api, "callerType": "Remote IP", "serviceName": "iam.amazonaws.com",
                        "remoteIpDetails": {"ipAddressV4": ip, "organization": {"asnOrg": "unknown"},
                                            "country": {"countryName": "unknown"}}}}},
    }
    return {"version": "0", "id": uuid_from(rng), "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": account, "time": when, "region": "us-east-1",
            "resources": [], "detail": detail}


def _health(truth: dict[str, Any], exposure: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    key = truth["compromised_access_key_id"]
    return {"version": "0", "id": uuid_from(rng), "detail-type": "AWS Health Event", "source": "aws.health",
            "account": truth["account_id"], "time": exposure["exposed_at"], "region": "us-east-1", "resources": [],
            "detail": {
                "eventArn": f"arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/"
                            f"AWS_RISK_CREDENTIALS_EXPOSED_{rng.getrandbits(64):016X}",
                "service": "RISK", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "eventTypeCategory": "issue",
                "startTime": exposure["exposed_at"],
                "eventDescription": [{"language": "en_US", "latestDescription":
                    f"Your AWS Access Key {key} belonging to IAM User {truth['owner']['user_name']}, along with the "
                    f"corresponding Secret Key, is publicly available online at {exposure['url']}. AWS has applied "
                    "the AWSCompromisedKeyQuarantineV3 policy to the user."}],
                # where the key was found, as a structured field: what keyresponse reads (never the prose)
                "eventMetadata": {"exposureUrl": exposure["url"]},
                "affectedEntities": [{"entityValue": key}]}}


def _github(truth: dict[str, Any], exposure: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    number = 40 + rng.randrange(100)
    api = "https://api.github.com/repos/" + REPOSITORY["full_name"]
    return {
        "action": "created",
        "alert": {"number": number, "created_at": exposure["exposed_at"], "updated_at": exposure["exposed_at"],
                  "url": f"{api}/secret-scanning/alerts/{number}",
                  "html_url": f"{REPOSITORY['html_url']}/security/secret-scanning/{number}",
                  "locations_url": f"{api}/secret-scanning/alerts/{number}/locations",
                  "state": "open", "resolution": None, "resolved_at": None, "resolved_by": None,
                  "secret_type": "aws_access_key_id", "secret_type_display_name": "AWS Access Key ID",
                  "validity": "active", "publicly_leaked": True, "push_protection_bypassed": False},
        "repository": REPOSITORY,
        "organization": {"login": "acme-corp", "id": 1_234_567},
        "sender": {"login": "github", "id": 9_919, "type": "Organization"},
    }


def write_alerts(folder: Path, truth: dict[str, Any], scenario: Scenario, seed: int) -> dict[str, str]:
    """Write the alert payloads of this incident; returns the exposure facts (where the key leaked)."""
    rng = random.Random(f"{seed}:{scenario.name}:alerts")
    commit = f"{rng.getrandbits(160):040x}"
    exposure = {
        "source": "github", "repository": REPOSITORY["full_name"], "file": scenario.github_path, "commit": commit,
        "url": f"{REPOSITORY['html_url']}/blob/{commit}/{scenario.github_path}",
        "exposed_at": truth["window"]["start"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    payloads = {
        "guardduty.json": _guardduty(truth, scenario.name, rng),
        "health.json": _health(truth, exposure, rng),
        "github.json": _github(truth, exposure, rng),
        "generic.json": {"access_key_id": truth["compromised_access_key_id"],
                         "reason": f"simulated scenario {scenario.name}"},
    }
    for name, payload in payloads.items():
        (folder / name).write_text(json.dumps(payload, indent=2) + "\n")
    return exposure
