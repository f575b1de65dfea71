"""The five answers match what each simulator scenario did (the session's played scenarios)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyresponse.intel import answer_five_questions, event_from_record
from keyresponse.sandbox.cloudtrail import iter_records
from keyresponse.sandbox.scenarios import NEW_CI_RUNNER_IPS

from ._helpers import full_config

pytestmark = pytest.mark.slow  # the `played` fixture: one sandbox, eight simulations

TYPES = {"AWS::EC2::Instance": "ec2:instance", "AWS::EC2::KeyPair": "ec2:key-pair", "AWS::IAM::User": "iam:user",
         "AWS::IAM::AccessKey": "iam:access-key", "AWS::IAM::VirtualMFADevice": "iam:mfa-device",
         "AWS::Lambda::Function": "lambda:function"}


class Case:
    def __init__(self, name: str, out: Path) -> None:
        self.name = name
        self.truth: dict[str, Any] = json.loads((out / "ground_truth.json").read_text())
        records = list(iter_records(out))
        ips = set(self.truth["attacker_ips"]) or set(NEW_CI_RUNNER_IPS)
        self.events = sorted((event_from_record(r) for r in records if r.get("sourceIPAddress") in ips),
                             key=lambda e: (e["event_time"], e["event_id"]))
        key = self.truth["compromised_access_key_id"]
        usual = set(self.truth["owner"]["usual_ips"])
        own = [r for r in records if (r.get("userIdentity") or {}).get("accessKeyId") == key
               and r.get("sourceIPAddress") in usual]
        self.baseline = {"user_agents": sorted({r["userAgent"] for r in own}),
                         "event_names": sorted({r["eventName"] for r in own})}
        self.alerts = {p.stem: json.loads(p.read_text()) for p in (out / "alerts").glob("*.json")}
        self.investigation = {
            "verdict": self.truth["expected_verdict"], "window": self.truth["window"],
            "first_seen": self.events[0]["event_time"] if self.events else None,
            "resources_created": [{"type": TYPES.get(r["type"], r["type"]), "id": r["id"], "region": r["region"],
                                   "event_name": ""} for r in self.truth["resources_created"]],
            "persistence": [{"event_name": p["event_name"], "resource": p["resource"], "event_time": None,
                             "access_key_id": None} for p in self.truth["persistence"]],
            "data_access": [], "logging_gaps": []}

    def answers(self, source: str = "health", **kwargs: Any) -> dict[str, Any]:
        return answer_five_questions(self.events, self.investigation, source, self.alerts[source],
                                     {"created_at": "2026-05-01T00:00:00Z", "owner": self.truth["owner"]["arn"]},
                                     full_config(), **kwargs)


@pytest.fixture(scope="module")
def cases(played: Any) -> dict[str, Case]:
    """The session's played scenarios (tests/conftest.py: 1,500 events each, anchored at PLAYED_END)."""
    return {name: Case(name, result.out) for name, result in played.results.items()}


def _tools(answers: dict[str, Any]) -> set[str]:
    return {t["tool"] for t in answers["tools_observed"]}


def _fingerprints(answers: dict[str, Any]) -> set[str]:
    return {t["fingerprint"] for t in answers["tools_observed"] if t["category"] == "behaviour"}


def _intents(answers: dict[str, Any]) -> dict[str, str]:
    return {i["intent"]: i["confidence"] for i in answers["intent"]["intents"]}


def test_every_scenario_has_attacker_events_and_evidence(cases: dict[str, Case]) -> None:
    for case in cases.values():
        assert case.events, case.name
        answers = case.answers()
        ids = {e["event_id"] for e in case.events}
        for item in answers["intent"]["intents"]:
            assert item["evidence"] and {r["event_id"] for r in item["evidence"]} <= ids, case.name
        for tool in answers["tools_observed"]:
            assert set(tool["evidence"]) <= ids and tool["count"] == len(tool["evidence"])


def test_exposure_names_the_public_url_commit_and_file_when_health_reports_it(cases: dict[str, Case]) -> None:
    for case in cases.values():
        exposure = case.answers("health")["exposure"]
        truth = case.truth["exposure"]
        assert exposure["url"] == truth["url"]
        assert (exposure["repository"], exposure["commit"], exposure["file"]) == (
            truth["repository"], truth["commit"], truth["file"])
        assert exposure["exposed_at"] == truth["exposed_at"]
        assert exposure["likely_causes"][0]["cause"] == "hard_coded_in_code"
        assert exposure["first_use"]["event_id"] == case.events[0]["event_id"]


def test_exposure_reads_repository_and_locations_from_github_alert(cases: dict[str, Case]) -> None:
    case = cases["recon-only"]
    truth = case.truth["exposure"]
    locations = [{"type": "commit", "details": {"path": truth["file"], "commit_sha": truth["commit"],
                                                 "start_line": 12, "blob_url": truth["url"]}}]
    exposure = case.answers("github", github_locations=locations)["exposure"]
    assert exposure["detected_by"] == "github_secret_scanning"
    assert exposure["repository"] == truth["repository"]
    assert (exposure["file"], exposure["commit"], exposure["url"]) == (truth["file"], truth["commit"], truth["url"])
    without = case.answers("github")["exposure"]
    assert without["repository"] == truth["repository"] and without["file"] is None
    assert without["likely_causes"][0]["confidence"] == "medium"


def test_recon_only_is_reconnaissance_with_kali_cli_and_enumeration(cases: dict[str, Case]) -> None:
    answers = cases["recon-only"].answers()
    assert answers["intent"]["primary"] == "reconnaissance"
    assert set(_intents(answers)) == {"reconnaissance"}
    assert {"Kali Linux", "aws-cli"} <= _tools(answers)
    assert {"enumeration_burst", "permission_bruteforce"} <= _fingerprints(answers)
    damage = answers["damage"]
    assert not damage["resources_created"] and not damage["resources_changed"] and not damage["data_read"]
    assert "No damage" in damage["summary"]


