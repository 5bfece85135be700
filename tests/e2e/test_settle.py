"""A 504 whose backend finishes later: looked up over the settle window, never resent blindly.

The simulator's ``late_create`` fault answers a create 504 at once and creates the task
``late_create_s`` later.  bulkscan looks the task up several times over its settle window
(``--settle``); a task still absent at the window's end stays *unknown* for a resume.  At the
end of a run, every project is listed once more and a name found twice is reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
from collections import Counter
from typing import TYPE_CHECKING

import aiohttp
import pytest

from bulkscan.config import DispatchSettings, settle_offsets
from bulkscan.errors import UsageError
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim._assets import AssetInstance, Assets
from bulkscan.sim.server import Faults, Simulator, parse_list_shape
from tests.e2e._cli import bulkscan, finish, sim_env, start
from tests.e2e.test_run_messages import P1
from tests.e2e.test_run_messages import write_inventory as _inventory

if TYPE_CHECKING:
    from pathlib import Path


async def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    run = ("run", *args, "--yes", "--reports-dir", tmp_path / "r")
    done = await bulkscan(tmp_path, *run, env=sim_env(state=tmp_path / "state"))
    return done.code, done.out + done.err


def _names(sim: Simulator) -> Counter[str]:
    return Counter(t["name"] for t in sim.tasks)


def _states(tmp_path: Path) -> Counter[TaskState]:
    (journal_path,) = (tmp_path / "r").glob("*/journal.sqlite")
    with Journal.open(journal_path.parent, readonly=True) as journal:
        return Counter(t.state for t in journal.tasks())


async def _until_tasks(sim: Simulator, n: int) -> None:
    """Wait (bounded) until the simulator holds ``n`` tasks: its backend finished late."""
    for _ in range(200):
        if len(sim.tasks) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the simulator holds {len(sim.tasks)} task(s), not {n}")


async def test_a_late_create_is_found_within_the_settle_window_and_not_resent(
    tmp_path: Path,
) -> None:
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    faults = Faults(late_create=1.0, late_create_s=2.0)
    async with Simulator(faults=faults) as sim:
        code, said = await _run(tmp_path, str(inventory), "--endpoint", sim.url, "--settle", "4")
        names = _names(sim)
        posts = sim.stats["requests"].get("late_create", 0)
    assert code == 0, said
    assert names == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}
    assert posts == 3  # each task sent once: the 504 was looked up, never resent
    assert _states(tmp_path) == {TaskState.CREATED: 3}
    assert "duplicate" not in said


async def test_a_window_shorter_than_the_backend_leaves_tasks_unknown_for_a_resume(
    tmp_path: Path,
) -> None:
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    faults = Faults(late_create=1.0, late_create_s=5.0)
    async with Simulator(faults=faults) as sim:
        args = (str(inventory), "--endpoint", sim.url, "--settle", "1")
        code, said = await _run(tmp_path, *args)
        assert sim.tasks == []  # not there yet when the window ended
        assert _states(tmp_path) == {TaskState.UNKNOWN: 3}
        assert sim.stats["requests"].get("late_create", 0) == 3  # none sent twice
        await _until_tasks(sim, 3)
        sim.set_faults(Faults())
        again, said_again = await _run(tmp_path, *args, "--resume")
        names = _names(sim)
        created = sim.stats["requests"].get("created", 0)
    assert code != 0 and "Traceback" not in said
    assert "unknown" in said
    assert again == 0, said_again
    assert created == 0  # the resume found all three: nothing sent
    assert names == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}
    assert _states(tmp_path) == {TaskState.CREATED: 3}


async def _killed_while_settling(tmp_path: Path, sim: Simulator, *args: str) -> float:
    """``bulkscan run ARGS`` killed (SIGKILL) once each of the 3 tasks met its 504 (a late
    create), while it looks them up over its settle window; the loop time of the kill."""
    run = ("run", *args, "--yes", "--reports-dir", tmp_path / "r")
    proc = await start(tmp_path, *run, env=sim_env(state=tmp_path / "state"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60.0  # a loaded machine may take seconds to start the command
    while sim.stats["requests"].get("late_create", 0) < 3:
        assert proc.returncode is None and loop.time() < deadline, "no 3 creates within 60 s"
        await asyncio.sleep(0.01)
    proc.kill()
    killed_at = loop.time()
    await finish(proc)
    return killed_at


async def test_a_resume_with_a_shorter_settle_waits_out_the_window_its_tasks_were_sent_under(
    tmp_path: Path,
) -> None:
    """Killed while its 504s settle over 8 s; resumed with --settle 1: the resume still
    waits 8 s from each task's attempt (and says so), so the tasks the backend creates 5 s
    late are found, never sent twice."""
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    async with Simulator(faults=Faults(late_create=1.0, late_create_s=5.0)) as sim:
        first = (str(inventory), "--endpoint", sim.url, "--settle")
        killed_at = await _killed_while_settling(tmp_path, sim, *first, "8")
        sim.set_faults(Faults())  # from now on a create is created at once
        code, said = await _run(tmp_path, *first, "1", "--resume")
        # every late create has landed by now: a resent task would show twice
        await asyncio.sleep(max(0.0, killed_at + 6.0 - asyncio.get_running_loop().time()))
        names = _names(sim)
        created = sim.stats["requests"].get("created", 0)
    assert code == 0, said
    assert names == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}, said
    assert created == 0  # the resume found all three: nothing sent again
    assert _states(tmp_path) == {TaskState.CREATED: 3}
    assert "settle window of 8 s" in said and "not the 1 s of --settle" in said, said


async def test_a_task_killed_in_flight_on_its_first_send_is_waited_for_before_a_resend(
    tmp_path: Path,
) -> None:
    """Killed while its first create was in flight (journaled *sending*, no attempt yet
    recorded): the resume waits the settle window from its sending mark, so the task the
    backend creates late is found, not sent again."""
    inventory = _inventory(tmp_path / "dbs.xlsx", 1)
    held = Faults(late_create=1.0, late_answer_s=2.0, late_create_s=3.0)  # 504 after 2 s
    async with Simulator(faults=held) as sim:
        args = (str(inventory), "--endpoint", sim.url, "--settle", "8", "--no-remote-check")
        run = ("run", *args, "--yes", "--reports-dir", tmp_path / "r")
        proc = await start(tmp_path, *run, env=sim_env(state=tmp_path / "state"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60.0
        while not sim.stats["requests"].get("late_create"):  # its 504 held for 2 s
            assert proc.returncode is None and loop.time() < deadline, "no create in 60 s"
            await asyncio.sleep(0.01)
        proc.kill()
        killed_at = loop.time()
        await finish(proc)
        sim.set_faults(Faults())  # the held create still goes on: created 3 s after its 504
        assert _states(tmp_path) == {TaskState.SENDING: 1}
        code, said = await _run(tmp_path, *args, "--resume")
        await asyncio.sleep(max(0.0, killed_at + 6.0 - loop.time()))  # the late create landed
        names = _names(sim)
        created = sim.stats["requests"].get("created", 0)
    assert code == 0, said
    assert names == {"scan-0001": 1}, said
    assert created == 0  # found by the resume: never sent again
    assert _states(tmp_path) == {TaskState.CREATED: 1}


@pytest.mark.parametrize(
    ("fault", "more"),
    [  # a 500 answers the asset centre too, which the second case does not ask
        (Faults(list_http429=1.0), ()),
        (Faults(http500=1.0), ("--no-remote-check",)),
    ],
)
async def test_listings_refused_every_time_leave_every_task_pending_for_a_resume(
    tmp_path: Path, fault: Faults, more: tuple[str, ...]
) -> None:
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    async with Simulator(faults=fault) as sim:
        args = (str(inventory), "--endpoint", sim.url, "--settle", "1", "--task-budget", "2")
        args += more
        code, said = await _run(tmp_path, *args)
        assert sim.tasks == []  # nothing is sent before its project could be listed
        assert _states(tmp_path) == {TaskState.PENDING: 3}
        sim.set_faults(Faults())
        again, said_again = await _run(tmp_path, *args, "--resume")
        names = _names(sim)
    assert code == 3 and "Traceback" not in said
    assert "could not be listed" in said and "resume with: bulkscan run" in said
    assert "safe to send again" not in said, said  # a create's advice, not a listing's
    assert again == 0, said_again
    assert names == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}


async def test_lookups_throttled_after_a_504_leave_tasks_unknown_never_resent(
    tmp_path: Path,
) -> None:
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    late = Faults(late_create=1.0, late_create_s=4.0)
    async with Simulator(faults=late) as sim:
        args = (str(inventory), "--endpoint", sim.url, "--settle", "2", "--task-budget", "2")
        running = asyncio.create_task(_run(tmp_path, *args))
        # the project was listed; the first create met its 504 (a loaded machine may take
        # seconds to start the command, so the wait is bounded by time, not by a count)
        deadline = asyncio.get_running_loop().time() + 60.0
        while not (sim.stats["requests"].get("late_create") or running.done()):
            assert asyncio.get_running_loop().time() < deadline, "no create within 60 s"
            await asyncio.sleep(0.002)
        sim.set_faults(dataclasses.replace(late, list_http429=1.0))  # every lookup now: 429
        code, said = await running
        states = _states(tmp_path)
        posts = sim.stats["requests"].get("late_create", 0)
        await _until_tasks(sim, 3)
        sim.set_faults(Faults())
        again, said_again = await _run(tmp_path, *args, "--resume")
        names = _names(sim)
        created = sim.stats["requests"].get("created", 0)
    assert code == 3 and "Traceback" not in said, said
    assert states == {TaskState.UNKNOWN: 3}
    assert posts == 3  # each sent once: a lookup that could not be done is no "absent"
    assert "task(s) unknown after an answer that may or may not have created them" in said
    assert "resume with: bulkscan run" in said
    assert again == 0, said_again
    assert created == 0 and names == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}


async def test_tasks_left_unknown_exit_3_even_when_others_failed(tmp_path: Path) -> None:
    """Failed and unknown tasks together: the run is resumable, so it exits 3 (as the
    README's table says), ``status`` is ``stopped`` and the last line is the resume."""
    inventory = _inventory(tmp_path / "dbs.xlsx", 4)
    known = Assets([AssetInstance(P1, f"ins-{i:04}", f"db-{i}") for i in range(3)])
    lost = parse_list_shape("create=html-lost")  # a 200 page, no task: looked up, not found
    async with Simulator(assets=known, list_shape=lost) as sim:
        args = (str(inventory), "--endpoint", sim.url, "--no-remote-check", "--settle", "1")
        run = ("run", *args, "--yes", "--reports-dir", tmp_path / "r")
        done = await bulkscan(tmp_path, *run, env=sim_env(state=tmp_path / "state"))
        json_code, answer = await _run(tmp_path, *args, "--resume", "--json")
        assert sim.tasks == []
    assert _states(tmp_path) == {TaskState.UNKNOWN: 3, TaskState.FAILED: 1}
    assert done.code == 3, done.out + done.err
    last = done.out.strip().splitlines()[-1]
    assert last.startswith("3 task(s) not finished; resume with: bulkscan run "), done.out
    document, _ = json.JSONDecoder().raw_decode(answer[answer.index("{") :])
    assert (json_code, document["exit_code"], document["status"]) == (3, 3, "stopped"), answer
    assert document["outcomes"] == {"failed": 1, "unknown": 3}
    assert "--resume" in document["next"]["argv"]


async def test_a_name_found_twice_at_the_end_is_reported(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    body = {
        "task_name": "scan-0002",
        "data_sources": [{"db_type": "MySQL", "ins_id": "ins-0001"}],
        "schedule_type": "ONCE",
    }
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        for _ in range(2):
            put = {"project_id": P1, "body": body}
            async with session.post(f"{sim.url}/_sim/put-task", json=put) as answer:
                assert answer.status == 201, await answer.text()
        code, said = await _run(tmp_path, str(inventory), "--endpoint", sim.url, "--json")
        names = _names(sim)
        (journal_path,) = (tmp_path / "r").glob("*/journal.sqlite")
        run = ("run", inventory, "--endpoint", sim.url, "--yes", "--reports-dir", tmp_path / "r")
        text = await bulkscan(tmp_path, *run, env=sim_env(state=tmp_path / "state"))
        url = sim.url
    # not a plain success: exit 1, and the next step finds the extra copy to delete
    assert code == 1, said
    assert names == {"scan-0001": 1, "scan-0002": 2, "scan-0003": 1}
    document, _ = json.JSONDecoder().raw_decode(said[said.index("{") :])  # stderr follows
    (line,) = document["duplicates"]
    assert "'scan-0002' exists 2 times" in line and P1 in line
    assert (document["status"], document["exit_code"]) == ("incomplete", 1)
    audit = ["bulkscan", "audit", str(inventory), "--reports-dir", str(tmp_path / "r"),
             "--endpoint", url]  # fmt: skip
    assert document["next"]["argv"] == audit
    assert "exist more than once" in document["next"]["why"]
    assert "bulkscan dedupe" in document["next"]["why"]
    with Journal.open(journal_path.parent, readonly=True) as journal:
        assert journal.meta().duplicates == (line,)
    assert text.code == 1, text.out + text.err  # a second run finds the same, says the same
    assert f"duplicate: {line}" in text.out
    last = text.out.strip().splitlines()[-1]
    assert last.startswith("1 planned task name(s) exist more than once in DSC: "), text.out
    assert last.endswith(f": {shlex.join(audit)}") and "bulkscan dedupe" in last
    assert "nothing left to do" not in text.out


async def test_report_ends_as_the_run_did_and_a_resume_after_dedupe_looks_again(
    tmp_path: Path,
) -> None:
    """One rule for how a run stands: the run found a name twice (exit 1, the audit next);
    ``report`` says the same from the journal, the Summary too; once the audit and dedupe
    removed the copy, a resume with nothing to send lists again and both say done."""
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    body = {
        "task_name": "scan-0002",
        "data_sources": [{"db_type": "MySQL", "ins_id": "ins-0001"}],
        "schedule_type": "ONCE",
    }
    env = sim_env(state=tmp_path / "state")
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        for _ in range(2):
            put = {"project_id": P1, "body": body}
            async with session.post(f"{sim.url}/_sim/put-task", json=put) as answer:
                assert answer.status == 201, await answer.text()
        where = ("--endpoint", sim.url, "--reports-dir", tmp_path / "r")
        ran = await bulkscan(tmp_path, "run", inventory, *where, "--yes", "--json", env=env)
        (run_dir,) = (tmp_path / "r").iterdir()
        report = await bulkscan(tmp_path, "report", run_dir, "--json", env=env)
        text = await bulkscan(tmp_path, "report", run_dir, env=env)
        summary = _summary_sheet(run_dir / "results.xlsx")
        status_fill = _status_fill(run_dir / "results.xlsx")
        run_said, report_said = json.loads(ran.out), json.loads(report.out)
        audited = await bulkscan(tmp_path, *report_said["next"]["argv"][1:], "--json", env=env)
        audit_said = json.loads(audited.out)
        # the audit's one next step deletes the extra copy, on the service it listed
        dedupe = await bulkscan(tmp_path, *audit_said["next"]["argv"][1:], "--yes", env=env)
        names_after_dedupe = _names(sim)
        resumed = await bulkscan(tmp_path, "run", inventory, *where, "--yes", "--resume",
                                 run_dir, env=env)  # fmt: skip
        again = await bulkscan(tmp_path, "report", run_dir, "--json", env=env)
    assert (ran.code, report.code, text.code) == (1, 1, 1), report.out + report.err
    assert report_said["status"] == run_said["status"] == "incomplete"
    assert report_said["next"] == run_said["next"]  # the audit, with the run's options
    assert report_said["duplicates"] == run_said["duplicates"]
    assert report_said["audit_command"] == run_said["next"]["command"]
    assert report_said["duplicates_unchecked"] is None and report_said["held_back"] == 0
    assert (
        "--endpoint" in report_said["next"]["argv"]
        and "exist more than once" in (report_said["next"]["why"])
    )
    assert text.out.strip().splitlines()[-1].endswith(report_said["next"]["command"])
    assert str(summary["names created twice"]).endswith(report_said["next"]["command"])
    assert (summary["status"], status_fill) == ("done", "warn")  # not the green of exit 0
    assert audited.code == 0, audited.out + audited.err  # every instance is covered
    assert audit_said["duplicate_tasks"] == 1
    assert audit_said["next"]["command"] == audit_said["dedupe_command"]
    assert audit_said["next"]["argv"][:3] == ["bulkscan", "dedupe", audit_said["workbook"]]
    assert "--endpoint" in audit_said["next"]["argv"]
    assert dedupe.code == 0, dedupe.out + dedupe.err
    assert names_after_dedupe == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}
    assert resumed.code == 0, resumed.out + resumed.err
    assert resumed.out.strip().splitlines()[-1] == "nothing left to do", resumed.out
    assert (again.code, json.loads(again.out)["next"]) == (0, None), again.out
    assert "names created twice" not in _summary_sheet(run_dir / "results.xlsx")
    assert _status_fill(run_dir / "results.xlsx") == "good"


async def test_a_resume_after_names_found_twice_lists_every_project_of_the_run_again(
    tmp_path: Path,
) -> None:
    """A canary found a name twice in its project; the resume sends to another project. Its
    closing listing looks at both: the earlier finding is checked again, not forgotten
    because the resume sent elsewhere."""
    import openpyxl

    p2 = "f" * 32
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    sheet.append(["ins-0001", "MySQL", P1, "cn-north-4", "one"])
    sheet.append(["ins-0002", "MySQL", p2, "cn-north-4", "one"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "task_name", "max_sources"])
    profiles.append(["one", "ONCE", True, "scan-{project}", 1])
    inventory = tmp_path / "two.xlsx"
    book.save(inventory)
    env = sim_env(state=tmp_path / "state")
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        for project in (P1, p2):  # each project's planned name there twice already
            body = {"task_name": f"scan-{project}", "schedule_type": "ONCE",
                    "data_sources": [{"db_type": "MySQL", "ins_id": "other"}]}  # fmt: skip
            for _ in range(2):
                put = {"project_id": project, "body": body}
                async with session.post(f"{sim.url}/_sim/put-task", json=put) as answer:
                    assert answer.status == 201, await answer.text()
        where = ("--endpoint", sim.url, "--reports-dir", tmp_path / "r", "--no-remote-check")
        canary = await bulkscan(tmp_path, "run", inventory, *where, "--yes", "--limit", "1",
                                "--json", env=env)  # fmt: skip
        (run_dir,) = (tmp_path / "r").iterdir()
        resumed = await bulkscan(tmp_path, "run", inventory, *where, "--yes", "--json",
                                 "--resume", run_dir, env=env)  # fmt: skip
    first, second = json.loads(canary.out), json.loads(resumed.out)
    assert canary.code == 1 and len(first["duplicates"]) == 1, canary.out + canary.err
    assert resumed.code == 1, resumed.out + resumed.err
    assert len(second["duplicates"]) == 2, second["duplicates"]  # both projects listed
    assert first["duplicates"][0] in second["duplicates"]


def _status_fill(path: Path) -> str:
    """The tone of the Summary's status cell: good (green), warn (amber) or another."""
    import openpyxl

    colour = openpyxl.load_workbook(path)["Summary"]["B2"].fill.fgColor.rgb
    return {"C6EFCE": "good", "FFE0B2": "warn"}.get(str(colour)[-6:], str(colour))


def _summary_sheet(path: Path) -> dict[str, object]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = book["Summary"].iter_rows(max_col=2, values_only=True)
        return {row[0]: row[1] for row in rows if row[0]}
    finally:
        book.close()


async def test_a_closing_listing_that_fails_is_no_plain_success(tmp_path: Path) -> None:
    """Every task created, but the listing after them failed: names created twice were not
    looked for, so the run exits 1 and its last line is the audit that looks for them."""
    inventory = _inventory(tmp_path / "dbs.xlsx", 3)
    async with Simulator(faults=Faults(lists_answered=1)) as sim:  # the listing before only
        args = (str(inventory), "--endpoint", sim.url, "--no-remote-check", "--task-budget", "2")
        run = ("run", *args, "--yes", "--reports-dir", tmp_path / "r")
        done = await bulkscan(tmp_path, *run, env=sim_env(state=tmp_path / "state"))
        names = _names(sim)
    assert names == {"scan-0001": 1, "scan-0002": 1, "scan-0003": 1}
    assert _states(tmp_path) == {TaskState.CREATED: 3}
    assert done.code == 1, done.out + done.err
    assert "names created twice not checked: the last listing failed" in done.out
    last = done.out.strip().splitlines()[-1]
    assert last.startswith("names created twice were not looked for"), done.out
    assert f"bulkscan audit {inventory} --reports-dir " in last and "bulkscan dedupe" in last
    assert "nothing left to do" not in done.out


def test_the_settle_window_spreads_its_lookups_and_is_bounded() -> None:
    assert settle_offsets(30) == (1, 3, 7, 15, 30)
    assert settle_offsets(4) == (1, 3, 4)
    assert settle_offsets(0) == (0,)
    with pytest.raises(UsageError, match="settle window"):
        DispatchSettings(settle_s=601)
    with pytest.raises(UsageError, match="settle window"):
        DispatchSettings(settle_s=-1)
