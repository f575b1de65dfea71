"""DuckDB over CloudTrail files: the local stand-in for the Athena table.

Sources: a folder in the real layout (`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz`,
organization trails' `AWSLogs/o-…/<account>/…` too, `.json` accepted), a folder of loose
CloudTrail files (partitions then come from the records), or `s3://bucket/prefix`, whose needed
day folders are downloaded into a local mirror first.

Ingest: each region-day folder ("unit") is parsed once by DuckDB's JSON reader into a Parquet
file under the cache, named by a hash of the folder's file names, sizes and mtimes, so a second
run, a second query or a second process reuses it; a changed folder is re-read. A query loads
only the units of its `start_day`..`end_day` window. The `cloudtrail` view over those Parquet
files has the Athena CloudTrail columns, partition columns `account`, `region` and `timestamp`
('yyyy/MM/dd'), and `eventtime` normalised to `YYYY-MM-DDTHH:MM:SSZ` (records written as
`YYYY-MM-DD HH:MM:SS[.fff]` are rewritten, so string comparisons are time comparisons).

A file DuckDB cannot read (corrupt gzip, not JSON, `Records` not a list) is skipped with a
warning naming it, and listed in `skipped_files` / `logging_gaps`; the rest of its folder loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from keyresponse.engines import QueryEngine
from keyresponse.engines.indicator_table import IndicatorTable, indicator_filters
from keyresponse.engines.projection import (
    EMPTY_SOURCE,
    SkippedFile,
    json_reader,
    quote,
    select_rows,
    unreadable,
)
from keyresponse.engines.trail_files import TrailFiles, Unit
from keyresponse.errors import ConfigurationError
from keyresponse.queries import Query, for_duckdb

log = logging.getLogger(__name__)

# -- the engine ---------------------------------------------------------------------------------


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
        s3_client: Any | None = None,
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
        self._parquet_dir = self.cache_dir / "cloudtrail-parquet"
        self._parquet_dir.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._lock = threading.RLock()
        self._batches: dict[str, Path] = {}  # unit key -> the Parquet file holding its rows
        self._unit_skips: dict[str, list[SkippedFile]] = {}
        self._read_index()
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
            fresh = [u for u in units if u.key not in self._batches]
            if fresh:
                self._ingest(fresh)
            for unit in units:
                for item in self._unit_skips.get(unit.key, []):
                    self._skip(item)
            self._show(self._parquet_view(units))
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

    def sql(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
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

    # -- the view ----------------------------------------------------------------------------
    def _show(self, body: str) -> None:
        """Point the `cloudtrail` view at `body` (a materialisation's rows), unless it already is."""
        if self._view != body:
            self._con.execute(f"CREATE OR REPLACE VIEW cloudtrail AS {body}")
            self._view = body

    def _parquet_view(self, units: Sequence[Unit]) -> str:
        keys = tuple(sorted(u.key for u in units))
        files = tuple(sorted({self._batches[k] for k in keys}))
        if files:
            paths = ", ".join(quote(str(p)) for p in files)
            wanted = ", ".join(quote(k) for k in keys)
            return f"SELECT * EXCLUDE (unit_key) FROM read_parquet([{paths}]) WHERE unit_key IN ({wanted})"
        return select_rows(EMPTY_SOURCE)

    # -- ingest ------------------------------------------------------------------------------
    def _read_index(self) -> None:
        for manifest in self._parquet_dir.glob("*.units.json"):
            target = manifest.with_name(manifest.name.replace(".units.json", ".parquet"))
            if not target.exists():
                continue
            try:
                entries = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            for key, skipped in entries.items():
                self._batches[key] = target
                self._unit_skips[key] = [SkippedFile(**s) for s in skipped]

    def _ingest(self, units: Sequence[Unit]) -> None:
        """Parse the units' files once into one Parquet file (written atomically) plus its manifest."""
        batch = hashlib.sha256("|".join(sorted(u.key for u in units)).encode()).hexdigest()[:32]
        target = self._parquet_dir / f"{batch}.parquet"
        files = [f for u in units for f in u.files]
        skipped: list[SkippedFile] = []
        try:
            self._copy(units, files, target)
        except duckdb.Error:
            bad = unreadable(self._con, files)
            skipped = [SkippedFile(str(f), reason) for f, reason in bad.items()]
            self._copy(units, [f for f in files if f not in bad], target)
        by_file = {s.path: s for s in skipped}
        entries = {u.key: [by_file[str(f)].__dict__ for f in u.files if str(f) in by_file] for u in units}
        manifest = self._parquet_dir / f"{batch}.units.json"
        tmp = manifest.with_name(manifest.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, manifest)
        for unit in units:
            self._batches[unit.key] = target
            self._unit_skips[unit.key] = [SkippedFile(**s) for s in entries[unit.key]]

    def _copy(self, units: Sequence[Unit], files: Sequence[Path], target: Path) -> None:
        unit_keys = {folder: u.key for u in units for folder in sorted(u.folders)}
        select = select_rows(json_reader(files) if files else EMPTY_SOURCE, unit_keys)
        fd, tmp = tempfile.mkstemp(prefix=".ingest-", suffix=".parquet", dir=target.parent)
        os.close(fd)
        try:
            self._con.execute(f"COPY ({select}) TO {quote(tmp)} (FORMAT parquet, COMPRESSION zstd)")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _skip(self, item: SkippedFile) -> None:
        if item.path not in self._skipped:
            self._skipped[item.path] = item
            log.warning("skipping unreadable CloudTrail file %s: %s", item.path, item.reason)
