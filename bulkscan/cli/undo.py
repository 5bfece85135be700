"""``bulkscan undo RUN_DIR``: delete exactly the tasks a run created, and put back those it
updated, after asking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._lifecycle import act, add_run_dir_options, ask
from bulkscan.i18n import N_, _
from bulkscan.run.states import ActionState

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from bulkscan.run.lifecycle import PlannedAction

__all__ = ["register"]

DESCRIPTION = N_(
    "Undo what RUN_DIR's run changed in DSC, after showing the list and asking: delete the "
    "tasks it created (never those it found already there), and put back the data sources "
    "of the tasks that `run --on-conflict update` changed. Each project is listed first; "
    "the tasks are deleted in batches, then listed again to verify, and each action is "
    "recorded in RUN_DIR/lifecycle.sqlite, so a killed undo resumes and a second undo sends "
    "nothing. A task whose data sources differ from what the run (or its update) sent was "
    "changed since: it is kept and named, unless --force. Exit 0: every task the run "
    "created is gone and every task it updated is back; 1: some were kept or could not be "
    "deleted or put back; 2: usage error, or no terminal to ask on and no --yes."
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "undo",
        help="delete the tasks a run created, put back those it updated (asks first)",
        description=DESCRIPTION,
    )
    add_run_dir_options(parser)
    parser.add_argument(
        "--force", action="store_true", help="undo tasks changed since the run as well"
    )
    parser.set_defaults(func=_run)


def _lines(planned: Sequence[PlannedAction]) -> list[str]:
    """What undo will do to each task, in the plan's order; then the tasks it keeps."""
    from bulkscan.run.lifecycle import RESTORE  # loaded by the plan itself

    lines = []
    for p in planned:
        if p.state is not None:
            continue
        if p.change == RESTORE:
            line = _("restore {task} (id {id}) as it was before the update: {change}")
        else:
            line = _("delete {task} (id {id})")
        lines.append(line.format(task=p.task.name, id=p.task_id, change=p.why))
    lines += [
        _("keep {task}: {why}").format(task=p.task.name, why=p.why)
        for p in planned
        if p.state is ActionState.KEPT
    ]
    return lines


def _about(run_dir: str, deleting: int, restoring: int) -> tuple[str, str]:
    """What the question is about, and the question: the tasks to delete, those to restore."""
    if deleting and restoring:
        about = _(
            "{run_dir}: {deleting} task(s) the run created, to delete; {restoring} task(s) "
            "it updated, to restore as they were"
        ).format(run_dir=run_dir, deleting=deleting, restoring=restoring)
        question = _("Delete {deleting} task(s) and restore {restoring} task(s)?").format(
            deleting=deleting, restoring=restoring
        )
        return about, question
    if restoring:
        about = _("{run_dir}: {count} task(s) the run updated, to restore as they were")
        question = _("Restore {count} task(s)?")
    else:
        about = _("{run_dir}: {count} task(s) to delete")
        question = _("Delete {count} task(s)?")
    count = restoring or deleting
    return about.format(run_dir=run_dir, count=count), question.format(count=count)


def _run(args: argparse.Namespace) -> int:
    def confirm(planned: Sequence[PlannedAction]) -> bool:
        from bulkscan.run.lifecycle import RESTORE  # loaded by the plan itself

        sending = [p for p in planned if p.state is None]
        restoring = sum(1 for p in sending if p.change == RESTORE)
        about, question = _about(args.run_dir, len(sending) - restoring, restoring)
        return ask(args, question, _lines(planned), about=about)

    return act(args, runner.undo, confirm, force=args.force)
