"""The coverage audit's workbooks, built from an ``AuditResult`` with the result workbook's blocks.

* ``<stem>-audit-<time>.xlsx`` (``write_audit_workbook``): sheets Summary, Coverage (one row
  per audited instance), Uncovered (the rows ``bulkscan run`` needs) and Tasks (every task
  listed, orphans and disabled ones marked).
* ``<stem>-uncovered-<time>.xlsx`` (``write_uncovered_workbook``): the uncovered rows as an
  input workbook (sheet ``instances`` with the input's headers, the inventory's ``profiles``
  sheet copied, a README), because ``bulkscan run`` reads a sheet named ``instances``.  Each
  row gets a new task name (``gap_task_name``): a disabled task keeps its name, so re-using
  the old names would make ``run`` find it and create nothing.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bulkscan.audit import CoverageStatus, epoch_to_datetime
from bulkscan.errors import InputError, UsageError
from bulkscan.i18n import N_, _
from bulkscan.input import schema
from bulkscan.input.loader import read_sheet
from bulkscan.input.validate import MAX_NAME, parse_text
from bulkscan.report._summary import (
    CHART_ROWS,
    charted_table,
    notes,
    provenance_items,
    settings_items,
    sources_text,
)
from bulkscan.report.cells import (
    SummarySheet,
    Table,
    as_written,
    count_table,
    fit_widths,
    formats_at,
    header_key,
    new_workbook,
    own_headers,
    save_workbook,
    workbook_meta,
    write_table,
)
from bulkscan.report.results import resume_command

if TYPE_CHECKING:
    import datetime as dt
    import os
    from collections.abc import Iterable, Mapping

    from openpyxl import Workbook

    from bulkscan.audit import AuditResult, InstanceCoverage, TaskFinding, UnfinishedRun
    from bulkscan.dsc.client import RemoteTask
    from bulkscan.report.cells import Tone

__all__ = [
    "COVERAGE_HEADERS",
    "COVERAGE_RULE",
    "ORPHAN_RULE",
    "TASK_HEADERS",
    "UNCOVERED_REASON",
    "AuditFiles",
    "audit_files",
    "coverage_table",
    "gap_task_name",
    "resume_step",
    "stale_lines",
    "uncovered_reason",
    "uncovered_rows",
    "write_audit_workbook",
    "write_uncovered_workbook",
]

COVERAGE_RULE = (
    "Rule: an instance is covered when a task whose data sources name it (same ins_id; same "
    "db_type, ignoring case, when the service gives one) is not disabled. A disabled task "
    "does not count; a task listed without an enabled state (the documented list has none) "
    "counts as enabled. The schedule switch is shown but does not decide coverage (a ONCE task "
    "runs without it). 'unknown': the tasks of its project could not be listed."
)
ORPHAN_RULE = (
    "An orphan is a task none of whose data sources match an audited inventory row "
    "(enabled rows of the inventory, in the same project and region)."
)
_MATCH_RULE = (
    "Matching: the tasks of every project and region named by the inventory are listed "
    "(all pages); a data source matches an instance on ins_id, and on db_type when the "
    "service states one (any case; aliases such as 'postgres' resolved)."
)
_STATUS_TONES: Mapping[str, Tone] = MappingProxyType(
    {
        CoverageStatus.COVERED.value: "good",
        CoverageStatus.MISSING.value: "bad",
        CoverageStatus.DISABLED.value: "bad",
        CoverageStatus.UNKNOWN.value: "warn",
        CoverageStatus.HELD.value: "warn",
    }
)
_NOT_COVERED = (CoverageStatus.MISSING, CoverageStatus.DISABLED, CoverageStatus.HELD)
_TASK_TONES: Mapping[str, Tone] = MappingProxyType(
    {"in use": "good", "orphan": "warn", "schedule off": "warn", "disabled": "bad"}
)
# "covered" counts a task whose enabled state the list does not tell (the documented list
# never does): the verdict says so, in amber, instead of a green it cannot stand behind
_ALL_COVERED_UNTOLD = "all covered, if the tasks are enabled"
_VERDICT_TONES: Mapping[str, Tone] = MappingProxyType(
    {"all covered": "good", _ALL_COVERED_UNTOLD: "warn", "NOT all covered": "bad"}
)
COVERAGE_HEADERS = own_headers(
    N_("input row"),
    "ins_id",
    "db_type",
    "project_id",
    "region",
    N_("covered"),
    N_("status"),
    N_("tasks"),
    N_("task ids"),
    N_("schedule type"),
    N_("schedule switch"),
    N_("last run start (UTC)"),
    N_("last run end (UTC)"),
    N_("disabled tasks"),
    N_("note"),
)
_COVERAGE_WIDTHS = (10, 36, 14, 34, 16, 9, 20, 40, 20, 14, 14, 20, 20, 30, 40)
TASK_HEADERS = own_headers(
    "project_id",
    "region",
    N_("task id"),
    N_("task name"),
    N_("status"),
    N_("orphan"),
    N_("disabled"),
    N_("schedule type"),
    N_("schedule switch"),
    N_("data sources"),
    N_("inventory instances"),
    N_("not in inventory"),
    N_("last run start (UTC)"),
    N_("last run end (UTC)"),
    N_("created (UTC)"),
    N_("created by"),
)
_TASK_WIDTHS = (34, 16, 12, 40, 13, 8, 9, 14, 14, 50, 12, 40, 20, 20, 20, 20)


# --- file names ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFiles:
    """Where an audit's workbooks go: the audit workbook and the uncovered-rows workbook."""

    audit: Path
    uncovered: Path


