"""The result workbook of a run, rebuilt at any time from its journal alone.

``build_report(run_dir)`` opens the journal read-only (no lock: it works while a run is
going on, and after a crash) and writes, atomically:

* ``results.xlsx``: sheets Summary, Tasks, Rows, Issues and Attempts.  Rows are linked to
  their task by the task key stored with each row, never by position.
* ``retry.xlsx``: the input rows of every *failed* and *gave up* task (known not to be in
  DSC: refused, or never applied after every retry), in the input's own shape (its sheet
  names, its headers in their order, the profiles those rows use), so that
  ``bulkscan run <run_dir>/retry.xlsx`` sends exactly those tasks again.
  Each row states its task name, project and region (columns the input lacked are added at
  the end), and a profile's ``task_name`` pattern that uses ``{task}`` becomes ``{task}``:
  the re-run plans the very same tasks under the same names, so one that was in fact
  created is found by name and never doubled.  *Conflict* tasks are left out: a task of the
  same name with other data sources exists, and only a person can decide between renaming
  and deleting.  Tasks never sent (a stopped run) and tasks whose outcome is unknown (a
  request in flight when the run died, a 504 not settled) are never in it: they may be in
  DSC, or appear there later, so only ``--resume`` may send them, after waiting out the
  settle window and looking them up.
  When no task needs a re-run, no ``retry.xlsx`` exists (a stale one is removed).

Rebuilding from the same journal gives the same cell values, apart from the generation time.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan import __version__
from bulkscan.config import SETTINGS_OPTIONS
from bulkscan.events import local_now
from bulkscan.i18n import N_, _
from bulkscan.input import schema
from bulkscan.input.validate import parse_text
from bulkscan.models import Outcome
from bulkscan.plan import RowStatus, start_time_text
from bulkscan.report._scans import scan_chart, write_actions, write_scans
from bulkscan.report._summary import (
    charted_table,
    notes,
    provenance_items,
    settings_items,
    sources_text,
)
from bulkscan.report.cells import (
    SEVERITY_TONES,
    VERDICT_TONES,
    SummarySheet,
    Table,
    as_written,
    count_table,
    fit_widths,
    formats_at,
    new_workbook,
    own_headers,
    save_workbook,
    utc_naive,
    workbook_meta,
    write_table,
)
from bulkscan.run.coverage import COVERED_PREFIX
from bulkscan.run.lifecycle import read_actions, read_scans
from bulkscan.run.rundir import run_dir_user
from bulkscan.run.states import (
    BAD_STATES,
    RETRY_STATES,
    NextStep,
    Standing,
    Tally,
    outcome_of,
    tally_of,
)
from bulkscan.run.store import Journal

if TYPE_CHECKING:
    import datetime as dt
    import os
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from openpyxl import Workbook

    from bulkscan.events import Attempt
    from bulkscan.models import Issue, RowRef, Status
    from bulkscan.plan import ProfileRowRecord, RowRecord, SheetLayout
    from bulkscan.report.cells import Tone
    from bulkscan.run.store import RunMeta, TaskRecord

__all__ = [
    "RESULTS_FILE",
    "RETRY_FILE",
    "RETRY_OUTCOMES",
    "RETRY_REASON",
    "ReportPaths",
    "build_report",
    "rerun_command",
    "resume_command",
    "retry_reason",
    "run_tables",
]

RESULTS_FILE = "results.xlsx"
RETRY_FILE = "retry.xlsx"
# Outcomes whose rows go into retry.xlsx: tasks known not to be in DSC and safe to send again
# (BAD_STATES but conflict, which needs a person).  Never an unfinished one (pending, sending,
# unknown): its fate is for a resume, which looks it up before anything is sent.
RETRY_OUTCOMES = frozenset(outcome_of(s) for s in RETRY_STATES)
_INPUT_SUFFIXES = frozenset({".xlsx", ".csv", ".tsv", ".txt"})
_RUN_STATUS_TONES: Mapping[str, Tone] = {
    "done": "good",
    "fatal": "bad",
    "interrupted": "warn",
    "unfinished": "warn",
    "running": "warn",
}


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """The workbooks written, the task counts by outcome and the commands to go on with.

    ``tally`` counts the tasks as the terminal and ``status`` show them (``states.tally``);
    ``error_codes`` counts its ``errors`` by code (the Summary's "Errors by code" table,
    which sums to the same number); ``resume_command`` is the run's own command with ``--resume``,
    for the tasks not sent yet or whose outcome is unknown.  ``run_status`` is the Summary's
    status of the run; ``running_pid`` the live process still sending it (status *running*).
    ``standing`` is how the run stands, by the rule ``run`` ends with (``states.Standing``):
    its ``status`` and ``next`` are the exit code and the last line of both commands;
    ``audit_command`` audits its inventory: the next step when a name may exist twice.
    """

    results: Path
    retry: Path | None
    counts: Mapping[Outcome, int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    error_codes: Mapping[str, int] = field(default_factory=dict)
    retry_tasks: int = 0
    retry_rows: int = 0
    rerun_command: str | None = None
    resume_command: str | None = None
    run_status: str = "done"
    running_pid: str | None = None
    standing: Standing = field(default_factory=lambda: Standing(Tally()))
    duplicates: tuple[str, ...] = ()  # the planned names the run's closing listing found twice
    duplicates_unchecked: str = ""  # why that listing could not look ("": it did)
    audit_command: str | None = None

    @property
    def status(self) -> Status:
        """``Standing.status``: as ``run`` ended, or INCOMPLETE while it is still going on."""
        return self.standing.status

    @property
    def next_command(self) -> str | None:
        """The command ``standing.next`` names: the resume, the audit or the re-run of
        retry.xlsx (None: nothing left to do, or the run is still going on)."""
        return {
            NextStep.RESUME: self.resume_command,
            NextStep.AUDIT: self.audit_command,
            NextStep.RERUN: self.rerun_command,
            None: None,
        }[self.standing.next]


@dataclass(frozen=True, slots=True)
class _Run:
    """Everything read from the journal, with the links the sheets need."""

    run_dir: Path
    meta: RunMeta
    tasks: tuple[TaskRecord, ...]
    rows: tuple[RowRecord, ...]
    attempts: tuple[Attempt, ...]
    issues: tuple[Issue, ...]
    profile_rows: tuple[ProfileRowRecord, ...]
    by_key: Mapping[str, TaskRecord]
    user: str | None = None  # the pid of a live process holding the run directory

    @property
    def tally(self) -> Tally:
        return tally_of(t.state for t in self.tasks)

    @property
    def standing(self) -> Standing:
        """How the run stands (``states.Standing``), as its last session left it."""
        meta = self.meta
        return Standing(
            self.tally,
            stop_reason=meta.stop_reason,
            held_back=meta.held_back,
            duplicates=len(meta.duplicates),
            unchecked=bool(meta.duplicates_unchecked),
            retryable=len(self.retry_tasks),
            running=self.running_pid is not None,
        )

    @property
    def running_pid(self) -> str | None:
        """The live process still sending this run: it holds the run directory, and the run
        has not ended (a command such as ``status`` holds it after the run ended)."""
        return self.user if self.meta.stop_reason is None else None

    @property
    def retry_tasks(self) -> list[TaskRecord]:
        return [t for t in self.tasks if t.outcome in RETRY_OUTCOMES]


def _read(journal: Journal, run_dir: Path) -> _Run:
    tasks = journal.tasks()
    return _Run(
        run_dir=run_dir,
        meta=journal.meta(),
        tasks=tasks,
        rows=journal.rows(),
        attempts=journal.attempts(),
        issues=journal.issues(),
        profile_rows=journal.profile_rows(),
        by_key={t.key: t for t in tasks},
        user=run_dir_user(run_dir),
    )


def build_report(
    run_dir: str | os.PathLike[str], *, now: Callable[[], dt.datetime] | None = None
) -> ReportPaths:
    """Write ``results.xlsx`` (and ``retry.xlsx`` when some task needs a re-run) into ``run_dir``.

    Raises ``JournalError`` when ``run_dir`` holds no usable journal.
    """
    path = Path(run_dir)
    with Journal.open(path, readonly=True) as journal:
        run = _read(journal, path)
    generated = (now or local_now)()
    retry_path = path / RETRY_FILE
    retry_keys = {t.key for t in run.retry_tasks}
    command = rerun_command(run.meta, retry_path) if retry_keys else None
    results = path / RESULTS_FILE
    _write_results(run, results, generated=generated, command=command)
    retry_rows = 0
    if retry_keys:
        retry_rows = _write_retry(run, retry_path, retry_keys, command)
    else:
        retry_path.unlink(missing_ok=True)
    return ReportPaths(
        results=results,
        retry=retry_path if retry_keys else None,
        counts=_task_counts(run.tasks),
        tally=run.tally,
        error_codes=_by_code(_error_counts(run)),
        retry_tasks=len(retry_keys),
        retry_rows=retry_rows,
        rerun_command=command,
        resume_command=resume_command(run.meta, path),
        run_status=_status(run),
        running_pid=run.running_pid,
        standing=run.standing,
        duplicates=run.meta.duplicates,
        duplicates_unchecked=run.meta.duplicates_unchecked,
        audit_command=audit_command(run.meta),
    )


# --- the re-run command ----------------------------------------------------------------------


def rerun_command(meta: RunMeta, retry_path: Path) -> str:
    """The run's own command with ``retry_path`` as its input.

    ``--resume``, ``--limit`` and ``--profiles`` are dropped (a new run of the whole retry
    workbook, whose profiles are inside it); every other option is kept as given, and a
    plan file's settings are added (the rows are read again, in the plan's zone).
    """
    args = _command_args(meta, str(retry_path), drop=("--limit", "--profiles"))
    return shlex.join(["bulkscan", *_global_args(meta), "run", *args, *_planned_options(meta)])


def _planned_options(meta: RunMeta) -> list[str]:
    """A plan file's own settings as options, for a command that reads rows instead of the
    plan (its retry workbook): the same zone, region and project as the plan was made with."""
    if not meta.settings.get("plan_file"):
        return []
    named = (("timezone", "--timezone"), ("default_region", "--region"),
             ("default_project_id", "--project-id"))  # fmt: skip
    return [part for key, flag in named if meta.settings.get(key)
            for part in (flag, str(meta.settings[key]))]  # fmt: skip


def audit_command(meta: RunMeta) -> str:
    """The command that audits the run's inventory: as the run made it (reading the rows
    and reaching the service as the run did), else ``bulkscan audit`` of its input file."""
    if meta.audit_command:
        return meta.audit_command
    return shlex.join(["bulkscan", *_global_args(meta), "audit", meta.input_path])


def resume_command(meta: RunMeta, run_dir: Path) -> str:
    """The run's own command (without ``--limit``) that resumes ``run_dir``."""
    args = _command_args(meta, str(meta.settings.get("plan_file") or meta.input_path),
                         drop=("--limit",))  # fmt: skip
    return shlex.join(["bulkscan", *_global_args(meta), "run", *args, "--resume", str(run_dir)])


