"""The five answers agree with each other and with the events (issue 17).

Real records where they exist: Stratus Red Team's detonation logs (tests/fixtures/cloudtrail/).
Where no public record exists (a detonation log stops before the tool tears down what it made),
the records are hand-written from a real one and keep its shape; each test's docstring says so.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files
from keyresponse.intel import answer_five_questions, assess_damage, classify_intent, event_from_record
from keyresponse.investigation import Window, investigate

from ._helpers import STRATUS

RECORDS: list[dict[str, Any]] = json.loads(STRATUS.read_text())["Records"]
LABELS: list[dict[str, Any]] = json.loads(STRATUS.with_suffix(".labels.json").read_text())
WIDE = {"start_day": "2022/01/01", "end_day": "2026/12/31",
        "start_time": "2022-01-01T00:00:00Z", "end_time": "2027-01-01T00:00:00Z"}
NOTHING_READ = "nothing was created, changed, deleted or read"
LAUNCHED, OTHERS = "i-0a1b2c3d4e5f60718", "i-0fedcba9876543210"


def _technique(name: str) -> list[dict[str, Any]]:
    return [RECORDS[label["index"]] for label in LABELS if label["technique"] == name]


def _unusual_instances() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stratus's ec2-launch-unusual-instances: the AssumeRole records, and its (refused) RunInstances."""
    records = _technique("aws.execution.ec2-launch-unusual-instances")
    run = next(r for r in records if r["eventName"] == "RunInstances")
    return [r for r in records if r is not run], run


def _launch(run: dict[str, Any], instance_id: str) -> dict[str, Any]:
    """The real RunInstances record as it reads when the launch succeeds (response as AWS documents it)."""
    record = copy.deepcopy(run)
    record.pop("errorCode")
    record.pop("errorMessage")
    record["eventID"] = f"launch-{instance_id}"
    record["responseElements"] = {
        "requestId": "0b8f3a8e-2f0c-4b2a-9a51-3d0c3c8a5e11", "reservationId": "r-0c1d2e3f4a5b6c7d8",
        "ownerId": record["recipientAccountId"], "groupSet": {}, "requesterId": None,
        "instancesSet": {"items": [{
            "instanceId": instance_id, "imageId": run["requestParameters"]["instancesSet"]["items"][0]["imageId"],
            "instanceType": run["requestParameters"]["instanceType"], "currentState": {"code": 0, "name": "pending"},
            "amiLaunchIndex": 0, "launchTime": 1722511823000, "subnetId": run["requestParameters"]["subnetId"],
            "monitoring": {"state": "disabled"}, "stateReason": {"code": "pending", "message": "pending"}}]}}
    return record


def _terminate(run: dict[str, Any], instance_id: str, at: str) -> dict[str, Any]:
    """A TerminateInstances by the same session, in the shape CloudTrail logs it."""
    record = copy.deepcopy(run)
    record.pop("errorCode", None)
    record.pop("errorMessage", None)
    record.update(eventName="TerminateInstances", eventTime=at, eventID=f"terminate-{instance_id}",
                  requestID="5a7d3c2b-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
                  requestParameters={"instancesSet": {"items": [{"instanceId": instance_id}]}},
                  responseElements={"requestId": "5a7d3c2b-1e0f-4a9b-8c7d-6e5f4a3b2c1d", "instancesSet": {"items": [
                      {"instanceId": instance_id, "currentState": {"code": 32, "name": "shutting-down"},
                       "previousState": {"code": 16, "name": "running"}}]}})
    return record


# -- 1. intent: cleanup of the actor's own resources is cleanup ------------------------------------


def test_terminating_its_own_instance_is_cleanup_and_only_others_instances_are_destruction() -> None:
    """Hand-written in the real shape: Stratus's RunInstances (made to succeed) and the TerminateInstances
    its cleanup sends two hours later; the detonation log stops before the cleanup."""
    _, run = _unusual_instances()
    launch = _launch(run, LAUNCHED)
    own = [event_from_record(r) for r in (launch, _terminate(launch, LAUNCHED, "2024-08-01T13:30:23Z"))]
    intents = {i["intent"]: i for i in classify_intent(own)}
    assert "destruction_ransom" not in intents
    assert [r["event_name"] for r in intents["cleanup"]["evidence"]] == ["TerminateInstances"]
    assert LAUNCHED in intents["cleanup"]["reasons"][0]
    assert intents["cryptomining"]["primary"]
    damage = assess_damage({"verdict": "malicious"}, events=own)
    assert damage["resources_deleted"] == [] and any("cleanup" in n for n in damage["notes"])

    theirs = [event_from_record(r) for r in (launch, _terminate(launch, OTHERS, "2024-08-01T13:30:23Z"))]
    intents = {i["intent"]: i for i in classify_intent(theirs)}
    assert intents["destruction_ransom"]["evidence"][0]["event_name"] == "TerminateInstances"
    assert "cleanup" not in intents


