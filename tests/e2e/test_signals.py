"""What a person is told, driven as a person drives the CLI: plan files applied as they are,
start times in a profile's zone, counts that mean one thing, a stale lock taken over.

The CLI runs as a subprocess against the project's simulator on 127.0.0.1, which runs in the
test's event loop, so what was sent is read from it directly.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import openpyxl

from bulkscan.sim.server import Faults, Simulator, parse_list_shape
from tests.e2e._cli import bulkscan, sim_env, start
from tests.e2e.test_operator import (
    _inventory,
    _on_a_terminal,
    _piped,
    _until_sending,
)
from tests.e2e.test_run_e2e import P1, REGION

if TYPE_CHECKING:
    from pathlib import Path


def _bodies(tasks: list[dict[str, object]]) -> list[str]:
    return sorted(json.dumps(t["body"], sort_keys=True) for t in tasks)


# --- run PLAN.json -------------------------------------------------------------------------


async def test_a_reviewed_plan_is_applied_as_it_is(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b"], start="2030-03-01 02:00")
    made = await _piped(tmp_path, b"", "plan", inventory, "-o", "plan.json", tz="Asia/Shanghai")
    assert made.code == 0, made.err
    document = json.loads((tmp_path / "plan.json").read_text("utf-8"))
    (source,) = document["source"]["files"]
    assert source["path"] == str(inventory) and len(source["sha256"]) == 64
    assert document["source"]["settings"]["timezone"] == "Asia/Shanghai"
    reviewed = tmp_path / "reviewed-plan"  # told by its content, not by its name
    shutil.copy(tmp_path / "plan.json", reviewed)
    async with Simulator(projects=[P1]) as sim:
        run = ["run", reviewed, "--endpoint", sim.url, "--reports-dir", tmp_path / "r", "--yes"]
        canary = await _piped(tmp_path, b"", *run, "--limit", "1")  # machine zone: UTC
        assert canary.code == 0 and len(sim.tasks) == 1, canary.err
        resume = f"resume with: bulkscan run {reviewed} --endpoint {sim.url} "
        assert resume in canary.out
        done = await _piped(tmp_path, b"", *run, "--resume")
        assert done.code == 0, done.err
        assert sorted(t["name"] for t in sim.tasks) == sorted(t["name"] for t in document["tasks"])
        assert _bodies(sim.tasks) == _bodies(document["tasks"])
        sent = datetime(2030, 2, 28, 18, 0, tzinfo=UTC).timestamp()
        assert {t["body"]["start_time"] for t in sim.tasks} == {int(sent)}
        assert "nothing left to do" in done.out
        other = await _piped(tmp_path, b"", *run, "--timezone", "Europe/Paris", "--resume")
        assert other.code == 0, other.err
        assert "with --timezone 'Asia/Shanghai', not 'Europe/Paris'" in other.err
        assert len(sim.tasks) == 2


async def test_a_plan_whose_inventory_changed_is_refused(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a"])
    made = await _piped(tmp_path, b"", "plan", inventory, "--output", "plan.json")
    assert made.code == 0, made.err
    _inventory(inventory, ["ins-a", "ins-b"])  # edited after the review
    async with Simulator(projects=[P1]) as sim:
        run = ["run", "plan.json", "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        done = await _piped(tmp_path, b"", *run, "--yes")
        assert done.code == 2, done.err
        (line,) = done.err.strip().splitlines()
        assert str(inventory) in line and "changed" in line and "re-run bulkscan plan" in line
        assert sim.tasks == [] and done.out == ""
        assert not (tmp_path / "r").exists()


async def test_the_failures_of_a_plan_are_re_run_in_the_plan_zone(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a"], start="2030-03-01 02:00")
    made = await _piped(tmp_path, b"", "plan", inventory, "-o", "plan.json", tz="Asia/Shanghai")
    assert made.code == 0, made.err
    async with Simulator(projects=[P1], dsc_disabled=[P1]) as sim:
        run = ["run", "plan.json", "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        run.append("--no-remote-check")  # the failure comes from the create itself
        done = await _piped(tmp_path, b"", *run, "--yes")
    assert done.code == 1, done.err
    (step,) = [line for line in done.out.splitlines() if line.startswith("re-run the failures")]
    assert "retry.xlsx" in step and step.endswith("--timezone Asia/Shanghai")
    assert "plan.json" not in step


async def test_a_plan_on_a_terminal_asks_before_it_is_applied(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b"])
    made = await _piped(tmp_path, b"", "plan", inventory, "--output", "plan.json")
    assert made.code == 0, made.err
    async with Simulator(projects=[P1]) as sim:
        run = ["run", "plan.json", "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        piped = await _piped(tmp_path, b"y\n", *run)
        assert piped.code == 2 and "--yes" in piped.err and sim.tasks == []
        code, shown = await _on_a_terminal(tmp_path, b"y\n", *run)
        assert code == 0, shown
        assert "Create 2 task(s), starting now? [y/N]" in shown
        assert len(sim.tasks) == 2
        assert "Traceback" not in shown


# --- a profile's time zone -------------------------------------------------------------------


def _zoned_inventory(path: Path, zone: str | None) -> Path:
    """Two profiles starting at 02:00 without an offset: one with ``zone``, one without."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    sheet.append(["ins-a", "MySQL", P1, REGION, "zoned"])
    sheet.append(["ins-b", "MySQL", P1, REGION, "plain"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "start_now", "start_time", "timezone"])
    profiles.append(["zoned", False, "2030-03-01 02:00", zone])
    profiles.append(["plain", False, "2030-03-01 02:00", None])
    book.save(path)
    return path