def _global_args(meta: RunMeta) -> list[str]:
    """The options typed before ``run`` (``--config``, ``--config-profile``, ``--lang``): the
    next command reads the same settings (and speaks the same language)."""
    args, out = list(meta.last_command), []
    i = 1
    while i < len(args) and args[i].startswith("-"):
        out.append(args[i])
        takes_value = "=" not in args[i] and args[i] in SETTINGS_OPTIONS
        if takes_value and i + 1 < len(args):
            out.append(args[i + 1])
        i += 2 if takes_value else 1
    return out


def _command_args(meta: RunMeta, new_input: str, *, drop: Sequence[str]) -> list[str]:
    """The arguments after ``run`` of the run's last command (a resume's options are the
    latest the user chose) with the input replaced, ``--resume`` and ``drop`` removed."""
    args = list(meta.last_command)
    given = str(meta.settings.get("plan_file") or meta.input_path)  # what the command named
    rest = args[args.index("run") + 1 :] if "run" in args else []
    out: list[str] = []
    replaced = False
    i = 0
    while i < len(rest):
        token = rest[i]
        name, has_value = token.split("=", 1)[0], "=" in token
        i += 1
        if name in drop:
            i += 0 if has_value else 1
        elif name == "--resume":
            follows = rest[i] if i < len(rest) else ""
            if not has_value and follows and not follows.startswith("-"):
                i += 0 if _is_input(follows, given) else 1
        elif not replaced and not token.startswith("-") and _is_input(token, given):
            out.append(new_input)
            replaced = True
        else:
            out.append(token)
    return out if replaced else [new_input, *out]


