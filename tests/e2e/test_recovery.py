"""One way to recover: an instance another task already scans is not put in a second one.

Driven as a person drives the CLI (``python -m bulkscan`` in a subprocess, a pipe for
stdin) against the project's simulator on 127.0.0.1; what was sent is read from the
simulator, and the requests it answered through its control API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl

from bulkscan.sim.server import Faults, Simulator, parse_list_shape
from tests.e2e._cli import finish, sim_env, start
from tests.e2e.test_operator import _piped
from tests.e2e.test_run_e2e import P1, REGION, rows_sheet


def _wave(path: Path, ins_ids: list[str], *, per_task: int, task: str | None = None) -> Path:
    """An inventory whose profile puts ``per_task`` instances in each task (or all in
    ``task``)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile", "task"])
    for ins_id in ins_ids:
        sheet.append([ins_id, "MySQL", P1, REGION, "grouped", task])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "max_sources"])
    profiles.append(["grouped", "ONCE", True, per_task])
    book.save(path)
    return path


def _coverage(sim: Simulator) -> Counter[str]:
    """How many tasks name each instance."""
    return Counter(s["ins_id"] for t in sim.tasks for s in t["body"]["data_sources"])


async def _stats(sim: Simulator) -> dict[str, Any]:
    """The requests the simulator answered, by outcome, read through its control API."""
    async with aiohttp.ClientSession() as session, session.get(f"{sim.url}/_sim/stats") as got:
        stats: dict[str, Any] = await got.json()
    return stats


WAVE1 = ["ins-a", "ins-b", "ins-c", "ins-d"]
WAVE2 = ["ins-b", "ins-c", "ins-d", "ins-e", "ins-f"]  # repeats three of wave 1


async def test_wave_two_skips_the_instances_wave_one_covers(tmp_path: Path) -> None:
    wave1 = _wave(tmp_path / "wave1.xlsx", WAVE1, per_task=2)
    wave2 = _wave(tmp_path / "wave2.xlsx", WAVE2, per_task=5)
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        first = await _piped(tmp_path, b"", "run", wave1, "--endpoint", sim.url,
                             "--reports-dir", reports, "--yes")  # fmt: skip
        assert first.code == 0, first.err
        assert len(sim.tasks) == 2
        run = ["run", wave2, "--endpoint", sim.url, "--reports-dir", reports]
        done = await _piped(tmp_path, b"", *run, "--yes", "--json")
        assert done.code == 0, done.err
        summary = json.loads(done.out)
        assert summary["rows"]["covered"] == 3
        assert summary["outcomes"] == {"created": 1}
        # nothing is covered twice; the new task holds only what no task scanned
        assert set(_coverage(sim).values()) == {1}
        assert len(sim.tasks) == 3
        (new,) = [t for t in sim.tasks[2:]]
        assert [s["ins_id"] for s in new["body"]["data_sources"]] == ["ins-e", "ins-f"]
        # the row messages and the Rows sheet say so
        for ins_id in ("ins-b", "ins-c", "ins-d"):
            assert f"{ins_id}: already covered by task 'bulkscan-grouped-" in done.err
        rows = {r["ins_id"]: r for r in rows_sheet(Path(summary["results"]))}
        for ins_id in ("ins-b", "ins-c", "ins-d"):
            assert rows[ins_id]["row status"] == "covered"
            assert rows[ins_id]["outcome"] == "skipped"
            assert str(rows[ins_id]["message"]).startswith("already covered by task 'bulkscan-")
        assert rows["ins-e"]["outcome"] == "created"
        assert rows["ins-e"]["task name"] == new["name"]
        # the same wave again sends nothing: its new task now covers ins-e and ins-f too
        text = await _piped(tmp_path, b"", *run, "--yes")
        assert text.code == 0, text.err
        assert len(sim.tasks) == 3
        assert "0 task(s) for 0 instance(s) (5 row(s) already covered by other tasks left " in (
            text.err
        )
        assert f"ins-e: already covered by task '{new['name']}'" in text.err
        said = "5 row(s) already covered by other tasks: not sent; 1 planned task(s) left out,"
        assert said in text.err and "planned again" not in text.err
        assert "covered         5 row(s) not sent: already in other tasks" in text.out


