"""The user-agent table and behaviour fingerprints."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from keyresponse.intel.tools import default_table, identify_user_agent, parse_table, tools_observed
from keyresponse.sandbox.scenarios import OWNER_UA, UA


def _event(i: int, name: str, ua: str = "x", service: str = "iam", error: str | None = None,
           region: str = "us-east-1", minute: int = 0) -> dict[str, Any]:
    return {"event_id": f"e{i}", "event_time": f"2026-11-19T10:{minute:02d}:{i % 60:02d}Z", "event_name": name,
            "event_source": f"{service}.amazonaws.com", "user_agent": ua, "error_code": error, "aws_region": region,
            "source_ip": "203.0.113.5"}


def test_every_table_entry_documents_its_sources() -> None:
    table = default_table()
    assert len(table.fingerprints) >= 30
    for fp in table.fingerprints:
        assert fp.sources and all(s.startswith("https://") for s in fp.sources), fp.tool
    names = {fp.tool for fp in table.fingerprints}
    assert all(hidden in names for fp in table.fingerprints for hidden in fp.hides)
    for rule in table.behaviours.values():
        assert rule["sources"]


@pytest.mark.parametrize(("ua", "tools"), [
    (UA["trufflehog"], {"TruffleHog"}),
    (UA["kali"], {"Kali Linux", "aws-cli"}),
    (UA["pacu"], {"Pacu"}),
    (UA["s3browser"], {"S3 Browser"}),
    (UA["go"], {"aws-sdk-go"}),
    (UA["boto"], {"boto3 / botocore"}),
    (OWNER_UA, {"boto3 / botocore"}),
    ("stratus-red-team_5c59eb79-6dac-405c-a4c4-e19aec03c666", {"Stratus Red Team"}),
    ("aws-cli/1.19.1 Python/3.9.2 Linux/6.0.0-2parrot1-amd64 botocore/1.29.58", {"Parrot Security OS", "aws-cli"}),
    ("Scout Suite/5.12.0 Python/3.9.2 Linux/6.0.0 Scout Suite/5.12.0", {"ScoutSuite"}),
    ("Boto3/1.34.0 md/Botocore#1.34.0 APN_1826889", {"Prowler"}),
    ("APN/1.0 HashiCorp/1.0 Terraform/1.9.0 (+https://www.terraform.io) terraform-provider-aws/5.60.0 "
     "aws-sdk-go-v2/1.30.3", {"Terraform"}),
    ("Cyberduck/8.7.1.40770 (Mac OS X/14.0) (x86_64)", {"Cyberduck"}),
    ("curl/8.5.0", {"curl"}),
    ("python-requests/2.31.0", {"python-requests"}),
    ("aws-sdk-java/1.12.500 Linux/5.10 OpenJDK_64-Bit_Server_VM/17", {"aws-sdk-java"}),
    ("aws-sdk-js/3.600.0 ua/2.0 os/linux lang/js md/nodejs#20", {"aws-sdk-js"}),
    ("signin.amazonaws.com", {"AWS Management Console"}),
    ("console.amazonaws.com", {"AWS Management Console"}),
])
def test_known_user_agents(ua: str, tools: set[str]) -> None:
    assert {hit["tool"] for hit in identify_user_agent(ua)} == tools


def test_markup_user_agent_is_flagged_hostile() -> None:
    assert "hostile_markup" in {hit["category"] for hit in identify_user_agent(UA["markup"])}


@pytest.mark.parametrize("ua", ["", None, "my-internal-tool/0.1", "🦊"])
def test_unknown_or_missing_user_agent_is_an_honest_unknown(ua: str | None) -> None:
    (hit,) = identify_user_agent(ua)
    assert hit["tool"] == "unknown" and hit["category"] == "unknown" and hit["note"]


def test_aws_service_names_are_services_not_tools() -> None:
    for ua in ("lambda.amazonaws.com", "AWS Internal", "cloudtrail.amazonaws.com"):
        assert identify_user_agent(ua)[0]["category"] == "aws_service"


def test_tools_observed_groups_by_tool_with_evidence() -> None:
    events = [_event(1, "GetCallerIdentity", UA["trufflehog"], "sts"), _event(2, "ListUsers", "weird/1")]
    tools = {t["tool"]: t for t in tools_observed(events)}
    assert tools["TruffleHog"]["evidence"] == ["e1"] and tools["TruffleHog"]["first_seen"].endswith(":01Z")
    assert tools["unknown"]["user_agents"] == ["weird/1"] and tools["unknown"]["confidence"] == "low"
    assert tools_observed([]) == []


def test_lone_get_caller_identity_is_key_validation_even_with_a_spoofed_agent() -> None:
    tools = tools_observed([_event(1, "GetCallerIdentity", "Mozilla/5.0", "sts")])
    assert [t["fingerprint"] for t in tools if t["category"] == "behaviour"] == ["key_validation"]


def test_enumeration_burst_and_bruteforce() -> None:
    names = [("iam", "ListUsers"), ("iam", "ListRoles"), ("iam", "ListGroups"), ("iam", "ListPolicies"),
             ("s3", "ListBuckets"), ("ec2", "DescribeInstances"), ("ec2", "DescribeVpcs"), ("lambda", "ListFunctions"),
             ("kms", "ListKeys"), ("rds", "DescribeDBInstances"), ("sns", "ListTopics")]
    events = [_event(i, n, "x", s, error="AccessDenied" if i % 2 else None) for i, (s, n) in enumerate(names)]
    found = {t["fingerprint"]: t for t in tools_observed(events) if t["category"] == "behaviour"}
    assert found["enumeration_burst"]["distinct_calls"] == 11
    assert found["permission_bruteforce"]["distinct_denied_calls"] == 5
    slow = [_event(i, n, "x", s, minute=i * 5) for i, (s, n) in enumerate(names)]
    assert "enumeration_burst" not in {t.get("fingerprint") for t in tools_observed(slow)}


def test_malformed_table_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="sources"):
        parse_table(yaml.safe_load("tools: [{tool: x, category: sdk, match: [x]}]"))
    with pytest.raises(ValueError, match="match or regex"):
        parse_table(yaml.safe_load("tools: [{tool: x, category: sdk, sources: [https://x]}]"))