def _is_input(token: str, input_path: str) -> bool:
    if token == input_path:
        return True
    path, given = Path(token), Path(input_path)
    return path.name == given.name and path.suffix.lower() in _INPUT_SUFFIXES


# --- shared helpers --------------------------------------------------------------------------


def _task_counts(tasks: Sequence[TaskRecord]) -> dict[Outcome, int]:
    found = Counter(t.outcome for t in tasks)
    return {outcome: found[outcome] for outcome in Outcome}


def _rows_text(refs: Sequence[RowRef]) -> str:
    return ", ".join(str(r.row) for r in refs)


def _sources_text(task: TaskRecord) -> str | None:
    sources = task.conflict_sources
    return None if sources is None else sources_text(sources)


@dataclass(frozen=True, slots=True)
class _RowResult:
    task: str | None
    outcome: Outcome
    task_id: str | None
    message: str | None


def _row_results(run: _Run) -> Iterator[tuple[RowRecord, _RowResult]]:
    """Each input row with the task it went into, found by key (duplicates: by their first)."""
    by_ref = {r.ref: r for r in run.rows}
    covered = {r.ref for r in run.rows if r.status is RowStatus.COVERED}
    errors: dict[RowRef, str] = {}
    for issue in run.issues:
        if issue.ref in covered and issue.message.startswith(COVERED_PREFIX):
            errors[issue.ref] = issue.message
        elif issue.severity == "error" and issue.ref is not None:
            errors.setdefault(issue.ref, str(issue))
    for row in run.rows:
        yield row, _row_result(run, row, by_ref, errors)


def _row_result(
    run: _Run, row: RowRecord, by_ref: Mapping[RowRef, RowRecord], errors: Mapping[RowRef, str]
) -> _RowResult:
    task = run.by_key.get(row.task_key or "")
    if row.status is RowStatus.PLANNED and task is not None:
        return _RowResult(task.name, task.outcome, task.task_id, _task_message(task))
    if row.status is RowStatus.DUPLICATE and row.duplicate_of is not None:
        return _duplicate_result(run, by_ref.get(row.duplicate_of), row.duplicate_of, errors)
    if row.status is RowStatus.SKIPPED:
        return _RowResult(None, Outcome.SKIPPED, None, "disabled in the input: not sent")
    if row.status is RowStatus.COVERED:
        return _RowResult(None, Outcome.SKIPPED, None, errors.get(row.ref, "already covered"))
    message = errors.get(row.ref, "not planned")
    return _RowResult(None, Outcome.NOT_ATTEMPTED, None, message)


def _duplicate_result(
    run: _Run, first: RowRecord | None, first_ref: RowRef, errors: Mapping[RowRef, str]
) -> _RowResult:
    """A row repeating ``first``'s instance: the outcome of the task that row went into."""
    note = f"same instance as row {first_ref.row}: sent once, with that row"
    covering = run.by_key.get(first.task_key or "") if first is not None else None
    if covering is not None:
        return _RowResult(covering.name, covering.outcome, covering.task_id, note)
    if first is not None and first.status is RowStatus.COVERED:
        note = f"same instance as row {first_ref.row}: {errors.get(first_ref)}"
        return _RowResult(None, Outcome.SKIPPED, None, note)
    return _RowResult(None, Outcome.NOT_ATTEMPTED, None, note)


def _task_message(task: TaskRecord) -> str | None:
    if task.error_msg:
        return task.error_msg
    if task.outcome is Outcome.NOT_ATTEMPTED:
        return "not sent yet: resume the run to send it"
    if task.outcome is Outcome.UNKNOWN:  # in flight when the run stopped
        return "outcome unknown: resume the run to look it up (not in retry.xlsx)"
    return None


