"""Query engines: the same query files on Athena (production) and DuckDB (local, tests, CI).

    engine = DuckDBEngine("tests/fixtures/logs")          # or "s3://trail-bucket/prefix"
    engine = AthenaEngine.from_settings()                   # database/workgroup/output from settings
    rows = engine.run("persistence_events", {"access_key_ids": [...], "start_day": ..., ...})

`run` takes a query name (`queries/<name>.sql`), a `Query`, or ad-hoc SQL, checks the params
against the query's header, executes with the values bound, checks the result's columns
against the header, and returns one dict per row (`json` columns parsed). `bytes_scanned`
adds up what the engine read; `logging_gaps` lists what it could not read.

The DuckDB engine's modules, by job: `duckdb_engine` (the engine: running the SQL), `trail_files`
(finding a window's files), `projection` (CloudTrail JSON to table rows), `parquet_cache` and
`indicator_table` (the two materialisations), `indicators` (the byte scanner and its workers, over
the C kernel `_scan.c`). `layout` writes files as a trail does (fixtures, the simulator).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from keyresponse.queries import Query, QueryContractError, get_query

Row = dict[str, Any]


class QueryEngine(ABC):
    """Runs query files; subclasses only execute SQL."""

    #: "duckdb" or "athena", as the investigation result's `engine`.
    engine: str = ""

    def __init__(self) -> None:
        self.bytes_scanned: int = 0
        self.last_bytes_scanned: int = 0

    @property
    def logging_gaps(self) -> list[str]:
        """What the engine could not read (skipped files, missing days): the investigation reports it."""
        return []

    def run(self, name_or_query: str | Query, params: Mapping[str, object] | None = None) -> list[Row]:
        """Run a query with bound params; one dict per row, keys in the declared column order."""
        query = get_query(name_or_query)
        bound = query.bind(params)
        columns, rows = self._execute(query, bound)
        if not query.adhoc and columns != query.column_names:
            raise QueryContractError(
                f"query {query.name!r} returned columns {columns}, its header declares {query.column_names}"
            )
        json_columns = {c.name for c in query.columns if c.type == "json"}
        return [
            {col: _python_value(value, col in json_columns) for col, value in zip(columns, row, strict=True)}
            for row in rows
        ]

    @abstractmethod
    def _execute(self, query: Query, params: Mapping[str, Any]) -> tuple[list[str], Sequence[Sequence[Any]]]:
        """Execute `query.body` with `params` bound; the column names and the rows."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and temp files."""

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _python_value(value: Any, is_json: bool) -> Any:
    if value is None:
        return None
    if is_json and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


__all__ = ["QueryEngine", "Row"]
