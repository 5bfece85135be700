"""The journal file deleted while a run sends: the run stops, says so in one line, exit 3.

SQLite would keep writing to the unlinked file and every step would be lost; the run notices
at its next commit, stops sending, names what it sent (from memory) and how a new run
settles it: by listing, the tasks already made are found and never created twice.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from bulkscan.sim.server import Faults, Simulator
from tests.e2e._cli import sim_env, start
from tests.e2e.test_exactly_once import no_duplicate, write_inventory

if TYPE_CHECKING:
    from pathlib import Path

N = 24


async def _run(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    return await start(tmp_path, "run", *args, "--yes", env=sim_env(state=tmp_path / "state"))


def _journals(reports: Path) -> list[Path]:
    return list(reports.glob("*/journal.sqlite"))


async def _remove_journal_once_sending(reports: Path, sim: Simulator) -> Path:
    for _ in range(1200):
        found = await asyncio.to_thread(_journals, reports)
        if found and len(sim.tasks) >= 2:
            await asyncio.to_thread(found[0].unlink)
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError("the run never started sending")


async def test_a_journal_removed_while_sending_stops_the_run_in_one_line(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", N)
    reports = tmp_path / "r"
    async with Simulator(faults=Faults(latency_s=0.05)) as sim:
        args = (str(inventory), "--endpoint", sim.url, "--reports-dir", str(reports))
        proc = await _run(tmp_path, *args, "--concurrency", "1", "--rate", "4/s")
        removed = await _remove_journal_once_sending(reports, sim)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        made = len(sim.tasks)
        said = err.decode()
        assert proc.returncode == 3, out.decode() + said
        assert "Traceback" not in said
        (line,) = [x for x in said.splitlines() if "was removed while the run was sending" in x]
        assert str(removed) in line and "never created twice" in line
        assert re.search(rf"\b{made} created", line), (
            line
        )  # counted from memory, as the service saw them
        assert made < N  # it stopped sending
        no_duplicate(sim)
        # a new run settles it: what was made is found by listing, the rest is created
        again = await _run(tmp_path, *args)
        out2, err2 = await asyncio.wait_for(again.communicate(), 120)
        assert again.returncode == 0, out2.decode() + err2.decode()
        no_duplicate(sim)
        assert len(sim.tasks) == N
