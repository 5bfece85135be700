"""After creation, against the simulator on a real socket: status, start, undo.

* run → status --wait: every scan finished, the Scans sheet filled (and a failed scan is
  reported as failed, exit 1);
* run → undo: the simulator holds none of the run's tasks (it keeps the others), and a second
  undo sends nothing; a task changed since the run is kept without --force;
* each survives the simulator's faults; a killed start or undo resumes without acting twice.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import openpyxl
from test_hostile import PROJECT, REGION, write_inventory

from bulkscan import runner
from bulkscan.config import DispatchSettings, InputSettings
from bulkscan.dsc.client import Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.run.lifecycle import LifecycleStore, ScanState
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator

if TYPE_CHECKING:
    from pathlib import Path

QUICK = DispatchSettings(
    rate_per_s=50.0,
    concurrency=4,
    backoff_base_s=0.05,
    backoff_max_s=0.2,
    connect_timeout_s=1.0,
    read_timeout_s=2.0,
    grace_s=0.5,
    settle_s=0.3,
)
FAULTS = Faults(http500=0.1, http503=0.05, http429=0.05, reset_before=0.05, http504=0.05,
                reset_after=0.05)  # fmt: skip


OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


def _inventory(folder: Path, n: int, prefix: str = "ins") -> Path:
    headers = ["ins_id", "db_type", "project_id", "region"]
    project = PROJECT if prefix == "ins" else OTHER_PROJECT  # task names would repeat
    rows = [[f"{prefix}-{i:03}", "MySQL", project, REGION] for i in range(n)]
    return write_inventory(
        folder / f"{prefix}.xlsx", headers, rows, [["profile", "max_sources"], ["default", 1]]
    )


def _connection(sim: Simulator) -> runner.Connection:
    return runner.Connection(credentials=AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(sim.url))


async def _run(sim: Simulator, folder: Path, n: int, prefix: str = "ins") -> Path:
    await asyncio.to_thread(folder.mkdir, exist_ok=True)
    prepared = runner.prepare(_inventory(folder, n, prefix), settings=InputSettings())
    result = await runner.run(
        prepared, connection=_connection(sim), dispatch_settings=QUICK, reports_dir=folder / "r"
    )
    for _ in range(5):  # an ambiguous answer not found within the settle window: resume
        if not result.unfinished:
            break
        result = await runner.run(
            prepared, connection=_connection(sim), dispatch_settings=QUICK,
            reports_dir=folder / "r", resume=result.run_dir,
        )  # fmt: skip
    assert result.dispatch.stop_reason == "done"
    return result.run_dir


def _yes(_: Any) -> bool:
    return True


def _sent(sim: Simulator, method: str) -> int:
    return sum(n for k, n in sim.stats["requests"].items() if k in method)


async def test_status_waits_until_every_scan_finished_and_fills_the_scans_sheet(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=3, scan_s=0.6, scan_failure=0.0) as sim:
        run_dir = await _run(sim, tmp_path, 6)
        first = await runner.status(run_dir, connection=_connection(sim), dispatch_settings=QUICK)
        assert first.counts() == {"running": 6}
        assert first.exit_code == 4
        done = await runner.status(
            run_dir, connection=_connection(sim), dispatch_settings=QUICK, wait_s=30, poll_s=0.5
        )
    assert done.counts() == {"succeeded": 6}
    assert done.exit_code == 0
    book = openpyxl.load_workbook(done.report.results)
    rows = list(book["Scans"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == 6
    assert {r[5] for r in rows} == {"succeeded"}
    assert all(r[7] is not None and r[8] is not None for r in rows)  # started and ended
    assert any(str(c.value).startswith("Scans by state") for c in book["Summary"]["A"])
    assert len(book["Summary"]._charts) >= 2  # the outcomes chart and the scans chart


async def test_status_reports_failed_scans_with_their_message(tmp_path: Path) -> None:
    async with Simulator(seed=1, scan_s=0.0, scan_failure=1.0) as sim:
        run_dir = await _run(sim, tmp_path, 3)
        result = await runner.status(run_dir, connection=_connection(sim), dispatch_settings=QUICK)
    assert result.counts() == {"failed": 3}
    assert result.exit_code == 1
    assert all(s.error for s in result.scans)


async def test_undo_deletes_exactly_the_runs_tasks_and_a_second_undo_sends_nothing(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=5, faults=FAULTS) as sim:
        other = await _run(sim, tmp_path, 4, prefix="other")
        run_dir = await _run(sim, tmp_path, 12)
        outcome = await runner.undo(
            run_dir, confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert outcome.exit_code == 0, outcome.report.messages
        assert outcome.report.counts() == {"done": 12}
        names = {t["name"] for t in sim.tasks}
        assert len(names) == 4
        with Journal.open(other, readonly=True) as journal:
            assert names == {t.name for t in journal.tasks()}
        sim.set_faults(Faults())
        before = sum(sim.stats["requests"].values())
        again = await runner.undo(
            run_dir, confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert sum(sim.stats["requests"].values()) == before  # nothing sent, not even a list
        assert again.report.counts() == {"done": 12}


async def test_undo_keeps_a_task_changed_since_the_run_unless_forced(tmp_path: Path) -> None:
    async with Simulator(seed=2) as sim:
        run_dir = await _run(sim, tmp_path, 3)
        changed = sim.tasks[0]
        body = changed["body"] | {"data_sources": [{"db_type": "MySQL", "ins_id": "elsewhere"}]}
        sim._store.replace_body(int(changed["id"]), body)
        asked: list[Any] = []

        def confirm(planned: Any) -> bool:
            asked.extend(planned)
            return True

        kept = await runner.undo(
            run_dir, confirm=confirm, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert kept.exit_code == 1
        assert kept.report.counts() == {"done": 2, "kept": 1}
        assert [t["name"] for t in sim.tasks] == [changed["name"]]
        assert any(p.task.name == changed["name"] and p.why for p in asked)
        forced = await runner.undo(
            run_dir, confirm=_yes, force=True, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert forced.exit_code == 0
        assert sim.tasks == []


async def test_undo_not_confirmed_sends_no_delete(tmp_path: Path) -> None:
    async with Simulator(seed=2) as sim:
        run_dir = await _run(sim, tmp_path, 2)
        outcome = await runner.undo(
            run_dir, confirm=lambda _: False, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert not outcome.confirmed
        assert len(sim.tasks) == 2
        assert "deleted" not in sim.stats["requests"]


async def test_start_runs_each_task_once_through_faults(tmp_path: Path) -> None:
    async with Simulator(seed=9, scan_s=0.0) as sim:
        run_dir = await _run(sim, tmp_path, 8)
        sim.set_faults(FAULTS)
        outcome = await runner.operate(
            run_dir, "START", confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert outcome.exit_code == 0, outcome.report.messages
        sim.set_faults(Faults())
        result = await runner.status(run_dir, connection=_connection(sim), dispatch_settings=QUICK)
    # one run at creation (start_now) and exactly one from START, whatever the faults did
    assert {s.runs for s in result.scans} == {2}
    actions = list(openpyxl.load_workbook(result.report.results)["Actions"].values)[1:]
    assert [(a[0], a[3]) for a in actions] == [("start", "done")] * 8


async def test_a_start_killed_after_its_request_left_resumes_without_starting_twice(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=4, scan_s=0.0) as sim:
        run_dir = await _run(sim, tmp_path, 3)
        await runner.operate(
            run_dir, "START", confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        # as if killed after the first request left: its action is still marked sending
        store = LifecycleStore(run_dir)
        store._conn.execute("UPDATE actions SET state='sending'")
        store._conn.execute("UPDATE batches SET finished=NULL")
        store.close()
        resumed = await runner.operate(
            run_dir, "START", confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert resumed.exit_code == 0
        result = await runner.status(run_dir, connection=_connection(sim), dispatch_settings=QUICK)
        assert {s.runs for s in result.scans} == {2}
        again = await runner.operate(
            run_dir, "START", confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )  # a new command starts them again
        assert again.exit_code == 0
        result = await runner.status(run_dir, connection=_connection(sim), dispatch_settings=QUICK)
    assert {s.runs for s in result.scans} == {3}


async def test_disable_and_enable_change_the_tasks_state(tmp_path: Path) -> None:
    async with Simulator(seed=4) as sim:
        run_dir = await _run(sim, tmp_path, 2)
        name = sim.tasks[0]["name"]
        await runner.operate(run_dir, "DISABLE", confirm=_yes, names=[name],
                             connection=_connection(sim), dispatch_settings=QUICK)  # fmt: skip
        assert {t["name"]: t["enabled"] for t in sim.tasks}[name] is False
        assert sum(not t["enabled"] for t in sim.tasks) == 1
        await runner.operate(run_dir, "ENABLE", confirm=_yes,
                             connection=_connection(sim), dispatch_settings=QUICK)  # fmt: skip
        assert all(t["enabled"] for t in sim.tasks)


async def test_a_disable_that_failed_in_part_then_an_enable_then_disable_disables_all(
    tmp_path: Path,
) -> None:
    """An unfinished DISABLE is resumed by the next DISABLE, but not once an ENABLE followed
    it: the tasks it had done were enabled again, and resuming it sent only the tasks it had
    not done, leaving the others enabled while the command said every task was done."""
    headers = ["ins_id", "db_type", "project_id", "region"]
    rows = [[f"ins-{i}", "MySQL", (PROJECT, OTHER_PROJECT)[i % 2], REGION] for i in range(4)]
    inventory = write_inventory(
        tmp_path / "two.xlsx", headers, rows, [["profile", "max_sources"], ["default", 1]]
    )
    prepared = runner.prepare(inventory, settings=InputSettings())

    async def act(action: str) -> runner.ActionOutcome:
        return await runner.operate(run_dir, action, confirm=_yes, connection=_connection(sim),
                                    dispatch_settings=QUICK)  # fmt: skip

    async with Simulator(seed=4) as sim:
        result = await runner.run(prepared, connection=_connection(sim), dispatch_settings=QUICK,
                                  reports_dir=tmp_path / "r")  # fmt: skip
        run_dir = result.run_dir
        assert len(sim.tasks) == 4
        sim.set_dsc_disabled([OTHER_PROJECT])  # its two tasks fail, the others are done
        assert (await act("DISABLE")).exit_code == 1
        assert sorted(t["enabled"] for t in sim.tasks) == [False, False, True, True]
        sim.set_dsc_disabled([])
        assert (await act("ENABLE")).exit_code == 0
        assert all(t["enabled"] for t in sim.tasks)
        again = await act("DISABLE")
        assert again.exit_code == 0 and again.report.earlier == 0  # a new batch
        assert [t["enabled"] for t in sim.tasks] == [False] * 4  # every task, not two of them
        # a DISABLE killed or failed without an ENABLE after it is still resumed: nothing twice
        sim.set_dsc_disabled([OTHER_PROJECT])
        assert (await act("ENABLE")).exit_code == 1
        sim.set_dsc_disabled([])
        before = _sent(sim, "enable")
        resumed = await act("ENABLE")
        assert resumed.exit_code == 0 and resumed.report.earlier == 2  # said, not resent
        assert _sent(sim, "enable") - before == 2  # only the two not done
        assert all(t["enabled"] for t in sim.tasks)


def test_scan_state_words() -> None:
    from bulkscan.run.lifecycle import scan_state

    assert scan_state("RUNNING") is ScanState.RUNNING
    assert scan_state("SUCCEEDED") is ScanState.SUCCEEDED
    assert scan_state("scan_failed") is ScanState.FAILED
    assert scan_state(None) is ScanState.UNKNOWN
    assert scan_state("xyzzy") is ScanState.UNKNOWN


async def test_update_on_conflict_then_undo_puts_the_remote_task_back(tmp_path: Path) -> None:
    async with Simulator(seed=6, faults=Faults(http500=0.1, reset_after=0.1)) as sim:
        await _run(sim, tmp_path / "first", 3)
        earlier = {}
        for task in sim.tasks:  # someone else's tasks of the same names, on other instances
            sources = [{"db_type": "MySQL", "ins_id": f"theirs-{task['id']}"}]
            sim._store.replace_body(int(task["id"]), task["body"] | {"data_sources": sources})
            earlier[task["id"]] = sources
        run_dir = await _run(sim, tmp_path / "second", 3)
        with Journal.open(run_dir, readonly=True) as journal:
            assert {str(t.state) for t in journal.tasks()} == {"conflict"}
        shown: list[Any] = []

        def confirm(planned: Any) -> bool:
            shown.extend(planned)
            return True

        updated = await runner.update_conflicts(
            run_dir, confirm=confirm, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert updated.exit_code == 0, updated.report.messages
        assert all("adds ins-" in p.why and "removes theirs-" in p.why for p in shown)
        assert {t["body"]["data_sources"][0]["ins_id"] for t in sim.tasks} == {
            "ins-000", "ins-001", "ins-002"
        }  # fmt: skip
        again = await runner.update_conflicts(
            run_dir, confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert again.report.counts() == {"done": 3}  # nothing updated twice
        undone = await runner.undo(
            run_dir, confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert undone.exit_code == 0, undone.report.messages
        assert {t["id"]: t["body"]["data_sources"] for t in sim.tasks} == earlier


async def test_audit_counts_duplicate_coverage_and_dedupe_removes_the_extra_copies_only(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=8) as sim:
        await _run(sim, tmp_path / "first", 4)
        originals = {t["id"] for t in sim.tasks}
        # an outage left copies behind: the same names and data sources, created again
        for task in sim.tasks[:2]:
            sim._store.create(PROJECT, task["body"], 0.0)
        # and another task (another name) covering the first instance a second time
        other = sim.tasks[0]["body"] | {"task_name": "someone-elses-task"}
        sim._store.create(PROJECT, other, 0.0)
        extras = {t["id"] for t in sim.tasks} - originals - {sim.tasks[-1]["id"]}
        inventory = runner.read_audit_inventory(_inventory(tmp_path, 4))
        report = await runner.audit(
            inventory, connection=_connection(sim), dispatch_settings=QUICK,
            reports_dir=tmp_path / "audit",
        )  # fmt: skip
        assert {d.extra.task.id for d in report.result.duplicates} == extras
        assert {d.kept.task.id for d in report.result.duplicates} <= originals
        assert len(report.result.multiply_covered) == 2  # the copies' and the other task's
        sheet = openpyxl.load_workbook(report.workbook)["Duplicates"]
        assert {
            str(r[0]) for r in sheet.iter_rows(min_row=2, max_row=3, values_only=True)
        } == extras
        shown: list[Any] = []

        def confirm(items: Any) -> bool:
            shown.extend(items)
            return True

        result = await runner.dedupe(
            report.workbook, confirm=confirm, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert result.exit_code == 0
        assert {e[2] for e in shown} == extras
        assert {t["id"] for t in sim.tasks} == originals | {sim.tasks[-1]["id"]}
        again = await runner.dedupe(
            report.workbook, confirm=_yes, connection=_connection(sim), dispatch_settings=QUICK
        )
        assert again.deleted == ()
        assert len(again.gone) == 2
        assert sim.stats["requests"]["deleted"] == 1  # one batch, and nothing the second time
