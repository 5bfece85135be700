"""What the benchmarks share: the figures' heading, peak memory, and measuring in a child.

A child ``bulkscan`` gets the environment the end-to-end tests give theirs (``sim_env``,
from tests/e2e/_cli.py: no credential or bulkscan setting of the developer's, the
simulator's keys).

Each figure that needs its own peak memory is measured in a fresh interpreter running
``python bench/<script>.py --child MODE ...``, which prints one JSON line on stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The repository root, for tests/e2e/_cli.py (a benchmark runs as ``python bench/<script>.py``).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e._cli import sim_env

__all__ = ["heading", "peak_rss", "run_child", "scratch_dir", "sim_env"]


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM (reset by exec), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_child(script: str, *args: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh interpreter; its last stdout line as JSON."""
    done = subprocess.run(
        [sys.executable, script, "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} --child {' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def heading(title: str, packages: tuple[str, ...]) -> str:
    """Date, machine and the versions that shape the figures."""
    versions = ", ".join(f"{name} {_version(name)}" for name in ("bulkscan", *packages))
    return (
        f"{title}\n"
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %z}; Python {platform.python_version()}"
        f" on {platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)\n{versions}"
    )


def scratch_dir() -> str | None:
    """A RAM-backed folder for temporary files when there is one (fsyncs stay cheap)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
