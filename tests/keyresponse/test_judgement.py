"""Whose is each address: the judgement against the key's baseline (keyresponse/judgement.py).

The first tests call `judge_sources` on the rows `key_activity_by_source_ip` returns; the last ones
run whole investigations (DuckDB) over CloudTrail records in the real shape, written for the case
the test names (no public log holds a runtime and an attacker sharing one session key, or an
owner browsing quietly from one address with nothing else in the account).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files
from keyresponse.intel.attribution import IntelConfig, load_ranges
from keyresponse.investigation import Window, investigate
from keyresponse.judgement import HIGH_RISK_CALLS, judge_sources

INTEL_DIR = Path(__file__).parents[1] / "fixtures" / "intel"
RANGES = load_ranges(IntelConfig(aws_ranges=INTEL_DIR / "aws-ip-ranges.sample.json",
                                 tor_exits=INTEL_DIR / "tor-exits.sample.txt"))
START = datetime(2026, 11, 1, tzinfo=UTC)
OWNER_UA = "aws-cli/2.15.30 Python/3.11.8 Linux/5.10.210 exe/x86_64.amzn.2"
KALI_UA = "aws-cli/2.13.5 Python/3.11.4 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 prompt/off"
SDK_UA = "Boto3/1.28.62 md/Botocore#1.31.62 ua/2.0 os/linux#6.1.0-13-amd64 lang/python#3.11.6 Botocore/1.31.62"


def _at(hours: float) -> str:
    return (START + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def row(ip: str, first: float, last: float, *, agents: tuple[str, ...] = (OWNER_UA),
        calls: tuple[str, ...] = ("DescribeInstances", "GetCallerIdentity"), errors: tuple[str, ...] = (),
        keys: tuple[str, ...] = ("AKIAOWNER00000000001",), count: int = 5) -> dict[str, Any]:
    return {"source_ip": ip, "event_count": count, "error_count": len(errors), "user_agents": sorted(agents),
            "access_key_ids": sorted(keys), "regions": ["us-east-1"], "event_names": sorted(calls),
            "error_codes": sorted(errors) or None, "first_seen_at": _at(first), "last_seen_at": _at(last)}


def rows(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["source_ip"]: r for r in items}


def classes(judged: Any) -> dict[str, str]:
    return {ip: j.classification for ip, j in judged.judgements.items()}


def test_a_quiet_owner_is_never_the_attacker_and_a_new_address_without_evidence_is_uncertain() -> None:
    """Three events from the office, one from home a day later: the old rule (24 h or three principals)
    called both the attacker. Nothing here is attacker evidence."""
    judged = judge_sources(rows(row("81.2.69.10", 1, 2, count=3), row("81.2.200.7", 40, 40.2, count=1,
                                                                      calls=("PutObject",))),
                           window_start=START, ranges=RANGES)
    assert classes(judged) == {"81.2.69.10": "known", "81.2.200.7": "uncertain"}
    assert any("PutObject" in e for e in judged.judgements["81.2.200.7"].evidence)


def test_a_slow_attacker_over_five_days_is_still_the_attacker() -> None:
    """Long use proves nothing: a patient attacker spans days. The baseline is what came before."""
    judged = judge_sources(rows(row("81.2.69.10", 0, 240),
                                row("45.134.26.19", 100, 220, agents=(SDK_UA,),
                                    calls=("ListUsers", "CreateAccessKey", "AttachUserPolicy"))),
                           window_start=START, ranges=RANGES)
    attacker = judged.judgements["45.134.26.19"]
    assert (attacker.classification, attacker.confidence) == ("attacker", "medium")
    assert any("CreateAccessKey" in e for e in attacker.evidence)
    assert judged.judgements["81.2.69.10"].classification == "known"


def test_a_narrowed_window_does_not_turn_the_attackers_earlier_use_into_history() -> None:
    """The responder narrowed --start after the attack began: the attacker's address is in the history
    read before the window, but its offensive tool still names it, and the onset moves back."""
    before = rows(row("81.2.69.10", -300, -1), row("185.220.101.34", -20, -2, agents=(KALI_UA,)))
    judged = judge_sources(rows(row("81.2.69.10", 1, 5), row("185.220.101.34", 1, 3, agents=(KALI_UA,))),
                           window_start=START, history=before, ranges=RANGES)
    assert classes(judged) == {"81.2.69.10": "known", "185.220.101.34": "attacker"}
    assert judged.baseline.onset == _at(-20)
    assert any("Tor" in e for e in judged.judgements["185.220.101.34"].evidence)


def test_an_aws_service_runtime_on_an_aws_address_is_the_owners() -> None:
    """A Lambda execution environment calls with its exec-env user agent from an AWS published address."""
    runtime_ua = "Boto3/1.34.0 md/Botocore#1.34.0 exec-env/AWS_Lambda_python3.12 Botocore/1.34.0"
    judged = judge_sources(rows(row("3.218.180.11", 30, 31, agents=(runtime_ua,), calls=("GetObject",))),
                           window_start=START, ranges=RANGES)
    runtime = judged.judgements["3.218.180.11"]
    assert runtime.classification == "known" and any("runtime" in e for e in runtime.evidence)


def test_a_forged_runtime_agent_on_a_rented_aws_host_is_not_the_owners_runtime() -> None:
    """The attacker rents an EC2 host and copies the Lambda's user agent. The real runtime used the
    session first; the copy arrives later and is refused: never known, at most uncertain."""
    runtime_ua = "Boto3/1.34.0 md/Botocore#1.34.0 exec-env/AWS_Lambda_python3.12 Botocore/1.34.0"
    judged = judge_sources(rows(row("3.218.180.11", 1, 20, agents=(runtime_ua,), calls=("GetObject",)),
                                row("44.203.88.19", 20.5, 21, agents=(runtime_ua,), calls=("ListUsers",),
                                    errors=("AccessDenied",))),
                           window_start=START, ranges=RANGES)
    assert judged.judgements["3.218.180.11"].classification == "known"
    assert judged.baseline.ips == {"3.218.180.11"}
    forged = judged.judgements["44.203.88.19"]
    assert forged.classification in ("uncertain", "attacker") and any("refused" in e for e in forged.evidence)


def test_without_a_baseline_the_answer_says_so_and_is_never_malicious_for_owner_like_calls() -> None:
    judged = judge_sources(rows(row("81.2.69.10", 1, 3)), window_start=START, ranges=RANGES)
    only = judged.judgements["81.2.69.10"]
    assert only.classification == "uncertain" and "no baseline" in only.evidence[0]
    assert any("no baseline" in note for note in judged.baseline.notes)


def test_the_alert_and_the_responder_override_the_judgement() -> None:
    judged = judge_sources(rows(row("81.2.69.10", 0, 60), row("45.134.26.19", 50, 51)),
                           window_start=START, hinted={"81.2.69.10"}, known={"45.134.26.19"}, ranges=RANGES)
    assert classes(judged) == {"81.2.69.10": "attacker", "45.134.26.19": "known"}


owner_calls = st.sets(st.sampled_from(["DescribeInstances", "GetObject", "ListBuckets", "GetCallerIdentity",
                                       "PutObject", "DescribeAlarms", "ListFunctions"]), min_size=1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 250), st.integers(0, 47), owner_calls), min_size=1, max_size=12),
       st.sampled_from([OWNER_UA, SDK_UA]), st.sampled_from(["81.2", "95.173"]))
def test_no_address_is_the_attackers_without_attacker_evidence(addresses: list[Any], agent: str, net: str) -> None:
    """Whatever the volume, span or timing, addresses that use the key's one ordinary client for ordinary
    calls, are refused nothing and appear on no list are never judged the attacker's (at most uncertain)."""
    items = [row(f"{net}.{n}.1" if n % 3 else f"81.2.{n}.1", hour, hour + 0.5, agents=(agent,), calls=tuple(calls))
             for n, hour, calls in addresses]
    judged = judge_sources(rows(*items), window_start=START, ranges=RANGES)
    assert "attacker" not in classes(judged).values()
    assert not HIGH_RISK_CALLS & {"PutObject", "GetObject"}  # the sample calls are ordinary


