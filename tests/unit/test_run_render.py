"""The run's terminal renderer: a line about an unreachable service only after real silence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bulkscan.cli._next import next_step, say_next
from bulkscan.cli.run import _Renderer
from bulkscan.events import Attempt, AttemptFinished, Progress, local_now
from bulkscan.report.results import ReportPaths
from bulkscan.run.states import Standing, TaskState, tally

if TYPE_CHECKING:
    import pytest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _attempt(status: int | None, verdict: str) -> AttemptFinished:
    attempt = Attempt(local_now(), "k", 1, "POST", "/v1/p/x", status, None, None, 0.1, verdict)
    return AttemptFinished(attempt, "task")


def test_no_outage_line_while_other_requests_are_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    render = _Renderer(enabled=False, clock=clock)
    for _ in range(100):  # 100 s of requests, a third of them dropped
        clock.now += 1
        render(_attempt(200, "created"))
        render(_attempt(None, "transient"))
        render(_attempt(None, "transient"))
    assert capsys.readouterr().err == ""


def test_one_line_after_a_silence_and_not_again_within_30_s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    render = _Renderer(enabled=False, clock=clock)
    render(_attempt(None, "transient"))
    assert capsys.readouterr().err == ""  # one failure at the start is no outage
    for _ in range(25):
        clock.now += 1
        render(_attempt(None, "transient"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("no answer from DSC for 10s")
    clock.now += 30
    render(_attempt(None, "transient"))
    assert capsys.readouterr().err.startswith("no answer from DSC for 55s")


def _progress(settling: int) -> Progress:
    return Progress(0, 3, 0, 0, settling, 0, 5.0, None, settling=settling)


def test_one_line_says_how_many_tasks_are_being_settled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    render = _Renderer(enabled=False, settle_s=30, clock=clock)
    for n in (1, 2, 3, 2, 1):  # three join at once, then settle one by one
        render(_progress(n))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "1 task(s) unknown after an answer that may or may not have created them (a 504, a "
        "timeout, a 200 without a task id): looking them up for up to 30 s before any resend"
    ]
    clock.now += 6
    render(_progress(3))  # more joined a while later: said again with the new count
    assert capsys.readouterr().err.startswith("3 task(s) unknown after an answer that may")
    render(_progress(0))
    render(_progress(2))  # a new ambiguous answer after all were settled
    assert capsys.readouterr().err.startswith("2 task(s) unknown")


def _paths(standing: Standing, **fields: object) -> ReportPaths:
    return ReportPaths(
        results=Path("run/results.xlsx"),
        retry=None,
        tally=standing.tally,
        standing=standing,
        resume_command="bulkscan run in.xlsx --resume run",
        audit_command="bulkscan audit in.xlsx",
        **fields,  # type: ignore[arg-type]
    )


def test_the_last_line_words_the_one_next_step(capsys: pytest.CaptureFixture[str]) -> None:
    """``run`` and ``report`` end with the step ``Standing.next`` decided, in words."""
    cases = [
        (Standing(tally({TaskState.CREATED: 1, TaskState.PENDING: 4}), held_back=4),
         "4 task(s) held back by --limit; resume with: bulkscan run in.xlsx --resume run"),
        (Standing(tally({TaskState.CREATED: 2}), stop_reason="interrupted"),
         "the run stopped before it looked for names created twice; resume with: "
         "bulkscan run in.xlsx --resume run"),
        (Standing(tally({TaskState.CREATED: 2}), duplicates=1),
         "1 planned task name(s) exist more than once in DSC: audit to list the extra copies, "
         "then delete them with bulkscan dedupe on the audit workbook: bulkscan audit in.xlsx"),
        (Standing(tally({TaskState.CREATED: 2})), "nothing left to do"),
    ]  # fmt: skip
    for standing, last in cases:
        say_next(_paths(standing))
        out = capsys.readouterr().out.strip().splitlines()
        assert " ".join(out) == last, out
        step = next_step(_paths(standing))
        assert (step.command if step else "nothing left to do") in last
