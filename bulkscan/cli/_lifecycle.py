"""What the commands after a run share: RUN_DIR, --yes, --json, and asking first."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bulkscan.cli import Refused, runner
from bulkscan.cli._common import (
    add_connection_options,
    add_json_option,
    counting,
    service,
    typed_command,
)
from bulkscan.cli._console import console
from bulkscan.cli._json import Next, emit, outcome_counts, term
from bulkscan.i18n import _, is_yes, yes_no
from bulkscan.run.rundir import journal_of
from bulkscan.run.states import ActionState, TaskState

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Coroutine, Sequence

    from bulkscan.run.lifecycle import ActionReport, PlannedAction, UndoneTask
    from bulkscan.runner import ActionOutcome, Connection, RunResult, SimulatorOptions

__all__ = [
    "Updated",
    "act",
    "add_run_dir_options",
    "ask",
    "print_outcome",
    "undone_text",
    "update_on_conflict",
    "updates_json",
]

SHOWN = 50  # names listed before asking; the rest are counted


def add_run_dir_options(parser: argparse.ArgumentParser, *, changes: bool = True) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory under reports/")
    if changes:
        parser.add_argument(
            "--yes", "-y", action="store_true", help="do not ask before changing anything"
        )
    add_json_option(parser, help="print one JSON document on stdout")
    add_connection_options(parser)


def ask(args: argparse.Namespace, question: str, lines: Sequence[str], *, about: str = "") -> bool:
    """Say what will change (``about``, then ``lines``) and ask; ``Refused`` without a
    terminal or --yes.  When a question follows, what it is about is said under --quiet too."""
    asking = not args.yes and sys.stdin.isatty()
    say = console.before_question if asking else console.err
    if about:
        say(about)
    for line in lines[:SHOWN]:
        say(f"  {line}")
    if len(lines) > SHOWN:
        say("  " + _("... and {count} more").format(count=len(lines) - SHOWN))
    if args.yes:
        return True
    if not asking:
        why = _(
            "{command} changes tasks in DSC and there is no terminal to ask on: "
            "add --yes to confirm"
        ).format(command=_command_of(args))
        raise Refused(_("bulkscan: error: {message}").format(message=why), error=why)
    return is_yes(console.ask(f"{question} {yes_no()} "))


def _command_of(args: argparse.Namespace) -> str:
    if getattr(args, "command", None) == "run":
        return "run --on-conflict update"
    return str(getattr(args, "command", "bulkscan"))


def act(
    args: argparse.Namespace,
    entry: Callable[..., Coroutine[Any, Any, ActionOutcome]],
    confirm: Callable[[Any], bool],
    **options: object,
) -> int:
    """An action on RUN_DIR's tasks (``runner.undo``, ``runner.operate``) through the service
    the options name, ``confirm`` asking first; its outcome printed, its exit code returned."""
    import asyncio

    journal_of(args.run_dir)  # a wrong RUN_DIR is said before credentials are looked for
    with counting(args, _command_of(args)):
        outcome = asyncio.run(entry(args.run_dir, confirm=confirm, **service(args), **options))
    extra = {"run_dir": args.run_dir}
    return print_outcome(args, outcome, extra, again=typed_command(), action=args.command)


def print_outcome(
    args: argparse.Namespace,
    outcome: ActionOutcome,
    extra: dict[str, Any],
    *,
    again: Sequence[str] = (),
    action: str | None = None,
) -> int:
    """The outcome, each task not done and why; with ``again`` (the command as typed), the
    command that sends the failed ones again (it resumes the batch: nothing done is resent).
    ``action``: the word for what was done (the command's name), else the report's kind."""
    report = outcome.report
    action = action or report.kind
    code = outcome.exit_code if outcome.confirmed else 0
    failed = {
        t.task.name: report.messages.get(t.task.key, t.why)
        for t in report.planned
        if report.results.get(t.task.key) is not None
        and str(report.results[t.task.key]) in ("failed", "kept")
    }
    failed |= {u.name: undone_text(u) for u in report.undone.values()}
    retry = _retry_step(report, again) if outcome.confirmed else None
    if args.json:
        fields = {
            "action": action,
            "confirmed": outcome.confirmed,
            "requests": report.requests,
            "outcomes": outcome_counts(report.counts()),
            "done_earlier": report.earlier,
            "not_done": failed,
        }
        undo = _changes_json(report) if action == "undo" else {}
        return emit(args, code, fields | undo | extra, next_step=retry)
    if not outcome.confirmed:
        console.out(_("nothing changed"))
        return code
    if report.undone and len(report.undone) == len(report.planned):  # nothing left to act on
        console.out(_("{action}: nothing to do: no task left after undo").format(action=action))
    else:
        console.out(
            _("{action}: {counts} ({requests} request(s))").format(
                action=action, counts=_counts_text(report) or _("nothing to do"),
                requests=report.requests,
            )
        )  # fmt: skip
    if report.earlier:  # a resumed batch: the counts include what an earlier command did
        console.out(
            _("  of which {count} done by an earlier {action} of this run, not sent again").format(
                count=report.earlier, action=action
            )
        )
    for name, why in failed.items():
        console.out(f"  {name}: {why}")
    if retry is not None:
        console.out(_("{why}; send them again with: {command}").format(
            why=retry.why, command=retry.command))  # fmt: skip
    return code


def undone_text(task: UndoneTask) -> str:
    """Why a task of the run is not acted on or read: undo deleted it (or found it gone)."""
    when = task.when.isoformat(sep=" ", timespec="minutes") if task.when else "?"
    if task.state is ActionState.DONE:
        return _("deleted by undo on {when}").format(when=when)
    return _("already gone when undo ran on {when}").format(when=when)


def _counts_text(report: ActionReport) -> str:
    """The tasks by final state; an undo's done ones said as what was done to them (deleted,
    restored), as its question said it would."""
    from bulkscan.run.lifecycle import DELETE, RESTORE  # loaded by the action itself

    said = {DELETE: _("{count} deleted"), RESTORE: _("{count} restored")}
    counts = report.counts()
    changes = report.changes()
    done = [
        text.format(count=n)
        for change, text in said.items()
        if (n := changes.get(change, {}).get(str(ActionState.DONE), 0))
    ]
    if done:
        counts.pop(str(ActionState.DONE), None)
    return ", ".join([*done, *(f"{n} {state}" for state, n in sorted(counts.items()))])


def _changes_json(report: ActionReport) -> dict[str, Any]:
    """An undo's ``changes`` (counts by change, then by outcome) and ``tasks`` (each task, its
    change and outcome)."""
    changes = report.changes()
    tasks = [
        {
            "task": p.task.name,
            "task_id": p.task_id,
            "change": p.change,
            "outcome": term(state) if (state := report.results.get(p.task.key)) else None,
            "message": report.messages.get(p.task.key) or (p.why if p.state is not None else None),
        }
        for p in report.planned
    ]
    return {"changes": {c: outcome_counts(n) for c, n in changes.items()}, "tasks": tasks}


def _retry_step(report: ActionReport, again: Sequence[str]) -> Next | None:
    """Run the same command again when some task failed (one ``kept`` by undo stays kept:
    sending again would not change it)."""
    failed = sum(1 for state in report.results.values() if str(state) == "failed")
    if not failed or not again:
        return None
    why = _("{count} task(s) failed; the tasks done are not sent again").format(count=failed)
    return Next(shlex.join(again), why)


@dataclass(frozen=True, slots=True)
class Updated:
    """What ``run --on-conflict update`` did: its outcome (None: refused before asking) and
    the exit code it adds to the run's."""

    outcome: ActionOutcome | None
    code: int

    @property
    def resolved(self) -> int:
        """The conflicts settled: the existing task now holds the planned body (updated now,
        or by an earlier command of this run)."""
        if self.outcome is None:
            return 0
        return sum(1 for s in self.outcome.report.results.values() if s is ActionState.DONE)