def test_scanner_validation_is_validation_only_and_no_abuse(cases: dict[str, Case]) -> None:
    answers = cases["scanner-validation"].answers()
    assert [i["intent"] for i in answers["intent"]["intents"]] == ["validation_only"]
    assert answers["intent"]["intents"][0]["confidence"] == "high"
    tools = {t["tool"]: t for t in answers["tools_observed"]}
    assert tools["TruffleHog"]["category"] == "secret_scanner"
    assert "key_validation" in _fingerprints(answers)
    assert "only validated" in answers["damage"]["summary"]
    assert answers["damage"]["cost_estimate"]["total_usd"] == 0


def test_persistence_is_backdoor_with_admin_rights_from_tor_and_names_outside_account(cases: dict[str, Case]) -> None:
    answers = cases["persistence"].answers()
    intents = _intents(answers)
    assert answers["intent"]["primary"] == "persistence"
    assert intents["privilege_escalation"] == "high"
    assert "HTML/script markup in the user agent" in _tools(answers)
    tor = {r["ip"] for r in answers["attribution"]["ips"] if r["tor_exit"]}
    assert tor == {ip for ip in cases["persistence"].truth["attacker_ips"] if ip.startswith("185.220.101.")}
    assert [a["account_id"] for a in answers["attribution"]["external_accounts"]] == ["999988887777"]
    damage = answers["damage"]
    assert {"iam:user", "iam:access-key"} <= {r["type"] for r in damage["resources_created"]}
    assert {"AttachUserPolicy", "UpdateAssumeRolePolicy"} <= {c["event_name"] for c in damage["resources_changed"]}


def test_cryptomining_prices_the_instances_it_launched(cases: dict[str, Case]) -> None:
    case = cases["cryptomining"]
    answers = case.answers()
    assert answers["intent"]["primary"] == "cryptomining"
    assert "aws-sdk-go" in _tools(answers)
    assert "region_sweep" in _fingerprints(answers)
    cost = answers["damage"]["cost_estimate"]
    instances = [i for i in cost["items"] if i["kind"] == "ec2_instance"]
    truth = [r for r in case.truth["resources_created"] if TYPES.get(r["type"], r["type"]) == "ec2:instance"]
    assert sorted(i["id"] for i in instances) == sorted(r["id"] for r in truth)
    assert {i["instance_type"] for i in instances} == {"c5.4xlarge"}
    assert all(i["hourly_usd"] == 0.68 for i in instances)
    assert cost["total_usd"] >= round(len(truth) * 0.68, 2) and cost["assumptions"]
    assert f"launched {len(truth)} EC2 instances in 4 regions" in answers["damage"]["summary"]


def test_data_exfiltration_is_data_theft_with_s3_browser_and_secrets_to_rotate(cases: dict[str, Case]) -> None:
    answers = cases["data-exfiltration"].answers()
    assert answers["intent"]["primary"] == "data_theft"
    assert _intents(answers)["data_theft"] == "high"
    assert "S3 Browser" in _tools(answers) and "bulk_s3_download" in _fingerprints(answers)
    damage = answers["damage"]
    assert damage["objects_read"] >= 20
    assert {"/prod/app/db-password", "/prod/payments/api-key"} <= set(damage["secrets_to_rotate"])
    assert "secret" in damage["summary"]


def test_pivot_chain_is_persistence_with_pacu_kali_and_tor(cases: dict[str, Case]) -> None:
    answers = cases["pivot-chain"].answers()
    assert answers["intent"]["primary"] == "persistence"
    assert "data_theft" in _intents(answers)
    assert {"Pacu", "Kali Linux", "boto3 / botocore"} <= _tools(answers)
    assert any(r["tor_exit"] for r in answers["attribution"]["ips"])
    assert "lambda:function" in {r["type"] for r in answers["damage"]["resources_created"]}


def test_llmjacking_is_llm_abuse_with_ses_probing_and_bedrock_cost(cases: dict[str, Case]) -> None:
    answers = cases["llmjacking-ses"].answers()
    assert answers["intent"]["primary"] == "llm_abuse"
    assert _intents(answers)["llm_abuse"] == "high"
    assert "spam_phishing" in _intents(answers)
    items = [i for i in answers["damage"]["cost_estimate"]["items"] if i["kind"] == "bedrock_invocations"]
    assert items and items[0]["calls"] == 12 and items[0]["usd"] > 0
    assert "Bedrock" in answers["damage"]["summary"]


def test_false_positive_is_owners_own_use_from_an_aws_address(cases: dict[str, Case]) -> None:
    case = cases["false-positive"]
    answers = case.answers(baseline=case.baseline)
    assert [i["intent"] for i in answers["intent"]["intents"]] == ["owner_use"]
    assert answers["intent"]["primary"] == "owner_use"
    (row,) = answers["attribution"]["ips"]
    assert (row["ip"], row["kind"], row["provider"], row["region"]) == ("3.91.171.44", "cloud", "aws", "us-east-1")
    assert row["tor_exit"] is False and row["lists"] == []
    assert "owner's own use" in answers["damage"]["summary"]
    assert {"boto3 / botocore"} == {t["tool"] for t in answers["tools_observed"] if t["category"] != "behaviour"}


def test_false_positive_without_baseline_is_not_called_validation_or_owner_use(cases: dict[str, Case]) -> None:
    answers = cases["false-positive"].answers()
    assert "owner_use" not in _intents(answers) and answers["intent"]["primary"] != "validation_only"
    assert all(i["confidence"] != "high" for i in answers["intent"]["intents"])
