"""How a run ended (``RunResult.status``) and what comes next, decided by the library from
its task counts: one rule (``states.Standing``) that ``run`` and ``report`` both end with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bulkscan.cli._common import exit_code
from bulkscan.run.dispatch import DispatchResult
from bulkscan.run.states import NextStep, Standing, Tally, TaskState, tally, tally_of
from bulkscan.runner import RunResult, Status

if TYPE_CHECKING:
    from bulkscan.events import StopReason


def _result(
    stop: StopReason = "done",
    held_back: int = 0,
    *,
    duplicates: tuple[str, ...] = (),
    unchecked: str = "",
    **counts: int,
) -> RunResult:
    tally = {state: counts.get(state.name.lower(), 0) for state in TaskState}
    dispatched = DispatchResult(
        tally, 3, stop, "", 5.0, held_back, duplicates=duplicates, unchecked=unchecked
    )
    return RunResult(Path("run"), dispatched, resumed=False)


_TWICE = ("task 'a' exists 2 times in project p (ids 1, 2)",)


@pytest.mark.parametrize(
    ("result", "status", "failed", "unfinished"),
    [
        (_result(created=2, exists=1, accepted=1), Status.OK, 0, 0),
        (_result(created=1, failed=1), Status.INCOMPLETE, 1, 0),
        (_result(created=1, conflict=1), Status.INCOMPLETE, 1, 0),
        (_result(created=1, gave_up=1), Status.INCOMPLETE, 1, 0),
        (_result("interrupted", created=1), Status.STOPPED, 0, 0),
        (_result("fatal", created=1, failed=1), Status.STOPPED, 1, 0),
        (_result(created=1, pending=2, held_back=2), Status.OK, 0, 2),  # a canary (--limit)
        (_result(created=1, pending=2, held_back=1), Status.STOPPED, 0, 2),
        (_result(created=1, unknown=1), Status.STOPPED, 0, 1),
        # left unknown or pending is resumable (3) whatever else failed: a script that
        # resumes on 3 must see it
        (_result(failed=5, unknown=15), Status.STOPPED, 5, 15),
        (_result(created=1, gave_up=1, pending=2, held_back=1), Status.STOPPED, 1, 2),
        (_result(created=1, conflict=1, pending=2, held_back=2), Status.INCOMPLETE, 1, 2),
        # the closing listing found a name twice, or could not look: no plain success
        (_result(duplicates=_TWICE, created=2), Status.INCOMPLETE, 0, 0),
        (_result(unchecked="project p: HTTP 503", created=2), Status.INCOMPLETE, 0, 0),
        (_result(duplicates=_TWICE, created=1, unknown=1), Status.STOPPED, 0, 1),
    ],
)
def test_run_status(result: RunResult, status: Status, failed: int, unfinished: int) -> None:
    assert (result.status, result.failed, result.unfinished) == (status, failed, unfinished)


def test_every_status_has_its_exit_code() -> None:
    assert [exit_code(s) for s in Status] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, Tally()),
        ({"created": 2, "accepted": 1, "exists": 3}, Tally(6, 6, 0, 0, 0)),
        ({"failed": 1, "gave_up": 2, "conflict": 3}, Tally(6, 0, 6, 0, 0)),
        ({"pending": 2, "sending": 1, "unknown": 1}, Tally(4, 0, 0, 2, 2)),
    ],
)
def test_the_one_tally_counts_each_state_once(counts: dict[str, int], expected: Tally) -> None:
    found = tally({TaskState(s): n for s, n in counts.items()})
    assert found == expected
    assert found.settled + found.unfinished == found.total
    assert tally_of(TaskState(s) for s, n in counts.items() for _ in range(n)) == expected


@pytest.mark.parametrize(("pending", "held_back"), [(2, 2), (2, 0), (0, 0)])
def test_a_run_result_counts_with_the_tally(pending: int, held_back: int) -> None:
    result = _result(created=1, failed=1, pending=pending, held_back=held_back)
    counted = result.dispatch.tally
    assert (result.failed, result.unfinished) == (counted.errors, counted.unfinished)
    assert result.dispatch.succeeded == counted.succeeded == 1


def _standing(retryable: int = 0, *, running: bool = False, **counts: int) -> Standing:
    tallied = tally({state: counts.get(state.name.lower(), 0) for state in TaskState})
    return Standing(
        tallied,
        held_back=counts.get("held_back", 0),
        duplicates=counts.get("duplicates", 0),
        unchecked=bool(counts.get("unchecked")),
        retryable=retryable,
        running=running,
    )


@pytest.mark.parametrize(
    ("standing", "status", "step"),
    [
        (_standing(created=3), Status.OK, None),
        (_standing(1, created=2, failed=1), Status.INCOMPLETE, NextStep.RERUN),
        (_standing(created=2, conflict=1), Status.INCOMPLETE, None),  # a person decides
        (_standing(created=1, pending=2, held_back=2), Status.OK, NextStep.RESUME),  # canary
        (_standing(1, failed=1, unknown=1), Status.STOPPED, NextStep.RESUME),
        # a name may exist twice: the audit before the re-run (which would add copies)
        (_standing(1, failed=1, created=1, duplicates=1), Status.INCOMPLETE, NextStep.AUDIT),
        (_standing(created=2, unchecked=1), Status.INCOMPLETE, NextStep.AUDIT),
        (_standing(created=1, pending=1, duplicates=1), Status.STOPPED, NextStep.RESUME),
        # still going on: nothing to do but wait, whatever the counts say
        (_standing(1, running=True, failed=1, pending=3), Status.INCOMPLETE, None),
    ],
)
def test_how_a_run_stands_and_its_next_step(
    standing: Standing, status: Status, step: NextStep | None
) -> None:
    assert (standing.status, standing.next) == (status, step)


@pytest.mark.parametrize("stop", [None, "fatal", "interrupted"])
def test_a_run_that_did_not_end_done_is_stopped_and_resumed(stop: str | None) -> None:
    """Exit 3 always names the resume: with every task settled, it makes the closing listing
    for names created twice that the stopped session never made."""
    standing = Standing(tally({TaskState.CREATED: 2}), stop_reason=stop)
    assert (standing.status, standing.next) == (Status.STOPPED, NextStep.RESUME)


@pytest.mark.parametrize(
    ("result", "step"),
    [
        (_result(created=1, gave_up=1), NextStep.RERUN),
        (_result(created=1, failed=1), NextStep.RERUN),
        (_result(created=1, conflict=1), None),  # not in retry.xlsx: a person decides
        (_result(created=1, failed=1, duplicates=_TWICE), NextStep.AUDIT),
        (_result(created=1, pending=2, held_back=2), NextStep.RESUME),
    ],
)
def test_a_run_result_stands_as_its_report_will(result: RunResult, step: NextStep | None) -> None:
    """The session's own ``standing`` counts retry.xlsx's tasks as the report does."""
    assert result.standing.next == step
