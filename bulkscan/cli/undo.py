"""``bulkscan undo RUN_DIR``: delete exactly the tasks a run created, after asking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._lifecycle import act, add_run_dir_options, ask
from bulkscan.i18n import _

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from bulkscan.run.lifecycle import PlannedAction

__all__ = ["register"]

DESCRIPTION = """\
Delete the tasks that RUN_DIR's run created (never those it found already there), after
showing the list and asking. Each project is listed first; the tasks are deleted in batches,
then listed again to verify, and each is recorded in RUN_DIR/lifecycle.sqlite, so a killed
undo resumes and a second undo sends nothing. A task whose data sources differ from what the
run sent was changed since: it is kept and named, unless --force. Exit 0: every task the run
created is gone; 1: some were kept or could not be deleted; 2: usage error, or no terminal to
ask on and no --yes."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "undo", help="delete the tasks a run created (asks first)", description=DESCRIPTION
    )
    add_run_dir_options(parser)
    parser.add_argument(
        "--force", action="store_true", help="delete tasks changed since the run as well"
    )
    parser.set_defaults(func=_run)


def _lines(planned: Sequence[PlannedAction]) -> list[str]:
    lines = [f"delete {p.task.name} (id {p.task_id})" for p in planned if p.state is None]
    lines += [f"keep {p.task.name}: {p.why}" for p in planned if str(p.state) == "kept"]
    return lines


def _run(args: argparse.Namespace) -> int:
    def confirm(planned: Sequence[PlannedAction]) -> bool:
        count = sum(1 for p in planned if p.state is None)
        about = f"{args.run_dir}: {count} task(s) to delete"
        question = _("Delete {count} task(s)?").format(count=count)
        return ask(args, question, _lines(planned), about=about)

    return act(args, runner.undo, confirm, force=args.force)
