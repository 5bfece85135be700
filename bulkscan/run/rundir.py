"""Run directories: where a run's files live, how a new one is named, how the latest is found.

A run directory ``reports/<input-stem>-<YYYYmmdd-HHMMSS>[-N]/`` holds the journal
(``journal.sqlite``), the event log (``events.jsonl``) and the result workbook.  One process at
a time writes to it: a writer holds an exclusive ``flock`` on ``<run_dir>/.lock``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
from pathlib import Path

from bulkscan.errors import JournalError

__all__ = [
    "EVENTS_FILE",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "create_run_dir",
    "find_latest_run",
    "local_now",
    "lock_run_dir",
]

JOURNAL_FILE = "journal.sqlite"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"


def local_now() -> dt.datetime:
    """The local time, with its offset."""
    return dt.datetime.now().astimezone()


def _stem(input_path: str | os.PathLike[str]) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(input_path).stem).strip("._") or "input"
    return stem[:80]


def create_run_dir(
    reports_dir: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    now: dt.datetime | None = None,
) -> Path:
    """A new, empty ``<reports_dir>/<input-stem>-<YYYYmmdd-HHMMSS>[-N]`` directory."""
    now = now or local_now()
    base = f"{_stem(input_path)}-{now:%Y%m%d-%H%M%S}"
    parent = Path(reports_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            candidate = parent / (base if n == 1 else f"{base}-{n}")
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()
                return candidate
    except OSError as exc:
        raise JournalError(
            f"cannot create a run directory in {parent}: {exc.strerror or exc}; "
            "choose another --reports-dir"
        ) from None
    raise JournalError(f"{parent} already has 999 runs named {base}: clean up old runs")


def find_latest_run(
    reports_dir: str | os.PathLike[str], input_path: str | os.PathLike[str]
) -> Path | None:
    """The newest run directory of ``input_path`` (by its name) that holds a journal."""
    pattern = re.compile(re.escape(_stem(input_path)) + r"-(\d{8}-\d{6})(?:-(\d+))?$")
    best: tuple[str, int] | None = None
    found: Path | None = None
    parent = Path(reports_dir)
    if not parent.is_dir():
        return None
    for entry in parent.iterdir():
        m = pattern.match(entry.name)
        if not m or not (entry / JOURNAL_FILE).is_file():
            continue
        rank = (m.group(1), int(m.group(2) or 1))
        if best is None or rank > best:
            best, found = rank, entry
    return found


def lock_run_dir(run_dir: Path) -> int:
    """An exclusive, non-blocking flock on ``run_dir/.lock``; the fd holds it until closed."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise JournalError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"run directory {run_dir} is in use by another bulkscan process (pid {holder}); "
            "wait for it to finish, or stop it, before resuming"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd
