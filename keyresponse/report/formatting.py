"""How the report writes values: times, durations, ARNs, ledger targets, one-line JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

from keyresponse.incident import parse_time


def compact_json(value: object) -> str:
    """One-line JSON with sorted keys (for before/after states and parameters)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def when(value: str | None) -> str | None:
    """An ISO time as `2026-11-19 19:00:22 UTC` (fractions dropped); None stays None."""
    if not value:
        return None
    return parse_time(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_duration(seconds: float | None) -> str | None:
    """`2 min 51 s`, `1 h 12 min`, `2 d 3 h`; None when unknown."""
    if seconds is None:
        return None
    total = round(seconds)
    sign, total = ("−", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        parts = [f"{days} d", f"{hours} h" if hours else ""]
    elif hours:
        parts = [f"{hours} h", f"{minutes} min" if minutes else ""]
    elif minutes:
        parts = [f"{minutes} min", f"{secs} s" if secs else ""]
    else:
        parts = [f"{secs} s"]
    return sign + " ".join(p for p in parts if p)


def short_arn(arn: str | None) -> str | None:
    """`arn:aws:iam::111122223333:user/alice` → `user/alice` (the credential chart's boxes only: text
    shows ARNs whole, as two accounts' `role/admin` are two principals)."""
    if not arn:
        return arn
    return arn.split(":", 5)[5] if arn.count(":") >= 5 else arn


def target_label(target: Mapping[str, object]) -> str:
    where = f" @{target['region']}" if target.get("region") else ""
    owner = f" ({target['user_name']})" if target.get("user_name") and target.get("user_name") != target.get("id") else ""
    return f"{target.get('kind', '?')}:{target.get('id', '?')}{where}{owner}"