async def test_allow_duplicate_coverage_sends_the_covered_rows(tmp_path: Path) -> None:
    wave1 = _wave(tmp_path / "wave1.xlsx", WAVE1, per_task=2)
    wave2 = _wave(tmp_path / "wave2.xlsx", WAVE2, per_task=5)
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        for wave, extra in ((wave1, []), (wave2, ["--allow-duplicate-coverage"])):
            done = await _piped(tmp_path, b"", "run", wave, "--endpoint", sim.url,
                                "--reports-dir", reports, "--yes", "--json", *extra)  # fmt: skip
            assert done.code == 0, done.err
        assert json.loads(done.out)["rows"]["covered"] == 0
        assert "3 row(s) already covered by other tasks are sent anyway" in done.err
        assert len(sim.tasks) == 3
        (last,) = sim.tasks[2:]
        assert [s["ins_id"] for s in last["body"]["data_sources"]] == WAVE2
        assert _coverage(sim)["ins-b"] == 2


async def test_a_disabled_task_covers_nothing(tmp_path: Path) -> None:
    """As the audit says: an instance named only by a disabled task is not covered."""
    wave1 = _wave(tmp_path / "wave1.xlsx", ["ins-a"], per_task=1)
    wave2 = _wave(tmp_path / "wave2.xlsx", ["ins-a", "ins-b"], per_task=2)
    reports = tmp_path / "r"
    # the list answer carries ``enabled`` only in this variant (undocumented fields)
    async with Simulator(projects=[P1], list_shape=parse_list_shape("extras=yes")) as sim:
        first = await _piped(tmp_path, b"", "run", wave1, "--endpoint", sim.url,
                             "--reports-dir", reports, "--yes")  # fmt: skip
        assert first.code == 0, first.err
        (task,) = sim.tasks
        async with aiohttp.ClientSession() as session:
            url = f"{sim.url}/_sim/tasks/{task['id']}"
            async with session.patch(url, json={"enabled": False}) as patched:
                assert patched.status == 200, await patched.text()
        done = await _piped(tmp_path, b"", "run", wave2, "--endpoint", sim.url,
                            "--reports-dir", reports, "--yes", "--json")  # fmt: skip
        assert done.code == 0, done.err
        assert json.loads(done.out)["rows"]["covered"] == 0
        assert [s["ins_id"] for s in sim.tasks[1]["body"]["data_sources"]] == ["ins-a", "ins-b"]


async def test_plan_check_remote_lists_and_sends_nothing(tmp_path: Path) -> None:
    wave1 = _wave(tmp_path / "wave1.xlsx", WAVE1, per_task=2)
    wave2 = _wave(tmp_path / "wave2.xlsx", [*WAVE1[:2], "ins-e", "ins-f"], per_task=2)
    named = _wave(tmp_path / "named.xlsx", ["ins-y"], per_task=1, task="team-x")
    other = _wave(tmp_path / "other.xlsx", ["ins-x"], per_task=1, task="team-x")
    async with Simulator(projects=[P1]) as sim:
        first = await _piped(tmp_path, b"", "run", wave1, "--endpoint", sim.url,
                             "--reports-dir", tmp_path / "r", "--yes")  # fmt: skip
        assert first.code == 0, first.err
        made = await _piped(tmp_path, b"", "run", named, "--endpoint", sim.url,
                            "--reports-dir", tmp_path / "r", "--yes")  # fmt: skip
        assert made.code == 0, made.err
        before = (await _stats(sim))["requests"]
        # wave 2: ins-a + ins-b is wave 1's first task (same name), ins-e + ins-f are new
        done = await _piped(tmp_path, b"", "plan", wave2, "--endpoint", sim.url,
                            "--check-remote", "--json")  # fmt: skip
        assert done.code == 0, done.err
        remote = json.loads(done.out)["remote"]
        assert [e["name"] for e in remote["exists"]] == [sim.tasks[0]["name"]]
        assert remote["conflicts"] == [] and remote["covered"] == []
        # of the 2 planned tasks one exists: a run creates 1, as the text says
        assert remote["would_create"] == 1 and remote["unlisted_tasks"] == 0
        assert remote["remote_tasks"] == 3
        said = await _piped(tmp_path, b"", "plan", wave2, "--endpoint", sim.url,
                            "--check-remote")  # fmt: skip
        assert "; a run would create 1 task(s) now\n" in said.out, said.out
        # wave 1 in other pairs: every row is already covered by another task
        shuffled = _wave(tmp_path / "shuffled.xlsx", ["ins-a", "ins-c", "ins-b"], per_task=3)
        text = await _piped(tmp_path, b"", "plan", shuffled, "--endpoint", sim.url,
                            "--check-remote")  # fmt: skip
        assert text.code == 0, text.err
        assert text.out.count("  covered   ") == 3
        assert "a run would create 0 task(s) now" in text.out
        # a planned name held by a task with other data sources is a conflict
        clashed = await _piped(tmp_path, b"", "plan", other, "--endpoint", sim.url,
                               "--check-remote", "--json")  # fmt: skip
        assert clashed.code == 0, clashed.err
        assert [c["name"] for c in json.loads(clashed.out)["remote"]["conflicts"]] == ["team-x"]
        after = (await _stats(sim))["requests"]
    sent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert sent.pop("listed") >= 3
    assert not any(sent.values()), sent  # nothing but listings: no POST, no PUT, no DELETE


