"""What the service already holds of a plan, from its task listing, before anything is sent.

For each planned task (by the one matching rule of ``bulkscan.run.remote``):

* its name is listed with the same data sources: it **exists** (a run records it, sends
  nothing); listed with other data sources: a **conflict** (a run does not send it).
* otherwise, each of its instances that an enabled task of another name already names is
  **covered**: ``run`` leaves that row out (the Rows sheet says by which task) unless
  ``--allow-duplicate-coverage``.

A task partly covered is planned again from its remaining rows, so it gets the name of what
is really sent: with the default name pattern, a digest of the remaining sources.  Sending
the remaining sources under the name planned for all of them would break the name rule: the
next run of the same spreadsheet would find that name with other data sources (a conflict)
instead of finding its own task (exists).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkscan.errors import DscError
from bulkscan.models import Issue
from bulkscan.run.remote import listing_error, same_sources, source_matches, task_enabled

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from bulkscan.dsc.client import RemoteTask
    from bulkscan.models import DataSource, RowRef, TaskRequest
    from bulkscan.run.remote import Listed

__all__ = [
    "COVERED_PREFIX",
    "CoveredRow",
    "RemoteCheck",
    "check_plan",
    "covered_issue",
    "replanned",
]

_Group = tuple[str, str]  # (project_id, region)
_Index = dict[str, list["RemoteTask"]]  # ins_id → enabled tasks naming it

COVERED_PREFIX = "already covered by task"  # how a covered row's message begins


@dataclass(frozen=True, slots=True)
class CoveredRow:
    """An input row whose instance another existing task already scans."""

    ref: RowRef
    source: DataSource
    planned: str  # the name the row's task was planned under
    by: RemoteTask

    @property
    def message(self) -> str:
        return (
            f"{COVERED_PREFIX} '{self.by.name}' (id {self.by.id}): not sent; "
            "--allow-duplicate-coverage sends it anyway"
        )


@dataclass(frozen=True, slots=True)
class RemoteCheck:
    """A plan against the service's task listing (read only): nothing was sent."""

    listed: Mapping[_Group, Listed]
    exists: tuple[tuple[TaskRequest, RemoteTask], ...]
    conflicts: tuple[tuple[TaskRequest, RemoteTask], ...]
    covered: tuple[CoveredRow, ...]
    requests: int
    new: int  # planned tasks in a listed group, neither existing nor conflicting
    # planned tasks of a group not listed: a run lists it again, and sends none to a group
    # it cannot list
    waiting: int

    @property
    def unlisted(self) -> dict[_Group, str]:
        """Each (project, region) whose tasks could not be listed → why."""
        return {
            g: listing_error(v.answer)
            for g, v in self.listed.items()
            if isinstance(v.answer, DscError)
        }

    @property
    def remote_tasks(self) -> int:
        return sum(len(v.tasks) for v in self.listed.values())

    @property
    def covered_tasks(self) -> frozenset[str]:
        """The planned tasks (by name) with at least one covered row."""
        return frozenset(c.planned for c in self.covered)


def _ok(listed: Listed) -> bool:
    return isinstance(listed.answer, tuple)


def check_plan(
    tasks: Sequence[TaskRequest], listed: Mapping[_Group, Listed], *, requests: int = 0
) -> RemoteCheck:
    """Pure: which planned tasks exist or conflict, which rows another task covers.

    A group whose listing failed (or was not listed) decides nothing: its tasks are left to
    the run's own reconcile.
    """
    exists: list[tuple[TaskRequest, RemoteTask]] = []
    conflicts: list[tuple[TaskRequest, RemoteTask]] = []
    covered: list[CoveredRow] = []
    indexes: dict[_Group, _Index] = {}
    new = waiting = 0
    for task in tasks:
        group = (task.project_id, task.region)
        answer = listed.get(group)
        if answer is None or not _ok(answer):
            waiting += 1
            continue
        named = [r for r in answer.tasks if r.name == task.name]
        if named:
            same = [r for r in named if same_sources(task.sources, r.data_sources)]
            (exists if same else conflicts).append((task, (same or named)[0]))
            continue
        new += 1
        index = indexes.get(group)
        if index is None:
            index = indexes[group] = _index(answer.tasks)
        covered.extend(_covered_rows(task, index))
    return RemoteCheck(
        listed, tuple(exists), tuple(conflicts), tuple(covered), requests, new, waiting
    )


def replanned(check: RemoteCheck, tasks: Sequence[TaskRequest]) -> RemoteCheck:
    """``check`` for ``tasks``, the plan once the covered rows are left out (no request):
    which of them exist or conflict; the covered rows stay those of the first check."""
    again = check_plan(tasks, check.listed, requests=check.requests)
    return dataclasses.replace(again, covered=check.covered)


def _index(remote: Iterable[RemoteTask]) -> _Index:
    """Enabled tasks by the ``ins_id`` of each data source (the rule needs equal ids)."""
    index: _Index = defaultdict(list)
    for task in remote:
        if not task_enabled(task):
            continue
        for source in task.data_sources:
            index[source.ins_id.strip()].append(task)
    return index


def _covered_rows(task: TaskRequest, index: Mapping[str, list[RemoteTask]]) -> list[CoveredRow]:
    rows = []
    for source, ref in zip(task.sources, task.rows, strict=True):
        by = _covering(source, index.get(source.ins_id.strip(), ()))
        if by is not None:
            rows.append(CoveredRow(ref, source, task.name, by))
    return rows


def _covering(source: DataSource, candidates: Iterable[RemoteTask]) -> RemoteTask | None:
    for remote in candidates:
        if any(source_matches(source, theirs) for theirs in remote.data_sources):
            return remote
    return None


def covered_issue(row: CoveredRow) -> Issue:
    """The row's note for the journal and the Rows sheet (a warning: nothing is wrong)."""
    return Issue("warning", row.message, ref=row.ref)
