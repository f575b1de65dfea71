"""Attacker styles: the same attack (the same real calls against the sandbox), seen from elsewhere.

A scenario is played once against moto; a style then changes only what moto never sees and
CloudTrail records - where the attacker's calls came from, with which user agent, and when - so
one played attack serves every style, background and window of the robustness grid
(`keyresponse.sandbox.grid`). The owner's own calls in a scenario (the false positive) are left
where they are.

* `burst-vps` - as played: the scenario's own hosting addresses and tools, minutes of calls;
* `slow-low` - the same calls in short sittings spread over five days;
* `same-cloud` - from AWS addresses in the prefixes the owner's CI runners use;
* `owner-ua` - with the owner's exact user agent;
* `tor` - through Tor exits, the exit changing every ten minutes;
* `service-runtime` - the calls as played, while the owner's AWS Lambda runtime also uses the key
  from AWS addresses with an `exec-env/AWS_Lambda_...` user agent (its calls are background, benign).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keyresponse.errors import InputError
from keyresponse.sandbox.cloudtrail import dumps, iso
from keyresponse.sandbox.networks import CI_AWS, TOR_EXITS, Estate, host_in

STYLES: dict[str, str] = {
    "burst-vps": "the scenario as played: hosting addresses, its own tools, minutes of calls",
    "slow-low": "the same calls in short sittings spread over five days",
    "same-cloud": "from AWS addresses in the prefixes the owner's CI uses",
    "owner-ua": "with the owner's exact user agent",
    "tor": "through Tor exits, a new exit every ten minutes",
    "service-runtime": "as played, while the owner's Lambda runtime also uses the key from AWS",
}
SLOW_SPAN = timedelta(days=5)
CALLS_PER_SITTING = 4
TOR_CIRCUIT = 600  # seconds a Tor circuit (and so an exit) lasts
_ISO = "%Y-%m-%dT%H:%M:%SZ"
_EXPIRY = "%b %d, %Y, %I:%M:%S %p"

Call = tuple[dict[str, Any], bool]  # (CloudTrail record, made by the attacker)


@dataclass
class Styled:
    """A styled attack: its records (region, eventTime, JSON) and the truth's attacker facts."""

    records: list[tuple[str, str, str]]
    attacker_ips: list[str]
    attacker_user_agents: list[str]
    window: dict[str, str]


def _ts(text: str) -> datetime:
    return datetime.strptime(text, _ISO).replace(tzinfo=UTC)


def check_style(style: str | None, window: timedelta) -> str:
    name = style or "burst-vps"
    if name not in STYLES:
        raise InputError(f"unknown attacker style {name!r}; choose one of: {', '.join(STYLES)}")
    if name == "slow-low" and window < SLOW_SPAN + timedelta(hours=6):
        need = (SLOW_SPAN + timedelta(hours=6)) / timedelta(days=1)
        raise InputError(f"slow-low spreads the attack over {SLOW_SPAN.days} days: a {window / timedelta(days=1):g}-day "
                         f"window cannot hold it (give --days {need:g} or more)")
    return name


def apply_style(style: str | None, calls: list[Call], *, estate: Estate, seed: int,
                attack_end: datetime) -> Styled:
    """The attack's records in `style`. `attack_end` is when the played attack's last sitting starts."""
    name = style or "burst-vps"
    records = [(copy.deepcopy(record), attacker) for record, attacker in calls]
    rng = random.Random(f"{seed}:style:{name}")
    if name == "slow-low":
        _spread(records, rng, attack_end)
    if name in ("same-cloud", "tor"):
        _move(records, rng, estate, seed, tor=name == "tor")
    if name == "owner-ua":
        for record, attacker in records:
            if attacker:
                record["userAgent"] = estate.owner_ua
    if estate.habit is not None:  # the owner's own calls in a scenario use the owner's own tool
        for record, attacker in records:
            if not attacker:
                record["userAgent"] = estate.owner_ua
    ips: dict[str, None] = {}
    agents: dict[str, None] = {}
    for record, attacker in records:
        if attacker:
            ips[record["sourceIPAddress"]] = None
            agents[record["userAgent"]] = None
    times = sorted(record["eventTime"] for record, _ in records)
    window = {"start": times[0], "end": times[-1]} if times else {}
    return Styled([(r["awsRegion"], r["eventTime"], dumps(r)) for r, _ in records], list(ips), list(agents), window)


