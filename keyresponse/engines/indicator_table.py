"""The indicator table: only the records that mention the access key ids and source IPs asked for.

A query filtered by indicators (`indicator_filters`) needs only the records that mention them.
The first time, every file of the window is decompressed once by the byte scanner
(`indicators.scan_files`, in worker processes) to build its INDEX (the access key ids and source
IPs it holds) and to cut out the records that mention the indicators; DuckDB parses only those
(`projection.select_segments`) into the `_kr_records` table, which the `cloudtrail` view then
shows. Later pivots decompress only the files whose index names a new indicator. A file the
scanner cannot vouch for is loaded whole through DuckDB's JSON reader, an unreadable one skipped.
Each unit's file indexes are saved under the cache (`cloudtrail-index/<unit key>.json`), so a
second process scans only what changed.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy

from keyresponse.engines.indicators import FAST, FULL, SKIP, ScanTask, needles, scan_files
from keyresponse.engines.projection import (
    EMPTY_SOURCE,
    SkippedFile,
    json_reader,
    path_partitions,
    select_rows,
    select_segments,
    unreadable,
)
from keyresponse.engines.trail_files import Unit
from keyresponse.engines.trail_files import stamp as file_stamp
from keyresponse.queries import for_duckdb, registry

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
#: Bump when the saved file indexes' format changes, so old ones are not reused.
INDEX_VERSION = "1"


@dataclass
class _FileState:
    """What the indicator table knows about one file: its index and which indicators' records are loaded."""

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


class IndicatorTable:
    """The `_kr_records` table of one DuckDB connection, and what is known of each file: its index,
    which indicators' records are in the table. Its callers hold the engine's lock."""

    #: The body of the `cloudtrail` view over the table.
    VIEW = "SELECT * EXCLUDE (_file) FROM _kr_records"

    def __init__(self, con: duckdb.DuckDBPyConnection, index_dir: Path) -> None:
        self._con = con
        self._index_dir = index_dir
        self._files: dict[str, _FileState] = {}
        self._indexed_units: set[str] = set()
        self._created = False

    def ensure(self, units: Sequence[Unit], wanted: Collection[str], workers: int) -> list[SkippedFile]:
        """Make the table hold every record of the units' files that mentions one of the `wanted`
        indicators (and usually a few more), decompressing only the files whose index holds them (all
        files the first time, in `workers` processes); the units' files that could not be read."""
        self._create()
        skipped: list[SkippedFile] = []
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
                    skipped.append(SkippedFile(path, state.reason))
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
        for scan in scan_files(tasks, sum(sizes[t[0]] for t in tasks), workers, forked=_warm_transpiler):
            state = self._files[scan.path]
            if scan.status == SKIP:
                state.status, state.reason = SKIP, scan.reason
                skipped.append(SkippedFile(scan.path, scan.reason))
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
            skipped += self._load_full(sorted(set(full)))
        for unit in units:
            if unit.key in touched_units or unit.key not in self._indexed_units:
                self._save_unit_index(unit)
        return skipped

    def _create(self) -> None:
        if not self._created:
            self._con.execute(f"CREATE TABLE _kr_records AS {select_rows(EMPTY_SOURCE, file_column=True)}")
            self._created = True

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

    def _load_full(self, paths: Sequence[str]) -> list[SkippedFile]:
        """Load whole files through DuckDB's JSON reader (odd shapes); the unreadable ones, skipped."""
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
            else:
                state.status, state.loaded = FULL, True
        return [SkippedFile(str(path), bad[path]) for path in files if path in bad]

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