# -- whole investigations over records in the real shape ----------------------------------------------

ACCOUNT = "111122223333"


def record(when: str, name: str, ip: str, agent: str, key: str, arn: str, *, source: str = "ec2.amazonaws.com",
           error: str | None = None, response: dict[str, Any] | None = None, identity: str = "IAMUser") -> dict[str, Any]:
    return {"eventVersion": "1.09", "eventTime": when, "eventSource": source, "eventName": name,
            "awsRegion": "us-east-1", "sourceIPAddress": ip, "userAgent": agent, "recipientAccountId": ACCOUNT,
            "eventID": f"{abs(hash((when, name, ip, key))):032x}"[:32], "requestID": "r", "readOnly": True,
            "eventType": "AwsApiCall", "managementEvent": True, "errorCode": error,
            "userIdentity": {"type": identity, "accountId": ACCOUNT, "arn": arn, "accessKeyId": key,
                             "principalId": "AIDAEXAMPLE"},
            "requestParameters": None, "responseElements": response}


def _investigate(records: list[dict[str, Any]], key: str, tmp_path: Path, start: str, end: str) -> dict[str, Any]:
    write_trail_files(records, tmp_path / "logs")
    intel = {"aws_ranges": str(INTEL_DIR / "aws-ip-ranges.sample.json")}
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as engine:
        return investigate(engine, key, Window.parse(start, end), intel=intel).to_full_json()