async def test_after_a_canary_the_audit_says_resume_and_leaves_the_held_rows_out(
    tmp_path: Path,
) -> None:
    wave = _wave(tmp_path / "wave.xlsx", ["ins-a", "ins-b", "ins-c", "ins-d"], per_task=1)
    everything = _wave(tmp_path / "all.xlsx", ["ins-a", "ins-b", "ins-c", "ins-d", "ins-z"],
                       per_task=1)  # fmt: skip
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        where = ["--endpoint", sim.url, "--reports-dir", reports]
        canary = await _piped(tmp_path, b"", "run", wave, *where, "--yes", "--limit", "1")
        assert canary.code == 0, canary.err
        assert len(sim.tasks) == 1
        audited = await _piped(tmp_path, b"", "audit", everything, *where, "--json")
        assert audited.code == 1, audited.err
        found = json.loads(audited.out)
        assert found["outcomes"]["held"] == 3
        assert [u["ins_id"] for u in found["uncovered"]] == ["ins-z"]
        (run_dir,) = [d for d in reports.iterdir() if d.is_dir()]
        assert found["next"]["command"] == found["resume_command"]
        assert found["resume_command"].endswith(f"--resume {run_dir}")
        gap = openpyxl.load_workbook(found["uncovered_workbook"], read_only=True)
        held_out = [r[0] for r in gap["instances"].iter_rows(min_row=2, values_only=True)]
        gap.close()
        assert held_out == ["ins-z"]  # the rows the canary's run holds are not in it
        text = await _piped(tmp_path, b"", "audit", everything, *where)
        assert text.code == 1, text.err
        last = text.out.strip().splitlines()[-1]
        assert last.endswith(f"bulkscan run {wave} --endpoint {sim.url} --reports-dir "
                             f"{reports} --yes --resume {run_dir}")  # fmt: skip
        assert "to close the gap" not in text.out  # one next step, not two
        # following the one next step, then the uncovered workbook: nothing covered twice
        resumed = await _piped(tmp_path, b"", "run", wave, *where, "--yes", "--resume", run_dir)
        assert resumed.code == 0, resumed.err
        again = await _piped(tmp_path, b"", "audit", everything, *where, "--json")
        after = json.loads(again.out)
        assert "held" not in after["outcomes"] and after["resume_command"] is None
        assert after["next"]["command"] == after["run_command"]
        closing = await _piped(tmp_path, b"", "run", after["uncovered_workbook"], *where, "--yes")
        assert closing.code == 0, closing.err
        assert sorted(_coverage(sim).items()) == [
            (i, 1) for i in ("ins-a", "ins-b", "ins-c", "ins-d", "ins-z")
        ]
        final = await _piped(tmp_path, b"", "audit", everything, *where, "--json")
        assert final.code == 0, final.err


