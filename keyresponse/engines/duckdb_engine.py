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
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy

from keyresponse.engines import QueryEngine
from keyresponse.engines.indicators import FAST, FULL, SKIP, ScanTask, needles, scan_files
from keyresponse.engines.projection import (
    EMPTY_SOURCE,
    SkippedFile,
    json_reader,
    path_partitions,
    quote,
    select_rows,
    select_segments,
    unreadable,
)
from keyresponse.engines.trail_files import TrailFiles, Unit
from keyresponse.engines.trail_files import stamp as file_stamp
from keyresponse.errors import ConfigurationError
from keyresponse.queries import Query, for_duckdb, registry

log = logging.getLogger(__name__)

# -- indicator-driven materialisation -------------------------------------------------------

#: Query params whose values are indicators, and the columns one of which must equal it for a row to be
#: kept. The file index holds every `"accessKeyId"` value in a record, the response's too, so the event
#: that minted a key (`queries/key_creation.sql`) is served by its id like the key's own calls.
INDICATOR_PARAMS: dict[str, tuple[str, ...]] = {
    "access_key_ids": ("useridentity.accesskeyid",
                       "json_extract_scalar(responseelements, '$.accesskey.accesskeyid')",
                       "json_extract_scalar(responseelements, '$.credentials.accesskeyid')"),
    "source_ips": ("sourceipaddress",),
}
#: Matched records are inserted into DuckDB in batches of about this many segments, while the scan
#: goes on (20k gave the same times within the noise of this host, with more statements).
INSERT_BATCH = 50_000
INDEX_VERSION = "1"


@dataclass
class _FileState:
    """What the engine knows about one file: its index and which indicators' records are loaded."""

    stamp: tuple[int, int]  # size, mtime_ns
    status: str = ""  # "" (not scanned), FAST, FULL or SKIP
    reason: str = ""
    keys: frozenset[str] | None = None
    ips: frozenset[str] | None = None
    extracted: set[str] = field(default_factory=set)  # indicators whose records are in the table
    offsets: set[int] = field(default_factory=set)  # segments in the table
    loaded: bool = False  # FULL: the whole file is in the table


def _indicator_usage(sql: str, param: str, columns: tuple[str, ...]) -> tuple[int, int, int]:
    """(inclusion filters, exclusion filters, other uses) of `:param` in a query body."""
    text = re.sub(r"\s+", " ", sql.lower())
    total = len(re.findall(rf":{param}\b", text))
    col = "(?:" + "|".join(re.escape(c).replace(",\\ ", ", ?").replace("\\ ", " ?") for c in columns) + ")"
    exclusion = len(re.findall(rf"\bnot contains\( ?:{param} ?, ?(?:coalesce\( ?{col} ?, ?'' ?\)|{col}) ?\)", text))
    inclusion = len(re.findall(rf"(?<!not )\bcontains\( ?:{param} ?, ?{col} ?\)", text))
    return inclusion, exclusion, total - inclusion - exclusion


@lru_cache(maxsize=256)
def indicator_filters(sql: str) -> tuple[str, ...] | None:
    """The indicator params a query body keeps rows by (`contains(:access_key_ids, useridentity.accesskeyid)`
    or `contains(:source_ips, sourceipaddress)`), or None when its rows cannot be bounded by them
    (no such filter, or an indicator param used some other way): such a query needs every record."""
    found: list[str] = []
    for param, columns in INDICATOR_PARAMS.items():
        inclusion, _, other = _indicator_usage(sql, param, columns)
        if other:
            return None
        if inclusion:
            found.append(param)
    return tuple(found) or None


_warmed = threading.Event()


