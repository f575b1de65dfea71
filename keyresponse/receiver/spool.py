"""The durable spool of accepted alerts: one JSON file per alert, written before anything else is done
with it, and which incident each key (or user) belongs to while that incident is open."""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field

from keyresponse.alerts import Alert, idempotency_key
from keyresponse.files import write_atomic
from keyresponse.receiver import log


class Replaced(BaseModel):
    """The incident whose run had ended when an alert about its key opened a new one."""

    incident_id: str
    flow_run_id: str | None
    run_state: str


class SpoolRecord(BaseModel):
    """One accepted alert, as written to `<spool>/alerts/<name>.json` (one file per alert, its latest incident)."""

    alert: Alert
    incident_id: str
    idempotency_key: str
    received_at: datetime
    generation: int = Field(default=1, ge=0, description="How many incidents this alert has opened: 1 for "
                            "its first, one more each time the one it belonged to ended; 0 if only attached.")
    replaced: Replaced | None = Field(default=None, description="The ended incident this one replaced.")
    duplicate_of: str | None = None
    incident_record: str | None = Field(default=None, description="Spool file of the alert that opened the incident.")
    flow_run_id: str | None = None
    ui_url: str | None = None
    launch_error: str | None = None
    notified: list[str] = Field(default_factory=list, description="What was notified about this alert's "
                                "incident (`launch_failed`, `stuck`): each is sent once.")


class OpenIncident(BaseModel):
    """`<spool>/open/<subject hash>.json`: this key (or user) belongs to this incident while it is open."""

    subject: str
    incident_id: str
    alert_file: str
    opened_at: datetime


_M = TypeVar("_M", bound=BaseModel)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def settled(record: SpoolRecord) -> bool:
    """A record the receiver has nothing more to do for: its incident has a flow run, or it was attached to
    another incident. Only the others (waiting for a launch) stay in `<spool>/alerts/`."""
    return record.flow_run_id is not None or record.duplicate_of is not None


