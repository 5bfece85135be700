"""Wall time of ``bulkscan run`` against a per-minute quota whose 429s state no limit.

    python bench/bench_quota.py [--tasks 60] [--offsets 0,2,30,58] [--real]

The simulator runs in its own process (``bulkscan simulate --quota 30/min --quota-unstated``:
fixed windows aligned to the clock, 429 ``APIG.0308`` with neither a limit nor
``Retry-After``, every request to the project counted), and so does each ``bulkscan run``
(the real CLI, ``--endpoint`` the simulator, ``--yes``, with its default checks: the asset
centre's and the task listings go first, in the same window as the first creates).  Each
run is started so that its first request reaches the simulator at the given offset into a
window (the time from starting the CLI to that request is measured first); the offset
actually met is shown.

By default the clock is scaled by 1/10, so the figures take seconds, not minutes: a
"minute" of 6 s (``--quota 30/6s``), the client at 50/s instead of 5/s and told to probe
6-s windows (``--quota-windows 6s``); offsets are given in real-minute seconds and scaled
too.  ``--real`` runs one real minute (30/min, 5/s, the default windows) at the first offset.

Figures: the span from the run's first request to its last create (from the simulator's
arrival and creation times), the ideal, and their ratio (goal: at most 1.15); the
refusals, and what the run said about the quota.  The ideal is the earliest time at which
the quota could have admitted the last of the requests it admitted (listings and creates),
for a sender that knew the quota and went no faster than the configured rate: requests
``1/rate`` apart, each that would be the (quota + 1)-th of its window moved to the next
window's opening.  ``--no-remote-check`` measures runs without the asset-centre check.

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import heading, sim_env

if TYPE_CHECKING:
    from collections.abc import Callable

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
REGION = "cn-north-4"
QUOTA = 30
REAL_MINUTE_S = 60.0
REAL_RATE = 5.0
SCALE = 0.1  # a scaled "minute" lasts 6 s
_RUN_TIMEOUT_S = 900.0


def ideal_s(*, offset: float, n: int, quota: int, period: float, rate: float) -> float:
    """When the quota could have admitted the ``n``-th request at the earliest (see above)."""
    t, last, used = 0.0, 0.0, 0
    window = math.floor(offset / period)
    for _ in range(n):
        if math.floor((offset + t) / period) != window:
            window, used = math.floor((offset + t) / period), 0
        if used == quota:
            window, used = window + 1, 0
            t = window * period - offset
        used += 1
        last = t
        t += 1 / rate
    return last


def write_inventory(path: Path, n: int) -> Path:
    """``n`` instances in one project, one task each."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    for i in range(n):
        sheet.append([f"quota-{i:04}", "MySQL", PROJECT, REGION, "single"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "task_name", "max_sources"])
    profiles.append(["single", "ONCE", "{profile}-{seq:04}", 1])
    book.save(path)
    return path


