"""Exactly once against what no single run directory can see: another run, a dead run's lock.

Two ``bulkscan run`` processes started at once on the same inventory (different reports
directories) must not both send: the second is refused by the sending lock, which names the
first run's pid and directory.  A lock left by a process that died is taken over, with a note.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from typing import TYPE_CHECKING

import openpyxl
import pytest

from bulkscan import runner
from bulkscan.config import DispatchSettings
from bulkscan.dsc.client import Endpoints
from bulkscan.dsc.credentials import AkSk, credential_identity
from bulkscan.run.rundir import STATE_DIR_ENV, SendTarget
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator, parse_list_shape
from tests.e2e._cli import finish, sim_env, start

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

P1 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
P2 = "5e4d3c2b1a0f9e8d7c6b5a4938271605"


def write_inventory(path: Path, n: int, *, projects: Sequence[str] = (P1, P2)) -> Path:
    """``n`` instances over ``projects``, one task each (names unique per project)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    for i in range(n):
        sheet.append([f"ins-{i:04}", "MySQL", projects[i % len(projects)], "cn-north-4", "one"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "task_name", "max_sources"])
    profiles.append(["one", "ONCE", True, "scan-{project:.6}-{seq:04}", 1])
    book.save(path)
    return path


def no_duplicate(sim: Simulator) -> None:
    names = Counter(t["name"] for t in sim.tasks)
    assert [n for n, c in names.items() if c > 1] == []


async def _start(cwd: Path, state: Path, *args: str) -> asyncio.subprocess.Process:
    return await start(cwd, "run", *args, "--yes", env=sim_env(state=state))


async def _done(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    done = await finish(proc)
    return done.code, done.out + done.err


async def _held_locks(state: Path, first: asyncio.subprocess.Process) -> list[dict[str, object]]:
    """The sending locks once both projects' locks name the first run's directory."""
    for _ in range(600):
        found = (
            [json.loads(p.read_text() or "{}") for p in (state / "locks").glob("*.lock")]
            if (state / "locks").is_dir()
            else []
        )
        if len(found) == 2 and all("run_dir" in h for h in found):
            return found
        if first.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"the first run never took its sending locks: {await _done(first)}")


async def test_two_runs_at_once_send_each_task_once(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 24)
    state = tmp_path / "state"
    async with Simulator(faults=Faults(latency_s=0.05)) as sim:
        common = (str(inventory), "--endpoint", sim.url, "--concurrency", "1", "--rate", "3/s")
        first = await _start(tmp_path, state, *common, "--reports-dir", str(tmp_path / "r1"))
        holders = await _held_locks(state, first)
        # Hold the first run still while the second tries: it keeps its locks, and a loaded
        # machine cannot let it finish before the second starts.
        first.send_signal(signal.SIGSTOP)
        try:
            second = await _start(tmp_path, state, *common, "--reports-dir", str(tmp_path / "r2"))
            code2, said2 = await _done(second)
        finally:
            first.send_signal(signal.SIGCONT)
        code1, said1 = await _done(first)
        no_duplicate(sim)
        assert len(sim.tasks) == 24
    assert code1 == 0, said1
    assert code2 != 0 and "Traceback" not in said2
    assert f"pid {first.pid}" in said2 and "another bulkscan run" in said2
    run_dir = str(holders[0]["run_dir"])
    assert run_dir.startswith(str(tmp_path / "r1")) and run_dir in said2
    assert {h["project_id"] for h in holders} == {P1, P2}
    # the locks hold no credential, and are released (emptied) at the end
    for lock in (state / "locks").glob("*.lock"):
        assert lock.read_text() == ""
    assert not list((tmp_path / "r2").glob("*/journal.sqlite"))  # refused before a run dir


async def test_a_dead_runs_lock_is_taken_over_with_a_note(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 4, projects=(P1,))
    state = tmp_path / "state"
    async with Simulator() as sim:
        identity = credential_identity(AkSk(DEFAULT_AK, DEFAULT_SK))
        lock = state / "locks" / SendTarget(sim.url, P1, identity).lock_name()
        lock.parent.mkdir(parents=True)
        gone = {"pid": 999999999, "run_dir": "reports/dead-run", "project_id": P1}
        lock.write_text(json.dumps(gone))
        args = (str(inventory), "--endpoint", sim.url, "--reports-dir", str(tmp_path / "r"))
        code, said = await _done(await _start(tmp_path, state, *args))
        assert len(sim.tasks) == 4
    assert code == 0, said
    assert "took over the lock of run reports/dead-run left by pid 999999999, which is gone" in said
    assert DEFAULT_AK not in lock.read_text() + "".join(p.name for p in lock.parent.iterdir())


# --- a 200 that carries no task id, and created nothing -----------------------------------------

FAST = DispatchSettings(rate_per_s=200.0, backoff_base_s=0.01, backoff_max_s=0.05, settle_s=0.5)


def _connection(sim: Simulator) -> runner.Connection:
    return runner.Connection(
        credentials=AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url)
    )


@pytest.mark.parametrize("lost", ["html-lost", "error-body-lost"])
async def test_a_200_without_id_that_created_nothing_is_retried_by_a_resume(
    tmp_path: Path, lost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    inventory = write_inventory(tmp_path / "dbs.xlsx", 6)
    reports = tmp_path / "r"
    async with Simulator(list_shape=parse_list_shape(f"create={lost}")) as sim:
        first = await runner.run(
            runner.prepare(inventory), connection=_connection(sim), dispatch_settings=FAST,
            reports_dir=reports,
        )  # fmt: skip
        assert sim.tasks == []  # answered 200 every time, created nothing
        with Journal.open(first.run_dir, readonly=True) as journal:
            tasks = list(journal.tasks())
        left = Counter(t.state for t in tasks)
        assert TaskState.CREATED not in left and first.unfinished + first.failed == 6, left
        if lost == "html-lost":  # a web page answers: the message asks whether it is DSC
            said = {t.error_msg or "" for t in tasks}
            assert all("an HTML page" in m and "is the endpoint DSC's" in m for m in said), said
        lookups = sim.stats["requests"].get("listed", 0)
        assert lookups > 1  # each 200 without an id was looked up by name
        sim.set_list_shape(parse_list_shape(""))
        resumed = await runner.run(
            runner.prepare(inventory), connection=_connection(sim), dispatch_settings=FAST,
            reports_dir=reports, resume=True,
        )  # fmt: skip
        no_duplicate(sim)
        assert len(sim.tasks) == 6
    with Journal.open(resumed.run_dir, readonly=True) as journal:
        assert Counter(t.state for t in journal.tasks()) == {TaskState.CREATED: 6}
