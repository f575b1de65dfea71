"""Stratus Red Team detonation logs (and odd Panther records) in the trail layout, behind one DuckDB engine."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engines.duckdb_engine import DuckDBEngine
from keyresponse.engines.layout import write_trail_files

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudtrail"
#: A window that holds every fixture record.
WIDE = {
    "start_day": "2022/01/01",
    "end_day": "2026/12/31",
    "start_time": "2022-01-01T00:00:00Z",
    "end_time": "2027-01-01T00:00:00Z",
}


def load_records(name: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / name).read_text())["Records"])


@pytest.fixture(scope="session")
def stratus_records() -> list[dict[str, Any]]:
    return load_records("stratus_red_team_detonation_logs.json")


@pytest.fixture(scope="session")
def stratus_by_technique(stratus_records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    labels = json.loads((FIXTURES / "stratus_red_team_detonation_logs.labels.json").read_text())
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for label in labels:
        record = stratus_records[label["index"]]
        assert record["eventID"] == label["eventID"]
        by[label["technique"]].append(record)
    return dict(by)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory, stratus_records: list[dict[str, Any]]) -> Iterator[DuckDBEngine]:
    root = tmp_path_factory.mktemp("trail")
    write_trail_files(stratus_records, root / "logs")
    write_trail_files(load_records("panther_analysis_cloudtrail_rule_tests.trimmed.json"), root / "logs")
    with DuckDBEngine(root / "logs", cache_dir=root / "cache") as eng:
        yield eng


@pytest.fixture
def wide() -> dict[str, str]:
    """Partition and time bounds that hold every fixture record."""
    return dict(WIDE)


@pytest.fixture(scope="session")
def technique_keys(stratus_by_technique: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """The access key ids each technique's records were made with."""
    return {
        technique: sorted({r["userIdentity"]["accessKeyId"] for r in records if r["userIdentity"].get("accessKeyId")})
        for technique, records in stratus_by_technique.items()
    }