# --- results.xlsx ----------------------------------------------------------------------------


def _write_results(run: _Run, path: Path, *, generated: dt.datetime, command: str | None) -> None:
    wb = new_workbook()
    summary = _write_summary(wb, run, generated=generated, command=command)
    _write_tasks(wb, run)
    scans = read_scans(run.run_dir)
    if scans:
        write_scans(wb, scans)
        scan_chart(summary, scans)
    actions = read_actions(run.run_dir)
    if actions:
        write_actions(wb, actions)
    _write_rows(wb, run)
    _write_issues(wb, run)
    _write_attempts(wb, run)
    save_workbook(wb, path)


_TASK_HEADERS = own_headers(
    N_("task name"),
    N_("project"),
    N_("region"),
    N_("profile"),
    N_("start time"),
    N_("data sources"),
    N_("input rows"),
    N_("outcome"),
    N_("DSC task id"),
    N_("HTTP status"),
    N_("error code"),
    N_("message"),
    N_("request id"),
    N_("attempts"),
    N_("throttled"),
    N_("first attempt (UTC)"),
    N_("last attempt (UTC)"),
    N_("last latency (s)"),
    N_("existing task id"),
    N_("existing task's data sources"),
    N_("task key"),
)
_TASK_IDS = (
    "task name", "project", "DSC task id", "request id", "existing task id", "task key",
)  # fmt: skip
_TASK_WIDTHS = (36, 34, 14, 14, 36, 12, 16, 14, 14, 11, 18, 60, 34, 10, 10, 20, 20, 14, 16, 40, 66)


def _task_line(task: TaskRecord, settings: Mapping[str, Any]) -> list[object]:
    return [
        task.name, task.project_id, task.region, task.profile, _start_text(task, settings),
        len(task.sources),
        _rows_text(task.rows), str(task.outcome), task.task_id, task.http_status,
        task.error_code, _task_message(task), task.request_id, task.attempts, task.throttled,
        task.first_attempt_at, task.last_attempt_at, task.last_latency_s,
        task.conflict_task_id, _sources_text(task), task.key,
    ]  # fmt: skip


def _start_text(task: TaskRecord, settings: Mapping[str, Any]) -> str:
    """The task's start time with its offset, in the zone its zone-less time was read in."""
    zone = settings.get("profile_timezones", {}).get(task.profile)
    zone = zone or settings.get("timezone") or "UTC"
    return start_time_text(task.body_bytes, zone=zone, unit=settings.get("start_time_unit", "s"))


def _write_tasks(wb: Workbook, run: _Run) -> None:
    write_table(
        wb,
        "Tasks",
        _TASK_HEADERS,
        (_task_line(t, run.meta.settings) for t in run.tasks),
        widths=_TASK_WIDTHS,
        status_column="outcome",
        number_formats={"last latency (s)": "0.000"},
    )


_ROW_PLACE = own_headers(N_("source file"), N_("source sheet"), N_("source row"))
_ROW_RESULT = own_headers(
    N_("outcome"), N_("task name"), N_("message"), N_("DSC task id"), N_("row status")
)
_ROW_IDS = ("ins_id", "ins_name")  # canonical columns that name a row, shown after its place


@dataclass(frozen=True, slots=True)
class _RowsLayout:
    """The Rows sheet's columns: the row's identity, its result, then the carried columns."""

    ids: tuple[str, ...]  # input headers of ins_id and ins_name, as written
    carried: tuple[str, ...]  # every other input header, in the input's order

    @classmethod
    def of(cls, written: Sequence[str]) -> _RowsLayout:
        headers = as_written(written)
        named = _canonical(headers, schema.INSTANCE_COLUMNS)
        ids = tuple(named[c] for c in _ROW_IDS if c in named)
        return cls(ids, tuple(h for h in headers if h not in ids))

    @property
    def headers(self) -> tuple[str, ...]:
        return (*_ROW_PLACE, *self.ids, *_ROW_RESULT, *self.carried)

    @property
    def frozen(self) -> int:
        return len(_ROW_PLACE) + len(self.ids)

    @property
    def id_columns(self) -> tuple[str, ...]:
        return (*self.ids, "task name", "DSC task id")

    def formats(self, formats: Mapping[str, str]) -> dict[int, str]:
        """Column index → the number format the input's cells had, for the input's columns."""
        ids = enumerate(self.ids, len(_ROW_PLACE))
        carried = enumerate(self.carried, len(_ROW_PLACE) + len(self.ids) + len(_ROW_RESULT))
        return {index: formats[h] for index, h in (*ids, *carried) if h in formats}

    def line(self, row: RowRecord, res: _RowResult) -> tuple[object, ...]:
        ref, values = row.ref, row.values
        return (
            ref.file, ref.sheet, ref.row, *(values.get(h) for h in self.ids),
            str(res.outcome), res.task, res.message, res.task_id, str(row.status),
            *(values.get(h) for h in self.carried),
        )  # fmt: skip


def _write_rows(wb: Workbook, run: _Run) -> None:
    layout = _RowsLayout.of(run.meta.instances.headers)
    carried = (max(12, min(len(h) + 4, 40)) for h in layout.carried)
    widths = [24, 14, 11, *(36 for _ in layout.ids), 14, 36, 60, 14, 12, *carried]
    write_table(
        wb,
        "Rows",
        layout.headers,
        (layout.line(row, res) for row, res in _row_results(run)),
        widths=widths,
        status_column="outcome",
        input_formats=layout.formats(run.meta.instances.formats),
        frozen_columns=layout.frozen,
    )


