"""A planned task's states in the journal, and each set of them, defined once.

::

    pending ──► sending ──► created | accepted | exists | conflict | failed | gave_up | unknown

``unknown`` is an ambiguous outcome not yet looked up (a *sending* task found at a crash is
unknown too); a resumed run looks every such task up by name before anything is re-sent.
"""

from __future__ import annotations

import enum

from bulkscan.models import Outcome

__all__ = [
    "BAD_STATES",
    "OPEN_STATES",
    "SUCCEEDED_STATES",
    "UNFINISHED_STATES",
    "TaskState",
    "outcome_of",
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
