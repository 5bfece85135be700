"""Send every planned task exactly once: reconcile, then dispatch through a shared rate limit.

1. **Reconcile.**  For each (project, region) with work to do, list the service's tasks once.
   Every open task is looked up, *pending* included: a planned task whose name exists with the
   same data sources is *exists* (or *created*, when this journal had already sent it); a name
   that exists with other sources is a *conflict* (never sent); a *sending*/*unknown* task
   that is not found is *pending* again.  Nothing is sent before this, so a journal that lost
   its last transactions (``bulkscan.run.store``: power loss) still creates each task once.
2. **Send.**  ``concurrency`` workers pull task keys from one queue (retries first, then plan
   order); each waits for the shared limiter, marks the task *sending* (committed) and sends
   it.  The verdict decides:

   ============== ====================================================================
   created/201    done
   throttled      the limiter pauses everyone and slows down; the task is queued again.
                  Throttled answers do not use up ``max_attempts`` (nothing was applied):
                  they are bounded by the task's time budget (``max_task_seconds``)
   transient      sent again after a full-jitter backoff, within ``max_attempts`` and
                  ``max_task_seconds``; then *gave_up* with the last error.  A failure to
                  reach the service at all (refused while connecting) uses up no attempt:
                  only time, so a run rides through a restart or a short outage.  These
                  rules are the one retry policy's (``bulkscan.run.retry``)
   ambiguous      *unknown*, then looked up by name over the settle window (``settle_s``:
                  lookups at 1, 3, 7, 15, ... s): found → *created* with its id; still
                  absent at the window's end → stays *unknown*, never re-sent blindly: a
                  resume lists again (once the window has passed since the last attempt)
                  and sends it only if absent.  The window is the longest any session of
                  the run sent under (``Journal.settle_window``): a resume given a shorter
                  ``settle_s`` still waits out the one its tasks were sent with.  Found
                  means the one matching rule (``bulkscan.run.remote.same_sources``), as
                  in reconcile
   task-perm.     *failed*
   project-perm.  *failed*, and so is every other pending task of that project, unsent
   run-fatal      stop at once: nothing new is sent; untouched tasks stay *pending*
   ============== ====================================================================

Stopping (``stop`` set, a fatal error, or all done): no new request starts; requests in flight
may finish within ``grace_s`` and are then cancelled, staying *sending* for the next resume to
reconcile.  State changes are group-committed (``bulkscan.run.store``): several tasks' changes
share one transaction, and a request leaves only once the commit holding its *sending* mark
is done, so the journal is consistent at any moment, including after SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NoReturn

from bulkscan.config import settle_offsets
from bulkscan.dsc.classify import RECORD_ADVICE
from bulkscan.dsc.client import CREATE_PATH
from bulkscan.errors import BulkscanError, DscError
from bulkscan.events import (
    Attempt,
    AttemptFinished,
    AttemptStarted,
    Progress,
    RateChanged,
    Reconciled,
    RunStopped,
    StopReason,
    TaskFinished,
    TaskPlanned,
    ignore,
    local_now,
)
from bulkscan.i18n import _
from bulkscan.models import Verdict
from bulkscan.run.ratelimit import AdaptiveRate
from bulkscan.run.remote import Lister, groups_text, listing_error, same_sources, slow_down
from bulkscan.run.retry import RetryPolicy
from bulkscan.run.states import OPEN_STATES, Tally, TaskState, tally
from bulkscan.run.store import MARK_WINDOW_S

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Awaitable, Mapping, Sequence

    from bulkscan.config import DispatchSettings
    from bulkscan.dsc.client import CreateResult, DscClient, RemoteTask
    from bulkscan.events import Observer
    from bulkscan.models import TaskRequest
    from bulkscan.run.remote import Listed, ListingAttempt
    from bulkscan.run.retry import RetryBudget
    from bulkscan.run.store import Journal

__all__ = ["DispatchResult", "dispatch"]

_PROGRESS_EVERY_S = 0.25
_TICK_S = 1.0  # progress at least this often, while nothing else moves it
_Group = tuple[str, str]  # (project_id, region)


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """How a dispatch ended: task counts over the whole journal, requests sent, the stop."""

    counts: Mapping[TaskState, int]
    requests: int
    stop_reason: StopReason
    message: str
    learned_rate_per_s: float
    held_back: int = 0  # open tasks that ``limit`` kept for a later resume
    # planned names that the final listing shows more than once, one line each
    duplicates: tuple[str, ...] = ()
    # why the final listing could not look for names created twice ("": it did, or no need)
    unchecked: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def succeeded(self) -> int:
        """Created, accepted or already existing."""
        return self.tally.succeeded

    @property
    def unfinished(self) -> int:
        """Pending, sending or unknown: what ``--resume`` would work on (gave_up aside)."""
        return self.tally.unfinished

    @property
    def tally(self) -> Tally:
        """The journal's tasks counted as a person is shown them (``states.tally``)."""
        return tally(self.counts)


