"""Finding the CloudTrail files of a window: the engine's sources, listed by account, region and day.

Sources: a folder in the real layout (`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz`,
organization trails' `AWSLogs/o-…/<account>/…` too, `.json` accepted), a folder of loose
CloudTrail files (partitions then come from the records), or `s3://bucket/prefix`, whose needed
day folders are downloaded through boto3 into a local mirror first (`S3Mirror`; DuckDB's httpfs is
not used). The files come grouped in "units": one region-day folder each (or the loose files of a
folder without the layout), whose `key` names the unit's cached rows and file index.

Nothing here reads a file's content: the engine's materialisations do (`parquet_cache.py`,
`indicator_table.py`).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from keyresponse.engines.projection import SCHEMA_VERSION
from keyresponse.errors import ConfigurationError, InputError

if TYPE_CHECKING:  # boto3-stubs: a development dependency
    from mypy_boto3_s3 import S3Client

#: Windows longer than this list whole S3 region prefixes instead of one listing per day.
MAX_DAYS_LISTED_PER_DAY = 62

_SUFFIXES = (".json.gz", ".json")
_REGION = re.compile(r"^[a-z]+(-[a-z0-9]+)+$")
_ACCOUNT = re.compile(r"^[0-9]{12}$", re.ASCII)
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")


@dataclass(frozen=True)
class Unit:
    """One region-day folder (or the loose files of a folder without the CloudTrail layout)."""

    files: tuple[Path, ...]
    account: str | None = None
    region: str | None = None
    day: str | None = None  # 'yyyy/MM/dd'
    #: (size, mtime_ns) of each file when the folder was listed; None: stat them when needed.
    stamps: tuple[tuple[int, int], ...] | None = None

    def file_stamps(self) -> Iterator[tuple[Path, tuple[int, int]]]:
        if self.stamps is None:
            yield from ((f, stamp(f)) for f in self.files)
        else:
            yield from zip(self.files, self.stamps, strict=True)

    @cached_property
    def _stats(self) -> tuple[str, int]:
        h = hashlib.sha256(f"{SCHEMA_VERSION}|{self.account}|{self.region}|{self.day}".encode())
        size = 0
        for f, (file_size, mtime_ns) in self.file_stamps():
            size += file_size
            h.update(f"|{f}|{file_size}|{mtime_ns}".encode())
        return h.hexdigest()[:32], size

    @property
    def key(self) -> str:
        """Changes whenever a file of the unit is added, removed or rewritten, and with `SCHEMA_VERSION`."""
        return self._stats[0]

    @property
    def size(self) -> int:
        return self._stats[1]

    @property
    def folders(self) -> set[str]:
        return {str(f.parent) + os.sep for f in self.files}


def stamp(path: Path) -> tuple[int, int]:
    """The file's (size, mtime_ns): a file rewritten in place gets a new one."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


# -- finding files ------------------------------------------------------------------------------


def _days(start: str, end: str) -> list[str]:
    first = datetime.strptime(start, "%Y/%m/%d").date()
    last = datetime.strptime(end, "%Y/%m/%d").date()
    return [(first + timedelta(days=i)).strftime("%Y/%m/%d") for i in range((last - first).days + 1)]


def _is_log(name: str) -> bool:
    return name.endswith(_SUFFIXES)


def _subdirs(path: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir())
    except OSError:
        return []


def _cloudtrail_dirs(root: Path, depth: int = 5) -> Iterator[tuple[str, Path]]:
    """(account, path) of each `…/<account>/CloudTrail` folder at most `depth` levels under `root`."""
    if root.name == "CloudTrail" and _ACCOUNT.fullmatch(root.parent.name):
        yield root.parent.name, root
        return
    if depth == 0:
        return
    for name in _subdirs(root):
        if name == "CloudTrail" and _ACCOUNT.fullmatch(root.name):
            yield root.name, root / name
        elif name in ("AWSLogs",) or _ACCOUNT.fullmatch(name) or _ORG.match(name) or depth > 3:
            yield from _cloudtrail_dirs(root / name, depth - 1)


