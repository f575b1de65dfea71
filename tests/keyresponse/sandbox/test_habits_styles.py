"""The simulator's owner habits, attacker styles, controls, history and intel files do what they claim."""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyresponse.errors import InputError
from keyresponse.intel.attribution import IntelConfig, attribute_ip, load_ranges
from keyresponse.sandbox.background import plan_files
from keyresponse.sandbox.cloudtrail import iter_records
from keyresponse.sandbox.networks import (
    CI_AWS,
    CI_GCP,
    FOREIGN_ISP_16,
    HOME_ISP_16,
    OFFICE_NAT,
    RUNTIME_UA,
    intel_config,
)
from keyresponse.sandbox.record_schema import validator
from keyresponse.sandbox.scenarios import IPS
from keyresponse.sandbox.server import MotoSandbox
from keyresponse.sandbox.simulate import PlayedAttack, play_attack, write_run

pytestmark = pytest.mark.slow  # a sandbox of its own, seeded, and a dozen small runs

END = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def box() -> Iterator[MotoSandbox]:
    """A sandbox of this module's own: playing attacks changes the account."""
    with MotoSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def pivot(box: MotoSandbox) -> PlayedAttack:
    return play_attack("pivot-chain", box, anchor=END)


@pytest.fixture(scope="module")
def control(box: MotoSandbox, pivot: PlayedAttack) -> PlayedAttack:
    return play_attack("no-attack", box, anchor=END)


class Run:
    """One written run and what its logs say."""

    def __init__(self, out: Path, truth: dict[str, Any]) -> None:
        self.out, self.truth = out, truth
        self.records = list(iter_records(out))
        self.key = truth["compromised_access_key_id"]
        attacker_keys = {c["access_key_id"] for c in truth["attacker_credentials"]}
        attacker_ips = set(truth["attacker_ips"])
        self.attacker = [r for r in self.records if r["userIdentity"].get("accessKeyId") in attacker_keys
                         and r["sourceIPAddress"] in attacker_ips]
        self.owner = [r for r in self.records if r["userIdentity"].get("accessKeyId") == self.key
                      and r["sourceIPAddress"] not in attacker_ips]

    def owner_ips_by_day(self, agent: str | None = None) -> dict[str, set[str]]:
        days: dict[str, set[str]] = defaultdict(set)
        for r in self.owner:
            if agent is None or r["userAgent"] == agent:
                days[r["eventTime"][:10]].add(r["sourceIPAddress"])
        return days


def _run(played: PlayedAttack, tmp_path: Path, **options: Any) -> Run:
    options = {"events_per_day": 800, "days": 1.0, "history_days": 3.0, **options}
    result = write_run(played, tmp_path / "logs", processes=1, **options)
    return Run(result.out, result.ground_truth)


def _inside(ip: str, *prefixes: str) -> bool:
    return any(ipaddress.ip_address(ip) in ipaddress.ip_network(p) for p in prefixes)


def test_office_nat_owner_shares_one_egress_with_the_corporate_users(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="office-nat")
    assert {r["sourceIPAddress"] for r in run.owner} == {OFFICE_NAT}
    others = {r["userIdentity"].get("arn") for r in run.records if r["sourceIPAddress"] == OFFICE_NAT
              and r["userIdentity"].get("accessKeyId") != run.key}
    assert len(others) >= 3, "the NAT is shared"
    assert run.truth["owner"]["usual_ips"] == [OFFICE_NAT]


def test_residential_owner_has_one_new_address_a_day_in_one_slash_16(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="residential", history_days=4.0)
    days = run.owner_ips_by_day()
    assert len(days) == 5
    assert all(len(ips) == 1 for ips in days.values()), days
    used = [ip for ips in days.values() for ip in ips]
    assert len(set(used)) == 5, "a new address each day"
    assert all(_inside(ip, HOME_ISP_16) for ip in used)
    assert {r["sourceIPAddress"] for r in run.records if r["sourceIPAddress"] in used
            and r["userIdentity"].get("accessKeyId") != run.key} == set(), "nobody else is at home"


def test_ci_cloud_owner_rotates_daily_over_aws_and_gcp_with_one_agent(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="ci-cloud", events_per_day=6000)
    assert {r["userAgent"] for r in run.owner} == {run.truth["owner"]["user_agent"]}
    days = run.owner_ips_by_day()
    ips = [ip for pool in days.values() for ip in pool]
    assert all(_inside(ip, *CI_AWS, *CI_GCP) for ip in ips)
    assert any(_inside(ip, *CI_AWS) for ip in ips) and any(_inside(ip, *CI_GCP) for ip in ips)
    pools = list(days.values())
    assert all(not a & b for i, a in enumerate(pools) for b in pools[i + 1:]), "each day's runners are new"