async def test_a_profile_time_zone_changes_what_is_sent_and_is_shown(tmp_path: Path) -> None:
    inventory = _zoned_inventory(tmp_path / "inv.xlsx", "Asia/Shanghai")
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", reports, "--yes"]
        done = await _piped(tmp_path, b"", *run, "--timezone", "Europe/Paris", tz="UTC")
        assert done.code == 0, done.err
        sent = {t["body"]["data_sources"][0]["ins_id"]: t["body"]["start_time"] for t in sim.tasks}
    shanghai = datetime(2030, 2, 28, 18, 0, tzinfo=UTC).timestamp()  # 02:00 +08:00
    paris = datetime(2030, 3, 1, 1, 0, tzinfo=UTC).timestamp()  # 02:00 +01:00
    assert sent == {"ins-a": int(shanghai), "ins-b": int(paris)}
    (results,) = reports.glob("*/results.xlsx")
    sheet = openpyxl.load_workbook(results)["Tasks"]
    rows = list(sheet.iter_rows(values_only=True))
    column = rows[0].index("start time")
    starts = sorted(str(r[column]) for r in rows[1:])
    assert starts == [
        "2030-03-01 02:00+01:00 (Europe/Paris)",
        "2030-03-01 02:00+08:00 (Asia/Shanghai)",
    ]
    shown = await _piped(tmp_path, b"", "plan", inventory, tz="UTC")
    assert "2030-03-01 02:00+08:00 (Asia/Shanghai)" in shown.out
    assert "2030-03-01 02:00+00:00 (UTC)" in shown.out


async def test_an_unknown_profile_zone_is_refused_naming_its_cell(tmp_path: Path) -> None:
    inventory = _zoned_inventory(tmp_path / "inv.xlsx", "Asia/Shanghia")
    done = await _piped(tmp_path, b"", "validate", inventory)
    assert done.code == 2
    assert "sheet 'profiles', row 2, column 'timezone'" in done.err + done.out
    assert "'Asia/Shanghia' is not a known time zone" in done.err + done.out


# --- counts that mean one thing --------------------------------------------------------------


def _summary_values(results: Path) -> list[object]:
    sheet = openpyxl.load_workbook(results)["Summary"]
    return [v for row in sheet.iter_rows(values_only=True) for v in row if v is not None]


async def test_progress_never_says_done_when_nothing_was_sent(tmp_path: Path) -> None:
    earlier = _inventory(tmp_path / "earlier.xlsx", ["ins-z"])
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b", "ins-c"])
    reports = tmp_path / "r"
    # a listing whose tasks carry no name cannot be trusted: nothing is sent to the project
    async with Simulator(projects=[P1], list_shape=parse_list_shape("name=none")) as sim:
        run = ["run", "--endpoint", sim.url, "--reports-dir", reports]
        first = await _piped(tmp_path, b"", *run, earlier, "--yes")
        # created into an empty project; the listing after it cannot be trusted: audit (1)
        assert first.code == 1 and "names created twice not checked" in first.out, first.err
        code, shown = await _on_a_terminal(tmp_path, b"y\n", *run, inventory)
        assert len(sim.tasks) == 1
    assert code == 3, shown
    bar = [line for line in shown.splitlines() if "sending" in line and "0/3" in line]
    assert bar and "0 in DSC, 0 failed, 0 retrying, 0 sent" in bar[-1], shown
    assert " done" not in shown and not re.search(r"(?<!not )finished", shown)
    assert "3 task(s) not finished; resume with: " in shown
    assert "errors by code" not in shown  # not sent is not an error: the workbook agrees
    (results,) = reports.glob("inv-*/results.xlsx")
    values = _summary_values(results)
    assert "no task ended with an error" in values
    assert "done" not in values and "unfinished" in values


