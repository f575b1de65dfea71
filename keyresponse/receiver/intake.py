"""`AlertIntake`: spool, then launch; one incident per key however many alerts arrive at once.

It decides what an accepted alert is (new, a redelivery, a duplicate about a key with an open incident,
the next generation of an alert whose run ended), launches and relaunches runs, and notifies stuck
alerts. Over 400 lines, one class: deciding and launching share one lock (`_deciding`) and the launches
in flight (`_inflight`), and an ended run found at launch sends the alert back to deciding; split over
two modules, the lock's invariants would be too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from pydantic import JsonValue

from keyresponse.alerts import Alert, Source
from keyresponse.notifications import IncidentMessage, alert_stuck, launch_failed
from keyresponse.notifications import send as _send
from keyresponse.receiver import log
from keyresponse.receiver.launcher import (
    SUPERSEDED,
    DeploymentUnavailable,
    Launcher,
    LaunchFailed,
    LaunchResult,
    RunReader,
    RunState,
)
from keyresponse.receiver.spool import AlertSpool, OpenIncident, Replaced, SpoolRecord

_T = TypeVar("_T")


class FirstResponder(Protocol):
    """Contains a high-confidence alert's key before any flow run starts (`tasks.first_response.FirstResponder`,
    given by `keyresponse serve-webhook`: the receiver is library code and never imports the tasks layer)."""

    def start(self, alert: Alert, incident_id: str) -> bool: ...


Status = Literal["launched", "launching", "duplicate", "redelivered"]

#: An alert moves to its next generation when a launch is answered with an ended run; past this many,
#: something other than old runs is wrong, and the launch fails (the alert stays spooled).
MAX_GENERATIONS = 50


@dataclass(frozen=True)
class RunCheck:
    """What the receiver found about the flow run of an open incident."""

    incident_id: str
    flow_run_id: str | None
    state: RunState | None = None
    error: str | None = None  # the state could not be read: the incident is kept

    @property
    def ended(self) -> bool:
        return self.state is not None and self.state.terminal

    def warning(self) -> str | None:
        if self.error is None:
            return None
        return (f"{self.error}; the alert is spooled and attached to {self.incident_id}, and the next alert "
                "about the key checks its run again")


@dataclass(frozen=True)
class Accepted:
    alert: Alert
    incident_id: str
    status: Status
    flow_run_id: str | None
    ui_url: str | None
    duplicate_of: str | None = None
    launch_error: str | None = None
    run_state: str | None = None  # the open incident's run, as read when this alert was attached to it
    warning: str | None = None
    replaced: Replaced | None = None

    def body(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"incident_id": self.incident_id, "alert_id": self.alert.alert_id,
                               "flow_run_id": self.flow_run_id, "ui_url": self.ui_url, "status": self.status}
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        if self.run_state is not None:
            out["run_state"] = self.run_state
        if self.replaced is not None:
            out["replaced"] = self.replaced.model_dump()
        if self.warning is not None:
            out["warning"] = self.warning
        return out


class AlertIntake:
    """Spool, then launch: one incident per key, however many alerts arrive at once.

    Every file of the spool is read and written in worker threads (`asyncio.to_thread`), never on the
    event loop, so a slow disk or a large spool never holds up other requests. Deciding (find the
    spooled alert, find or claim the key's open incident, spool) happens under one lock (`_deciding`),
    one alert at a time, as it did when that work ran on the event loop and was atomic there; launching
    and reading a run's state happen outside it, and an alert is always spooled before either. A launch
    in flight is shared: a redelivery of that alert, or a duplicate about the same key, waits for it
    instead of launching again, and alerts about other keys launch in parallel. Reads of one run's
    state at once are shared too. With a `first_responder`, a new incident's key is contained in the
    background the moment the alert is spooled (see `tasks.first_response`). With `runs`, an
    alert about a key with an open incident first reads that incident's run: an ended run frees the key
    (package docstring). `counts` (accepted, launched, first responses, ...) and `pending` (as the last
    relaunch pass found it) are what `/healthz` reports, without reading the spool.
    """

    def __init__(self, spool: AlertSpool, launcher: Launcher, *, launch_timeout_seconds: float = 20.0,
                 answer_within_seconds: float = 4.0, first_responder: FirstResponder | None = None,
                 runs: RunReader | None = None, run_check_timeout_seconds: float = 2.0,
                 stuck_after_seconds: float = 600.0,
                 notify: Callable[[IncidentMessage], object] | None = None) -> None:
        self.spool = spool
        self.launcher = launcher
        self.launch_timeout_seconds = launch_timeout_seconds
        self.first_responder = first_responder
        self.answer_within_seconds = answer_within_seconds
        self.runs = runs
        self.run_check_timeout_seconds = run_check_timeout_seconds
        self._inflight: dict[str, asyncio.Future[Accepted]] = {}  # by incident id
        self._reads: dict[str, asyncio.Future[RunState]] = {}  # by flow run id
        self._deciding = asyncio.Lock()
        self.counts: Counter[str] = Counter()
        self.pending: int | None = None  # alerts waiting for a launch, as the last relaunch pass found them
        self.stuck_after = timedelta(seconds=stuck_after_seconds)
        self.notify = notify or _send
        self._sending: set[asyncio.Future[object]] = set()

    @staticmethod
    async def _io(work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`work` (spool file I/O) in a worker thread: the event loop goes on serving other requests."""
        return await asyncio.to_thread(work, *args, **kwargs)

    async def accept(self, alert: Alert) -> Accepted:
        now = datetime.now(UTC)
        async with self._deciding:
            existing = await self._io(self.spool.find, alert)
            then = await (self._again(existing, now) if existing is not None else self._first(alert, now))
        return await then

    async def find_id(self, source: Source, alert_id: str) -> SpoolRecord | None:
        """The spooled alert of `source` with `alert_id` (a GitHub redelivery is answered from it)."""
        return await self._io(self.spool.find_id, source, alert_id)

    async def _first(self, alert: Alert, now: datetime) -> Awaitable[Accepted]:
        """(Under `_deciding`.) An alert not spooled before: attached to its key's open incident, or opening one."""
        holder = await self._io(self._holder, alert, None, now)
        if holder is None:
            return await self._open(alert, 1, now, replaced=None)
        attached = await self._io(self._attach_record, alert, holder, now, generation=0)  # spooled before any wait
        return self._attached(attached, holder, now)

    async def _attached(self, attached: SpoolRecord, holder: OpenIncident, now: datetime) -> Accepted:
        check = await self._check(holder)
        if not check.ended:
            return await self._answer(attached, "duplicate", check)
        return await self._reopen(attached.alert, 1, now, check)

    async def _again(self, existing: SpoolRecord, now: datetime) -> Awaitable[Accepted]:
        """(Under `_deciding`.) An alert already spooled: answered from the spool, unless the incident it
        belongs to still holds its key and that incident's run has ended; then it opens its next generation."""
        if existing.duplicate_of is None:
            if existing.incident_id in self._inflight:
                return self._rejoin(existing, self._inflight[existing.incident_id])
            if existing.flow_run_id is None:  # spooled before, launch failed: try again
                return self._finish_launch(existing, self._start_launch(existing))
        belongs_to = existing.duplicate_of or existing.incident_id
        holder = await self._io(self._holder, existing.alert, belongs_to, now)
        if holder is None:  # its incident closed, was released or expired: nothing to follow
            return self._answer(existing, "redelivered")
        return self._redelivered(existing, holder, now)

    async def _rejoin(self, existing: SpoolRecord, task: asyncio.Future[Accepted]) -> Accepted:
        launched = await self._finish_launch(existing, task)
        return replace(launched, status="redelivered" if launched.flow_run_id else launched.status)

    async def _redelivered(self, existing: SpoolRecord, holder: OpenIncident, now: datetime) -> Accepted:
        check = await self._check(holder)
        if not check.ended:
            return await self._answer(existing, "redelivered", check)
        return await self._reopen(existing.alert, existing.generation + 1, now, check)

    async def _reopen(self, alert: Alert, generation: int, now: datetime, check: RunCheck) -> Accepted:
        """The incident `alert` belongs to has ended: free its keys, open the alert's `generation`-th."""
        async with self._deciding:
            replaced = await self._io(self._release, check)
            then = await self._open(alert, generation, now, replaced=replaced)
        return await then

    def _holder(self, alert: Alert, incident_id: str | None, now: datetime) -> OpenIncident | None:
        """(Worker thread.) The open incident holding one of the alert's subjects (`incident_id`'s, if given)."""
        for subject in alert.subjects:
            holder = self.spool.open_incident(subject, now)
            if holder is not None and incident_id in (None, holder.incident_id):
                return holder
        return None

    async def _check(self, holder: OpenIncident) -> RunCheck:
        """The state of `holder`'s flow run: one read by id (shared with concurrent checks of that run)."""
        opener = await self._io(self.spool.opener, holder)
        if opener is None:
            return RunCheck(holder.incident_id, None, error=f"the alert that opened {holder.incident_id} is gone "
                            "from the spool, so its run is unknown (`keyresponse release KEY` frees the key)")
        if opener.incident_id != holder.incident_id:  # its alert has opened a newer incident since
            return RunCheck(holder.incident_id, None, state=RunState(name="Superseded", type=SUPERSEDED))
        if opener.flow_run_id is None or self.runs is None:  # still being launched: alive
            return RunCheck(holder.incident_id, opener.flow_run_id)
        try:
            state = await asyncio.wait_for(asyncio.shield(self._read(opener.flow_run_id)),
                                           timeout=self.run_check_timeout_seconds)
        except TimeoutError:
            return RunCheck(holder.incident_id, opener.flow_run_id, error=f"Prefect did not answer with the "
                            f"state of flow run {opener.flow_run_id} within {self.run_check_timeout_seconds:g} s")
        except Exception as exc:
            log.warning("reading flow run %s of %s failed: %s", opener.flow_run_id, holder.incident_id, exc)
            return RunCheck(holder.incident_id, opener.flow_run_id, error=f"could not read the state of flow run "
                            f"{opener.flow_run_id} from Prefect ({type(exc).__name__}: {exc})"[:400])
        return RunCheck(holder.incident_id, opener.flow_run_id, state=state)

    def _read(self, flow_run_id: str) -> asyncio.Future[RunState]:
        assert self.runs is not None
        task = self._reads.get(flow_run_id)
        if task is None:
            task = asyncio.ensure_future(self.runs.run_state(flow_run_id))
            self._reads[flow_run_id] = task

            def done(finished: asyncio.Future[RunState]) -> None:
                if self._reads.get(flow_run_id) is finished:
                    del self._reads[flow_run_id]
                if not finished.cancelled():
                    finished.exception()  # retrieved: each waiter reports it

            task.add_done_callback(done)
        return task

    def _release(self, check: RunCheck) -> Replaced:
        """(Worker thread.) The incident's run has ended: free its keys (the run is left as it is)."""
        assert check.state is not None
        if freed := self.spool.close_incident(check.incident_id):  # 0: another alert freed them a moment ago
            log.warning("incident %s: flow run %s is %s; %d key(s) freed for a new incident", check.incident_id,
                        check.flow_run_id, check.state.name, freed)
        return Replaced(incident_id=check.incident_id, flow_run_id=check.flow_run_id, run_state=check.state.name)

    async def _open(self, alert: Alert, generation: int, now: datetime, *, replaced: Replaced | None,
                    bounded: bool = True) -> Awaitable[Accepted]:
        """(Under `_deciding`.) Spool the alert as the opener of its `generation`-th incident, claim its key,
        start the first response and the launch; what is returned waits for the launch (or answers)."""
        record = SpoolRecord(alert=alert, incident_id=alert.incident_id_at(generation), generation=generation,
                             idempotency_key=alert.launch_key(generation), received_at=now, replaced=replaced)
        attached = await self._io(self._spool_and_claim, record, now)
        self.counts["accepted"] += 1
        if attached is not None:  # another alert (or process) won the key first
            return self._answer(attached, "duplicate")
        if self.first_responder is not None:
            try:
                if await self._io(self.first_responder.start, alert, record.incident_id):
                    self.counts["first_responses"] += 1
            except Exception:  # never lose the alert over it: the flow contains the key anyway
                log.exception("first response for %s could not start", record.incident_id)
        return self._finish_launch(record, self._start_launch(record), bounded=bounded)

    def _spool_and_claim(self, record: SpoolRecord, now: datetime) -> SpoolRecord | None:
        """(Worker thread.) Spool `record`, claim its subjects; the alert attached to the incident that
        holds one of them already, or None when they are all this incident's."""
        path = self.spool.save(record)
        for subject in record.alert.subjects:
            holder = self.spool.claim(subject, record.incident_id, path, now)
            if holder.incident_id != record.incident_id:
                with suppress(FileNotFoundError):
                    path.unlink()
                return self._attach_record(record.alert, holder, now, generation=record.generation - 1)
        return None

    def _attach_record(self, alert: Alert, holder: OpenIncident, now: datetime, *, generation: int) -> SpoolRecord:
        """(Worker thread.)"""
        record = SpoolRecord(alert=alert, incident_id=holder.incident_id, idempotency_key=alert.idempotency_key,
                             received_at=now, generation=generation, duplicate_of=holder.incident_id,
                             incident_record=holder.alert_file)
        self.spool.save(record)
        self.counts["attached"] += 1
        return record

    async def _answer(self, record: SpoolRecord, status: Status, check: RunCheck | None = None) -> Accepted:
        flow_run_id, ui_url = record.flow_run_id, record.ui_url
        if record.duplicate_of is not None and record.duplicate_of in self._inflight:
            # The opener's run is being launched right now: answer with it. If that launch fails, the
            # opener's own request reports it; this alert is spooled and attached all the same.
            with suppress(Exception):
                opened = await asyncio.wait_for(asyncio.shield(self._inflight[record.duplicate_of]),
                                                timeout=self.answer_within_seconds)
                flow_run_id, ui_url = opened.flow_run_id, opened.ui_url
        elif record.incident_record is not None:  # the opener's run, which may have started since
            first = await self._io(self.spool.named, record.incident_record)
            if first is not None:
                if first.incident_id == record.incident_id:
                    flow_run_id, ui_url = first.flow_run_id, first.ui_url
                elif first.replaced is not None and first.replaced.incident_id == record.incident_id:
                    flow_run_id, ui_url = first.replaced.flow_run_id, None  # the opener has opened a newer one
        return Accepted(alert=record.alert, incident_id=record.incident_id, status=status,
                        flow_run_id=flow_run_id, ui_url=ui_url, duplicate_of=record.duplicate_of,
                        run_state=check.state.name if check and check.state else None,
                        warning=check.warning() if check else None, replaced=record.replaced)

    async def relaunch_pending(self) -> list[Accepted]:
        """Launch every spooled alert that opened an incident but never got a flow run; skip failures."""
        launched: list[Accepted] = []
        waiting = await self._io(self.spool.pending)
        self.pending = len(waiting)
        now = datetime.now(UTC)
        for record in waiting:
            if now - record.received_at > self.stuck_after:
                await self._notify_once(record, "stuck", lambda r: alert_stuck(
                    r.incident_id, (now - r.received_at).total_seconds(), r.launch_error))
        for record in waiting:
            async with self._deciding:
                current = await self._io(self.spool.find, record.alert)
                if current is None or current.flow_run_id is not None or current.incident_id in self._inflight:
                    continue
                task = self._start_launch(current)
            try:
                launched.append(await self._finish_launch(current, task, bounded=False))
            except (DeploymentUnavailable, LaunchFailed) as exc:
                log.warning("relaunch of %s failed: %s", record.idempotency_key, exc)
            except Exception:  # one alert's failure never stops the others' relaunch
                log.exception("relaunch of %s failed", record.idempotency_key)
        return launched

    async def archive_settled(self) -> int:
        """Move the settled records an older receiver left in `<spool>/alerts/` to the archive, one at a
        time between alerts; returns how many. Run once at start."""
        moved = 0
        for path in await self._io(self.spool.waiting_files):
            async with self._deciding:
                moved += await self._io(self.spool.archive_if_settled, path)
        if moved:
            log.info("moved %d settled alert record(s) to %s", moved, self.spool.archive_dir)
        return moved

    def _start_launch(self, record: SpoolRecord) -> asyncio.Future[Accepted]:
        """(Under `_deciding`.) The launch of `record`'s incident: the one in flight, or a new one."""
        task = self._inflight.get(record.incident_id)
        if task is None:
            task = asyncio.ensure_future(self._launch_now(record))
            self._inflight[record.incident_id] = task
            task.add_done_callback(lambda done: self._launched(record.incident_id, done))
        return task

    async def _finish_launch(self, record: SpoolRecord, task: asyncio.Future[Accepted], *,
                             bounded: bool = True) -> Accepted:
        """Wait for the launch; with `bounded`, answer `launching` after `answer_within_seconds` while the
        launch goes on in the background (the alert is spooled, and a launch that then fails is retried by
        the relaunch loop)."""
        if not bounded:
            return await asyncio.shield(task)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=self.answer_within_seconds)
        except TimeoutError:
            return Accepted(alert=record.alert, incident_id=record.incident_id, status="launching",
                            flow_run_id=None, ui_url=None, replaced=record.replaced)

    def _launched(self, incident_id: str, task: asyncio.Future[Accepted]) -> None:
        if self._inflight.get(incident_id) is task:
            del self._inflight[incident_id]
        if not task.cancelled():
            task.exception()  # retrieved here: `_launch_now` has logged it and the spool records it

    async def _save(self, record: SpoolRecord) -> None:
        async with self._deciding:
            await self._io(self._save_keeping_marks, record)

    def _save_keeping_marks(self, record: SpoolRecord) -> None:
        """(Worker thread, under `_deciding`.) Save `record`, keeping what the spooled copy of the same
        incident says was notified (`record` may be a copy taken before a notification)."""
        current = self.spool.find(record.alert)
        if current is not None and current.incident_id == record.incident_id and current.notified:
            record = record.model_copy(update={"notified": sorted({*record.notified, *current.notified})})
        self.spool.save(record)

    async def _notify_once(self, record: SpoolRecord, mark: str,
                           message: Callable[[SpoolRecord], IncidentMessage]) -> None:
        """Send `message(record)` unless `mark` was sent for this alert's incident before; the mark is
        spooled first, so neither the next relaunch pass nor a restarted receiver sends it again."""
        async with self._deciding:
            current = await self._io(self.spool.find, record.alert)
            if current is None or current.incident_id != record.incident_id or mark in current.notified:
                return
            await self._io(self.spool.save, current.model_copy(update={"notified": [*current.notified, mark]}))
        self.counts[f"notified_{mark}"] += 1
        sending = asyncio.ensure_future(asyncio.to_thread(self.notify, message(current)))
        self._sending.add(sending)  # kept until sent (the loop holds tasks weakly)
        sending.add_done_callback(self._sending.discard)

    async def _launch_now(self, record: SpoolRecord) -> Accepted:
        self.counts["launch_attempts"] += 1
        try:
            result = await asyncio.wait_for(
                self.launcher.launch(record.alert, record.incident_id, record.idempotency_key),
                timeout=self.launch_timeout_seconds,
            )
        except DeploymentUnavailable as exc:
            unavailable = str(exc)
            await self._save(record.model_copy(update={"launch_error": unavailable}))
            await self._notify_once(record, "launch_failed", lambda r: launch_failed(r.incident_id, unavailable))
            exc.incident_id = record.incident_id
            raise
        except Exception as exc:  # Prefect unreachable, timeout, ...: the alert stays spooled
            log.exception("launching %s failed; the alert stays spooled", record.idempotency_key)
            message = f"{type(exc).__name__}: {exc}"[:300]
            await self._save(record.model_copy(update={"launch_error": message}))
            await self._notify_once(record, "launch_failed", lambda r: launch_failed(r.incident_id, message))
            failed = LaunchFailed(message)
            failed.incident_id = record.incident_id
            raise failed from exc
        if result.state is not None and result.state.terminal:
            return await self._launched_an_ended_run(record, result)
        await self._save(record.model_copy(update={"flow_run_id": result.flow_run_id, "ui_url": result.ui_url,
                                                   "launch_error": None}))
        self.counts["launched"] += 1
        return Accepted(alert=record.alert, incident_id=record.incident_id, status="launched",
                        flow_run_id=result.flow_run_id, ui_url=result.ui_url, replaced=record.replaced)

    async def _launched_an_ended_run(self, record: SpoolRecord, result: LaunchResult) -> Accepted:
        """Prefect answered the launch with a run that had already ended: its idempotency key was used
        before (a spool started afresh while Prefect kept its runs), or this incident's run ended before
        the launch was confirmed. Nobody is responding either way: the alert opens its next generation."""
        assert result.state is not None
        if record.generation >= MAX_GENERATIONS:
            failed = LaunchFailed(f"{record.idempotency_key}: Prefect answered with an ended run "
                                  f"({result.state.name}) for {MAX_GENERATIONS} generations of this alert")
            failed.incident_id = record.incident_id
            await self._save(record.model_copy(update={"launch_error": str(failed)}))
            await self._notify_once(record, "launch_failed", lambda r: launch_failed(r.incident_id, failed))
            raise failed
        log.warning("launching %s answered flow run %s, already %s: the alert opens generation %d",
                    record.idempotency_key, result.flow_run_id, result.state.name, record.generation + 1)
        check = RunCheck(record.incident_id, result.flow_run_id, state=result.state)
        async with self._deciding:
            replaced = await self._io(self._release, check)
            then = await self._open(record.alert, record.generation + 1, datetime.now(UTC), replaced=replaced,
                                    bounded=False)
        return await then

    def health(self) -> dict[str, JsonValue]:
        """What `/healthz` reports: counters kept in memory, never a read of the spool."""
        return {"spool": str(self.spool.folder), "pending": self.pending, "quarantined": self.spool.quarantined,
                **{name: self.counts[name] for name in ("accepted", "attached", "launch_attempts", "launched",
                                                        "first_responses", "notified_launch_failed",
                                                        "notified_stuck")}}


async def relaunch_pending(spool: AlertSpool, launcher: Launcher,
                           *, launch_timeout_seconds: float = 20.0) -> list[Accepted]:
    """Launch every spooled alert that opened an incident but never got a flow run (after a restart).

    Failures are logged and skipped: the alert stays spooled for the next attempt.
    """
    intake = AlertIntake(spool, launcher, launch_timeout_seconds=launch_timeout_seconds)
    return await intake.relaunch_pending()
