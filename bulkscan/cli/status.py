"""``bulkscan status RUN_DIR [--wait]``: did the scans of a run's tasks run, and how."""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._common import next_options, service
from bulkscan.cli._console import SUMMARISED_FROM, Bar, console
from bulkscan.cli._json import Next, emit, outcome_counts, term
from bulkscan.cli._lifecycle import add_run_dir_options, undone_text
from bulkscan.cli._next import left_text
from bulkscan.i18n import N_, _
from bulkscan.run.rundir import journal_of
from bulkscan.run.states import NextStep, ScanState

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

    from bulkscan.run.lifecycle import ScanRecord, UndoneTask

__all__ = ["register"]

DESCRIPTION = N_(
    "For every task RUN_DIR's run created or found, read its runs in DSC and report the "
    "latest: its state, start and end times and error message. Writes a Scans sheet into "
    "results.xlsx (and a chart of scan states on its Summary). Reads only; changes nothing. "
    "--wait polls until every scan has finished or --timeout. A run with tasks not sent yet "
    "(--limit, a stop) says so, with its resume command, and never exits 0. A task that "
    "undo deleted is not read: it is named as such. Exit 0: every latest scan succeeded; 1: "
    "some failed (or could not be read); 4: some still running, never ran or never sent, "
    "when it stopped waiting; 2: usage error."
)


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


def _pace(done: int, total: int, started: float) -> tuple[float | None, float | None]:
    """Steps per second since ``started`` and the seconds left at that pace (None: no step
    yet)."""
    spent = time.monotonic() - started
    rate = done / spent if spent > 0 and done else None
    return rate, (total - done) / rate if rate else None


