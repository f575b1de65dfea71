"""The Parquet cache: every record of a window, for the queries the indicator table cannot serve.

Each unit (a region-day folder, `trail_files.Unit`) is parsed once by DuckDB's JSON reader
(`projection.select_rows`) into a Parquet file under the cache (`cloudtrail-parquet/`), named by a
hash of its units' keys (the folders' file names, sizes and mtimes, and `SCHEMA_VERSION`), so a
second run, a second query or a second process reuses it; a changed folder is re-read. A manifest
beside each Parquet file maps its units to the files that could not be read. The `cloudtrail`
view of a window reads only its units' rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from keyresponse.engines.projection import (
    EMPTY_SOURCE,
    SkippedFile,
    json_reader,
    quote,
    select_rows,
    unreadable,
)
from keyresponse.engines.trail_files import Unit


class ParquetCache:
    """The Parquet files of one cache folder, read through one DuckDB connection. Its callers hold the
    engine's lock."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path) -> None:
        self._con = con
        self._parquet_dir = folder
        self._parquet_dir.mkdir(parents=True, exist_ok=True)
        self._batches: dict[str, Path] = {}  # unit key -> the Parquet file holding its rows
        self._unit_skips: dict[str, list[SkippedFile]] = {}
        self._read_index()

    def load(self, units: Sequence[Unit]) -> list[SkippedFile]:
        """Ingest the units that are not cached yet; the units' files that could not be read."""
        fresh = [u for u in units if u.key not in self._batches]
        if fresh:
            self._ingest(fresh)
        return [item for unit in units for item in self._unit_skips.get(unit.key, [])]

    def view(self, units: Sequence[Unit]) -> str:
        """The body of the `cloudtrail` view over the (loaded) units' rows."""
        keys = tuple(sorted(u.key for u in units))
        files = tuple(sorted({self._batches[k] for k in keys}))
        if files:
            paths = ", ".join(quote(str(p)) for p in files)
            wanted = ", ".join(quote(k) for k in keys)
            return f"SELECT * EXCLUDE (unit_key) FROM read_parquet([{paths}]) WHERE unit_key IN ({wanted})"
        return select_rows(EMPTY_SOURCE)

    def _read_index(self) -> None:
        """Take in the manifests already in the folder (earlier runs, other processes)."""
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