def audit_files(
    reports_dir: str | os.PathLike[str], input_path: str | os.PathLike[str], stamp: str
) -> AuditFiles:
    """``<reports>/<stem>-audit-<stamp>.xlsx`` and ``<reports>/<stem>-uncovered-<stamp>.xlsx``.

    A second audit within the same second gets ``-2`` (``-3``...) rather than overwriting.
    """
    stem = re.sub(r"[^\w.-]+", "_", Path(input_path).stem).strip("._")[:80] or "inventory"
    root = Path(reports_dir)
    for n in range(1, 1000):
        tail = stamp if n == 1 else f"{stamp}-{n}"
        files = AuditFiles(
            root / f"{stem}-audit-{tail}.xlsx", root / f"{stem}-uncovered-{tail}.xlsx"
        )
        if not (files.audit.exists() or files.uncovered.exists()):
            break
    return files


# --- the uncovered rows ----------------------------------------------------------------------


def gap_task_name(task: str | None, profile: str | None, region: str, stamp: str) -> str:
    """The task name given to an uncovered row, new so it never meets an existing task.

    ``'{task}-audit-{stamp}'`` for a row that names its task, else
    ``'bulkscan-{profile}-{region}-audit-{stamp}'``; at most 256 characters.
    """
    suffix = f"-audit-{stamp}"
    base = task.strip() if task and task.strip() else f"bulkscan-{profile or 'default'}-{region}"
    return base[: MAX_NAME - len(suffix)] + suffix


def uncovered_rows(result: AuditResult, *, stamp: str | None = None) -> list[dict[str, Any]]:
    """The rows of uncovered instances in the input's format: original header → value.

    Every enabled row of each uncovered instance, in input order.  Blank ``project_id`` and
    ``region`` cells get the value the audit used, and the ``task`` column a new name
    (``gap_task_name``) so that ``bulkscan run`` creates new tasks rather than finding the
    disabled or conflicting ones.  Missing columns are added at the end.
    """
    return [row for _, row in _uncovered_pairs(result, stamp=stamp)]


def _uncovered_pairs(
    result: AuditResult, *, stamp: str | None = None
) -> list[tuple[InstanceCoverage, dict[str, Any]]]:
    """``uncovered_rows`` with the coverage of each row's instance."""
    stamp = stamp or result.meta.stamp
    sheet = result.inventory.book.instances
    wanted = {ref: c for c in result.uncovered for ref in c.rows}
    header_of = dict(zip(sheet.columns, sheet.headers, strict=False))
    out: list[tuple[InstanceCoverage, dict[str, Any]]] = []
    for raw in sheet.rows:
        item = wanted.get(raw.ref)
        if item is None:
            continue
        instance = item.instance
        row = {h: raw.values.get(c) for h, c in zip(sheet.headers, sheet.columns, strict=False)}
        _fill(row, header_of.get("project_id", "project_id"), instance.project_id)
        _fill(row, header_of.get("region", "region"), instance.region)
        task, profile = raw.values.get("task"), raw.values.get("profile")
        row[header_of.get("task", "task")] = gap_task_name(
            None if task is None else str(task),
            None if profile is None else str(profile).strip() or None,
            instance.region,
            stamp,
        )
        out.append((item, row))
    return out