def _rows_table(run: _Run) -> Table:
    layout = _RowsLayout.of(run.meta.instances.headers)
    named = _canonical(layout.carried, schema.INSTANCE_COLUMNS)
    ids = (*layout.id_columns, *(named[c] for c in ("project_id",) if c in named))
    lines = tuple(layout.line(r, res) for r, res in _row_results(run))
    return Table(layout.headers, lines, ids)


def run_tables(run_dir: str | os.PathLike[str]) -> Mapping[str, Table]:
    """The Rows, Tasks and Attempts sheets of ``run_dir``'s result workbook, as plain values.

    The same columns and lines as ``results.xlsx`` (dates as the journal holds them: aware),
    for callers that want the data rather than a workbook (``bulkscan.frames``).
    """
    path = Path(run_dir)
    with Journal.open(path, readonly=True) as journal:
        run = _read(journal, path)
    return {
        "Rows": _rows_table(run),
        "Tasks": Table(
            _TASK_HEADERS,
            tuple(tuple(_task_line(t, run.meta.settings)) for t in run.tasks),
            _TASK_IDS,
        ),
        "Attempts": Table(
            _ATTEMPT_HEADERS,
            tuple(tuple(_attempt_line(a, run.by_key)) for a in run.attempts),
            ("task name", "request id"),
        ),
    }


_ISSUE_HEADERS = own_headers(
    N_("severity"), N_("file"), N_("sheet"), N_("row"), N_("column"), N_("value"), N_("message"),
    N_("hint"),
)  # fmt: skip


def _write_issues(wb: Workbook, run: _Run) -> None:
    headers = _ISSUE_HEADERS
    write_table(
        wb,
        "Issues",
        headers,
        (_issue_line(i) for i in run.issues),
        widths=(10, 24, 14, 8, 18, 30, 70, 50),
        status_column="severity",
        tones=SEVERITY_TONES,
    )


def _issue_line(issue: Issue) -> list[object]:
    ref = issue.ref
    return [
        issue.severity,
        ref.file if ref else issue.file,
        ref.sheet if ref else issue.sheet,
        ref.row if ref else None,
        issue.column,
        issue.value,
        issue.message,
        issue.hint,
    ]


_ATTEMPT_HEADERS = own_headers(
    N_("time (UTC)"),
    N_("task name"),
    N_("attempt"),
    N_("method"),
    N_("path"),
    N_("HTTP status"),
    N_("error code"),
    N_("request id"),
    N_("latency (s)"),
    N_("outcome class"),
    N_("message"),
)


def _write_attempts(wb: Workbook, run: _Run) -> None:
    write_table(
        wb,
        "Attempts",
        _ATTEMPT_HEADERS,
        (_attempt_line(a, run.by_key) for a in run.attempts),
        widths=(20, 36, 9, 8, 58, 11, 18, 34, 11, 16, 70),
        status_column="outcome class",
        tones=VERDICT_TONES,
        number_formats={"latency (s)": "0.000"},
    )


def _attempt_line(a: Attempt, by_key: Mapping[str, TaskRecord]) -> list[object]:
    task = by_key.get(a.task_key) if a.task_key else None
    name = task.name if task is not None else "(listing of the project's tasks)"
    return [
        a.at, name, a.n or None, a.method, a.path, a.status, a.code,
        a.request_id, a.latency_s, a.verdict, a.message,
    ]  # fmt: skip


# --- the Summary sheet -----------------------------------------------------------------------


def _write_summary(
    wb: Workbook, run: _Run, *, generated: dt.datetime, command: str | None
) -> SummarySheet:
    """At a glance first (status, next steps, outcomes and their chart, errors, rows), then
    the throughput, the run's facts and last its settings."""
    sheet = SummarySheet(wb, "Summary", widths=(34, 22, 16, 16, 4))
    sheet.append([f"bulkscan run {run.meta.run_id}"], bold=True)
    workbook_meta(sheet, [*_glance(run), *_next_steps(run, command)], tones=_status_tones(run))
    sheet.blank()
    charted_table(
        sheet,
        (N_("outcome"), N_("tasks"), N_("data sources"), N_("input rows")),
        _outcome_lines(run),
        heading=N_("Tasks by outcome"),
        title=N_("Tasks by outcome"),
        charted_rows=len(Outcome),  # not the total
    )
    _error_table(sheet, run)
    sheet.blank()
    statuses = Counter(str(r.status) for r in run.rows)
    count_table(
        sheet,
        (N_("row status"), N_("input rows")),
        [[str(s), statuses[str(s)]] for s in RowStatus],
        heading=N_("Input rows"),
        status_column=None,
    )
    sheet.blank()
    workbook_meta(sheet, _throughput(run), heading=N_("Throughput"))
    sheet.blank()
    workbook_meta(sheet, _run_facts(run, generated), heading=N_("Run"))
    sheet.blank()
    workbook_meta(sheet, _settings(run), heading=N_("Settings (no secrets are kept)"))
    return sheet


def _all_succeeded(run: _Run) -> bool:
    counted = run.tally
    return counted.succeeded == counted.total


def _status_tones(run: _Run) -> Mapping[str, Tone]:
    """ "done" is green only when every task succeeded and no name may exist twice (the
    status ``run`` and ``report`` exit 0 with); a run done with failures is amber."""
    good = _all_succeeded(run)
    return {
        **_RUN_STATUS_TONES,
        "done": "good" if good and not run.standing.needs_audit else "warn",
        _tasks_verdict(run): "good" if good else "bad",
    }


