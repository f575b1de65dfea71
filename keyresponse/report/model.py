"""What the report shows, computed once from the incident record (`build_context`): the view model
the templates read. The templates only lay it out.

The investigation is read typed (`keyresponse.model.InvestigationRecord`, validated here once) and
handed to what computes each section. The intel answers are the one exception: the Intelligence
section shows each answer as recorded (whatever keys its module wrote, in its order), so it reads
them from the record's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from markupsafe import Markup

from keyresponse.incident import INTEL_FIELDS, Incident
from keyresponse.model import InvestigationRecord, SourceIp, UncertainCredential
from keyresponse.report.attack import (
    Category,
    CredentialRow,
    Impact,
    RegionRow,
    UserAgentRow,
    activity,
    credential_rows,
    credential_svg,
    impact,
    sources,
)
from keyresponse.report.figures import (
    MILESTONES,
    Duration,
    Figure,
    Milestone,
    business_summary,
    durations,
    figures,
    milestones,
    outcome,
)
from keyresponse.report.queries import QueryRun, query_runs
from keyresponse.report.reading import read_investigation, stated
from keyresponse.report.response import Action, Containment, PlanRow, actions, credential_containment, plan
from keyresponse.report.rules import Recommendation, recommendations


@dataclass
class ReportContext:
    """Everything the templates read: the record, and what is computed from it."""

    incident: Incident
    investigation: InvestigationRecord
    #: whether the analysis looked for the call that created the key (`investigation.key_creation`
    #: is then that call, or None when the logs do not reach it)
    key_creation_searched: bool
    outcome: dict[str, str]
    business_summary: str
    figures: list[Figure]
    milestones: list[Milestone]
    durations: list[Duration]
    categories: list[Category]
    activity_svg: Markup
    credentials: list[CredentialRow]
    containment: list[Containment]
    credential_svg: Markup
    source_ips: list[SourceIp]
    uncertain_credentials: list[UncertainCredential]
    user_agents: list[UserAgentRow]
    regions: list[RegionRow]
    impact: Impact
    actions: list[Action]
    plan: list[PlanRow]
    plan_all_applied: bool
    queries: list[QueryRun]
    recommendations: list[Recommendation]
    #: the intel answers present, as recorded: (field, JSON value)
    intel: list[tuple[str, object]]

    def as_template_vars(self) -> dict[str, object]:
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return values | {"milestone_labels": dict(MILESTONES)}


def build_context(incident: Incident) -> ReportContext:
    """Everything the report shows, computed once from the record."""
    record = read_investigation(incident)
    categories, activity_svg = activity(incident)
    containment = credential_containment(incident, record)
    credentials = credential_rows(incident, record, containment)
    ips, agents, regions = sources(incident, record)
    steps, all_applied = plan(incident)
    raw = incident.investigation
    return ReportContext(
        incident=incident, investigation=record, key_creation_searched=stated(record, "key_creation"),
        outcome=outcome(incident, record), business_summary=business_summary(incident, record),
        figures=figures(incident, record), milestones=milestones(incident), durations=durations(incident),
        categories=categories, activity_svg=activity_svg, credentials=credentials, containment=containment,
        credential_svg=credential_svg(credentials), source_ips=ips,
        uncertain_credentials=record.uncertain_credentials, user_agents=agents, regions=regions,
        impact=impact(incident, record), actions=actions(incident), plan=steps, plan_all_applied=all_applied,
        queries=query_runs(incident, record), recommendations=recommendations(incident, record),
        intel=[(name, raw[name]) for name in INTEL_FIELDS if raw.get(name) not in (None, [], {})],
    )
