"""The simulator: real calls leave real state in the sandbox, and every record looks like AWS's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from keyresponse.sandbox.cloudtrail import iter_records as read_records
from keyresponse.sandbox.record_schema import validator
from keyresponse.sandbox.scenarios import SCENARIOS
from keyresponse.sandbox.server import admin_client

FIXTURES = Path(__file__).parents[2] / "fixtures" / "cloudtrail"
LAYOUT = re.compile(
    r"AWSLogs/(?P<acct>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=acct)_CloudTrail_(?P=region)_(?P=y)(?P=m)(?P=d)T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$"
)
TRUTH_KEYS = {"scenario", "account_id", "compromised_access_key_id", "window", "attacker_ips",
              "attacker_user_agents", "attacker_credentials", "attacker_principals", "persistence",
              "resources_created", "benign_credentials", "expected_verdict"}


def test_real_cloudtrail_records_pass_the_record_schema() -> None:
    check = validator()
    records = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"]
    assert len(records) == 310
    for record in records:
        check(record)


def test_schema_rejects_a_session_key_without_session_context() -> None:
    record = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"][0]
    record["userIdentity"] = {**record["userIdentity"], "accessKeyId": "ASIAAAAAAAAAAAAAAAAA"}
    record["userIdentity"].pop("sessionContext", None)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validator()(record)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_record_passes_the_schema_and_sits_in_the_real_layout(played: Any, scenario: str) -> None:
    result = played.results[scenario]
    check = validator()
    files = sorted(result.out.glob("AWSLogs/**/*.json.gz"))
    assert files and len(files) == result.files
    for path in files:
        match = LAYOUT.search(path.relative_to(result.out).as_posix())
        assert match, path
    count = 0
    for record in read_records(result.out):
        check(record)
        count += 1
        assert record["recipientAccountId"] == played.account.account_id
    assert count == result.records


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ground_truth_matches_the_logs(played: Any, scenario: str) -> None:
    result = played.results[scenario]
    truth = json.loads((result.out / "ground_truth.json").read_text())
    assert set(truth) >= TRUTH_KEYS
    assert truth["expected_verdict"] == SCENARIOS[scenario].expected_verdict
    records = list(read_records(result.out))
    by_key: dict[str, list[dict]] = {}
    for record in records:
        by_key.setdefault(record["userIdentity"].get("accessKeyId", ""), []).append(record)
    for cred in truth["attacker_credentials"]:
        used = by_key.get(cred["access_key_id"], [])
        assert used, f"attacker credential {cred['access_key_id']} never appears in the logs"
        assert {r["sourceIPAddress"] for r in used} & set(truth["attacker_ips"])
    # every derived credential was created by an event of its parent, whose response names it
    for cred in truth["attacker_credentials"]:
        if cred["kind"] == "original":
            continue
        creators = [r for r in by_key[cred["parent"]] if r["eventName"] == cred["created_by_event"]]
        assert any(cred["access_key_id"] in json.dumps(r["responseElements"]) for r in creators)
    assert not set(truth["benign_credentials"]) & {c["access_key_id"] for c in truth["attacker_credentials"]}
    attacker_records = [r for r in records if r["sourceIPAddress"] in truth["attacker_ips"]]
    assert min(r["eventTime"] for r in attacker_records or records) >= truth["window"]["start"] or not attacker_records


def test_attacker_and_owner_infrastructure_never_overlap(played: Any) -> None:
    for scenario, result in played.results.items():
        truth = result.ground_truth
        owner_ips = set(truth["owner"]["usual_ips"])
        assert not owner_ips & set(truth["attacker_ips"]), scenario
        key_records = [r for r in read_records(result.out)
                       if r["userIdentity"].get("accessKeyId") == truth["compromised_access_key_id"]]
        assert {r["sourceIPAddress"] for r in key_records} & owner_ips, "the owner's own use is in the logs"


def test_one_attacker_user_agent_carries_markup(played: Any) -> None:
    agents = {ua for result in played.results.values() for ua in result.ground_truth["attacker_user_agents"]}
    assert any("<script>" in ua for ua in agents)


def test_persistence_leaves_a_backdoor_admin_in_the_sandbox(played: Any) -> None:
    iam = admin_client(played.box.endpoint, "iam")
    truth = played.results["persistence"].ground_truth
    attached = iam.list_attached_user_policies(UserName="aws-support-sync")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AdministratorAccess"]
    assert iam.get_login_profile(UserName="aws-support-sync")["LoginProfile"]["UserName"] == "aws-support-sync"
    assert iam.list_mfa_devices(UserName="aws-support-sync")["MFADevices"]
    keys = {k["AccessKeyId"] for k in iam.list_access_keys(UserName="aws-support-sync")["AccessKeyMetadata"]}
    assert keys == {c["access_key_id"] for c in truth["attacker_credentials"] if c["kind"] == "access_key"}
    trust = iam.get_role(RoleName="ops-admin")["Role"]["AssumeRolePolicyDocument"]
    assert "999988887777" in json.dumps(trust)


def test_cryptomining_leaves_instances_key_pairs_and_open_ssh_in_four_regions(played: Any) -> None:
    truth = played.results["cryptomining"].ground_truth
    instances = [r for r in truth["resources_created"] if r["type"] == "ec2:instance"]
    regions = {r["region"] for r in instances}
    assert len(regions) >= 4
    for region in regions:
        ec2 = admin_client(played.box.endpoint, "ec2", region)
        running = {i["InstanceId"] for res in ec2.describe_instances(
            Filters=[{"Name": "key-name", "Values": [f"xmrig-{region}"]}])["Reservations"] for i in res["Instances"]}
        assert running == {r["id"] for r in instances if r["region"] == region}
        assert ec2.describe_key_pairs(KeyNames=[f"xmrig-{region}"])["KeyPairs"]
        default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
        assert any(r.get("CidrIp") == "0.0.0.0/0" for p in default["IpPermissions"] for r in p["IpRanges"])
    first = next(r for r in truth["persistence"] if r["event_name"] == "ModifyInstanceAttribute")["resource"]
    region = next(r["region"] for r in instances if r["id"] == first)
    attr = admin_client(played.box.endpoint, "ec2", region).describe_instance_attribute(
        InstanceId=first, Attribute="disableApiTermination")
    assert attr["DisableApiTermination"]["Value"] is True


def test_pivot_chain_leaves_derived_keys_and_a_lambda(played: Any) -> None:
    iam = admin_client(played.box.endpoint, "iam")
    truth = played.results["pivot-chain"].ground_truth
    kinds = [c["kind"] for c in truth["attacker_credentials"]]
    assert kinds.count("session") >= 3 and kinds.count("access_key") >= 2
    for user in ("etl-pipeline", "svc-reporting"):
        keys = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
        assert keys & {c["access_key_id"] for c in truth["attacker_credentials"]}
    functions = admin_client(played.box.endpoint, "lambda").list_functions()["Functions"]
    assert "cost-optimizer" in {f["FunctionName"] for f in functions}
    # three hops deep: original -> key -> role session -> key -> federation token
    parents = {c["access_key_id"]: c["parent"] for c in truth["attacker_credentials"]}
    depth = max(_depth(k, parents) for k in parents)
    assert depth >= 3


def _depth(key: str, parents: dict[str, str]) -> int:
    return 0 if not parents.get(key) else 1 + _depth(parents[key], parents)


def test_data_exfiltration_reads_objects_secrets_and_parameters_at_volume(played: Any) -> None:
    result = played.results["data-exfiltration"]
    key = result.ground_truth["compromised_access_key_id"]
    names = [r["eventName"] for r in read_records(result.out) if r["userIdentity"].get("accessKeyId") == key
             and r["sourceIPAddress"] in result.ground_truth["attacker_ips"]]
    assert names.count("GetObject") >= 100
    assert names.count("GetSecretValue") == 3 and "GetParameters" in names
    last_used = admin_client(played.box.endpoint, "iam").get_access_key_last_used(AccessKeyId=key)
    assert "LastUsedDate" in last_used["AccessKeyLastUsed"]


def test_scanner_validation_is_one_call_and_false_positive_has_no_attacker(played: Any) -> None:
    scan = played.results["scanner-validation"].ground_truth
    records = [r for r in read_records(played.results["scanner-validation"].out)
               if r["sourceIPAddress"] in scan["attacker_ips"]]
    assert [(r["eventName"], r["userAgent"]) for r in records] == [("GetCallerIdentity", "TruffleHog")]
    fp = played.results["false-positive"].ground_truth
    assert fp["attacker_ips"] == [] and fp["attacker_credentials"] == []
    obj = admin_client(played.box.endpoint, "s3").get_object(Bucket="acme-app-config", Key="app/build-2026-11.txt")
    assert obj["Body"].read() == b"build ok\n"


def test_llmjacking_invokes_bedrock_and_probes_ses(played: Any) -> None:
    result = played.results["llmjacking-ses"]
    names = [r["eventName"] for r in read_records(result.out) if r["sourceIPAddress"] in result.ground_truth["attacker_ips"]]
    assert names.count("InvokeModel") == 12 and {"GetSendQuota", "ListIdentities"} <= set(names)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_alerts_carry_the_compromised_key_in_each_source_format(played: Any, scenario: str) -> None:
    result = played.results[scenario]
    key = result.ground_truth["compromised_access_key_id"]
    alerts = result.out / "alerts"
    guardduty = json.loads((alerts / "guardduty.json").read_text())
    assert guardduty["detail-type"] == "GuardDuty Finding" and guardduty["source"] == "aws.guardduty"
    assert guardduty["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] == key
    health = json.loads((alerts / "health.json").read_text())
    assert health["detail"]["eventTypeCode"] == "AWS_RISK_CREDENTIALS_EXPOSED"
    assert health["detail"]["affectedEntities"] == [{"entityValue": key}]
    github = json.loads((alerts / "github.json").read_text())
    assert github["action"] == "created" and github["alert"]["secret_type"] == "aws_access_key_id"
    assert key not in json.dumps(github), "GitHub never sends the secret in the webhook"