def test_a_runtimes_own_calls_with_a_stolen_session_key_are_not_the_attackers(tmp_path: Path) -> None:
    """A Lambda's role session is stolen (SSRF) and used from a VPS while the function keeps running:
    the runtime's calls (AWS address, exec-env agent) stay the owner's, so the attacker's first call is
    the first one from the VPS."""
    key, arn = "ASIAROLESESSION00001", f"arn:aws:sts::{ACCOUNT}:assumed-role/app-fn/app-fn"
    runtime = "Boto3/1.34.0 md/Botocore#1.34.0 exec-env/AWS_Lambda_python3.12 Botocore/1.34.0"
    records = [record(f"2026-11-19T{h:02d}:00:00Z", "GetObject", "3.218.180.11", runtime, key, arn,
                      source="s3.amazonaws.com") for h in range(0, 20)]
    records += [record("2026-11-19T20:10:00Z", "GetCallerIdentity", "45.134.26.19", SDK_UA, key, arn,
                       source="sts.amazonaws.com"),
                record("2026-11-19T20:11:00Z", "ListUsers", "45.134.26.19", SDK_UA, key, arn,
                       source="iam.amazonaws.com", error="AccessDenied")]
    inv = _investigate(records, key, tmp_path, "2026-11-19T00:00:00Z", "2026-11-20T00:00:00Z")
    whose = {ip["ip"]: ip["classification"] for ip in inv["source_ips"]}
    assert whose == {"3.218.180.11": "known", "45.134.26.19": "attacker"}
    assert inv["first_seen"] == "2026-11-19T20:10:00Z" and inv["event_count"] == 2
    assert inv["verdict"] == "malicious"