async def test_a_run_that_meets_a_conflict_says_what_to_decide(tmp_path: Path) -> None:
    """A conflict is not 'nothing left to do': the terminal says the decision the Summary
    asks for, and the run exits 1; no task is sent under the name."""
    named = _wave(tmp_path / "named.xlsx", ["ins-y"], per_task=1, task="team-x")
    other = _wave(tmp_path / "other.xlsx", ["ins-x"], per_task=1, task="team-x")
    async with Simulator(projects=[P1]) as sim:
        where = ["--endpoint", sim.url, "--reports-dir", tmp_path / "r", "--yes"]
        made = await _piped(tmp_path, b"", "run", named, *where)
        assert made.code == 0, made.err
        clashed = await _piped(tmp_path, b"", "run", other, *where)
        assert len(sim.tasks) == 1
    assert clashed.code == 1, clashed.err
    last = clashed.out.strip().splitlines()[-1]
    assert last.startswith("1 task(s) need a decision (not in retry.xlsx): a task of that name")
    assert "--on-conflict update" in last and "nothing left to do" not in clashed.out


async def test_an_audit_after_the_input_changed_sends_no_one_to_a_refused_resume(
    tmp_path: Path,
) -> None:
    """The canary's input gained a row since: its run can no longer be resumed (the journal
    refuses an input whose SHA-256 changed), so the audit does not point there; the rows the
    run never sent are in the uncovered workbook, whose run closes the whole gap once."""
    first = [f"ins-{i}" for i in range(10)]
    wave = _wave(tmp_path / "in10.xlsx", first, per_task=1)
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        where = ["--endpoint", sim.url, "--reports-dir", reports]
        canary = await _piped(tmp_path, b"", "run", wave, *where, "--yes", "--limit", "3",
                              "--no-remote-check")  # fmt: skip
        assert canary.code == 0, canary.err
        assert len(sim.tasks) == 3
        (run_dir,) = [d for d in reports.iterdir() if d.is_dir()]
        _wave(wave, [*first, "ins-new"], per_task=1)  # a row appended to the same file
        refused = await _piped(tmp_path, b"", "run", wave, *where, "--yes", "--resume", run_dir)
        assert refused.code == 2 and "has changed since run" in refused.err  # as it was

        audited = await _piped(tmp_path, b"", "audit", wave, *where, "--json")
        assert audited.code == 1, audited.err
        found = json.loads(audited.out)
        assert "held" not in found["outcomes"] and found["resume_command"] is None
        assert found["outcomes"]["not_covered"] == 8  # the 7 never sent, and the new row
        assert found["next"]["command"] == found["run_command"]
        gap = openpyxl.load_workbook(found["uncovered_workbook"], read_only=True)
        rows = list(gap["instances"].iter_rows(min_row=2, values_only=True))
        gap.close()
        assert sorted(r[0] for r in rows) == sorted([*first[3:], "ins-new"])
        why = {r[0]: r[-1] for r in rows}
        assert f"run {run_dir}" in why["ins-5"] and "cannot be resumed" in why["ins-5"]
        assert "in10.xlsx has changed since it started" in why["ins-5"]
        text = await _piped(tmp_path, b"", "audit", wave, *where)
        assert text.code == 1, text.err
        assert "--resume" not in text.out and "resume first" not in text.out
        assert f"run {run_dir} cannot be resumed: {wave} has changed since it started" in text.out
        assert text.out.rstrip().splitlines()[-1].startswith("to close the gap, run: bulkscan ")

        # following the one next step: every instance in one task, nothing covered twice
        closing = await _piped(tmp_path, b"", "run", found["uncovered_workbook"], *where, "--yes")
        assert closing.code == 0, closing.err
        assert sorted(_coverage(sim).items()) == [(i, 1) for i in sorted([*first, "ins-new"])]
        final = await _piped(tmp_path, b"", "audit", wave, *where, "--json")
        assert final.code == 0, final.err