def _fill(row: dict[str, Any], header: str, value: str) -> None:
    current = row.get(header)
    if current is None or (isinstance(current, str) and not current.strip()):
        row[header] = value


UNCOVERED_REASON = "why uncovered"  # the uncovered rows' last column (carried by run)


def uncovered_reason(item: InstanceCoverage) -> str:
    """Why an instance is in the uncovered workbook, and what running its row does."""
    where = f"project {item.instance.project_id}, {item.instance.region}"
    if item.status is CoverageStatus.DISABLED:
        tasks = _joined(f"{t.name} ({t.id})" for t in item.disabled)
        return (
            f"only disabled tasks name it ({tasks}): enable one in the console, or run this "
            "row to create a new task"
        )
    if item.dropped_by is not None:
        return (
            f"no task in {where} names it; its task in {_stale_text(item.dropped_by)} was never "
            "sent: run this row to create one"
        )
    return f"no task in {where} names it: run this row to create one"


def _stale_text(run: UnfinishedRun) -> str:
    """A run that cannot be resumed, and why, in words."""
    return f"run {run.run_dir}, which cannot be resumed ({run.stale})"


def _uncovered_table(result: AuditResult) -> tuple[list[str], list[list[object]]]:
    pairs = _uncovered_pairs(result)
    book = result.inventory.book
    own = as_written(h for h in book.instances.headers if h != UNCOVERED_REASON)
    headers = list(own)
    for _index, row in pairs:
        headers.extend(h for h in row if h not in headers)
    headers.append(UNCOVERED_REASON)
    lines: list[list[object]] = []
    for item, row in pairs:
        row[UNCOVERED_REASON] = uncovered_reason(item)
        lines.append([row.get(h) for h in headers])
    return headers, lines


def resume_step(result: AuditResult) -> str | None:
    """The one next step when unfinished runs hold uncovered instances: resume the first that
    can be resumed (a run whose input changed since it started would refuse)."""
    if not result.resumable:
        return None
    run = result.resumable[0]
    return resume_command(run.meta, run.run_dir)


def _held_count(result: AuditResult) -> list[tuple[str, object]]:
    """The Summary's lines for held instances, when there are any."""
    held = result.held_in(result.resumable)
    waiting = result.count(CoverageStatus.HELD) - held
    lines: list[tuple[str, object]] = []
    if held:
        lines.append((N_("held by an unfinished run (resume it)"), held))
    if waiting:
        lines.append((N_("held by a run that cannot be resumed now (audit again later)"),
                      waiting))  # fmt: skip
    return lines


def _held_lines(result: AuditResult) -> list[str]:
    lines = stale_lines(result)
    held = result.held_in(result.resumable)
    if held:
        runs = ", ".join(str(r.run_dir) for r in result.resumable)
        lines.append(
            f"{held} instance(s) are in tasks of unfinished run(s) ({runs}) not sent yet: they "
            "are left out of the uncovered workbook. Resume first, then audit again: "
            f"{resume_step(result)}"
        )
    return lines


def stale_lines(result: AuditResult) -> list[str]:
    """What the audit says of each run that cannot be resumed: which of its instances are in
    the uncovered workbook, and which it still holds (a task in flight when it stopped) and
    until when."""
    lines: list[str] = []
    for run in result.stale:
        dropped = sum(1 for c in result.coverage if c.dropped_by and c.dropped_by == run)
        held = result.held_in((run,))
        text = _("run {run_dir} cannot be resumed: {why}").format(
            run_dir=run.run_dir, why=run.stale
        )
        if dropped:
            text += _("; its {count} instance(s) never sent are in the uncovered workbook").format(
                count=dropped
            )
        if held and run.live:
            text += _("; its {count} instance(s) not sent yet are held: audit again once it "
                      "has ended").format(count=held)  # fmt: skip
        elif held and run.settles_at is not None:
            text += _(
                "; {count} instance(s) of its tasks of unknown outcome (in flight when it "
                "stopped) are held until {time}, when a task created late would show: audit "
                "again then"
            ).format(count=held, time=run.settles_at.strftime("%Y-%m-%d %H:%M:%S %z"))
        lines.append(text)
    return lines


