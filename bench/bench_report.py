"""Writing the result workbook of a large run: wall time and peak memory (budget: 1 GiB).

    python bench/bench_report.py [--rows 100000] [--keep DIR]

Builds a real journal for ``--rows`` input rows (the samples generator's large inventory,
loaded, validated and planned as ``bulkscan run`` does), gives its tasks mixed outcomes
through the journal's own API, then rebuilds ``results.xlsx`` and ``retry.xlsx`` in a fresh
subprocess, so that the peak RSS measured (``ru_maxrss``) is the report's own.  The work
directory is on /dev/shm when there is one, so the journal's fsyncs do not dominate setup.
Prints figures and the ratio to the budget; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUDGET_BYTES = 1 << 30


def _peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM (reset by exec), else ``ru_maxrss``.

    ``ru_maxrss`` survives ``exec``, so a child would inherit its parent's peak; the parent
    therefore stays small (the journal is built in a subprocess of its own) either way.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(run_dir: str) -> None:
    """Rebuild the report of ``run_dir`` and print this process's figures as JSON."""
    from bulkscan.report.results import build_report

    baseline = _peak_rss()
    started = time.perf_counter()
    paths = build_report(run_dir)
    wall = time.perf_counter() - started
    peak = _peak_rss()
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_bytes": peak,
                "baseline_rss_bytes": baseline,
                "results_bytes": paths.results.stat().st_size,
                "retry_rows": paths.retry_rows,
            }
        )
    )


_CREATED = (200, None, "created", "create task template success")
_REFUSED = (400, "DSC.40000011", "task-permanent", "HTTP 400 DSC.40000011: Invalid 'start_time'")
_UNAVAILABLE = (503, "APIG.0613", "transient", "HTTP 503 APIG.0613: IAM service unavailable")


def _attempt(task: Any, n: int, k: int, at: dt.datetime, answer: tuple[Any, ...]) -> Any:
    from bulkscan.events import Attempt

    status, code, verdict, message = answer
    path = f"/v1/{task.project_id}/metadata/task-templates"
    return Attempt(
        at, task.key, k, "POST", path, status, code, f"req-{n}-{k}", 0.05, verdict, message
    )


def _outcomes(journal: Any, rng: random.Random) -> int:
    """Created 85%, failed 5%, gave up 5%, exists 3%, never sent 2%; returns attempts made."""
    from bulkscan.run.states import TaskState

    at = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.UTC)
    attempts = 0
    for n, task in enumerate(journal.tasks()):
        at += dt.timedelta(milliseconds=200)
        draw = rng.random()
        if draw < 0.85:
            created = _attempt(task, n, 1, at, _CREATED)
            journal.record_attempt(created, state=TaskState.CREATED, task_id=str(100_000 + n))
            attempts += 1
        elif draw < 0.90:
            refused = _attempt(task, n, 1, at, _REFUSED)
            journal.record_attempt(refused, state=TaskState.FAILED, error_msg=_REFUSED[3])
            attempts += 1
        elif draw < 0.95:
            for k in (1, 2):
                failed = _attempt(task, n, k, at, _UNAVAILABLE)
                journal.record_attempt(failed, state=TaskState.PENDING, error_msg=_UNAVAILABLE[3])
            journal.set_state(task.key, TaskState.GAVE_UP, error_msg=_UNAVAILABLE[3])
            attempts += 2
        elif draw < 0.98:
            journal.set_state(task.key, TaskState.EXISTS, task_id=str(900_000 + n))
    return attempts


def _build(work: Path, rows: int) -> tuple[Path, dict[str, float]]:
    from bulkscan import __version__
    from bulkscan.config import InputSettings
    from bulkscan.input.loader import load_input
    from bulkscan.input.samples import write_large_inventory
    from bulkscan.input.validate import validate
    from bulkscan.plan import RunInput, build_plan, plan_hash
    from bulkscan.run.rundir import create_run_dir
    from bulkscan.run.store import Journal

    figures: dict[str, float] = {}
    source = work / "large.xlsx"
    started = time.perf_counter()
    write_large_inventory(source, rows)
    book = load_input(source)
    plan = build_plan(validate(book, InputSettings()))
    figures["prepare_s"] = time.perf_counter() - started
    run_dir = create_run_dir(work / "reports", source)
    started = time.perf_counter()
    with Journal.create(
        run_dir,
        run_input=RunInput.from_book(book, plan),
        plan=plan,
        plan_hash=plan_hash(plan),
        settings={"rate_per_s": 5.0, "concurrency": 8, "auth_method": "aksk"},
        version=__version__,
        command=["bulkscan", "run", str(source), "--yes"],
    ) as journal:
        journal.mark_started()
        figures["attempts"] = _outcomes(journal, random.Random(7))
        journal.mark_ended("done", learned_rate_per_s=5.0)
    figures["journal_s"] = time.perf_counter() - started
    figures["rows"] = len(book.instances.rows)
    figures["tasks"] = len(plan.tasks)
    return run_dir, figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    parser.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--build", metavar="WORK", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    if args.build:
        run_dir, figures = _build(Path(args.build), args.rows)
        print(json.dumps({"run_dir": str(run_dir), **figures}))
        return
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        figures = _subprocess("--rows", str(args.rows), "--build", str(work))
        child = _subprocess("--child", figures.pop("run_dir"))
    _print(figures, child)


def _subprocess(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _print(figures: dict[str, Any], child: dict[str, Any]) -> None:
    mib = 1024 * 1024
    peak = child["peak_rss_bytes"]
    print(
        f"input: {figures['rows']:,.0f} rows, {figures['tasks']:,.0f} tasks, "
        f"{figures['attempts']:,.0f} attempts "
        f"(prepared in {figures['prepare_s']:.1f} s, journal in {figures['journal_s']:.1f} s)"
    )
    print(
        f"report: {child['wall_s']:.1f} s wall, "
        f"{figures['rows'] / child['wall_s']:,.0f} rows/s, "
        f"results.xlsx {child['results_bytes'] / mib:.1f} MiB, "
        f"retry.xlsx {child['retry_rows']:,.0f} rows"
    )
    print(
        f"peak RSS: {peak / mib:.0f} MiB (interpreter and imports: "
        f"{child['baseline_rss_bytes'] / mib:.0f} MiB); "
        f"{peak / BUDGET_BYTES:.2f} of the 1 GiB budget"
    )


if __name__ == "__main__":
    main()
