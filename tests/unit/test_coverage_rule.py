"""What the service already holds of a plan (``bulkscan.run.coverage.check_plan``), as a table.

The listing comes in as ``Listed`` values, the plan as ``TaskRequest`` values; the matching
rule is the one of ``bulkscan.run.remote`` (its spelling cases are in test_matching).
"""

from __future__ import annotations

from typing import Any

from bulkscan.dsc.client import RemoteTask
from bulkscan.errors import DscError
from bulkscan.models import DataSource, RowRef, TaskRequest
from bulkscan.run.coverage import COVERED_PREFIX, check_plan, covered_issue, replanned
from bulkscan.run.remote import Listed

P, R = "p1", "cn-north-4"


def _task(name: str, *ins_ids: str, first_row: int = 2) -> TaskRequest:
    sources = tuple(DataSource("MySQL", i) for i in ins_ids)
    rows = tuple(RowRef("inv.xlsx", "instances", first_row + n) for n in range(len(ins_ids)))
    return TaskRequest(f"key-{name}", name, P, R, "single", sources, rows, b"{}")


def _remote(task_id: str, name: str, *sources: str, **raw: Any) -> RemoteTask:
    found = tuple(DataSource(*s.split(":")) if ":" in s else DataSource("", s) for s in sources)
    return RemoteTask(task_id, name, found, raw={"id": task_id, **raw})


def _listed(*tasks: RemoteTask) -> dict[tuple[str, str], Listed]:
    return {(P, R): Listed(tuple(tasks))}


def test_an_instance_of_another_task_is_covered_with_that_task_named() -> None:
    plan = [_task("new", "ins-a", "ins-b", "ins-c")]
    check = check_plan(plan, _listed(_remote("7", "wave-1", "MySQL:ins-b")))
    (row,) = check.covered
    assert row.ref.row == 3 and row.source.ins_id == "ins-b" and row.by.id == "7"
    assert row.planned == "new"
    assert row.message.startswith(f"{COVERED_PREFIX} 'wave-1' (id 7): not sent")
    issue = covered_issue(row)
    assert issue.severity == "warning" and issue.ref == row.ref
    assert check.exists == () and check.conflicts == ()


def test_a_planned_name_that_exists_keeps_todays_handling() -> None:
    same = _task("same", "ins-a")
    other = _task("other", "ins-b", first_row=5)
    listing = _listed(
        _remote("1", "same", "ins-a"),  # the planned task itself: exists
        _remote("2", "other", "MySQL:ins-z", "MySQL:ins-b"),  # the name, other sources
        _remote("3", "elsewhere", "MySQL:ins-b"),  # covers ins-b, but its task conflicts
    )
    check = check_plan([same, other], listing)
    assert [(t.name, r.id) for t, r in check.exists] == [("same", "1")]
    assert [(t.name, r.id) for t, r in check.conflicts] == [("other", "2")]
    assert check.covered == ()


def test_a_disabled_task_covers_nothing() -> None:
    listing = _listed(_remote("1", "off", "ins-a", enabled=False))
    assert check_plan([_task("t", "ins-a")], listing).covered == ()
    listing = _listed(_remote("1", "off", "ins-a", enabled=False), _remote("2", "on", "ins-a"))
    (row,) = check_plan([_task("t", "ins-a")], listing).covered
    assert row.by.id == "2"


def test_another_type_of_the_same_id_is_not_coverage() -> None:
    listing = _listed(_remote("1", "pg", "PostgreSQL:ins-a"))
    assert check_plan([_task("t", "ins-a")], listing).covered == ()
    listing = _listed(_remote("1", "any", " ins-a "))  # no type given, spaces: the rule's
    assert len(check_plan([_task("t", "ins-a")], listing).covered) == 1


def test_a_group_that_could_not_be_listed_decides_nothing() -> None:
    error = DscError("listing failed", status=503)
    listing = {(P, R): Listed(error)}
    check = check_plan([_task("t", "ins-a")], listing)
    assert check.covered == () and check.exists == () and check.conflicts == ()
    assert check.unlisted == {(P, R): str(error)}
    assert check_plan([_task("t", "ins-a")], {}).covered == ()  # not listed at all


def test_a_replanned_task_is_checked_again_without_a_request() -> None:
    listing = _listed(_remote("1", "wave-1", "ins-a"), _remote("2", "rest", "ins-b"))
    first = check_plan([_task("both", "ins-a", "ins-b")], listing, requests=4)
    assert len(first.covered) == 2
    again = replanned(first, [_task("rest", "ins-b")])
    assert [t.name for t, _ in again.exists] == ["rest"]
    assert again.covered == first.covered and again.requests == 4
    assert first.covered_tasks == frozenset({"both"})