def _close_gap_lines(result: AuditResult, uncovered: Path | None, command: str | None) -> list[str]:
    held = _held_lines(result)
    if not result.uncovered:
        return held or ["Every audited instance is covered: nothing to close."]
    return held + _uncovered_lines(result, uncovered, command)


def _uncovered_lines(result: AuditResult, uncovered: Path | None, command: str | None) -> list[str]:
    if uncovered is None:
        return [f"{len(result.uncovered)} instance(s) have no enabled task (sheet Uncovered)."]
    return [
        f"{len(result.uncovered)} instance(s) have no enabled task. Their rows are in "
        f"{uncovered.name} (sheet 'instances', the input's own columns, with the "
        "profiles sheet copied), ready for bulkscan run.",
        f"To close the gap: {command or f'bulkscan run {uncovered}'}",
        "Each row gets a new task name in its 'task' column, so the new tasks never collide "
        "with existing (e.g. disabled) ones; blank project_id and region cells are filled in.",
    ]


def write_uncovered_workbook(
    result: AuditResult, path: str | os.PathLike[str], *, run_command: str | None = None
) -> Path:
    """The uncovered rows as an input workbook: ``instances``, ``profiles`` (if any), README."""
    wb = new_workbook()
    headers, rows = _uncovered_table(result)
    widths = fit_widths(headers, rows, cap=40)
    instances = result.inventory.book.instances
    write_table(wb, schema.INSTANCES_SHEET, headers, rows, widths=widths,
                input_formats=formats_at(headers, instances.formats))  # fmt: skip
    profiles = result.inventory.book.profiles
    if profiles is not None:
        lines = [[row.values.get(c) for c in profiles.columns] for row in profiles.rows]
        write_table(wb, schema.PROFILES_SHEET, as_written(profiles.headers), lines,
                    widths=fit_widths(profiles.headers, lines, cap=40),
                    input_formats=formats_at(profiles.headers, profiles.formats))  # fmt: skip
    readme = SummarySheet(wb, "README", widths=(130,))
    notes(readme, _readme_lines(result, Path(path), run_command),
          heading=_("Instances without an enabled scan task"))  # fmt: skip
    return save_workbook(wb, path)


def _readme_lines(result: AuditResult, path: Path, command: str | None) -> list[str]:
    meta = result.meta
    missing = result.count(CoverageStatus.MISSING)
    disabled = result.count(CoverageStatus.DISABLED)
    return [
        _(
            "Found by the coverage audit of {input} started {started}: {missing} instance(s) "
            "that no task names, {disabled} named only by disabled tasks. Each row says why in "
            "its last column, '{reason}'."
        ).format(
            input=meta.input_path, started=meta.started_at.isoformat(timespec="seconds"),
            missing=missing, disabled=disabled, reason=UNCOVERED_REASON,
        ),
        "",
        _(
            "What to fix: nothing, for a row that should simply be scanned. Delete the rows you "
            "do not want scanned (e.g. a decommissioned database; then remove it from the "
            "inventory too). For an instance named only by disabled tasks, you may enable one "
            "in the console instead, and delete its row here."
        ),
        _("Create the missing tasks with: {command}").format(
            command=command or f"bulkscan run {path}"
        ),
        _("Then audit again: every instance should be covered."),
        "",
        _(
            "The 'instances' sheet holds the rows of every uncovered instance with the input's "
            "own columns; the 'profiles' sheet (if any) is the inventory's, unchanged."
        ),
        _(
            "Each row's 'task' cell is a new task name, so that the new tasks never collide "
            "with existing ones (a disabled task keeps its name); blank project_id and region "
            "cells hold the values the audit used. The '{reason}' column is carried, never "
            "sent."
        ).format(reason=UNCOVERED_REASON),
        COVERAGE_RULE,
    ]  # fmt: skip


# --- the audit workbook ----------------------------------------------------------------------