async def test_a_limit_run_never_says_finished_and_status_never_says_done(
    tmp_path: Path,
) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b", "ins-c"])
    reports = tmp_path / "r"
    async with Simulator(projects=[P1], scan_s=0.0) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", reports, "--yes"]
        canary = await _piped(tmp_path, b"", *run, "--limit", "1")
        assert canary.code == 0, canary.err
        assert len(sim.tasks) == 1
        (run_dir,) = reports.iterdir()
        said = canary.out + canary.err
        assert "finished" not in said and " done" not in said
        assert "2 task(s) held back by --limit" in canary.out.splitlines()[0]
        assert f"2 task(s) held back by --limit; resume with: bulkscan run {inventory} " in said
        values = _summary_values(run_dir / "results.xlsx")
        assert "done" not in values and "unfinished" in values
        status = await _piped(tmp_path, b"", "status", run_dir, "--endpoint", sim.url)
        assert status.code == 4, status.out + status.err
        assert "done" not in status.out and "succeeded" in status.out
        assert "2 task(s) of this run not sent yet" in status.out
        assert "done" not in _summary_values(run_dir / "results.xlsx")
        rest = await _piped(tmp_path, b"", *run, "--resume")
        assert rest.code == 0 and "finished" in rest.out and len(sim.tasks) == 3
        assert "done" in _summary_values(run_dir / "results.xlsx")


async def test_the_terminal_and_the_workbook_count_errors_the_same_way(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b"])
    reports = tmp_path / "r"
    async with Simulator(projects=[P1], dsc_disabled=[P1]) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", reports, "--yes"]
        run.append("--no-remote-check")  # the errors come from the creates themselves
        done = await _piped(tmp_path, b"", *run, "--json")
    assert done.code == 1, done.err
    summary = json.loads(done.out)
    assert summary["errors"] == 2 == sum(summary["error_codes"].values())
    (results,) = reports.glob("*/results.xlsx")
    sheet = openpyxl.load_workbook(results)["Summary"]
    rows = [r for r in sheet.iter_rows(values_only=True) if any(v is not None for v in r)]
    start = next(i for i, r in enumerate(rows) if r[0] == "error code")
    table = []
    for r in rows[start + 1 :]:
        if not isinstance(r[2], int):
            break
        table.append(r)
    assert sum(r[2] for r in table) == 2
    assert {r[0]: r[2] for r in table} == summary["error_codes"]


# --- a killed run's lock -----------------------------------------------------------------------


async def test_a_killed_runs_lock_is_taken_over_with_a_one_line_note(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", [f"ins-{i}" for i in range(20)])
    reports = tmp_path / "r"
    env = sim_env(state=tmp_path / "state")
    async with Simulator(projects=[P1], faults=Faults(latency_s=2.0)) as sim:
        run = ["run", str(inventory), "--endpoint", sim.url, "--reports-dir", str(reports)]
        quiet = asyncio.subprocess.DEVNULL
        killed = await start(tmp_path, *run, "--yes", env=env, stdout=quiet, stderr=quiet)
        run_dir = await _until_sending(reports, killed)
        killed.kill()  # SIGKILL: no clean-up, the lock keeps its pid
        await asyncio.wait_for(killed.wait(), 30)
        again = await bulkscan(tmp_path, *run, "--yes", "--resume", env=env)
    said = again.err
    assert again.code == 0, said + again.out
    note = f"took over the lock of run {run_dir} left by pid {killed.pid}, which is gone"
    assert [line for line in said.splitlines() if "took over" in line] == [note]
    assert len({t["name"] for t in sim.tasks}) == len(sim.tasks) == 20
