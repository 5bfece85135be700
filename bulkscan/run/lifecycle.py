"""After creation: the scans' status, run now / enable / disable, and undo, journalled.

Everything here works on what a run directory's journal recorded, through the run's client,
the one retry policy, the shared rate limiter and the one listing path and matching rule
(``bulkscan.run.remote``).

The lifecycle journal is a second SQLite file in the run directory (``lifecycle.sqlite``), not
new tables in ``journal.sqlite``: the run journal stays the record of what the run created
(written once, by ``run``), and the commands after it (which may be repeated, and which a run
being resumed must never see half-written) keep their own history beside it, under the same
run-directory lock.  Each action is *sending* (committed before its request leaves), then
``done``, ``gone`` (nothing left to do: the service no longer has the task), ``kept`` (not
deleted: it changed since the run) or ``failed``.  A killed command resumes from that file:

* **undo** lists each project first; a task marked *sending* that the listing no longer shows
  was deleted (marked done, nothing sent), one still shown is deleted again (it was not
  deleted, so this is not twice).  A task already done is never listed again: a second undo
  sends nothing.
* **start** records the number of runs the task had before its request; a *sending* START
  whose task now has more runs was applied (done, not resent).  ENABLE and DISABLE are
  idempotent and simply resent.  An unfinished batch of the same action is resumed instead of
  a new one being started, unless the opposite action (ENABLE after a DISABLE) came since.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import random
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bulkscan.errors import DscError, JournalError, UsageError
from bulkscan.events import local_now
from bulkscan.i18n import _
from bulkscan.models import Verdict
from bulkscan.run.ratelimit import AdaptiveRate
from bulkscan.run.remote import Lister, same_sources, slow_down
from bulkscan.run.retry import RETRIED_READS, RetryPolicy
from bulkscan.run.states import ActionState, ScanState, TaskState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

    from bulkscan.config import DispatchSettings
    from bulkscan.dsc.client import DscClient, LifecycleCalls, RemoteTask, TaskRun
    from bulkscan.run.store import Journal, TaskRecord

__all__ = [
    "LIFECYCLE_FILE",
    "ActionRecord",
    "ActionReport",
    "ActionState",
    "DELETE",
    "RESTORE",
    "Lifecycle",
    "LifecycleStore",
    "PlannedAction",
    "ScanRecord",
    "ScanState",
    "UndoneTask",
    "Wire",
    "read_actions",
    "read_scans",
    "read_undone",
    "scan_state",
]

T = TypeVar("T")
LIFECYCLE_FILE = "lifecycle.sqlite"
DELETE_BATCH = 25  # ids per batch delete (the API takes a list; its limit is not documented)
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started TEXT NOT NULL, finished TEXT
);
CREATE TABLE IF NOT EXISTS actions (
    batch INTEGER NOT NULL, task_key TEXT NOT NULL, kind TEXT NOT NULL, task_id TEXT,
    name TEXT NOT NULL, state TEXT NOT NULL, runs_before INTEGER, detail TEXT,
    marked_at TEXT NOT NULL, done_at TEXT, before TEXT, PRIMARY KEY (batch, task_key)
);
CREATE TABLE IF NOT EXISTS scans (
    task_key TEXT PRIMARY KEY, task_id TEXT, name TEXT NOT NULL, project_id TEXT NOT NULL,
    region TEXT NOT NULL, origin TEXT NOT NULL, state TEXT NOT NULL, status TEXT,
    started TEXT, ended TEXT, error TEXT, runs INTEGER, checked_at TEXT NOT NULL
);
"""
_UNDO_BATCH = 0  # undo is one set of actions for the run, however often it is resumed
# The two changes an undo makes: delete a task the run created, restore one it updated
DELETE = "delete"
RESTORE = "restore"
# The run's tasks undo deleted, or found gone (``UndoneTask``): THE rule, in SQL
_UNDONE = (
    "SELECT task_key, name, task_id, state, done_at FROM actions "
    "WHERE batch=? AND kind='delete' AND state IN ('done', 'gone')"
)
_OPPOSITES = {"enable": "disable", "disable": "enable"}  # each sets what the other unsets


_FINAL = frozenset({ActionState.DONE, ActionState.GONE})


_RUNNING_WORDS = ("run", "wait", "pend", "init", "queue", "scan", "start", "process")
_SUCCESS_WORDS = ("succ", "finish", "complete", "done", "ok")
_FAILURE_WORDS = ("fail", "error", "abort", "stop", "cancel", "timeout", "exception")


