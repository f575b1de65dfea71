"""Legitimate background activity, written fast and deterministically, mixed with a scenario's records.

Each kind of legitimate call (`Activity`) is rendered once into a JSON template with holes for the
event time, source IP and the two ids; a delivery file is then a few hundred to a few thousand
`template % (time, ip, request id, event id)` lines, gzipped with ISA-L. Files are independent — each
has its own generator seeded from `(seed, file index)` — so two processes write them in any order and
the bytes are the same for the same seed. Memory holds one file at a time per process.

An activity's source addresses may change by the day (`Activity.daily`: a home address that changes
every day, CI runners that are new machines each day); a 5-minute window never crosses a day, so a
file draws from one day's pools. A window with no event has no file, as with CloudTrail.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterable, Mapping, Sequence
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
    #: day (date ordinal, UTC) -> the addresses used that day instead of `ips`
    daily: Mapping[int, tuple[str, ...]] | None = None


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


# Set in each worker (fork) before jobs run: region -> (templates, ip pools, cumulative weights, daily pools).
Pools = list[tuple[str, ...]]
_TEMPLATES: dict[str, tuple[list[str], Pools, list[float], list[Mapping[int, tuple[str, ...]] | None]]] = {}
_SEED = 0
_LAYOUT: LogLayout | None = None
_POOLS_OF_DAY: dict[tuple[str, int], Pools] = {}  # (region, day) -> each template's pool that day
#: minute of the hour a window starts at -> "MM:SSZ" of each second of the window
_SUFFIXES: dict[int, list[str]] = {}
_FOLDERS: set[Path] = set()  # day folders this worker made


_MASK48 = (1 << 48) - 1
_GOLDEN48 = 0x9E3779B97F4A7C15 & _MASK48  # the golden-ratio multiplier, modulo 2**48 like the ids


def _uuid_prefix(rng: random.Random) -> str:
    h = f"{rng.getrandbits(96):024x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-"


def _pools(region: str, day: int) -> Pools:
    """Each template's address pool on `day` (computed once per worker and day)."""
    pools = _POOLS_OF_DAY.get((region, day))
    if pools is None:
        _, static, _, daily = _TEMPLATES[region]
        pools = [d.get(day, ips) if d else ips for ips, d in zip(static, daily, strict=True)]
        _POOLS_OF_DAY[region, day] = pools
    return pools


def _suffixes(minute: int) -> list[str]:
    table = _SUFFIXES.get(minute)
    if table is None:
        table = [f"{minute + s // 60:02d}:{s % 60:02d}Z" for s in range(WINDOW_SECONDS)]
        _SUFFIXES[minute] = table
    return table


def _write_file(job: FileJob) -> tuple[str, int, int]:
    assert _LAYOUT is not None
    rng = random.Random(f"{_SEED}:{job.index}")
    templates, _, cum, _ = _TEMPLATES.get(job.region, ([], [], [], []))
    n = job.count if templates else 0
    base = job.window_start
    prefix = iso(base)[:14]  # YYYY-MM-DDTHH: — a window never crosses an hour
    suffixes = _suffixes(base.minute)
    ips = _pools(job.region, base.toordinal()) if n else []
    picks = rng.choices(range(len(templates)), cum_weights=cum, k=n) if n else []
    seconds = sorted(rng.choices(range(WINDOW_SECONDS), k=n))
    ip_draws = rng.randbytes(n)
    request_prefix, event_prefix = _uuid_prefix(rng), _uuid_prefix(rng)
    salt = rng.getrandbits(48)
    stamps = [prefix + suffixes[s] for s in seconds]
    mixed = [(j * _GOLDEN48 + salt) & _MASK48 for j in range(n)]  # the ids' last 12 hex digits
    # the hot loop: one comprehension, every lookup a local
    lines = [templates[p] % (stamp, ips[p][d % len(ips[p])], request_prefix, m, event_prefix, m ^ salt)
             for p, stamp, d, m in zip(picks, stamps, ip_draws, mixed, strict=True)]
    if job.extra:
        timed = sorted([*zip(stamps, lines, strict=True), *job.extra], key=lambda p: p[0])
        lines = [line for _, line in timed]
    path = _LAYOUT.path_for(job.region, job.window_start, rng)
    folder = path.parent
    if folder not in _FOLDERS:
        folder.mkdir(parents=True, exist_ok=True)
        _FOLDERS.add(folder)
    size = write_records_file(path, lines, make_parent=False)
    return str(path), len(lines), size


def _init_worker(templates: dict[str, Any], seed: int, layout: LogLayout) -> None:
    global _TEMPLATES, _SEED, _LAYOUT
    _TEMPLATES, _SEED, _LAYOUT = templates, seed, layout
    _POOLS_OF_DAY.clear()
    _FOLDERS.clear()


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
    mean and add up to exactly `background_events`. Each slot gets its expected share rounded by
    systematic sampling (one random offset, then the running sum's integer steps), so a thin
    background - less than one event per file - still spreads evenly over the whole span instead of
    piling up in its first hours. A slot with no event and no scenario record writes no file.
    """
    rng = random.Random(f"{seed}:plan")
    first = int(start.timestamp()) // WINDOW_SECONDS
    last = (int(end.timestamp()) - 1) // WINDOW_SECONDS
    windows = list(range(first, last + 1))
    total_weight = sum(region_weights.values())
    slots = [(w, r) for w in windows for r in region_weights]
    raw = [region_weights[r] / total_weight * (0.75 + 0.5 * rng.random()) for _, r in slots]
    scale = background_events / sum(raw) if raw else 0.0
    counts = _systematic([x * scale for x in raw], background_events, rng.random())
    extras: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for region, event_time, line in scenario_records:
        window = int(datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ").timestamp()) // WINDOW_SECONDS
        extras.setdefault((window, region), []).append((event_time, line))
    jobs: list[FileJob] = []
    seen: set[tuple[int, str]] = set()
    for (window, region), count in zip(slots, counts, strict=True):
        seen.add((window, region))
        extra = tuple(extras.get((window, region), ()))
        if count or extra:
            jobs.append(FileJob(len(jobs), region, _window_dt(window), count, extra))
    for key in sorted(set(extras) - seen):  # regions or windows only the attacker touched
        jobs.append(FileJob(len(jobs), key[1], _window_dt(key[0]), 0, tuple(extras[key])))
    return jobs


def _systematic(expected: list[float], total: int, offset: float) -> list[int]:
    """Integer counts near `expected` that add up to `total`: the integer steps of the running sum
    started at `offset` (in [0, 1)); float rounding is settled on the last slots that can take it."""
    counts = []
    running, taken = offset, 0
    for x in expected:
        running += x
        step = max(0, int(running) - taken)
        counts.append(step)
        taken += step
    i = len(counts) - 1
    while taken != total and i >= 0:
        change = max(total - taken, -counts[i])
        counts[i] += change
        taken += change
        i -= 1
    return counts


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
    templates: dict[str, tuple[list[str], Pools, list[float], list[Mapping[int, tuple[str, ...]] | None]]] = {}
    for activity in activities:
        for region in activity.regions:
            entry = templates.setdefault(region, ([], [], [], []))
            entry[0].append(render_template(activity, region, account_id))
            entry[1].append(activity.ips)
            entry[2].append((entry[2][-1] if entry[2] else 0.0) + activity.weight)
            entry[3].append(activity.daily)
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
