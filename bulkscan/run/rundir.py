"""Run directories: where a run's files live, how a new one is named, how the latest is found.

A run directory ``reports/<input-stem>-<YYYYmmdd-HHMMSS>[-N]/`` holds the journal
(``journal.sqlite``), the event log (``events.jsonl``) and the result workbook.  One process at
a time writes to it: a writer holds an exclusive ``flock`` on ``<run_dir>/.lock``.

Two runs of the same input may use different run directories, so a run that sends also holds
a *sending lock* per service account and project: one file per (endpoint, project, credential
identity) under the user's state directory (``$BULKSCAN_STATE_DIR``, else
``$XDG_STATE_HOME/bulkscan``, else ``~/.local/state/bulkscan``), named by a hash of the three
(no key or token is stored).  It says which pid and run directory hold it.  ``flock`` is
released by the kernel when a process dies, so a lock whose holder is gone is taken over,
and said so (a ``LockTakenOver`` event: the holder's run may need a resume).
This cannot stop two machines, or two users with different state directories.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bulkscan.errors import JournalError
from bulkscan.events import LockTakenOver, local_now
from bulkscan.i18n import _

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Iterator

    from bulkscan.events import Observer

__all__ = [
    "HeldLocks",
    "EVENTS_FILE",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "STATE_DIR_ENV",
    "RunLockedError",
    "SendTarget",
    "create_run_dir",
    "find_latest_run",
    "journal_of",
    "lock_run_dir",
    "lock_sending",
    "remove_unused_run_dir",
    "run_dir_user",
    "state_dir",
]

JOURNAL_FILE = "journal.sqlite"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = ".lock"
STATE_DIR_ENV = "BULKSCAN_STATE_DIR"
_NOTE_BYTES = 4096  # the most of a lock file's note that is read


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
            _(
                "cannot create a run directory in {parent}: {error}; choose another --reports-dir"
            ).format(parent=parent, error=exc.strerror or exc)
        ) from None
    raise JournalError(f"{parent} already has 999 runs named {base}: clean up old runs")


def remove_unused_run_dir(run_dir: Path) -> None:
    """Remove ``run_dir`` if it holds nothing but its lock (a run whose journal could not be
    created): left behind, it would be one more run to wonder about.  Anything else in it
    keeps it where it is."""
    with contextlib.suppress(OSError):
        if {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()


def journal_of(run_dir: str | os.PathLike[str]) -> Path:
    """The journal of ``run_dir``; a ``JournalError`` saying what was given instead (nothing
    there, a file such as the inventory, a folder without a journal)."""
    run_dir = Path(run_dir)
    path = run_dir / JOURNAL_FILE
    if path.is_file():
        return path
    if not run_dir.exists():
        why = _("{run_dir} not found")
    elif not run_dir.is_dir():
        why = _("{run_dir} is a file, not a run directory")
    else:
        why = _("{run_dir} has no {journal}: it is not a bulkscan run directory")
    raise JournalError(
        _("{why} (give the directory that bulkscan run created under reports/)").format(
            why=why.format(run_dir=run_dir, journal=JOURNAL_FILE)
        )
    )


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
        fd = _flock(path, 0o644, what="")
    except _Held as held:
        holder = held.note[:32].decode("ascii", "replace").strip() or "unknown"
        raise JournalError(
            _(
                "run directory {run_dir} is in use by another bulkscan process (pid {pid}); "
                "wait for it to finish, or stop it, before resuming"
            ).format(run_dir=run_dir, pid=holder)
        ) from None
    _rewrite(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def run_dir_user(run_dir: Path) -> str | None:
    """The pid of the live process that holds ``run_dir`` (a run sending, a command acting on
    its tasks), or None when none does (never run, ended, or killed: the kernel released its
    lock).  Looks with a shared lock taken and dropped at once, so it never waits."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    return None


class _Held(Exception):
    """Another process holds the lock; ``note`` is what it wrote in the lock file."""

    def __init__(self, note: bytes) -> None:
        super().__init__()
        self.note = note


def _flock(path: Path, mode: int, *, what: str) -> int:
    """An fd holding an exclusive, non-blocking flock on ``path`` (made with ``mode``), until
    closed; ``_Held`` when another process holds it, ``JournalError`` when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    except OSError as exc:
        raise JournalError(f"cannot open {what}{path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        note = os.pread(fd, _NOTE_BYTES, 0)
        os.close(fd)
        raise _Held(note) from None
    return fd


def _rewrite(fd: int, note: bytes) -> None:
    """Replace the note in a lock file held through ``fd``."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, note, 0)


