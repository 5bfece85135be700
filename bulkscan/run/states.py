"""Every set of states bulkscan names, defined once: a planned task's in the journal (and
each set of them), a task's latest scan, a lifecycle action's, and an instance's coverage.

::

    pending ──► sending ──► created | accepted | exists | conflict | failed | gave_up | unknown

``unknown`` is an ambiguous outcome not yet looked up (a *sending* task found at a crash is
unknown too); a resumed run looks every such task up by name before anything is re-sent.

A light module (no journal, no client): ``--json``'s vocabulary is read from here at start-up.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkscan.models import Outcome, Status

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ActionState",
    "BAD_STATES",
    "CoverageStatus",
    "OPEN_STATES",
    "RETRY_STATES",
    "NextStep",
    "ScanState",
    "Standing",
    "SUCCEEDED_STATES",
    "UNFINISHED_STATES",
    "Tally",
    "TaskState",
    "outcome_of",
    "tally",
    "tally_of",
]


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


# The task is in the service: created, accepted, or found there already.
SUCCEEDED_STATES = frozenset({TaskState.CREATED, TaskState.ACCEPTED, TaskState.EXISTS})
# The task is not in the service and this run will not put it there.
BAD_STATES = frozenset({TaskState.FAILED, TaskState.GAVE_UP, TaskState.CONFLICT})
# Not decided yet: never sent, or its outcome unknown (what a resume must settle).
UNFINISHED_STATES = frozenset({TaskState.PENDING, TaskState.SENDING, TaskState.UNKNOWN})
# What retry.xlsx holds: known not to be in the service, fixable by the user (a conflict
# needs a decision instead).
RETRY_STATES = frozenset({TaskState.FAILED, TaskState.GAVE_UP})
# What a resumed run works on: the unfinished, and the given up (known not to exist: safe to
# try again).  Created/accepted/exists/conflict/failed are final.
OPEN_STATES = UNFINISHED_STATES | {TaskState.GAVE_UP}

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


def outcome_of(state: TaskState) -> Outcome:
    """How the report names a task in ``state``."""
    return _OUTCOMES[state]


class ScanState(enum.StrEnum):
    """The latest run of a task, in our words (the service's are not documented)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEVER_RAN = "never ran"
    UNKNOWN = "unknown"  # a status word we do not know, or the runs could not be read


class ActionState(enum.StrEnum):
    """A lifecycle action (start, enable, disable, update, delete) on one task."""

    SENDING = "sending"
    DONE = "done"
    GONE = "gone"  # the service no longer has the task: nothing to do
    KEPT = "kept"  # changed since the run: not deleted without --force
    FAILED = "failed"


class CoverageStatus(enum.StrEnum):
    """Whether an inventory instance is scanned by some task."""

    COVERED = "covered"
    DISABLED = "only disabled tasks"  # matched, but every matching task is disabled
    MISSING = "not covered"  # no task names it
    UNKNOWN = "unknown"  # its project's tasks could not be listed
    HELD = "held by an unfinished run"  # not covered yet; resuming that run sends it


@dataclass(frozen=True, slots=True)
class Tally:
    """The counts a person is shown about tasks, computed in one place (``tally``).

    Progress, the terminal summary, ``--json``, the results workbook and ``status`` render
    these, so that "errors" or "not sent" mean the same thing wherever they are read.
    """

    total: int = 0
    succeeded: int = 0  # in DSC: created, accepted, or found there (SUCCEEDED_STATES)
    errors: int = 0  # ended without their task: failed, gave up, conflict (BAD_STATES)
    unsent: int = 0  # never sent: pending
    unknown: int = 0  # sent, outcome not known yet: sending, unknown

    @property
    def unfinished(self) -> int:
        """Not sent yet or whose outcome is unknown: what ``--resume`` works on."""
        return self.unsent + self.unknown

    @property
    def settled(self) -> int:
        """Tasks whose outcome no run will change by itself: in DSC, or ended with an error."""
        return self.succeeded + self.errors


def tally(counts: Mapping[TaskState, int]) -> Tally:
    """THE count of tasks by what they mean, from the number of tasks in each state."""

    def among(states: frozenset[TaskState]) -> int:
        return sum(n for state, n in counts.items() if state in states)

    return Tally(
        total=sum(counts.values()),
        succeeded=among(SUCCEEDED_STATES),
        errors=among(BAD_STATES),
        unsent=among(frozenset({TaskState.PENDING})),
        unknown=among(UNFINISHED_STATES - {TaskState.PENDING}),
    )


def tally_of(states: Iterable[TaskState]) -> Tally:
    """``tally`` of the tasks in ``states`` (one state per task)."""
    return tally(Counter(states))


class NextStep(enum.StrEnum):
    """The one command a run's summary ends with (``Standing.next``)."""

    RESUME = "resume"  # tasks not sent or of unknown outcome: only a resume may send them
    AUDIT = "audit"  # the closing listing found a planned name twice, or could not look
    RERUN = "rerun"  # the re-run of retry.xlsx, once its failures are fixed


@dataclass(frozen=True, slots=True)
class Standing:
    """How a run stands and what to do next: THE rule, read by ``run`` (its exit code and
    last line), ``report`` (the same, from the journal) and the result workbook's Summary.

    ``stop_reason`` is how the run's last session ended (None: it never ended, or is still
    going on: ``running``); ``held_back`` the tasks that session's ``--limit`` kept for a
    later resume (not a stop: the session did what it was asked); ``duplicates`` the planned
    names its closing listing found more than once, ``unchecked`` whether that listing
    failed; ``retryable`` the tasks retry.xlsx holds (failed or gave up).
    """

    tally: Tally
    stop_reason: str | None = "done"
    held_back: int = 0
    duplicates: int = 0
    unchecked: bool = False
    retryable: int = 0
    running: bool = False

    @property
    def needs_audit(self) -> bool:
        """A name created twice may be in DSC: an audit has to tell, then dedupe."""
        return bool(self.duplicates or self.unchecked)

    @property
    def status(self) -> Status:
        """STOPPED when the last session stopped (fatal error, interrupt, never ended) or
        left work that ``--limit`` did not hold back (unknown or pending: resumable, whatever
        else failed); INCOMPLETE when some task ended without being in DSC, a name may be
        there twice (``needs_audit``) or the run is still going on; else OK."""
        if self.running:
            return Status.INCOMPLETE
        if self.stop_reason != "done" or self.tally.unfinished > self.held_back:
            return Status.STOPPED
        return Status.INCOMPLETE if self.tally.errors or self.needs_audit else Status.OK

    @property
    def next(self) -> NextStep | None:
        """The one thing to do next: nothing while the run goes on; the resume while tasks
        are not sent or of unknown outcome (it looks them up first, and settles what an
        audit would read), or after a session that stopped before its end (the resume makes
        the closing listing that session did not); then the audit, when a name may exist
        twice (re-running failures before it would only add to them); then the re-run of
        retry.xlsx; else nothing."""
        if self.running:
            return None
        if self.tally.unfinished or self.stop_reason != "done":  # exit 3 means: resume
            return NextStep.RESUME
        if self.needs_audit:
            return NextStep.AUDIT
        return NextStep.RERUN if self.retryable else None
