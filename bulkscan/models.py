"""Frozen value types that flow through the pipeline.

load → ``Sheet``/``RawRow``; validate → ``Instance``/``Profile``/``Issue``; plan → ``Plan`` of
``TaskRequest``; dispatch → ``Outcome`` per task.  Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from bulkscan.i18n import _

__all__ = [
    "Status",
    "DataSource",
    "Instance",
    "InputBook",
    "Issue",
    "Outcome",
    "Plan",
    "Profile",
    "RawRow",
    "RowRef",
    "ScanConfig",
    "Severity",
    "Sheet",
    "TaskRequest",
    "Verdict",
    "one_line",
]

Severity = Literal["error", "warning"]


class Status(enum.StrEnum):
    """How a piece of work ended, decided here; the CLI turns it into its exit code."""

    OK = "ok"  # every task created or there, every instance covered, the input valid
    INCOMPLETE = "incomplete"  # some task failed, or some instance is not (known to be) covered
    INVALID = "invalid"  # the input has errors: nothing was done
    STOPPED = "stopped"  # a fatal error or an interruption, or work left nobody held back


def one_line(text: str) -> str:
    """``text`` with line breaks, bidi overrides and other unprintable characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, slots=True, order=True)
class RowRef:
    """Where a row came from.  ``row`` is the number Excel (or a text editor, for CSV) shows."""

    file: str
    sheet: str
    row: int

    def __str__(self) -> str:
        return _("{file}, sheet '{sheet}', row {row}").format(
            file=self.file, sheet=self.sheet, row=self.row
        )


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in the input.  ``str(issue)`` is the message a user reads."""

    severity: Severity
    message: str
    ref: RowRef | None = None
    file: str | None = None  # used when ref is None (a sheet- or file-level problem)
    sheet: str | None = None
    column: str | None = None
    value: str | None = None
    hint: str | None = None

    @property
    def where(self) -> str:
        if self.ref is not None:
            base = str(self.ref)
        else:
            base = self.file or _("input")
            if self.sheet:
                base += _(", sheet '{sheet}'").format(sheet=self.sheet)
        if self.column:
            base += _(", column '{column}'").format(column=self.column)
        return base

    def __str__(self) -> str:
        hint = _(" ({hint})").format(hint=self.hint) if self.hint else ""
        return one_line(_("{where}: {message}{hint}").format(
            where=self.where, message=self.message, hint=hint
        ))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The one JSON form of an issue (``--json`` answers, plan files): where it is, what
        was found, and the line a user reads (``text``)."""
        ref = self.ref
        return {
            "severity": self.severity,
            "file": ref.file if ref else self.file,
            "sheet": ref.sheet if ref else self.sheet,
            "row": ref.row if ref else None,
            "column": self.column,
            "value": self.value,
            "message": self.message,
            "hint": self.hint,
            "where": self.where,
            "text": str(self),
        }


@dataclass(frozen=True, slots=True)
class RawRow:
    """A non-blank row: canonical column name → typed cell value (blank cells are absent).

    Values are plain Python: str, int, float, bool or datetime.datetime, never numpy scalars.
    """

    ref: RowRef
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sheet:
    """A sheet as read: original headers in order, their canonical names, and the rows."""

    file: str
    name: str
    headers: tuple[str, ...]  # as written in the file
    columns: tuple[str, ...]  # canonical names, same order (unknown headers kept as written)
    rows: tuple[RawRow, ...]
    # what reading found that the values do not show (a formula without a saved value, an
    # error cell, merged or hidden cells, a guessed encoding...); validation reports them
    issues: tuple[Issue, ...] = ()
    # original header → the number format its first values show in (xlsx: ``yyyy-mm-dd``,
    # ``0%``), so a workbook that carries the column can show it the same way
    formats: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InputBook:
    """Everything read from one input: the instances sheet, the optional profiles sheet."""

    path: str
    sha256: str
    instances: Sheet
    profiles: Sheet | None
    fmt: Literal["xlsx", "csv"]
    profiles_path: str | None = None  # CSV only: the separate profiles file


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """The six ScanConfig switches of the DSC API."""

    scan_column_constraints: bool = True
    scan_comment: bool = True
    scan_privileges: bool = False
    scan_system_db: bool = False
    scan_tables: bool = True
    scan_views: bool = True

    def to_json(self) -> dict[str, bool]:
        return {
            "scan_column_constraints": self.scan_column_constraints,
            "scan_comment": self.scan_comment,
            "scan_privileges": self.scan_privileges,
            "scan_system_db": self.scan_system_db,
            "scan_tables": self.scan_tables,
            "scan_views": self.scan_views,
        }


