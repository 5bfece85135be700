"""Typed events: how the core tells the outside world what is happening.

The core never prints.  It calls an ``Observer`` with frozen events; the CLI renders them
(progress bar, summary), ``EventLog`` appends them to ``events.jsonl``.  Events carry task
keys, names, statuses, codes and messages from the service, never a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterator

__all__ = [
    "Attempt",
    "AttemptFinished",
    "AttemptStarted",
    "Event",
    "EventLog",
    "LocalStamps",
    "LockTakenOver",
    "Observer",
    "Progress",
    "RateChanged",
    "Reconciled",
    "RunStopped",
    "StopReason",
    "TaskFinished",
    "TaskPlanned",
    "event_to_json",
    "fan_out",
    "ignore",
    "local_now",
    "watching_wire",
    "wire_watcher",
]

StopReason = Literal["done", "fatal", "interrupted"]


@dataclass(frozen=True, slots=True)
class TaskPlanned:
    key: str
    name: str
    project_id: str
    region: str
    sources: int


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    key: str
    name: str
    attempt: int  # 1 for the first request of this task in this journal


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP request and its answer (or its failure): the one record of an attempt, as the
    journal keeps it (``attempts`` table), as ``--debug`` shows it (``watching_wire``) and as
    ``AttemptFinished`` carries it.  The path without its query, never a header, a signature or
    a body; the message cleaned of the credentials' values.  ``n`` 0: a request that is not a
    create (a listing, a lifecycle call; a lookup by name names the task it looks up);
    ``task_key`` None: a request that is no task's."""

    at: datetime
    task_key: str | None
    n: int  # the task's attempt number; 0 for any other request
    method: str
    path: str
    status: int | None  # None: no answer (refused, reset, timed out)
    code: str | None
    request_id: str | None
    latency_s: float
    verdict: str
    message: str | None = None
    id: int | None = None  # the journal's row id, once stored


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    attempt: Attempt
    name: str | None  # the task's name; None when ``attempt.task_key`` is None


@dataclass(frozen=True, slots=True)
class TaskFinished:
    key: str
    name: str
    outcome: str  # the journal state: created, accepted, exists, conflict, failed, gave_up...
    task_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RateChanged:
    old_per_s: float
    new_per_s: float
    reason: str  # "throttled", "stated limit", "recovered"


@dataclass(frozen=True, slots=True)
class Reconciled:
    key: str
    name: str
    before: str  # the journal state before the lookup
    after: str  # exists, conflict, created, pending
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunStopped:
    reason: StopReason
    message: str = ""


@dataclass(frozen=True, slots=True)
class LockTakenOver:
    """A sending lock left by a run whose process is gone (killed) was taken over."""

    run_dir: str  # the run directory the lock names, or "unknown"
    pid: str  # the process that held it
    gone: bool  # that pid no longer exists (else it merely no longer holds the lock)
    projects: str  # the projects the lock was for, comma separated


@dataclass(frozen=True, slots=True)
class Progress:
    """The selected tasks so far (counted by ``run.states.tally``): ``settled`` of ``total``
    have an outcome (``created`` in DSC, ``failed``); ``sent`` had their request leave."""

    settled: int
    total: int
    created: int
    failed: int
    retrying: int
    sent: int
    rate_per_s: float
    eta_s: float | None
    settling: int = 0  # tasks being looked up over the settle window after an ambiguous answer
    # the settle window in use: the longest the run's tasks were sent under (None: as asked)
    settle_s: float | None = None
    # the closing check for names created twice: project/region groups listed of those to list
    checked: int = 0
    to_check: int = 0


Event = (
    TaskPlanned
    | AttemptStarted
    | AttemptFinished
    | TaskFinished
    | RateChanged
    | Reconciled
    | RunStopped
    | Progress
    | LockTakenOver
)


