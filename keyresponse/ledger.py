"""The incident ledger: every change keyresponse applied, in order, with its before-state.

One JSON object per line in `<settings.home>/incidents/<incident_id>/ledger.jsonl`. An entry is
either an `apply` (a change an action made) or an `undo` (naming the `apply` it reversed), so
replaying the ledger in reverse — `keyresponse undo INCIDENT_ID` — is itself idempotent: an
`apply` that already has its `undo` is skipped on the next run.

Lines are appended with one `write` on a file opened in append mode and flushed with `fsync`, so
a crash leaves at most one torn last line: a last line without its newline. `entries()` reads the
ledger without it and reports it (`Ledger.torn`, and a warning in the log), so `undo` still works
after a crash mid-append; the next `append` first moves the torn bytes to `ledger.torn-<time>`
beside the ledger (evidence of the crash) so that only ever the last line can be torn. Any other
line that does not parse — one that ends with its newline, or one in the middle — is corruption
(a hand edit), never a crash, and raises `LedgerCorrupt`: nothing is silently dropped.

Before each write to AWS, an action records its intent in `intents.jsonl` beside the ledger (the
action, the target, the before-state). A process killed after AWS made the change but before the
ledger line was written leaves an intent with no entry after it; the next run of that step finds
the change done and records it then, from the intent (`unfinished`), so the ledger holds each
change exactly once however the run ended.

Beside them, `manifest-head.jsonl` is the append-only record of the evidence manifest's chain head
(`keyresponse/evidence.py`): one line per evidence object stored, `{"seq", "head", "name", "at"}`,
written (fsynced) right after the manifest. The ledger's own entries are unchanged by it.
`keyresponse verify-evidence` and `keyresponse report` compare the manifest's chain with it, so a
manifest re-hashed, rolled back or extended by hand disagrees with what was recorded as it was written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from keyresponse.errors import InputError, KeyResponseError
from keyresponse.settings import get_settings

log = logging.getLogger("keyresponse.ledger")

#: Incident ids become folder and S3 key names: keep them boring.
INCIDENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_incident_id(value: str) -> str:
    """Return `value` if it can name an incident (letters, digits, `.`, `_`, `-`); raise `InputError`."""
    if not INCIDENT_ID_RE.fullmatch(value):
        raise InputError(f"{value!r} is not an incident id: use letters, digits, '.', '_' or '-' (max 128)")
    return value


def utc_now() -> str:
    """Now, as ISO-8601 UTC with a `Z` and microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Intent(TypedDict):
    """One line of the intents file (`Ledger.intend`), as JSON."""

    action: str
    target: dict[str, JsonValue]
    before: dict[str, JsonValue]
    at: str