class _Reading:
    """The first read of every task's scans (one request per task at the rate limit: a
    minute for 300 tasks at 5/s): a bar of the tasks read, with the rate and the time left,
    on a terminal; the reads of ``--wait``'s polls are told by ``_Live``'s bar instead."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Bar | None = None
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = console.bar(_("reading scans"), total=total, transient=True)
            if self.bar is None:  # not a terminal, or --quiet
                self.enabled = False
                return
        rate, eta = _pace(done, total, self.started)
        self.bar.update(done, total=total, rate_per_s=rate, eta_s=eta)

    def close(self) -> None:
        """The first read is over: later reads draw nothing here."""
        self.enabled = False
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Live:
    """While --wait polls: a bar of the scans that finished, on a terminal; else nothing."""

    def __init__(self, *, waiting: bool) -> None:
        self.waiting = waiting
        self.bar: Bar | None = None
        self.started = time.monotonic()

    def __call__(self, scans: Sequence[ScanRecord]) -> None:
        if not self.waiting:
            return
        counts: dict[str, int] = {}
        for scan in scans:
            counts[str(scan.state)] = counts.get(str(scan.state), 0) + 1
        if self.bar is None:
            self.bar = console.bar(_("scans"), total=len(scans))
            if self.bar is None:  # not a terminal, or --quiet
                self.waiting = False
                return
        done = len(scans) - counts.get(str(ScanState.RUNNING), 0)
        rate, eta = _pace(done, len(scans), self.started)
        line = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        self.bar.update(done, total=len(scans), rate_per_s=rate, eta_s=eta, status=line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run(args: argparse.Namespace) -> int:
    journal_of(args.run_dir)  # a wrong RUN_DIR is said before credentials are looked for
    where = service(args)
    reading = _Reading(enabled=not args.json)
    live = _Live(waiting=args.wait and not args.json)

    def polled(scans: Sequence[ScanRecord]) -> None:  # with --wait, after each read
        reading.close()
        live(scans)

    try:
        result = asyncio.run(
            runner.status(
                args.run_dir,
                **where,
                wait_s=args.timeout if args.wait else 0.0,
                poll_s=args.poll,
                observer=polled,
                on_read=reading,
            )
        )
    finally:  # Ctrl-C too: the terminal gets its cursor back
        reading.close()
        live.close()
    from bulkscan.run.lifecycle import read_undone  # loaded by the status itself

    undone = read_undone(Path(args.run_dir))  # not read: undo deleted them
    if args.json:
        fields = {
            "run_dir": args.run_dir,
            "results": str(result.report.results),
            "outcomes": outcome_counts(result.counts()),
            "requests": result.requests,
            "scans": [_scan_json(s) for s in result.scans],
            "tasks_not_sent_or_unknown": result.report.tally.unfinished,
            "undone": [_undone_json(u) for u in undone],
        }
        return emit(args, result.exit_code, fields, next_step=_next_step(args, result))
    if undone and not result.scans:
        console.out(_("nothing to read: no task of this run is left after undo"))
    for state, n in sorted(result.counts().items()):
        console.out(f"  {state:<10} {n:>6}")
    for line in _failures(result.scans) + _undone_lines(undone):
        console.out(line)
    left = result.report.tally.unfinished
    if left:
        console.out(
            _(
                "  {count} task(s) of this run not sent yet or of unknown outcome: no scan of "
                "theirs can have run; resume with: {command}"
            ).format(count=left, command=result.report.resume_command)
        )
    again = _start_failed(args, result)
    if not left and again is not None:
        console.out(_("{why}, with: {command}").format(why=again.why, command=again.command))
    console.out(_("results: {path}").format(path=result.report.results))
    return result.exit_code


def _next_step(args: argparse.Namespace, result: runner.ScanStatus) -> Next | None:
    """The run's resume command when its report ends with it (``Standing.next``: tasks not
    sent or of unknown outcome, or a session that stopped before its end); else, when scans
    failed, the command that starts those tasks again."""
    report = result.report
    if report.standing.next is not NextStep.RESUME or not report.resume_command:
        return _start_failed(args, result)
    left = report.tally.unfinished
    if not left:
        return Next(report.resume_command, left_text(report))
    why = _("{count} task(s) of this run not sent yet or of unknown outcome").format(count=left)
    return Next(report.resume_command, why)


def _start_failed(args: argparse.Namespace, result: runner.ScanStatus) -> Next | None:
    """``bulkscan start`` of the tasks whose latest scan failed (each named: the others,
    succeeded or running, are not started again), through the service just read."""
    failed = [s.name for s in result.scans if s.state is ScanState.FAILED]
    if not failed:
        return None
    named = [part for name in failed for part in ("--task", name)]
    command = ["bulkscan", "start", args.run_dir, *named, *next_options(args)]
    why = _("{count} scan(s) failed: once the cause is fixed, start them again").format(
        count=len(failed)
    )
    return Next(shlex.join(command), why)


_NAMED = 3  # tasks named on a line that says one cause for many


def _failures(scans: Sequence[ScanRecord]) -> list[str]:
    """A line per failed or unknown scan; one line per cause shared by several (its tasks
    named up to ``_NAMED``); ``--verbose``: a line per scan."""
    causes: dict[str, list[str]] = {}
    for scan in scans:
        if str(scan.state) in ("failed", "unknown"):
            why = scan.error or scan.status or ""
            causes.setdefault(f"{scan.state}: {why}", []).append(scan.name)
    return _lines_by_cause(causes)


def _lines_by_cause(causes: Mapping[str, list[str]]) -> list[str]:
    """A line per task (``  name: why``), or one per cause shared by ``SUMMARISED_FROM``
    tasks or more, naming the first ``_NAMED``; ``--verbose``: a line per task."""
    lines: list[str] = []
    for why, names in causes.items():
        if console.verbose or len(names) < SUMMARISED_FROM:
            lines += [f"  {name}: {why}" for name in names]
            continue
        more = (
            _(" and {count} more").format(count=len(names) - _NAMED) if len(names) > _NAMED else ""
        )
        lines.append(
            _("  {count} task(s) {why} ({names}{more})").format(
                count=len(names), why=why, names=", ".join(names[:_NAMED]), more=more
            )
        )
    return lines


def _undone_lines(undone: Sequence[UndoneTask]) -> list[str]:
    """A line per task undo deleted (or found gone); one per undo time shared by several."""
    said: dict[str, list[str]] = {}
    for task in undone:
        said.setdefault(undone_text(task), []).append(task.name)
    return _lines_by_cause(said)


def _undone_json(task: UndoneTask) -> dict[str, Any]:
    return {
        "task": task.name,
        "task_id": task.task_id,
        "outcome": term(task.state),
        "at": task.when,
    }


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
