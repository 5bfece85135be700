"""A run's next step in words, for ``run`` and ``report`` alike: which command comes next is
decided by the library (``states.Standing.next``, carried by ``ReportPaths``); here it is
only said, on the terminal's last line and as ``--json``'s ``next``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulkscan.cli._console import console
from bulkscan.cli._json import Next
from bulkscan.i18n import N_, _
from bulkscan.models import Outcome
from bulkscan.run.states import NextStep

if TYPE_CHECKING:
    from collections.abc import Callable

    from bulkscan.report.results import ReportPaths

__all__ = ["left_text", "next_step", "say_next"]

_RERUN_WHY = N_("re-run the failures after fixing them")
_DUPLICATES_WHY = N_(
    "{count} planned task name(s) exist more than once in DSC: audit to list the extra "
    "copies, then delete them with bulkscan dedupe on the audit workbook"
)
_UNCHECKED_WHY = N_(
    "names created twice were not looked for (the closing listing failed): audit once DSC's "
    "task list can be read, then delete any extra copy with bulkscan dedupe on the audit workbook"
)


def left_text(report: ReportPaths, *, say: Callable[[str], str] = str) -> str:
    """The tasks a resume works on, those ``--limit`` held back named as such; English
    unless ``say`` translates (the JSON's ``why`` stays English)."""
    left = report.tally.unfinished
    held = min(report.standing.held_back, left)
    if not left:  # every task settled, but the run stopped before its closing listing
        return say(N_("the run stopped before it looked for names created twice"))
    if held == left:
        return say(N_("{held} task(s) held back by --limit")).format(held=held)
    if held:
        return say(N_("{left} task(s) not finished ({held} held back by --limit)")).format(
            left=left, held=held
        )
    return say(N_("{left} task(s) not finished")).format(left=left)


def _why(report: ReportPaths, *, say: Callable[[str], str] = str) -> str:
    step = report.standing.next
    if step is NextStep.RESUME:
        return left_text(report, say=say)
    if step is NextStep.AUDIT:
        if report.standing.duplicates:
            return say(_DUPLICATES_WHY).format(count=report.standing.duplicates)
        return say(_UNCHECKED_WHY)
    return say(_RERUN_WHY)


def next_step(report: ReportPaths) -> Next | None:
    """The one command to run next (``ReportPaths.next_command``) and why, in English."""
    command = report.next_command
    return None if command is None else Next(command, _why(report))


def say_next(report: ReportPaths, *, resolved: int = 0) -> None:
    """The closing lines of a run's summary: the conflicts' decision (``resolved`` of them
    by ``--on-conflict update``), said even when nothing is next; then the one next step,
    or "nothing left to do"."""
    conflicts = report.counts.get(Outcome.CONFLICT, 0) - resolved
    if conflicts:  # a decision no command makes for the user
        from bulkscan.report.results import CONFLICTS_ADVICE  # loaded by the report already

        console.detail(_(CONFLICTS_ADVICE).format(count=conflicts))
    command = report.next_command
    if command is None:
        if not conflicts:
            console.detail(_("nothing left to do"))
        return
    if report.standing.next is NextStep.RESUME:
        if report.rerun_command:
            console.detail(
                _("after the resume, re-run the failures with: {command}").format(
                    command=report.rerun_command
                )
            )
        text = _("{why}; resume with: {command}")
    else:
        text = _("{why}: {command}")
    console.detail(text.format(why=_why(report, say=_), command=command))
