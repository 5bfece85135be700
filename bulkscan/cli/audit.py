"""``bulkscan audit FILE``: which inventory databases are covered by a DSC scan task."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import time
from typing import TYPE_CHECKING, Any

from bulkscan.cli import Refused, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import Bar, console
from bulkscan.cli._json import Next, emit, outcome_counts, term
from bulkscan.errors import RunFatalError, ValidationFailed
from bulkscan.events import RateChanged
from bulkscan.i18n import _
from bulkscan.run.states import CoverageStatus

if TYPE_CHECKING:
    from bulkscan.audit import AuditEvent, AuditResult, GroupListed, UnfinishedRun
    from bulkscan.runner import AuditReport

__all__ = ["register"]

DESCRIPTION = """\
List every metadata scan task in each project and region the inventory names (all pages,
under the same rate limit and retries as run) and match the inventory's instances to them
through the tasks' data sources. Only the instances sheet is read; profiles are not needed.
Writes REPORTS/<inventory>-audit-<time>.xlsx (sheets Summary, Coverage, Uncovered, Tasks) and,
when something is not covered, REPORTS/<inventory>-uncovered-<time>.xlsx, an input workbook
that `bulkscan run` takes to create the missing tasks. A task that is disabled does not count
as coverage. An instance still in a task that an unfinished run in REPORTS has not sent yet
(a --limit canary, an interrupted run) is left out of the uncovered workbook: the next step
printed is then `bulkscan run ... --resume DIR`, and audit again after it. A run whose input
changed since it started cannot be resumed: the rows it never sent are in the uncovered
workbook, and it is named as such.
Exit 0: every instance covered; 1: some are not (or their project could not be
listed); 2: input or usage error; 3: stopped by a fatal error (e.g. credentials refused)."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "audit",
        help="check which inventory databases are covered by a scan task (a workbook)",
        description=DESCRIPTION,
    )
    common.add_input_options(parser)
    common.add_connection_options(parser)
    group = parser.add_argument_group("the audit")
    common.add_reports_dir_option(group, help="folder for the audit workbooks (default: reports)")
    common.add_json_option(group, help="print one JSON summary on stdout at the end")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        inventory = runner.read_audit_inventory(**common.inventory(args))
    except ValidationFailed as failed:
        line = _("nothing audited: {errors} error(s) in {file}; fix them and run again")
        raise common.invalid_input(args, failed, line) from None
    warnings = tuple(i for i in inventory.issues if i.severity == "warning")
    if warnings and not args.json:
        common.print_issues(warnings, limit=20)
    notes = _Notes(quiet=args.json)
    try:
        report = asyncio.run(
            runner.audit(
                inventory,
                **common.service(args),
                reports_dir=args.reports_dir,
                run_options=common.next_options(args, same_file=False),
                observer=notes,
            )
        )
    except RunFatalError as exc:
        raise Refused.stopped(exc, file=args.file) from None
    finally:
        notes.close()
    code = common.exit_code(report.status)
    dedupe = _dedupe_command(args, report)
    if args.json:
        fields = _summary_json(report) | {"dedupe_command": dedupe}
        emit(args, code, fields, next_step=_next_step(report, dedupe))
    else:
        _print_summary(report, dedupe)
    return code


def _dedupe_command(args: argparse.Namespace, report: AuditReport) -> str | None:
    """``bulkscan dedupe`` of the audit workbook, reaching the same service (None: the audit
    found no extra copy)."""
    if not report.result.duplicates:
        return None
    service_only = argparse.Namespace(**(vars(args) | {"reads_inventory": False}))
    options = common.next_options(service_only)
    return shlex.join(["bulkscan", "dedupe", str(report.workbook), *options])


