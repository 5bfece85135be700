"""What the commands after a run share: RUN_DIR, --yes, --json, and asking first."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_INPUT
from bulkscan.cli._common import add_connection_options
from bulkscan.cli._console import console
from bulkscan.cli._json import emit, outcome_counts
from bulkscan.i18n import _, is_yes, yes_no
from bulkscan.run.states import TaskState

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from bulkscan.run.lifecycle import PlannedAction
    from bulkscan.runner import ActionOutcome, Connection, RunResult

__all__ = [
    "NotConfirmable",
    "add_run_dir_options",
    "ask",
    "not_confirmable",
    "print_outcome",
    "update_on_conflict",
]

SHOWN = 50  # names listed before asking; the rest are counted


class NotConfirmable(Exception):
    """No terminal to ask on and no --yes: nothing may change."""


def add_run_dir_options(parser: argparse.ArgumentParser, *, changes: bool = True) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory under reports/")
    if changes:
        parser.add_argument(
            "--yes", "-y", action="store_true", help="do not ask before changing anything"
        )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    add_connection_options(parser)


def ask(args: argparse.Namespace, question: str, lines: Sequence[str]) -> bool:
    """Show what will change and ask; ``NotConfirmable`` without a terminal or --yes."""
    for line in lines[:SHOWN]:
        console.err(f"  {line}")
    if len(lines) > SHOWN:
        console.err(f"  ... and {len(lines) - SHOWN} more")
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise NotConfirmable
    return is_yes(console.ask(f"{question} {yes_no()} "))


def not_confirmable(command: str) -> int:
    console.err(
        f"bulkscan: error: {command} changes tasks in DSC and there is no terminal to ask on: "
        "add --yes to confirm"
    )
    return EXIT_INPUT


def print_outcome(args: argparse.Namespace, outcome: ActionOutcome, extra: dict[str, Any]) -> int:
    report = outcome.report
    code = outcome.exit_code if outcome.confirmed else 0
    failed = {
        t.task.name: report.messages.get(t.task.key, t.why)
        for t in report.planned
        if report.results.get(t.task.key) is not None
        and str(report.results[t.task.key]) in ("failed", "kept")
    }
    if args.json:
        fields = {
            "action": report.kind,
            "confirmed": outcome.confirmed,
            "requests": report.requests,
            "outcomes": outcome_counts(report.counts()),
            "not_done": failed,
        }
        return emit(args, code, fields | extra)
    if not outcome.confirmed:
        console.out("nothing changed")
        return code
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts().items()))
    console.out(f"{report.kind}: {counts or 'nothing to do'} ({report.requests} request(s))")
    for name, why in failed.items():
        console.out(f"  {name}: {why}")
    return code


def update_on_conflict(
    args: argparse.Namespace,
    result: RunResult,
    connection: Connection | None,
    settings: Any,
    *,
    limiter: Any = None,
) -> int | None:
    """``run --on-conflict update``: show each difference, ask, PUT; the exit code, or None
    when there was nothing to update."""
    import asyncio

    from bulkscan import runner

    if args.on_conflict != "update" or not result.counts.get(TaskState.CONFLICT):
        return None
    if connection is None:
        return None  # an embedded simulator starts empty: it holds no task to update

    def confirm(planned: Sequence[PlannedAction]) -> bool:
        lines = [f"update {p.task.name} (id {p.task_id}): {p.why}" for p in planned
                 if p.state is None]  # fmt: skip
        console.err(f"{len(lines)} existing task(s) have other data sources")
        return ask(args, _("Update {count} existing task(s)?").format(count=len(lines)), lines)

    try:
        outcome = asyncio.run(
            runner.update_conflicts(
                result.run_dir,
                confirm=confirm,
                connection=connection,
                dispatch_settings=settings,
                limiter=limiter,
            )
        )
    except NotConfirmable:
        return not_confirmable("run --on-conflict update")
    if not args.json:
        print_outcome(args, outcome, {})
    return outcome.exit_code if outcome.confirmed else 0