# --- the sending lock: one run at a time per service account and project --------------------


class RunLockedError(JournalError):
    """Another live bulkscan process is sending to the same project with the same account."""


@dataclass(frozen=True, slots=True)
class SendTarget:
    """Where tasks go: the endpoint URL, the project, and who sends (a hash, never the key)."""

    endpoint: str
    project_id: str
    identity: str

    def lock_name(self) -> str:
        text = "\n".join((self.endpoint, self.project_id, self.identity))
        return hashlib.sha256(text.encode()).hexdigest()[:40] + ".lock"


def state_dir() -> Path:
    """The state directory: ``$BULKSCAN_STATE_DIR``, else the XDG state home's ``bulkscan``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "bulkscan"


class HeldLocks:
    """The sending locks a run holds: called with the run directory, records it in them
    (once it exists).  ``released_at``: when another run last let one of them go (wall-clock
    seconds; 0 when none ever did), so that what was read of the service before is known to
    predate, or not, what that run sent."""

    __slots__ = ("_held", "released_at")

    def __init__(self, held: list[int], released_at: float) -> None:
        self._held = held
        self.released_at = released_at

    def __call__(self, run_dir: Path) -> None:
        _record(self._held, run_dir)


@contextlib.contextmanager
def lock_sending(targets: Iterable[SendTarget], observer: Observer) -> Iterator[HeldLocks]:
    """Hold the sending lock of every target while the block runs; refuse if one is held.

    Yields the ``HeldLocks``.  Locks left by a process that died are taken over, with one
    ``LockTakenOver`` per run they name.  A lock file's time is that of its last release (its
    note is cleared then) or take.
    """
    folder = state_dir() / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(
            f"cannot create the lock directory {folder}: {exc.strerror or exc}; "
            f"set {STATE_DIR_ENV} to a writable directory"
        ) from None
    held: list[int] = []
    left: dict[tuple[str, str], list[str]] = {}  # (run_dir, pid) → projects
    released_at = 0.0
    try:
        for target in sorted(set(targets), key=SendTarget.lock_name):
            path = folder / target.lock_name()
            with contextlib.suppress(OSError):  # no file yet: never held
                released_at = max(released_at, path.stat().st_mtime)
            held.append(_take(path, target, left))
        for (run_dir, pid), projects in left.items():
            observer(LockTakenOver(run_dir, pid, not _alive(pid), ", ".join(sorted(projects))))
        yield HeldLocks(held, released_at)
    finally:
        for fd in held:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _record(held: list[int], run_dir: Path) -> None:
    for fd in held:
        mine = json.loads(os.pread(fd, _NOTE_BYTES, 0) or b"{}") | {"run_dir": str(run_dir)}
        _rewrite(fd, json.dumps(mine).encode())


def _alive(pid: str) -> bool:
    """Whether process ``pid`` exists (of any user)."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _take(path: Path, target: SendTarget, left: dict[tuple[str, str], list[str]]) -> int:
    try:
        fd = _flock(path, 0o600, what="the lock ")
    except _Held as held:
        holder = _holder(held.note)
        raise RunLockedError(
            f"another bulkscan run (pid {holder.get('pid', 'unknown')}, run directory "
            f"{holder.get('run_dir', 'unknown')}) is sending to project {target.project_id} "
            f"at {target.endpoint} with the same credentials; nothing was sent: wait for it "
            "to finish, then run again or --resume"
        ) from None
    holder = _holder(os.pread(fd, _NOTE_BYTES, 0))
    if holder:
        owner = (str(holder.get("run_dir", "unknown")), str(holder.get("pid", "unknown")))
        left.setdefault(owner, []).append(target.project_id)
    _rewrite(fd, json.dumps({"pid": os.getpid(), "project_id": target.project_id}).encode())
    return fd


def _holder(raw: bytes) -> dict[str, object]:
    """Who a sending lock's note names (a note that is not JSON is taken for a pid)."""
    try:
        found = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {"pid": raw[:32].decode("ascii", "replace").strip() or "unknown"}
    return found if isinstance(found, dict) else {}
