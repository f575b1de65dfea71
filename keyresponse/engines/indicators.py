"""Byte-level scanning of CloudTrail files for indicators (access key ids, source IPs), without JSON parsing.

The DuckDB engine's indicator-driven materialisation runs `scan_files`: `scan_file` over many files,
in forked worker processes when that pays. One call of `scan_file` decompresses one file
(libdeflate or ISA-L), optionally builds its INDEX (the distinct `accessKeyId` and
`sourceIPAddress` string values it holds) and cuts out the raw text of the records that mention
the requested indicators.

The index kernel is the C extension `_scan` (built by `pip install`, about 0.7 ms per 2 MB file)
when it is there, else the same computation in whole-array numpy operations (about 5 ms per file);
`KERNEL` says which one runs. Both give the same result (tests compare them). `_scan` also
decompresses with the system's libdeflate when there is one (`DECOMPRESSOR`).

Records are cut between consecutive occurrences of the first record's first key (`{"eventVersion"`
in trail files, `{"awsRegion"` in key-sorted exports), so a "segment" is one record or, when a
record starts with another key, that record glued to the previous one: the text of one or more
JSON array items. A segment cut at a nested occurrence is not valid JSON; the engine then loads
that file whole. A file whose shape the fast path cannot vouch for (not `{"Records": [{"...`, a
value with escapes or odd spacing) is reported as `FULL`: the engine loads it whole through
DuckDB's JSON reader, as before.

Nothing here imports DuckDB: the functions run in forked workers.
"""

from __future__ import annotations

import gzip
import multiprocessing
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from isal import igzip, isal_zlib
from numpy.lib.stride_tricks import sliding_window_view

_Heads = tuple[set[bytes], list[int], set[bytes], list[int]]
#: The C half (types in `_scan.pyi`), or None where it is not built.
_heads_c: Callable[[bytes, bytes, int, bytes, int, tuple[bytes, ...]], _Heads] | None
_gunzip: Callable[[bytes], bytes | None] | None
_segments_c: Callable[[bytes, list[int], int, bytes], list[tuple[int, str]]] | None
try:
    from keyresponse.engines._scan import gunzip as _gunzip
    from keyresponse.engines._scan import heads as _heads_c
    from keyresponse.engines._scan import segments as _segments_c
except ImportError:  # not built (no C compiler at install time): numpy and ISA-L
    _heads_c = _gunzip = _segments_c = None

#: The index kernel in use, and the segment cutter: "c" or "numpy" (Python) (set it to "numpy" to
#: compare; forked workers inherit it).
KERNEL = "numpy" if _heads_c is None else "c"
#: The gzip decompressor for single-member files: "libdeflate" when the C half is built and the
#: system has libdeflate (Debian's libdeflate0), else "isal" (settable, as KERNEL).
DECOMPRESSOR = "libdeflate" if _gunzip is not None and _gunzip(gzip.compress(b"{}")) == b"{}" else "isal"
#: `igzip.decompress` (every member, or raise) as typed: `isal.igzip` carries no annotations.
_decompress_members: Callable[[bytes], bytes] = igzip.decompress

#: Status of a scanned file.
FAST = "fast"  # indexed; records can be cut out by byte search
FULL = "full"  # load the whole file through DuckDB (odd shape)
SKIP = "skip"  # unreadable (corrupt gzip, unreadable file)

_KEY_NAME = b'"accessKeyId"'
_IP_NAME = b'"sourceIPAddress"'
#: Bytes kept after a key name: enough for `:"` + a 20-character access key id + `"`; longer
#: values are read in full by a second, targeted search.
_KEY_LOOKAHEAD = 24
_IP_LOOKAHEAD = 48
#: The value after a key name: a JSON string without escapes, or any other JSON value (ignored).
_VALUE = re.compile(rb'(?: ?):(?: ?)(?:"([^"\\]*)"|(null|true|false|[-0-9\[{]))')
_OPEN = re.compile(rb'(?: ?):(?: ?)"')
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
    """The file's JSON bytes (gzip-decompressed for `.gz`).

    A file of exactly one gzip member (what CloudTrail writes) goes to libdeflate (`_scan.gunzip`,
    about twice as fast as ISA-L here) or else to one ISA-L decompressor object (about 25% faster
    than `igzip.decompress`). Anything else - several members, bytes after the member, a member cut
    short - goes to `igzip.decompress`, which reads every member or raises."""
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        if DECOMPRESSOR == "libdeflate" and _gunzip is not None:
            whole = _gunzip(raw)
            if whole is not None:
                return whole
        member = isal_zlib.decompressobj(31)  # 31: a gzip header and trailer (CRC and size checked)
        try:
            data = member.decompress(raw)
        except isal_zlib.error:  # type: ignore[misc]  # isal's stub declares `error` an instance, not the class
            data = b""
        if member.eof and not member.unused_data:
            return data
        return _decompress_members(raw)
    return raw


