"""Load + validate + plan of a large inventory, against ``pandas.read_excel`` alone.

    python bench/bench_load.py [--rows 100000] [--repeat 3] [--keep DIR]

Writes a ``--rows`` inventory with the samples generator, then times, each in a fresh
interpreter (imports not timed, so that the peak RSS measured is the path's own):

* ``pandas.read_excel(path, sheet_name=None, engine="openpyxl")``: the baseline (once: slow);
* ``pandas.read_excel(..., engine="calamine")``: for reference;
* ``bulkscan.runner.prepare(path)``: load, validate and plan, as ``bulkscan run`` does
  (the cycle collector paused throughout, see ``loader.paused_gc``);
* the same three steps timed one by one, for where the time goes;
* ``runner.prepare`` with the collector never paused: what the pause gains.

Prints best-of-``--repeat`` times, the ratio to the baseline (goal: at least 8x) and the
peak RSS (goal: under 1 GiB).  Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from _common import heading, peak_rss, run_child

if TYPE_CHECKING:
    from collections.abc import Iterator

GOAL_RATIO = 8.0
MEMORY_BUDGET = 1 << 30
_MODES = {
    "pandas-openpyxl": "pandas.read_excel(engine='openpyxl'), every sheet",
    "pandas-calamine": "pandas.read_excel(engine='calamine'), every sheet",
    "bulkscan": "bulkscan runner.prepare: load + validate + plan",
    "bulkscan-steps": "  load_input, validate, build_plan one by one",
    "bulkscan-gc-on": "  prepare, collector never paused",
}


def _child(mode: str, path: str) -> None:
    """Time one path on ``path`` and print {wall_s, peak_rss_bytes, detail} as JSON."""
    if mode.startswith("pandas-"):
        import pandas as pd

        engine: Literal["openpyxl", "calamine"] = (
            "openpyxl" if mode == "pandas-openpyxl" else "calamine"
        )
        started = time.perf_counter()
        frames = pd.read_excel(path, sheet_name=None, engine=engine)
        wall = time.perf_counter() - started
        detail = f"{sum(len(f) for f in frames.values())} row(s)"
    elif mode == "bulkscan-steps":
        wall, detail = _steps(path)
    else:
        from bulkscan import runner
        from bulkscan.input import loader

        if mode == "bulkscan-gc-on":  # every pause made a no-op
            for module in (loader, runner):
                module.__dict__["paused_gc"] = _collector_running
        started = time.perf_counter()
        plan = runner.prepare(path).plan
        wall = time.perf_counter() - started
        detail = f"{len(plan.tasks)} task(s) for {plan.instance_count} instance(s)"
    print(json.dumps({"wall_s": wall, "peak_rss_bytes": peak_rss(), "detail": detail}))


def _steps(path: str) -> tuple[float, str]:
    """Time load, validate and plan one by one (collector paused, as ``prepare`` does)."""
    from bulkscan.config import InputSettings
    from bulkscan.input.loader import load_input, paused_gc
    from bulkscan.input.validate import validate
    from bulkscan.plan import build_plan

    with paused_gc():
        marks = [time.perf_counter()]
        book = load_input(path)
        marks.append(time.perf_counter())
        validated = validate(book, InputSettings())
        marks.append(time.perf_counter())
        build_plan(validated)
        marks.append(time.perf_counter())
    load, check, plan = (b - a for a, b in itertools.pairwise(marks))
    return marks[-1] - marks[0], f"load {load:.2f} s, validate {check:.2f} s, plan {plan:.2f} s"


@contextlib.contextmanager
def _collector_running() -> Iterator[None]:
    """Stands in for ``paused_gc``: the collector left as it is."""
    yield


def _measure(mode: str, path: Path, repeat: int) -> dict[str, float | str]:
    runs = [run_child(__file__, mode, str(path)) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        "wall_s": best["wall_s"],
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "detail": best["detail"],
    }


def _report(rows: int, size: int, gen_s: float, figures: dict[str, dict[str, float | str]]) -> None:
    base = float(figures["pandas-openpyxl"]["wall_s"])
    print(f"inventory: {rows:,} rows, {size / 1e6:.1f} MB (written in {gen_s:.1f} s)")
    print(f"{'path':<54} {'time':>8} {'x faster':>9} {'peak RSS':>10}")
    for mode, label in _MODES.items():
        fig = figures[mode]
        wall = float(fig["wall_s"])
        rss = int(fig["peak_rss_bytes"]) / (1 << 20)
        print(f"{label:<54} {wall:>7.2f}s {base / wall:>8.1f}x {rss:>7.0f} MiB")
    ours = figures["bulkscan"]
    ratio = base / float(ours["wall_s"])
    gc_on = float(figures["bulkscan-gc-on"]["wall_s"])
    paused = float(ours["wall_s"])
    memory = int(ours["peak_rss_bytes"]) / MEMORY_BUDGET
    print(f"bulkscan: {ours['detail']}; steps: {figures['bulkscan-steps']['detail']}")
    print(
        f"ratio pandas+openpyxl / bulkscan = {ratio:.2f}x (goal >= {GOAL_RATIO:g}x: "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}); peak RSS {memory:.0%} of 1 GiB"
    )
    print(
        f"collector paused in prepare: {gc_on / paused:.2f}x the speed with it running "
        f"(ratio {base / paused:.2f}x paused, {base / gc_on:.2f}x running)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="inventory rows (100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fast path (3)")
    parser.add_argument("--keep", type=Path, help="write the inventory here and keep it")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    from bulkscan.input.samples import write_large_inventory

    print(heading("bench_load", ("pandas", "openpyxl", "python-calamine")))
    with tempfile.TemporaryDirectory(prefix="bulkscan-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"inventory-{args.rows}.xlsx"
        started = time.perf_counter()
        write_large_inventory(path, args.rows)
        gen_s = time.perf_counter() - started
        figures = {"pandas-openpyxl": _measure("pandas-openpyxl", path, 1)}
        for mode in ("pandas-calamine", "bulkscan", "bulkscan-steps", "bulkscan-gc-on"):
            figures[mode] = _measure(mode, path, args.repeat)
        _report(args.rows, path.stat().st_size, gen_s, figures)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
