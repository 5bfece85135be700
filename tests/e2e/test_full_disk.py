"""A disk that fills while a run writes its journal: a clear stop, and never a damaged journal.

Two ways to fill a disk in a test: a cap on the size of every file the child writes
(``RLIMIT_FSIZE``: portable), and a small tmpfs mounted in a mount namespace of the child's
own (``unshare``: where the machine allows it), which fills as a real disk does, across files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from tests.e2e._cli import cli, sim_env, simulator_process

SAMPLE = Path(__file__).resolve().parents[2] / "inputs" / "sample.xlsx"


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


def test_a_journal_that_cannot_be_created_leaves_nothing_behind(tmp_path: Path) -> None:
    """The journal outgrows what may be written before anything is sent: the run stops,
    says nothing was sent, and leaves no run directory to resume by mistake."""
    reports = tmp_path / "reports"
    done = cli(
        "run", SAMPLE, "--simulate", "--yes", "--reports-dir", reports,
        env=sim_env(), cwd=tmp_path, file_size_cap=64 * 1024,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    _no_traceback(done.stdout, done.stderr)
    assert "Nothing was sent" in done.stderr and "run again" in done.stderr
    assert "resume" not in done.stderr.replace("--resume", "")
    assert [p for p in reports.iterdir() if p.is_dir()] == []
    again = cli(
        "run", SAMPLE, "--simulate", "--yes", "--reports-dir", reports, env=sim_env(), cwd=tmp_path
    )  # fmt: skip
    assert again.returncode == 0, again.stderr


_UNSHARE = shutil.which("unshare")


def _in_small_tmpfs(mount: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` (sh) in a mount namespace of its own, with a 200 KiB tmpfs on ``mount``
    (the mount ends with the namespace)."""
    assert _UNSHARE is not None
    return subprocess.run(
        [_UNSHARE, "--user", "--map-root-user", "--mount", "sh", "-c",
         f"mount -t tmpfs -o size=200k tmpfs '{mount}' && {script}"],
        capture_output=True, text=True, timeout=120, check=False, env=sim_env(),
    )  # fmt: skip


def _can_mount(tmp_path: Path) -> bool:
    if _UNSHARE is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    return _in_small_tmpfs(probe, "true").returncode == 0


def test_a_disk_that_fills_as_the_journal_is_made_leaves_it_whole(tmp_path: Path) -> None:
    """On a 200 KiB disk the journal of the sample (about 140 KiB) fits, its write-ahead log
    does not: the run stops with a clear message, and once there is room again the run
    resumes and finishes.  (A journal made in WAL mode was left with its tables and without
    its rows: closing could not checkpoint them, and a resume found it damaged.)"""
    if not _can_mount(tmp_path):
        pytest.skip("no mount namespace here (unshare/mount not allowed)")
    disk = tmp_path / "disk"
    disk.mkdir()
    reports = disk / "reports"
    py = f"'{sys.executable}' -m bulkscan"
    with simulator_process(tmp_path, env=sim_env()) as (url, _):
        run = f"{py} run '{SAMPLE}' --endpoint {url} --yes --reports-dir '{reports}'"
        script = (
            f"{run} > '{tmp_path}/first.out' 2> '{tmp_path}/first.err'; echo $? > '{tmp_path}/rc'; "
            f"mount -o remount,size=8m '{disk}' && {run} --resume; "
            f"cp -r '{reports}' '{tmp_path}/kept'"
        )
        done = _in_small_tmpfs(disk, script)
    first_err = (tmp_path / "first.err").read_text()
    _no_traceback(first_err, done.stdout, done.stderr)
    assert (tmp_path / "rc").read_text().strip() == "3", first_err
    assert "is the disk full" in first_err, first_err
    assert done.returncode == 0, done.stderr
    assert "created        16" in done.stdout, done.stdout + done.stderr
    (run_dir,) = (p for p in (tmp_path / "kept").iterdir() if p.is_dir())
    with Journal.open(run_dir, readonly=True) as journal:
        assert {s: n for s, n in journal.counts().items() if n} == {TaskState.CREATED: 16}
