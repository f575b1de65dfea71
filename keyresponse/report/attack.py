"""What the attacker did, as the report lays it out: calls by category over time (the activity
chart), the credential graph, the sources (IPs, user agents, regions) and the impact (resources
created, changed and deleted; data touched; persistence; cost)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from keyresponse.incident import Incident, parse_time
from keyresponse.intel.cost import recorded_cost
from keyresponse.intel.taxonomy import (
    ACTIVITIES,
    CREDENTIALS,
    DELETE,
    SECRET_READS,
    WRITE_KINDS,
    kind_of,
    own_cleanup,
)
from keyresponse.intel.taxonomy import category_of as categorize
from keyresponse.model import (
    DataAccess,
    InvestigationRecord,
    PersistenceEvent,
    ReconError,
    ResourceCreated,
    SourceIp,
)
from keyresponse.report.formatting import compact_json, short_arn
from keyresponse.report.reading import classification, stated
from keyresponse.report.response import Containment
from keyresponse.svg import Lane, Marker, Point, TreeNode, activity_chart, outline, tree_chart

# -- categories of attacker activity ---------------------------------------------------------------

#: Lane colours by category (`keyresponse.intel.taxonomy.ACTIVITIES`, which holds the categories and
#: their calls): the Okabe–Ito palette (colour-blind safe).
_COLOURS = {"recon": "#0072B2", "credentials": "#D55E00", "persistence": "#CC79A7", "data_access": "#E69F00",
            "compute": "#009E73", "defense_evasion": "#000000", "other": "#999999"}
#: (key, label, colour), in chart order.
CATEGORIES: tuple[Lane, ...] = tuple(Lane(a.key, a.label, _COLOURS[a.key]) for a in ACTIVITIES)


@dataclass(frozen=True)
class Category:
    """One lane of the activity chart: the calls of a category, most frequent first."""

    key: str
    label: str
    color: str
    count: int
    names: list[tuple[str, int]]


@dataclass(frozen=True)
class CredentialRow:
    access_key_id: str
    kind: str
    created_by_event: str | None
    parent: str | None
    principal_arn: str | None
    depth: int
    event_count: int
    contained: str = "not contained"


@dataclass(frozen=True)
class UserAgentRow:
    """An attacker user agent, from the calls (or, with no calls stored, from the IP summary: no count)."""

    user_agent: str
    ips: list[str]
    event_count: int | None


@dataclass(frozen=True)
class RegionRow:
    region: str
    event_count: int


@dataclass(frozen=True)
class CallRow:
    """A successful call that changed or deleted a resource."""

    event_time: str | None
    event_name: str
    region: str | None
    access_key_id: str | None
    parameters: str


@dataclass(frozen=True)
class DataRow:
    """A data-access row; `error_count` None when the record does not say (written before it was counted)."""

    resource: str | None
    event_name: str
    count: int
    error_count: int | None


@dataclass(frozen=True)
class Impact:
    created: list[ResourceCreated]
    changed: list[CallRow]
    deleted: list[CallRow]
    data: list[DataRow]
    secrets: list[DataAccess]
    persistence: list[PersistenceEvent]
    recon_errors: list[ReconError]
    cost: float
    principals: list[str]


def credential_rows(incident: Incident, record: InvestigationRecord,
                    containment: Sequence[Containment]) -> list[CredentialRow]:
    """The credential graph as an outline (parents before children), with each one's calls and containment."""
    counts = Counter(str(e.get("access_key_id")) for e in incident.events)
    nodes = [TreeNode(c.access_key_id, c.parent, c.access_key_id) for c in record.credentials]
    by_id = {c.access_key_id: c for c in record.credentials}
    how = {row["access_key_id"]: row["how"] for row in containment}
    return [CredentialRow(node.id, by_id[node.id].kind, by_id[node.id].created_by_event,
                          by_id[node.id].parent, by_id[node.id].principal_arn, depth,
                          counts.get(node.id, 0), how[node.id]) for node, depth in outline(nodes)]


_KIND_COLOR = {"original": "#B91C1C", "access_key": "#D55E00", "session": "#0072B2"}


def credential_svg(rows: Sequence[CredentialRow]) -> Markup:
    nodes = []
    for row in rows:
        what = {"original": "exposed key", "access_key": "access key", "session": "session"}.get(row.kind, row.kind)
        subtitle = f"{what} · {short_arn(row.principal_arn) or 'principal unknown'} · {row.event_count} call(s)"
        edge = row.created_by_event or ("seen from attacker IP" if row.kind != "original" else "")
        nodes.append(TreeNode(row.access_key_id, row.parent, row.access_key_id, subtitle, edge,
                              _KIND_COLOR.get(row.kind, "#334155"), dashed=row.created_by_event is None))
    return tree_chart(nodes, title="Credential graph: the exposed key and every credential derived from it")


