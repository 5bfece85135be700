"""Every ``--json`` answer: one envelope, one vocabulary of outcome names, built here alone.

::

    {"schema": "bulkscan/1", "command": "run", "status": "incomplete", "exit_code": 1,
     "next": {"command": "bulkscan run ... --resume ...", "argv": [...], "why": "..."},
     ...the command's own fields}

``schema`` names the shape; within one version fields are only ever added (a reader ignores
what it does not know), and a field renamed or removed, or a meaning changed, takes the next
version.  ``status`` and ``exit_code`` always agree (``status_of``), and ``next`` is the same
command the text output prints, or null when there is nothing to do.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from bulkscan.cli._common import status_of
from bulkscan.models import Outcome
from bulkscan.run.states import ActionState, CoverageStatus, ScanState, TaskState, outcome_of

if TYPE_CHECKING:
    import argparse
    import enum
    from collections.abc import Mapping

__all__ = ["SCHEMA", "VOCABULARY", "Next", "emit", "emit_missing", "outcome_counts", "term"]

SCHEMA = "bulkscan/1"

# The report's and the audit's words for a few states, as one word each in JSON.
_RENAMED: Mapping[str, str] = {
    Outcome.NOT_ATTEMPTED: TaskState.PENDING.value,  # never sent: the journal's own word
    CoverageStatus.DISABLED: "disabled",  # covered only by disabled tasks
    CoverageStatus.MISSING: "not_covered",
    CoverageStatus.HELD: "held",  # in a task an unfinished run has not sent yet
}


def term(value: str | enum.Enum) -> str:
    """THE JSON name of an outcome, a task or scan state, or a coverage: lowercase, one
    word (``gave up`` is ``gave_up`` wherever it is read)."""
    text = str(value)
    return _RENAMED.get(text, text.replace(" ", "_"))


# Every name an outcome, state or coverage has in a --json answer.
VOCABULARY: frozenset[str] = frozenset(
    term(v) for v in chain(TaskState, Outcome, CoverageStatus, ScanState, ActionState)
)


def outcome_counts(counts: Mapping[Any, int]) -> dict[str, int]:
    """``counts`` keyed by vocabulary names, zeros left out; journal states are counted as the
    report names them (a task still *sending* is ``unknown``)."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        name = term(outcome_of(key) if isinstance(key, TaskState) else key)
        if n:
            out[name] = out.get(name, 0) + n
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class Next:
    """The one command to run next, as the text output prints it, and why."""

    command: str
    why: str

    def as_json(self) -> dict[str, Any]:
        return {"command": self.command, "argv": shlex.split(self.command), "why": self.why}


def emit(
    args: argparse.Namespace,
    code: int,
    fields: Mapping[str, Any],
    *,
    next_step: Next | None = None,
) -> int:
    """Print the command's one JSON document; returns ``code`` (the process's exit code)."""
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "command": args.command,
        "status": str(status_of(code)),
        "exit_code": code,
        "next": next_step.as_json() if next_step else None,
    }
    document.update((k, v) for k, v in fields.items() if k not in document)
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
    args.json_done = True
    return code


def emit_missing(
    args: argparse.Namespace,
    code: int,
    error: str | None = None,
    fields: Mapping[str, Any] | None = None,
    *,
    next_step: Next | None = None,
) -> None:
    """A command asked for ``--json`` that ended before it printed its document (refused,
    stopped, interrupted): the envelope, ``fields``, the error (null when there is none) and
    the next step, if there is one (a run stopped by a full disk: its resume command)."""
    if getattr(args, "json", False) and not getattr(args, "json_done", False):
        emit(args, code, {**(fields or {}), "error": error}, next_step=next_step)
