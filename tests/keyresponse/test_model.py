"""The typed incident model (keyresponse/model.py): its published schemas are current, and the
incident record refuses an investigation that drifted from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from keyresponse.incident import Incident, make_incident, minimal_investigation
from keyresponse.model import InvestigationRecord
from keyresponse.schemas import schemas

DOCS = Path(__file__).parents[2] / "docs" / "schemas"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "incidents" / "pivot_chain_incident.json"


@pytest.mark.parametrize("name", sorted(schemas()))
def test_the_published_schema_is_the_models(name: str) -> None:
    published = json.loads((DOCS / name).read_text(encoding="utf-8"))
    assert published == schemas()[name], f"docs/schemas/{name} is stale: python -m keyresponse.schemas docs/schemas"


def test_a_record_written_by_an_earlier_version_still_reads() -> None:
    """The golden incident predates the five answers, source-IP judgement and persistence details."""
    incident = Incident.model_validate_json(FIXTURE.read_text(encoding="utf-8"))
    record = InvestigationRecord.model_validate(incident.investigation)
    assert record.verdict == "malicious" and len(record.credentials) > 1


@pytest.mark.parametrize(("change", "path"), [
    ({"credentials": [{"access_key": "AKIAIOSFODNN7EXAMPLE", "kind": "original", "created_by_event": None,
                       "parent": None, "principal_arn": None}]}, "credentials.0"),
    ({"verdict": "evil"}, "verdict"),
    ({"severity": "P0"}, "severity"),
    ({"source_ips": [{"ip": "203.0.113.9", "event_count": "many", "user_agents": [], "first_seen": "x",
                      "last_seen": "y"}]}, "source_ips.0.event_count"),
    ({"persistence": [{"event_name": "CreateUser", "event_time": "t", "resource": "u", "target": "u"}]},
     "persistence.0.target"),
])
def test_an_investigation_that_drifted_from_the_model_is_refused_naming_the_field(
        change: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as refused:
        make_incident(investigation=change)
    assert f"investigation.{path}" in str(refused.value)


def test_the_minimal_investigation_fits() -> None:
    assert InvestigationRecord.model_validate(minimal_investigation()).verdict == "benign"
