"""The run journal: one SQLite file per run holding everything the run did.

A run directory ``reports/<input-stem>-<YYYYmmdd-HHMMSS>/`` holds ``journal.sqlite``, the
event log and the result workbook.  The journal alone is enough to rebuild the report: run
facts (``meta``), every planned task and its state (``tasks``), every HTTP attempt
(``attempts``), every input row in input order (``rows``), every validation issue
(``issues``) and the profiles sheet as read (``profile_rows``).

Crash safety.  Every state change is one transaction, committed before the next step depends
on it: a task is *sending* before its request leaves, and its outcome is stored when it
returns.  The journal runs in WAL mode with ``synchronous=NORMAL``:

* a process crash (SIGKILL, a second Ctrl-C, out of memory) loses nothing that was committed:
  a commit is in the WAL file (in the OS page cache), which the next open replays;
* an OS crash or power loss may lose the last transactions (the WAL is synced at checkpoints,
  not at each commit) but never damages the journal: the WAL is replayed up to its last
  complete, checksummed commit, so what survives is a prefix of the run's history;
* exactly once still holds after such a loss, because every dispatch (first run or resume)
  lists each project's tasks and reconciles *every* open task by name, pending included,
  before it sends anything (``bulkscan.run.dispatch``): a task whose *sending* mark was lost is
  *pending* again and is found as *exists*; one whose outcome was lost is still *sending* and
  is found as *created*.  Nothing is created twice; the cost is a label (*exists* where
  *created* was meant) or, for a task whose refusal was lost, one more request.

``synchronous=FULL`` would sync the WAL at every commit, twice per request: a few milliseconds
each on a disk, most of the sending path's time, for no gain in exactly-once.  A journal is
created complete or not at all (written with ``FULL`` to a temporary file, then renamed).
One process at a time: a writer holds an exclusive ``flock`` on ``<run_dir>/.lock``.

Task states::

    pending ──► sending ──► created | accepted | exists | conflict | failed | gave_up | unknown

``unknown`` is an ambiguous outcome not yet looked up (a *sending* task found at a crash is
unknown too); a resumed run looks every such task up by name before anything is re-sent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fcntl
import getpass
import json
import os
import re
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.errors import JournalError
from bulkscan.models import DataSource, Issue, Outcome, RowRef, TaskRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from bulkscan.models import InputBook, Plan, Sheet

__all__ = [
    "EVENTS_FILE",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "OPEN_STATES",
    "SCHEMA_VERSION",
    "AttemptRecord",
    "Journal",
    "ProfileRowRecord",
    "RowRecord",
    "RowStatus",
    "RunInput",
    "RunMeta",
    "SheetLayout",
    "TaskRecord",
    "TaskState",
    "create_run_dir",
    "find_latest_run",
]

SCHEMA_VERSION = 1
JOURNAL_FILE = "journal.sqlite"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"


class TaskState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    CREATED = "created"
    ACCEPTED = "accepted"
    EXISTS = "exists"
    CONFLICT = "conflict"
    FAILED = "failed"
    GAVE_UP = "gave_up"
    UNKNOWN = "unknown"


# States a resumed run works on: never sent, outcome unknown, or given up after transient errors
# (known not to exist: safe to try again).  Created/accepted/exists/conflict/failed are final.
OPEN_STATES = frozenset(
    {TaskState.PENDING, TaskState.SENDING, TaskState.UNKNOWN, TaskState.GAVE_UP}
)

_OUTCOMES = {
    TaskState.PENDING: Outcome.NOT_ATTEMPTED,
    TaskState.SENDING: Outcome.UNKNOWN,
    TaskState.CREATED: Outcome.CREATED,
    TaskState.ACCEPTED: Outcome.ACCEPTED,
    TaskState.EXISTS: Outcome.EXISTS,
    TaskState.CONFLICT: Outcome.CONFLICT,
    TaskState.FAILED: Outcome.FAILED,
    TaskState.GAVE_UP: Outcome.GAVE_UP,
    TaskState.UNKNOWN: Outcome.UNKNOWN,
}


class RowStatus(enum.StrEnum):
    PLANNED = "planned"  # its instance is in a task (task_key set)
    SKIPPED = "skipped"  # enabled = false
    DUPLICATE = "duplicate"  # repeats an earlier row (duplicate_of set)
    INVALID = "invalid"  # has a validation error
    UNPLANNED = "unplanned"  # none of the above (never expected; kept visible, not hidden)


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SheetLayout:
    """A sheet's place and original headers, so a workbook can be written in the same shape."""

    file: str
    sheet: str
    headers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RowRecord:
    """One input row of the instances sheet: original header → value, and where it went."""

    seq: int
    ref: RowRef
    values: dict[str, Any]
    status: RowStatus
    task_key: str | None = None
    duplicate_of: RowRef | None = None