@dataclass(frozen=True, slots=True)
class Profile:
    """A named set of scan settings; every task request is built from exactly one."""

    name: str
    schedule_type: str = "ONCE"
    start_time: int = 0  # already in the wire unit
    start_now: bool = True
    schedule_switch: bool = False
    delete_failed_meta: bool = False
    scan: ScanConfig = field(default_factory=ScanConfig)
    task_description: str = "created by bulkscan"
    task_name: str = "bulkscan-{profile}-{region}-{digest}"  # see plan.content_digest
    max_sources: int = 50
    ref: RowRef | None = None
    timezone: str | None = None  # IANA zone its zone-less start_time was read in, if its own


class Verdict(enum.StrEnum):
    """What one answer of DSC (or one network failure) means for the request that was sent.

    Decided once, by ``bulkscan.dsc.classify``, and carried on the error (``DscError.verdict``).
    """

    CREATED = "created"  # 200
    ACCEPTED = "accepted"  # 201 (or another 2xx): being created
    THROTTLED = "throttled"  # 429 / 0308: nothing applied, slow down
    TRANSIENT = "transient"  # nothing applied: safe to resend after a wait
    AMBIGUOUS = "ambiguous"  # may have been applied: look before resending
    TASK_PERMANENT = "task-permanent"  # this request is wrong: fix the row
    PROJECT_PERMANENT = "project-permanent"  # this project cannot take tasks
    RUN_FATAL = "run-fatal"  # authentication or configuration: stop everything
    UNTRUSTED = "untrusted-listing"  # the project's listing cannot be read with certainty

    @property
    def ok(self) -> bool:
        return self in (Verdict.CREATED, Verdict.ACCEPTED)


@dataclass(frozen=True, slots=True)
class DataSource:
    db_type: str
    ins_id: str

    def to_json(self) -> dict[str, str]:
        return {"db_type": self.db_type, "ins_id": self.ins_id}


@dataclass(frozen=True, slots=True)
class Instance:
    """A validated, enabled row of the instances sheet."""

    ref: RowRef
    ins_id: str
    db_type: str  # canonical spelling when known
    project_id: str
    region: str
    profile: str
    task: str | None = None  # explicit task name from the `task` column
    extras: tuple[tuple[str, str], ...] = ()  # carried columns, in sheet order

    @property
    def source(self) -> DataSource:
        return DataSource(self.db_type, self.ins_id)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One create call exactly as it will be sent.

    ``key`` is a content hash of (project, region, body): the journal's identity for the task.
    ``body_bytes`` is the body's one serialisation (JSON), signed and sent as is.
    """

    key: str
    name: str
    project_id: str
    region: str
    profile: str
    sources: tuple[DataSource, ...]
    rows: tuple[RowRef, ...]  # the input rows whose instances are in this task
    body_bytes: bytes


@dataclass(frozen=True, slots=True)
class Plan:
    """The output of planning: tasks in a deterministic order, plus what was left out."""

    tasks: tuple[TaskRequest, ...]
    skipped: tuple[RowRef, ...] = ()  # enabled = false
    duplicates: tuple[tuple[RowRef, RowRef], ...] = ()  # (duplicate row, row it repeats)
    issues: tuple[Issue, ...] = ()  # warnings carried from validation

    @property
    def instance_count(self) -> int:
        return sum(len(t.sources) for t in self.tasks)

    @property
    def has_errors(self) -> bool:
        return any(i.severity == "error" for i in self.issues)


class Outcome(enum.StrEnum):
    """The final state of one planned task, as the report shows it."""

    CREATED = "created"
    ACCEPTED = "accepted"
    EXISTS = "exists"
    CONFLICT = "conflict"
    FAILED = "failed"
    GAVE_UP = "gave up"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    NOT_ATTEMPTED = "not attempted"