class _Notes:
    """Tells the terminal (stderr) about listings that failed and rate changes, and draws a
    bar of the project/region pairs listed."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Bar | None = None
        self.started = time.monotonic()

    def __call__(self, event: AuditEvent) -> None:
        if self.quiet:
            return
        from bulkscan.audit import GroupListed  # loaded by the audit itself: --help needs none

        if isinstance(event, GroupListed):
            self._draw(event)
        if isinstance(event, GroupListed) and event.error:
            from bulkscan.run.remote import group_text

            said = group_text(event.project_id, event.region, event.error)
            console.err(
                _("warning: could not list the tasks: {error}").format(error=said), kind="warning"
            )
        elif isinstance(event, RateChanged):
            console.err(
                _("rate {old}/s -> {new}/s ({reason})").format(
                    old=f"{event.old_per_s:.3g}", new=f"{event.new_per_s:.3g}", reason=event.reason
                )
            )

    def _draw(self, event: GroupListed) -> None:
        if self.bar is None:
            self.bar = console.bar("listing", total=event.total)
            if self.bar is None:  # not a terminal, or --quiet
                return
        spent = time.monotonic() - self.started
        rate = event.done / spent if spent > 0 else None
        eta = (event.total - event.done) / rate if rate else None
        last = f"{event.region}: {event.tasks} task(s)"
        self.bar.update(event.done, total=event.total, rate_per_s=rate, eta_s=eta, status=last)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_summary(report: AuditReport, dedupe: str | None) -> None:
    result = report.result
    disabled = result.count(CoverageStatus.DISABLED)
    unknown = result.count(CoverageStatus.UNKNOWN)
    console.out(
        _(
            "{file}: {instances} instance(s) in {pairs} project/region pair(s): {covered} "
            "covered, {uncovered} not covered"
        ).format(
            file=result.inventory.book.path,
            instances=len(result.coverage),
            pairs=len(result.groups),
            covered=result.covered,
            uncovered=len(result.uncovered),
        )
        + (_(" ({count} only by disabled tasks)").format(count=disabled) if disabled else "")
        + (_(", {count} unknown (project not listed)").format(count=unknown) if unknown else "")
    )
    console.detail(
        _("tasks found: {tasks} ({orphans} orphan, {disabled} disabled)").format(
            tasks=len(result.tasks), orphans=result.orphans, disabled=result.disabled_tasks
        )
    )
    if result.enabled_untold:
        console.detail(
            _(
                "note: DSC's task list does not say whether {count} of these task(s) are "
                "enabled; each counts as coverage, so check in the DSC console any task that "
                "may have been disabled"
            ).format(count=result.enabled_untold)
        )
    console.detail(_("audit workbook: {path}").format(path=report.workbook))
    if report.uncovered is not None:
        console.detail(_("uncovered rows: {path}").format(path=report.uncovered))
    from bulkscan.report.audit import stale_lines  # loaded by the audit's workbook already

    for line in stale_lines(result):  # runs whose resume would be refused: never the next step
        console.detail(line)
    if dedupe is not None:  # said before the next step, which it follows
        console.detail(
            _(
                "{count} extra copy(ies): task(s) whose name and data sources repeat an older "
                "task's (the Duplicates sheet); delete them with: {command}"
            ).format(count=len(result.duplicates), command=dedupe)
        )
    held = result.held_in(result.resumable)
    if report.resume_command is not None:  # the one next step: resume, then audit again
        runs = len(result.resumable)
        console.detail(
            _(
                "{held} instance(s) are in tasks of {runs} unfinished run(s), not sent yet (left "
                "out of the uncovered workbook); resume first, then audit again: {command}"
            ).format(held=held, runs=runs, command=report.resume_command)
        )
    elif report.uncovered is not None:
        console.detail(_("to close the gap, run: {command}").format(command=report.run_command))
    elif result.all_covered and result.enabled_untold:
        console.detail(_("every instance is covered, if the tasks are enabled (see the note)"))
    elif result.all_covered:
        console.detail(_("every instance is covered"))


def _next_step(report: AuditReport, dedupe: str | None = None) -> Next | None:
    """What the text says to do next: resume the runs that hold instances, then audit again;
    else run the uncovered workbook; else delete the extra copies."""
    if report.resume_command is not None:
        held = report.result.held_in(report.result.resumable)
        why = _(
            "{held} instance(s) are in tasks of unfinished runs: resume, then audit again"
        ).format(held=held)
        return Next(report.resume_command, why)
    if report.run_command is not None:
        return Next(report.run_command, _("create the tasks of the instances not covered"))
    if dedupe is not None:
        why = _("delete {count} extra copy(ies) of tasks").format(
            count=len(report.result.duplicates)
        )
        return Next(dedupe, why)
    return None


def _summary_json(report: AuditReport) -> dict[str, Any]:
    result = report.result
    return {
        "file": result.inventory.book.path,
        "all_covered": result.all_covered,
        "instances": len(result.coverage),
        "outcomes": outcome_counts({s: result.count(s) for s in CoverageStatus}),
        "skipped_rows": len(result.inventory.skipped),
        "tasks": len(result.tasks),
        "orphan_tasks": result.orphans,
        "duplicate_tasks": len(result.duplicates),
        "disabled_tasks": result.disabled_tasks,
        "enabled_untold_tasks": result.enabled_untold,
        "requests": result.meta.requests,
        "workbook": str(report.workbook),
        "uncovered_workbook": str(report.uncovered) if report.uncovered else None,
        "run_command": report.run_command,
        "resume_command": report.resume_command,
        "stale_runs": [_stale_json(result, run) for run in result.stale],
        "groups": [
            {"project_id": g.project_id, "region": g.region, "tasks": g.tasks, "error": g.error}
            for g in result.groups
        ],
        "uncovered": [
            {
                "ins_id": c.instance.ins_id,
                "db_type": c.instance.db_type,
                "project_id": c.instance.project_id,
                "region": c.instance.region,
                "row": c.instance.ref.row,
                "status": term(c.status),
            }
            for c in result.uncovered
        ],
    }


def _stale_json(result: AuditResult, run: UnfinishedRun) -> dict[str, Any]:
    """A run that cannot be resumed: why, its instances in the uncovered workbook, and those
    it still holds (a task of unknown outcome) until when."""
    return {
        "run_dir": str(run.run_dir),
        "reason": run.stale,
        "uncovered": sum(1 for c in result.coverage if c.dropped_by and c.dropped_by == run),
        "held": result.held_in((run,)),
        "held_until": run.settles_at.isoformat() if run.settles_at and run.sources else None,
    }