def _tasks_verdict(run: _Run) -> str:
    ok = run.tally.succeeded
    if ok == len(run.tasks):
        return _("all {ok} task(s) succeeded").format(ok=ok)
    return _("{failed} of {total} task(s) did not succeed").format(
        failed=len(run.tasks) - ok, total=len(run.tasks)
    )


def _glance(run: _Run) -> list[tuple[str, object]]:
    glance: list[tuple[str, object]] = [
        (N_("status"), _status(run)),
        (N_("tasks"), _tasks_verdict(run)),
    ]
    if run.tally.unfinished:
        glance.append((N_("tasks not sent or unknown"), run.tally.unfinished))
    return glance


# What a report says while the run it reads is still going on: no resume, no re-run
RUNNING_ADVICE = N_(
    "none while the run goes on (pid {pid} is sending it): write this report again once it "
    "has ended"
)
# What a conflict asks of the user: in the Summary and under the run's outcome on the terminal
CONFLICTS_ADVICE = N_(
    "{count} task(s) need a decision (not in retry.xlsx): a task of that name exists with "
    "other data sources; rename the task, delete the old one, or replace its data sources "
    "with run --on-conflict update (see the Tasks sheet)"
)


def _next_steps(run: _Run, command: str | None) -> list[tuple[str, object]]:
    """What to do next, in the order ``Standing.next`` puts them: the resume first (tasks
    not sent or of unknown outcome, which only a resume may send: it looks them up first),
    the audit when a name may exist twice, then the re-run of retry.xlsx, then the
    conflicts' decision; nothing while the run is still going on."""
    if run.running_pid is not None:
        return [(N_("next step"), _(RUNNING_ADVICE).format(pid=run.running_pid))]
    resume = _resume_step(run)
    steps = resume + _audit_step(run)
    if command is not None:
        rerun = _("after the resume: {command}").format(command=command) if resume else command
        steps.append((N_("re-run the failures"), rerun))
        steps.append(
            (N_("retry.xlsx holds"), _("the rows of {count} failed or gave-up task(s), "
             "ready to fix and re-run").format(count=len(run.retry_tasks)))
        )  # fmt: skip
    else:
        steps.append(
            (N_("re-run the failures"), _("nothing to re-run: no task failed or gave up "
             "(no retry.xlsx)"))
        )  # fmt: skip
    conflicts = _task_counts(run.tasks)[Outcome.CONFLICT]
    if conflicts:
        steps.append((N_("conflicts"), _(CONFLICTS_ADVICE).format(count=conflicts)))
    return steps


def _audit_step(run: _Run) -> list[tuple[str, object]]:
    """The audit, when the run's closing listing found a planned name twice or could not
    look: it lists the extra copies, which ``bulkscan dedupe`` then deletes."""
    standing = run.standing
    if not standing.needs_audit:
        return []
    if standing.duplicates:
        text = _(
            "{count} planned task name(s) exist more than once in DSC (see names found twice "
            "below): audit, then delete the extra copies with bulkscan dedupe on the audit "
            "workbook: {command}"
        ).format(count=standing.duplicates, command=audit_command(run.meta))
    else:
        text = _(
            "not looked for: the closing listing failed; audit once DSC's task list can be "
            "read, then delete any extra copy with bulkscan dedupe: {command}"
        ).format(command=audit_command(run.meta))
    return [(N_("names created twice"), text)]


def _resume_step(run: _Run) -> list[tuple[str, object]]:
    """The resume, when ``Standing.next`` names it: tasks not sent yet or of unknown
    outcome, or a session that stopped before its closing listing."""
    if run.standing.next is not NextStep.RESUME:
        return []
    left = run.tally
    resume = resume_command(run.meta, run.run_dir)
    if not left.unfinished:
        text = _("the run stopped before it looked for names created twice; resume with: {command}")
        return [(N_("not finished"), text.format(command=resume))]
    if not left.unknown:
        text = _("{count} task(s); resume with: {command}")
        return [(N_("not sent yet"), text.format(count=left.unsent, command=resume))]
    text = _(
        "{count} task(s) not sent yet or of unknown outcome (never in retry.xlsx: the resume "
        "looks them up before sending); resume with: {command}"
    )
    return [(N_("not finished"), text.format(count=left.unfinished, command=resume))]


def _outcome_lines(run: _Run) -> list[list[object]]:
    tasks = Counter(t.outcome for t in run.tasks)
    sources: Counter[Outcome] = Counter()
    for task in run.tasks:
        sources[task.outcome] += len(task.sources)
    rows = Counter(res.outcome for _, res in _row_results(run))
    lines: list[list[object]] = [[str(o), tasks[o], sources[o], rows[o]] for o in Outcome]
    lines.append(["total", len(run.tasks), sum(sources.values()), len(run.rows)])
    return lines


def _error_label(task: TaskRecord) -> str:
    return task.error_code or f"({task.outcome})"


def _failing(run: _Run) -> list[TaskRecord]:
    """Tasks that ended with an error: the ``errors`` of ``states.tally``, listed (the one
    rule for the table and ``error_codes``; a task not sent yet is not an error)."""
    return [t for t in run.tasks if t.state in BAD_STATES]


def _error_counts(run: _Run) -> Counter[tuple[str, int | None]]:
    """Failing tasks by (error code, HTTP status), most frequent first."""
    counts = Counter((_error_label(t), t.http_status) for t in _failing(run))
    ordered = sorted(counts, key=lambda k: (-counts[k], k[0], k[1] or 0))
    return Counter({key: counts[key] for key in ordered})


