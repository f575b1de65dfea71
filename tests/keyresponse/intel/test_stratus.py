"""Stratus Red Team's real detonation logs: each technique's tool and intent are recognised."""

from __future__ import annotations

from typing import Any

import pytest

from keyresponse.intel import answer_five_questions, classify_intent, tools_observed
from keyresponse.intel.attribution import attribute_ips

from ._helpers import full_config, stratus_by_technique

TECHNIQUES = stratus_by_technique()
#: Stratus tactic (technique prefix) → the intents that tactic means here.
TACTIC_INTENTS = {
    "aws.persistence": {"persistence"},
    "aws.privilege-escalation": {"privilege_escalation"},
    "aws.exfiltration": {"data_theft"},
    "aws.defense-evasion": {"defense_evasion"},
    "aws.credential-access": {"data_theft"},
    "aws.discovery": {"reconnaissance"},
    "aws.impact": {"llm_abuse", "destruction_ransom"},
    "aws.execution": {"remote_access", "cryptomining"},
    "aws.lateral-movement": {"remote_access"},
    "aws.initial-access": {"remote_access"},
}
#: Where our primary differs from Stratus's tactic, and why (the tactic is still among the intents).
PRIMARY_EXCEPTIONS = {
    # opening SSH to the internet is a way back in first; Stratus files it under exfiltration
    "aws.exfiltration.ec2-security-group-open-port-22-ingress": "persistence",
}


def _tactic(technique: str) -> str:
    return ".".join(technique.split(".")[:2])


def test_fixture_covers_every_tactic() -> None:
    assert {_tactic(t) for t in TECHNIQUES} == set(TACTIC_INTENTS)
    assert len(TECHNIQUES) >= 30


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_technique_tool_is_recognised_as_attack_simulation(technique: str) -> None:
    tools = [t for t in tools_observed(TECHNIQUES[technique]) if t["category"] == "attack_simulation"]
    assert tools, technique
    assert {t["tool"] for t in tools} <= {"Stratus Red Team", "Grimoire"}
    assert sum(t["count"] for t in tools) == len(TECHNIQUES[technique])
    assert all(t["sources"] and t["confidence"] == "high" for t in tools)


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_technique_intent_matches_its_tactic(technique: str) -> None:
    intents = classify_intent(TECHNIQUES[technique])
    expected = TACTIC_INTENTS[_tactic(technique)]
    names = {i["intent"] for i in intents}
    assert names & expected, (technique, names)
    primary = next(i["intent"] for i in intents if i["primary"])
    assert primary == PRIMARY_EXCEPTIONS.get(technique, primary) and (
        primary in expected or technique in PRIMARY_EXCEPTIONS), (technique, primary)


def test_stolen_instance_credentials_point_to_ssrf_and_credential_theft() -> None:
    events = TECHNIQUES["aws.credential-access.ec2-steal-instance-credentials"]
    stolen = next(e for e in events if "assumed-role" in str(e["principal_arn"]))
    intents = {i["intent"]: i for i in classify_intent(events)}
    assert intents["data_theft"]["confidence"] == "high"
    assert any("instance-role" in r for r in intents["data_theft"]["reasons"])
    answers = answer_five_questions([stolen], None, intel_config=full_config())
    (cause,) = [c for c in answers["exposure"]["likely_causes"] if c["cause"] == "ssrf_instance_metadata"]
    # 18.236.253.47 is in the AWS sample range: could be the instance itself → low, and says why
    assert cause["confidence"] == "low" and "InsideAWS" in cause["reasoning"]
    no_ranges = answer_five_questions([stolen], None)["exposure"]["likely_causes"]
    assert [c["confidence"] for c in no_ranges if c["cause"] == "ssrf_instance_metadata"] == ["medium"]
    outside = dict(stolen, source_ip="185.220.101.9")
    causes = answer_five_questions([outside], None, intel_config=full_config())["exposure"]["likely_causes"]
    assert causes[0]["cause"] == "ssrf_instance_metadata" and causes[0]["confidence"] == "high"


def test_anonymised_stratus_addresses_are_unknown_not_errors() -> None:
    events: list[dict[str, Any]] = [e for evs in TECHNIQUES.values() for e in evs]
    answer = attribute_ips(events, full_config())
    kinds = {r["ip"]: r["kind"] for r in answer["ips"]}
    assert kinds["08.1.250.216"] == "malformed"  # leading zeros: not an address
    assert kinds["253.201.144.253"] == "reserved"
    assert kinds["18.236.253.47"] == "cloud"
    assert all(r["notes"] for r in answer["ips"])


def test_shared_ami_names_the_outside_account() -> None:
    answer = attribute_ips(TECHNIQUES["aws.exfiltration.ec2-share-ami"])
    assert [a["account_id"] for a in answer["external_accounts"]] == ["846424999548"]