# The client is built by every entry point of the library; a context variable reaches each
# of them (and the tasks and threads they start) without a knob on every signature.
_WIRE: contextvars.ContextVar[Callable[[Attempt], None] | None] = contextvars.ContextVar(
    "bulkscan_wire", default=None
)


@contextlib.contextmanager
def watching_wire(watcher: Callable[[Attempt], None]) -> Iterator[None]:
    """Within this block, every request any ``DscClient`` makes is told to ``watcher``."""
    token = _WIRE.set(watcher)
    try:
        yield
    finally:
        _WIRE.reset(token)


def wire_watcher() -> Callable[[Attempt], None] | None:
    """The watcher set by ``watching_wire`` in this context, if any."""
    return _WIRE.get()


class Observer(Protocol):
    def __call__(self, event: Event) -> None: ...


def ignore(event: Event) -> None:
    """An observer that discards every event."""


def fan_out(*observers: Observer) -> Observer:
    """One observer that hands each event to every given observer, in order."""

    def _all(event: Event) -> None:
        for observer in observers:
            observer(event)

    return _all


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_STR = json.encoder.encode_basestring  # a JSON string, as _ENCODER writes it
# Each event class's line maker, compiled once (as dataclasses compiles __init__): the line's
# %-template filled with every field as JSON, strings by the C encoder without a call of ours
_LINES: dict[type, Callable[[object, str | None], str]] = {}


# An event whose line is not its fields one by one: (name in the line, attribute path).
# ``AttemptFinished`` writes the line it always wrote, its attempt's fields flattened.
_LINE_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {
    AttemptFinished: (
        ("key", "attempt.task_key"),
        ("name", "name"),
        ("attempt", "attempt.n"),
        ("method", "attempt.method"),
        ("status", "attempt.status"),
        ("code", "attempt.code"),
        ("verdict", "attempt.verdict"),
        ("latency_s", "attempt.latency_s"),
        ("request_id", "attempt.request_id"),
    ),
}


def _line_maker(kind: type) -> Callable[[object, str | None], str]:
    pairs = _LINE_FIELDS.get(kind) or tuple((f.name, f.name) for f in dataclasses.fields(kind))
    head = '{"event":' + _STR(kind.__name__).replace("%", "%%")
    fields = "".join("," + _STR(name).replace("%", "%%") + ":%s" for name, _ in pairs)
    values = "".join(f"(S(x) if (x := e.{path}).__class__ is str else J(x))," for _, path in pairs)
    source = (
        "def line(e, at):\n"
        f"    if at is None:\n        return PLAIN % ({values})\n"
        f"    return WITH_AT % (S(at), {values})\n"
    )
    scope: dict[str, object] = {
        "S": _STR,
        "J": _json_value,
        "PLAIN": head + fields + "}",
        "WITH_AT": head + ',"at":%s' + fields + "}",
    }
    exec(source, scope)  # noqa: S102 - our own field names, checked identifiers
    maker: Callable[[object, str | None], str] = scope["line"]  # type: ignore[assignment]
    return maker


def _json_value(value: object) -> str:
    """One plain value as ``_ENCODER`` writes it; the common types without its per-call set-up."""
    if type(value) is str:
        return _STR(value)
    if value is None:
        return "null"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _ENCODER.encode(value)  # enums, booleans, NaN: exactly as json writes them


def _line(event: Event, at: str | None) -> str:
    maker = _LINES.get(type(event))
    if maker is None:
        maker = _LINES[type(event)] = _line_maker(type(event))
    return maker(event, at)


def event_to_json(event: Event, *, at: datetime | None = None) -> str:
    """One JSON line: ``{"event": "TaskFinished", "at": "...", ...fields}``.

    Every field is a plain value (str, int, float, None), so no deep copy is needed.
    """
    return _line(event, at.isoformat(timespec="milliseconds") if at is not None else None)