class Sim:
    """``bulkscan simulate`` in a child process, and its control routes."""

    def __init__(self, quota: str, log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bulkscan", "simulate", "--port", "0",
             "--quota", quota, "--quota-unstated"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = self._wait_for_url(log)

    def _wait_for_url(self, log: Path) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"listening on (\S+)", log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"the simulator did not start: {log.read_text(errors='replace')}")

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if data is None else "POST"
        request = urllib.request.Request(f"{self.url}/_sim/{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:  # 127.0.0.1 only
            return json.load(answer)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


def run_cli(
    sim: Sim,
    inventory: Path,
    work: Path,
    rate: float,
    windows: str,
    *,
    go: Callable[[], None],
    extra: tuple[str, ...] = (),
) -> tuple[float, float, str]:
    """One ``bulkscan run --yes`` to the end, started once ``go()`` returns: (when it was
    started, the seconds from then to its end, its stderr)."""
    sim.control("reset", {})
    go()
    started = time.time()
    child = subprocess.Popen(
        [sys.executable, "-m", "bulkscan", "run", str(inventory), "--endpoint", sim.url,
         "--yes", "--rate", f"{rate:g}/s", "--quota-windows", windows, *extra,
         "--reports-dir", str(work / f"reports-{time.monotonic_ns()}")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=sim_env(),
    )  # fmt: skip
    try:
        _, stderr = child.communicate(timeout=_RUN_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
    if child.returncode != 0:
        raise SystemExit(f"bulkscan run failed ({child.returncode}):\n{stderr[-3000:].decode()}")
    return started, time.time() - started, stderr.decode(errors="replace")


def go_ahead_s(sim: Sim, work: Path, rate: float, windows: str, extra: tuple[str, ...]) -> float:
    """Seconds from starting the CLI to the run's first request, on this machine now (the
    median of three runs of one task)."""
    one = write_inventory(work / "one.xlsx", 1)
    leads = []
    for _ in range(3):
        started, _, _ = run_cli(sim, one, work, rate, windows, go=lambda: None, extra=extra)
        leads.append(min(sim.control("stats")["arrivals"]) - started)
    return sorted(leads)[1]


def start_at(offset: float, period: float, lead: float) -> None:
    """Sleep until ``lead`` seconds before the clock is ``offset`` into a window."""
    now = time.time()
    target = math.floor(now / period) * period + offset - lead
    while target < now + 0.05:
        target += period
    time.sleep(target - now)


def measure(
    sim: Sim, inventory: Path, work: Path, *, offset: float, period: float, rate: float,
    windows: str, lead: float, extra: tuple[str, ...] = (),
) -> dict[str, Any]:  # fmt: skip
    go = functools.partial(start_at, offset, period, lead)
    _, wall, stderr = run_cli(sim, inventory, work, rate, windows, go=go, extra=extra)
    stats = sim.control("stats")
    arrivals = sorted(stats["arrivals"])
    refused = sum(p["throttled"] for p in stats["by_project"].values())
    last_created = max(task["created_at"] for task in sim.control("tasks"))
    # the requests admitted up to the last create (the run's closing listing comes after);
    # a refusal after it would only make the ideal shorter
    admitted = sum(1 for a in arrivals if a <= last_created) - refused
    first = arrivals[0]
    met = first % period
    ideal = ideal_s(offset=met, n=admitted, quota=QUOTA, period=period, rate=rate)
    said = [line for line in stderr.splitlines() if line.startswith("rate ")]
    return {
        "offset": met, "span": last_created - first,
        "ideal": ideal, "wall": wall, "requests": admitted, "refused": refused, "said": said,
    }  # fmt: skip


def _row(label: str, figures: dict[str, Any], scale: float) -> str:
    ratio = figures["span"] / figures["ideal"] if figures["ideal"] > 0 else float("nan")
    return (
        f"{label}: first request {figures['offset'] / scale:5.1f} s into the minute; "
        f"{figures['requests']} requests admitted, {figures['refused']} refused; "
        f"{figures['span']:6.2f} s vs ideal {figures['ideal']:6.2f} s: {ratio:.3f}x "
        f"(goal <= 1.15); CLI from start to exit {figures['wall']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=60, help="tasks to create (60)")
    parser.add_argument(
        "--offsets", default="0,2,30,58", help="seconds into the minute to start at (0,2,30,58)"
    )
    parser.add_argument("--real", action="store_true", help="one real minute at the first offset")
    parser.add_argument(
        "--no-remote-check", action="store_true", help="runs without the asset-centre check"
    )
    args = parser.parse_args()
    extra = ("--no-remote-check",) if args.no_remote_check else ()
    offsets = [float(x) for x in args.offsets.split(",")]
    scale = 1.0 if args.real else SCALE
    period, rate = REAL_MINUTE_S * scale, REAL_RATE / scale
    windows = "1min,1h" if args.real else f"{period:g}s"
    quota = f"{QUOTA}/{period:g}s"
    print(heading("bench_quota", ("aiohttp",)))
    if args.real:
        print(f"real clock: quota {QUOTA}/min not stated, client at {rate:g}/s")
        offsets = offsets[:1]
    else:
        print(
            f"scaled clock (x{scale:g}): a 'minute' of {period:g} s (--quota {quota}), "
            f"the client at {rate:g}/s (5/s at full scale) with --quota-windows {windows}; "
            "offsets in full-scale seconds"
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bulkscan-bench-") as tmp:
        work = Path(tmp)
        inventory = write_inventory(work / "dbs.xlsx", args.tasks)
        sim = Sim(quota, work / "simulator.log")
        try:
            lead = go_ahead_s(sim, work, rate, windows, extra)
            check = "without" if extra else "with"
            print(f"{check} the asset-centre check; from start to the first request: {lead:.3f} s")
            for offset in offsets:
                figures = measure(sim, inventory, work, offset=offset * scale, period=period,
                                  rate=rate, windows=windows, lead=lead, extra=extra)  # fmt: skip
                print(_row(f"{args.tasks} tasks", figures, scale))
                for line in figures["said"]:
                    print(f"    {line}")
            if not args.real:
                figures = measure(sim, inventory, work, offset=offsets[0] * scale, period=period,
                                  rate=rate, windows="none", lead=lead, extra=extra)  # fmt: skip
                print(_row("--quota-windows none (halving alone)", figures, scale))
        finally:
            sim.close()
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
