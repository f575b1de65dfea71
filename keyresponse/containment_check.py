"""Did containment hold? What a response checks after it contained the credentials.

The race (issue 16, finding H5): CloudTrail delivers its records about 5 to 15 minutes late, so a
credential the attacker minted just before the analysis read the logs is not in the analysis. It
survives containment, and with it the attacker sets the contained key Active again. So every response
checks, after containing (`flows/respond_to_exposed_key.py` runs `tasks.response.check_containment`):

| stage | when | what is checked |
|---|---|---|
| `after_containment` | right after containment is applied and verified | activity, reverted changes |
| `after_delivery_delay` | `KEYRESPONSE_RECHECK_DELAY_SECONDS` after the last containment, before eradication is asked | activity, reverted changes, the gap re-scoped |
| `before_post_incident` | at the end, before the report (waits for the same delay if it has not passed) | activity, reverted changes, the gap re-scoped |

Each finding is a `keyresponse.incident.Breach`; any breach reopens the incident: a new containment
approval round asks for what was found (`flows.phase.run_phase` with the rounds after the ones asked).

What counts:
- **activity**: a *successful* call (no error code in `queries/key_activity_after.sql`) by a contained
  credential after its most recent containment (the ledger's time of the change that contained it)
  plus `KEYRESPONSE_CONTAINMENT_GRACE_SECONDS` (IAM is eventually consistent: a call a few seconds
  after the write may still pass). A call that failed does not reopen: a denial (AccessDenied once the
  deny-all session policy is on, InvalidClientTokenId for an inactive key) is containment working.
  Every call after containment is still shown in the report with its error code, successful or not,
  for a human to read (a failure other than a denial, e.g. NoSuchEntity, deserves a look). Calls
  between a credential's first containment and a later one (made while the attacker had it active
  again) are shown but do not reopen a second time: that later containment answered them.
- **reverted**: a containment change still in effect (not undone, not ended by a later change) that
  AWS no longer shows: its action's `verify` raises (a deactivated key Active again, the revocation
  policy deleted).
- **minted**: a credential the incident's credentials minted in the gap (CloudTrail's
  `derived_credentials` from the end of the logs the analysis read, less an hour's overlap for late
  delivery, to now), or an access key created on a user in scope since (IAM,
  `tasks.response.find_keys_minted_since`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keyresponse.engines import QueryEngine
from keyresponse.incident import ActivityAfter, Breach, Incident, parse_time
from keyresponse.model import CredentialRecord, InvestigationRecord

#: CloudTrail delivers most records within 15 minutes; the gap is re-read from an hour before the
#: logs' end, so a record delivered late into an already-read hour is not missed.
DELIVERY_OVERLAP = timedelta(hours=1)
#: Rounds of the gap's re-scope: what the new credentials minted in turn.
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Contained:
    """A credential the response contained: when first, and when most recently (the ledger)."""

    access_key_id: str
    first_at: datetime
    last_at: datetime


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y/%m/%d")


def contained_credentials(incident: Incident) -> list[Contained]:
    """Every credential of the investigation the ledger shows contained (`report.credential_containment`:
    a key deactivated or deleted, a session revoked by the deny policy on its user or role)."""
    from keyresponse.report import credential_containment

    found = []
    for row in credential_containment(incident):
        times = [parse_time(change["applied_at"]) for change in row["changes"]]
        if row["contained"] and times:
            found.append(Contained(str(row["access_key_id"]), min(times), max(times)))
    return found


def activity_after(engine: QueryEngine, contained: Sequence[Contained], *, now: datetime,
                   grace: timedelta) -> list[ActivityAfter]:
    """What each contained credential did from its first containment on (`key_activity_after`, one
    query per second of first containment), each row marked `breach` when it holds successful calls
    after the credential's most recent containment and `grace`."""
    groups: dict[str, list[Contained]] = defaultdict(list)
    for item in contained:
        groups[stamp(item.first_at)].append(item)
    latest = {item.access_key_id: item.last_at for item in contained}
    rows: list[ActivityAfter] = []
    for after, group in sorted(groups.items()):
        params = {"access_key_ids": sorted(item.access_key_id for item in group), "after_time": after,
                  "start_day": _day(parse_time(after)), "end_day": _day(now + timedelta(days=1))}
        for row in engine.run("key_activity_after", params):
            at = latest[str(row["access_key_id"])]
            breach = row["error_code"] is None and parse_time(str(row["last_seen_at"])) > at + grace
            rows.append(ActivityAfter(**row, contained_at=stamp(at), breach=breach))
    return rows


def activity_breaches(rows: Sequence[ActivityAfter]) -> list[Breach]:
    return [Breach(kind="activity", subject=row.access_key_id,
                   detail=f"{row.call_count} successful {row.event_name} call(s) ({row.event_source}) from "
                          f"{row.source_ip}, {row.first_seen_at} to {row.last_seen_at}, after it was contained at "
                          f"{row.contained_at}") for row in rows if row.breach]


def gap_start(investigation: InvestigationRecord, analysis_completed_at: str | None,
              delay: timedelta) -> datetime | None:
    """Where the re-scope starts: the end of what the analysis could read (the window's end, or when it
    read the logs if that was earlier), less the larger of CloudTrail's delivery delay and an hour."""
    ends = [parse_time(value) for value in (investigation.window.end, analysis_completed_at) if value]
    return min(ends) - max(delay, DELIVERY_OVERLAP) if ends else None


def minted_in_gap(engine: QueryEngine, credentials: Sequence[CredentialRecord], *, since: datetime,
                  until: datetime) -> list[CredentialRecord]:
    """Credentials the incident's credentials minted from `since` to `until` that the investigation does
    not hold, and what those minted in turn (`derived_credentials`, to a fixpoint): as credentials of
    the investigation, with their evidence, for a human to approve containing."""
    from keyresponse.investigation import principal_of_session

    principals = {c.access_key_id: c.principal_arn for c in credentials}
    window = {"start_day": _day(since), "end_day": _day(until + timedelta(days=1)),
              "start_time": stamp(since), "end_time": stamp(until + timedelta(seconds=1))}
    found: list[CredentialRecord] = []
    ask = sorted(principals)
    for _ in range(MAX_ROUNDS):
        if not ask:
            break
        new = []
        for row in engine.run("derived_credentials", {"access_key_ids": ask, **window}):
            key, parent, event = row["access_key_id"], row["parent_access_key_id"], row["created_by_event"]
            if not key or key in principals:
                continue
            principal = row["principal_arn"] if row["kind"] == "access_key" else principal_of_session(row["principal_arn"])
            if event in ("GetSessionToken", "GetFederationToken") and principals.get(parent):
                principal = principals[parent]
            principals[key] = principal
            new.append(key)
            found.append(CredentialRecord(
                access_key_id=key, kind=row["kind"], created_by_event=event, parent=parent, principal_arn=principal,
                confidence="high", evidence=[f"minted with {event} by {parent} at {row['created_at']} from "
                                             f"{row['source_ip']}, in the gap CloudTrail delivered after the analysis "
                                             f"read the logs (re-read from {stamp(since)})"]))
        ask = sorted(new)
    return found


def minted_breaches(minted: Sequence[CredentialRecord]) -> list[Breach]:
    return [Breach(kind="minted", subject=c.access_key_id, detail="; ".join(c.evidence))
            for c in minted]