def scan_state(status: str | None) -> ScanState:
    """THE rule for a run's ``task_status`` word (failure words are checked first)."""
    text = (status or "").strip().casefold()
    if not text:
        return ScanState.UNKNOWN
    for words, state in (
        (_FAILURE_WORDS, ScanState.FAILED),
        (_SUCCESS_WORDS, ScanState.SUCCEEDED),
        (_RUNNING_WORDS, ScanState.RUNNING),
    ):
        if any(word in text for word in words):
            return state
    return ScanState.UNKNOWN


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """A task's latest run as last checked (times are the service's, in UTC)."""

    task_key: str
    task_id: str | None
    name: str
    project_id: str
    region: str
    origin: str  # created or exists: how the run met the task
    state: ScanState
    status: str | None
    started: dt.datetime | None
    ended: dt.datetime | None
    error: str | None
    runs: int | None
    checked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class UndoneTask:
    """A task of the run that undo deleted (``DONE``) or found already gone (``GONE``): no
    later action or read reaches it, and none is sent."""

    task_key: str
    name: str
    task_id: str | None
    state: ActionState
    when: dt.datetime | None  # when undo recorded it (local)


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One task an action will (or will not) touch, and why."""

    task: TaskRecord
    task_id: str | None
    state: ActionState | None  # None: to be sent; else already settled (or kept)
    why: str = ""
    body: bytes | None = None  # an update's (or an undo's revert) body; None: a delete
    before: str | None = None  # an update: the remote task as it was (JSON)
    change: str = ""  # an undo's: DELETE (the run created it) or RESTORE (it updated it)


@dataclass(slots=True)
class ActionReport:
    """What an action command did: counts by final state, the tasks kept or failed."""

    kind: str
    planned: list[PlannedAction] = field(default_factory=list)
    results: dict[str, ActionState] = field(default_factory=dict)  # task key -> state
    messages: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    earlier: int = 0  # tasks an earlier command of the same batch had done (a resume)
    undone: dict[str, UndoneTask] = field(default_factory=dict)  # gone since undo: not sent

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self.results.values():
            counts[str(state)] = counts.get(str(state), 0) + 1
        return counts

    def changes(self) -> dict[str, dict[str, int]]:
        """An undo's counts by change (``DELETE``, ``RESTORE``), then by state; else empty."""
        changes: dict[str, dict[str, int]] = {}
        for step in self.planned:
            state = self.results.get(step.task.key)
            if step.change and state is not None:
                counts = changes.setdefault(step.change, {})
                counts[str(state)] = counts.get(str(state), 0) + 1
        return changes

    @property
    def ok(self) -> bool:
        return all(s in _FINAL for s in self.results.values())


def _ms_time(value: int | None) -> dt.datetime | None:
    if value is None or value <= 0:
        return None
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).replace(tzinfo=None)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


# --------------------------------------------------------------------------- the store