async def test_a_stopped_runs_tasks_of_unknown_outcome_stay_held_until_their_window_passed(
    tmp_path: Path,
) -> None:
    """Killed while it looked up its 504s, a run whose input then changed cannot be resumed;
    its tasks in flight may still be created late, so the audit holds their instances (never
    in the uncovered workbook) until the run's settle window has passed, and says when."""
    first = ["ins-a", "ins-b", "ins-c"]
    wave = _wave(tmp_path / "in3.xlsx", first, per_task=1)
    reports = tmp_path / "r"
    late = Faults(late_create=1.0, late_create_s=8.0)  # the backend creates 8 s after its 504
    async with Simulator(projects=[P1], faults=late) as sim:
        where = ["--endpoint", sim.url, "--reports-dir", reports]
        run = ("run", wave, *where, "--yes", "--no-remote-check", "--settle", "12")
        proc = await start(tmp_path, *run, env=sim_env(TZ="UTC"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while sim.stats["requests"].get("late_create", 0) < 3:
            assert proc.returncode is None and loop.time() < deadline, sim.stats
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert (await finish(proc)).code == -signal.SIGKILL
        sim.set_faults(Faults())
        _wave(wave, [*first, "ins-new"], per_task=1)  # a row appended since

        audited = await _piped(tmp_path, b"", "audit", wave, *where, "--json")
        assert audited.code == 1, audited.err
        found = json.loads(audited.out)
        assert sim.tasks == []  # not created yet: their outcome is not known
        assert found["outcomes"] == {"held": 3, "not_covered": 1}
        assert found["resume_command"] is None  # its resume would be refused
        assert [u["ins_id"] for u in found["uncovered"]] == ["ins-new"]
        (stale,) = found["stale_runs"]
        assert (stale["held"], stale["uncovered"]) == (3, 0)
        assert "in3.xlsx has changed since it started" in stale["reason"]
        until = dt.datetime.fromisoformat(stale["held_until"])
        text = await _piped(tmp_path, b"", "audit", wave, *where)
        assert "are held until " in text.out and "audit again then" in text.out
        assert "--resume" not in text.out

        # once the window has passed, the tasks created late are there: covered, once
        await asyncio.sleep(max(0.0, (until - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
        again = await _piped(tmp_path, b"", "audit", wave, *where, "--json")
        after = json.loads(again.out)
        assert after["outcomes"] == {"covered": 3, "not_covered": 1}, after
        assert [u["ins_id"] for u in after["uncovered"]] == ["ins-new"]
        assert sorted(_coverage(sim).items()) == [(i, 1) for i in first]


async def test_while_a_run_goes_on_the_audit_holds_its_rows_and_offers_no_resume(
    tmp_path: Path,
) -> None:
    """A run still sending would refuse a resume (its directory is in use), so the audit
    holds the rows it will send without printing its resume; once it stopped, the resume."""
    names = [f"ins-{i:02}" for i in range(30)]
    wave = _wave(tmp_path / "slow.xlsx", names, per_task=1)
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        where = ["--endpoint", sim.url, "--reports-dir", reports]
        run = ("run", wave, *where, "--yes", "--no-remote-check", "--rate", "2/s")
        proc = await start(tmp_path, *run, env=sim_env(TZ="UTC"))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while len(sim.tasks) < 2:
                assert proc.returncode is None and loop.time() < deadline, sim.stats
                await asyncio.sleep(0.01)
            audited = await _piped(tmp_path, b"", "audit", wave, *where, "--json")
            text = await _piped(tmp_path, b"", "audit", wave, *where)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            ended = await finish(proc)
        assert ended.code == -signal.SIGKILL, ended.err  # still going on when audited
        found = json.loads(audited.out)
        assert audited.code == 1, audited.err
        assert found["resume_command"] is None and found["uncovered"] == []
        assert found["outcomes"]["held"] >= 20 and found["next"] is None
        (live,) = found["stale_runs"]
        assert f"it is still going on (pid {proc.pid})" in live["reason"]
        assert live["uncovered"] == 0 and live["held"] == found["outcomes"]["held"]
        assert "audit again once it has ended" in text.out and "--resume" not in text.out

        # killed, the run can be resumed: that is the one next step, and it closes the gap
        after = await _piped(tmp_path, b"", "audit", wave, *where, "--json")
        resumed = json.loads(after.out)
        assert resumed["stale_runs"] == [] and resumed["uncovered"] == []
        assert resumed["next"]["command"] == resumed["resume_command"]
        followed = await _piped(tmp_path, b"", *resumed["next"]["argv"][1:])
        assert followed.code == 0, followed.err
        assert sorted(_coverage(sim).items()) == [(i, 1) for i in names]
