"""``bulkscan report RUN_DIR``: rebuild a run's result workbook from its journal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._common import add_json_option, exit_code, working
from bulkscan.cli._console import console
from bulkscan.cli._json import emit, outcome_counts
from bulkscan.cli._next import next_step, say_next
from bulkscan.i18n import _

if TYPE_CHECKING:
    import argparse

    from bulkscan.report.results import ReportPaths

__all__ = ["register"]

# ``status``'s code for work still going on: here, the run is still sending
_EXIT_RUNNING = 4


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="rebuild a run's results.xlsx and retry.xlsx from its journal",
        description="Rebuild results.xlsx (Summary, Tasks, Rows, Issues, Attempts) and, when "
        "some task failed or gave up, retry.xlsx, from the journal of RUN_DIR alone. Tasks "
        "not sent or of unknown outcome (in flight when the run stopped) are never in "
        "retry.xlsx: resume the run to settle them. Works while the run is going on and after "
        "a crash; sends nothing. Exits as the run's last command did (the same rule): 0: "
        "every task is in DSC, or held back by --limit; 1: some failed, gave up or conflict, "
        "or the run's closing listing found a task name twice or could not look (the last "
        "line is then the audit); 3: the run is unfinished (tasks not sent or of unknown "
        "outcome, or stopped by an error): the last line is its resume command; 4: the run "
        "is still going on.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory under reports/")
    add_json_option(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    with working(args, _("writing the result workbook")):
        report = runner.write_report(args.run_dir)
    code = _EXIT_RUNNING if report.running_pid is not None else exit_code(report.status)
    if args.json:
        return emit(args, code, _fields(args, report), next_step=next_step(report))
    _print(report)
    return code


def _fields(args: argparse.Namespace, report: ReportPaths) -> dict[str, Any]:
    return {
        "run_dir": args.run_dir,
        "results": str(report.results),
        "retry": str(report.retry) if report.retry else None,
        "retry_tasks": report.retry_tasks,
        "retry_rows": report.retry_rows,
        "rerun_command": report.rerun_command,
        "run_status": report.run_status,
        "unfinished": report.tally.unfinished,
        "resume_command": report.resume_command if report.tally.unfinished else None,
        "held_back": report.standing.held_back,
        "duplicates": list(report.duplicates),
        "duplicates_unchecked": report.duplicates_unchecked or None,
        "audit_command": report.audit_command if report.standing.needs_audit else None,
        "outcomes": outcome_counts(report.counts),
    }


def _print(report: ReportPaths) -> None:
    console.out(_("results: {path}").format(path=report.results))
    if report.retry is not None:
        console.out(
            _("retry:   {path} ({rows} row(s) of {tasks} task(s) to fix and re-run)").format(
                path=report.retry, rows=report.retry_rows, tasks=report.retry_tasks
            )
        )
    else:
        console.out(_("retry:   none (no task failed or gave up)"))
    counts = {str(outcome): n for outcome, n in report.counts.items()}
    for outcome, n in counts.items():
        if n:
            console.detail(f"  {outcome:<14} {n:>7}")
    console.detail(f"  {'total':<14} {sum(counts.values()):>7}")
    _print_next(report)


def _print_next(report: ReportPaths) -> None:
    """The next steps, the one to run first on the last line (``say_next``, as ``run`` ends):
    none while the run goes on."""
    if report.running_pid is not None:
        console.detail(
            _("run still going on (pid {pid}): nothing to resume or re-run while it sends; "
              "report again once it has ended").format(pid=report.running_pid)
        )  # fmt: skip
        return
    say_next(report)