def test_a_benign_key_browsing_from_one_address_is_not_malicious(tmp_path: Path) -> None:
    """Investigated directly, with nothing else in the logs: read-only console and SDK listing from one
    stable address. There is no baseline before it, and no attacker evidence in it."""
    key, arn = "AKIABENIGNUSER000001", f"arn:aws:iam::{ACCOUNT}:user/reader"
    console = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36"
    records = [record(f"2026-11-19T10:{m:02d}:00Z", name, "81.2.69.10", console if m % 2 else OWNER_UA, key, arn)
               for m, name in enumerate(["DescribeInstances", "ListBuckets", "DescribeVpcs", "ListFunctions",
                                         "DescribeSecurityGroups", "GetBucketLocation", "ListRoles",
                                         "DescribeAlarms"] * 4)]
    inv = _investigate(records, key, tmp_path, "2026-11-19T00:00:00Z", "2026-11-20T00:00:00Z")
    assert inv["verdict"] in ("uncertain", "benign") and inv["severity"] in ("P3", "P4")
    assert inv["event_count"] == 0 and [c["access_key_id"] for c in inv["credentials"]] == [key]


def test_a_neighbour_on_a_shared_address_is_not_pulled_into_the_incident(tmp_path: Path) -> None:
    """Anonymised logs put everyone behind one address: the admin who used it for days before the
    attacker arrived is a neighbour, not another of the attacker's credentials."""
    key, arn = "AKIALEAKED0000000001", f"arn:aws:iam::{ACCOUNT}:user/leaked"
    admin_key, admin = "ASIACONSOLEADMIN0001", f"arn:aws:iam::{ACCOUNT}:user/admin"
    shared = "203.0.113.250"
    records = [record(f"2026-11-{d:02d}T09:00:00Z", "DescribeInstances", shared, OWNER_UA, admin_key, admin)
               for d in range(10, 20)]
    records += [record("2026-11-19T20:00:00Z", "GetCallerIdentity", shared, KALI_UA, key, arn,
                       source="sts.amazonaws.com"),
                record("2026-11-19T20:01:00Z", "ListUsers", shared, KALI_UA, key, arn, source="iam.amazonaws.com")]
    inv = _investigate(records, key, tmp_path, "2026-11-10T00:00:00Z", "2026-11-20T00:00:00Z")
    assert [c["access_key_id"] for c in inv["credentials"]] == [key]
    assert any(admin_key in note for note in inv["scoping_notes"])
    assert inv["first_seen"] == "2026-11-19T20:00:00Z"


def test_a_session_minted_from_an_uncertain_address_is_offered_not_planned(tmp_path: Path) -> None:
    """The owner's key, two weeks of office use, then a GetSessionToken (never made before) from a new
    address in the owner's network, with the owner's client: neither the owner's for sure nor the
    attacker's."""
    key, arn = "AKIAOWNERKEY00000001", f"arn:aws:iam::{ACCOUNT}:user/dev"
    records = [record(f"2026-11-{d:02d}T09:00:00Z", "DescribeInstances", "81.2.69.10", OWNER_UA, key, arn)
               for d in range(5, 20)]
    minted = {"credentials": {"accessKeyId": "ASIAMINTEDUNCERTAIN1", "sessionToken": "x",
                              "expiration": "Nov 20, 2026, 12:00:00 AM"}}
    records.append(record("2026-11-19T21:00:00Z", "GetSessionToken", "81.2.200.7", OWNER_UA, key, arn,
                          source="sts.amazonaws.com", response=minted))
    inv = _investigate(records, key, tmp_path, "2026-11-05T00:00:00Z", "2026-11-20T00:00:00Z")
    assert [c["access_key_id"] for c in inv["credentials"]] == [key]
    offered = inv["uncertain_credentials"]
    assert [c["access_key_id"] for c in offered] == ["ASIAMINTEDUNCERTAIN1"] and offered[0]["reasons"]
    whose = {ip["ip"]: ip["classification"] for ip in inv["source_ips"]}
    assert whose == {"81.2.69.10": "known", "81.2.200.7": "uncertain"}
    assert inv["verdict"] == "uncertain"


@pytest.mark.parametrize("ip", ["81.2.69.10", "2001:db8::1"])
def test_network_of_groups_one_pool(ip: str) -> None:
    from keyresponse.judgement import network_of

    assert network_of(ip) in ("81.2.0.0/16", "2001:db8::/48")
    assert network_of("lambda.amazonaws.com") is None
