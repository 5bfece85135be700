"""What a person is told, driven as a person drives the CLI: plan files applied as they are,
start times in a profile's zone, counts that mean one thing, a stale lock taken over.

The CLI runs as a subprocess against the project's simulator on 127.0.0.1, which runs in the
test's event loop, so what was sent is read from it directly.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import openpyxl

from bulkscan.sim.server import Simulator
from tests.e2e.test_operator import _inventory, _on_a_terminal, _piped
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
        other = await _piped(tmp_path, b"", *run, "--timezone", "Europe/Paris")
        assert other.code == 2 and "re-run bulkscan plan" in other.err, other.err
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
    sheet = openpyxl.load_workbook(results, read_only=True)["Tasks"]
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