def _heads(data: bytes, wanted: tuple[bytes, ...]) -> tuple[set[bytes], list[int], set[bytes], list[int]] | None:
    """The index kernel (see `_heads_numpy` for what it computes): C when built, else numpy."""
    if KERNEL == "c" and _heads_c is not None:
        return _heads_c(data, _KEY_NAME, _KEY_LOOKAHEAD, _IP_NAME, _IP_LOOKAHEAD, wanted)
    return _heads_numpy(data, wanted)


def _heads_numpy(
    data: bytes, wanted: tuple[bytes, ...]
) -> tuple[set[bytes], list[int], set[bytes], list[int]] | None:
    """The distinct heads (the `_KEY_LOOKAHEAD` / `_IP_LOOKAHEAD` bytes after each `"accessKeyId"` /
    `"sourceIPAddress"`) and the positions of the heads that start with a `wanted` prefix, found
    with whole-array numpy operations (one pass for the anchor byte `I` of both names, then work
    per candidate only); None when a hash collision makes the result uncertain."""
    arr = np.frombuffer(data, np.uint8)
    size = len(arr)
    edge = size - 128  # names starting after this are read by hand (the window would run off the end)
    out: list[Any] = []
    if edge <= 0:
        cand = np.zeros(0, np.int64)
    else:
        window = sliding_window_view(arr, 64)  # row i: the 64 bytes from i (a view, no copy)
        cand = np.flatnonzero(arr == _I)
        cand = cand[(cand >= 16) & (cand < size - 2)]  # a FAST file's first name is past byte 16
        after = arr[cand + 1]
    for letter, offset, name, width in ((_d, 10, _KEY_NAME, _KEY_LOOKAHEAD), (_P, 7, _IP_NAME, _IP_LOOKAHEAD)):
        heads: set[bytes] = set()
        hits: list[int] = []
        if len(cand):
            starts = cand[after == letter] - offset
            starts = starts[starts <= edge]
            starts = starts[(arr[starts] == _QUOTE) & (arr[starts + len(name) - 1] == _QUOTE)]
            starts = starts[(window[starts, :len(name)] == np.frombuffer(name, np.uint8)).all(axis=1)]
            values = starts + len(name)
            rows = window[values, :width]
            if len(rows):
                words = np.ascontiguousarray(rows).view(np.uint64)
                digest = words[:, 0].copy()
                for j in range(1, words.shape[1]):
                    digest = digest * np.uint64(1_000_003) ^ words[:, j]
                _, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
                if not (rows == rows[first][inverse.ravel()]).all():
                    return None
                heads = {rows[i].tobytes() for i in first}
                for prefix in wanted:
                    if len(prefix) <= width:
                        match = (rows[:, :len(prefix)] == np.frombuffer(prefix, np.uint8)).all(axis=1)
                        hits += values[match].tolist()
        p = data.find(name, max(edge + 1, 0))
        while p >= 0:  # overlapping names too (`"accessKeyId"accessKeyId"`), as the array pass finds them
            value = p + len(name)
            heads.add(data[value:value + width])
            if wanted and data.startswith(wanted, value):
                hits.append(value)
            p = data.find(name, p + 1)
        for prefix in wanted:
            if len(prefix) > width:
                hits += _find_all(data, name + prefix, len(name))
        out += [heads, sorted(set(hits))]
    return out[0], out[1], out[2], out[3]


_I, _d, _P, _QUOTE = ord("I"), ord("d"), ord("P"), ord('"')


def _find_all(data: bytes, needle: bytes, shift: int) -> list[int]:
    found: list[int] = []
    p = data.find(needle)
    while p >= 0:
        found.append(p + shift)
        p = data.find(needle, p + 1)
    return found


def _decode_heads(data: bytes, name: bytes, heads: set[bytes]) -> set[str] | None:
    """The string values the heads begin; None when one is not plain (escapes, odd spacing)."""
    out: set[str] = set()
    for head in heads:
        match = _VALUE.match(head)
        if match is None:
            if _OPEN.match(head) is None:
                if head.lstrip(_SPACE)[:1] == b":":
                    return None  # `"name" :` or a value after other whitespace
                continue  # the name as a string value, e.g. in a list
            # a string longer than the head (or with escapes): read each such value in full
            full = _long_values(data, name + head)
            if full is None:
                return None
            out |= full
        elif match.group(1) is not None:
            out.add(match.group(1).decode("utf-8"))
    return out