def _by_code(counts: Mapping[tuple[str, int | None], int]) -> dict[str, int]:
    """Error counts by code alone (HTTP statuses merged), most frequent first."""
    merged: Counter[str] = Counter()
    for (code, _status), n in counts.items():
        merged[code] += n
    return dict(merged.most_common())


def _error_table(sheet: SummarySheet, run: _Run) -> None:
    counts = _error_counts(run)
    example: dict[tuple[str, int | None], str] = {}
    for task in _failing(run):
        example.setdefault((_error_label(task), task.http_status), task.error_msg or "")
    ordered = list(counts)
    lines = [[code, status, counts[(code, status)], example[(code, status)]]
             for code, status in ordered]  # fmt: skip
    if not lines:
        lines = [["(none)", None, 0, _("no task ended with an error")]]
    count_table(
        sheet,
        (N_("error code"), N_("HTTP status"), N_("tasks"), N_("first message")),
        lines,
        heading=N_("Errors by code"),
        status_column=None,
    )


def _status(run: _Run) -> str:
    """``done`` only when no task is left unsent or unknown (``--limit``, a project that
    could not be listed): a run with work left is ``unfinished``, never ``done``."""
    meta = run.meta
    if run.running_pid is not None:
        return "running"
    if meta.stop_reason == "done" and run.tally.unfinished:
        return "unfinished"
    if meta.stop_reason:
        return meta.stop_reason
    return "unfinished" if meta.started_at is not None else "not started"


def _run_facts(run: _Run, generated: dt.datetime) -> list[tuple[str, object]]:
    meta = run.meta
    return [
        (N_("run id"), meta.run_id),
        (N_("stop message"), meta.stop_message or None),
        (N_("names found twice"), "; ".join(meta.duplicates) or None),
        (N_("journal created (UTC)"), meta.created_at),
        *provenance_items(meta, resumed=meta.last_resume is not None),
        (N_("input format"), meta.input_format),
        (N_("plan hash"), meta.plan_hash),
        (N_("command"), shlex.join(meta.command) if meta.command else None),
        *_resumed(meta),
        (N_("run directory"), str(run.run_dir)),
        (N_("report generated (UTC)"), utc_naive(generated)),
        (N_("report written by bulkscan"), __version__),
    ]


def _resumed(meta: RunMeta) -> list[tuple[str, object]]:
    """Who resumed the run last and with which command (nothing for a run never resumed)."""
    last = meta.last_resume
    if last is None:
        return []
    by = _("{operator} on {host}").format(operator=last.operator, host=last.host)
    return [
        (N_("last resumed by"), by),
        (N_("last resumed with"), shlex.join(last.command) if last.command else None),
    ]


def _settings(run: _Run) -> list[tuple[str, object]]:
    items = list(settings_items(run.meta.settings))
    last = run.meta.last_resume
    if last is not None:  # a setting the last resume changed shows both values
        then = dict(settings_items(last.settings))
        items = [
            (key, value if then.get(key, value) == value else _changed(value, then[key]))
            for key, value in items
        ]
    items.append((N_("projects"), ", ".join(sorted({t.project_id for t in run.tasks}))))
    items.append((N_("regions"), ", ".join(sorted({t.region for t in run.tasks}))))
    learned = run.meta.learned_rate_per_s
    items.append((N_("rate learned (requests/s)"), round(learned, 3) if learned else None))
    return items


def _changed(first: object, last: object) -> str:
    return _("{first} at the start; {last} at the last resume").format(
        first=_shown(first), last=_shown(last)
    )


def _shown(value: object) -> str:
    """A setting's value as its cell shows it (20, not 20.0; TRUE as Excel writes it)."""
    return _("not set") if value in (None, "") else parse_text(value)


def _throughput(run: _Run) -> list[tuple[str, object]]:
    attempts = run.attempts
    creates = sum(1 for a in attempts if a.method == "POST")
    items: list[tuple[str, object]] = [
        (N_("requests sent"), len(attempts)),
        (N_("create requests"), creates),
        (N_("listings and lookups"), len(attempts) - creates),
    ]
    if len(attempts) < 2:
        return items
    first, last = attempts[0].at, max(a.at for a in attempts)
    span = (last - first).total_seconds()
    finished = sum(1 for t in run.tasks if t.outcome is not Outcome.NOT_ATTEMPTED)
    items += [
        (N_("first request (UTC)"), first),
        (N_("last request (UTC)"), last),
        (N_("requests per second"), round(len(attempts) / span, 3) if span > 0 else None),
        (N_("tasks finished per minute"), round(finished * 60 / span, 1) if span > 0 else None),
    ]
    return items


# --- retry.xlsx ------------------------------------------------------------------------------


def _canonical(headers: Sequence[str], columns: Sequence[schema.Column]) -> dict[str, str]:
    """Canonical column name → header as written (first one), as the loader maps them."""
    aliases = {
        schema.normalise_header(alias): column.name
        for column in columns
        for alias in (column.name, *column.aliases)
    }
    found: dict[str, str] = {}
    for header in headers:
        name = aliases.get(schema.normalise_header(header))
        if name is not None:
            found.setdefault(name, header)
    return found


# The retry workbook's last column: why the row is there (last, so its text reads in full).
RETRY_REASON = "retry reason"


