"""Typed events: how the core tells the outside world what is happening.

The core never prints.  It calls an ``Observer`` with frozen events; the CLI renders them
(progress bar, summary), ``EventLog`` appends them to ``events.jsonl``.  Events carry task
keys, names, statuses, codes and messages from the service, never a credential.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import os

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "Event",
    "EventLog",
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
class AttemptFinished:
    key: str | None  # None for a listing request
    name: str | None
    attempt: int
    method: str
    status: int | None
    code: str | None
    verdict: str
    latency_s: float
    request_id: str | None = None


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
class Progress:
    done: int
    total: int
    created: int
    failed: int
    retrying: int
    rate_per_s: float
    eta_s: float | None


Event = (
    TaskPlanned
    | AttemptStarted
    | AttemptFinished
    | TaskFinished
    | RateChanged
    | Reconciled
    | RunStopped
    | Progress
)


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


def event_to_json(event: Event, *, at: datetime | None = None) -> str:
    """One JSON line: ``{"event": "TaskFinished", "at": "...", ...fields}``."""
    record: dict[str, object] = {"event": type(event).__name__}
    if at is not None:
        record["at"] = at.isoformat(timespec="milliseconds")
    record.update(dataclasses.asdict(event))
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class EventLog:
    """An observer that appends one JSON line per event to a file (``events.jsonl``).

    Each line is flushed as written so that the log survives a crash up to the last event.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = event_to_json(event, at=datetime.now().astimezone())
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
