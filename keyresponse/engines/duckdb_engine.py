"""DuckDB over CloudTrail files: the local stand-in for the Athena table.

`DuckDBEngine` runs a query file's SQL (transpiled for DuckDB, the values bound) over the
`cloudtrail` view of the window's records, adds up `bytes_scanned` (the compressed size of the
window's files) and reports `logging_gaps` (files it could not read, days without files). The view
shows one of two materialisations of the window, chosen for each query:

- the indicator table (`indicator_table.py`) when the query keeps rows only by access key ids
  and/or source IPs (`indicator_filters`): just the records that mention them, cut out by the byte
  scanner (`indicators.py`, with its C kernel `_scan.c`);
- the Parquet cache (`parquet_cache.py`) otherwise, with `materialise="full"`, and for `load()` and
  `sql()`: every record of the window.

Where the files are, by account, region and day (a folder, or `s3://` mirrored through boto3), is
`trail_files.py`; how a file's JSON becomes the table's rows (columns, partitions, `eventtime`,
`SCHEMA_VERSION`), `projection.py`.

A file DuckDB cannot read (corrupt gzip, not JSON, `Records` not a list) is skipped with a
warning naming it, and listed in `skipped_files` / `logging_gaps`; the rest of its folder loads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from keyresponse.engines import QueryEngine
from keyresponse.engines.indicator_table import IndicatorTable, indicator_filters
from keyresponse.engines.parquet_cache import ParquetCache
from keyresponse.engines.projection import SkippedFile
from keyresponse.engines.trail_files import TrailFiles, Unit
from keyresponse.errors import ConfigurationError
from keyresponse.queries import Query, for_duckdb

if TYPE_CHECKING:  # boto3-stubs: a development dependency
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


class DuckDBEngine(QueryEngine):
    """Query files on DuckDB over CloudTrail files (a folder or s3://bucket/prefix).

    `materialise="indicators"` (the default): a query filtered by access key ids and/or source IPs
    only loads the records that mention them (see `ensure`); other queries, `load()` and `sql()`
    read everything in the window through the Parquet cache. `materialise="full"` always does
    the latter.
    """

    engine = "duckdb"

    def __init__(
        self,
        source: str | Path,
        *,
        cache_dir: Path | None = None,
        regions: Sequence[str] | None = None,
        accounts: Sequence[str] | None = None,
        threads: int | None = None,
        s3_client: S3Client | None = None,
        materialise: str = "indicators",
        workers: int | None = None,
    ) -> None:
        super().__init__()
        if materialise not in ("indicators", "full"):
            raise ConfigurationError(f"materialise must be 'indicators' or 'full', not {materialise!r}")
        if cache_dir is None:
            from keyresponse.settings import get_settings

            cache_dir = get_settings().home / "cache"
        self.cache_dir = Path(cache_dir)
        self.materialise = materialise
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
        self.trail = TrailFiles(source, self.cache_dir, regions=regions, accounts=accounts, s3_client=s3_client)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._lock = threading.RLock()
        self._parquet = ParquetCache(self._con, self.cache_dir / "cloudtrail-parquet")
        self._table = IndicatorTable(self._con, self.cache_dir / "cloudtrail-index")
        self._skipped: dict[str, SkippedFile] = {}
        self._view: str | None = None  # the body of the `cloudtrail` view
        self._last_window: tuple[str | None, str | None] = (None, None)

    # -- public ------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The folder the files are read from (an S3 source's local mirror)."""
        return self.trail.root

    @property
    def regions(self) -> list[str] | None:
        return self.trail.regions

    @property
    def accounts(self) -> list[str] | None:
        return self.trail.accounts

    @property
    def skipped_files(self) -> list[SkippedFile]:
        """Files of the loaded windows that could not be read."""
        return list(self._skipped.values())

    @property
    def logging_gaps(self) -> list[str]:
        gaps = [f"skipped unreadable CloudTrail file {s.path}: {s.reason}" for s in self._skipped.values()]
        gaps += [f"no CloudTrail files for day {d}" for d in sorted(self.trail.missing_days)]
        return gaps

    def load(self, start_day: str | None = None, end_day: str | None = None) -> list[Unit]:
        """Make the files of a window (or of everything) queryable, ingesting what is not cached; its units."""
        with self._lock:
            units = self.trail.units(start_day, end_day)
            for item in self._parquet.load(units):
                self._skip(item)
            self._show(self._parquet.view(units))
            self._last_window = (start_day, end_day)
            return units

    def ensure(
        self,
        access_key_ids: Sequence[str] = (),
        source_ips: Sequence[str] = (),
        start_day: str | None = None,
        end_day: str | None = None,
    ) -> list[Unit]:
        """Make the `cloudtrail` table hold every record of the window's files that mentions one of
        the keys or IPs (and usually a few more), decompressing only the files whose index holds
        them (all files the first time, in `workers` processes); the window's units."""
        wanted = set(access_key_ids) | set(source_ips)
        with self._lock:
            units = self.trail.units(start_day, end_day)
            for item in self._table.ensure(units, wanted, self.workers):
                self._skip(item)
            self._show(IndicatorTable.VIEW)
            self._last_window = (start_day, end_day)
            return units

    def sql(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        """Raw DuckDB SQL over the `cloudtrail` view of every record of the last window (benchmarks, debugging)."""
        with self._lock:
            if self._view == IndicatorTable.VIEW:
                self.load(*self._last_window)
            return self._con.execute(sql, dict(params or {})).fetchall()

    def close(self) -> None:
        self._con.close()

    # -- QueryEngine -------------------------------------------------------------------------
    def _execute(self, query: Query, params: Mapping[str, Any]) -> tuple[list[str], Sequence[Sequence[Any]]]:
        start, end = params.get("start_day"), params.get("end_day")
        filters = None if self.materialise == "full" or query.adhoc else indicator_filters(query.body)
        with self._lock:
            if filters is None:
                units = self.load(start, end)
            else:
                units = self.ensure(
                    params.get("access_key_ids", []) if "access_key_ids" in filters else [],
                    params.get("source_ips", []) if "source_ips" in filters else [],
                    start, end,
                )
            cursor = self._con.execute(for_duckdb(query.body), dict(params))
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        self.last_bytes_scanned = sum(u.size for u in units)
        self.bytes_scanned += self.last_bytes_scanned
        return columns, rows

    def _show(self, body: str) -> None:
        """Point the `cloudtrail` view at `body` (a materialisation's rows), unless it already is."""
        if self._view != body:
            self._con.execute(f"CREATE OR REPLACE VIEW cloudtrail AS {body}")
            self._view = body

    def _skip(self, item: SkippedFile) -> None:
        if item.path not in self._skipped:
            self._skipped[item.path] = item
            log.warning("skipping unreadable CloudTrail file %s: %s", item.path, item.reason)
