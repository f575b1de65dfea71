"""How the report reads the investigation: typed, as `keyresponse.model.InvestigationRecord`, validated
once per report (`build_context`) and handed to what computes each section.

The incident keeps `investigation` a plain dict (its contract is docs/architecture.md's); the
model is the schema it is checked against, with defaults for what an older record lacks. Where the
report showed a missing field differently from its default, it still does (`stated`).
"""

from __future__ import annotations

from pydantic import BaseModel

from keyresponse.incident import Incident
from keyresponse.model import Classification, InvestigationRecord, SourceIp


def read_investigation(incident: Incident) -> InvestigationRecord:
    """The incident's investigation as the typed record."""
    return InvestigationRecord.model_validate(incident.investigation)


def stated(model: BaseModel, name: str) -> bool:
    """Whether the record states `name` (null included), rather than the model filling its default."""
    return name in model.model_fields_set


def classification(ip: SourceIp) -> Classification | None:
    """How a source IP was judged. A record written before IPs were judged lists the attacker's only."""
    return ip.classification if stated(ip, "classification") else "attacker"