class LifecycleStore:
    """``lifecycle.sqlite`` in a run directory (created on first write)."""

    def __init__(self, run_dir: Path, *, readonly: bool = False) -> None:
        path = run_dir / LIFECYCLE_FILE
        self.path = path
        if readonly:
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            return
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._check_version()

    def _check_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),)
            )
        elif int(row[0]) != _SCHEMA_VERSION:
            raise JournalError(
                _(
                    "{path} was written by another bulkscan (schema {schema}): "
                    "use the bulkscan that wrote it"
                ).format(path=self.path, schema=row[0])
            )

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # -- batches and actions --

    def open_batch(self, kind: str) -> int:
        """The unfinished batch of ``kind`` (a killed command), or a new one.

        An unfinished ENABLE or DISABLE that the opposite action followed is not resumed
        (it is closed): its done tasks were switched back since, and resuming it would send
        only the tasks it had not done, leaving the others as the later action set them."""
        if kind == "delete":
            self._conn.execute(
                "INSERT OR IGNORE INTO batches VALUES (?, 'delete', ?, NULL)",
                (_UNDO_BATCH, _iso(local_now())),
            )
            return _UNDO_BATCH
        row = self._conn.execute(
            "SELECT id FROM batches WHERE kind=? AND finished IS NULL ORDER BY id DESC", (kind,)
        ).fetchone()
        if row is not None and not self._undone(kind, int(row[0])):
            return int(row[0])
        if row is not None:
            self.finish_batch(int(row[0]))
        cur = self._conn.execute(
            "INSERT INTO batches (kind, started) VALUES (?, ?)", (kind, _iso(local_now()))
        )
        return int(cur.lastrowid or 0)

    def _undone(self, kind: str, batch: int) -> bool:
        """Whether the opposite of ``kind`` (enable, disable) was sent after ``batch``."""
        opposite = _OPPOSITES.get(kind)
        if opposite is None:
            return False
        later = self._conn.execute(
            "SELECT 1 FROM batches WHERE kind=? AND id>? LIMIT 1", (opposite, batch)
        ).fetchone()
        return later is not None

    def finish_batch(self, batch: int) -> None:
        self._conn.execute("UPDATE batches SET finished=? WHERE id=?", (_iso(local_now()), batch))

    def states(self, batch: int) -> dict[str, tuple[ActionState, int | None]]:
        rows = self._conn.execute(
            "SELECT task_key, state, runs_before FROM actions WHERE batch=?", (batch,)
        ).fetchall()
        return {key: (ActionState(state), runs) for key, state, runs in rows}

    def mark_sending(
        self,
        batch: int,
        kind: str,
        items: Iterable[tuple[TaskRecord, str | None, int | None]],
    ) -> None:
        """Durable before the request leaves (one commit for a batch delete's ids)."""
        now = _iso(local_now())
        with self._tx() as cur:
            for task, task_id, runs_before in items:
                cur.execute(
                    "INSERT OR REPLACE INTO actions VALUES (?,?,?,?,?,?,?,NULL,?,NULL,NULL)",
                    (batch, task.key, kind, task_id, task.name, ActionState.SENDING,
                     runs_before, now),
                )  # fmt: skip

    def settle(
        self, batch: int, kind: str, task: TaskRecord, task_id: str | None, *,
        state: ActionState, detail: str | None = None,
    ) -> None:  # fmt: skip
        self._conn.execute(
            "INSERT INTO actions VALUES (?,?,?,?,?,?,NULL,?,?,?,NULL) "
            "ON CONFLICT (batch, task_key) "
            "DO UPDATE SET state=excluded.state, detail=excluded.detail, done_at=excluded.done_at",
            (batch, task.key, kind, task_id, task.name, state, detail,
             _iso(local_now()), _iso(local_now())),
        )  # fmt: skip

    def mark_update(self, batch: int, task: TaskRecord, task_id: str, before: str) -> None:
        """An update about to leave, with the remote task as it was (to revert it)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO actions VALUES (?,?,'update',?,?,?,NULL,NULL,?,NULL,?)",
            (batch, task.key, task_id, task.name, ActionState.SENDING, _iso(local_now()), before),
        )

    def updates(self) -> dict[str, tuple[ActionState, str | None, str]]:
        """Every update sent by this run dir's commands: task key -> (state, task id, before)."""
        rows = self._conn.execute(
            "SELECT task_key, state, task_id, before FROM actions WHERE kind='update'"
        ).fetchall()
        return {key: (ActionState(state), tid, before) for key, state, tid, before in rows}

    def undone(self) -> dict[str, UndoneTask]:
        """The run's tasks undo deleted or found gone, by task key."""
        rows = self._conn.execute(_UNDONE, (_UNDO_BATCH,)).fetchall()
        return {
            key: UndoneTask(key, name, task_id, ActionState(state), _parse(done_at))
            for key, name, task_id, state, done_at in rows
        }

    # -- scans --

    def save_scans(self, scans: Iterable[ScanRecord]) -> None:
        with self._tx() as cur:
            for s in scans:
                cur.execute(
                    "INSERT OR REPLACE INTO scans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (s.task_key, s.task_id, s.name, s.project_id, s.region, s.origin,
                     s.state, s.status, _iso(s.started), _iso(s.ended), s.error, s.runs,
                     _iso(s.checked_at)),
                )  # fmt: skip

    def scans(self) -> list[ScanRecord]:
        """The scans last read, but not of the tasks undo deleted since: they have none."""
        rows = self._conn.execute("SELECT * FROM scans ORDER BY name").fetchall()
        undone = self.undone()
        return [
            ScanRecord(r[0], r[1], r[2], r[3], r[4], r[5], ScanState(r[6]), r[7],
                       _parse(r[8]), _parse(r[9]), r[10], r[11], _parse(r[12]) or local_now())
            for r in rows if r[0] not in undone
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One journalled action after the run (for the Actions sheet)."""

    batch: int
    kind: str
    name: str
    task_id: str | None
    state: str
    detail: str | None
    marked_at: str
    done_at: str | None


def read_actions(run_dir: Path) -> list[ActionRecord]:
    """Every action ``start``/``enable``/``disable``/``undo``/updates recorded, in order."""
    if not (run_dir / LIFECYCLE_FILE).is_file():
        return []
    store = LifecycleStore(run_dir, readonly=True)
    try:
        rows = store._conn.execute(
            "SELECT batch, kind, name, task_id, state, detail, marked_at, done_at "
            "FROM actions ORDER BY marked_at, name"
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        store.close()
    return [ActionRecord(*row) for row in rows]


def read_undone(run_dir: Path) -> list[UndoneTask]:
    """The tasks of the run that undo deleted or found gone (none before an undo), by name."""
    if not (run_dir / LIFECYCLE_FILE).is_file():
        return []
    store = LifecycleStore(run_dir, readonly=True)
    try:
        return sorted(store.undone().values(), key=lambda u: u.name)
    except sqlite3.Error:
        return []
    finally:
        store.close()


def read_scans(run_dir: Path) -> list[ScanRecord]:
    """The Scans sheet's rows (none before the first ``status``)."""
    if not (run_dir / LIFECYCLE_FILE).is_file():
        return []
    store = LifecycleStore(run_dir, readonly=True)
    try:
        return store.scans()
    except sqlite3.Error:
        return []
    finally:
        store.close()


# --------------------------------------------------------------------------- the actions

CREATED_STATES = frozenset({TaskState.CREATED, TaskState.ACCEPTED})
FOUND_STATES = CREATED_STATES | {TaskState.EXISTS}
_UNSETTLED = frozenset({TaskState.SENDING, TaskState.UNKNOWN})


def _group(tasks: Iterable[TaskRecord]) -> dict[tuple[str, str], list[TaskRecord]]:
    groups: dict[tuple[str, str], list[TaskRecord]] = {}
    for task in tasks:
        groups.setdefault((task.project_id, task.region), []).append(task)
    return groups


def _remote_for(task: TaskRecord, remote: Sequence[RemoteTask]) -> RemoteTask | None:
    """The service's task for ``task``: by the recorded id, else by name and data sources."""
    if task.task_id:
        return next((r for r in remote if r.id == str(task.task_id)), None)
    return next(
        (r for r in remote if r.name == task.name and same_sources(task.sources, r.data_sources)),
        None,
    )


class Wire:
    """Requests through one client, shared limiter, retry policy and listing path."""

    def __init__(
        self,
        client: DscClient,
        calls: LifecycleCalls,
        settings: DispatchSettings,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        limiter: AdaptiveRate | None = None,
    ) -> None:
        self.calls = calls
        self.rng = rng or random.Random()
        self.limiter = limiter or AdaptiveRate.from_settings(settings, rng=self.rng)
        self.policy = RetryPolicy.from_settings(settings)
        self.lister = Lister(client, limiter=self.limiter, policy=self.policy, rng=self.rng)
        self.sleep = sleep
        self.requests = 0

    # -- one paced, retried request --

    async def _send(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        retried: frozenset[Verdict] = RETRIED_READS,
    ) -> T | DscError:
        async def once() -> T:
            sent_at = await self.limiter.acquire()
            self.requests += 1
            try:
                result = await call()
            except DscError as exc:
                if exc.verdict is Verdict.THROTTLED:
                    slow_down(self.limiter, exc, sent_at=sent_at)
                raise
            self.limiter.on_success(sent_at=sent_at)
            return result

        budget = self.policy.start(rng=self.rng)
        return await self.policy.call(once, budget=budget, retried=retried, sleep=self.sleep)

    async def _listing(self, project: str, region: str) -> list[RemoteTask]:
        found = await self.lister.list_tasks(project, region)
        self.requests = self.lister.requests + self.requests
        self.lister.requests = 0
        if isinstance(found, DscError):
            raise found
        return found

    async def delete_listed(
        self, project: str, region: str, ids: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        """Delete those of ``ids`` the project still lists, in batches; list again to verify.
        Returns (deleted, still listed).  An id not listed is never sent."""
        listed = {r.id for r in await self._listing(project, region)}
        todo = [i for i in ids if i in listed]
        for start in range(0, len(todo), DELETE_BATCH):
            chunk = todo[start : start + DELETE_BATCH]
            await self._send(functools.partial(self.calls.delete_tasks, project, chunk,
                                               region=region))  # fmt: skip
        left = {r.id for r in await self._listing(project, region)} if todo else listed
        return [i for i in todo if i not in left], [i for i in todo if i in left]


class Lifecycle(Wire):
    """The actions on one run directory's tasks, journalled in ``lifecycle.sqlite``."""

    def __init__(
        self,
        journal: Journal,
        client: DscClient,
        calls: LifecycleCalls,
        settings: DispatchSettings,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        limiter: AdaptiveRate | None = None,
    ) -> None:
        super().__init__(client, calls, settings, rng=rng, sleep=sleep, limiter=limiter)
        self.journal = journal
        self.store = LifecycleStore(journal.run_dir)

    def close(self) -> None:
        self.store.close()

    # -- targets --

    def tasks(
        self, names: Sequence[str] = (), *, created_only: bool = False, undone: bool = False
    ) -> list[TaskRecord]:
        """The run's tasks (those it created, or created or found), or the named ones; not
        those undo deleted or found gone (``UndoneTask``) unless ``undone``."""
        states = CREATED_STATES if created_only else FOUND_STATES
        tasks = [t for t in self.journal.tasks() if t.state in states]
        if names:
            by_name = {t.name: t for t in tasks}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise UsageError(
                    _("{run_dir}: no task named {names} was created or found by this run").format(
                        run_dir=self.journal.run_dir, names=", ".join(missing[:5])
                    )
                )
            tasks = [by_name[n] for n in dict.fromkeys(names)]
        if undone:
            return tasks
        gone = self.store.undone()
        return [t for t in tasks if t.key not in gone]

    def unsettled(self) -> list[TaskRecord]:
        return [t for t in self.journal.tasks() if t.state in _UNSETTLED]

    async def _task_id(
        self, task: TaskRecord, cache: dict[tuple[str, str], list[RemoteTask]]
    ) -> str | None:
        if task.task_id:
            return str(task.task_id)
        group = (task.project_id, task.region)
        if group not in cache:
            cache[group] = await self._listing(*group)
        remote = _remote_for(task, cache[group])
        return None if remote is None else remote.id

    # -- status --

    async def status(self, on_read: Callable[[int, int], None] | None = None) -> list[ScanRecord]:
        """Each task's latest run, saved for the Scans sheet; ``on_read(done, total)`` after
        each task is read."""
        cache: dict[tuple[str, str], list[RemoteTask]] = {}
        tasks = self.tasks()
        scans: list[ScanRecord] = []
        for task in tasks:
            scans.append(await self._scan(task, cache))
            if on_read is not None:
                on_read(len(scans), len(tasks))
        self.store.save_scans(scans)
        return scans

    async def _scan(
        self, task: TaskRecord, cache: dict[tuple[str, str], list[RemoteTask]]
    ) -> ScanRecord:
        task_id = await self._task_id(task, cache)
        origin = "exists" if task.state is TaskState.EXISTS else "created"
        base = (task.key, task_id, task.name, task.project_id, task.region, origin)
        if task_id is None:
            return ScanRecord(*base, ScanState.UNKNOWN, None, None, None,
                              "the service does not list this task", None, local_now())  # fmt: skip
        answer = await self._send(
            lambda: self.calls.list_runs(task.project_id, task_id, region=task.region)
        )
        if isinstance(answer, DscError):
            return ScanRecord(*base, ScanState.UNKNOWN, None, None, None, str(answer), None,
                              local_now())  # fmt: skip
        runs, total = answer
        return _scan_record(base, runs, total)

    # -- undo --

    async def plan_undo(self, *, force: bool = False) -> list[PlannedAction]:
        """What undo would do; lists only the projects where something is left to do."""
        if self.unsettled():
            names = ", ".join(t.name for t in self.unsettled()[:5])
            raise UsageError(
                _(
                    "{run_dir}: the run has tasks whose outcome is not known yet "
                    "({names}): resume the run first, then undo it"
                ).format(run_dir=self.journal.run_dir, names=names)
            )
        done = self.store.states(self.store.open_batch("delete"))
        planned: list[PlannedAction] = []
        open_tasks: list[TaskRecord] = []
        for task in self.tasks(created_only=True, undone=True):
            state = done.get(task.key, (None, None))[0]
            if state in _FINAL:
                planned.append(
                    PlannedAction(task, task.task_id, state, "already undone", change=DELETE)
                )
            else:
                open_tasks.append(task)
        reverts = self._reverts(done)
        planned += [p for p in reverts if p.state is not None]
        pending = [p for p in reverts if p.state is None]
        groups = _group([*open_tasks, *(p.task for p in pending)])
        for (project, region), tasks in groups.items():
            remote = await self._listing(project, region)
            planned += [_undo_step(t, remote, force=force) for t in tasks if t in open_tasks]
            planned += [_revert_step(p, remote, force=force) for p in pending
                        if (p.task.project_id, p.task.region) == (project, region)]  # fmt: skip
        return planned

    def _reverts(self, done: dict[str, tuple[ActionState, int | None]]) -> list[PlannedAction]:
        """The updates this run dir's commands made, to be put back as they were."""
        by_key = {t.key: t for t in self.journal.tasks()}
        reverts = []
        for key, (state, task_id, before) in self.store.updates().items():
            if state is ActionState.FAILED or task_id is None:
                continue
            task = by_key[key]
            if done.get(key, (None, None))[0] in _FINAL:
                reverts.append(PlannedAction(task, task_id, ActionState.DONE, "already undone",
                                             change=RESTORE))  # fmt: skip
            else:
                body, why = revert_body(task, before), revert_difference(task, before)
                reverts.append(PlannedAction(task, task_id, None, why, body=body, before=before,
                                             change=RESTORE))  # fmt: skip
        return reverts

    async def undo(self, planned: Sequence[PlannedAction]) -> ActionReport:
        """Delete the planned tasks the run created, in batches, then verify by listing; put
        back those it updated; each journalled."""
        report = ActionReport("undo", list(planned))
        batch = self.store.open_batch("delete")
        for step in planned:
            if step.state is not None:
                report.results[step.task.key] = step.state
                if step.why == "already undone":
                    report.earlier += 1
                if step.state is ActionState.KEPT or step.why != "already undone":
                    kind = "revert" if step.change == RESTORE else "delete"
                    self.store.settle(batch, kind, step.task, step.task_id,
                                      state=step.state, detail=step.why)  # fmt: skip
        todo = [s for s in planned if s.state is None and s.body is None]
        for (project, region), steps in _group_steps(todo).items():
            await self._delete_group(batch, project, region, steps, report)
        for step in planned:
            if step.state is None and step.body is not None:
                await self._put(batch, "revert", step, report)
        return report

    async def _put(self, batch: int, kind: str, step: PlannedAction, report: ActionReport) -> None:
        """One PUT (an update, or an undo putting a task back), journalled either side."""
        task, task_id, body = step.task, str(step.task_id), step.body or b""
        if kind == "update":
            self.store.mark_update(batch, task, task_id, step.before or "{}")
        else:
            self.store.mark_sending(batch, kind, [(task, task_id, None)])
        answer = await self._send(
            functools.partial(self.calls.update_task, task.project_id, task_id, body,
                              region=task.region)
        )  # fmt: skip
        self._settle_answer(batch, kind, task, task_id, answer=answer, report=report)

    def _settle_answer(
        self, batch: int, kind: str, task: TaskRecord, task_id: str, *, answer: object,
        report: ActionReport,
    ) -> None:  # fmt: skip
        """One request's ``answer`` for ``task``, in the report and the store: done, or
        failed with the error's message."""
        state, detail = ActionState.DONE, None
        if isinstance(answer, DscError):
            state, detail = ActionState.FAILED, str(answer)
            report.messages[task.key] = detail
        report.results[task.key] = state
        self.store.settle(batch, kind, task, task_id, state=state, detail=detail)

    # -- update on conflict --

    async def plan_updates(self) -> list[PlannedAction]:
        """Each task the run found under its name with other data sources: the update."""
        conflicts = [t for t in self.journal.tasks()
                     if t.state is TaskState.CONFLICT and t.conflict_task_id]  # fmt: skip
        done = self.store.updates()
        planned = []
        for (project, region), tasks in _group(conflicts).items():
            remote = {r.id: r for r in await self._listing(project, region)}
            for task in tasks:
                state, _id, before = done.get(task.key, (None, None, None))
                planned.append(_update_step(task, remote, state, before))
        return planned

    async def update(self, planned: Sequence[PlannedAction]) -> ActionReport:
        report = ActionReport("update", list(planned))
        batch = self.store.open_batch("update")
        for step in planned:
            if step.state is not None:
                report.results[step.task.key] = step.state
            else:
                await self._put(batch, "update", step, report)
        self.store.finish_batch(batch)
        return report

    async def _delete_group(
        self, batch: int, project: str, region: str, steps: list[PlannedAction],
        report: ActionReport,
    ) -> None:  # fmt: skip
        for start in range(0, len(steps), DELETE_BATCH):
            chunk = steps[start : start + DELETE_BATCH]
            self.store.mark_sending(batch, "delete", ((s.task, s.task_id, None) for s in chunk))
            ids = [str(s.task_id) for s in chunk]
            answer = await self._send(
                functools.partial(self.calls.delete_tasks, project, ids, region=region)
            )
            if isinstance(answer, DscError):
                for s in chunk:
                    report.messages[s.task.key] = str(answer)
        remote = {r.id for r in await self._listing(project, region)}
        for s in steps:
            state = ActionState.FAILED if s.task_id in remote else ActionState.DONE
            why = report.messages.get(s.task.key) or "still listed after the delete"
            report.results[s.task.key] = state
            self.store.settle(batch, "delete", s.task, s.task_id, state=state,
                              detail=why if state is ActionState.FAILED else None)  # fmt: skip

    # -- run now / enable / disable --

    async def operate(self, action: str, names: Sequence[str] = ()) -> ActionReport:
        """One request per task under the rate limit; a killed batch is resumed."""
        kind = action.lower()
        batch = self.store.open_batch(kind)
        done = self.store.states(batch)
        report = ActionReport(kind)
        cache: dict[tuple[str, str], list[RemoteTask]] = {}
        undone = self.store.undone()
        for task in self.tasks(names, undone=True):
            if task.key in undone:  # nothing to send: undo deleted it (or found it gone)
                gone = undone[task.key]
                why = f"{'deleted' if gone.state is ActionState.DONE else 'gone'} by undo"
                report.planned.append(PlannedAction(task, gone.task_id, ActionState.GONE, why))
                report.results[task.key] = ActionState.GONE
                report.undone[task.key] = gone
                continue
            report.planned.append(PlannedAction(task, task.task_id, None))
            state, runs_before = done.get(task.key, (None, None))
            if state in _FINAL:
                report.results[task.key] = ActionState.DONE
                report.earlier += 1
                continue
            task_id = await self._task_id(task, cache)
            if task_id is None:
                report.results[task.key] = ActionState.GONE
                self.store.settle(
                    batch, kind, task, None, state=ActionState.GONE, detail="not listed"
                )
                continue
            await self._operate_one(
                batch, action, task, task_id, prior=(state, runs_before), report=report
            )
        if all(s in _FINAL for s in report.results.values()):
            self.store.finish_batch(batch)
        return report

    async def _operate_one(
        self, batch: int, action: str, task: TaskRecord, task_id: str, *,
        prior: tuple[ActionState | None, int | None], report: ActionReport,
    ) -> None:  # fmt: skip
        kind = action.lower()
        state, runs_before = prior
        if action == "START":
            runs_now = await self._run_count(task, task_id)
            if state is ActionState.SENDING and runs_before is not None and runs_now is not None \
                    and runs_now > runs_before:  # fmt: skip
                report.results[task.key] = ActionState.DONE  # it was applied before the kill
                self.store.settle(batch, kind, task, task_id, state=ActionState.DONE)
                return
            runs_before = runs_now
            if runs_before is None:  # a lost answer could not be checked: never risk two
                why = _("its runs could not be read, so it was not started (try again later)")
                report.results[task.key] = ActionState.FAILED
                report.messages[task.key] = why
                self.store.settle(batch, kind, task, task_id, state=ActionState.FAILED, detail=why)
                return
        self.store.mark_sending(batch, kind, [(task, task_id, runs_before)])
        answer = await self._send(
            functools.partial(self._operate_call, action, task, task_id, runs_before)
        )
        self._settle_answer(batch, kind, task, task_id, answer=answer, report=report)

    async def _operate_call(
        self, action: str, task: TaskRecord, task_id: str, runs_before: int | None
    ) -> None:
        """One operate request; an ambiguous START is looked up (more runs than before: it was
        applied, so it is not resent) before the policy may send it again."""
        try:
            await self.calls.operate_task(task.project_id, task_id, action, region=task.region)
        except DscError as exc:
            if action != "START" or exc.verdict is not Verdict.AMBIGUOUS or runs_before is None:
                raise
            runs_now = await self._run_count(task, task_id)
            if runs_now is None or runs_now <= runs_before:
                raise

    async def _run_count(self, task: TaskRecord, task_id: str) -> int | None:
        answer = await self._send(
            lambda: self.calls.list_runs(task.project_id, task_id, region=task.region)
        )
        if isinstance(answer, DscError):
            return None
        runs, total = answer
        return total if total is not None else len(runs)


def _group_steps(steps: Iterable[PlannedAction]) -> dict[tuple[str, str], list[PlannedAction]]:
    groups: dict[tuple[str, str], list[PlannedAction]] = {}
    for step in steps:
        groups.setdefault((step.task.project_id, step.task.region), []).append(step)
    return groups


def _undo_step(task: TaskRecord, remote: Sequence[RemoteTask], *, force: bool) -> PlannedAction:
    found = _remote_for(task, remote)
    if found is None:
        return PlannedAction(task, task.task_id, ActionState.GONE, "no longer listed",
                             change=DELETE)  # fmt: skip
    if not same_sources(task.sources, found.data_sources) and not force:
        why = _("its data sources changed since the run: kept (--force deletes it)")
        return PlannedAction(task, found.id, ActionState.KEPT, why, change=DELETE)
    return PlannedAction(task, found.id, None, change=DELETE)


def _scan_record(
    base: tuple[str, str | None, str, str, str, str], runs: Sequence[TaskRun], total: int | None
) -> ScanRecord:
    if not runs:
        return ScanRecord(*base, ScanState.NEVER_RAN, None, None, None, None, total or 0,
                          local_now())  # fmt: skip
    latest = max(runs, key=lambda r: r.created_ms or 0)
    return ScanRecord(
        *base, scan_state(latest.status), latest.status, _ms_time(latest.created_ms),
        _ms_time(latest.ended_ms), latest.error_msg, total if total is not None else len(runs),
        local_now(),
    )  # fmt: skip


# --------------------------------------------------------------------------- update and revert

_SETTINGS = ("schedule_type", "schedule_switch", "task_description", "delete_failed_meta")


def _update_step(
    task: TaskRecord,
    remote: dict[str, RemoteTask],
    state: ActionState | None,
    before: str | None,
) -> PlannedAction:
    if state is ActionState.DONE:
        return PlannedAction(task, task.conflict_task_id, ActionState.DONE, "already updated")
    found = remote.get(str(task.conflict_task_id))
    if found is None:
        return PlannedAction(task, task.conflict_task_id, ActionState.GONE, "no longer listed")
    if state is not ActionState.SENDING or before is None:  # a resumed update keeps the first
        before = json.dumps({"data_sources": [[s.db_type, s.ins_id] for s in found.data_sources],
                             "listed": dict(found.raw)}, default=str)  # fmt: skip
    why = difference(task, found)
    return PlannedAction(task, found.id, None, why, body=task.body_bytes, before=before)


def _planned_body(task: TaskRecord) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(task.body_bytes)
    return body


def difference(task: TaskRecord, remote: RemoteTask) -> str:
    """What an update changes: data sources added and removed, settings the listing shows."""
    return _change(
        [s.ins_id for s in task.sources],
        [s.ins_id for s in remote.data_sources],
        to=_planned_body(task),
        now=remote.raw,
    )


def revert_difference(task: TaskRecord, before: str | None) -> str:
    """What an undo's restore changes: the update's ``difference`` the other way round (the
    task is as the update left it: an undo keeps one changed since, unless forced)."""
    was = json.loads(before or "{}")
    return _change(
        [ins_id for _db_type, ins_id in was.get("data_sources", [])],
        [s.ins_id for s in task.sources],
        to=was.get("listed", {}),
        now=_planned_body(task),
    )


def _change(
    to_ids: Iterable[str], now_ids: Iterable[str], *, to: Mapping[str, Any], now: Mapping[str, Any]
) -> str:
    """THE words for a change from ``now`` to ``to``: data sources added and removed, and the
    settings both show."""
    ours, theirs = {i.strip() for i in to_ids}, {i.strip() for i in now_ids}
    parts = []
    if added := sorted(ours - theirs):
        parts.append("adds " + ", ".join(added))
    if removed := sorted(theirs - ours):
        parts.append("removes " + ", ".join(removed))
    for key in _SETTINGS:
        if key in now and key in to and now[key] != to[key]:
            parts.append(f"{key} {now[key]!r} -> {to[key]!r}")
    return "; ".join(parts) or "no visible difference"


def revert_body(task: TaskRecord, before: str | None) -> bytes:
    """The body that puts an updated task back: its data sources as they were, and the
    settings the listing showed (DSC lists no more of a task; the rest stays as updated).
    It never starts a scan."""
    was = json.loads(before or "{}")
    body = _planned_body(task)
    types = {s.ins_id: s.db_type for s in task.sources}
    fallback = task.sources[0].db_type if task.sources else ""
    body["data_sources"] = [
        {"db_type": db_type or types.get(ins_id, fallback), "ins_id": ins_id}
        for db_type, ins_id in was.get("data_sources", [])
    ]
    listed = was.get("listed", {})
    body |= {key: listed[key] for key in _SETTINGS if key in listed}
    body["start_now"] = False
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _revert_step(
    step: PlannedAction, remote: Sequence[RemoteTask], *, force: bool
) -> PlannedAction:
    found = next((r for r in remote if r.id == str(step.task_id)), None)
    if found is None:
        return PlannedAction(step.task, step.task_id, ActionState.GONE, "no longer listed",
                             change=RESTORE)  # fmt: skip
    if not same_sources(step.task.sources, found.data_sources) and not force:
        why = _("its data sources changed since the update: kept (--force puts it back)")
        return PlannedAction(step.task, step.task_id, ActionState.KEPT, why, change=RESTORE)
    return step