@dataclass(frozen=True, slots=True)
class ProfileRowRecord:
    seq: int
    ref: RowRef
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInput:
    """What the journal keeps of the input: its identity, layout, rows and issues."""

    path: str
    sha256: str
    fmt: str
    instances: SheetLayout
    profiles: SheetLayout | None
    rows: tuple[RowRecord, ...]
    profile_rows: tuple[ProfileRowRecord, ...] = ()
    issues: tuple[Issue, ...] = ()

    @classmethod
    def from_book(
        cls, book: InputBook, plan: Plan, issues: Sequence[Issue] | None = None
    ) -> RunInput:
        """Every row of ``book`` with its status under ``plan``.

        ``issues`` defaults to ``plan.issues`` (validation's issues plus planning's own).
        """
        issues = plan.issues if issues is None else tuple(issues)
        profiles = book.profiles
        return cls(
            path=book.path,
            sha256=book.sha256,
            fmt=book.fmt,
            instances=_layout(book.instances),
            profiles=_layout(profiles) if profiles is not None else None,
            rows=_row_records(book.instances, plan, issues),
            profile_rows=_profile_records(profiles) if profiles is not None else (),
            issues=issues,
        )


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
        return _OUTCOMES[self.state]

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body_bytes)
        return body

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
            body=self.body,
            body_bytes=self.body_bytes,
        )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One HTTP attempt: never headers, signatures or bodies.  ``task_key`` None: a listing."""

    at: dt.datetime
    task_key: str | None
    n: int
    method: str
    path: str
    status: int | None
    code: str | None
    request_id: str | None
    latency_s: float
    verdict: str
    message: str | None = None
    id: int | None = None


# --- schema --------------------------------------------------------------------------------

_STATES_SQL = ", ".join(f"'{s.value}'" for s in TaskState)
_ROW_STATUSES_SQL = ", ".join(f"'{s.value}'" for s in RowStatus)

# Each state change writes as few pages as it can: no index on tasks.state (a dispatch keeps
# the states in memory; counting them scans the table once) and no AUTOINCREMENT (attempts are
# never deleted, so ids still grow with time).  Journals written with either still read.
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    region TEXT NOT NULL,
    profile TEXT NOT NULL,
    body BLOB NOT NULL,
    sources TEXT NOT NULL,
    rows TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
    task_id TEXT,
    http_status INTEGER,
    error_code TEXT,
    error_msg TEXT,
    request_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0,
    first_attempt_at TEXT,
    last_attempt_at TEXT,
    last_latency_s REAL,
    conflict_task_id TEXT,
    conflict_sources TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    task_key TEXT REFERENCES tasks (key),
    n INTEGER NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    code TEXT,
    request_id TEXT,
    latency_s REAL NOT NULL,
    verdict TEXT NOT NULL,
    message TEXT
);
CREATE TABLE rows (
    seq INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    sheet TEXT NOT NULL,
    row INTEGER NOT NULL,
    vals TEXT NOT NULL,
    task_key TEXT REFERENCES tasks (key),
    status TEXT NOT NULL CHECK (status IN ({_ROW_STATUSES_SQL})),
    duplicate_of TEXT
);
CREATE TABLE issues (
    seq INTEGER PRIMARY KEY,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    file TEXT,
    sheet TEXT,
    row INTEGER,
    col TEXT,
    value TEXT,
    hint TEXT
);
CREATE TABLE profile_rows (
    seq INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    sheet TEXT NOT NULL,
    row INTEGER NOT NULL,
    vals TEXT NOT NULL
);
"""

_TABLE_COLUMNS = {
    table: tuple(
        line.split()[0]
        for line in body.split("\n")
        if line.strip() and not line.strip().startswith(")")
    )
    for table, body in re.findall(r"CREATE TABLE (\w+) \(\n(.*?)\n\);", _SCHEMA, re.DOTALL)
}
_TABLE_COLUMNS["meta"] = ("key", "value")


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


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=_json_hook)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


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


def _local_now() -> dt.datetime:
    return dt.datetime.now().astimezone()


# --- building the input records ----------------------------------------------------------------


def _layout(sheet: Sheet) -> SheetLayout:
    return SheetLayout(sheet.file, sheet.name, tuple(sheet.headers))


