"""The run journal's store: one SQLite file per run holding everything the run did.

The journal alone is enough to rebuild the report: run facts (``meta``), every planned task
and its state (``tasks``), every HTTP attempt (``attempts``), every input row in input order
(``rows``), every validation issue (``issues``) and the profiles sheet as read
(``profile_rows``).  Where the file lives and who may write it: ``bulkscan.run.rundir``.

Crash safety.  A state change is committed before the next step depends on it: a task is
*sending* before its request leaves, and its outcome is stored when it returns.  Within
``Journal.grouped()`` (a dispatch), changes are **group-committed**: the changes of several
tasks wait a few milliseconds (``COMMIT_WINDOW_S``) and share one transaction; a request's
*sending* mark is committed with whatever waits, at once or, when other workers are about to
mark theirs, within ``MARK_WINDOW_S`` (1 ms) so that they share the commit; the request
leaves only once that commit is done (``await Journal.committed()``).  Every read commits
what waits first, so a reader always sees every change made.  The journal runs in WAL mode with
``synchronous=NORMAL``:

* a process crash (SIGKILL, a second Ctrl-C, out of memory) loses nothing that was committed:
  a commit is in the WAL file (in the OS page cache), which the next open replays; the
  outcomes that still waited for their commit (the last few milliseconds) are lost, and their
  tasks are still *sending*;
* an OS crash or power loss may lose the last transactions (the WAL is synced at checkpoints,
  not at each commit) but never damages the journal: the WAL is replayed up to its last
  complete, checksummed commit, so what survives is a prefix of the run's history;
* exactly once still holds after either loss, because every dispatch (first run or resume)
  lists each project's tasks and reconciles *every* open task by name, pending included,
  before it sends anything (``bulkscan.run.dispatch``): a task whose *sending* mark was lost is
  *pending* again and is found as *exists*; one whose outcome was lost is still *sending* and
  is found as *created*.  Nothing is created twice; the cost is a label (*exists* where
  *created* was meant) or, for a task whose refusal was lost, one more request.

``synchronous=FULL`` would sync the WAL at every commit: a few milliseconds each on a disk,
most of the sending path's time, for no gain in exactly-once.  A journal is created complete or
not at all (written with ``FULL`` to a temporary file, then renamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import json
import os
import re
import socket
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.config import DispatchSettings
from bulkscan.errors import JournalError, JournalWriteError
from bulkscan.events import Attempt, LocalStamps, local_now
from bulkscan.i18n import _
from bulkscan.models import DataSource, Issue, RowRef, TaskRequest
from bulkscan.plan import ProfileRowRecord, RowRecord, RowStatus, RunInput, SheetLayout
from bulkscan.run.rundir import JOURNAL_FILE, journal_of, lock_run_dir
from bulkscan.run.states import TaskState, outcome_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from bulkscan.models import Outcome, Plan

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "PlanDiffers",
    "Resume",
    "RunMeta",
    "TaskRecord",
]

SCHEMA_VERSION = 1
COMMIT_WINDOW_S = 0.005  # how long a change may wait to share a commit with others
MARK_WINDOW_S = 0.001  # how long a sending mark may wait for other workers' marks


class PlanDiffers(JournalError):
    """A resume whose options plan other tasks than the run's own (another --region,
    --project-id or profiles file): ``resume_command`` resumes it with its own options."""

    def __init__(self, message: str, *, resume_command: str) -> None:
        super().__init__(message)
        self.resume_command = resume_command


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunMeta:
    run_id: str
    schema_version: int
    bulkscan_version: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    input_path: str
    input_sha256: str
    input_format: str
    instances: SheetLayout
    profiles: SheetLayout | None
    plan_hash: str
    settings: dict[str, Any]
    operator: str
    host: str
    command: tuple[str, ...]
    stop_reason: str | None
    stop_message: str | None
    learned_rate_per_s: float | None
    duplicates: tuple[str, ...] = ()  # planned names the run's last listing found twice
    duplicates_unchecked: str = ""  # why that listing could not look ("": it did)
    held_back: int = 0  # open tasks the last session's --limit kept for a later resume
    audit_command: str | None = None  # audits the run's inventory (the run's next step)
    last_resume: Resume | None = None  # None: never resumed
    # the longest settle window any session of the run sent tasks under (None: not recorded)
    settle_window_s: float | None = None

    def settle_window(self, settle_s: float | None = None) -> float:
        """The longest settle window the run's tasks were sent under: the one recorded, the
        first session's and the last resume's (journals from before the record), and
        ``settle_s`` (a session about to send)."""
        sessions = [self.settings, *([self.last_resume.settings] if self.last_resume else [])]
        given = [s.get("dispatch", {}).get("settle_s") for s in sessions]
        known = [w for w in (self.settle_window_s, settle_s, *given) if isinstance(w, int | float)]
        return float(max(known, default=DispatchSettings().settle_s))

    @property
    def last_command(self) -> tuple[str, ...]:
        """The command that last ran this run: the last resume's (with the options it chose),
        else the one that started it."""
        last = self.last_resume
        return last.command if last is not None and last.command else self.command


@dataclass(frozen=True, slots=True)
class Resume:
    """Who resumed a run last, where, with which command and settings (no secret in them)."""

    operator: str
    host: str
    command: tuple[str, ...]
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    key: str
    seq: int
    name: str
    project_id: str
    region: str
    profile: str
    sources: tuple[DataSource, ...]
    rows: tuple[RowRef, ...]
    body_bytes: bytes
    state: TaskState
    task_id: str | None
    http_status: int | None
    error_code: str | None
    error_msg: str | None
    request_id: str | None
    attempts: int
    throttled: int
    first_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_latency_s: float | None
    conflict_task_id: str | None
    conflict_sources: tuple[DataSource, ...] | None
    updated_at: dt.datetime

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.state)

    @property
    def sent_at(self) -> dt.datetime:
        """When the task was last sent, at the latest, for its settle window: a *sending*
        task when it was so marked (its row's last change: after its last recorded attempt,
        or with none recorded when the run died with its first request in flight), another
        at its last attempt (or its last change, if it has none)."""
        if self.state is TaskState.SENDING or self.last_attempt_at is None:
            return self.updated_at
        return self.last_attempt_at

    def request(self) -> TaskRequest:
        """The create request exactly as planned (same bytes)."""
        return TaskRequest(
            key=self.key,
            name=self.name,
            project_id=self.project_id,
            region=self.region,
            profile=self.profile,
            sources=self.sources,
            rows=self.rows,
            body_bytes=self.body_bytes,
        )


# --- schema --------------------------------------------------------------------------------

_STATES_SQL = ", ".join(f"'{s.value}'" for s in TaskState)
_ROW_STATUSES_SQL = ", ".join(f"'{s.value}'" for s in RowStatus)

# Each table's columns, in order, with their SQL types and constraints: the one source of the
# schema and of every column list.  Each state change writes as few pages as it can: no index
# on tasks.state (a dispatch keeps the states in memory; counting them scans the table once)
# and no AUTOINCREMENT (attempts are never deleted, so ids still grow with time).
_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "meta": (("key", "TEXT PRIMARY KEY"), ("value", "TEXT NOT NULL")),
    "tasks": (
        ("key", "TEXT PRIMARY KEY"),
        ("seq", "INTEGER NOT NULL UNIQUE"),
        ("name", "TEXT NOT NULL"),
        ("project_id", "TEXT NOT NULL"),
        ("region", "TEXT NOT NULL"),
        ("profile", "TEXT NOT NULL"),
        ("body", "BLOB NOT NULL"),
        ("sources", "TEXT NOT NULL"),
        ("rows", "TEXT NOT NULL"),
        ("state", f"TEXT NOT NULL CHECK (state IN ({_STATES_SQL}))"),
        ("task_id", "TEXT"),
        ("http_status", "INTEGER"),
        ("error_code", "TEXT"),
        ("error_msg", "TEXT"),
        ("request_id", "TEXT"),
        ("attempts", "INTEGER NOT NULL DEFAULT 0"),
        ("throttled", "INTEGER NOT NULL DEFAULT 0"),
        ("first_attempt_at", "TEXT"),
        ("last_attempt_at", "TEXT"),
        ("last_latency_s", "REAL"),
        ("conflict_task_id", "TEXT"),
        ("conflict_sources", "TEXT"),
        ("updated_at", "TEXT NOT NULL"),
    ),
    "attempts": (
        ("id", "INTEGER PRIMARY KEY"),
        ("at", "TEXT NOT NULL"),
        ("task_key", "TEXT REFERENCES tasks (key)"),
        ("n", "INTEGER NOT NULL"),
        ("method", "TEXT NOT NULL"),
        ("path", "TEXT NOT NULL"),
        ("status", "INTEGER"),
        ("code", "TEXT"),
        ("request_id", "TEXT"),
        ("latency_s", "REAL NOT NULL"),
        ("verdict", "TEXT NOT NULL"),
        ("message", "TEXT"),
    ),
    "rows": (
        ("seq", "INTEGER PRIMARY KEY"),
        ("file", "TEXT NOT NULL"),
        ("sheet", "TEXT NOT NULL"),
        ("row", "INTEGER NOT NULL"),
        ("vals", "TEXT NOT NULL"),
        ("task_key", "TEXT REFERENCES tasks (key)"),
        ("status", f"TEXT NOT NULL CHECK (status IN ({_ROW_STATUSES_SQL}))"),
        ("duplicate_of", "TEXT"),
    ),
    "issues": (
        ("seq", "INTEGER PRIMARY KEY"),
        ("severity", "TEXT NOT NULL"),
        ("message", "TEXT NOT NULL"),
        ("file", "TEXT"),
        ("sheet", "TEXT"),
        ("row", "INTEGER"),
        ("col", "TEXT"),
        ("value", "TEXT"),
        ("hint", "TEXT"),
    ),
    "profile_rows": (
        ("seq", "INTEGER PRIMARY KEY"),
        ("file", "TEXT NOT NULL"),
        ("sheet", "TEXT NOT NULL"),
        ("row", "INTEGER NOT NULL"),
        ("vals", "TEXT NOT NULL"),
    ),
}
_TABLE_COLUMNS = {table: tuple(name for name, _ in columns) for table, columns in _TABLES.items()}


def _create_statements() -> list[str]:
    return [
        f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})"
        for table, columns in _TABLES.items()
    ]


def _select(table: str) -> str:
    return f"SELECT {', '.join(_TABLE_COLUMNS[table])} FROM {table}"  # noqa: S608 - our names


_SELECT_TASKS = _select("tasks")

_REQUIRED_META = (
    "schema_version",
    "run_id",
    "bulkscan_version",
    "created_at",
    "input_path",
    "input_sha256",
    "input_format",
    "instances",
    "plan_hash",
    "settings",
    "operator",
    "host",
    "command",
)
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|(^|_)sk($|_)", re.IGNORECASE)


# --- value encoding ----------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    return str(value)


def _json_hook(obj: dict[str, Any]) -> object:
    if len(obj) == 1:
        ((tag, text),) = obj.items()
        if tag == "$datetime":
            return dt.datetime.fromisoformat(text)
        if tag == "$date":
            return dt.date.fromisoformat(text)
        if tag == "$time":
            return dt.time.fromisoformat(text)
    return obj


# One encoder for every value (json.dumps with options would build a new one per call)
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_default, separators=(",", ":"))


def _dumps(value: object) -> str:
    return _ENCODER.encode(value)


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=_json_hook)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def _stamp_of(value: dt.datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _sources_json(sources: Iterable[DataSource]) -> str:
    return _dumps([[s.db_type, s.ins_id] for s in sources])


def _parse_sources(text: str | None) -> tuple[DataSource, ...] | None:
    return None if text is None else tuple(DataSource(t, i) for t, i in _loads(text))


def _ref_json(ref: RowRef) -> list[object]:
    return [ref.file, ref.sheet, ref.row]


def _parse_ref(item: Sequence[Any]) -> RowRef:
    return RowRef(str(item[0]), str(item[1]), int(item[2]))


# --- the journal -----------------------------------------------------------------------------


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
    conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row  # rows are read by column name
    return conn


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


# One statement of a group commit: SQL, parameters, and the task key it must change (or None).
_Statement = tuple[str, "Sequence[object]", "str | None"]


class Journal:
    """An open run journal.  Writers hold the run directory's lock until ``close()``.

    Task changes made within ``grouped()`` in an event loop are group-committed (module
    docstring): they share a transaction at most ``COMMIT_WINDOW_S`` later; ``await
    committed()`` commits soon (``MARK_WINDOW_S`` at most) and returns when every change made
    so far is durable.
    Elsewhere each change is its own transaction, committed when the call returns.
    """

    def __init__(
        self,
        run_dir: Path,
        conn: sqlite3.Connection,
        lock_fd: int | None,
        *,
        now: Callable[[], dt.datetime],
    ) -> None:
        self._run_dir = run_dir
        self._conn = conn
        self._lock_fd = lock_fd
        self._now = now
        # the text of now(), the form every stored time has (cheaper for the usual clock)
        self._stamp = LocalStamps().micros if now is local_now else lambda: _stamp_of(now())
        self._pending: list[_Statement] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None  # a commit asked for by committed()
        # The commit window: one timer, re-armed when it fires while newer changes wait, and
        # cancelled by a commit that took every change (at a low rate, the next request's
        # sending mark carries the last outcome: no wake-up of the loop for the window)
        self._window: asyncio.TimerHandle | None = None
        self._oldest = 0.0  # loop time of the oldest change that waits for a commit
        self._failure: Exception | None = None
        self._grouping = 0
        self._file = str(run_dir / JOURNAL_FILE)  # checked before each write: no Path per call
        self._identity = _file_identity(self._file)
        self._seen: dict[str, TaskState] = {}  # each task's last state, kept in memory
        self._sent: set[str] = set()  # the tasks this run marked sending

    # -- opening and closing --

    @classmethod
    def create(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        run_input: RunInput,
        plan: Plan,
        plan_hash: str,
        settings: Mapping[str, object],
        version: str,
        command: Sequence[str] = (),
        now: Callable[[], dt.datetime] = local_now,
    ) -> Journal:
        """Write a new journal for ``plan`` into ``run_dir`` (which must have none) and open it.

        ``settings`` must hold no secret (keys that look like one are refused).
        """
        run_dir = Path(run_dir)
        _check_no_secrets(settings)
        lock_fd = lock_run_dir(run_dir)
        target, tmp = run_dir / JOURNAL_FILE, run_dir / (JOURNAL_FILE + ".tmp")
        writing = False  # from here on, what is in the folder is this create's to remove
        try:
            if target.exists():
                raise JournalError(
                    _(
                        "{run_dir} already has a journal: resume it with --resume {run_dir}, "
                        "or start a new run"
                    ).format(run_dir=run_dir)
                )
            writing = True
            _write_new(
                tmp,
                run_id=run_dir.name,
                run_input=run_input,
                plan=plan,
                plan_hash=plan_hash,
                settings=settings,
                version=version,
                command=command,
                now=now,
            )
            tmp.replace(target)
            _fsync_dir(run_dir)
            return cls(run_dir, _connect(target, readonly=False), lock_fd, now=now)
        except (sqlite3.Error, OSError) as exc:
            os.close(lock_fd)
            if writing:
                _remove_journal_files(tmp, target)
            raise JournalWriteError(
                _(
                    "cannot create {path} ({error}): is the disk full or the folder read-only? "
                    "Nothing was sent; make room (or choose another --reports-dir) and run "
                    "again"
                ).format(path=run_dir / JOURNAL_FILE, error=exc)
            ) from None
        except BaseException:  # Ctrl-C while writing: no half-made journal is left behind
            os.close(lock_fd)
            if writing:
                _remove_journal_files(tmp, target)
            raise

    @classmethod
    def open(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        readonly: bool = False,
        now: Callable[[], dt.datetime] = local_now,
    ) -> Journal:
        """Open an existing journal, refusing one that is busy, damaged or from a newer bulkscan.

        ``readonly`` (for reports) takes no lock and never writes.
        """
        run_dir = Path(run_dir)
        path = journal_of(run_dir)
        lock_fd = None if readonly else lock_run_dir(run_dir)
        try:
            conn = _connect(path, readonly=True)
            try:
                _check_journal(conn, path)  # before anything may write to a suspect file
            except BaseException:
                conn.close()
                raise
            if not readonly:
                conn.close()
                conn = _connect(path, readonly=False)
        except sqlite3.Error as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            raise _unreadable(path, exc) from None
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(run_dir, conn, lock_fd, now=now)

    def close(self) -> None:
        """Commit what waits (unless a commit already failed), then release file and lock."""
        self._close_window()
        try:
            if self._lock_fd is not None and self._failure is None:
                self._flush()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def path(self) -> Path:
        return self._run_dir / JOURNAL_FILE

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

    # -- reading --

    def meta(self) -> RunMeta:
        values = {k: _loads(v) for k, v in self._query("SELECT key, value FROM meta")}
        return _run_meta(values)

    def tasks(self) -> tuple[TaskRecord, ...]:
        """Every planned task, in plan order."""
        return tuple(_task(r) for r in self._query(f"{_SELECT_TASKS} ORDER BY seq"))

    def task(self, key: str) -> TaskRecord:
        rows = self._query(f"{_SELECT_TASKS} WHERE key = ?", (key,))
        if not rows:
            raise KeyError(key)
        return _task(rows[0])

    def attempts(self) -> tuple[Attempt, ...]:
        return tuple(_attempt(r) for r in self._query(f"{_select('attempts')} ORDER BY id"))

    def rows(self) -> tuple[RowRecord, ...]:
        """Every row of the instances sheet, in input order."""
        return tuple(_row(r) for r in self._query(f"{_select('rows')} ORDER BY seq"))

    def issues(self) -> tuple[Issue, ...]:
        return tuple(_issue(r) for r in self._query(f"{_select('issues')} ORDER BY seq"))

    def profile_rows(self) -> tuple[ProfileRowRecord, ...]:
        rows = self._query(f"{_select('profile_rows')} ORDER BY seq")
        return tuple(_profile_row(r) for r in rows)

    def counts(self) -> dict[TaskState, int]:
        """Number of tasks in each state (every state present, zero when none)."""
        counts = dict.fromkeys(TaskState, 0)
        for state, n in self._query("SELECT state, count(*) FROM tasks GROUP BY state"):
            counts[TaskState(state)] = n
        return counts

    def states(self) -> dict[str, TaskState]:
        """Task key → state, for every task."""
        return {k: TaskState(s) for k, s in self._query("SELECT key, state FROM tasks")}

    def states_and_attempts(self) -> dict[str, tuple[TaskState, int]]:
        """Task key → (state, attempts so far), for every task: all a dispatch starts from."""
        rows = self._query("SELECT key, state, attempts FROM tasks")
        return {k: (TaskState(s), n) for k, s, n in rows}

    def check_same_input(self, sha256: str, plan_hash: str, *, resume_command: str) -> None:
        """Refuse to resume with an input or plan other than the run's own, saying why;
        ``resume_command``: the command that resumes this run with its own options (the
        report's rule), which a plan that differs is told to use (``PlanDiffers``)."""
        meta = self.meta()
        if meta.input_sha256 != sha256:
            raise JournalError(
                _(
                    "{file} has changed since run {run} started "
                    "(SHA-256 {then}… then, {now}… now): restore the "
                    "original file to resume, or run without --resume to start a new run"
                ).format(
                    file=meta.input_path,
                    run=meta.run_id,
                    then=meta.input_sha256[:12],
                    now=sha256[:12],
                )
            )
        if meta.plan_hash != plan_hash:
            raise PlanDiffers(
                _(
                    "the plan differs from run {run}'s although {file} is the same file: "
                    "options such as --region, --project-id or a profiles file changed what "
                    "would be sent; run without --resume to start a new run, or resume this "
                    "one with its own options: {command}"
                ).format(run=meta.run_id, file=meta.input_path, command=resume_command),
                resume_command=resume_command,
            )

    # -- writing --

    def mark_resumed(self, command: Sequence[str], settings: Mapping[str, object]) -> None:
        """Record who resumes the run, with which command and settings (the next command
        printed repeats this one; the report shows what changed).  ``settings`` must hold no
        secret."""
        _check_no_secrets(settings)
        resume = {"operator": _operator(), "host": socket.gethostname(),
                  "command": list(command), "settings": dict(settings)}  # fmt: skip
        self.set_meta(last_resume=resume)

    def settle_window(self, settle_s: float) -> float:
        """The settle window a session sending with ``settle_s`` must use: the longest any
        session of this run sent tasks under, ``settle_s`` included (a resume given a
        shorter one would list before a late create shows, and send the task again).
        Recorded, so that every later resume waits it out too."""
        meta = self.meta()
        widest = meta.settle_window(settle_s)
        if widest != meta.settle_window_s:
            self.set_meta(settle_window_s=widest)
        return widest

    def mark_started(self) -> None:
        """Record that sending begins (again, on resume); clears a previous stop reason."""
        values: dict[str, object] = {"started_at": self._stamp()}
        self._flush()
        with self._tx() as cur:
            _put_meta(cur, values)
            cur.execute("DELETE FROM meta WHERE key IN ('ended_at', 'stop_reason', 'stop_message')")

    def mark_ended(
        self,
        reason: str,
        message: str = "",
        *,
        learned_rate_per_s: float | None = None,
        held_back: int = 0,
    ) -> None:
        values: dict[str, object] = {
            "ended_at": self._stamp(),
            "stop_reason": reason,
            "stop_message": message,
            "held_back": held_back,
        }
        if learned_rate_per_s is not None:
            values["learned_rate_per_s"] = learned_rate_per_s
        self._flush()
        with self._tx() as cur:
            _put_meta(cur, values)

    def mark_sending(self, key: str) -> None:
        """Mark ``key`` *sending*; in an event loop, ``await committed()`` before it is sent."""
        self._seen[key] = TaskState.SENDING
        self._sent.add(key)
        self._write([(_MARK_SENDING, (TaskState.SENDING, self._stamp(), key), key)])

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """Group-commit task changes made in the running event loop until the block ends."""
        self._grouping += 1
        try:
            yield
        finally:
            self._grouping -= 1
            if not self._grouping:
                self._close_window()
                if self._failure is None:
                    self._flush()

    async def committed(self, *, expect: int = 1) -> None:
        """Commit every change made so far (with others that wait) and return when done.

        ``expect``: how many callers, this one included, may ask for a commit at about the
        same time (a dispatch's busy workers).  Alone, the commit is made at once, without
        waiting for the event loop to turn; with others, it waits up to ``MARK_WINDOW_S`` for
        them to share it, and is made at once when the last of them asks.
        """
        self._raise_failure()
        if not self._pending:
            return
        if len(self._waiters) + 1 >= expect:  # every expected caller asks now: none will join
            self._flush()
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiters.append(future)
        if len(self._waiters) == 1:  # the first waiter asks for the commit; later ones share it
            self._timer = loop.call_at(loop.time() + MARK_WINDOW_S, self._flush_quietly)
        await future

    def record_attempt(
        self,
        attempt: Attempt,
        *,
        state: TaskState | None = None,
        task_id: str | None = None,
        error_msg: str | None = None,
        throttled: bool = False,
        counted: bool = True,
    ) -> None:
        """Store one HTTP attempt and its effect on its task, in one transaction.

        A counted attempt (a create) updates the task's attempt count, times, status, code,
        request id and ``error_msg`` (cleared when None); an uncounted one (a lookup by name)
        only changes ``state``/``task_id``/``error_msg`` when given.  ``task_key`` None: a
        listing, no task is touched.
        """
        row = _attempt_row(attempt)
        statements: list[_Statement] = [(_INSERT_ATTEMPT, row, None)]
        key = attempt.task_key
        if key is not None and state is not None:
            self._seen[key] = state
        if key is not None:
            now = self._stamp()
            if counted:
                params = (int(throttled), row[0], row[0], attempt.latency_s, attempt.status,
                          attempt.code, attempt.request_id, error_msg, now, state, task_id,
                          key)  # fmt: skip
                statements.append((_COUNT_ATTEMPT, params, key))
            else:
                fields: dict[str, object] = {"updated_at": now}
                if error_msg is not None:
                    fields["error_msg"] = error_msg
                if state is not None:
                    fields["state"] = state
                if task_id is not None:
                    fields["task_id"] = task_id
                statements.append(_update(key, fields))
        self._write(statements)

    def set_state(
        self,
        key: str,
        state: TaskState,
        *,
        task_id: str | None = None,
        error_msg: str | None = None,
        conflict: tuple[str, Sequence[DataSource]] | None = None,
    ) -> None:
        """Change one task's state (``task_id``/``error_msg`` set when given)."""
        self._seen[key] = state
        fields: dict[str, object] = {"state": state}
        if task_id is not None:
            fields["task_id"] = task_id
        if error_msg is not None:
            fields["error_msg"] = error_msg or None  # "" clears it
        if conflict is not None:
            fields["conflict_task_id"] = conflict[0]
            fields["conflict_sources"] = _sources_json(conflict[1])
        self._set(key, **fields)

    def fail_tasks(
        self,
        keys: Iterable[str],
        *,
        error_msg: str,
        error_code: str | None = None,
        http_status: int | None = None,
    ) -> int:
        """Mark every listed task still pending as failed, without sending: one transaction."""
        now = self._stamp()
        self._flush()
        with self._tx() as cur:
            done = 0
            for key in keys:
                cur.execute(
                    "UPDATE tasks SET state = ?, error_msg = ?, error_code = ?, http_status = ?,"
                    " updated_at = ? WHERE key = ? AND state IN (?, ?)",
                    (
                        TaskState.FAILED,
                        error_msg,
                        error_code,
                        http_status,
                        now,
                        key,
                        TaskState.PENDING,
                        TaskState.GAVE_UP,
                    ),
                )
                done += cur.rowcount
            return done

    def set_meta(self, **values: object) -> None:
        _check_no_secrets(values)
        self._flush()
        with self._tx() as cur:
            _put_meta(cur, values)

    # -- internals --

    def _set(self, key: str, **fields: object) -> None:
        fields["updated_at"] = self._stamp()
        self._write([_update(key, fields)])

    def _write(self, statements: list[_Statement]) -> None:
        """Group the statements with others (``grouped()``), or commit them now."""
        self._raise_failure()
        loop = None
        if self._grouping:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop runs: commit now
                loop = None
        if loop is None:
            with self._tx() as cur:
                missing = _execute(cur, statements)
                if missing:  # rolls the whole change back
                    raise KeyError(missing[0])
            return
        if self._lock_fd is None:
            raise JournalError(f"{self.path} is open read-only")
        if not self._pending:
            self._oldest = loop.time()
        self._pending.extend(statements)
        if self._window is None:
            self._open_window(loop)

    def _open_window(self, loop: asyncio.AbstractEventLoop) -> None:
        when = self._oldest + COMMIT_WINDOW_S
        self._window = loop.call_at(when, self._window_over, loop, self._oldest)

    def _window_over(self, loop: asyncio.AbstractEventLoop, oldest: float) -> None:
        """The oldest waiting change has waited ``COMMIT_WINDOW_S``: commit.  When a commit came
        in between, the changes that wait now are newer: wait for the oldest one's turn."""
        self._window = None
        if not self._pending:
            return
        if self._oldest != oldest:
            self._open_window(loop)
            return
        self._flush_quietly()

    def _close_window(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._window = None

    def _flush(self) -> None:
        """Commit every waiting statement in one transaction; wake whoever waits for it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._raise_failure()
        self._close_window()  # everything that waits is committed now
        statements, self._pending = self._pending, []
        waiters, self._waiters = self._waiters, []
        try:
            if statements:
                with self._tx() as cur:
                    missing = _execute(cur, statements)
                if missing:
                    raise KeyError(missing[0])
        except Exception as exc:
            self._failure = exc
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush_quietly(self) -> None:
        """``_flush`` from a loop callback: a failure is raised to the next caller instead."""
        with contextlib.suppress(Exception):
            self._flush()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _check_present(self) -> None:
        """Refuse to write once the journal file was removed (or replaced) under the run.

        SQLite would go on writing to the unlinked file and lose every step; instead the run
        stops, saying what it sent (from memory) and how a new run settles it.
        """
        if _file_identity(self._file) == self._identity:
            return
        states = Counter(self._seen[key] for key in self._sent)
        said = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        self._failure = JournalWriteError(
            f"{self.path} was removed while the run was sending: it stopped after starting "
            f"{len(self._sent)} task(s)"
            + (f" ({said}; sending = outcome unknown)" if said else "")
            + "; nothing more can be recorded. Run it again without --resume: tasks already "
            "in DSC are found by listing and reported as existing, never created twice"
        )
        raise self._failure

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        if self._lock_fd is None:
            raise JournalError(f"{self.path} is open read-only")
        self._check_present()
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.rollback()
            if isinstance(exc, sqlite3.Error):
                raise _write_failed(self._run_dir, exc) from None
            raise
        finally:
            cur.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        self._raise_failure()
        if self._pending:
            self._flush()
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _unreadable(self.path, exc) from None


def _attempt_row(a: Attempt) -> tuple[object, ...]:
    return (
        _time(a.at),
        a.task_key,
        a.n,
        a.method,
        a.path,
        a.status,
        a.code,
        a.request_id,
        a.latency_s,
        a.verdict,
        a.message,
    )


_MARK_SENDING = "UPDATE tasks SET state = ?, updated_at = ? WHERE key = ?"
# A create's effect on its task, in one statement (state and task_id kept when None)
_COUNT_ATTEMPT = (
    "UPDATE tasks SET attempts = attempts + 1, throttled = throttled + ?,"
    " first_attempt_at = coalesce(first_attempt_at, ?), last_attempt_at = ?,"
    " last_latency_s = ?, http_status = ?, error_code = ?, request_id = ?, error_msg = ?,"
    " updated_at = ?, state = coalesce(?, state), task_id = coalesce(?, task_id) WHERE key = ?"
)


_INSERT_ATTEMPT = (
    "INSERT INTO attempts (at, task_key, n, method, path, status, code, request_id,"
    " latency_s, verdict, message) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)


def _update(key: str, fields: Mapping[str, object]) -> _Statement:
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql = f"UPDATE tasks SET {assignments} WHERE key = ?"  # noqa: S608 - column names are ours
    return sql, (*fields.values(), key), key


def _execute(cur: sqlite3.Cursor, statements: Iterable[_Statement]) -> list[str]:
    """Run the statements; the keys of the tasks that were not there to change."""
    missing = []
    for sql, params, key in statements:
        cur.execute(sql, params)
        if key is not None and cur.rowcount != 1:
            missing.append(key)
    return missing


# --- creating ----------------------------------------------------------------------------------


def _check_no_secrets(values: Mapping[str, object]) -> None:
    for key in values:
        if _SECRET_KEY.search(key):
            raise ValueError(f"setting '{key}' looks like a secret and is never journaled")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_journal_files(*paths: Path) -> None:
    """A journal that could not be made whole, with its SQLite side files: nothing was sent
    with it, and one left half-written would look like a run to resume."""
    for path in paths:
        for side in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                Path(f"{path}{side}").unlink()


def _write_new(
    tmp: Path,
    *,
    run_id: str,
    run_input: RunInput,
    plan: Plan,
    plan_hash: str,
    settings: Mapping[str, object],
    version: str,
    command: Sequence[str],
    now: Callable[[], dt.datetime],
) -> None:
    _remove_journal_files(tmp)  # from a create that crashed here
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        # A rollback journal, not WAL: COMMIT writes every row into the file itself (and
        # fails on a full disk).  In WAL the rows would wait in the -wal file for the
        # checkpoint that closing makes, and a close cannot say that its checkpoint failed:
        # on a full disk the file renamed below would hold the tables without their rows.
        # The journal switches to WAL when it is opened (``_connect``).
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN")
        for statement in _create_statements():
            conn.execute(statement)
        created = _time(now())
        meta = _initial_meta(
            run_id=run_id,
            run_input=run_input,
            plan_hash=plan_hash,
            settings=settings,
            version=version,
            command=command,
            created=created,
        )
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [(k, _dumps(v)) for k, v in meta.items()],
        )
        _insert_tasks(conn, plan, created)
        _insert_input(conn, run_input)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _initial_meta(
    *,
    run_id: str,
    run_input: RunInput,
    plan_hash: str,
    settings: Mapping[str, object],
    version: str,
    command: Sequence[str],
    created: str | None,
) -> dict[str, object]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "bulkscan_version": version,
        "created_at": created,
        "input_path": run_input.path,
        "input_sha256": run_input.sha256,
        "input_format": run_input.fmt,
        "instances": _layout_json(run_input.instances),
        "profiles": _layout_json(run_input.profiles) if run_input.profiles else None,
        "plan_hash": plan_hash,
        "settings": dict(settings),
        "operator": _operator(),
        "host": socket.gethostname(),
        "command": list(command),
    }


def _layout_json(layout: SheetLayout) -> dict[str, object]:
    return {
        "file": layout.file,
        "sheet": layout.sheet,
        "headers": list(layout.headers),
        "formats": dict(layout.formats),
    }


def _parse_layout(value: Mapping[str, Any] | None) -> SheetLayout | None:
    if value is None:
        return None
    formats = value.get("formats") or {}  # none in a journal written before formats were kept
    return SheetLayout(
        str(value["file"]),
        str(value["sheet"]),
        tuple(value["headers"]),
        {str(header): str(code) for header, code in formats.items()},
    )


def _insert_tasks(conn: sqlite3.Connection, plan: Plan, created: str | None) -> None:
    conn.executemany(
        "INSERT INTO tasks (key, seq, name, project_id, region, profile, body, sources, rows,"
        " state, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                t.key,
                seq,
                t.name,
                t.project_id,
                t.region,
                t.profile,
                t.body_bytes,
                _sources_json(t.sources),
                _dumps([_ref_json(r) for r in t.rows]),
                TaskState.PENDING,
                created,
            )
            for seq, t in enumerate(plan.tasks)
        ],
    )


def _insert_input(conn: sqlite3.Connection, run_input: RunInput) -> None:
    conn.executemany(
        "INSERT INTO rows (seq, file, sheet, row, vals, task_key, status, duplicate_of)"
        " VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                r.seq,
                r.ref.file,
                r.ref.sheet,
                r.ref.row,
                _dumps(r.values),
                r.task_key,
                r.status,
                _dumps(_ref_json(r.duplicate_of)) if r.duplicate_of else None,
            )
            for r in run_input.rows
        ],
    )
    conn.executemany(
        "INSERT INTO issues (seq, severity, message, file, sheet, row, col, value, hint)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        [_issue_row(seq, i) for seq, i in enumerate(run_input.issues)],
    )
    conn.executemany(
        "INSERT INTO profile_rows (seq, file, sheet, row, vals) VALUES (?,?,?,?,?)",
        [
            (p.seq, p.ref.file, p.ref.sheet, p.ref.row, _dumps(p.values))
            for p in run_input.profile_rows
        ],
    )


def _issue_row(seq: int, issue: Issue) -> tuple[object, ...]:
    ref = issue.ref
    return (
        seq,
        issue.severity,
        issue.message,
        ref.file if ref else issue.file,
        ref.sheet if ref else issue.sheet,
        ref.row if ref else None,
        issue.column,
        issue.value,
        issue.hint,
    )


def _put_meta(cur: sqlite3.Cursor, values: Mapping[str, object]) -> None:
    cur.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [(k, _dumps(v)) for k, v in values.items()],
    )


# --- checking --------------------------------------------------------------------------------


def _file_identity(path: str) -> tuple[int, int] | None:
    """The file's device and inode, or None when it is gone."""
    try:
        info = os.stat(path)  # noqa: PTH116 - once per commit: no Path object each time
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _write_failed(run_dir: Path, exc: sqlite3.Error | OSError) -> JournalWriteError:
    return JournalWriteError(
        f"cannot write {run_dir / JOURNAL_FILE} ({exc}): is the disk full or the file "
        "read-only? Nothing after the last stored step was lost; fix it, then resume",
        run_dir=run_dir,
    )


# Errors of the disk or the folder, not of the file: reading a journal in WAL mode writes its
# -shm file, which a full disk or a read-only folder refuses.
_NOT_THE_FILE = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")


def _unreadable(path: Path, exc: sqlite3.Error) -> JournalError:
    """Why ``path`` could not be read: the disk or the folder, or else a damaged file."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if not name.startswith(_NOT_THE_FILE):
        return _damaged(path, str(exc))
    return JournalError(
        _(
            "cannot read {path} ({error}): is the disk full, or the folder read-only? Reading "
            "a journal writes its -shm file next to it. The journal itself was not found "
            "damaged: make room (or copy the run directory somewhere writable) and try again"
        ).format(path=path, error=exc)
    )


def _damaged(path: Path, detail: str) -> JournalError:
    return JournalError(
        f"{path} is damaged and cannot be used ({detail}); nothing was read from it. "
        "Start a new run without --resume: tasks the damaged run created are found by name "
        "and reported as existing, never created twice"
    )


def _check_journal(conn: sqlite3.Connection, path: Path) -> None:
    """Schema version first (a newer journal may not match our tables), then integrity."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        raise _damaged(path, "no meta table")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = _loads(row[0]) if row else None
    if not isinstance(version, int):
        raise _damaged(path, "no schema version")
    if version > SCHEMA_VERSION:
        raise JournalError(
            _(
                "{path} was written by a newer bulkscan (journal schema {version}; this bulkscan "
                "reads up to {most}): upgrade bulkscan to resume or report this run"
            ).format(path=path, version=version, most=SCHEMA_VERSION)
        )
    if version < SCHEMA_VERSION:
        raise JournalError(
            _(
                "{path} has journal schema {version}, older than this bulkscan's "
                "{ours}: report or resume it with the bulkscan that wrote it"
            ).format(path=path, version=version, ours=SCHEMA_VERSION)
        )
    result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        raise _damaged(path, "integrity check: " + "; ".join(map(str, result[:3])))
    for table, columns in _TABLE_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in columns if c not in have]
        if missing:
            raise _damaged(path, f"table {table} lacks {', '.join(missing)}")
    keys = {r[0] for r in conn.execute("SELECT key FROM meta")}
    missing = [k for k in _REQUIRED_META if k not in keys]
    if missing:
        raise _damaged(path, f"run facts missing: {', '.join(missing)}")


# --- decoding rows ---------------------------------------------------------------------------


def _run_meta(v: Mapping[str, Any]) -> RunMeta:
    instances = _parse_layout(v["instances"])
    assert instances is not None
    learned = v.get("learned_rate_per_s")
    window = v.get("settle_window_s")
    created = _parse_time(v["created_at"])
    assert created is not None
    return RunMeta(
        run_id=v["run_id"],
        schema_version=v["schema_version"],
        bulkscan_version=v["bulkscan_version"],
        created_at=created,
        started_at=_parse_time(v.get("started_at")),
        ended_at=_parse_time(v.get("ended_at")),
        input_path=v["input_path"],
        input_sha256=v["input_sha256"],
        input_format=v["input_format"],
        instances=instances,
        profiles=_parse_layout(v.get("profiles")),
        plan_hash=v["plan_hash"],
        settings=dict(v["settings"]),
        operator=v["operator"],
        host=v["host"],
        command=tuple(v["command"]),
        stop_reason=v.get("stop_reason"),
        stop_message=v.get("stop_message"),
        learned_rate_per_s=float(learned) if learned is not None else None,
        duplicates=tuple(v.get("duplicates") or ()),
        duplicates_unchecked=str(v.get("duplicates_unchecked") or ""),
        held_back=int(v.get("held_back") or 0),
        audit_command=v.get("audit_command"),
        last_resume=_resume(v.get("last_resume")),
        settle_window_s=float(window) if window is not None else None,
    )


def _resume(value: Mapping[str, Any] | None) -> Resume | None:
    if value is None:
        return None
    return Resume(
        operator=str(value["operator"]),
        host=str(value["host"]),
        command=tuple(value["command"]),
        settings=dict(value["settings"]),
    )


def _task(r: sqlite3.Row) -> TaskRecord:
    updated = _parse_time(r["updated_at"])
    assert updated is not None
    return TaskRecord(
        key=r["key"],
        seq=r["seq"],
        name=r["name"],
        project_id=r["project_id"],
        region=r["region"],
        profile=r["profile"],
        body_bytes=bytes(r["body"]),
        sources=_parse_sources(r["sources"]) or (),
        rows=tuple(_parse_ref(x) for x in _loads(r["rows"])),
        state=TaskState(r["state"]),
        task_id=r["task_id"],
        http_status=r["http_status"],
        error_code=r["error_code"],
        error_msg=r["error_msg"],
        request_id=r["request_id"],
        attempts=r["attempts"],
        throttled=r["throttled"],
        first_attempt_at=_parse_time(r["first_attempt_at"]),
        last_attempt_at=_parse_time(r["last_attempt_at"]),
        last_latency_s=r["last_latency_s"],
        conflict_task_id=r["conflict_task_id"],
        conflict_sources=_parse_sources(r["conflict_sources"]),
        updated_at=updated,
    )


def _attempt(r: sqlite3.Row) -> Attempt:
    at = _parse_time(r["at"])
    assert at is not None
    return Attempt(
        id=r["id"],
        at=at,
        task_key=r["task_key"],
        n=r["n"],
        method=r["method"],
        path=r["path"],
        status=r["status"],
        code=r["code"],
        request_id=r["request_id"],
        latency_s=r["latency_s"],
        verdict=r["verdict"],
        message=r["message"],
    )


def _row(r: sqlite3.Row) -> RowRecord:
    dup = r["duplicate_of"]
    return RowRecord(
        seq=r["seq"],
        ref=RowRef(r["file"], r["sheet"], r["row"]),
        values=_loads(r["vals"]),
        task_key=r["task_key"],
        status=RowStatus(r["status"]),
        duplicate_of=_parse_ref(_loads(dup)) if dup else None,
    )


def _profile_row(r: sqlite3.Row) -> ProfileRowRecord:
    return ProfileRowRecord(r["seq"], RowRef(r["file"], r["sheet"], r["row"]), _loads(r["vals"]))


def _issue(r: sqlite3.Row) -> Issue:
    file, sheet, row = r["file"], r["sheet"], r["row"]
    ref = RowRef(file, sheet, row) if row is not None and file and sheet else None
    return Issue(
        severity=r["severity"],
        message=r["message"],
        ref=ref,
        file=None if ref else file,
        sheet=None if ref else sheet,
        column=r["col"],
        value=r["value"],
        hint=r["hint"],
    )