# -- 2. cost: run time ends at termination; one home for cost ---------------------------------------


def test_cost_counts_an_instance_until_its_termination_and_only_the_rest_as_running() -> None:
    """Hand-written in the real shape (as above): one instance terminated after 2 h, one left running."""
    _, run = _unusual_instances()
    first, second = _launch(run, LAUNCHED), _launch(run, OTHERS)
    second["eventTime"] = "2024-08-01T12:00:00Z"
    events = [event_from_record(r) for r in (first, second, _terminate(first, LAUNCHED, "2024-08-01T13:30:23Z"))]
    cost = assess_damage({"verdict": "malicious"}, events=events,
                         as_of=datetime(2024, 8, 2, tzinfo=UTC))["cost_estimate"]
    items = {i["id"]: i for i in cost["items"]}
    assert items[LAUNCHED]["hours"] == 2.0 and items[LAUNCHED]["terminated_at"] == "2024-08-01T13:30:23Z"
    assert items[OTHERS]["hours"] == 12.0 and items[OTHERS]["terminated_at"] is None
    assert cost["ongoing_usd_per_day"] == round(24 * items[OTHERS]["hourly_usd"], 2)
    running = [a for a in cost["assumptions"] if "still running" in a]
    assert len(running) == 1 and OTHERS in running[0] and LAUNCHED not in running[0]


def test_the_investigation_and_the_damage_answer_show_one_cost(tmp_path: Path) -> None:
    """The Stratus detonation's AssumeRole records (real) and its RunInstances made to succeed, then
    terminated after 2 h (hand-written in the real shape), through DuckDB and the whole analysis."""
    assumed, run = _unusual_instances()
    launch = _launch(run, LAUNCHED)
    write_trail_files([*assumed, launch, _terminate(launch, LAUNCHED, "2024-08-01T13:30:23Z")], tmp_path / "logs")
    key = next(r["userIdentity"]["accessKeyId"] for r in assumed)
    with DuckDBEngine(tmp_path / "logs", cache_dir=tmp_path / "cache") as engine:
        inv = investigate(engine, key, Window.parse("2024-08-01T00:00:00Z", "2024-08-02T00:00:00Z"))
    damage = inv.answers()["damage"]["cost_estimate"]
    (item,) = [i for i in damage["items"] if i["kind"] == "ec2_instance"]
    assert item["id"] == LAUNCHED and item["hours"] == 2.0  # not the 12.5 h to the end of the window
    assert inv.to_full_json()["cost_estimate_usd"] == damage["total_usd"] == round(2.0 * item["hourly_usd"], 2)


# -- 3. one classification: damage, intent and the data-access query agree ------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBEngine]:
    root = tmp_path_factory.mktemp("stratus")
    write_trail_files(RECORDS, root / "logs")
    with DuckDBEngine(root / "logs", cache_dir=root / "cache") as eng:
        yield eng


def _keys_of(technique: str) -> list[str]:
    return sorted({r["userIdentity"]["accessKeyId"] for r in _technique(technique)
                   if r["userIdentity"].get("accessKeyId")})


@pytest.mark.parametrize("technique", sorted({label["technique"] for label in LABELS}))
def test_damage_intent_and_data_access_read_the_same_events_the_same_way(engine: DuckDBEngine, technique: str) -> None:
    """Every Stratus technique (real records): what the data-access query lists as read is what the
    damage answer lists; "nothing read" never stands beside a read or an unrefused data-theft intent.
    (Before: BatchGetSecretValue was listed as read while the summary said nothing was read.)"""
    keys = _keys_of(technique)
    if not keys:
        pytest.skip("a console sign-in: no key")
    events = [event_from_record(r) for r in RECORDS if r["userIdentity"].get("accessKeyId") in keys]
    answers = answer_five_questions(events, {"verdict": "malicious"})
    damage, intents = answers["damage"], {i["intent"]: i for i in answers["intent"]["intents"]}
    # the query's default list is the taxonomy's (tests/queries/test_data_access_events.py), as the
    # investigation binds it
    rows = engine.run("data_access_events", {"access_key_ids": keys, **WIDE})
    read = {r["event_name"] for r in rows if r["call_count"] > r["error_count"]}
    assert {d["event_name"] for d in damage["data_read"]} == read
    theft = intents.get("data_theft")
    if NOTHING_READ in damage["summary"]:
        assert not read and not damage["data_read"]
        assert theft is None or theft["attempted_only"], (theft, damage["summary"])
    if read:
        assert theft is not None and not theft["attempted_only"]
        assert NOTHING_READ not in damage["summary"]
    refused = {r["event_name"] for r in rows if r["call_count"] == r["error_count"]}
    if refused and not read:
        assert "refused" in damage["summary"] and theft is not None and theft["attempted_only"]
        assert "attempted only" in answers["intent"]["summary"] or theft["primary"] is False
