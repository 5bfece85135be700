"""The commands after a run as a user runs them: child processes against a simulator process.

* without a terminal and without --yes, undo and start change nothing and exit 2;
* status --wait --json: every scan finished, exit 0;
* start and undo killed with SIGKILL mid-way, then run again: every task started once and
  deleted once, none missed, the other run's tasks untouched.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from test_hostile import PROJECT, REGION, write_inventory

from tests.e2e._cli import clean_env, cli, simulator_process

AK = "BULKSCANSIMULATORAK0"
SK = "bulkscan-simulator-sk-not-a-real-secret0"
ENV = clean_env(HUAWEICLOUD_SDK_AK=AK, HUAWEICLOUD_SDK_SK=SK)
FAST = ("--attempts", "8", "--task-budget", "60", "--read-timeout", "5")


def _inventory(folder: Path, n: int) -> Path:
    headers = ["ins_id", "db_type", "project_id", "region"]
    rows = [[f"ins-{i:03}", "MySQL", PROJECT, REGION] for i in range(n)]
    return write_inventory(
        folder / "dbs.xlsx", headers, rows, [["profile", "max_sources"], ["default", 1]]
    )


def _run(folder: Path, url: str, n: int) -> Path:
    """Create ``n`` tasks; a run that meets ambiguous failures (500s, resets after sending)
    leaves them *unknown*, exits 3 and is resumed until every task is settled."""
    command = ["run", str(_inventory(folder, n)), "--endpoint", url, "--yes", "--json",
               "--rate", "50/s", "--reports-dir", str(folder / "r"), "--settle", "0.5",
               *FAST]  # fmt: skip
    done = cli(*command, env=ENV)
    for _ in range(10):
        if done.returncode != 3:
            break
        answer = json.loads(done.stdout)
        assert answer["outcomes"].get("unknown"), answer  # left for a resume, not resent
        done = cli(*command, "--resume", answer["run_dir"], env=ENV)
    assert done.returncode == 0, done.stderr
    names = [t["name"] for t in _tasks(url)]
    assert len(names) == len(set(names)) == n  # each created exactly once
    return Path(json.loads(done.stdout)["run_dir"])


def _tasks(url: str) -> list[dict[str, Any]]:
    import asyncio

    async def get() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/_sim/tasks") as answer:
            found: list[dict[str, Any]] = await answer.json()
        return found

    return asyncio.run(get())


def _actions(run_dir: Path, state: str) -> int:
    path = run_dir / "lifecycle.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT count(*) FROM actions WHERE state=?", (state,)).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def _kill_when(command: list[str], condition: Any, timeout: float = 60) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkscan", *command],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while not condition() and proc.poll() is None:
            assert time.monotonic() < deadline, "the condition never came"
            time.sleep(0.01)
        assert proc.poll() is None, "the command ended before it could be killed"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_without_a_terminal_or_yes_nothing_changes_and_exit_is_2(tmp_path: Path) -> None:
    with simulator_process(tmp_path, env=ENV) as (url, _):
        run_dir = _run(tmp_path, url, 3)
        for command in ("undo", "start", "disable"):
            done = cli(command, str(run_dir), "--endpoint", url, env=ENV)
            assert done.returncode == 2, (command, done.stderr)
            assert "--yes" in done.stderr
            assert "Traceback" not in done.stderr
        assert len(_tasks(url)) == 3
        assert all(t["enabled"] for t in _tasks(url))


def test_status_wait_json_reports_every_scan_finished(tmp_path: Path) -> None:
    with simulator_process(tmp_path, "--scan-seconds", "1", env=ENV) as (url, _):
        run_dir = _run(tmp_path, url, 4)
        done = cli("status", str(run_dir), "--endpoint", url, "--wait", "--poll", "0.5",
                   "--timeout", "30", "--json", env=ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["outcomes"] == {"succeeded": 4}
    assert {s["state"] for s in answer["scans"]} == {"succeeded"}


def test_status_with_failed_scans_names_the_start_of_those_tasks_alone(tmp_path: Path) -> None:
    """Some scans failed: the next step starts exactly the failed ones again (a bare
    ``start`` would scan the succeeded ones twice), through the service just read."""
    options = ("--scan-seconds", "0", "--scan-failure", "0.5", "--seed", "3")
    with simulator_process(tmp_path, *options, env=ENV) as (url, _):
        run_dir = _run(tmp_path, url, 6)
        done = cli("status", str(run_dir), "--endpoint", url, "--json", env=ENV)
        answer = json.loads(done.stdout)
        failed = [s["task"] for s in answer["scans"] if s["state"] == "failed"]
        assert 0 < len(failed) < 6, answer["scans"]  # the seed fails some, not all
        argv = answer["next"]["argv"]
        named = [argv[i + 1] for i, part in enumerate(argv) if part == "--task"]
        assert argv[:3] == ["bulkscan", "start", str(run_dir)] and named == failed
        assert argv[-2:] == ["--endpoint", url]
        text = cli("status", str(run_dir), "--endpoint", url, env=ENV)
        assert f"with: {answer['next']['command']}" in text.stdout
        started = cli(*argv[1:], "--yes", "--json", env=ENV)
        assert started.returncode == 0, started.stderr
        again = json.loads(cli("status", str(run_dir), "--endpoint", url, "--json", env=ENV).stdout)
    runs = {s["task"]: s["runs"] for s in again["scans"]}
    assert runs == {name: 2 if name in failed else 1 for name in runs}  # the failed ones alone


def test_start_killed_mid_way_resumes_and_starts_each_task_once(tmp_path: Path) -> None:
    n = 20
    with simulator_process(tmp_path, "--scan-seconds", "0", "--faults", "http500=0.1,"
                           "reset_after=0.1", "--seed", "7", env=ENV) as (url, _):  # fmt: skip
        run_dir = _run(tmp_path, url, n)
        command = ["start", str(run_dir), "--endpoint", url, "--yes", "--rate", "10/s", *FAST]
        _kill_when(command, lambda: _actions(run_dir, "done") >= 5)
        done = cli(*command, "--json", env=ENV, timeout=120)
        assert done.returncode == 0, done.stderr
        status = cli("status", str(run_dir), "--endpoint", url, "--json", env=ENV)
    runs = [s["runs"] for s in json.loads(status.stdout)["scans"]]
    assert runs == [2] * n  # the one at creation, and exactly one START


def test_undo_killed_mid_way_resumes_and_deletes_every_task_once(tmp_path: Path) -> None:
    with simulator_process(tmp_path, "--latency", "0.5", env=ENV) as (url, _):
        run_dir = _run(tmp_path, url, 60)
        command = ["undo", str(run_dir), "--endpoint", url, "--yes", *FAST]
        _kill_when(command, lambda: _actions(run_dir, "sending") >= 25)
        assert len(_tasks(url)) > 0  # not all gone yet
        done = cli(*command, "--json", env=ENV, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outcomes"] == {"done": 60}
        assert _tasks(url) == []
        again = cli(*command, "--json", env=ENV)
        assert json.loads(again.stdout)["requests"] == 0