def test_traveller_is_at_the_office_then_abroad_the_last_day(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="traveller")
    days = run.owner_ips_by_day()
    last = max(days)
    assert all(ips == {OFFICE_NAT} for day, ips in days.items() if day != last)
    (abroad,) = days[last]
    assert _inside(abroad, FOREIGN_ISP_16)
    assert len({r["userAgent"] for r in run.owner}) == 1, "the same laptop"


def test_slow_low_spreads_the_same_calls_over_five_days_in_sittings(pivot: PlayedAttack, tmp_path: Path) -> None:
    burst = _run(pivot, tmp_path / "burst")
    slow = _run(pivot, tmp_path / "slow", style="slow-low", days=7.0)
    times = sorted(r["eventTime"] for r in slow.attacker)
    span = datetime.fromisoformat(times[-1].replace("Z", "+00:00")) - datetime.fromisoformat(times[0].replace("Z", "+00:00"))
    assert span >= timedelta(days=5)
    assert len({t[:10] for t in times}) >= 3, "sittings on several days"
    assert sorted(r["eventName"] for r in slow.attacker) == sorted(r["eventName"] for r in burst.attacker)
    assert slow.truth["window"] == {"start": times[0], "end": times[-1]}
    # a session is used only while it is valid: sittings never cut through a session's use
    expiry = {}
    for r in slow.attacker:
        creds = (r.get("responseElements") or {}).get("credentials")
        if creds:
            expiry[creds["accessKeyId"]] = datetime.strptime(creds["expiration"], "%b %d, %Y, %I:%M:%S %p")
    for r in slow.attacker:
        key = r["userIdentity"]["accessKeyId"]
        if key in expiry:
            assert datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ") <= expiry[key], (key, r["eventTime"])
    check = validator()
    for record in slow.attacker:
        check(record)


def test_same_cloud_attacker_comes_from_the_owner_ci_prefixes_but_not_its_addresses(
        pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="ci-cloud", style="same-cloud")
    attacker_ips = {r["sourceIPAddress"] for r in run.attacker}
    assert attacker_ips and all(_inside(ip, *CI_AWS) for ip in attacker_ips)
    assert set(run.truth["attacker_ips"]) == attacker_ips
    assert not attacker_ips & set(run.truth["owner"]["usual_ips"])
    assert not attacker_ips & {r["sourceIPAddress"] for r in run.owner}


def test_owner_ua_attacker_uses_the_owner_exact_user_agent(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="residential", style="owner-ua")
    owner_agents = {r["userAgent"] for r in run.owner}
    assert {r["userAgent"] for r in run.attacker} == owner_agents == {run.truth["owner"]["user_agent"]}
    assert run.truth["attacker_user_agents"] == [run.truth["owner"]["user_agent"]]
    assert not set(run.truth["attacker_ips"]) & set(run.truth["owner"]["usual_ips"])


def test_tor_attacker_rotates_over_exits_the_intel_list_names(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, style="tor")
    ranges = load_ranges(IntelConfig.from_mapping(intel_config(run.out, run.truth)))
    exits = {r["sourceIPAddress"] for r in run.attacker}
    assert len(exits) >= 2, "circuits change"
    assert all(attribute_ip(ip, ranges)["tor_exit"] for ip in exits)
    assert not any(attribute_ip(ip, ranges)["tor_exit"] for ip in run.truth["owner"]["usual_ips"])


def test_service_runtime_uses_the_key_from_aws_with_a_lambda_agent_and_is_benign(
        pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, style="service-runtime")
    runtime = [r for r in run.owner if r["userAgent"] == RUNTIME_UA]
    assert runtime and "exec-env/AWS_Lambda_" in RUNTIME_UA
    ranges = load_ranges(IntelConfig.from_mapping(intel_config(run.out, run.truth)))
    for ip in {r["sourceIPAddress"] for r in runtime}:
        assert attribute_ip(ip, ranges)["provider"] == "aws"
    assert not {r["sourceIPAddress"] for r in runtime} & set(run.truth["attacker_ips"])
    assert set(run.truth["owner"]["runtime_ips"]) >= {r["sourceIPAddress"] for r in runtime}
    assert {r["userAgent"] for r in run.attacker} == set(pivot.sim.truth.attacker_user_agents), "attack as played"