class AlertSpool:
    """Accepted alerts, one JSON file per alert id, and which incident each key belongs to while open.

    `<spool>/alerts/` holds only the alerts still waiting for a flow run, so the relaunch pass reads no
    more than those; a settled record (`settled`) is written to `<spool>/archive/` under the same name
    instead. Lookups by alert id (`find`, a redelivery) and by name (`opener`, the alert that opened an
    incident) read the waiting record first, then the archived one, so the duplicate detection and the
    incident generations see every alert as before. The archive is never listed; its files can be
    deleted by hand once no sender would deliver them again (EventBridge retries for 24 h, GitHub lets a
    person redeliver for 3 days): a redelivery after that opens a new incident.

    One bad file never stops the others: a file that cannot be read as what it should be (cut short,
    not JSON, another schema, a folder) is moved to `<spool>/quarantine/` with an error in the log, and
    the spool goes on as if it were not there; the temporary files of `write_atomic` (`.tmp-*`) are never
    read as records, and `remove_temp_files` deletes those a process left behind when it died mid-write
    (the receiver calls it at start: no other process writes files in the spool, the flow and
    `keyresponse release` only delete them).
    """

    def __init__(self, folder: Path, *, incident_open_seconds: int = 72 * 3600) -> None:
        self.folder = Path(folder)
        self.alerts_dir = self.folder / "alerts"
        self.open_dir = self.folder / "open"
        self.archive_dir = self.folder / "archive"
        self.quarantine_dir = self.folder / "quarantine"
        self.incident_open = timedelta(seconds=incident_open_seconds)
        self.quarantined = 0  # files this instance moved to quarantine

    def record_path(self, alert: Alert) -> Path:
        return self.path_for(alert.source, alert.alert_id)

    def path_for(self, source: str, alert_id: str) -> Path:
        return self.alerts_dir / f"{source}-{_digest(idempotency_key(source, alert_id))}.json"

    def load(self, path: Path) -> SpoolRecord:
        """The record at `path`; raises when it is missing or unreadable (see `read`)."""
        return SpoolRecord.model_validate_json(path.read_bytes())

    def read(self, path: Path) -> SpoolRecord | None:
        """The record at `path`; None when there is none, or when it is unreadable (then quarantined)."""
        return self._read(path, SpoolRecord)

    def _read(self, path: Path, model: type[_M]) -> _M | None:
        try:
            return model.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            self.quarantine(path, f"{type(exc).__name__}: " + " ".join(str(exc).split("\n")[:2]))
            return None

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move an unreadable spool file to `<spool>/quarantine/` (its name kept, with where it was and when)."""
        destination = self.quarantine_dir / f"{path.parent.name}-{path.name}.{time.time_ns()}"
        try:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
        except FileNotFoundError:  # another reader moved it a moment ago
            return None
        except OSError as exc:
            log.error("spool file %s is unreadable (%s) and could not be moved to %s: %s; it is skipped",
                      path, reason[:300], self.quarantine_dir, exc)
            return None
        self.quarantined += 1
        log.error("spool file %s is unreadable (%s): moved to %s; the spool goes on without it",
                  path, reason[:300], destination)
        return destination

    def _files(self, folder: Path) -> list[Path]:
        """The spool files of `folder`, never `write_atomic`'s temporary files (`.tmp-*.json`)."""
        if not folder.exists():
            return []
        return [p for p in folder.glob("*.json") if not p.name.startswith(".")]

    def remove_temp_files(self) -> int:
        """Delete the temporary files a writer that died mid-write left behind; how many there were."""
        removed = 0
        for folder in (self.alerts_dir, self.open_dir, self.archive_dir):
            for path in folder.glob(".tmp-*") if folder.exists() else []:
                with suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if removed:
            log.warning("removed %d temporary file(s) a process left in the spool %s when it stopped mid-write",
                        removed, self.folder)
        return removed

    def find(self, alert: Alert) -> SpoolRecord | None:
        return self.find_id(alert.source, alert.alert_id)

    def find_id(self, source: str, alert_id: str) -> SpoolRecord | None:
        return self._current(self.path_for(source, alert_id))

    def _current(self, live: Path) -> SpoolRecord | None:
        """The record of `<spool>/alerts/<name>`: the waiting one, or the archived one when it is newer
        (its generation, or the same one settled: a save whose removal of the waiting copy was cut short)."""
        record = self.read(live)
        if record is not None and settled(record):
            return record  # an older receiver's spool, not archived yet
        archived = self.read(self.archive_dir / live.name)
        if archived is None or (record is not None and record.generation > archived.generation):
            return record
        return archived

    def save(self, record: SpoolRecord) -> Path:
        """Write `record` (a settled one to the archive); returns its path in `<spool>/alerts/`."""
        path = self.record_path(record.alert)
        data = record.model_dump_json(indent=2).encode()
        if not settled(record):
            write_atomic(path, data)
            return path
        write_atomic(self.archive_dir / path.name, data)
        with suppress(FileNotFoundError):
            path.unlink()
        return path

    def waiting_files(self) -> list[Path]:
        """The files of `<spool>/alerts/` (records waiting for a launch, and those an older receiver left)."""
        return self._files(self.alerts_dir)

    def archive_if_settled(self, path: Path) -> bool:
        """Move the record at `path` (in `<spool>/alerts/`) to the archive if it is settled."""
        record = self.read(path)
        if record is None or not settled(record):
            return False
        archived = self.read(self.archive_dir / path.name)
        if archived is not None and archived.generation > record.generation:
            with suppress(FileNotFoundError):
                path.unlink()
            return True
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        with suppress(FileNotFoundError):  # not fsynced: a move lost in a crash is made again at the next start
            os.replace(path, self.archive_dir / path.name)
        return True

    def _open_path(self, subject: str) -> Path:
        return self.open_dir / f"{_digest(subject)}.json"

    def open_incident(self, subject: str, now: datetime) -> OpenIncident | None:
        path = self._open_path(subject)
        entry = self._read(path, OpenIncident)
        if entry is None:
            return None
        if now - entry.opened_at > self.incident_open:
            with suppress(FileNotFoundError):
                path.unlink()
            return None
        return entry

    def claim(self, subject: str, incident_id: str, alert_file: Path, now: datetime) -> OpenIncident:
        """Map `subject` to `incident_id` unless another incident holds it; returns the holder."""
        entry = OpenIncident(subject=subject, incident_id=incident_id, alert_file=alert_file.name, opened_at=now)
        while not write_atomic(self._open_path(subject), entry.model_dump_json().encode(), exclusive=True):
            holder = self.open_incident(subject, now)
            if holder is not None:
                return holder
        return entry

    def opener(self, holder: OpenIncident) -> SpoolRecord | None:
        """The spooled alert that opened `holder` (where its flow run id is), None when it is gone."""
        return self.named(holder.alert_file)

    def named(self, name: str) -> SpoolRecord | None:
        """The record whose file in `<spool>/alerts/` is (or was, before it was archived) `name`."""
        return self._current(self.alerts_dir / Path(name).name)

    def open_incidents(self, now: datetime) -> list[OpenIncident]:
        """Every key (or user) attached to an incident that is open, oldest first."""
        found: list[OpenIncident] = []
        for path in self._files(self.open_dir):
            listed = self._read(path, OpenIncident)
            entry = self.open_incident(listed.subject, now) if listed is not None else None
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: (e.opened_at, e.subject))

    def release(self, subject: str, now: datetime) -> OpenIncident | None:
        """Free `subject` by hand, whatever holds it (the run is left alone); returns what held it."""
        entry = self.open_incident(subject, now)
        if entry is not None:
            with suppress(FileNotFoundError):
                self._open_path(subject).unlink()
        return entry

    def close_incident(self, incident_id: str) -> int:
        """Forget which keys belong to `incident_id` (call when it ends); returns how many were mapped."""
        closed = 0
        for path in self._files(self.open_dir):
            entry = self._read(path, OpenIncident)
            if entry is not None and entry.incident_id == incident_id:
                with suppress(FileNotFoundError):
                    path.unlink()
                    closed += 1
        return closed

    def pending(self) -> list[SpoolRecord]:
        """Accepted alerts that opened an incident but have no flow run yet, oldest first (reads only
        `<spool>/alerts/`: the waiting records, and any settled one not archived yet)."""
        records = [r for r in map(self.read, self._files(self.alerts_dir)) if r is not None]
        return sorted((r for r in records if not settled(r)), key=lambda r: r.received_at)