class LedgerEntry(BaseModel):
    """One applied (or undone) change."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    incident_id: str
    kind: Literal["apply", "undo"] = "apply"
    action: str
    target: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    applied_at: str = Field(default_factory=utc_now)
    flow_run_id: str | None = None
    dry_run: bool = False
    account_id: str | None = None
    undoes: str | None = Field(default=None, description="For an `undo`, the entry_id of the `apply` it reversed.")
    note: str | None = Field(default=None, description="How the entry was recorded, when not as usual.")


class LedgerCorrupt(KeyResponseError):
    """A ledger line that is not a valid entry and is no torn last line (a hand edit, a damaged file)."""


class TornLine(BaseModel):
    """The torn last line of a ledger (a crash mid-append): left out of the entries, and reported."""

    model_config = ConfigDict(frozen=True)

    path: str
    line: int
    size: int = Field(description="How many bytes of the line were written.")
    text: str = Field(description="Its first 200 characters.")

    def describe(self) -> str:
        return (f"{self.path}:{self.line} is a torn last line ({self.size} bytes, no newline: a crash while the "
                "entry was being written); it is left out, and the change it was recording may have been "
                "made without its record: check the target in AWS")


def in_effect(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """The changes of `entries` that no `undo` entry has reversed: the `apply` entries that changed AWS
    (not dry runs), in the order given. The one place that says what "undone" means."""
    entries = list(entries)
    undone = {entry.undoes for entry in entries if entry.kind == "undo"}
    return [entry for entry in entries if entry.kind == "apply" and not entry.dry_run and entry.entry_id not in undone]


class Ledger:
    """The append-only ledger of one incident."""

    def __init__(self, incident_id: str, home: Path | None = None) -> None:
        self.incident_id = validate_incident_id(incident_id)
        self.folder = (home or get_settings().home) / "incidents" / incident_id
        self.path = self.folder / "ledger.jsonl"
        self.intents = self.folder / "intents.jsonl"
        #: The torn last line the latest `entries()` left out, if there was one.
        self.torn: TornLine | None = None
        self.manifest_heads = self.folder / "manifest-head.jsonl"

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Write `entry` as one line and make it durable before returning.

        Under an exclusive lock on the file (the receiver's first response and a run may append to one
        ledger), so a torn last line is always a crashed writer's and never a live one's."""
        if entry.incident_id != self.incident_id:
            raise InputError(f"entry of incident {entry.incident_id} cannot go to the ledger of {self.incident_id}")
        self.folder.mkdir(parents=True, exist_ok=True)
        line = (entry.model_dump_json() + "\n").encode("utf-8")
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._end_torn_line(handle)
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry

    def intend(self, action: str, target: Mapping[str, object], before: Mapping[str, object]) -> None:
        """Record, durably, that `action` is about to change `target` (from `before`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"action": action, "target": target, "before": before, "at": utc_now()},
                          sort_keys=True, default=str) + "\n"
        with open(self.intents, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def unfinished(self, action: str, target: Mapping[str, object]) -> Intent | None:
        """The latest intent of `action` on `target` that no ledger entry followed (the process ended
        between the write and its ledger line), or None."""
        if not self.intents.exists():
            return None
        wanted = json.dumps(target, sort_keys=True, default=str)
        latest: Intent | None = None
        for line in self.intents.read_text(encoding="utf-8").splitlines():
            try:
                intent = json.loads(line)
            except ValueError:  # a torn last line: that intent's write never started
                continue
            if intent.get("action") == action and json.dumps(intent.get("target"), sort_keys=True, default=str) == wanted:
                latest = intent
        if latest is None:
            return None
        for entry in self.entries():
            if (entry.kind == "apply" and entry.action == action and entry.applied_at >= latest["at"]
                    and json.dumps(entry.target, sort_keys=True, default=str) == wanted):
                return None
        return latest

    def _end_torn_line(self, handle: BinaryIO) -> None:
        """Before appending after a crash: a last line without its newline is ended with one when it is a
        whole entry, and otherwise moved to `ledger.torn-<time>` and cut off, so that it never becomes a
        middle line."""
        handle.seek(0)
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        tail = data[start:]
        if _entry(tail.decode("utf-8", errors="replace")) is None:
            kept = self.folder / f"ledger.torn-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
            with open(kept, "wb") as out:
                out.write(tail)
                out.flush()
                os.fsync(out.fileno())
            handle.truncate(start)
            log.warning("%s: moved its torn last line (%d bytes) to %s before appending", self.path, len(tail), kept)
        else:
            handle.write(b"\n")
        handle.flush()
        os.fsync(handle.fileno())

    def entries(self) -> list[LedgerEntry]:
        """Every entry, oldest first. A torn last line is left out and reported (`torn`, and the log);
        any other line that does not parse raises `LedgerCorrupt`."""
        self.torn = None
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")  # the last item is what follows the last newline: "" unless torn
        found: list[LedgerEntry] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                found.append(LedgerEntry.model_validate(json.loads(line)))
            except ValueError as exc:
                if number < len(lines):  # a whole line, newline and all: no crash writes that
                    raise LedgerCorrupt(f"{self.path}:{number} is not a ledger entry: {exc}") from exc
                self.torn = TornLine(path=str(self.path), line=number, size=len(line.encode()), text=line[:200])
                log.warning("%s", self.torn.describe())
        return found

    def applied(self) -> list[LedgerEntry]:
        """The `apply` entries, oldest first."""
        return [entry for entry in self.entries() if entry.kind == "apply" and not entry.dry_run]

    def to_undo(self) -> list[LedgerEntry]:
        """The `apply` entries not yet undone, newest first: the order an undo replays them in."""
        return list(reversed(in_effect(self.entries())))

    def undone(self) -> list[tuple[LedgerEntry, LedgerEntry]]:
        """The `apply` entries an earlier undo reversed, each with its `undo` entry, oldest first."""
        entries = self.entries()
        undos = {entry.undoes: entry for entry in entries if entry.kind == "undo" and entry.undoes}
        return [(e, undos[e.entry_id]) for e in entries
                if e.kind == "apply" and not e.dry_run and e.entry_id in undos]

    def record_manifest_head(self, seq: int, head: str, name: str) -> None:
        """Append, durably, that the evidence manifest's chain now ends at entry `seq` with hash `head`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"seq": seq, "head": head, "name": name, "at": utc_now()}, sort_keys=True) + "\n"
        with open(self.manifest_heads, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def manifest_heads_recorded(self) -> dict[int, str]:
        """The recorded chain heads by entry number; the last line of a number wins (a put that died
        between its manifest and its record has its number recorded again by the next put).
        Raises `LedgerCorrupt` on a line that does not parse, but for a torn last line."""
        if not self.manifest_heads.exists():
            return {}
        lines = self.manifest_heads.read_text(encoding="utf-8").splitlines()
        heads: dict[int, str] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                heads[int(record["seq"])] = str(record["head"])
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines) and not line.rstrip().endswith("}"):
                    continue  # a torn last line: that put never finished
                raise LedgerCorrupt(f"{self.manifest_heads}:{number} is not a manifest head record: {exc}") from exc
        return heads

    def read_bytes(self) -> bytes:
        return self.path.read_bytes() if self.path.exists() else b""


def _entry(line: str) -> LedgerEntry | None:
    """The entry a line holds, or None when it holds none."""
    try:
        return LedgerEntry.model_validate(json.loads(line))
    except ValueError:
        return None
