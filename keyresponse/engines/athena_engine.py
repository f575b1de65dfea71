"""Athena: the production engine, over the organization trail table (see queries/ddl/cloudtrail.sql).

The query text sent is the file's body with each `:name` swapped for `?` and `cloudtrail` pointed
at the configured table; the values travel as Athena execution parameters (pyathena
`paramstyle="qmark"`), never inside the SQL. Every query bounds the `"timestamp"` partition, so
partition projection limits the scan to the incident's days. `bytes_scanned` comes from the
query execution's statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keyresponse.engines import QueryEngine
from keyresponse.errors import AwsCallError
from keyresponse.queries import TABLE, Query, for_athena_qmark, rename_table

if TYPE_CHECKING:  # pyathena is imported when a query runs
    from pyathena.connection import Connection
    from pyathena.cursor import Cursor


class AthenaEngine(QueryEngine):
    """Query files on Athena through pyathena."""

    engine = "athena"

    def __init__(
        self,
        *,
        database: str,
        output_location: str | None,
        workgroup: str = "primary",
        table: str = TABLE,
        region: str | None = None,
        connection: Connection[Cursor] | None = None,
    ) -> None:
        super().__init__()
        self.database = database
        self.table = table
        self.workgroup = workgroup
        self.output_location = output_location
        self.region = region
        self._connection = connection
        self.last_query_id: str | None = None

    @classmethod
    def from_settings(cls) -> AthenaEngine:
        from keyresponse.settings import get_settings

        settings = get_settings()
        return cls(
            database=settings.athena_database,
            table=settings.athena_table,
            workgroup=settings.athena_workgroup,
            output_location=settings.athena_output,
            region=settings.region,
        )

    @property
    def connection(self) -> Connection[Cursor]:
        if self._connection is None:
            import os

            from pyathena import connect

            from keyresponse.aws import client_config

            kwargs: dict[str, Any] = {
                "schema_name": self.database,
                "work_group": self.workgroup,
                "region_name": self.region or os.environ.get("AWS_REGION") or "us-east-1",
                "config": client_config(),
            }
            if self.output_location:
                kwargs["s3_staging_dir"] = self.output_location
            self._connection = connect(**kwargs)
        return self._connection

    def render(self, query: Query, params: Mapping[str, object]) -> tuple[str, list[str]]:
        """The SQL text and the execution parameters Athena receives (no I/O)."""
        sql, values = for_athena_qmark(query.body, params)
        if self.table != TABLE:
            sql = rename_table(sql, self.table)
        return sql, values

    def _execute(self, query: Query, params: Mapping[str, Any]) -> tuple[list[str], Sequence[Sequence[Any]]]:
        sql, values = self.render(query, params)
        from pyathena.error import Error as PyAthenaError

        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, values or None, paramstyle="qmark")
            columns = [d[0] for d in cursor.description or []]
            rows = [row for row in cursor.fetchall() if isinstance(row, tuple)]  # a plain Cursor's: all tuples
        except PyAthenaError as exc:
            raise AwsCallError(f"Athena query {query.name!r} failed: {exc}") from exc
        finally:
            self.last_query_id = cursor.query_id
            self.last_bytes_scanned = int(cursor.data_scanned_in_bytes or 0)
            self.bytes_scanned += self.last_bytes_scanned
            cursor.close()
        return columns, rows

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
