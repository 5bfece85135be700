"""How a run ended (``RunResult.status``), decided by the library from its task counts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bulkscan.cli._common import exit_code
from bulkscan.run.dispatch import DispatchResult
from bulkscan.run.states import TaskState
from bulkscan.runner import RunResult, Status

if TYPE_CHECKING:
    from bulkscan.events import StopReason


def _result(stop: StopReason = "done", held_back: int = 0, **counts: int) -> RunResult:
    tally = {state: counts.get(state.name.lower(), 0) for state in TaskState}
    dispatched = DispatchResult(tally, 3, stop, "", 5.0, held_back)
    return RunResult(Path("run"), dispatched, resumed=False)


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
    ],
)
def test_run_status(result: RunResult, status: Status, failed: int, unfinished: int) -> None:
    assert (result.status, result.failed, result.unfinished) == (status, failed, unfinished)


def test_every_status_has_its_exit_code() -> None:
    assert [exit_code(s) for s in Status] == [0, 1, 2, 3]
