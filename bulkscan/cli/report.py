"""``bulkscan report RUN_DIR``: rebuild a run's result workbook from its journal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_OK, runner
from bulkscan.cli._common import add_json_option, working
from bulkscan.cli._console import console
from bulkscan.cli._json import Next, emit, outcome_counts
from bulkscan.i18n import _

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="rebuild a run's results.xlsx and retry.xlsx from its journal",
        description="Rebuild results.xlsx (Summary, Tasks, Rows, Issues, Attempts) and, when "
        "some task failed or gave up, retry.xlsx, from the journal of RUN_DIR alone. Tasks "
        "not sent or of unknown outcome (in flight when the run stopped) are never in "
        "retry.xlsx: resume the run to settle them. Works while the run is going on and after "
        "a crash; sends nothing. Exit 0.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory under reports/")
    add_json_option(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    with working(args, _("writing the result workbook")):
        report = runner.write_report(args.run_dir)
    counts = {str(outcome): n for outcome, n in report.counts.items()}
    if args.json:
        rerun = report.rerun_command
        fields = {
            "run_dir": args.run_dir,
            "results": str(report.results),
            "retry": str(report.retry) if report.retry else None,
            "retry_tasks": report.retry_tasks,
            "retry_rows": report.retry_rows,
            "rerun_command": rerun,
            "outcomes": outcome_counts(report.counts),
        }
        step = Next(rerun, "re-run the failures after fixing them") if rerun else None
        return emit(args, EXIT_OK, fields, next_step=step)
    console.out(_("results: {path}").format(path=report.results))
    if report.retry is not None:
        console.out(
            _("retry:   {path} ({rows} row(s) of {tasks} task(s) to fix and re-run)").format(
                path=report.retry, rows=report.retry_rows, tasks=report.retry_tasks
            )
        )
        console.out(_("re-run the failures with: {command}").format(command=report.rerun_command))
    else:
        console.out(_("retry:   none (no task failed or gave up)"))
    for outcome, n in counts.items():
        if n:
            console.detail(f"  {outcome:<14} {n:>7}")
    console.detail(f"  {'total':<14} {sum(counts.values()):>7}")
    return EXIT_OK
