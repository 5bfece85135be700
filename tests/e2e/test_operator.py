"""Operator safety, driven as a person drives the CLI: a pipe, a terminal, two waves.

The CLI runs as a subprocess (``python -m bulkscan``) against the project's simulator on
127.0.0.1, which runs in the test's event loop so what was sent is read from it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import sqlite3
import struct
import sys
import termios
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import openpyxl

from bulkscan.plan import content_digest
from bulkscan.run.states import UNFINISHED_STATES
from bulkscan.run.store import Journal
from bulkscan.sim.server import Simulator
from tests.e2e._cli import Done, bulkscan, sim_env, start
from tests.e2e.test_run_e2e import P1, REGION

if TYPE_CHECKING:
    from pathlib import Path

_LIMIT_S = 60.0
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _inventory(path: Path, ins_ids: list[str], *, start: str | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    for ins_id in ins_ids:
        sheet.append([ins_id, "MySQL", P1, REGION, "single"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "max_sources", "start_time"])
    profiles.append(["single", "ONCE", start is None, 1, start])
    book.save(path)
    return path


async def _piped(cwd: Path, stdin: bytes, *args: str | Path, tz: str = "UTC") -> Done:
    return await bulkscan(cwd, *args, env=sim_env(TZ=tz), stdin=stdin, limit_s=_LIMIT_S)


async def _on_a_terminal(
    cwd: Path, answer: bytes, *args: str | Path, tz: str = "UTC"
) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on a pseudo-terminal; type ``answer`` at the prompt.

    The terminal is wide enough that no line is wrapped; what it shows is returned without
    its colour and cursor escapes."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulkscan", *(str(a) for a in args),
        cwd=cwd, env=sim_env(TZ=tz), stdin=terminal, stdout=terminal, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    loop = asyncio.get_running_loop()
    shown = b""
    answered = False
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(
                    loop.run_in_executor(None, os.read, controller, 4096), _LIMIT_S
                )
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(controller, answer)
                answered = True
        code = await asyncio.wait_for(proc.wait(), _LIMIT_S)
    finally:
        os.close(controller)
    return code, _ESCAPES.sub("", shown.decode()).replace("\r\n", "\n")


# --- confirmation --------------------------------------------------------------------------


async def test_a_pipe_answering_no_sends_nothing_and_says_how_to_confirm(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a"])
    async with Simulator(projects=[P1]) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        for extra in ([], ["--json"]):
            done = await _piped(tmp_path, b"n\n", *run, *extra)
            assert done.code == 2, done.err
            assert "nothing sent" in done.err and "--yes" in done.err
            assert "Traceback" not in done.err
        assert sim.tasks == []
        done = await _piped(tmp_path, b"", *run, "--yes")
        assert done.code == 0, done.err
        assert len(sim.tasks) == 1


async def test_the_prompt_on_a_terminal_sends_only_after_yes(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b"])
    async with Simulator(projects=[P1]) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        code, shown = await _on_a_terminal(tmp_path, b"n\n", *run)
        assert code == 0, shown
        assert "Create 2 task(s), starting now? [y/N]" in shown and "nothing sent" in shown
        assert sim.tasks == []
        code, shown = await _on_a_terminal(tmp_path, b"y\n", *run)
        assert code == 0, shown
        assert len(sim.tasks) == 2
        assert "Traceback" not in shown


# --- default names across waves ------------------------------------------------------------


async def test_two_waves_of_different_spreadsheets_never_collide(tmp_path: Path) -> None:
    wave1 = _inventory(tmp_path / "wave1.xlsx", ["ins-a", "ins-b"])
    wave2 = _inventory(tmp_path / "wave2.xlsx", ["ins-c", "ins-d", "ins-b"])
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        for inventory in (wave1, wave2):
            run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", reports, "--yes"]
            done = await _piped(tmp_path, b"", *run, "--json")
            assert done.code == 0, done.err
        outcomes = json.loads(done.out)["outcomes"]
        assert outcomes == {"created": 2, "exists": 1}  # ins-b: the same name as in wave 1
        by_name = {t["name"]: t for t in sim.tasks}
        assert len(sim.tasks) == len(by_name) == 4
        for name, task in by_name.items():
            (source,) = task["body"]["data_sources"]
            assert name.startswith(f"bulkscan-single-{REGION}-")
            assert name.endswith(content_digest(P1, REGION, [("MySQL", source["ins_id"])]))


# --- start times and their zone ------------------------------------------------------------


async def test_a_zone_less_start_time_is_read_in_the_local_zone_and_shown_with_it(
    tmp_path: Path,
) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a"], start="2030-03-01 02:00")
    shanghai = "2030-03-01 02:00+08:00 (Asia/Shanghai)"
    done = await _piped(tmp_path, b"", "plan", inventory, tz="Asia/Shanghai")
    assert done.code == 0, done.err
    (line,) = [x for x in done.out.splitlines() if x.startswith("bulkscan-single-")]
    assert line.endswith(shanghai) and line.split()[1:4] == [P1, REGION, "1"]
    assert "total" in done.out
    explicit = await _piped(tmp_path, b"", "plan", inventory, "--timezone", "Europe/Paris")
    assert "2030-03-01 02:00+01:00 (Europe/Paris)" in explicit.out
    async with Simulator(projects=[P1]) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        code, shown = await _on_a_terminal(tmp_path, b"y\n", *run, tz="Asia/Shanghai")
        assert code == 0, shown
        assert f"Create 1 task(s), starting {shanghai}? [y/N]" in shown
        (task,) = sim.tasks
        sent = datetime(2030, 2, 28, 18, 0, tzinfo=UTC).timestamp()
        assert task["body"]["start_time"] == int(sent)


# --- counts a person sees ------------------------------------------------------------------


async def test_a_resumed_run_asks_only_for_the_tasks_that_remain(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.xlsx", ["ins-a", "ins-b", "ins-c"])
    async with Simulator(projects=[P1]) as sim:
        run = ["run", inventory, "--endpoint", sim.url, "--reports-dir", tmp_path / "r"]
        canary = await _piped(tmp_path, b"", *run, "--yes", "--limit", "1")
        assert len(sim.tasks) == 1, canary.err
        assert "sending 1 to" in canary.err
        code, shown = await _on_a_terminal(tmp_path, b"y\n", *run, "--resume")
        assert code == 0, shown
        assert "resuming: 2 task(s) not yet done" in shown
        assert "Create 2 task(s), starting now? [y/N]" in shown
        assert len(sim.tasks) == 3
        again = await _piped(tmp_path, b"", *run, "--resume")  # nothing left: nothing to ask
        assert again.code == 0, again.err
        assert "3 instance(s); nothing to send" in again.err and len(sim.tasks) == 3


# --- Ctrl-C twice --------------------------------------------------------------------------


def _sending_run(run_dirs: Path) -> Path | None:
    """The run directory whose journal holds a task with its request in flight, if any."""
    for journal_file in run_dirs.glob("*/journal.sqlite"):
        uri = f"file:{journal_file}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            with contextlib.suppress(sqlite3.OperationalError):
                if db.execute("SELECT 1 FROM tasks WHERE state = 'sending'").fetchone():
                    return journal_file.parent
    return None


async def _until_sending(run_dirs: Path, proc: asyncio.subprocess.Process) -> Path:
    """The run directory once a request of it is in flight (bounded)."""
    for _ in range(600):
        assert proc.returncode is None, "the run ended before any request was in flight"
        run_dir = _sending_run(run_dirs)
        if run_dir is not None:
            return run_dir
        await asyncio.sleep(0.05)
    raise AssertionError("no request went out within 30 s")


async def _slow_run(tmp_path: Path, reports: Path) -> asyncio.subprocess.Process:
    """A run whose requests take 3 s each at the embedded simulator: time to press Ctrl-C."""
    inventory = _inventory(tmp_path / "inv.xlsx", [f"ins-{i}" for i in range(30)])
    return await start(
        tmp_path, "run", inventory, "--simulate", "--yes", "--simulate-faults", "latency_s=3",
        "--rate", "50/s", "--reports-dir", reports,
    )  # fmt: skip


async def test_ctrl_c_held_down_through_the_wrap_up_ends_without_a_traceback(
    tmp_path: Path,
) -> None:
    """Presses after the second (the summary, the workbook, the clean-up are under way) end
    neither in a traceback nor in death by SIGINT (Python's own 130)."""
    reports = tmp_path / "r"
    proc = await _slow_run(tmp_path, reports)
    await _until_sending(reports, proc)
    for _ in range(400):  # every 20 ms until it has ended (8 s at most)
        if proc.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.02)
    out_b, err_b = await asyncio.wait_for(proc.communicate(), _LIMIT_S)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode is not None and proc.returncode > 0, (proc.returncode, err)
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err


async def test_a_second_ctrl_c_ends_as_cleanly_as_the_first(tmp_path: Path) -> None:
    reports = tmp_path / "r"
    proc = await _slow_run(tmp_path, reports)
    run_dir = await _until_sending(reports, proc)
    proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.2)  # well inside the 3 s the requests in flight take
    proc.send_signal(signal.SIGINT)
    out_b, err_b = await asyncio.wait_for(proc.communicate(), _LIMIT_S)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 3, err
    assert "Traceback" not in err + out and "Error" not in err
    assert "abandoning requests in flight" in err
    with Journal.open(run_dir) as journal:  # the lock was released: it can be taken again
        unfinished = sum(n for s, n in journal.counts().items() if s in UNFINISHED_STATES)
    assert unfinished > 0
    assert f"{unfinished} task(s) not finished; resume with: " in out
    assert "re-run the failures" not in out  # one next step
    assert f"--resume {run_dir}" in out
    book = openpyxl.load_workbook(run_dir / "results.xlsx", read_only=True)
    assert "Summary" in book.sheetnames
    book.close()
