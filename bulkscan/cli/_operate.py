"""``bulkscan start|enable|disable RUN_DIR [--task NAME...]``: one operate action per task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._lifecycle import act, add_run_dir_options, ask
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["register_action"]

_ABOUT = {  # what the question is about, whole, so that it translates as one sentence
    "START": N_("{run_dir}: run now {count} task(s)"),
    "ENABLE": N_("{run_dir}: enable the schedule of {count} task(s)"),
    "DISABLE": N_("{run_dir}: disable the schedule of {count} task(s)"),
}


_QUESTION = {
    "START": N_("Start {count} task(s)?"),
    "ENABLE": N_("Enable {count} task(s)?"),
    "DISABLE": N_("Disable {count} task(s)?"),
}
_HELP = {  # each command's one-line help, whole, so that it translates as one sentence
    "START": N_("run now the tasks a run created or found (asks first)"),
    "ENABLE": N_("enable the schedule of the tasks a run created or found (asks first)"),
    "DISABLE": N_("disable the schedule of the tasks a run created or found (asks first)"),
}


def _lead(action: str) -> str:
    """The one-line help as a description's first words: "Run now the tasks ..."."""
    text = _(_HELP[action]).removesuffix(_(" (asks first)"))
    return text[:1].upper() + text[1:]


def register_action(sub: Any, action: str) -> None:
    name = action.lower()
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=_HELP[action],
        description=_(
            "{what} (or only those named by --task): one request per task under the rate "
            "limit, each recorded in RUN_DIR/lifecycle.sqlite, so a killed `{command}` resumes "
            "without acting twice. A task that undo deleted is not sent: it is named as such. "
            "Exit 0: done for every task; 1: some failed or are no longer listed; 2: usage "
            "error, or no terminal to ask on and no --yes."
        ).format(what=_lead(action), command=name),
    )
    add_run_dir_options(parser)
    parser.add_argument(
        "--task", action="append", default=[], metavar="NAME", help="only this task (repeatable)"
    )
    parser.set_defaults(func=lambda args: _run(args, action))


def _run(args: argparse.Namespace, action: str) -> int:
    def confirm(names: Sequence[str]) -> bool:
        about = _(_ABOUT[action]).format(run_dir=args.run_dir, count=len(names))
        return ask(args, _(_QUESTION[action]).format(count=len(names)), list(names), about=about)

    return act(args, runner.operate, confirm, action=action, names=args.task)