def update_on_conflict(
    args: argparse.Namespace,
    result: RunResult,
    connection: Connection | None,
    simulator: SimulatorOptions | None,
    settings: Any,
    *,
    limiter: Any = None,
) -> Updated | None:
    """``run --on-conflict update``: show each difference, ask, PUT; None when there was
    nothing to update."""
    import asyncio

    if args.on_conflict != "update" or not result.counts.get(TaskState.CONFLICT):
        return None

    def confirm(planned: Sequence[PlannedAction]) -> bool:
        line = _("update {task} (id {id}): {change}")
        lines = [line.format(task=p.task.name, id=p.task_id, change=p.why) for p in planned
                 if p.state is None]  # fmt: skip
        about = _("{count} existing task(s) have other data sources").format(count=len(lines))
        question = _("Update {count} existing task(s)?").format(count=len(lines))
        return ask(args, question, lines, about=about)

    try:
        with counting(args, _command_of(args)):
            outcome = asyncio.run(
                runner.update_conflicts(
                    result.run_dir,
                    confirm=confirm,
                    connection=connection,
                    simulator=simulator,
                    dispatch_settings=settings,
                    limiter=limiter,
                )
            )
    except Refused as refused:  # the run is done: its workbook and summary still follow
        console.err(str(refused), kind="error")
        return Updated(None, refused.code)
    if not args.json:
        print_outcome(args, outcome, {})
    return Updated(outcome, outcome.exit_code if outcome.confirmed else 0)


def updates_json(updated: Updated | None) -> list[dict[str, Any]]:
    """``run``'s ``updates``: each existing task of a planned name with other data sources,
    what was done to it (``outcome`` null: not sent) and why."""
    if updated is None or updated.outcome is None:
        return []
    report = updated.outcome.report
    return [
        {
            "task": p.task.name,
            "task_id": p.task_id,
            "project_id": p.task.project_id,
            "region": p.task.region,
            "outcome": term(state) if (state := report.results.get(p.task.key)) else None,
            "change": p.why,
            "message": report.messages.get(p.task.key),
        }
        for p in report.planned
    ]
