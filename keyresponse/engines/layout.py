"""Write CloudTrail records as a trail does: `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`
`<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 chars>.json.gz`, each file `{"Records": [...]}`.

For test fixtures and the sandbox's scenario simulator; the DuckDB engine reads what this writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from isal import igzip

DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
_ACCOUNT = re.compile(r"^[0-9]{12}$", re.ASCII)
_REGION = re.compile(r"^[a-z]+(-[a-z0-9]+)+$")
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$", re.ASCII)


def record_time(record: Mapping[str, object]) -> datetime | None:
    """The record's eventTime as a UTC datetime (ISO-8601 or `YYYY-MM-DD HH:MM:SS[.fff…]`), or None."""
    text = record.get("eventTime")
    match = _TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    day, clock, zone = match.group(1), match.group(2), match.group(3) or ""
    value = datetime.fromisoformat(f"{day}T{clock}{'+00:00' if zone in ('', 'Z') else zone}")
    return value.astimezone(UTC)


def write_trail_files(
    records: Iterable[Mapping[str, object]],
    root: Path,
    *,
    default_time: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    compress: bool = True,
) -> list[Path]:
    """Write `records` under `root` in the trail layout, one file per account, region and 5 minutes.

    A record without a valid recipientAccountId, awsRegion or eventTime goes to the default
    account, region or time (test data is not always well formed; a path must be).
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, object]]] = defaultdict(list)
    for record in records:
        account = str(record.get("recipientAccountId") or "")
        account = account if _ACCOUNT.fullmatch(account) else DEFAULT_ACCOUNT
        region = str(record.get("awsRegion") or "")
        region = region if _REGION.match(region) else DEFAULT_REGION
        when = record_time(record) or default_time
        five = when.replace(minute=when.minute - when.minute % 5, second=0, microsecond=0)
        groups[(account, region, five.strftime("%Y%m%dT%H%MZ"))].append(record)
    written = []
    for (account, region, slot), items in sorted(groups.items()):
        day = f"{slot[0:4]}/{slot[4:6]}/{slot[6:8]}"
        folder = root / "AWSLogs" / account / "CloudTrail" / region / day
        folder.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"Records": items}).encode()
        suffix = hashlib.sha256(body).hexdigest()[:16].upper()
        name = f"{account}_CloudTrail_{region}_{slot}_{suffix}.json"
        if compress:
            path = folder / (name + ".gz")
            path.write_bytes(igzip.compress(body))
        else:
            path = folder / name
            path.write_bytes(body)
        written.append(path)
    return written