class _Halt(Exception):
    """Raised inside a worker to stop the whole run (a run-fatal answer)."""


async def dispatch(
    plan_tasks: Sequence[TaskRequest],
    journal: Journal,
    client: DscClient,
    settings: DispatchSettings,
    *,
    observer: Observer = ignore,
    limit: int | None = None,
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
    limiter: AdaptiveRate | None = None,
    listed: Mapping[_Group, Listed] | None = None,
) -> DispatchResult:
    """Reconcile, then send every open task of ``plan_tasks`` (the first ``limit`` of them).

    ``journal`` must hold these tasks (``Journal.create`` with the same plan).  Setting
    ``stop`` asks for a graceful stop (Ctrl-C).  ``limiter`` replaces the default one built
    from ``settings.rate_per_s``.  ``listed``: listings made just before (``list_groups``),
    which reconcile uses instead of listing those groups again.  Records the start and the
    end of the run in the journal.
    """
    run = _Run(
        plan_tasks,
        journal=journal,
        client=client,
        settings=settings,
        observer=observer,
        stop=stop,
        rng=rng,
        limiter=limiter,
        listed=listed,
    )
    try:
        with journal.grouped():
            return await run.run(limit)
    finally:
        run.release_limiter()


class _Run:
    def __init__(
        self,
        plan_tasks: Sequence[TaskRequest],
        *,
        journal: Journal,
        client: DscClient,
        settings: DispatchSettings,
        observer: Observer,
        stop: asyncio.Event | None,
        rng: random.Random | None,
        limiter: AdaptiveRate | None,
        listed: Mapping[_Group, Listed] | None = None,
    ) -> None:
        self.prelisted = dict(listed or {})
        self.tasks = {t.key: t for t in plan_tasks}
        self.order = [t.key for t in plan_tasks]
        self.journal = journal
        self.client = client
        self.settings = settings
        self.observer = observer
        self.external_stop = stop
        self.rng = rng or random.Random()
        self.limiter = limiter or AdaptiveRate.from_settings(settings, rng=self.rng)
        self.tells_rate = self.limiter.on_change is None  # this run's observer is told
        if self.tells_rate:
            self.limiter.on_change = self._rate_changed
        self.policy = RetryPolicy.from_settings(settings)
        self.lister = Lister(client, limiter=self.limiter, policy=self.policy, rng=self.rng)
        self.state: dict[str, TaskState] = {}
        self.attempts: dict[str, int] = {}
        self.budget: dict[str, RetryBudget] = {}
        self.selected: list[str] = []
        self.chosen: frozenset[str] = frozenset()  # the selected keys, as a set
        self.tally: Counter[TaskState] = Counter()  # states of the selected tasks
        self.finished: set[str] = set()
        self.sent: set[str] = set()  # tasks whose create request left in this dispatch
        self.failed_groups: dict[_Group, DscError] = {}
        # (0 for a retry, 1 for a first send; sequence; key): retries go first, so that the
        # time budget of a task is spent on backoff and pauses, not behind the backlog
        self.queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self.queued = 0
        self.outstanding = 0
        self.timers: dict[str, asyncio.TimerHandle] = {}  # tasks waiting out a backoff
        self.retrying: set[str] = set()
        # looked up over the settle window after an ambiguity: when each one's window ends
        self.settling: dict[str, float] = {}
        self.busy: set[asyncio.Task[None]] = set()
        self.halt = asyncio.Event()
        self.reason: StopReason = "done"
        self.message = ""
        self.requests = 0
        self.last_progress = float("-inf")
        self.held_back = 0
        self.recheck = False  # the closing listing looks at every project (``_find_duplicates``)
        self.to_check = self.checked = 0  # the closing listing's groups, and those listed so far
        self.sending = False  # the send phase has begun (reconcile is over)
        self.unlisted: list[tuple[int, str]] = []  # (tasks, error) per unlistable group
        self.untrusted: list[tuple[int, str]] = []  # (tasks, error) per untrusted listing
        self.duplicates: tuple[str, ...] = ()
        self.unlisted_groups: set[_Group] = set()  # not listed at reconcile: nothing sent
        self.unchecked = ""  # the groups whose last listing failed: the first error, and why
        # the settle window: the longest any session of the run sent under (``run`` reads it)
        self.settle_s = settings.settle_s

    # -- the whole run ----------------------------------------------------------------------

    async def run(self, limit: int | None) -> DispatchResult:
        self._select(limit)
        before = self.journal.meta()  # how the last session ended: a check to make again?
        self.recheck = bool(
            before.started_at is not None
            and (before.stop_reason != "done" or before.duplicates or before.duplicates_unchecked)
        )
        self.journal.mark_started()
        self.settle_s = self.journal.settle_window(self.settings.settle_s)
        for key in self.selected:
            task = self.tasks[key]
            self.observer(
                TaskPlanned(key, task.name, task.project_id, task.region, len(task.sources))
            )
        relay = asyncio.create_task(self._relay_stop())
        ticker = asyncio.create_task(self._tick())
        try:
            await self._until_halted(self._reconcile())
            if not self.halt.is_set():
                await self._send_all()
            if self.reason == "done":
                await self._find_duplicates()
        except asyncio.CancelledError:
            self._stop("interrupted", _("cancelled"))
            self._finish()
            raise
        finally:
            relay.cancel()
            ticker.cancel()
            for timer in self.timers.values():
                timer.cancel()
        return self._finish()

    def _select(self, limit: int | None) -> None:
        for key, (state, attempts) in self.journal.states_and_attempts().items():
            self.state[key] = state
            self.attempts[key] = attempts
        missing = [k for k in self.order if k not in self.state]
        if missing:
            raise ValueError(f"{len(missing)} planned task(s) are not in the journal")
        open_keys = [k for k in self.order if self.state[k] in OPEN_STATES]
        self.selected = open_keys if limit is None else open_keys[: max(0, limit)]
        self.chosen = frozenset(self.selected)
        self.tally.update(self.state[k] for k in self.selected)
        self.held_back = len(open_keys) - len(self.selected)

    def _finish(self) -> DispatchResult:
        self._progress(force=True)
        if self.untrusted and not self.message:
            tasks = sum(n for n, _said in self.untrusted)
            self.message = _("{count} task(s) not sent: {reason}").format(
                count=tasks, reason=self.untrusted[0][1]
            )
        if self.unlisted and not self.message:
            tasks = sum(n for n, _said in self.unlisted)
            self.message = _(
                "{count} task(s) of {groups} project/region group(s) not sent: "
                "their existing tasks could not be listed ({error}); "
                "resume once the service can be reached"
            ).format(count=tasks, groups=len(self.unlisted), error=self.unlisted[0][1])
        if self.unchecked and not self.message:
            self.message = _(
                "names created twice not checked: the last listing failed ({error})"
            ).format(error=self.unchecked)
        rate = self.limiter.current_per_s
        self.journal.mark_ended(
            self.reason, self.message, learned_rate_per_s=rate, held_back=self.held_back
        )
        self.observer(RunStopped(self.reason, self.message))
        return DispatchResult(
            counts=self.journal.counts(),
            requests=self.requests + self.lister.requests,
            stop_reason=self.reason,
            message=self.message,
            learned_rate_per_s=rate,
            held_back=self.held_back,
            duplicates=self.duplicates,
            unchecked=self.unchecked,
        )

    def _stop(self, reason: StopReason, message: str) -> None:
        """The first reason wins: a fatal error during an interrupt is still reported."""
        if not self.halt.is_set():
            self.reason, self.message = reason, message
            self.halt.set()

    async def _relay_stop(self) -> None:
        if self.external_stop is not None:
            await self.external_stop.wait()
            self._stop("interrupted", _("stopped on request; resume to send the rest"))

    async def _until_halted(self, work: Awaitable[None]) -> None:
        """Run ``work`` unless the run halts first (then it is cancelled: reads only)."""
        main = asyncio.ensure_future(work)
        waiter = asyncio.create_task(self.halt.wait())
        try:
            await asyncio.wait({main, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not main.done():
                main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main

    # -- the end: one more listing, to catch a name created twice ------------------------------

    async def _find_duplicates(self) -> None:
        """List each project the session sent to once more, and note each of the run's
        planned names found there twice.  Every project of the run is listed when the last
        session found a name twice, could not look, or stopped before looking: a resume
        checks (again, after a dedupe say) instead of repeating an old finding or leaving a
        project unchecked; a session with nothing to send lists nothing otherwise."""
        if not self.selected and not self.recheck:
            return
        skipped = self.failed_groups.keys() | self.unlisted_groups
        sent = {(t.project_id, t.region) for t in map(self.tasks.__getitem__, self.selected)}
        names: dict[_Group, set[str]] = defaultdict(set)
        for task in self.tasks.values():
            group = (task.project_id, task.region)
            if (group in sent or self.recheck) and group not in skipped:
                names[group].add(task.name)
        lines: list[str] = []
        unchecked: list[tuple[_Group, DscError]] = []
        self.to_check = len(names)
        self._progress(force=True)
        for group, planned in names.items():
            try:
                remote = await self._list_remote(group, None, task_key=None)
            except _Halt:
                break
            self.checked += 1
            self._progress(force=True)
            if isinstance(remote, DscError):
                unchecked.append((group, remote))
                continue
            lines.extend(_duplicate_lines(group, planned, remote))
        if unchecked:
            self.unchecked = _unchecked_text(unchecked)
        self.duplicates = tuple(lines)
        self.journal.set_meta(duplicates=list(lines), duplicates_unchecked=self.unchecked)

    # -- phase 1: reconcile -------------------------------------------------------------------

    async def _reconcile(self) -> None:
        groups: dict[_Group, list[str]] = defaultdict(list)
        for key in self.selected:
            task = self.tasks[key]
            groups[(task.project_id, task.region)].append(key)
        gate = asyncio.Semaphore(self.settings.concurrency)
        pending = list(groups.items())
        try:
            # The first listing goes alone: when the credentials are wrong it is the only
            # request that fails (the gateway locks a key after five), not one per project.
            if pending:
                first, keys = pending.pop(0)
                await self._reconcile_group(first, keys, gate)
            if self.halt.is_set():
                return
            async with asyncio.TaskGroup() as tg:
                for group, keys in pending:
                    tg.create_task(self._reconcile_group(group, keys, gate))
        except* _Halt:
            pass

    async def _reconcile_group(
        self, group: _Group, keys: list[str], gate: asyncio.Semaphore
    ) -> None:
        remote: list[RemoteTask] | DscError
        prelisted = self._prelisted(group)  # journaled even when not used
        unsettled = any(self.state[k] in (TaskState.SENDING, TaskState.UNKNOWN) for k in keys)
        if prelisted is not None and not unsettled:
            remote = prelisted
        else:  # an outcome to settle: list once its settle window is over, not before
            await self._wait_settled(keys)
            async with gate:
                remote = await self._list_remote(group, None, task_key=None)
        if isinstance(remote, DscError) and remote.verdict is Verdict.PROJECT_PERMANENT:
            self._fail_group(group, remote)
            return
        if isinstance(remote, DscError):
            said = listing_error(remote)
            note = _(
                "not sent: the existing tasks of project {project} could not be listed ({error})"
            ).format(project=group[0], error=said)
            for key in keys:
                self.journal.set_state(key, self.state[key], error_msg=note)
            self.finished.update(keys)
            self.unlisted_groups.add(group)
            untrusted = remote.verdict is Verdict.UNTRUSTED
            (self.untrusted if untrusted else self.unlisted).append((len(keys), said))
            return
        shape = self.client.shapes.get(group)
        if shape is not None:  # which undocumented choices the service made, for the record
            self.journal.set_meta(**{f"list_shape:{group[0]}/{group[1]}": asdict(shape)})
        by_name: dict[str, list[RemoteTask]] = defaultdict(list)
        for item in remote:
            by_name[item.name].append(item)
        for key in keys:
            self._reconcile_task(key, by_name.get(self.tasks[key].name, []))

    def _prelisted(self, group: _Group) -> list[RemoteTask] | DscError | None:
        """The group's listing made before the run (journaled here), if there is one; a
        run-fatal answer it got stops the run as if reconcile had got it."""
        listed = self.prelisted.pop(group, None)
        if listed is None:
            return None
        for attempt in listed.attempts:
            self._record_listing(None, attempt)
            self.requests += attempt.pages  # the run's requests count its listing too
        answer = listed.answer
        if isinstance(answer, DscError):
            if answer.verdict is Verdict.RUN_FATAL:
                self._fatal(answer)
            return answer
        if listed.shape is not None:
            self.client.shapes.setdefault(group, listed.shape)  # type: ignore[arg-type]
        return list(answer)

    async def _wait_settled(self, keys: list[str]) -> None:
        """Before listing: wait out what is left of the settle window of ``keys`` (said on the
        terminal as tasks being settled)."""
        wait = self._settle_wait(keys)
        if wait <= 0:
            return
        unsettled = {k for k in keys if self.state[k] in (TaskState.SENDING, TaskState.UNKNOWN)}
        ends = time.monotonic() + wait
        self.settling.update(dict.fromkeys(unsettled, ends))
        self._progress(force=True)
        try:
            await asyncio.sleep(wait)
        finally:
            for key in unsettled:
                self.settling.pop(key, None)

    def _settle_wait(self, keys: list[str]) -> float:
        """Seconds until the settle window has passed since the last send of any of
        ``keys`` left *unknown* or *sending*, so that a late-created task shows.

        A task left *sending* was last sent when it was so marked (its row's last change),
        which may be after its last recorded attempt, or with none recorded (killed while
        its first request was in flight); an *unknown* one at its last attempt."""
        now = local_now()
        wait = 0.0
        for key in keys:
            state = self.state[key]
            if state not in (TaskState.SENDING, TaskState.UNKNOWN):
                continue
            sent = self.journal.task(key).sent_at
            wait = max(wait, self.settle_s - (now - sent).total_seconds())
        return min(wait, self.settle_s)

    def _reconcile_task(self, key: str, found: list[RemoteTask]) -> None:
        task, before = self.tasks[key], self.state[key]
        same = [r for r in found if same_sources(task.sources, r.data_sources)]
        if same:
            ours = before in (TaskState.SENDING, TaskState.UNKNOWN) or self.attempts[key] > 0
            after = TaskState.CREATED if ours else TaskState.EXISTS
            self._set(key, after, task_id=same[0].id, error_msg="")
        elif found:
            other = found[0]
            detail = _conflict_message(task, other)
            self._set(key, TaskState.CONFLICT, error_msg=detail, conflict=other)
        elif before is not TaskState.PENDING:
            self._set(key, TaskState.PENDING)
        after = self.state[key]
        if after is not TaskState.PENDING:
            self.finished.add(key)
        if after is not before or before is not TaskState.PENDING:
            task_id = same[0].id if same else None
            self.observer(Reconciled(key, task.name, before, after, task_id))

    # -- phase 2: send --------------------------------------------------------------------------

    async def _send_all(self) -> None:
        self.sending = True
        for key in self.selected:
            if self.state[key] is TaskState.PENDING and key not in self.finished:
                self._enqueue(key, retry=False)
                self.outstanding += 1
            else:
                self.finished.add(key)  # reconciled, failed with its project, or not listable
        if self.outstanding == 0:
            self._stop("done", "")
            return
        workers: list[asyncio.Task[None]] = []
        try:
            async with asyncio.TaskGroup() as tg:
                workers.extend(tg.create_task(self._worker()) for _n in range(self._n_workers()))
                tg.create_task(self._shepherd(workers))
        except* _Halt:
            pass

    def _n_workers(self) -> int:
        return max(1, min(self.settings.concurrency, self.outstanding))

    async def _shepherd(self, workers: list[asyncio.Task[None]]) -> None:
        """On halt: cancel idle workers now, busy ones after the grace period."""
        await self.halt.wait()
        for worker in workers:
            if worker not in self.busy:
                worker.cancel()
        busy = [w for w in workers if w in self.busy and not w.done()]
        if busy:
            await asyncio.wait(busy, timeout=self.settings.grace_s)
        for worker in busy:
            worker.cancel()

    async def _worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self.halt.is_set():
            _priority, _order, key = await self.queue.get()
            task = self.tasks[key]
            group = (task.project_id, task.region)
            if self.state[key] is TaskState.PENDING and group in self.failed_groups:
                self._fail_group(group, self.failed_groups[group])
            if self.state[key] is not TaskState.PENDING:
                self._settle(key)  # failed with its project while it waited
                continue
            granted = await self.limiter.acquire()
            if self.halt.is_set():
                return
            self.busy.add(me)
            try:
                await self._send(key, granted)
            except _Halt:
                return
            finally:
                self.busy.discard(me)

    async def _send(self, key: str, granted: float) -> None:
        task = self.tasks[key]
        budget = self.budget.get(key)
        if budget is None:  # the task's budget starts at its first send in this dispatch
            budget = self.budget[key] = self.policy.start(rng=self.rng)
        self.journal.mark_sending(key)
        # the mark is durable before the request leaves; the busy workers' marks share a
        # commit when the limiter lets them come at once (not when it spaces them out)
        together = self.limiter.wait_s() <= MARK_WINDOW_S
        await self.journal.committed(expect=len(self.busy) if together else 1)
        self._note(key, TaskState.SENDING)
        n = self.attempts[key] + 1
        self.sent.add(key)
        self.observer(AttemptStarted(key, task.name, n))
        at, started = local_now(), time.monotonic()
        self.requests += 1
        try:
            result = await self.client.create_task(
                task.project_id, task.body_bytes, region=task.region
            )
        except DscError as exc:
            attempt = self._attempt(task, n, "POST", at, started, exc=exc)
            await self._on_error(key, attempt, exc, budget, granted)
        except BulkscanError as exc:  # refused before sending (e.g. a region without endpoint)
            self._set(key, TaskState.PENDING, error_msg=str(exc))
            self._fatal(exc)
        else:
            attempt = self._attempt(task, n, "POST", at, started, result=result)
            self._on_created(key, attempt, result, granted)

    # -- outcomes --

    def _on_created(self, key: str, attempt: Attempt, result: CreateResult, granted: float) -> None:
        state = TaskState.CREATED if result.verdict is Verdict.CREATED else TaskState.ACCEPTED
        self._record(attempt, state, task_id=result.task_id)
        self.limiter.on_success(sent_at=granted)
        self._settle(key)

    async def _on_error(
        self, key: str, attempt: Attempt, exc: DscError, budget: RetryBudget, granted: float
    ) -> None:
        verdict, message = exc.verdict, str(exc)
        if verdict is Verdict.THROTTLED:
            self._record(attempt, TaskState.PENDING, error_msg=message, throttled=True)
            asked = slow_down(self.limiter, exc, sent_at=granted, cap_s=budget.remaining())
            if asked is not None:
                self._say_capped(asked, budget)
            self._retry(key, budget, budget.after_failure(exc))
        elif verdict is Verdict.TRANSIENT:
            self._record(attempt, TaskState.PENDING, error_msg=message)
            self._retry(key, budget, budget.after_failure(exc))
        elif verdict is Verdict.AMBIGUOUS:
            self._record(attempt, TaskState.UNKNOWN, error_msg=message)
            await self._verify(key, exc)
        elif verdict is Verdict.TASK_PERMANENT:
            self._record(attempt, TaskState.FAILED, error_msg=message)
            self._settle(key)
        elif verdict is Verdict.PROJECT_PERMANENT:
            self._record(attempt, TaskState.FAILED, error_msg=message)
            self._settle(key)
            task = self.tasks[key]
            self._fail_group((task.project_id, task.region), exc)
        else:
            self._record(attempt, TaskState.PENDING, error_msg=message)
            self._fatal(exc)

    def _say_capped(self, asked: float, budget: RetryBudget) -> None:
        """A ``Retry-After`` past the task's time budget was cut to what is left of it."""
        rate = self.limiter.current_per_s
        reason = _(
            "the service asked to wait {asked}s (Retry-After), past the task time budget "
            "(--task-budget {budget}s): waiting {left}s at most"
        ).format(
            asked=f"{asked:g}",
            budget=f"{self.policy.max_seconds:g}",
            left=f"{budget.remaining():.0f}",
        )
        self.observer(RateChanged(rate, rate, reason))

    def _retry(self, key: str, budget: RetryBudget, delay: float | None) -> None:
        """Queue the task again after ``delay``, or give it up (``delay`` None: out of budget)."""
        if delay is None:
            self._set(key, TaskState.GAVE_UP, error_msg=budget.last_error)
            self._settle(key)
            return
        if self.halt.is_set():
            return
        if delay <= 0:
            self._enqueue(key, retry=True)
            return
        self.retrying.add(key)
        self.timers[key] = asyncio.get_running_loop().call_later(delay, self._wake, key)

    def _wake(self, key: str) -> None:
        """A backoff is over: queue the task again."""
        self.retrying.discard(key)
        del self.timers[key]
        self._enqueue(key, retry=True)

    def _enqueue(self, key: str, *, retry: bool) -> None:
        self.queued += 1
        self.queue.put_nowait((0 if retry else 1, self.queued, key))

    async def _verify(self, key: str, exc: DscError) -> None:
        """After an ambiguous answer: look the task up by name over the settle window.

        Found → *created* (or a *conflict*); still absent when the window ends → *unknown*,
        not re-sent in this run: a resume lists again once the window has passed.
        """
        task = self.tasks[key]
        self.retrying.add(key)
        self.settling[key] = time.monotonic() + self.settle_s
        self._progress(force=True)  # the terminal says how many are being looked up
        try:
            found = await self._settle_lookup(key)
        finally:
            self.retrying.discard(key)
            self.settling.pop(key, None)
        if isinstance(found, DscError):
            note = _("outcome unknown: the task could not be looked up ({error})").format(
                error=found
            )
            self._set(key, TaskState.UNKNOWN, error_msg=note)
            self._settle(key)
            return
        matches = [r for r in found if r.name == task.name]
        same = [r for r in matches if same_sources(task.sources, r.data_sources)]
        if same:
            self._set(key, TaskState.CREATED, task_id=same[0].id, error_msg="")
            self.observer(
                Reconciled(key, task.name, TaskState.UNKNOWN, TaskState.CREATED, same[0].id)
            )
        elif matches:
            other = matches[0]
            self._set(
                key, TaskState.CONFLICT, error_msg=_conflict_message(task, other), conflict=other
            )
        else:
            note = _(
                "outcome unknown ({error}): not found within the settle window "
                "({seconds}s); not sent again: resume to look it up once more "
                "and send it only if it is still absent"
            ).format(error=exc, seconds=f"{self.settle_s:g}")
            self._set(key, TaskState.UNKNOWN, error_msg=note)
        self._settle(key)

    async def _settle_lookup(self, key: str) -> list[RemoteTask] | DscError:
        """Look ``key``'s name up at each of the settle window's offsets until it shows.

        A lookup that fails (the lister has already retried it within the policy) ends the
        window: the task stays *unknown* for a resume.
        """
        task = self.tasks[key]
        group = (task.project_id, task.region)
        start = time.monotonic()
        # the first lookup after one backoff of the retry policy, as any first retry
        first = min(self.policy.backoff(1, self.rng), self.settle_s)
        found: list[RemoteTask] | DscError = []
        for offset in (first, *settle_offsets(self.settle_s)):
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            found = await self._list_remote(group, task.name, task_key=key)
            if isinstance(found, DscError) or any(r.name == task.name for r in found):
                return found
        return found

    def _fail_group(self, group: _Group, exc: DscError) -> None:
        """The project cannot take tasks: fail its pending selected tasks without sending."""
        self.failed_groups.setdefault(group, exc)
        keys = [
            k
            for k in self.selected
            if (self.tasks[k].project_id, self.tasks[k].region) == group
            and self.state[k] in (TaskState.PENDING, TaskState.GAVE_UP)
            and k not in self.finished
        ]
        self.journal.fail_tasks(
            keys, error_msg=str(exc), error_code=exc.code, http_status=exc.status
        )
        for key in keys:
            self._note(key, TaskState.FAILED)
            self.observer(TaskFinished(key, self.tasks[key].name, TaskState.FAILED, None, str(exc)))
            timer = self.timers.pop(key, None)
            if timer is not None:  # waiting out a backoff: settled now; queued: when taken
                timer.cancel()
                self.retrying.discard(key)
                self._settle(key)
        self._progress()

    def _fatal(self, exc: BulkscanError) -> NoReturn:
        self._stop("fatal", str(exc))
        raise _Halt

    # -- listing with retries --

    async def _list_remote(
        self,
        group: _Group,
        task_name: str | None,
        *,
        task_key: str | None,
        first_wait: bool = False,
    ) -> list[RemoteTask] | DscError:
        """List a project's tasks (all, or by name); the last error when it cannot be done.

        Every try is journaled; a run-fatal answer (or a request refused before sending, a
        configuration error) halts the run.
        """

        def record(attempt: ListingAttempt) -> None:
            self._record_listing(task_key, attempt)

        try:
            return await self.lister.list_tasks(
                group[0], group[1], task_name=task_name, first_wait=first_wait, on_attempt=record
            )
        except BulkscanError as exc:
            self._fatal(exc)

    # -- journal and events -------------------------------------------------------------------

    def _attempt(
        self,
        task: TaskRequest,
        n: int,
        method: str,
        at: dt.datetime,
        started: float,
        *,
        result: CreateResult | None = None,
        exc: DscError | None = None,
    ) -> Attempt:
        latency = time.monotonic() - started
        path = CREATE_PATH.format(project_id=task.project_id)
        if result is not None:
            return Attempt(
                at,
                task.key,
                n,
                method,
                path,
                result.http_status,
                None,
                result.request_id,
                latency,
                str(result.verdict),
                result.msg,
            )
        assert exc is not None
        return Attempt(
            at,
            task.key,
            n,
            method,
            path,
            exc.status,
            exc.code,
            exc.request_id,
            latency,
            str(exc.verdict),
            str(exc),
        )

    def _record(
        self,
        attempt: Attempt,
        state: TaskState,
        *,
        task_id: str | None = None,
        error_msg: str | None = None,
        throttled: bool = False,
    ) -> None:
        key = attempt.task_key
        assert key is not None
        self.journal.record_attempt(
            attempt, state=state, task_id=task_id, error_msg=error_msg, throttled=throttled
        )
        self._note(key, state)
        self.attempts[key] += 1
        self.observer(AttemptFinished(attempt, self.tasks[key].name))
        if state not in OPEN_STATES or state is TaskState.GAVE_UP:
            self.observer(TaskFinished(key, self.tasks[key].name, state, task_id, error_msg))

    def _record_listing(self, task_key: str | None, listing: ListingAttempt) -> None:
        path = CREATE_PATH.format(project_id=listing.project_id)
        exc = listing.error
        status: int | None
        if exc is None:
            status, code, rid = 200, None, None
            verdict, msg = "listed", _("{count} task(s)").format(count=listing.found)
        else:
            status, code, rid = exc.status, exc.code, exc.request_id
            verdict, msg = str(exc.verdict), str(exc)
        latency = listing.latency_s
        attempt = Attempt(
            listing.at, task_key, 0, "GET", path, status, code, rid, latency, verdict, msg
        )
        self.journal.record_attempt(attempt, counted=False)
        name = self.tasks[task_key].name if task_key else None
        self.observer(AttemptFinished(attempt, name))

    def _set(
        self,
        key: str,
        state: TaskState,
        *,
        task_id: str | None = None,
        error_msg: str | None = None,
        conflict: RemoteTask | None = None,
    ) -> None:
        pair = (conflict.id, conflict.data_sources) if conflict is not None else None
        self.journal.set_state(key, state, task_id=task_id, error_msg=error_msg, conflict=pair)
        self._note(key, state)
        if state is not TaskState.SENDING and state is not TaskState.PENDING:
            self.observer(TaskFinished(key, self.tasks[key].name, state, task_id, error_msg))

    def _note(self, key: str, state: TaskState) -> None:
        """``key`` is now in ``state`` (already journaled); keeps the tally for progress."""
        before = self.state[key]
        self.state[key] = state
        if key in self.chosen:
            self.tally[before] -= 1
            self.tally[state] += 1

    def _settle(self, key: str) -> None:
        """``key`` needs nothing more in this dispatch; halt when nothing is left."""
        if key in self.finished:
            return
        self.finished.add(key)
        self.outstanding -= 1
        self._progress()
        if self.outstanding <= 0:
            self._stop("done", "")

    async def _tick(self) -> None:
        """Progress every second, so that the time left counts down through waits in which
        nothing settles (a settle window, a backoff) instead of standing still."""
        while True:
            await asyncio.sleep(_TICK_S)
            self._progress()

    def release_limiter(self) -> None:
        """The run is over: a limiter used on (an update after the run) tells no one."""
        if self.tells_rate:
            self.limiter.on_change = None

    def _rate_changed(self, old: float, new: float, reason: str) -> None:
        self.observer(RateChanged(old, new, reason))

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < _PROGRESS_EVERY_S:
            return
        self.last_progress = now
        counted = tally(self.tally)  # the selected tasks only
        rate = self.limiter.current_per_s
        remaining = len(self.selected) - len(self.finished)
        eta = remaining / rate if remaining else 0.0
        if self.settling:  # tasks wait out their settle window: sending waits for it first
            left = max(0.0, max(self.settling.values()) - now)
            eta = max(eta, left) if self.sending else left + eta
        self.observer(
            Progress(
                settled=counted.settled,
                total=len(self.selected),
                created=counted.succeeded,
                failed=counted.errors,
                retrying=len(self.retrying),
                sent=len(self.sent),
                rate_per_s=rate,
                eta_s=eta,
                settling=len(self.settling),
                settle_s=self.settle_s,
                checked=self.checked,
                to_check=self.to_check,
            )
        )


def _duplicate_lines(group: _Group, planned: set[str], remote: Sequence[RemoteTask]) -> list[str]:
    ids: dict[str, list[str]] = defaultdict(list)
    for item in remote:
        if item.name in planned:
            ids[item.name].append(item.id)
    return [
        _("task '{name}' exists {count} times in project {project} (ids {ids})").format(
            name=name, count=len(found), project=group[0], ids=", ".join(found)
        )
        for name, found in sorted(ids.items())
        if len(found) > 1
    ]


def _unchecked_text(failed: Sequence[tuple[_Group, DscError]]) -> str:
    """Why the closing listing could not look for names created twice: the first group's
    error (its own advice is about sending, which is over) and how many groups failed."""
    if failed[0][1].verdict is Verdict.UNTRUSTED:
        advice = _(RECORD_ADVICE)
    else:
        advice = _("'bulkscan audit' lists the tasks again once the service answers")
    return _("{error}; {advice}").format(error=groups_text(failed), advice=advice)


def _conflict_message(task: TaskRequest, other: RemoteTask) -> str:
    ours = ", ".join(f"{s.db_type}:{s.ins_id}" for s in task.sources)
    theirs = ", ".join(f"{s.db_type}:{s.ins_id}".lstrip(":") for s in other.data_sources)
    return _(
        "a task named '{name}' already exists (id {id}) with other data sources "
        "[{theirs}] than planned [{ours}]: not sent; rename the task or delete the old one"
    ).format(name=task.name, id=other.id, theirs=theirs, ours=ours)
