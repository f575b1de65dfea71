"""The analysis phase over every simulator scenario and over real Stratus Red Team records."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files
from keyresponse.investigation import Window, investigate
from keyresponse.sandbox.scenarios import SCENARIOS

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cloudtrail"
#: Published AWS ranges (a sample in the real format): the owner's CI runs on AWS.
INTEL = {"aws_ranges": str(Path(__file__).parents[1] / "fixtures" / "intel" / "aws-ip-ranges.sample.json")}
WINDOW = ("2026-11-18T00:00:00Z", "2026-11-20T00:00:00Z")
CONTRACT = ["access_key_id", "account_id", "principal_arn", "window", "first_seen", "last_seen", "event_count",
            "source_ips", "regions", "credentials", "principals", "persistence", "data_access", "resources_created",
            "recon_errors", "severity", "verdict", "logging_gaps", "bytes_scanned", "engine", "uncertain_credentials", "key_creation",
            "attacker_infrastructure"]


@pytest.fixture(scope="module")
def results(played: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = {}
    for name, result in played.results.items():
        truth = result.ground_truth
        with DuckDBEngine(result.out, cache_dir=tmp_path_factory.mktemp(f"cache-{name}")) as engine:
            out[name] = investigate(engine, truth["compromised_access_key_id"], Window.parse(*WINDOW), intel=INTEL)
    return out


@pytest.fixture(scope="module")
def investigations(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: result.to_json() for name, result in results.items()}


#: The false positive's calls are all the owner's (known IPs): no actor, so no intent.
PRIMARY_INTENT: dict[str, str | None] = {"scanner-validation": "validation_only", "false-positive": None,
                  "cryptomining": "cryptomining", "llmjacking-ses": "llm_abuse", "data-exfiltration": "data_theft",
                  "persistence": "persistence", "recon-only": "reconnaissance"}


@pytest.mark.parametrize("scenario", sorted(PRIMARY_INTENT))
def test_the_five_answers_name_the_scenarios_intent(results: dict[str, Any], scenario: str) -> None:
    answers = results[scenario].answers()
    assert set(answers) == {"exposure", "tools_observed", "intent", "attribution", "damage"}
    assert answers["intent"]["primary"] == PRIMARY_INTENT[scenario], answers["intent"]["summary"]
    assert answers["damage"]["summary"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_finds_every_attacker_credential_and_no_benign_one(played: Any, investigations: dict[str, Any],
                                                             scenario: str) -> None:
    truth = played.results[scenario].ground_truth
    found = {c["access_key_id"]: c for c in investigations[scenario]["credentials"]}
    for cred in truth["attacker_credentials"]:
        assert cred["access_key_id"] in found, f"missed {cred}"
        got = found[cred["access_key_id"]]
        assert got["kind"] == cred["kind"]
        if cred["kind"] != "original":
            assert got["parent"] == cred["parent"] and got["created_by_event"] == cred["created_by_event"]
            assert got["principal_arn"] == cred["principal_arn"]
    assert not set(found) & set(truth["benign_credentials"])
    assert set(found) - {c["access_key_id"] for c in truth["attacker_credentials"]} <= {
        truth["compromised_access_key_id"]}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_covers_persistence_resources_and_the_verdict(played: Any, investigations: dict[str, Any],
                                                       scenario: str) -> None:
    truth = played.results[scenario].ground_truth
    inv = investigations[scenario]
    persistence = {(p["event_name"], p["resource"]) for p in inv["persistence"]}
    for item in truth["persistence"]:
        assert (item["event_name"], item["resource"]) in persistence, item
    created = {(r["type"], r["id"], r["region"]) for r in inv["resources_created"]}
    for item in truth["resources_created"]:
        assert (item["type"], item["id"], item["region"]) in created, item
    assert inv["verdict"] == truth["expected_verdict"]
    assert list(inv) == CONTRACT


def test_attacker_ips_are_exactly_the_attackers(played: Any, results: dict[str, Any]) -> None:
    for scenario, result in results.items():
        truth = played.results[scenario].ground_truth
        classes = {ip["ip"]: ip["classification"] for ip in result.to_full_json()["source_ips"]}
        owner = set(truth["owner"]["usual_ips"]) & set(classes)
        assert owner, scenario  # the owner's own use is in every scenario
        assert {classes[ip] for ip in owner} == {"known"}, scenario
        unfamiliar = {ip for ip, kind in classes.items() if kind == "attacker"}
        assert unfamiliar == set(truth["attacker_ips"]), scenario
        assert "uncertain" not in classes.values(), scenario


def test_the_owners_new_ci_runner_is_known_by_its_cloud_client_and_calls(results: dict[str, Any]) -> None:
    """The false positive: the owner's CI on a runner IP new to the key, in AWS's published ranges like
    the CI's usual runner, with the CI's user agent and only the calls the key makes."""
    result = results["false-positive"]
    runner = next(ip for ip in result.to_full_json()["source_ips"] if ip["ip"] == "3.91.171.44")
    assert (runner["classification"], runner["confidence"]) == ("known", "medium")
    assert any("AWS published ranges" in e for e in runner["evidence"]), runner
    assert result.verdict() == "benign"


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_asks_who_else_uses_an_ip_only_for_ips_outside_the_owners_baseline(
        played: Any, results: dict[str, Any]) -> None:
    """That question loads every record from the IP: for an office NAT, millions (5M events: 155 s)."""
    for scenario, result in results.items():
        baseline = result.scope.baseline.ips
        asked = {ip for q in result.investigator.queries if q["query"] == "other_principals_by_source_ip"
                 for ip in q["params"]["source_ips"]}
        assert baseline and not asked & baseline, scenario
        attackers = set(played.results[scenario].ground_truth["attacker_ips"])
        assert not attackers or attackers <= asked, scenario  # still asked about the attacker's IPs


def test_each_round_asks_only_about_credentials_and_attacker_ips_not_asked_about_before(
        results: dict[str, Any]) -> None:
    """The original key's activity (the owner's busy key: 100k rows in the bench) is read once in the
    window (and once before it, for its history), not once per round; pivot-chain needs several rounds."""
    start = Window.parse(*WINDOW).params()["start_time"]
    for scenario, result in results.items():
        queries = [q for q in result.investigator.queries if q["params"]["start_time"] == start]
        history = [q for q in result.investigator.queries if q["params"]["start_time"] < start]
        assert [(q["query"], q["params"]["access_key_ids"]) for q in history] == [
            ("key_activity_by_source_ip", [result.scope.original])], scenario
        for name, param in (("key_activity_by_source_ip", "access_key_ids"), ("derived_credentials", "access_key_ids")):
            asked = [v for q in queries if q["query"] == name for v in q["params"][param]]
            assert len(asked) == len(set(asked)) and set(asked) == set(result.scope.credentials), (scenario, name)
        # who else used an IP: asked once per IP (its rows both judge a fresh IP and name the other
        # credentials used from the attacker's)
        ips = [ip for q in queries if q["query"] == "other_principals_by_source_ip" for ip in q["params"]["source_ips"]]
        assert len(ips) == len(set(ips)) and result.scope.attacker_ips <= set(ips), scenario
    assert results["pivot-chain"].scope.rounds >= 3


def test_merged_ip_rows_are_what_the_query_returns_for_all_keys_at_once(played: Any, tmp_path: Path) -> None:
    from keyresponse.judgement import merge_ip_rows

    result = played.results["pivot-chain"]
    keys = [c["access_key_id"] for c in result.ground_truth["attacker_credentials"]]
    params = Window.parse("2026-11-18T00:00:00Z", "2026-11-20T00:00:00Z").params()
    with DuckDBEngine(result.out, cache_dir=tmp_path) as engine:
        at_once = {r["source_ip"]: r for r in engine.run("key_activity_by_source_ip",
                                                         {**params, "access_key_ids": keys})}
        merged: dict[str, Any] = {}
        for part in (keys[:2], keys[2:4], keys[4:]):
            for row in engine.run("key_activity_by_source_ip", {**params, "access_key_ids": part}):
                merged[row["source_ip"]] = merge_ip_rows(merged.get(row["source_ip"]), row)
    assert len(at_once) >= 3 and any(len(r["access_key_ids"]) > 1 for r in at_once.values())
    assert merged == at_once


def test_severity_ranks_the_scenarios(investigations: dict[str, Any]) -> None:
    severity = {name: inv["severity"] for name, inv in investigations.items()}
    assert severity["pivot-chain"] == severity["persistence"] == severity["cryptomining"] == "P1"
    assert severity["data-exfiltration"] == "P1"  # secrets read
    assert severity["scanner-validation"] == "P3" and severity["false-positive"] == "P4"


def test_cryptomining_cost_is_estimated_from_the_instances(played: Any, tmp_path: Path) -> None:
    result = played.results["cryptomining"]
    with DuckDBEngine(result.out, cache_dir=tmp_path) as engine:
        inv = investigate(engine, result.ground_truth["compromised_access_key_id"],
                          Window.parse("2026-11-18T00:00:00Z", "2026-11-20T00:00:00Z"))
    instances = [r for r in inv.resources_created if r["resource_type"] == "ec2:instance"]
    assert len(instances) == 11
    cost = inv.to_full_json()["cost_estimate_usd"]
    # 11 c5.4xlarge from launch (~19:00) to the window end (24:00): about 5 h x $0.68 each
    assert 11 * 4.5 * 0.68 < cost < 11 * 5.5 * 0.68


def test_stratus_techniques_yield_the_persistence_their_labels_name(tmp_path: Path) -> None:
    records = json.loads((FIXTURES / "stratus_red_team_detonation_logs.json").read_text())["Records"]
    labels = json.loads((FIXTURES / "stratus_red_team_detonation_logs.labels.json").read_text())
    write_trail_files(records, tmp_path / "logs")
    by_technique: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for label in labels:
        by_technique[label["technique"]].append(records[label["index"]])
    expected = {
        "aws.persistence.iam-backdoor-role": {"UpdateAssumeRolePolicy"},
        "aws.persistence.iam-create-admin-user": {"CreateUser", "AttachUserPolicy", "CreateAccessKey"},
        "aws.persistence.iam-create-user-login-profile": {"CreateLoginProfile"},
        "aws.persistence.lambda-backdoor-function": {"AddPermission20150331v2"},
        "aws.persistence.sts-federation-token": {"GetFederationToken"},
        "aws.defense-evasion.cloudtrail-stop": {"StopLogging"},
        "aws.exfiltration.ec2-security-group-open-port-22-ingress": {"AuthorizeSecurityGroupIngress"},
    }
    window = Window.parse("2022-01-01T00:00:00Z", "2026-12-31T00:00:00Z")
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as engine:
        for technique, names in expected.items():
            keys = sorted({r["userIdentity"]["accessKeyId"] for r in by_technique[technique]
                           if r["userIdentity"].get("accessKeyId")})
            found: set[str] = set()
            for key in keys:
                found |= {p["event_name"] for p in investigate(engine, key, window).to_json()["persistence"]}
            assert names <= found, (technique, found)


@pytest.mark.parametrize(("value", "service"), [
    ("lambda.amazonaws.com", True), ("AWS Internal", True), ("203.0.113.9", False),
    ("225.178.039.250", False), ("2001:db8::1", False), ("", False), ("999.1.1.1", False),
])
def test_tells_service_names_from_client_addresses_even_malformed_ones(value: str, service: bool) -> None:
    from keyresponse.investigation import is_service_name

    assert is_service_name(value) is service


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenarios_investigation_and_answers_fit_the_typed_model(results: dict[str, Any], scenario: str) -> None:
    """What the analysis hands the response (the full investigation and the five answers) is what
    keyresponse.model declares, field for field: the closed records admit no field they do not name."""
    from keyresponse.model import InvestigationRecord

    full = results[scenario].to_full_json() | results[scenario].answers()
    record = InvestigationRecord.model_validate(full)
    assert [c.access_key_id for c in record.credentials] == [c["access_key_id"] for c in full["credentials"]]
    assert record.model_dump(mode="json", exclude_unset=True)["source_ips"] == full["source_ips"]
