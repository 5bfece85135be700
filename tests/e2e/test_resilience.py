"""Damaged sessions and concurrent use: a run rides through a crashed service and a dead
network, and a run directory is used by one bulkscan at a time.

* The simulator (a child process keeping its tasks in ``--state``) is killed with SIGKILL in
  the middle of a run and started again: every task ends created exactly once.
* The network between bulkscan and the service drops every connection for ten seconds (a
  TCP proxy on 127.0.0.1 resets every connection, open or new, for five seconds, then
  refuses every connection for five more): every task ends created exactly once.
* A second ``bulkscan run --resume`` on a run directory in use refuses, naming the process
  that holds it, and sends nothing; the first run finishes alone.
* A journal from a newer bulkscan, or a damaged one, is refused by ``report`` and by
  ``run --resume`` with one line, and nothing in the run directory changes.

The two ride-through runs use ``runner.run`` (what ``bulkscan run`` calls) with short
backoffs, so that the test waits for the outage, not for minute-long pauses after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from test_hostile import PROJECT, REGION, write_inventory

from bulkscan import runner
from bulkscan.config import DispatchSettings, InputSettings
from bulkscan.dsc.client import Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.events import TaskFinished
from bulkscan.run.rundir import JOURNAL_FILE
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from tests.e2e._cli import clean_env, cli, simulator_process, stop_process, wait_for_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

AK = "BULKSCANSIMULATORAK0"
SK = "bulkscan-simulator-sk-not-a-real-secret0"
ENV = clean_env(HUAWEICLOUD_SDK_AK=AK, HUAWEICLOUD_SDK_SK=SK)
N_TASKS = 30
QUICK = DispatchSettings(
    rate_per_s=20.0,
    concurrency=4,
    backoff_base_s=0.1,
    backoff_max_s=1.0,
    connect_timeout_s=1.0,
    read_timeout_s=3.0,
    grace_s=2.0,
    settle_s=1.0,
)


def _inventory(folder: Path, n: int = N_TASKS) -> Path:
    """``n`` databases, one task each."""
    headers = ["ins_id", "db_type", "project_id", "region"]
    rows = [[f"ins-{i:03}", "MySQL", PROJECT, REGION] for i in range(n)]
    return write_inventory(
        folder / "dbs.xlsx", headers, rows, [["profile", "max_sources"], ["default", 1]]
    )


# --------------------------------------------------------------------------- a simulator child


class SimulatorProcess:
    """``bulkscan simulate --state FILE`` in a child process that can be killed and restarted."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.folder = folder
        self.options = ["--state", str(folder / "state.json"), *options]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> str:
        self.starts += 1
        out = self.folder / f"simulator-{self.starts}.out"
        with out.open("wb") as sink:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bulkscan",
                    "simulate",
                    "--port",
                    str(self.port),
                    *self.options,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
        url = wait_for_url(self.proc, out)
        self.port = int(url.rsplit(":", 1)[1])  # a restart takes the same port
        return url

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# --------------------------------------------------------------------------- a TCP proxy


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop a connection with a TCP reset (no FIN, no answer)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            target.write(data)
            await target.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if not target.is_closing():
            target.write_eof()


class Proxy:
    """Forwards 127.0.0.1:port to the upstream port, or drops every connection on demand."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.resetting = False
        self.accepted = Counter[str]()
        self._server: asyncio.Server | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._reset_open()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def outage(self, reset_s: float, refuse_s: float) -> None:
        """Reset every connection for ``reset_s``, then refuse every one for ``refuse_s``."""
        self.resetting = True
        self._reset_open()
        await asyncio.sleep(reset_s)
        await self.close()  # nothing listens: connections are refused
        await asyncio.sleep(refuse_s)
        self.resetting = False
        await self.listen()

    def _reset_open(self) -> None:
        for client, upstream in list(self._open):
            _reset(client)
            _reset(upstream)
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.resetting:
            self.accepted["reset"] += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self.accepted["no upstream"] += 1
            _reset(writer)
            return
        self.accepted["forwarded"] += 1
        pair = (writer, up_writer)
        self._open.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open.discard(pair)
            for w in pair:
                w.close()


@contextlib.asynccontextmanager
async def proxied(upstream_port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(upstream_port)
    await proxy.listen()
    try:
        yield proxy
    finally:
        await proxy.close()


# --------------------------------------------------------------------------- ride-through runs


class CreatedCounter:
    """An observer that sets ``reached`` once ``at`` tasks have been created."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.created = 0
        self.reached = asyncio.Event()

    def __call__(self, event: Any) -> None:
        if isinstance(event, TaskFinished) and event.outcome == TaskState.CREATED:
            self.created += 1
            if self.created >= self.at:
                self.reached.set()


