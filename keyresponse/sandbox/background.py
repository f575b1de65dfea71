"""Legitimate background activity, written fast and deterministically, mixed with a scenario's records.

Each kind of legitimate call (`Activity`) is rendered once into a JSON template with holes for the
event time, source IP and the two ids; a delivery file is then a few hundred to a few thousand
`template % (time, ip, request id, event id)` lines, gzipped with ISA-L. Files are independent — each
has its own generator seeded from `(seed, file index)` — so two processes write them in any order and
the bytes are the same for the same seed. Memory holds one file at a time per process.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from keyresponse.sandbox.cloudtrail import (
    WINDOW_SECONDS,
    Identity,
    LogLayout,
    build_record,
    dumps,
    iso,
    write_records_file,
)

_T, _IP, _RID, _EID = "@@T@@", "@@IP@@", "@@R@@", "@@E@@"  # holes; JSON keeps them verbatim


@dataclass(frozen=True)
class Activity:
    """One kind of legitimate call, with where it comes from and how often."""

    identity: Identity
    service: str
    operation: str
    params: dict[str, Any] | None
    ips: tuple[str, ...]
    user_agent: str
    weight: float
    regions: tuple[str, ...] = ("us-east-1",)
    response: dict[str, Any] | None = None
    error: tuple[str, str] | None = None
    additional: dict[str, Any] | None = None


def render_template(activity: Activity, region: str, account_id: str) -> str:
    """The record as a %-template: holes for time, source IP, then prefix and number of the two ids."""
    record = build_record(
        rng=random.Random(0), identity=activity.identity, event_time=_T, service=activity.service,
        operation=activity.operation, region=region, source_ip=_IP, user_agent=activity.user_agent,
        account_id=account_id, request_parameters=activity.params, response_elements=activity.response,
        error_code=activity.error[0] if activity.error else None,
        error_message=activity.error[1] if activity.error else None,
        additional_event_data=activity.additional,
    )
    record["requestID"], record["eventID"] = _RID, _EID
    text = dumps(record).replace("%", "%%")
    for hole in (_T, _IP):
        text = text.replace(hole, "%s", 1)
    # An id is a UUID-4 shape: a random prefix per file (24 digits) and 12 digits hashed from the index.
    uuid_holes = "%s%012x"
    return text.replace(_RID, uuid_holes, 1).replace(_EID, uuid_holes, 1)


@dataclass(frozen=True)
class FileJob:
    index: int
    region: str
    window_start: datetime
    count: int
    extra: tuple[tuple[str, str], ...]  # (eventTime, record JSON) of scenario records in this file


# Set in each worker (fork) before jobs run: region -> (templates, ip pools, cumulative weights).
_TEMPLATES: dict[str, tuple[list[str], list[tuple[str, ...]], list[float]]] = {}
_SEED = 0
_LAYOUT: LogLayout | None = None


_MASK48 = (1 << 48) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _uuid_prefix(rng: random.Random) -> str:
    h = f"{rng.getrandbits(96):024x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-"


def _write_file(job: FileJob) -> tuple[str, int, int]:
    assert _LAYOUT is not None
    rng = random.Random(f"{_SEED}:{job.index}")
    templates, ips, cum = _TEMPLATES.get(job.region, ([], [], []))
    n = job.count if templates else 0
    base = job.window_start
    prefix = iso(base)[:14]  # YYYY-MM-DDTHH: — a window never crosses an hour
    minute = base.minute
    stamps = [f"{prefix}{minute + s // 60:02d}:{s % 60:02d}Z" for s in range(WINDOW_SECONDS)]
    picks = rng.choices(range(len(templates)), cum_weights=cum, k=n) if n else []
    seconds = sorted(rng.choices(range(WINDOW_SECONDS), k=n))
    ip_draws = rng.randbytes(n)
    request_prefix, event_prefix = _uuid_prefix(rng), _uuid_prefix(rng)
    salt = rng.getrandbits(48)
    lines: list[str] = []
    append = lines.append
    for j in range(n):
        pick = picks[j]
        pool = ips[pick]
        mixed = (j * _GOLDEN + salt) & _MASK48
        append(templates[pick] % (stamps[seconds[j]], pool[ip_draws[j] % len(pool)],
                                  request_prefix, mixed, event_prefix, mixed ^ salt))
    if job.extra:
        timed = sorted([*zip((stamps[s] for s in seconds), lines, strict=True), *job.extra], key=lambda p: p[0])
        lines = [line for _, line in timed]
    path = _LAYOUT.path_for(job.region, job.window_start, rng)
    size = write_records_file(path, lines)
    return str(path), len(lines), size


def _init_worker(templates: dict[str, Any], seed: int, layout: LogLayout) -> None:
    global _TEMPLATES, _SEED, _LAYOUT
    _TEMPLATES, _SEED, _LAYOUT = templates, seed, layout


def plan_files(
    *,
    start: datetime,
    end: datetime,
    background_events: int,
    region_weights: dict[str, float],
    scenario_records: Sequence[tuple[str, str, str]],
    seed: int,
) -> list[FileJob]:
    """Split the background over 5-minute windows and regions; place each scenario record in its file.

    `scenario_records` holds (region, eventTime, record JSON). Counts vary ±25 % per file around the
    mean and add up to exactly `background_events`.
    """
    rng = random.Random(f"{seed}:plan")
    first = int(start.timestamp()) // WINDOW_SECONDS
    last = (int(end.timestamp()) - 1) // WINDOW_SECONDS
    windows = list(range(first, last + 1))
    total_weight = sum(region_weights.values())
    slots = [(w, r) for w in windows for r in region_weights]
    raw = [region_weights[r] / total_weight * (0.75 + 0.5 * rng.random()) for _, r in slots]
    scale = background_events / sum(raw) if raw else 0.0
    counts = [int(x * scale) for x in raw]
    for i in range(background_events - sum(counts)):
        counts[i % len(counts)] += 1
    extras: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for region, event_time, line in scenario_records:
        window = int(datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ").timestamp()) // WINDOW_SECONDS
        extras.setdefault((window, region), []).append((event_time, line))
    jobs: list[FileJob] = []
    seen: set[tuple[int, str]] = set()
    for (window, region), count in zip(slots, counts, strict=True):
        seen.add((window, region))
        jobs.append(FileJob(len(jobs), region, _window_dt(window), count, tuple(extras.get((window, region), ()))))
    for key in sorted(set(extras) - seen):  # regions or windows only the attacker touched
        jobs.append(FileJob(len(jobs), key[1], _window_dt(key[0]), 0, tuple(extras[key])))
    return jobs


def _window_dt(window: int) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(window * WINDOW_SECONDS, tz=UTC)


def write_logs(
    *,
    layout: LogLayout,
    activities: Iterable[Activity],
    jobs: list[FileJob],
    seed: int,
    account_id: str,
    processes: int | None = None,
) -> tuple[int, int, int]:
    """Write every file of `jobs`. Returns (files, records, bytes)."""
    templates: dict[str, tuple[list[str], list[tuple[str, ...]], list[float]]] = {}
    for activity in activities:
        for region in activity.regions:
            entry = templates.setdefault(region, ([], [], []))
            entry[0].append(render_template(activity, region, account_id))
            entry[1].append(activity.ips)
            entry[2].append((entry[2][-1] if entry[2] else 0.0) + activity.weight)
    procs = processes or min(2, os.cpu_count() or 1)
    files = records = size = 0
    if procs <= 1 or len(jobs) < 8:
        _init_worker(templates, seed, layout)
        results: Iterable[tuple[str, int, int]] = map(_write_file, jobs)
    else:
        ctx = multiprocessing.get_context("fork")
        pool = ctx.Pool(procs, initializer=_init_worker, initargs=(templates, seed, layout))
        results = pool.imap_unordered(_write_file, jobs, chunksize=4)
    try:
        for _path, count, nbytes in results:
            files += 1
            records += count
            size += nbytes
    finally:
        if procs > 1 and len(jobs) >= 8:
            pool.close()
            pool.join()
    return files, records, size


def files_of(root: Path) -> list[Path]:
    return sorted(root.glob("AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz"))