#: Seconds a folder's listing is trusted while the folder's mtime is unchanged (see find_units).
LISTING_MAX_AGE = 2.0


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of the folder's CloudTrail files, by name."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _is_log(entry.name) and entry.is_file():
                st = entry.stat()
                found.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


class Listed(NamedTuple):
    """A folder as `find_units` last listed it."""

    listing: tuple[tuple[str, int, int], ...]  # (name, size, mtime_ns) of its CloudTrail files
    unit: Unit
    folder_mtime: int  # ns
    listed_at: float  # time.monotonic()


def _day_folders(
    trails: Sequence[tuple[str, Path]],
    window: tuple[str, str] | None,
    regions: Sequence[str] | None,
    accounts: Sequence[str] | None,
) -> Iterator[tuple[str, str, str, Path]]:
    """(account, region, day, folder) of each day folder of the trails (the window's days when given)."""
    for account, trail in trails:
        if accounts and account not in accounts:
            continue
        for region in _subdirs(trail):
            if not _REGION.match(region) or (regions and region not in regions):
                continue
            for y in _subdirs(trail / region):
                if not y.isdigit() or (window and not window[0][:4] <= y <= window[1][:4]):
                    continue
                for m in _subdirs(trail / region / y):
                    for d in _subdirs(trail / region / y / m) if m.isdigit() else ():
                        day = f"{y}/{m}/{d}"
                        if d.isdigit() and (not window or window[0] <= day <= window[1]):
                            yield account, region, day, trail / region / y / m / d


def days_with_logs(root: Path) -> list[str]:
    """The days (yyyy/MM/dd) under `root` in the trail layout whose folder holds a CloudTrail file,
    sorted: the folder names only, without a `stat` per file."""
    days: set[str] = set()
    for _, _, day, folder in _day_folders(list(_cloudtrail_dirs(root)), None, None, None):
        try:
            with os.scandir(folder) as entries:
                if any(_is_log(entry.name) and entry.is_file() for entry in entries):
                    days.add(day)
        except OSError:
            continue
    return sorted(days)


def find_units(
    root: Path,
    window: tuple[str, str] | None = None,
    *,
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    known: dict[Path, Listed] | None = None,
) -> tuple[list[Unit], list[str]]:
    """The units under `root` (only the window's days when given) and the window's days with no files.

    `known` (folder -> how it was last `Listed`: listing, unit, folder mtime, when) lets a caller
    that lists again get the same Unit objects back while a folder's files are unchanged (same
    names, sizes and mtimes). A folder whose mtime has not changed (no file added, removed or
    renamed: how CloudTrail and the S3 mirror deliver) and that was listed less than
    `LISTING_MAX_AGE` seconds ago is not listed again: one `stat` instead of one per file, for an
    investigation's queries a few milliseconds apart. A file rewritten in place is seen once that
    listing is older than `LISTING_MAX_AGE`."""
    units: list[Unit] = []
    trails = list(_cloudtrail_dirs(root))
    if not trails:
        loose = tuple(sorted(p for p in root.rglob("*") if p.is_file() and _is_log(p.name)))
        return ([Unit(loose)] if loose else []), []
    days_with_files: set[str] = set()
    for account, region, day, folder in _day_folders(trails, window, regions, accounts):
        seen = known.get(folder) if known is not None else None
        try:
            folder_mtime = folder.stat().st_mtime_ns
            if seen and seen.folder_mtime == folder_mtime and time.monotonic() - seen.listed_at < LISTING_MAX_AGE:
                units.append(seen.unit)  # no file added, removed or renamed, and listed moments ago
                days_with_files.add(day)
                continue
            listed_at = time.monotonic()
            listing = _listing(folder)
        except OSError:
            continue
        if not listing:
            continue
        if seen and seen.listing == listing:
            unit = seen.unit
        else:
            unit = Unit(tuple(folder / name for name, _, _ in listing), account, region, day,
                        tuple((size, mtime) for _, size, mtime in listing))
        if known is not None:
            known[folder] = Listed(listing, unit, folder_mtime, listed_at)
        units.append(unit)
        days_with_files.add(day)
    missing = [d for d in _days(*window) if d not in days_with_files] if window else []
    return units, missing


# -- S3 -----------------------------------------------------------------------------------------