async def _run(prepared: runner.Prepared, url: str, reports: Path, observer: Any) -> Any:
    """Run, then resume while tasks are left *unknown*: a request cut after it was sent may
    or may not have created its task, so the run never resends it; it ends *stopped* (exit
    3), and a resume after the settle window looks each up and sends only the absent ones."""
    connection = runner.Connection(credentials=AkSk(AK, SK), endpoints=Endpoints(url))
    resume: Path | bool = False
    for _ in range(5):
        result = await runner.run(
            prepared,
            connection=connection,
            dispatch_settings=QUICK,
            reports_dir=reports,
            observer=observer,
            resume=resume,
        )
        if not result.counts.get(TaskState.UNKNOWN):
            return result
        assert result.status is runner.Status.STOPPED, result.status
        assert result.unfinished == result.counts[TaskState.UNKNOWN]
        resume = result.run_dir
    return result


async def _simulator_tasks(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_sim/tasks") as answer:
        tasks: list[dict[str, Any]] = await answer.json()
    return tasks


def _assert_created_exactly_once(
    result: Any, prepared: runner.Prepared, tasks: list[dict[str, Any]]
) -> list[Any]:
    """Every planned task created once, with the id the service gave it; returns attempts."""
    names = Counter(t["name"] for t in tasks)
    assert sorted(names) == sorted(t.name for t in prepared.plan.tasks)
    assert set(names.values()) == {1}, [n for n, c in names.items() if c > 1]
    ids = {t["name"]: t["id"] for t in tasks}
    assert result.dispatch.stop_reason == "done", result.dispatch.message
    with Journal.open(result.run_dir, readonly=True) as journal:
        for task in journal.tasks():
            assert task.state is TaskState.CREATED, (task.name, task.state, task.error_msg)
            assert task.task_id == ids[task.name]
        return list(journal.attempts())


@pytest.mark.slow
async def test_a_simulator_killed_mid_run_and_restarted_from_its_state_file(
    tmp_path: Path,
) -> None:
    prepared = runner.prepare(_inventory(tmp_path), settings=InputSettings())
    sim = SimulatorProcess(tmp_path, "--latency", "50ms", "--seed", "1")
    url = await asyncio.to_thread(sim.start)
    try:
        async with proxied(sim.port) as proxy:
            seen = CreatedCounter(at=8)

            async def crash_and_restart() -> int:
                await seen.reached.wait()
                sim.kill()
                created_before = len(await asyncio.to_thread(_state_tasks, tmp_path))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(sim.start)
                return created_before

            async with asyncio.timeout(60):
                crash = asyncio.create_task(crash_and_restart())
                result = await _run(prepared, proxy.url, tmp_path / "reports", seen)
                created_before = await crash
        tasks = await _simulator_tasks(url)
    finally:
        await asyncio.to_thread(sim.stop)
    attempts = _assert_created_exactly_once(result, prepared, tasks)
    assert sim.starts == 2 and created_before >= 8
    assert [a for a in attempts if a.status is None], "the crash was not met"


def _state_tasks(folder: Path) -> list[Any]:
    import json

    tasks: list[Any] = json.loads((folder / "state.json").read_text("utf-8"))["tasks"]
    return tasks


@pytest.mark.slow
async def test_a_network_that_drops_every_connection_for_ten_seconds(tmp_path: Path) -> None:
    prepared = runner.prepare(_inventory(tmp_path), settings=InputSettings())
    with simulator_process(tmp_path, "--latency", "20ms") as (url, _):
        port = int(url.rsplit(":", 1)[1])
        async with proxied(port) as proxy:
            seen = CreatedCounter(at=8)

            async def outage() -> None:
                await seen.reached.wait()
                await proxy.outage(reset_s=5.0, refuse_s=5.0)

            async with asyncio.timeout(90):
                cut = asyncio.create_task(outage())
                result = await _run(prepared, proxy.url, tmp_path / "reports", seen)
                await cut
        tasks = await _simulator_tasks(url)
    attempts = _assert_created_exactly_once(result, prepared, tasks)
    failed = [a.message or "" for a in attempts if a.status is None]
    assert proxy.accepted["reset"] > 0, proxy.accepted  # new connections reset...
    refused = [m for m in failed if "cannot connect" in m or "while connecting" in m]
    assert refused, failed  # ...then refused
    assert any("after sending" in m for m in failed), failed  # requests cut in flight


# --------------------------------------------------------------------------- one run at a time


def _wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_resume_of_a_run_directory_in_use_refuses_and_sends_nothing(
    tmp_path: Path,
) -> None:
    inventory = _inventory(tmp_path, n=15)
    reports = tmp_path / "reports"
    with simulator_process(tmp_path, "--latency", "150ms") as (url, _):
        common = ["--endpoint", url, "--rate", "3/s", "--concurrency", "2"]
        common += ["--reports-dir", str(reports)]
        first = subprocess.Popen(
            [sys.executable, "-m", "bulkscan", "run", str(inventory), *common, "--yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        try:
            _wait_until(lambda: any(reports.glob(f"*/{JOURNAL_FILE}")))
            (run_dir,) = reports.iterdir()
            _wait_until(lambda: _sent(run_dir) > 0)
            # Hold the first run still while the others try: it keeps its lock, and a loaded
            # machine cannot let it finish before they start.
            first.send_signal(signal.SIGSTOP)
            try:
                _try_resumes(inventory, common, run_dir, first.pid)
            finally:
                first.send_signal(signal.SIGCONT)
            report = cli("report", str(run_dir), env=ENV)  # reading needs no lock
            # 4 while the first run still sends, 0 if it ended in the meantime
            assert report.returncode in (0, 4), report.stderr[-3000:]
            _, err = first.communicate(timeout=60)
        finally:
            stop_process(first)
        assert first.returncode == 0, err[-3000:]
        tasks = asyncio.run(_simulator_tasks(url))
    names = Counter(t["name"] for t in tasks)
    assert len(names) == 15 and set(names.values()) == {1}
    with Journal.open(run_dir, readonly=True) as journal:
        assert journal.counts()[TaskState.CREATED] == 15
        assert journal.meta().stop_reason == "done"


def _try_resumes(inventory: Path, common: list[str], run_dir: Path, pid: int) -> None:
    for resume in (["--resume", str(run_dir)], ["--resume"]):
        second = cli("run", str(inventory), *common, *resume, "--yes", env=ENV)
        assert second.returncode == 2, second.stderr[-3000:]
        *plan, line = second.stderr.splitlines()  # the plan, then the refusal
        assert "Traceback" not in second.stderr and len(plan) <= 1, second.stderr
        refusal = f"run directory {run_dir} is in use by another bulkscan process"
        assert line.startswith(f"bulkscan: error: {refusal} (pid {pid})"), line
        assert second.stdout == ""


def _sent(run_dir: Path) -> int:
    with contextlib.suppress(Exception), Journal.open(run_dir, readonly=True) as journal:
        return len(journal.attempts())
    return 0


# --------------------------------------------------------------------------- untrusted journals


def _make_newer(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scramble_a_page(path: Path) -> None:
    """Garbage over the second page (a b-tree page of some table): the header survives."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page : page + 512] = bytes(range(256)) * 2
    path.write_bytes(bytes(data))


DAMAGES = {
    "newer": (_make_newer, "was written by a newer bulkscan (journal schema 2"),
    "truncated": (_truncate, "is damaged and cannot be used"),
    "scrambled": (_scramble_a_page, "is damaged and cannot be used"),
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(inventory, run directory) of a small finished run against the embedded simulator."""
    folder = tmp_path_factory.mktemp("finished")
    inventory = _inventory(folder, n=3)
    options = ["--simulate", "--yes", "--rate", "100/s", "--reports-dir", str(folder / "reports")]
    done = cli("run", str(inventory), *options, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (p for p in (folder / "reports").iterdir() if p.is_dir())
    return inventory, run_dir


def _snapshot(folder: Path) -> dict[str, bytes]:
    """The run's own files (the journal, events, workbooks), not SQLite's -wal/-shm or the lock."""
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if p.is_file() and p.name != ".lock" and not p.name.endswith(("-wal", "-shm"))
    }


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_newer_or_damaged_journal_is_refused_by_report_and_resume(
    damage: str, finished_run: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    inventory, original = finished_run
    run_dir = tmp_path / original.name
    shutil.copytree(original, run_dir)
    change, message = DAMAGES[damage]
    change(run_dir / JOURNAL_FILE)
    before = _snapshot(run_dir)
    resume = ["run", str(inventory), "--simulate", "--yes", "--resume", str(run_dir)]
    for args in (
        ["report", str(run_dir)],
        ["report", str(run_dir), "--json"],
        [*resume, "--reports-dir", str(tmp_path / "reports")],
    ):
        done = cli(*args, env=ENV)
        assert done.returncode == 2, (args, done.stderr[-3000:])
        *plan, line = done.stderr.splitlines()  # run refuses before it shows its plan
        assert "Traceback" not in done.stderr and plan == [], done.stderr
        assert line.startswith(f"bulkscan: error: {run_dir / JOURNAL_FILE} "), line
        assert message in line
        if "--json" in args:  # the error in the one JSON answer, too
            answer = json.loads(done.stdout)
            assert (answer["status"], answer["exit_code"]) == ("invalid", 2)
            assert message in answer["error"]
        else:
            assert done.stdout == ""
        assert _snapshot(run_dir) == before, f"{args[0]} changed the run directory"
    assert not (tmp_path / "reports").exists()
