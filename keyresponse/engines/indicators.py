"""Byte-level scanning of CloudTrail files for indicators (access key ids, source IPs), without JSON parsing.

The DuckDB engine's indicator-driven materialisation uses this in worker processes: one call of
`scan_file` decompresses one file (ISA-L), optionally builds its INDEX (the distinct
`accessKeyId` and `sourceIPAddress` string values it holds, found by splitting on the literal
key names) and cuts out the raw text of the records that mention the requested indicators.

Records are cut between consecutive `{"eventVersion"` markers, so a "segment" is one record or,
when a record does not start with eventVersion (Panther-style test records), that record glued
to the previous one: a segment always holds whole records and is the text of a JSON array's
items. A file whose shape the fast path cannot vouch for (not `{"Records": [...]}` with an
eventVersion-first first record, a value with escapes, a value longer than the look-ahead) is
reported as `FULL`: the engine then loads it whole through DuckDB's JSON reader, as before.

Nothing here imports DuckDB: the functions run in forked workers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from pathlib import Path

from isal import igzip

#: Status of a scanned file.
FAST = "fast"  # indexed; records can be cut out by byte search
FULL = "full"  # load the whole file through DuckDB (odd shape)
SKIP = "skip"  # unreadable (corrupt gzip, unreadable file)

MARKER = b'{"eventVersion"'
_KEY_NAME = b'"accessKeyId"'
_IP_NAME = b'"sourceIPAddress"'
#: Bytes after a key name that must hold `:"value"` (access key ids are at most 128 chars).
_KEY_LOOKAHEAD = 160
_IP_LOOKAHEAD = 96
#: After the key name: a string value without escapes, or any non-string value (ignored).
_VALUE = re.compile(rb'\s*:\s*(?:"([^"\\]*)"|(null|true|false|[-0-9\[{]))')
_PREFIX = re.compile(rb'\s*\{\s*"Records"\s*:\s*\[\s*')
_EMPTY = re.compile(rb'\s*\{\s*"Records"\s*:\s*\[\s*\]\s*\}\s*\Z')
_SPACE = b" \t\r\n"


@dataclass
class FileScan:
    """What a worker returns for one file: never the file itself."""

    path: str
    status: str
    reason: str = ""
    keys: frozenset[str] | None = None  # the index, when it was asked for and status is FAST
    ips: frozenset[str] | None = None
    #: (offset, text) of each segment holding a requested indicator.
    segments: list[tuple[int, str]] = field(default_factory=list)
    raw_bytes: int = 0  # bytes decompressed


def read_file(path: str) -> bytes:
    """The file's JSON bytes (gzip-decompressed with ISA-L for `.gz`)."""
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        return igzip.decompress(raw)
    return raw


def _values(data: bytes, name: bytes, lookahead: int) -> set[str] | None:
    """The distinct string values of `name` keys in `data`; None if one of them is not plain."""
    pieces = data.split(name)
    if len(pieces) == 1:
        return set()
    heads = set(map(itemgetter(slice(0, lookahead)), islice(pieces, 1, None)))
    del pieces
    out: set[str] = set()
    for head in heads:
        match = _VALUE.match(head)
        if match is None:
            # a key name followed by something else: inside a string (harmless) or a value
            # longer than the look-ahead / with escapes (the index could miss it).
            if head.lstrip(_SPACE)[:1] == b":":
                return None
            continue
        if match.group(1) is not None:
            out.add(match.group(1).decode("utf-8"))
    return out


def _tail_start(data: bytes) -> int:
    """The index of the `]` closing the Records array (the file must end with `]}`), or -1."""
    end = len(data)
    while end and data[end - 1] in _SPACE:
        end -= 1
    if not end or data[end - 1] != ord("}"):
        return -1
    end -= 1
    while end and data[end - 1] in _SPACE:
        end -= 1
    if not end or data[end - 1] != ord("]"):
        return -1
    return end - 1


def _strip_segment(data: bytes, start: int, end: int) -> bytes:
    segment = data[start:end].rstrip(_SPACE)
    if segment.endswith(b","):
        segment = segment[:-1].rstrip(_SPACE)
    return segment


def needles(indicators: Iterable[str]) -> list[bytes]:
    """The quoted byte form of each indicator (a JSON string without escapes)."""
    return [b'"' + value.encode("utf-8") + b'"' for value in indicators]


def scan_file(path: str, wanted: list[bytes], index: bool) -> FileScan:
    """Decompress `path`, index it when `index`, and cut out the segments mentioning `wanted`."""
    try:
        data = read_file(path)
    except Exception as exc:
        return FileScan(path, SKIP, f"{type(exc).__name__}: {exc}"[:300])
    scan = FileScan(path, FAST, raw_bytes=len(data))
    first = data.find(MARKER)
    if first < 0:
        if _EMPTY.match(data):
            scan.keys, scan.ips = (frozenset(), frozenset()) if index else (None, None)
            return scan
        return FileScan(path, FULL, raw_bytes=len(data))
    prefix = _PREFIX.match(data)
    tail = _tail_start(data)
    if prefix is None or prefix.end() != first or tail < first:
        return FileScan(path, FULL, raw_bytes=len(data))
    if index:
        keys = _values(data, _KEY_NAME, _KEY_LOOKAHEAD)
        ips = _values(data, _IP_NAME, _IP_LOOKAHEAD) if keys is not None else None
        if keys is None or ips is None:
            return FileScan(path, FULL, raw_bytes=len(data))
        scan.keys, scan.ips = frozenset(keys), frozenset(ips)
    seen: set[int] = set()
    find, rfind = data.find, data.rfind
    try:
        for needle in wanted:
            hit = find(needle, first)
            while 0 <= hit < tail:
                start = rfind(MARKER, 0, hit)
                end = find(MARKER, hit)
                if end < 0 or end > tail:
                    end = tail
                if start not in seen:
                    seen.add(start)
                    scan.segments.append((start, _strip_segment(data, start, end).decode("utf-8")))
                hit = find(needle, end)
    except UnicodeDecodeError:
        return FileScan(path, FULL, raw_bytes=len(data))
    return scan


def scan_task(task: tuple[str, list[bytes], bool]) -> FileScan:
    """`scan_file` with one picklable argument (for `Pool.imap_unordered`)."""
    return scan_file(*task)