def _split_s3(url: str) -> tuple[str, str]:
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigurationError(f"not an s3:// URL with a bucket: {url!r}")
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


class S3Mirror:
    """Downloads the CloudTrail files a window needs from `s3://bucket/prefix` into a local folder."""

    def __init__(self, url: str, cache_dir: Path, client: S3Client | None = None) -> None:
        self.bucket, self.prefix = _split_s3(url)
        self.root = cache_dir / "s3" / self.bucket / self.prefix
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            from keyresponse import aws

            self._client = aws.client("s3")
        return self._client

    def _children(self, prefix: str) -> list[str]:
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def _objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])

    def _trails(self, prefix: str, depth: int = 4) -> Iterator[str]:
        for name in self._children(prefix):
            if name == "CloudTrail" and _ACCOUNT.fullmatch(prefix.rstrip("/").rsplit("/", 1)[-1]):
                yield f"{prefix}{name}/"
            elif depth > 0 and (name == "AWSLogs" or _ACCOUNT.fullmatch(name) or _ORG.match(name)):
                yield from self._trails(f"{prefix}{name}/", depth - 1)

    def sync(self, window: tuple[str, str] | None, regions: Sequence[str] | None = None) -> int:
        """Download what the window needs and is not cached yet; the number of files fetched."""
        wanted: list[tuple[str, int]] = []
        for trail in self._trails(self.prefix):
            for region in self._children(trail):
                if not _REGION.match(region) or (regions and region not in regions):
                    continue
                if window and len(_days(*window)) <= MAX_DAYS_LISTED_PER_DAY:
                    for day in _days(*window):
                        wanted += self._objects(f"{trail}{region}/{day}/")
                else:
                    days = set(_days(*window)) if window else None
                    for key, size in self._objects(f"{trail}{region}/"):
                        day = "/".join(key[len(f"{trail}{region}/"):].split("/")[:3])
                        if days is None or day in days:
                            wanted.append((key, size))
        todo = [(k, s) for k, s in wanted if _is_log(k) and not self._cached(k, s)]
        if todo:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(self._download, [k for k, _ in todo]))
        return len(todo)

    def _local(self, key: str) -> Path:
        return self.root / key[len(self.prefix):]

    def _cached(self, key: str, size: int) -> bool:
        path = self._local(key)
        return path.is_file() and path.stat().st_size == size

    def _download(self, key: str) -> None:
        path = self._local(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".part{threading.get_ident()}")
        self.client.download_file(self.bucket, key, str(tmp))
        os.replace(tmp, path)


# -- the engine's source ------------------------------------------------------------------------


class TrailFiles:
    """The CloudTrail files of one source (a folder, or `s3://bucket/prefix` mirrored under
    `cache_dir`), by window. It keeps each folder's last listing (`find_units`' `known`) and the days
    of the windows asked for that have no file (`missing_days`)."""

    def __init__(
        self,
        source: str | Path,
        cache_dir: Path,
        *,
        regions: Sequence[str] | None = None,
        accounts: Sequence[str] | None = None,
        s3_client: S3Client | None = None,
    ) -> None:
        self.regions = list(regions) if regions else None
        self.accounts = list(accounts) if accounts else None
        text = str(source)
        self.mirror: S3Mirror | None = None
        if text.startswith("s3://"):
            self.mirror = S3Mirror(text, cache_dir, s3_client)
            self.root = self.mirror.root
        else:
            self.root = Path(source)
            if not self.root.is_dir():
                raise ConfigurationError(f"CloudTrail folder {self.root} does not exist")
        self.missing_days: set[str] = set()
        self._listings: dict[Path, Listed] = {}

    def units(self, start_day: str | None, end_day: str | None) -> list[Unit]:
        """The units of the window (of everything without one), downloading what an S3 source lacks."""
        window = (start_day, end_day) if start_day and end_day else None
        if window and window[0] > window[1]:
            raise InputError(f"start_day {start_day} is after end_day {end_day}")
        if self.mirror is not None:
            self.mirror.sync(window, self.regions)
        if not self.root.is_dir():
            return []
        units, missing = find_units(self.root, window, regions=self.regions, accounts=self.accounts,
                                    known=self._listings)
        self.missing_days.update(missing)
        return units