def coverage_table(result: AuditResult) -> Table:
    """The Coverage sheet of the audit workbook as plain values (one line per instance)."""
    instances = result.inventory.instances
    extras = [header for header, _ in instances[0].extras] if instances else []
    lines = tuple(tuple(_coverage_row(c)) for c in result.coverage)
    return Table((*COVERAGE_HEADERS, *extras), lines, ("ins_id", "project_id", "task ids"))


def write_audit_workbook(
    result: AuditResult,
    path: str | os.PathLike[str],
    *,
    uncovered_path: Path | None = None,
    run_command: str | None = None,
) -> Path:
    """Summary, Coverage, Uncovered and Tasks sheets (see the module docstring).

    ``uncovered_path`` is the uncovered workbook and ``run_command`` the command that feeds
    it to ``bulkscan run`` (both only shown, in the notes).
    """
    wb = new_workbook()
    _write_summary(wb, result, uncovered_path, run_command)
    coverage = coverage_table(result)
    write_table(
        wb,
        "Coverage",
        coverage.headers,
        coverage.lines,
        status_column="status",
        tones=_STATUS_TONES,
        widths=_COVERAGE_WIDTHS,
        notes=[COVERAGE_RULE],
    )
    headers, rows = _uncovered_table(result)
    write_table(
        wb, "Uncovered", headers, rows,
        notes=_close_gap_lines(result, uncovered_path, run_command),
        input_formats=formats_at(headers, result.inventory.book.instances.formats),
    )  # fmt: skip
    write_table(
        wb,
        "Tasks",
        TASK_HEADERS,
        (_task_row(t) for t in result.tasks),
        status_column="status",
        tones=_TASK_TONES,
        widths=_TASK_WIDTHS,
        notes=[ORPHAN_RULE, "A disabled task does not count as coverage."],
    )
    _write_duplicates(wb, result)
    return save_workbook(wb, path)


DUPLICATES_SHEET = "Duplicates"
DUPLICATE_HEADERS = own_headers(
    N_("extra copy id"),
    N_("project"),
    "region",
    N_("task name"),
    N_("data sources"),
    N_("kept task id"),
)


def _write_duplicates(wb: Any, result: AuditResult) -> None:
    """The extra copies (what ``bulkscan dedupe`` deletes) and the duplicate coverage."""
    rows = [
        [d.extra.task.id, d.extra.project_id, d.extra.region, d.extra.task.name,
         sources_text(d.extra.task.data_sources), d.kept.task.id]
        for d in result.duplicates
    ]  # fmt: skip
    multiple = result.multiply_covered
    write_table(
        wb, DUPLICATES_SHEET, DUPLICATE_HEADERS, rows, widths=(16, 34, 14, 36, 40, 16),
        notes=[
            f"{len(rows)} task(s) repeat an older task's name and data sources (the oldest is "
            "kept); `bulkscan dedupe THIS_WORKBOOK` deletes them after asking.",
            f"{len(multiple)} instance(s) are covered by more than one enabled task.",
        ],
    )  # fmt: skip


def read_duplicates(path: str | os.PathLike[str]) -> list[tuple[str, str, str, str]]:
    """(project, region, task id, task name) of each extra copy an audit workbook lists.

    The workbook is any file a user names, so it is read with the inventory's checks
    (size, archive, format): ``UsageError`` for what is not an audit workbook."""
    hint = "give the workbook bulkscan audit wrote (reports/INVENTORY-audit-TIME.xlsx)"
    try:
        grid = read_sheet(path, DUPLICATES_SHEET)
    except InputError as exc:
        raise UsageError(f"{exc}; {hint}") from None
    if grid is None:
        raise UsageError(f"{path} has no {DUPLICATES_SHEET} sheet: {hint}")
    header = grid[0] if grid else []
    names = tuple(header_key(h) for h in header[: len(DUPLICATE_HEADERS)])
    if names != DUPLICATE_HEADERS:  # the English names, or their translation
        raise UsageError(f"{path}, sheet {DUPLICATES_SHEET}: not the columns bulkscan audit "
                         f"writes; {hint}")  # fmt: skip
    found = []
    for row in grid[1:]:
        task_id, project, region, name = (_cell_text(v) for v in (*row, None, None, None)[:4])
        if task_id and project and region:  # a note under the table has its text in A only
            found.append((project, region, task_id, name))
    return found