def _write_retry(run: _Run, path: Path, keys: set[str], command: str | None = None) -> int:
    """Write the rows of the ``keys`` tasks in the input's shape; returns the row count.

    Each row ends with its reason (a carried column the re-run ignores); a README sheet says
    what to fix and how to re-run.
    """
    layout = run.meta.instances
    # The input's shape, read again as input: its headers as written, in every language.
    own = as_written(h for h in layout.headers if h != RETRY_REASON)  # a retry's retry: one
    named = _canonical(own, schema.INSTANCE_COLUMNS)
    added = as_written(c for c in ("task", "project_id", "region") if c not in named)
    headers = [*own, *added, RETRY_REASON]
    explicit = {c: named.get(c, c) for c in ("task", "project_id", "region")}
    rows = [r for r in run.rows if r.status is RowStatus.PLANNED and r.task_key in keys]
    lines = [_retry_line(r, run.by_key[r.task_key or ""], headers, explicit) for r in rows]
    wb = new_workbook()
    write_table(
        wb,
        layout.sheet,
        headers,
        lines,
        widths=fit_widths(headers, lines, cap=40),
        input_formats=formats_at(own, layout.formats),
    )
    profiles = run.meta.profiles
    if profiles is not None:
        used = {run.by_key[k].profile.lower() for k in keys}
        _write_retry_profiles(wb, profiles, run.profile_rows, used)
    readme = SummarySheet(wb, "README", widths=(130,))
    notes(readme, _retry_readme(run, keys, len(rows), command), heading=_("Rows to run again"))
    save_workbook(wb, path)
    return len(rows)


def retry_reason(task: TaskRecord) -> str:
    """Why a task's rows are in the retry workbook, and what to do about it, in one line."""
    said = task.error_msg or "no message"
    if task.outcome is Outcome.FAILED:
        code = " ".join(str(x) for x in ("HTTP", task.http_status, task.error_code) if x)
        named = said.startswith("HTTP") or not (task.http_status or task.error_code)
        return f"failed: {said if named else f'{code}: {said}'}: fix this before re-running"
    return f"gave up after {task.attempts} attempt(s): {said}: re-run as is"


def _retry_readme(run: _Run, keys: set[str], rows: int, command: str | None) -> list[str]:
    counts = Counter(run.by_key[k].outcome for k in keys)
    lines = [
        _(
            "This workbook holds the {rows} input row(s) of the {tasks} task(s) of run {run} "
            "(input {input}) that need another run. Each row says why in its last column, "
            "'{reason}'."
        ).format(
            rows=rows, tasks=len(keys), run=run.meta.run_id, input=run.meta.input_path,
            reason=RETRY_REASON,
        ),
        "",
    ]  # fmt: skip
    what = {
        Outcome.FAILED: _(
            "{count} task(s) failed: DSC refused the task; the reason names the HTTP status, "
            "the error code and the message. Fix what it names (a project id, region, instance "
            "id or type, or the profile's settings) in this workbook first: unchanged, the row "
            "fails again."
        ),
        Outcome.GAVE_UP: _(
            "{count} task(s) gave up: DSC kept failing for a while (throttling, server errors, "
            "time-outs). Nothing to fix: re-run as is, later or with a lower --rate."
        ),
    }
    lines += [what[o].format(count=counts[o]) for o in (Outcome.FAILED, Outcome.GAVE_UP)
              if counts[o]]  # fmt: skip
    lines += [
        "",
        _("Then run: {command}").format(command=command or "bulkscan run THIS_WORKBOOK"),
        _(
            "Keep the 'task' column as it is: it names each row's task, so the re-run plans the "
            "same tasks under the same names and finds any that was in fact created. The "
            "'{reason}' column is carried, never sent. Delete a row to leave it out."
        ).format(reason=RETRY_REASON),
    ]
    conflicts = sum(1 for t in run.tasks if t.outcome is Outcome.CONFLICT)
    if conflicts:
        lines.append(
            _(
                "Not here: {count} conflict task(s) (a task of that name exists with other "
                "data sources); rename the task or delete the old one (results.xlsx, sheet "
                "Tasks)."
            ).format(count=conflicts)
        )
    return lines


def _retry_line(
    row: RowRecord, task: TaskRecord, headers: Sequence[str], explicit: Mapping[str, str]
) -> list[object]:
    values = dict(row.values)
    values[explicit["task"]] = task.name
    values[explicit["project_id"]] = task.project_id
    values[explicit["region"]] = task.region
    values[RETRY_REASON] = retry_reason(task)
    return [values.get(h) for h in headers]


def _write_retry_profiles(
    wb: Workbook, layout: SheetLayout, rows: Sequence[ProfileRowRecord], used: set[str]
) -> None:
    named = _canonical(layout.headers, schema.PROFILE_COLUMNS)
    name_header = named.get("profile")
    pattern_header = named.get("task_name")
    if name_header is None:
        return
    chosen = [p for p in rows if str(p.values.get(name_header, "")).strip().lower() in used]
    if not chosen:
        return  # the rows use the built-in default profile
    write_table(
        wb,
        layout.sheet,
        as_written(layout.headers),
        (_profile_line(p, layout.headers, pattern_header) for p in chosen),
        input_formats=formats_at(layout.headers, layout.formats),
    )


def _profile_line(
    row: ProfileRowRecord, headers: Sequence[str], pattern_header: str | None
) -> list[object]:
    values = dict(row.values)
    if pattern_header is not None and "{task" in str(values.get(pattern_header, "")):
        values[pattern_header] = "{task}"  # each retry row names its task outright
    return [values.get(h) for h in headers]
