"""What ``bulkscan run`` says when the service misbehaves but keeps answering."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import zipfile
from typing import TYPE_CHECKING

import openpyxl
import pytest

from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator
from tests.e2e._cli import bulkscan, sim_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

P1 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def write_inventory(path: Path, n: int) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    for i in range(n):
        sheet.append([f"ins-{i:04}", "MySQL", P1, "cn-north-4", "one"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "task_name", "max_sources"])
    profiles.append(["one", "ONCE", True, "scan-{seq:04}", 1])
    book.save(path)
    return path


async def run_cli(cwd: Path, *args: str) -> tuple[int, str, str]:
    return await bulkscan(cwd, *args, env=sim_env(state=cwd / "state"))


async def test_stalled_lookups_while_the_service_answers_are_not_an_outage(tmp_path: Path) -> None:
    """Lookups that time out while other requests are answered are retries, not an outage.

    Each stalled lookup (a GET, so transient, with no HTTP status) used to print "cannot
    connect to DSC" although the service was answering every other request.
    """
    inventory = write_inventory(tmp_path / "dbs.xlsx", 20)
    async with Simulator(faults=Faults(stall=0.3, stall_s=2.0), seed=3) as sim:
        args = [
            "run",
            str(inventory),
            "--endpoint",
            sim.url,
            "--yes",
            "--attempts",
            "10",
            "--rate",
            "50/s",
            "--read-timeout",
            "0.5",
        ]
        code, out, err = await run_cli(tmp_path, *args, "--reports-dir", str(tmp_path / "r"))
        stalled = sim.stats["requests"].get("stalled", 0)
    assert stalled > 0  # the fault did happen
    assert "cannot connect" not in err and "no answer from DSC" not in err, err
    assert code == 0 and "Traceback" not in err, out + err


async def test_credentials_echoed_by_the_service_are_in_no_output(tmp_path: Path) -> None:
    """A server that repeats the Authorization header in its errors: nothing keeps it."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 6)
    async with Simulator(faults=Faults(echo=0.5), seed=5) as sim:
        args = ["run", str(inventory), "--endpoint", sim.url, "--yes", "--attempts", "2"]
        reports = tmp_path / "r"
        _, out, err = await run_cli(tmp_path, *args, "--reports-dir", str(reports))
        _, json_out, json_err = await run_cli(
            tmp_path, *args, "--json", "--reports-dir", str(tmp_path / "r2")
        )
        echoed = sim.stats["requests"].get("echo", 0)
    assert echoed > 0  # the fault did happen
    texts = [out, err, json_out, json_err]
    for path in [*reports.rglob("*"), *(tmp_path / "r2").rglob("*")]:
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                texts += [book.read(n).decode("utf-8", "replace") for n in book.namelist()]
        elif path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    everything = "\n".join(texts)
    assert "received headers" in everything  # the echoed message itself is kept ...
    assert "[redacted]" in everything  # ... with its credentials removed
    assert DEFAULT_AK not in everything and DEFAULT_SK not in everything
    assert re.search(r"Signature=[0-9a-f]{16}", everything) is None


async def test_a_result_workbook_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """Every task created, results.xlsx not writable: one line naming it and the command
    that writes it again; exit 1, so that a script does not take the workbook for written."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 8)
    reports = tmp_path / "r"
    async with Simulator() as sim:
        args = ["run", str(inventory), "--endpoint", sim.url, "--yes", "--rate", "4/s"]
        running = asyncio.create_task(run_cli(tmp_path, *args, "--reports-dir", str(reports)))
        for _ in range(1200):
            if any(reports.glob("*/journal.sqlite")) or running.done():
                break
            await asyncio.sleep(0.01)
        (run_dir,) = reports.iterdir()
        (run_dir / "results.xlsx").mkdir()  # the workbook's name is taken: it cannot be written
        code, out, err = await running
        assert len(sim.tasks) == 8
    assert code == 1 and "Traceback" not in err, out + err
    (line,) = [x for x in err.splitlines() if x.startswith("bulkscan: error:")]
    assert str(run_dir / "results.xlsx") in line and f"bulkscan report {run_dir}" in line


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A size-limited filesystem mounted at ``where`` (skips where mounting is not allowed)."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_full_disk_while_sending_stops_with_one_line_and_resumes(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 400)
    async with Simulator() as sim:
        args = ["run", str(inventory), "--endpoint", sim.url, "--yes", "--rate", "200/s"]
        with small_tmpfs(tmp_path / "full", "1200k") as full:
            code, out, err = await run_cli(tmp_path, *args, "--reports-dir", str(full), "--json")
            (run_dir,) = full.iterdir()
            copy = shutil.copytree(run_dir, tmp_path / "r" / run_dir.name)
        sent = len(sim.tasks)
        assert code == 3 and "Traceback" not in err, err[-3000:]
        (line,) = [x for x in err.splitlines() if x.startswith("bulkscan: stopped:")]
        assert "disk is full" in line and f"then resume with: bulkscan run {inventory} " in line
        assert line.endswith(f"--reports-dir {full} --json --resume {run_dir}")  # its own command
        doc = json.loads(out)
        assert doc["next"]["argv"][-2:] == ["--resume", str(run_dir)]
        assert doc["run_dir"] == str(run_dir) and doc["error"] in line
        assert 0 < sent < 400  # stopped while sending
        resumed, out, err = await run_cli(tmp_path, *args, "--resume", str(copy))
        assert resumed == 0, out + err
        names = [t["name"] for t in sim.tasks]
    assert len(names) == len(set(names)) == 400


async def test_a_retry_after_past_the_task_budget_is_capped_and_said(tmp_path: Path) -> None:
    """429 with ``Retry-After: 3600``: the run waits no longer than the task's budget."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 3)
    async with Simulator(faults=Faults(http429=0.5, retry_after_s=3600.0), seed=1) as sim:
        args = ["run", str(inventory), "--endpoint", sim.url, "--yes", "--task-budget", "3"]
        args.append("--no-remote-check")  # the creates' waits are the point, not the listings'
        code, out, err = await run_cli(tmp_path, *args, "--reports-dir", str(tmp_path / "r"))
        throttled = sim.stats["requests"].get("http429", 0)
    assert throttled > 0  # the service did ask to wait
    said = "asked to wait 3600s (Retry-After), past the task time budget (--task-budget 3s)"
    assert said in err, err
    assert code in (0, 1) and "Traceback" not in err, out + err
