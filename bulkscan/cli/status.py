"""``bulkscan status RUN_DIR [--wait]``: did the scans of a run's tasks run, and how."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from bulkscan import runner
from bulkscan.cli._common import connection_from, dispatch_settings
from bulkscan.cli._json import Next, emit, outcome_counts, term
from bulkscan.cli._lifecycle import add_run_dir_options

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from bulkscan.run.lifecycle import ScanRecord

__all__ = ["register"]

DESCRIPTION = """\
For every task RUN_DIR's run created or found, read its runs in DSC and report the latest:
its state, start and end times and error message. Writes a Scans sheet into results.xlsx
(and a chart of scan states on its Summary). Reads only; changes nothing. --wait polls until
every scan has finished or --timeout. A run with tasks not sent yet (--limit, a stop) says
so, with its resume command, and never exits 0. Exit 0: every latest scan succeeded; 1: some
failed (or could not be read); 4: some still running, never ran or never sent, when it stopped
waiting; 2: usage error."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "status", help="the latest scan of each task of a run (read-only)", description=DESCRIPTION
    )
    add_run_dir_options(parser, changes=False)
    parser.add_argument("--wait", action="store_true", help="poll until every scan finished")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S", help="most seconds --wait polls"
    )
    parser.add_argument(
        "--poll", type=float, default=10.0, metavar="S", help="seconds between polls"
    )
    parser.set_defaults(func=_run)


def _live(scans: Sequence[ScanRecord]) -> None:
    counts: dict[str, int] = {}
    for scan in scans:
        counts[str(scan.state)] = counts.get(str(scan.state), 0) + 1
    line = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{line}".ljust(78))
        sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    connection, simulator = connection_from(args)
    result = asyncio.run(
        runner.status(
            args.run_dir,
            connection=connection,
            simulator=simulator,
            dispatch_settings=dispatch_settings(args),
            wait_s=args.timeout if args.wait else 0.0,
            poll_s=args.poll,
            observer=_live,
        )
    )
    if sys.stderr.isatty() and args.wait:
        sys.stderr.write("\n")
    if args.json:
        fields = {
            "run_dir": args.run_dir,
            "results": str(result.report.results),
            "outcomes": outcome_counts(result.counts()),
            "requests": result.requests,
            "scans": [_scan_json(s) for s in result.scans],
            "tasks_not_sent_or_unknown": result.report.tally.unfinished,
        }
        return emit(args, result.exit_code, fields, next_step=_next_step(result))
    for state, n in sorted(result.counts().items()):
        print(f"  {state:<10} {n:>6}")
    for scan in result.scans:
        if str(scan.state) in ("failed", "unknown"):
            print(f"  {scan.name}: {scan.state}: {scan.error or scan.status or ''}")
    left = result.report.tally.unfinished
    if left:
        print(
            f"  {left} task(s) of this run not sent yet or of unknown outcome: no scan of "
            f"theirs can have run; resume with: {result.report.resume_command}"
        )
    print(f"results: {result.report.results}")
    return result.exit_code


def _next_step(result: runner.ScanStatus) -> Next | None:
    """The run's resume command while some of its tasks are not sent or of unknown outcome."""
    left, command = result.report.tally.unfinished, result.report.resume_command
    if not left or not command:
        return None
    return Next(command, f"{left} task(s) of this run not sent yet or of unknown outcome")


def _scan_json(scan: ScanRecord) -> dict[str, Any]:
    return {
        "task": scan.name,
        "task_id": scan.task_id,
        "project_id": scan.project_id,
        "region": scan.region,
        "found_as": scan.origin,
        "state": term(scan.state),
        "status": scan.status,
        "started": scan.started,
        "ended": scan.ended,
        "error": scan.error,
        "runs": scan.runs,
    }