def _long_values(data: bytes, prefix: bytes) -> set[str] | None:
    values: set[str] = set()
    p = data.find(prefix)
    while p >= 0:
        match = _LONG.match(data, p)
        if match is None:
            return None
        values.add(match.group(1).decode("utf-8"))
        p = data.find(prefix, match.end())
    return values


_LONG = re.compile(rb'"[A-Za-z]+"(?: ?):(?: ?)"([^"\\]*)"')


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
    prefix = _PREFIX.match(data)
    if prefix is None or data[prefix.end():prefix.end() + 2] != b'{"':
        if _EMPTY.match(data):
            scan.keys, scan.ips = (frozenset(), frozenset()) if index else (None, None)
            return scan
        return FileScan(path, FULL, raw_bytes=len(data))
    first = prefix.end()
    # Records are cut at the first record's first key (`{"eventVersion"` in trail files)
    close = data.find(b'"', first + 2, first + 66)
    marker = data[first:close + 1]
    tail = _tail_start(data)
    if close < 0 or b"\\" in marker or tail < first:
        return FileScan(path, FULL, raw_bytes=len(data))
    if index:
        prefixes = tuple(p + w for w in wanted for p in (b":", b": ")) if wanted else ()
        found = _heads(data, prefixes)
        if found is None:
            return FileScan(path, FULL, raw_bytes=len(data))
        key_heads, key_hits, ip_heads, ip_hits = found
        keys = _decode_heads(data, _KEY_NAME, key_heads)
        ips = _decode_heads(data, _IP_NAME, ip_heads) if keys is not None else None
        if keys is None or ips is None:
            return FileScan(path, FULL, raw_bytes=len(data))
        scan.keys, scan.ips = frozenset(keys), frozenset(ips)
        hits = sorted(key_hits + ip_hits)
    else:
        hits = []
        find = data.find
        for needle in wanted:
            hit = find(needle, first)
            while 0 <= hit < tail:
                hits.append(hit)
                hit = find(needle, hit + 1)
        hits.sort()
    try:
        scan.segments = _segments(data, hits, tail, marker)
    except UnicodeDecodeError:
        return FileScan(path, FULL, raw_bytes=len(data))
    return scan


def _segments(data: bytes, hits: list[int], tail: int, marker: bytes) -> list[tuple[int, str]]:
    """(start, text) of the segment around each of the sorted `hits` (from the `marker` before it
    to the next one), each segment once: in C when built (`_scan.segments`), else in Python."""
    if KERNEL == "c" and _segments_c is not None:
        return _segments_c(data, hits, tail, marker)
    return _segments_python(data, hits, tail, marker)


def _segments_python(data: bytes, hits: list[int], tail: int, marker: bytes) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    find, rfind = data.find, data.rfind
    end = -1
    for hit in hits:
        if hit < end or hit >= tail:
            continue  # in the segment just cut
        start = rfind(marker, 0, hit)
        end = find(marker, hit)
        if end < 0 or end > tail:
            end = tail
        out.append((start, _strip_segment(data, start, end).decode("utf-8")))
    return out


#: One file to scan: its path, the `needles` to cut out the records of, and whether to index it.
ScanTask = tuple[str, list[bytes], bool]


def scan_task(task: ScanTask) -> FileScan:
    """`scan_file` with one picklable argument (for `Pool.imap_unordered`)."""
    return scan_file(*task)


#: Below this many compressed bytes to scan, files are scanned in-process (forking costs more).
PARALLEL_MIN_BYTES = 8 << 20
#: Files per message to and from a scan worker: about 32 chunks per worker, at most this many files
#: (one message per file cost the main process 2 CPU-s of pickling and thread switches on 2,304 files).
SCAN_CHUNK_MAX = 32


def scan_files(
    tasks: Sequence[ScanTask], size: int, workers: int, *, forked: Callable[[], object] | None = None
) -> Iterator[FileScan]:
    """`scan_task` of each task, as they finish (not in order): in `workers` forked processes when
    `size` (the files' compressed bytes) makes it pay, else here. Give the largest files first, so
    that the last chunks are the smallest. `forked` runs here once the workers are forked (work to
    overlap with the scan: a thread it starts is not copied into a worker)."""
    if not tasks:
        return
    if workers <= 1 or len(tasks) == 1 or size < PARALLEL_MIN_BYTES:
        yield from map(scan_task, tasks)
        return
    ctx = multiprocessing.get_context("fork")
    workers = min(workers, len(tasks))
    chunk = max(1, min(SCAN_CHUNK_MAX, len(tasks) // (workers * 32)))
    with ctx.Pool(workers) as pool:
        if forked is not None:
            forked()
        yield from pool.imap_unordered(scan_task, tasks, chunksize=chunk)