def test_a_control_has_no_attacker_and_only_the_owner_uses_the_key(control: PlayedAttack, tmp_path: Path) -> None:
    run = _run(control, tmp_path, habit="residential")
    truth = run.truth
    assert truth["control"] is True and truth["expected_verdict"] == "benign"
    assert truth["attacker_credentials"] == [] and truth["attacker_ips"] == []
    key_records = [r for r in run.records if r["userIdentity"].get("accessKeyId") == run.key]
    assert key_records and {r["sourceIPAddress"] for r in key_records} <= set(truth["owner"]["usual_ips"])
    assert json.loads((run.out / "alerts" / "guardduty.json").read_text())["detail"]["resource"][
        "accessKeyDetails"]["accessKeyId"] == run.key


def test_intel_files_parse_and_cover_every_cloud_address_used(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, habit="ci-cloud", style="same-cloud")
    config = intel_config(run.out, run.truth)
    assert set(config) == {"aws_ranges", "gcp_ranges", "azure_ranges", "tor_exits"}
    ranges = load_ranges(IntelConfig.from_mapping(config))
    assert ranges.loaded == {"aws", "gcp", "azure", "tor"} and not ranges.notes
    clouds = {ip: attribute_ip(ip, ranges) for ip in
              {*run.truth["owner"]["usual_ips"], *run.truth["attacker_ips"]}}
    assert {row["provider"] for row in clouds.values()} == {"aws", "gcp"}
    assert all(row["kind"] == "cloud" for row in clouds.values())
    # the office and the attacker's hosting are in no cloud's file; the attacker's Tor hop is in the exit list
    office = _run(pivot, tmp_path / "office", habit="office-nat")
    for ip in office.truth["owner"]["usual_ips"]:
        row = attribute_ip(ip, ranges)
        assert row["kind"] == "public" and row["tor_exit"] is False, row
    for ip in office.truth["attacker_ips"]:
        row = attribute_ip(ip, ranges)
        assert row["kind"] == "public" and row["tor_exit"] == (ip in IPS["tor"]), row


def test_history_comes_before_the_window_and_the_truth_names_both(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, days=0.25, history_days=2.0, events_per_day=400)
    assert run.truth["investigate_window"] == {"start": "2026-11-19T18:00:00Z", "end": "2026-11-20T00:00:00Z"}
    assert run.truth["log_span"] == {"start": "2026-11-17T18:00:00Z", "end": "2026-11-20T00:00:00Z"}
    times = sorted(r["eventTime"] for r in run.records)
    assert times[0] < "2026-11-17T19:00:00Z" and times[-1] < "2026-11-20T00:00:00Z"
    new = _run(pivot, tmp_path / "new", days=0.25, history_days=0.0, events_per_day=400)
    assert min(r["eventTime"] for r in new.records) >= "2026-11-19T18:00:00Z"


def test_background_per_day_spreads_a_thin_background_over_every_day(pivot: PlayedAttack, tmp_path: Path) -> None:
    run = _run(pivot, tmp_path, events_per_day=100, days=1.0, history_days=7.0)
    background = [r for r in run.records if r not in run.attacker]
    assert len(background) == 800
    per_day: dict[str, int] = defaultdict(int)
    for r in background:
        per_day[r["eventTime"][:10]] += 1
    assert len(per_day) == 8 and min(per_day.values()) >= 70, per_day


def test_plan_files_spreads_fewer_events_than_files_evenly() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    jobs = plan_files(start=start, end=start + timedelta(days=4), background_events=200,
                      region_weights={"us-east-1": 1.0}, scenario_records=[], seed=3)
    assert sum(j.count for j in jobs) == 200 and all(j.count for j in jobs), "no empty files"
    days = defaultdict(int)
    for job in jobs:
        days[job.window_start.date()] += job.count
    assert all(45 <= n <= 55 for n in days.values()), days  # (each slot's share varies by ±25 %)


def test_same_options_give_the_same_bytes(pivot: PlayedAttack, tmp_path: Path) -> None:
    def digest(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.json.gz"))}

    options = {"habit": "traveller", "style": "tor", "events_per_day": 300}
    first = write_run(pivot, tmp_path / "a", processes=1, **options)
    second = write_run(pivot, tmp_path / "b", processes=2, **options)
    assert digest(first.out) == digest(second.out)


@pytest.mark.parametrize(("options", "message"), [
    ({"style": "slow-low", "days": 1.0}, "slow-low spreads the attack over 5 days"),
    ({"habit": "moon-base"}, "unknown owner habit"),
    ({"style": "carrier-pigeon"}, "unknown attacker style"),
    ({"history_days": -1.0}, "--history-days must be zero or more"),
    ({"events_per_day": -5.0}, "--events-per-day must be zero or more"),
])
def test_bad_options_are_refused_with_a_reason(pivot: PlayedAttack, tmp_path: Path, options: dict[str, Any],
                                               message: str) -> None:
    with pytest.raises(InputError, match=message):
        write_run(pivot, tmp_path, **options)