def _warm_transpiler() -> None:
    """Transpile every query file for DuckDB in a background thread, once per process (sqlglot's
    dialects load on first use: a few hundred ms that the first query would otherwise wait for,
    here spent while the scan workers run)."""
    if _warmed.is_set():
        return
    _warmed.set()

    def warm() -> None:
        for query in registry().values():
            try:
                for_duckdb(query.body)
            except Exception:  # noqa: S112 - the query's own run reports it
                continue

    threading.Thread(target=warm, name="keyresponse-warm-sql", daemon=True).start()


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
        self._index_dir = self.cache_dir / "cloudtrail-index"
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._lock = threading.RLock()
        self._batches: dict[str, Path] = {}  # unit key -> the Parquet file holding its rows
        self._unit_skips: dict[str, list[SkippedFile]] = {}
        self._read_index()
        self._active: list[Unit] = []
        self._skipped: dict[str, SkippedFile] = {}
        self._view: tuple[tuple[str, ...], tuple[Path, ...]] | str | None = None
        self._files: dict[str, _FileState] = {}
        self._indexed_units: set[str] = set()
        self._table = False
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
            self._set_view(units)
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
            self._create_table()
            tasks: list[ScanTask] = []
            requested: dict[str, set[str]] = {}
            sizes: dict[str, int] = {}
            full: list[str] = []
            for unit in units:
                self._load_unit_index(unit)
                for f, stamp in unit.file_stamps():
                    path = str(f)
                    state = self._state(f, stamp)
                    if state.status == SKIP:
                        self._skip(SkippedFile(path, state.reason))
                    elif state.status == FULL:
                        if not state.loaded:
                            full.append(path)
                    elif state.keys is None or state.ips is None:
                        requested[path] = set(wanted)
                        tasks.append((path, needles(sorted(wanted)), True))
                    else:
                        new = {v for v in wanted if v in state.keys or v in state.ips} - state.extracted
                        if new:
                            requested[path] = new
                            tasks.append((path, needles(sorted(new)), False))
                    sizes[path] = state.stamp[0]
            tasks.sort(key=lambda t: -sizes[t[0]])
            touched_units = {u.key for u in units if any(str(f) in requested for f in u.files)}
            rows: list[tuple[str, str]] = []
            for scan in scan_files(tasks, sum(sizes[t[0]] for t in tasks), self.workers, forked=_warm_transpiler):
                state = self._files[scan.path]
                if scan.status == SKIP:
                    state.status, state.reason = SKIP, scan.reason
                    self._skip(SkippedFile(scan.path, scan.reason))
                    continue
                if scan.status == FULL:
                    state.status = FULL
                    full.append(scan.path)
                    continue
                state.status = FAST
                if scan.keys is not None:
                    state.keys, state.ips = scan.keys, scan.ips
                state.extracted |= requested[scan.path]
                for offset, text in scan.segments:
                    if offset not in state.offsets:
                        state.offsets.add(offset)
                        rows.append((text, scan.path))
                if len(rows) >= INSERT_BATCH:
                    full += self._insert_segments(rows)
                    rows = []
            if rows:
                full += self._insert_segments(rows)
            if full:
                self._load_full(sorted(set(full)))
            for unit in units:
                if unit.key in touched_units or unit.key not in self._indexed_units:
                    self._save_unit_index(unit)
            self._use_table()
            self._last_window = (start_day, end_day)
            return units

    def sql(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Raw DuckDB SQL over the `cloudtrail` view of every record of the last window (benchmarks, debugging)."""
        with self._lock:
            if self._view == "table":
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

    # -- the indicator table -----------------------------------------------------------------
    def _create_table(self) -> None:
        if not self._table:
            self._con.execute(f"CREATE TABLE _kr_records AS {select_rows(EMPTY_SOURCE, file_column=True)}")
            self._table = True

    def _use_table(self) -> None:
        if self._view != "table":
            self._con.execute("CREATE OR REPLACE VIEW cloudtrail AS SELECT * EXCLUDE (_file) FROM _kr_records")
            self._view = "table"

    def _state(self, path: Path, stamp: tuple[int, int] | None = None) -> _FileState:
        """The file's state, reset (its rows dropped) when the file changed since it was read (`stamp`:
        its size and mtime as just listed)."""
        key = str(path)
        stamp = stamp or file_stamp(path)
        state = self._files.get(key)
        if state is None or state.stamp != stamp:
            if state is not None and (state.offsets or state.loaded):
                self._con.execute("DELETE FROM _kr_records WHERE _file = $f", {"f": key})
            state = self._files[key] = _FileState(stamp)
        return state

    def _insert_segments(self, rows: list[tuple[str, str]]) -> list[str]:
        """Insert the segments' records; the files with a segment that is not whole records (to load whole)."""
        parts = {f: path_partitions(f) for f in {f for _, f in rows}}
        # a dict of numpy object arrays: DuckDB scans it as it scans a DataFrame, without importing pandas
        frame = {
            "seg": numpy.array([seg for seg, _ in rows], dtype=object),
            "filename": numpy.array([f for _, f in rows], dtype=object),
            "p_account": numpy.array([parts[f][0] for _, f in rows], dtype=object),
            "p_region": numpy.array([parts[f][1] for _, f in rows], dtype=object),
            "p_day": numpy.array([parts[f][2] for _, f in rows], dtype=object),
        }
        del rows[:]
        bad: list[str] = []
        self._con.register("_kr_segments", frame)
        try:
            try:  # nearly always one record per segment: no JSON array to build and unnest
                self._con.execute(f"INSERT INTO _kr_records {select_segments('_kr_segments', single=True)}")
                return []
            except duckdb.Error:
                pass
            bad = [f for (f,) in self._con.execute(
                "SELECT DISTINCT filename FROM _kr_segments WHERE NOT json_valid('[' || seg || ']')"
            ).fetchall()]
            good = "(SELECT * FROM _kr_segments WHERE NOT list_contains($bad, filename))"
            self._con.execute(f"INSERT INTO _kr_records {select_segments(good, single=False)}", {"bad": bad})
        finally:
            self._con.unregister("_kr_segments")
        for path in bad:  # cut at a nested {"eventVersion" ...: load it whole instead
            self._con.execute("DELETE FROM _kr_records WHERE _file = $f", {"f": path})
            state = self._files[path]
            state.status, state.offsets = FULL, set()
        return bad

    def _load_full(self, paths: Sequence[str]) -> None:
        """Load whole files through DuckDB's JSON reader (odd shapes); unreadable ones are skipped."""
        files = [Path(p) for p in paths]
        bad = {}
        try:
            self._insert_files(files)
        except duckdb.Error:
            bad = unreadable(self._con, files)
            self._insert_files([f for f in files if f not in bad])
        for path in files:
            state = self._files[str(path)]
            if path in bad:
                state.status, state.reason = SKIP, bad[path]
                self._skip(SkippedFile(str(path), bad[path]))
            else:
                state.status, state.loaded = FULL, True

    def _insert_files(self, files: Sequence[Path]) -> None:
        if files:
            self._con.execute(f"INSERT INTO _kr_records {select_rows(json_reader(files), file_column=True)}")

    # -- the persisted index -----------------------------------------------------------------
    def _index_path(self, unit: Unit) -> Path:
        return self._index_dir / f"{unit.key}.json"

    def _load_unit_index(self, unit: Unit) -> None:
        """Take the unit's files' indexes from the cache when this process has not scanned them."""
        if unit.key in self._indexed_units:
            return
        try:
            saved = json.loads(self._index_path(unit).read_text())
        except (OSError, ValueError):
            return
        if saved.get("version") != INDEX_VERSION:
            return
        stamps = {str(f): stamp for f, stamp in unit.file_stamps()}  # as listed: no second stat
        for path, entry in saved.get("files", {}).items():
            state = self._state(Path(path), stamps.get(path))
            if state.status:
                continue
            state.status, state.reason = entry["status"], entry.get("reason", "")
            if state.status == FAST:
                state.keys, state.ips = frozenset(entry["keys"]), frozenset(entry["ips"])
        self._indexed_units.add(unit.key)

    def _save_unit_index(self, unit: Unit) -> None:
        entries: dict[str, Any] = {}
        for f in unit.files:
            state = self._files.get(str(f))
            if state is None or not state.status or (state.status == FAST and state.keys is None):
                return
            entry: dict[str, Any] = {"status": state.status}
            if state.status == FAST:
                entry["keys"], entry["ips"] = sorted(state.keys or ()), sorted(state.ips or ())
            if state.reason:
                entry["reason"] = state.reason
            entries[str(f)] = entry
        self._index_dir.mkdir(parents=True, exist_ok=True)
        target = self._index_path(unit)
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": INDEX_VERSION, "files": entries}))
        os.replace(tmp, target)
        self._indexed_units.add(unit.key)

    # -- the view ----------------------------------------------------------------------------
    def _set_view(self, units: Sequence[Unit]) -> None:
        keys = tuple(sorted(u.key for u in units))
        files = tuple(sorted({self._batches[k] for k in keys}))
        if self._view == (keys, files):
            return
        if files:
            paths = ", ".join(quote(str(p)) for p in files)
            wanted = ", ".join(quote(k) for k in keys)
            body = f"SELECT * EXCLUDE (unit_key) FROM read_parquet([{paths}]) WHERE unit_key IN ({wanted})"
        else:
            body = select_rows(EMPTY_SOURCE)
        self._con.execute(f"CREATE OR REPLACE VIEW cloudtrail AS {body}")
        self._view = (keys, files)

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