def _move(records: list[tuple[dict[str, Any], bool]], rng: random.Random, estate: Estate, seed: int, *,
          tor: bool) -> None:
    """Each attacker address to a cloud host of the owner's CI prefixes, or to Tor exits by circuit."""
    taken = set(estate.known_cloud_ips())
    hosts: dict[str, str] = {}
    for record, attacker in records:
        if not attacker:
            continue
        original = record["sourceIPAddress"]
        if tor:
            circuit = int(_ts(record["eventTime"]).timestamp()) // TOR_CIRCUIT
            pick = random.Random(f"{seed}:tor:{original}:{circuit}")  # the same circuit, the same exit
            record["sourceIPAddress"] = TOR_EXITS[pick.randrange(len(TOR_EXITS))]
            continue
        if original not in hosts:
            hosts[original] = host_in(CI_AWS[len(hosts) % len(CI_AWS)], rng, taken)
            taken.add(hosts[original])
        record["sourceIPAddress"] = hosts[original]


def _sittings(records: list[tuple[dict[str, Any], bool]]) -> list[int]:
    """Indexes where a new sitting may start: a call with a long-term key (the attacker coming back
    with a stored key) while no session minted earlier is still to be used (sessions expire)."""
    minted: dict[str, int] = {}
    last_use: dict[str, int] = {}
    for i, (record, _) in enumerate(records):
        key = (record.get("userIdentity") or {}).get("accessKeyId") or ""
        last_use[key] = i
        made = ((record.get("responseElements") or {}).get("credentials") or {}).get("accessKeyId")
        if made:
            minted.setdefault(made, i)
    cuts = []
    for i, (record, attacker) in enumerate(records[1:], start=1):
        key = (record.get("userIdentity") or {}).get("accessKeyId") or ""
        if attacker and key.startswith("AKIA") and not any(
                at < i <= last_use.get(session, -1) for session, at in minted.items()):
            cuts.append(i)
    return cuts


def _spread(records: list[tuple[dict[str, Any], bool]], rng: random.Random, attack_end: datetime) -> None:
    """Re-time the attack as sittings of a few calls, the first `SLOW_SPAN` before the last."""
    cuts = _sittings(records)
    if not cuts:
        raise InputError("slow-low needs an attack of more than one sitting (this one is a single call "
                         "or one session's calls)")
    sittings = max(2, min(len(cuts) + 1, -(-len(records) // CALLS_PER_SITTING)))
    # sittings - 1 cuts, evenly over the allowed ones
    chosen = {cuts[round(j * (len(cuts) - 1) / max(1, sittings - 2))] for j in range(sittings - 1)}
    starts = [0, *sorted(chosen)]
    gap = SLOW_SPAN / (len(starts) - 1)
    first = attack_end - SLOW_SPAN
    origin = [_ts(records[s][0]["eventTime"]) for s in starts]
    new_start = []
    for j in range(len(starts)):
        inner = 0 < j < len(starts) - 1  # the first and the last sitting are exactly SLOW_SPAN apart
        jitter = gap * rng.uniform(-0.3, 0.3) if inner else timedelta(0)
        new_start.append(first + j * gap + jitter)

    def remap(moment: datetime) -> datetime:
        j = max(i for i in range(len(origin)) if i == 0 or origin[i] <= moment)
        return new_start[j] + (moment - origin[j])

    _retime(records, remap)


def _retime(records: list[tuple[dict[str, Any], bool]], remap: Callable[[datetime], datetime]) -> None:
    """Move every time a record holds: the event, a session's creation, what the call created, and a
    credential's expiry (kept at the same distance from its issue)."""
    for record, _ in records:
        before = _ts(record["eventTime"])
        after = remap(before)
        record["eventTime"] = iso(after)
        attributes = ((record.get("userIdentity") or {}).get("sessionContext") or {}).get("attributes") or {}
        if attributes.get("creationDate"):
            attributes["creationDate"] = iso(remap(_ts(attributes["creationDate"])))
        response = record.get("responseElements") or {}
        for part in ("accessKey", "user", "loginProfile"):
            made = response.get(part)
            if isinstance(made, dict) and isinstance(made.get("createDate"), str):
                made["createDate"] = iso(remap(_ts(made["createDate"])))
        creds = response.get("credentials")
        if isinstance(creds, dict) and isinstance(creds.get("expiration"), str):
            expires = datetime.strptime(creds["expiration"], _EXPIRY).replace(tzinfo=UTC) + (after - before)
            creds["expiration"] = expires.strftime(_EXPIRY)
