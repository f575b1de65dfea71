"""What the report shows, computed once from the incident record (`build_context`): the view model
the templates read. The templates only lay it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from keyresponse.incident import INTEL_FIELDS, Incident
from keyresponse.report.attack import (
    CredentialRow,
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
    outcome,
)
from keyresponse.report.queries import QueryRun, query_runs
from keyresponse.report.response import Action, actions, plan
from keyresponse.report.rules import Recommendation, recommendations


@dataclass
class ReportContext:
    """Everything the templates read: the record, and what is computed from it."""

    incident: Incident
    inv: dict[str, Any]
    outcome: dict[str, str]
    business_summary: str
    figures: list[Figure]
    milestones: list[Milestone]
    durations: list[Duration]
    categories: list[dict[str, Any]]
    activity_svg: Markup
    credentials: list[CredentialRow]
    credential_svg: Markup
    source_ips: list[dict[str, Any]]
    uncertain_credentials: list[dict[str, Any]]
    user_agents: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    impact: dict[str, Any]
    actions: list[Action]
    plan: list[dict[str, Any]]
    plan_all_applied: bool
    queries: list[QueryRun]
    recommendations: list[Recommendation]
    intel: list[tuple[str, Any]]

    def as_template_vars(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return fields | {"milestone_labels": dict(MILESTONES)}



def build_context(incident: Incident) -> ReportContext:
    """Everything the report shows, computed once from the record."""
    categories, activity_svg = activity(incident)
    credentials = credential_rows(incident)
    ips, agents, regions = sources(incident)
    steps, all_applied = plan(incident)
    timeline = incident.timeline.model_dump()
    return ReportContext(
        incident=incident, inv=incident.investigation, outcome=outcome(incident),
        business_summary=business_summary(incident), figures=figures(incident),
        milestones=[Milestone(key, label, timeline[key]) for key, label in MILESTONES],
        durations=durations(incident), categories=categories, activity_svg=activity_svg,
        credentials=credentials, credential_svg=credential_svg(credentials), source_ips=ips,
        uncertain_credentials=list(incident.investigation.get("uncertain_credentials") or []),
        user_agents=agents, regions=regions, impact=impact(incident), actions=actions(incident), plan=steps,
        plan_all_applied=all_applied, queries=query_runs(incident), recommendations=recommendations(incident),
        intel=[(name, incident.investigation[name]) for name in INTEL_FIELDS
               if incident.investigation.get(name) not in (None, [], {})],
    )