class LocalStamps:
    """The local time as ISO 8601 text, exactly as ``local_now().isoformat(timespec=...)``
    writes it, at a fraction of the cost: the date, the time of day and the UTC offset are
    formatted once a second (so a change of offset is seen within a second), only the
    fraction at each call."""

    __slots__ = ("_head", "_second", "_tail")

    def __init__(self) -> None:
        self._second = -1
        self._head = self._tail = ""

    def millis(self) -> str:
        """``2026-11-30T07:55:29.123+01:00``"""
        now = time.time()
        return f"{self._head_of(now)}.{int(now % 1 * 1e3):03d}{self._tail}"

    def micros(self) -> str:
        """``2026-11-30T07:55:29.123456+01:00``"""
        now = time.time()
        return f"{self._head_of(now)}.{int(now % 1 * 1e6):06d}{self._tail}"

    def _head_of(self, now: float) -> str:
        """The date and time of day of ``now``'s second; its UTC offset is then ``_tail``."""
        second = int(now)
        if second != self._second:
            text = datetime.fromtimestamp(second).astimezone().isoformat()
            self._second, self._head, self._tail = second, text[:19], text[19:]
        return self._head


class EventLog:
    """An observer that appends one JSON line per event to a file (``events.jsonl``).

    The log is a readable twin of the journal, not its source of truth (the journal holds
    every state change and attempt), so lines are written in batches rather than one flushed
    write per event: once ``flush_every`` lines wait, ``flush_after_s`` after the first of
    them (a timer on the running event loop; at once when no loop runs), on ``RunStopped`` and
    on ``close``.  A crash may lose the log's last fraction of a second, never the journal's.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_every: int = 256,
        flush_after_s: float = 0.25,
    ) -> None:
        self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._flush_every = flush_every
        self._flush_after_s = flush_after_s
        self._timer: asyncio.TimerHandle | None = None
        self._first_at = 0.0  # monotonic time of the oldest unwritten line
        self._stamps = LocalStamps()
        self._failure: OSError | None = None  # a timed write that failed, raised to the next caller

    def __call__(self, event: Event) -> None:
        mono = time.monotonic()
        line = _line(event, self._stamps.millis())
        with self._lock:
            if self._failure is not None:
                self._raise_failure()
            if self._file.closed:
                return
            if not self._lines:
                self._first_at = mono
            self._lines.append(line)
            due = (
                len(self._lines) >= self._flush_every
                or isinstance(event, RunStopped)
                or mono - self._first_at >= self._flush_after_s  # a timer that never fired
            )
            if due or (self._timer is None and not self._schedule()):
                self._write()

    def flush(self) -> None:
        """Write every buffered line now."""
        with self._lock:
            if not self._file.closed:
                self._write()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                try:
                    self._raise_failure()
                    self._write()
                finally:
                    with contextlib.suppress(OSError):  # what could not be written is lost
                        self._lines.clear()
                        self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _schedule(self) -> bool:
        """A flush ``flush_after_s`` from now on the running loop; False without one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._timer = loop.call_later(self._flush_after_s, self._timed_flush)
        return True

    def _timed_flush(self) -> None:
        """``flush`` from the loop's timer: a failure (a full disk) is kept for the next
        caller, who can stop the log, instead of ending in the loop's exception handler."""
        try:
            self.flush()
        except OSError as exc:
            self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _write(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            self._file.write("\n".join(self._lines) + "\n")
            self._lines.clear()
        self._file.flush()


_ZONE: tuple[int, tzinfo | None] = (-1, None)  # (second, the local zone's offset then)


def local_now() -> datetime:
    """Now, in the local time zone (aware): the one clock for journal, events and workbooks.

    ``datetime.now().astimezone()``, with the zone's offset looked up once a second (a change
    of offset falls on a whole second, so the result is the same)."""
    global _ZONE  # noqa: PLW0603 - a cache: the same value whichever thread sets it
    now = time.time()
    second, zone = _ZONE
    if int(now) != second or zone is None:
        zone = datetime.fromtimestamp(int(now)).astimezone().tzinfo
        _ZONE = (int(now), zone)
    return datetime.fromtimestamp(now, zone)
