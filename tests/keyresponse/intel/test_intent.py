"""Intent rules: validation, owner baseline, attempted calls, the rules file's contract."""

from __future__ import annotations

from typing import Any

from keyresponse.intel import intent_answer
from keyresponse.intel.intent import WEIGHTS, classify_intent, default_rules
from keyresponse.intel.taxonomy import KINDS


def _event(i: int, name: str, service: str, *, error: str | None = None, ua: str = "ua/1",
           params: str | None = None) -> dict[str, Any]:
    return {"event_id": f"e{i}", "event_time": f"2026-11-19T10:00:{i:02d}Z", "event_name": name,
            "event_source": f"{service}.amazonaws.com", "error_code": error, "user_agent": ua,
            "request_parameters": params, "aws_region": "us-east-1"}


def test_rules_file_contract() -> None:
    rules = default_rules()
    names = [r.intent for r in rules]
    assert len(names) == len(set(names))
    assert {"persistence", "privilege_escalation", "cryptomining", "data_theft", "spam_phishing", "llm_abuse",
            "destruction_ransom", "defense_evasion"} <= set(names)
    for rule in rules:
        assert rule.signals and all(s.weight in WEIGHTS and s.why and (s.calls or s.kinds) for s in rule.signals)
        assert all(":" in c for s in rule.signals for c in s.calls)
        assert all(k in KINDS for s in rule.signals for k in s.kinds)


def test_no_events_no_intent() -> None:
    assert classify_intent([]) == []
    assert intent_answer([])["primary"] is None


def test_validation_only_is_exclusive() -> None:
    intents = classify_intent([_event(1, "GetCallerIdentity", "sts"), _event(2, "GetCallerIdentity", "sts")])
    assert [i["intent"] for i in intents] == ["validation_only"] and intents[0]["primary"]
    assert classify_intent([_event(1, "GetCallerIdentity", "sts"), _event(2, "ListUsers", "iam")])[0]["intent"] \
        != "validation_only"


def test_refused_calls_still_show_intent_with_less_confidence() -> None:
    done = classify_intent([_event(1, "RunInstances", "ec2")])[0]
    tried = classify_intent([_event(1, "RunInstances", "ec2", error="Client.UnauthorizedOperation")])[0]
    assert done["intent"] == tried["intent"] == "cryptomining"
    assert tried["attempted_only"] and tried["score"] < done["score"]
    assert any("attempted" in r for r in tried["reasons"])


def test_params_condition_distinguishes_admin_grants() -> None:
    admin = _event(1, "AttachUserPolicy", "iam", params='{"policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}')
    other = _event(2, "AttachUserPolicy", "iam", params='{"policyArn":"arn:aws:iam::aws:policy/ReadOnlyAccess"}')
    assert classify_intent([admin])[0]["confidence"] == "high"
    assert classify_intent([other])[0]["confidence"] == "medium"


def test_owner_baseline_explains_everything_or_not() -> None:
    events = [_event(1, "GetCallerIdentity", "sts"), _event(2, "DescribeInstances", "ec2"),
              _event(3, "GetObject", "s3")]
    baseline = {"user_agents": ["ua/1"], "event_names": ["GetCallerIdentity", "DescribeInstances", "GetObject"]}
    assert [i["intent"] for i in classify_intent(events, baseline=baseline)] == ["owner_use"]
    stranger = [*events, _event(4, "CreateUser", "iam", ua="ua/1")]
    intents = classify_intent(stranger, baseline=baseline)
    assert intents[0]["intent"] == "persistence"
    other_agent = [dict(e, user_agent="aws-cli/2 kali") for e in events]
    assert "owner_use" not in {i["intent"] for i in classify_intent(other_agent, baseline=baseline)}


def test_many_object_reads_are_strong_few_are_medium() -> None:
    few = classify_intent([_event(i, "GetObject", "s3") for i in range(2)])
    many = classify_intent([_event(i, "GetObject", "s3") for i in range(10)])
    assert few[0]["intent"] == many[0]["intent"] == "data_theft"
    assert (few[0]["confidence"], many[0]["confidence"]) == ("medium", "high")


def test_defence_evasion_destruction_and_spam() -> None:
    assert classify_intent([_event(1, "StopLogging", "cloudtrail")])[0]["intent"] == "defense_evasion"
    assert classify_intent([_event(1, "DeleteDetector", "guardduty")])[0]["intent"] == "defense_evasion"
    assert classify_intent([_event(1, "StopConfigurationRecorder", "config")])[0]["intent"] == "defense_evasion"
    ransom = [_event(i, "DeleteObject", "s3") for i in range(6)] + [
        _event(7, "PutObject", "s3", params='{"key":"README-RECOVER-FILES.txt"}')]
    assert classify_intent(ransom)[0]["intent"] == "destruction_ransom"
    assert classify_intent([_event(1, "SendEmail", "ses")])[0]["intent"] == "spam_phishing"


def test_intent_answer_summary_names_primary_and_others() -> None:
    answer = intent_answer([_event(1, "InvokeModel", "bedrock"), _event(2, "GetSendQuota", "ses")])
    assert answer["primary"] == "llm_abuse"
    assert "Primary intent: llm abuse" in answer["summary"] and "spam" in answer["summary"]