def activity(incident: Incident) -> tuple[list[Category], Markup]:
    """The attacker's calls by category (`keyresponse.intel.taxonomy`), and the chart of them over time."""
    lanes = {lane.key: lane for lane in CATEGORIES}
    per: dict[str, Counter[str]] = {lane.key: Counter() for lane in CATEGORIES}
    points = []
    for event in incident.events:
        key = categorize(event)
        per[key][str(event.get("event_name"))] += 1
        if event.get("event_time"):
            failed = bool(event.get("error_code"))
            points.append(Point(key, parse_time(event["event_time"]),
                                f"{event['event_time']} {event.get('event_name')} from {event.get('source_ip')}"
                                + (f" ({event.get('error_code')})" if failed else ""), failed))
    markers = []
    timeline = incident.timeline
    if timeline.detected_at:
        markers.append(Marker(parse_time(timeline.detected_at), "detected", "#B45309", dashed=True))
    if timeline.contained_at:
        markers.append(Marker(parse_time(timeline.contained_at), "contained", "#B91C1C"))
    rows = [Category(key, lanes[key].label, lanes[key].color, sum(c.values()), c.most_common())
            for key, c in per.items()]
    return rows, activity_chart(CATEGORIES, points, markers,
                                title="Attacker activity by category over time, with detection and containment")


def sources(incident: Incident, record: InvestigationRecord
            ) -> tuple[list[SourceIp], list[UserAgentRow], list[RegionRow]]:
    """The source IPs (each with its class), the attacker's user agents, and the regions with their calls."""
    ips = [ip.model_copy(update={"classification": classification(ip)}) for ip in record.source_ips]
    agents: dict[str, tuple[set[str], int | None]] = {}
    for event in incident.events:
        agent = str(event.get("user_agent") or "(none)")
        seen, count = agents.get(agent, (set(), 0))
        seen.add(str(event.get("source_ip")))
        agents[agent] = (seen, (count or 0) + 1)
    if not incident.events:  # no event rows stored: fall back to the IP summary's agents
        for ip in ips:
            if ip.classification != "attacker":
                continue
            for agent in ip.user_agents:
                agents.setdefault(agent, (set(), None))[0].add(ip.ip)
    agent_rows = sorted((UserAgentRow(agent, sorted(seen), count) for agent, (seen, count) in agents.items()),
                        key=lambda r: (-(r.event_count or 0), r.user_agent))
    region_counts = Counter(str(e.get("aws_region")) for e in incident.events)
    regions = [RegionRow(r, region_counts.get(r, 0)) for r in record.regions]
    return ips, agent_rows, regions


def impact(incident: Incident, record: InvestigationRecord) -> Impact:
    """What the attacker created, changed, deleted and read, its persistence, and the cost."""
    changed, deleted = [], []
    cleanup = {id(e) for e in own_cleanup(incident.events)}  # the attacker removing what it made itself
    for event in incident.events:
        if event.get("error_code"):
            continue
        name = str(event.get("event_name") or "")
        row = CallRow(event.get("event_time"), name, event.get("aws_region"), event.get("access_key_id"),
                      _request_summary(event))
        kind = kind_of(event)  # one classification: the damage answer reads the same kinds
        if kind == DELETE and id(event) not in cleanup:
            deleted.append(row)
        elif kind in WRITE_KINDS and categorize(event) != CREDENTIALS:
            changed.append(row)
    secrets = [d for d in record.data_access if d.event_name in SECRET_READS and not d.error_count]
    data = [DataRow(d.resource, d.event_name, d.count, d.error_count if stated(d, "error_count") else None)
            for d in record.data_access]
    return Impact(created=record.resources_created, changed=changed, deleted=deleted, data=data, secrets=secrets,
                  persistence=record.persistence, recon_errors=record.recon_errors,
                  cost=recorded_cost(incident.investigation), principals=record.principals)


#: Request values longer than this (policy documents, user data, certificates) are shortened in the
#: impact tables; nothing shorter is touched, so ids and ARNs are never cut.
_LONG_VALUE = 160


def _elide(value: Any) -> Any:
    """`value` with each long string shortened and marked with its length; the rest untouched."""
    if isinstance(value, str) and len(value) > _LONG_VALUE:
        return f"{value[:60]}… ({len(value)} characters)"
    if isinstance(value, Mapping):
        return {k: _elide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_elide(v) for v in value]
    return value


def _request_summary(event: Mapping[str, Any]) -> str:
    """The request as one line of JSON. Only long values (documents, scripts) are shortened, never
    the line as a whole: cutting it at a width once cut an id or an ARN in half."""
    raw = event.get("request_parameters")
    if not raw:
        return ""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return str(_elide(str(raw)))
    return compact_json(_elide(value))