def _cell_text(value: object) -> str:
    """A cell as text, as the inventory's cells are read ("" for an empty one)."""
    return "" if value is None else parse_text(value)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _switch(task: RemoteTask) -> str:
    return {True: "on", False: "off", None: ""}[task.schedule_switch]


def _latest(values: Iterable[int | None]) -> dt.datetime | None:
    times = [t for t in (epoch_to_datetime(v) for v in values) if t is not None]
    return max(times, default=None)


def _joined(values: Iterable[str]) -> str:
    return "; ".join(values)


def _coverage_note(item: InstanceCoverage) -> str:
    found: list[str] = []
    if item.error:
        found.append(f"could not list the tasks: {item.error}")
    if item.schedule_off:
        found.append("every covering task is periodic with its schedule switch off")
    if item.status is CoverageStatus.DISABLED:
        found.append("enable a task in the console, or run the uncovered workbook")
    if item.held_by is not None and item.held_until is not None:
        until = item.held_until.strftime("%Y-%m-%d %H:%M:%S %z")
        found.append(f"in a task of run {item.held_by} of unknown outcome: audit again after "
                     f"{until}")  # fmt: skip
    elif item.held_by is not None:
        found.append(f"an unfinished run holds it: resume {item.held_by}")
    if item.dropped_by is not None:
        found.append(f"its task in {_stale_text(item.dropped_by)} was never sent")
    if len(item.rows) > 1:
        others = ", ".join(str(r.row) for r in item.rows[1:])
        found.append(f"also listed in row(s) {others}")
    return "; ".join(found)


def _coverage_row(item: InstanceCoverage) -> list[object]:
    instance, tasks = item.instance, item.tasks
    return [
        instance.ref.row, instance.ins_id, instance.db_type, instance.project_id,
        instance.region, _yes(item.covered), item.status.value,
        _joined(t.name for t in tasks),
        _joined(t.id for t in tasks),
        _joined(dict.fromkeys(t.schedule_type or "" for t in tasks)),
        _joined(_switch(t) for t in tasks),
        _latest(t.last_trigger_time for t in tasks),
        _latest(t.last_end_time for t in tasks),
        _joined(f"{t.name} ({t.id})" for t in item.disabled),
        _coverage_note(item),
        *(value for _, value in instance.extras),
    ]  # fmt: skip


def _task_status(finding: TaskFinding) -> str:
    if not finding.enabled:
        return "disabled"
    if finding.orphan:
        return "orphan"
    return "schedule off" if finding.schedule_off else "in use"


def _task_row(finding: TaskFinding) -> list[object]:
    task = finding.task
    created = task.raw.get("create_time")
    return [
        finding.project_id, finding.region, task.id, task.name, _task_status(finding),
        _yes(finding.orphan), _yes(not finding.enabled), task.schedule_type or "",
        _switch(task), sources_text(task.data_sources), len(finding.matched),
        sources_text(finding.unmatched),
        epoch_to_datetime(task.last_trigger_time),
        epoch_to_datetime(task.last_end_time),
        epoch_to_datetime(created if isinstance(created, int) else None),
        task.create_user or "",
    ]  # fmt: skip


# --- the Summary sheet -----------------------------------------------------------------------


def _write_summary(
    wb: Workbook, result: AuditResult, uncovered: Path | None, command: str | None
) -> None:
    """The verdict and counts, both charts right under them (seen without scrolling), then
    the tables the charts draw, the audit's facts, settings and rules."""
    sheet = SummarySheet(wb, "Summary", widths=(34, 22, 12, 12, 12, 12))
    workbook_meta(sheet, _counts(result, uncovered), heading=N_("Coverage audit"),
                  tones=_VERDICT_TONES)  # fmt: skip
    sheet.blank()
    charts = sheet.row + 1
    sheet.blank(until=charts + CHART_ROWS)
    notes(sheet, _close_gap_lines(result, uncovered, command), heading=N_("Closing the gap"))
    sheet.blank()
    charted_table(
        sheet, [N_("status"), N_("instances")],
        [[s.value, result.count(s)] for s in CoverageStatus],
        heading=N_("Instances by status"), title=N_("Instances by status"),
        anchor=f"A{charts}", size=(10.5, 7.0), tones=_STATUS_TONES,
    )  # fmt: skip
    sheet.blank()
    headers = [N_("instances"), N_("covered"), N_("not covered"), N_("unknown"), N_("% covered")]
    for title, attribute in ((N_("project"), "project_id"), (N_("region"), "region")):
        count_table(sheet, [title, *headers], _by(result, attribute),
                    heading=_("Coverage by {what}").format(what=_(title)),
                    status_column=None)  # fmt: skip
        sheet.blank()
    charted_table(
        sheet, ["db_type", *headers], _by(result, "db_type"), heading=N_("Coverage by db_type"),
        title=N_("% covered by db_type"), value_column=6, anchor=f"D{charts}", size=(12.5, 7.0),
        axis_title=N_("% covered"), status_column=None,
    )  # fmt: skip
    sheet.blank()
    workbook_meta(sheet, _facts(result), heading=N_("Audit"))
    sheet.blank()
    workbook_meta(sheet, _settings(result), heading=N_("Settings (no secrets are kept)"))
    sheet.blank()
    notes(sheet, (COVERAGE_RULE, ORPHAN_RULE, _MATCH_RULE), heading=N_("Rules"))


def _by(result: AuditResult, attribute: str) -> list[list[object]]:
    """Coverage counts per value of an instance attribute, largest first."""
    counts: dict[str, Counter[CoverageStatus]] = defaultdict(Counter)
    for item in result.coverage:
        counts[str(getattr(item.instance, attribute))][item.status] += 1
    rows: list[list[object]] = []
    for value, tally in sorted(counts.items(), key=lambda kv: (-kv[1].total(), kv[0])):
        total = tally.total()
        covered = tally[CoverageStatus.COVERED]
        missing = sum(tally[s] for s in _NOT_COVERED)
        unknown = tally[CoverageStatus.UNKNOWN]
        rows.append([value, total, covered, missing, unknown, round(100 * covered / total, 1)])
    return rows


def _verdict(result: AuditResult) -> str:
    if not result.all_covered:
        return "NOT all covered"
    return _ALL_COVERED_UNTOLD if result.enabled_untold else "all covered"


def _counts(result: AuditResult, uncovered: Path | None) -> list[tuple[str, object]]:
    duplicates = sum(len(c.rows) - 1 for c in result.coverage)
    return [
        (N_("verdict"), _verdict(result)),
        (N_("instances audited"), len(result.coverage)),
        (N_("covered"), result.covered),
        (N_("not covered (no task)"), result.count(CoverageStatus.MISSING)),
        (N_("not covered (only disabled tasks)"), result.count(CoverageStatus.DISABLED)),
        (N_("unknown (project not listed)"), result.count(CoverageStatus.UNKNOWN)),
        *_held_count(result),
        (N_("rows left out (enabled = FALSE)"), len(result.inventory.skipped)),
        (N_("rows repeating an instance"), duplicates),
        (N_("tasks found"), len(result.tasks)),
        (N_("orphan tasks"), result.orphans),
        (N_("disabled tasks"), result.disabled_tasks),
        (N_("tasks with enabled state unknown"), result.enabled_untold),
        (N_("uncovered workbook"), uncovered.name if uncovered and result.uncovered else "(none)"),
    ]


def _facts(result: AuditResult) -> list[tuple[str, object]]:
    meta = result.meta
    failed = [g for g in result.groups if g.error]
    listed = _("{listed} of {total}").format(
        listed=len(result.groups) - len(failed), total=len(result.groups)
    )
    return [
        *provenance_items(meta),
        (N_("projects/regions listed"), listed),
        *(
            (
                _("could not list {project} / {region}").format(
                    project=g.project_id, region=g.region
                ),
                g.error,
            )
            for g in failed
        ),
        (N_("list requests"), meta.requests),
        (N_("rate learned (requests/s)"), round(meta.learned_rate_per_s, 3)),
    ]


def _settings(result: AuditResult) -> list[tuple[str, object]]:
    meta = result.meta
    asked = {"rate_per_s": meta.rate_per_s, "concurrency": meta.concurrency}
    return list(settings_items({**asked, **meta.connection}))
