"""CPU per request of a ``bulkscan run`` process, as a user runs it, against a bare aiohttp loop.

    python bench/bench_cli_cpu.py [--requests 2000] [--small 200] [--rate 200] [--rounds 3]

A simulator runs in its own process on 127.0.0.1 (zero latency).  Each measured process is a
child of this one, and its CPU (user + system) comes from ``os.wait4`` when it ends:

* ``bulkscan run FILE --endpoint URL --rate R --yes`` with its stderr on a pseudo-terminal,
  so the progress bar is drawn as on a user's screen;
* a bare loop (``--child-bare``): one ``aiohttp`` session that signs and posts the same bodies
  at the same rate and concurrency, nothing else.

Two figures per path.  *While sending*: the child's CPU (sampled from ``/proc/PID/stat``
every 20 ms) between the first and the last request's arrival at the simulator, over the
requests in between: the cost per request plus the run's cost per second, as a user sees it
in ``top``; of it, the CPU of threads other than the main one (``/proc/PID/task``: the
progress line's redraws, the event loop's executor).  *Marginal*: each runs with ``--small``
and with ``--requests`` tasks; the difference of their CPU over the difference of their
requests (start-up cancels out; loading, planning and the result workbook per row do not).
The goal: bulkscan while sending at most 2x the bare loop.  The best of the rounds on each
path gives the ratio; as the machine's speed drifts between rounds (the bare loop's figure
moved from 0.56 to 0.92 ms in a day), the ratio of each round's two big runs, made back to
back, and their median are printed too.

Prints figures and the ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from _common import heading, sim_env
from bench_dispatch import CONCURRENCY, PROJECT, simulator, write_inventory

from bulkscan.dsc.signing import sign_headers
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bulkscan.models import TaskRequest


def _drain(fd: int) -> None:
    """Read a pseudo-terminal until its other end closes (a terminal that is never full)."""
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Usage:
    cpu_s: float  # user + system of the whole process
    wall_s: float
    # (time.time(), CPU so far, of it the CPU of threads other than the main one)
    samples: list[tuple[float, float, float]]

    def cpu_at(self, when: float) -> float:
        """The CPU used by ``when`` (linear between samples)."""
        return self._at(when, 1)

    def others_at(self, when: float) -> float:
        """The CPU that threads other than the main one (the progress line's redraws, the
        loop's executor) had used by ``when``, as far as the threads were still there."""
        return self._at(when, 2)

    def _at(self, when: float, field: int) -> float:
        times = [sample[0] for sample in self.samples]
        i = bisect.bisect_left(times, when)
        if i == 0:
            return self.samples[0][field]
        if i >= len(times):
            return self.samples[-1][field]
        before, after = self.samples[i - 1], self.samples[i]
        t0, t1, c0, c1 = before[0], after[0], before[field], after[field]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1


def _ticks(stat: Path) -> int:
    """User + system clock ticks from a ``/proc/.../stat`` file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _sample(pid: int, samples: list[tuple[float, float, float]], done: threading.Event) -> None:
    process = Path(f"/proc/{pid}")
    while not done.wait(0.02):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total = _ticks(process / "stat")
            others = 0
            for thread in (process / "task").iterdir():
                if thread.name != str(pid):
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        others += _ticks(thread / "stat")
            samples.append((time.time(), total * _TICK_S, others * _TICK_S))


def _cpu_of(argv: Sequence[str], *, tty: bool) -> Usage:
    """The CPU and wall time of one child process, with CPU samples along the way."""
    env = sim_env(COLUMNS="100")
    master, slave = pty.openpty() if tty else (-1, -1)
    started = time.perf_counter()
    child = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave if tty else subprocess.DEVNULL,
        env=env,
    )
    samples: list[tuple[float, float, float]] = []
    done = threading.Event()
    sampler = threading.Thread(target=_sample, args=(child.pid, samples, done), daemon=True)
    sampler.start()
    reader = None
    if tty:
        os.close(slave)
        reader = threading.Thread(target=_drain, args=(master,), daemon=True)
        reader.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if reader is not None:
        reader.join(timeout=5)
        os.close(master)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    others = samples[-1][2] if samples else 0.0
    return Usage(cpu, wall, [*samples, (time.time(), cpu, others)])


def _bulkscan(url: str, inventory: Path, rate: float, reports: Path) -> Usage:
    argv = [sys.executable, "-m", "bulkscan", "run", str(inventory), "--endpoint", url,
            "--rate", f"{rate:g}/s", "--concurrency", str(CONCURRENCY), "--yes",
            "--reports-dir", str(reports)]  # fmt: skip
    return _cpu_of(argv, tty=True)


def _bare(url: str, inventory: Path, rate: float) -> Usage:
    argv = [sys.executable, __file__, "--child-bare", url, str(inventory), f"{rate:g}"]
    return _cpu_of(argv, tty=False)


# --- the bare loop (a child process) -----------------------------------------------------------


async def _bare_loop(url: str, tasks: Sequence[TaskRequest], rate: float) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    loop = asyncio.get_running_loop()
    start = loop.time()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(i: int, task: TaskRequest) -> None:
            target = f"{url}/v1/{task.project_id}/metadata/task-templates"
            async with gate:
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                headers = sign_headers(
                    "POST",
                    target,
                    {"Content-Type": "application/json"},
                    task.body_bytes,
                    access_key=DEFAULT_AK,
                    secret_key=DEFAULT_SK,
                    project_id=task.project_id,
                )
                async with session.post(target, data=task.body_bytes, headers=headers) as ans:
                    await ans.read()
                    assert ans.status == 200, ans.status

        async with asyncio.TaskGroup() as group:
            for i, task in enumerate(tasks):
                group.create_task(post(i, task))


def _child_bare(url: str, inventory: str, rate: str) -> None:
    from bulkscan import runner

    prepared = runner.prepare(inventory)
    asyncio.run(_bare_loop(url, prepared.plan.tasks, float(rate)))


# --- the parent ------------------------------------------------------------------------------


async def _measure(args: argparse.Namespace, work: Path) -> None:
    sizes = (args.small, args.requests)
    books = {n: work / f"inv-{n}.xlsx" for n in sizes}
    for n, book in books.items():
        write_inventory(book, n)
    cpu: dict[tuple[str, int], float] = {}
    sending: dict[str, float] = {}
    others: dict[str, float] = {}  # of ``sending``, threads other than the main one
    pairs: list[dict[str, float]] = []  # each round's big runs, back to back
    async with simulator() as sim:
        for _ in range(args.rounds):
            pairs.append({})
            for n in sizes:
                for name in ("bare", "bulkscan"):
                    await sim.reset()
                    book = Path(books[n])
                    if name == "bare":
                        used = await asyncio.to_thread(_bare, sim.url, book, args.rate)
                    else:
                        reports = work / f"reports-{n}"
                        measure = _bulkscan
                        used = await asyncio.to_thread(measure, sim.url, book, args.rate, reports)
                    arrivals = await sim.arrivals()
                    first, last, between = arrivals[0], arrivals[-1], len(arrivals) - 1
                    per = (used.cpu_at(last) - used.cpu_at(first)) / between
                    per_others = max(0.0, used.others_at(last) - used.others_at(first)) / between
                    key = (name, n)
                    cpu[key] = min(cpu.get(key, float("inf")), used.cpu_s)
                    if n == args.requests:
                        if per < sending.get(name, float("inf")):
                            sending[name], others[name] = per, per_others
                        pairs[-1][name] = per
                    print(
                        f"    {name:<9} {n:>6} requests: CPU {used.cpu_s:6.2f} s, "
                        f"wall {used.wall_s:5.1f} s, {per * 1e3:.3f} ms per request while sending"
                        f" ({per_others * 1e3:.3f} in other threads)"
                    )
    _report(cpu, sending, others, sizes, rate=args.rate, rounds=args.rounds)
    ratios = sorted(p["bulkscan"] / p["bare"] for p in pairs)
    print(
        f"    ratio per round, the two runs back to back: {', '.join(f'{r:.2f}' for r in ratios)}"
        f"; median {statistics.median(ratios):.2f} (the machine's speed drifts between rounds;"
        " a pair shares it)"
    )


def _report(
    cpu: dict[tuple[str, int], float],
    sending: dict[str, float],
    others: dict[str, float],
    sizes: tuple[int, int],
    *,
    rate: float,
    rounds: int,
) -> None:
    small, big = sizes
    marginal: dict[str, float] = {}
    print(f"CPU per request at {rate:g}/s, concurrency {CONCURRENCY} (best of {rounds}):")
    for name in ("bare", "bulkscan"):
        marginal[name] = (cpu[(name, big)] - cpu[(name, small)]) / (big - small)
        print(
            f"    {name:<9} while sending {sending[name] * 1e3:6.3f} ms "
            f"({sending[name] * rate * 100:4.1f}% of a core; other threads "
            f"{others[name] * 1e3:.3f} ms); marginal "
            f"{marginal[name] * 1e3:6.3f} ms ({big} - {small} requests, whole process)"
        )
    print(
        f"    ratio bulkscan / bare while sending = {sending['bulkscan'] / sending['bare']:.2f} "
        f"(goal <= 2); marginal = {marginal['bulkscan'] / marginal['bare']:.2f}"
    )


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child-bare":
        _child_bare(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="tasks of the big run (2000)")
    parser.add_argument("--small", type=int, default=200, help="tasks of the small run (200)")
    parser.add_argument("--rate", type=float, default=200.0, help="rate, per s (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four runs (3)")
    args = parser.parse_args()
    print(heading("bench_cli_cpu", ("aiohttp",)))
    print(f"project {PROJECT}; every process a child of this one, CPU from os.wait4")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bulkscan-bench-") as tmp:
        asyncio.run(_measure(args, Path(tmp)))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