def _original_values(sheet: Sheet, values: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical column → value becomes original header → value, in sheet order."""
    out: dict[str, Any] = {}
    for header, column in zip(sheet.headers, sheet.columns, strict=False):
        if column in values and header not in out:
            out[header] = values[column]
    return out


def _row_records(sheet: Sheet, plan: Plan, issues: Sequence[Issue]) -> tuple[RowRecord, ...]:
    task_of = {ref: t.key for t in plan.tasks for ref in t.rows}
    duplicate_of = dict(plan.duplicates)
    skipped = set(plan.skipped)
    invalid = {i.ref for i in issues if i.severity == "error" and i.ref}
    records = []
    for seq, raw in enumerate(sheet.rows):
        ref = raw.ref
        key = task_of.get(ref)
        if key is not None:
            status = RowStatus.PLANNED
        elif ref in duplicate_of:
            status = RowStatus.DUPLICATE
        elif ref in skipped:
            status = RowStatus.SKIPPED
        elif ref in invalid:
            status = RowStatus.INVALID
        else:
            status = RowStatus.UNPLANNED
        values = _original_values(sheet, raw.values)
        records.append(RowRecord(seq, ref, values, status, key, duplicate_of.get(ref)))
    return tuple(records)


def _profile_records(sheet: Sheet) -> tuple[ProfileRowRecord, ...]:
    return tuple(
        ProfileRowRecord(seq, raw.ref, _original_values(sheet, raw.values))
        for seq, raw in enumerate(sheet.rows)
    )


# --- run directories -----------------------------------------------------------------------


def _stem(input_path: str | os.PathLike[str]) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(input_path).stem).strip("._") or "input"
    return stem[:80]


def create_run_dir(
    reports_dir: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    now: dt.datetime | None = None,
) -> Path:
    """A new, empty ``<reports_dir>/<input-stem>-<YYYYmmdd-HHMMSS>[-N]`` directory."""
    now = now or _local_now()
    base = f"{_stem(input_path)}-{now:%Y%m%d-%H%M%S}"
    parent = Path(reports_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            candidate = parent / (base if n == 1 else f"{base}-{n}")
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()
                return candidate
    except OSError as exc:
        raise JournalError(
            f"cannot create a run directory in {parent}: {exc.strerror or exc}; "
            "choose another --reports-dir"
        ) from None
    raise JournalError(f"{parent} already has 999 runs named {base}: clean up old runs")


def find_latest_run(
    reports_dir: str | os.PathLike[str], input_path: str | os.PathLike[str]
) -> Path | None:
    """The newest run directory of ``input_path`` (by its name) that holds a journal."""
    pattern = re.compile(re.escape(_stem(input_path)) + r"-(\d{8}-\d{6})(?:-(\d+))?$")
    best: tuple[str, int] | None = None
    found: Path | None = None
    parent = Path(reports_dir)
    if not parent.is_dir():
        return None
    for entry in parent.iterdir():
        m = pattern.match(entry.name)
        if not m or not (entry / JOURNAL_FILE).is_file():
            continue
        rank = (m.group(1), int(m.group(2) or 1))
        if best is None or rank > best:
            best, found = rank, entry
    return found


# --- the lock ------------------------------------------------------------------------------


def _acquire_lock(run_dir: Path) -> int:
    """An exclusive, non-blocking flock on ``run_dir/.lock``; the fd holds it until closed."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise JournalError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"run directory {run_dir} is in use by another bulkscan process (pid {holder}); "
            "wait for it to finish, or stop it, before resuming"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


# --- the journal -----------------------------------------------------------------------------


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class Journal:
    """An open run journal.  Writers hold the run directory's lock until ``close()``."""

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
        now: Callable[[], dt.datetime] = _local_now,
    ) -> Journal:
        """Write a new journal for ``plan`` into ``run_dir`` (which must have none) and open it.

        ``settings`` must hold no secret (keys that look like one are refused).
        """
        run_dir = Path(run_dir)
        _check_no_secrets(settings)
        lock_fd = _acquire_lock(run_dir)
        try:
            target = run_dir / JOURNAL_FILE
            if target.exists():
                raise JournalError(
                    f"{run_dir} already has a journal: resume it with --resume {run_dir}, "
                    "or start a new run"
                )
            tmp = run_dir / (JOURNAL_FILE + ".tmp")
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
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        readonly: bool = False,
        now: Callable[[], dt.datetime] = _local_now,
    ) -> Journal:
        """Open an existing journal, refusing one that is busy, damaged or from a newer bulkscan.

        ``readonly`` (for reports) takes no lock and never writes.
        """
        run_dir = Path(run_dir)
        path = run_dir / JOURNAL_FILE
        if not path.is_file():
            raise JournalError(
                f"{run_dir} has no {JOURNAL_FILE}: it is not a bulkscan run directory "
                "(give the directory that bulkscan run created under reports/)"
            )
        lock_fd = None if readonly else _acquire_lock(run_dir)
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
            raise _damaged(path, str(exc)) from None
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(run_dir, conn, lock_fd, now=now)

    def close(self) -> None:
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

    def attempts(self) -> tuple[AttemptRecord, ...]:
        return tuple(_attempt(r) for r in self._query(f"{_select('attempts')} ORDER BY id"))

    def rows(self) -> tuple[RowRecord, ...]:
        """Every row of the instances sheet, in input order."""
        return tuple(_row(r) for r in self._query(f"{_select('rows')} ORDER BY seq"))

    def issues(self) -> tuple[Issue, ...]:
        return tuple(_issue(r) for r in self._query(f"{_select('issues')} ORDER BY seq"))

    def profile_rows(self) -> tuple[ProfileRowRecord, ...]:
        query = "SELECT seq, file, sheet, row, vals FROM profile_rows ORDER BY seq"
        return tuple(
            ProfileRowRecord(seq, RowRef(f, s, r), _loads(v))
            for seq, f, s, r, v in self._query(query)
        )

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

    def check_same_input(self, sha256: str, plan_hash: str) -> None:
        """Refuse to resume with an input or plan other than the run's own, saying why."""
        meta = self.meta()
        if meta.input_sha256 != sha256:
            raise JournalError(
                f"{meta.input_path} has changed since run {meta.run_id} started "
                f"(SHA-256 {meta.input_sha256[:12]}… then, {sha256[:12]}… now): restore the "
                "original file to resume, or run without --resume to start a new run"
            )
        if meta.plan_hash != plan_hash:
            shown = " ".join(meta.command) or "the original options"
            raise JournalError(
                f"the plan differs from run {meta.run_id}'s although {meta.input_path} is the "
                "same file: options such as --region, --project-id or a profiles file changed "
                f"what would be sent; resume with the options of the original run ({shown}), "
                "or run without --resume to start a new run"
            )

    # -- writing --

    def mark_started(self, *, command: Sequence[str] | None = None) -> None:
        """Record that sending begins (again, on resume); clears a previous stop reason."""
        values: dict[str, object] = {"started_at": _time(self._now())}
        if command is not None:
            values["last_command"] = list(command)
        with self._tx() as cur:
            _put_meta(cur, values)
            cur.execute("DELETE FROM meta WHERE key IN ('ended_at', 'stop_reason', 'stop_message')")

    def mark_ended(
        self, reason: str, message: str = "", *, learned_rate_per_s: float | None = None
    ) -> None:
        values: dict[str, object] = {
            "ended_at": _time(self._now()),
            "stop_reason": reason,
            "stop_message": message,
        }
        if learned_rate_per_s is not None:
            values["learned_rate_per_s"] = learned_rate_per_s
        with self._tx() as cur:
            _put_meta(cur, values)

    def mark_sending(self, key: str) -> None:
        """Committed before the request leaves (one statement: its own transaction)."""
        self._write_one(_MARK_SENDING, (TaskState.SENDING, _time(self._now()), key))

    def record_attempt(
        self,
        attempt: AttemptRecord,
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
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO attempts (at, task_key, n, method, path, status, code, request_id,"
                " latency_s, verdict, message) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            key = attempt.task_key
            if key is None:
                return
            now = _time(self._now())
            if counted:
                cur.execute(
                    _COUNT_ATTEMPT,
                    (int(throttled), row[0], row[0], attempt.latency_s, attempt.status,
                     attempt.code, attempt.request_id, error_msg, now, state, task_id, key),
                )  # fmt: skip
                if cur.rowcount != 1:
                    raise KeyError(key)
                return
            fields: dict[str, object] = {"updated_at": now}
            if error_msg is not None:
                fields["error_msg"] = error_msg
            if state is not None:
                fields["state"] = state
            if task_id is not None:
                fields["task_id"] = task_id
            _update(cur, key, fields)

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
        now = _time(self._now())
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
        with self._tx() as cur:
            _put_meta(cur, values)

    # -- internals --

    def _set(self, key: str, **fields: object) -> None:
        fields["updated_at"] = _time(self._now())
        with self._tx() as cur:
            _update(cur, key, fields)

    def _write_one(self, sql: str, params: Sequence[object]) -> None:
        """One UPDATE of one task, committed on its own (autocommit: no BEGIN/COMMIT)."""
        if self._lock_fd is None:
            raise JournalError(f"{self.path} is open read-only")
        try:
            changed = self._conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise _write_failed(self.path, exc) from None
        if changed != 1:
            raise KeyError(params[-1])

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        if self._lock_fd is None:
            raise JournalError(f"{self.path} is open read-only")
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
                raise _write_failed(self.path, exc) from None
            raise
        finally:
            cur.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _damaged(self.path, str(exc)) from None


def _attempt_row(a: AttemptRecord) -> tuple[object, ...]:
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


def _update(cur: sqlite3.Cursor, key: str, fields: Mapping[str, object]) -> None:
    assignments = ", ".join(f"{name} = ?" for name in fields)
    cur.execute(f"UPDATE tasks SET {assignments} WHERE key = ?", (*fields.values(), key))  # noqa: S608 - column names are ours
    if cur.rowcount != 1:
        raise KeyError(key)


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
    for leftover in ("", "-wal", "-shm", "-journal"):  # from a create that crashed here
        Path(f"{tmp}{leftover}").unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN")
        for statement in filter(str.strip, _SCHEMA.split(";")):
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
    return {"file": layout.file, "sheet": layout.sheet, "headers": list(layout.headers)}


def _parse_layout(value: Mapping[str, Any] | None) -> SheetLayout | None:
    if value is None:
        return None
    return SheetLayout(str(value["file"]), str(value["sheet"]), tuple(value["headers"]))


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


def _write_failed(path: Path, exc: sqlite3.Error) -> JournalError:
    return JournalError(
        f"cannot write {path} ({exc}): is the disk full or the file read-only? "
        "Nothing after the last stored step was lost; fix it, then resume"
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
            f"{path} was written by a newer bulkscan (journal schema {version}; this bulkscan "
            f"reads up to {SCHEMA_VERSION}): upgrade bulkscan to resume or report this run"
        )
    if version < SCHEMA_VERSION:
        raise JournalError(
            f"{path} has journal schema {version}, older than this bulkscan's "
            f"{SCHEMA_VERSION}: report or resume it with the bulkscan that wrote it"
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
    )


def _task(r: Sequence[Any]) -> TaskRecord:
    updated = _parse_time(r[22])
    assert updated is not None
    return TaskRecord(
        key=r[0],
        seq=r[1],
        name=r[2],
        project_id=r[3],
        region=r[4],
        profile=r[5],
        body_bytes=bytes(r[6]),
        sources=_parse_sources(r[7]) or (),
        rows=tuple(_parse_ref(x) for x in _loads(r[8])),
        state=TaskState(r[9]),
        task_id=r[10],
        http_status=r[11],
        error_code=r[12],
        error_msg=r[13],
        request_id=r[14],
        attempts=r[15],
        throttled=r[16],
        first_attempt_at=_parse_time(r[17]),
        last_attempt_at=_parse_time(r[18]),
        last_latency_s=r[19],
        conflict_task_id=r[20],
        conflict_sources=_parse_sources(r[21]),
        updated_at=updated,
    )


def _attempt(r: Sequence[Any]) -> AttemptRecord:
    at = _parse_time(r[1])
    assert at is not None
    return AttemptRecord(
        id=r[0],
        at=at,
        task_key=r[2],
        n=r[3],
        method=r[4],
        path=r[5],
        status=r[6],
        code=r[7],
        request_id=r[8],
        latency_s=r[9],
        verdict=r[10],
        message=r[11],
    )


def _row(r: Sequence[Any]) -> RowRecord:
    dup = _parse_ref(_loads(r[7])) if r[7] else None
    return RowRecord(
        seq=r[0],
        ref=RowRef(r[1], r[2], r[3]),
        values=_loads(r[4]),
        task_key=r[5],
        status=RowStatus(r[6]),
        duplicate_of=dup,
    )


def _issue(r: Sequence[Any]) -> Issue:
    _, severity, message, file, sheet, row, col, value, hint = r
    ref = RowRef(file, sheet, row) if row is not None and file and sheet else None
    return Issue(
        severity=severity,
        message=message,
        ref=ref,
        file=None if ref else file,
        sheet=None if ref else sheet,
        column=col,
        value=value,
        hint=hint,
    )
