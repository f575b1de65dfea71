"""Every query the investigation ran, as a runnable `.sql` file with its parameters substituted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keyresponse.errors import InputError, KeyResponseError
from keyresponse.incident import Incident
from keyresponse.model import InvestigationRecord
from keyresponse.report.reading import read_investigation


@dataclass(frozen=True)
class QueryRun:
    """One query the investigation ran, with its parameters, as a runnable `.sql` file."""

    number: int
    name: str
    summary: str
    params: dict[str, object]
    sql: str

    @property
    def filename(self) -> str:
        return f"queries/{self.number:02d}_{self.name}.sql"


def _substitute(sql: str, params: Mapping[str, Any]) -> str:
    """The query with every `:name` replaced by its value as a SQL literal (`queries.sql_literal`)."""
    from keyresponse.queries import for_athena_qmark

    qmarked, literals = for_athena_qmark(sql, params)
    import sqlglot
    from sqlglot import TokenType

    holes = [t for t in sqlglot.tokenize(qmarked, read="athena") if t.token_type == TokenType.PLACEHOLDER]
    if len(holes) != len(literals):
        raise InputError(f"found {len(holes)} placeholders for {len(literals)} values")
    out, last = [], 0
    for hole, literal in zip(holes, literals, strict=True):
        out.append(qmarked[last:hole.start])
        out.append(literal)
        last = hole.end + 1
    out.append(qmarked[last:])
    return "".join(out)


def query_runs(incident: Incident, record: InvestigationRecord | None = None) -> list[QueryRun]:
    """Every query the investigation ran, in order, as runnable SQL with its values in place."""
    from keyresponse.queries import get_query

    inv = read_investigation(incident) if record is None else record
    runs = []
    for number, ran in enumerate(inv.queries, start=1):
        name, params = ran.query, dict[str, object](ran.params)
        header = [f"-- keyresponse incident {incident.incident_id}: query {number:02d}, {name}"]
        bound: dict[str, object]
        try:
            query = get_query(name)
            bound = query.bind(params)
            summary = query.summary
            body = _substitute(query.body, bound)
        except KeyResponseError as exc:
            summary = f"(the query file {name}.sql could not be used: {exc})"
            body = f"-- {json.dumps(summary, ensure_ascii=True)}"
            bound = params
        header.append(f"-- {json.dumps(summary, ensure_ascii=True)[1:-1]}")
        header.append("-- Athena (Trino) SQL over the CloudTrail table `cloudtrail`: rename it to your table.")
        header.append("-- Parameters, substituted below as SQL literals:")
        header.extend(f"--   {key} = {json.dumps(value, ensure_ascii=True)}" for key, value in bound.items())
        runs.append(QueryRun(number, name, summary, bound, "\n".join(header) + "\n" + body.rstrip() + "\n"))
    return runs


