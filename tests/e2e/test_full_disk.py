"""A disk that fills while a run writes its journal: a clear stop, and never a damaged journal.

Two ways to fill a disk in a test: a cap on the size of every file the child writes
(``RLIMIT_FSIZE``: portable), and a small tmpfs mounted in a mount namespace of the child's
own (``unshare``: where the machine allows it), which fills as a real disk does, across files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openpyxl
import pytest

from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from tests.e2e._cli import cli, no_traceback, sim_env, simulator_process

SAMPLE = Path(__file__).resolve().parents[2] / "inputs" / "sample.xlsx"
PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def test_a_journal_that_cannot_be_created_leaves_nothing_behind(tmp_path: Path) -> None:
    """The journal outgrows what may be written before anything is sent: the run stops,
    says nothing was sent, and leaves no run directory to resume by mistake."""
    reports = tmp_path / "reports"
    done = cli(
        "run", SAMPLE, "--simulate", "--yes", "--reports-dir", reports,
        env=sim_env(), cwd=tmp_path, file_size_cap=64 * 1024,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    no_traceback(done.stdout, done.stderr)
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
    no_traceback(first_err, done.stdout, done.stderr)
    assert (tmp_path / "rc").read_text().strip() == "3", first_err
    assert "is the disk full" in first_err, first_err
    assert done.returncode == 0, done.stderr
    assert "created        16" in done.stdout, done.stdout + done.stderr
    (run_dir,) = (p for p in (tmp_path / "kept").iterdir() if p.is_dir())
    with Journal.open(run_dir, readonly=True) as journal:
        assert {s: n for s, n in journal.counts().items() if n} == {TaskState.CREATED: 16}


@pytest.fixture(scope="module")
def larger_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of 300 tasks: its result workbook (about 95 KB) is larger than a
    journal's -shm file (32 KiB), so a size cap between the two fails the workbook alone."""
    folder = tmp_path_factory.mktemp("larger")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    for i in range(300):
        sheet.append([f"ins-{i:04}", "MySQL", PROJECT, "cn-north-4", "single"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "task_name", "max_sources"])
    profiles.append(["single", "ONCE", True, "{profile}-{seq:04}", 1])
    book.save(folder / "larger.xlsx")
    reports = folder / "reports"
    done = cli(
        "run", folder / "larger.xlsx", "--simulate", "--yes", "--rate", "200/s",
        "--reports-dir", reports, env=sim_env(), cwd=folder, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    assert (run_dir / "results.xlsx").stat().st_size > 60_000
    return run_dir


def test_a_workbook_that_cannot_be_written_is_one_line(larger_run: Path) -> None:
    """The disk fills while the workbook is written: one error naming it and what to do,
    not Python's "Exception ignored" tracebacks of openpyxl's half-written sheets."""
    before = (larger_run / "results.xlsx").read_bytes()
    done = cli("report", larger_run, env=sim_env(), file_size_cap=60_000)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"bulkscan: error: cannot write the workbook {larger_run / 'results.xlsx'}: "
        f"File too large; make room on its disk and in {tempfile.gettempdir()} and write it "
        f"again with: bulkscan report {larger_run}"
    ]
    assert (larger_run / "results.xlsx").read_bytes() == before  # the last one stays whole
    assert not list(larger_run.glob(".*.tmp"))


def test_a_journal_that_cannot_be_read_for_the_disk_is_not_called_damaged(
    larger_run: Path,
) -> None:
    """Reading a journal writes its -shm file (32 KiB): refused by the disk, that is the
    disk's fault, said so, and the journal is not called damaged."""
    (larger_run / "journal.sqlite-shm").unlink(missing_ok=True)
    done = cli("report", larger_run, env=sim_env(), file_size_cap=16_000)
    assert done.returncode == 2, done.stderr
    no_traceback(done.stderr)
    assert "is the disk full, or the folder read-only?" in done.stderr, done.stderr
    assert "damaged and cannot be used" not in done.stderr


def test_a_run_whose_workbook_cannot_be_written_does_not_exit_0(tmp_path: Path) -> None:
    """Every task is created, but results.xlsx could not be written: exit 1, so that a
    script does not take the workbook for written, and the command to rebuild it."""
    reports = tmp_path / "reports"
    first = cli(
        "run", SAMPLE, "--simulate", "--yes", "--reports-dir", reports, env=sim_env(), cwd=tmp_path
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    (run_dir / "results.xlsx").unlink()
    (run_dir / "results.xlsx").mkdir()  # where the workbook goes, something it cannot replace
    again = cli(
        "run", SAMPLE, "--simulate", "--yes", "--reports-dir", reports, "--resume",
        env=sim_env(), cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 1, again.stderr
    no_traceback(again.stdout, again.stderr)
    assert f"write it again with: bulkscan report {run_dir}" in again.stderr


def test_an_audit_whose_workbook_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """The audit writes two workbooks; either failing is one error naming it."""
    done = cli(
        "audit", SAMPLE, "--simulate", "--reports-dir", tmp_path / "audit",
        env=sim_env(), cwd=tmp_path, file_size_cap=8_000,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    no_traceback(done.stdout, done.stderr)
    assert "Exception ignored" not in done.stderr
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("bulkscan: error: cannot write the workbook "), line
    assert line.endswith("and run the command again"), line


def test_an_errors_workbook_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """``validate --report PATH`` where PATH cannot be replaced (a folder)."""
    target = tmp_path / "errors.xlsx"
    target.mkdir()
    done = cli("validate", SAMPLE, "--report", target, env=sim_env(), cwd=tmp_path)
    no_traceback(done.stdout, done.stderr)
    assert done.returncode == 2, done.stderr
    assert f"cannot write the workbook {target}: " in done.stderr
    assert "make it writable (close it if it is open) and write it again with: " in done.stderr


def test_an_errors_workbook_that_cannot_be_written_names_the_command_as_typed(
    tmp_path: Path,
) -> None:
    """The command that writes it again is the one typed, its --reports-dir included (it
    was rebuilt without it, and would have failed the same way or written elsewhere)."""
    reports = tmp_path / "elsewhere"
    (reports / "sample-errors.xlsx").mkdir(parents=True)
    done = cli("validate", SAMPLE, "--report", "--reports-dir", reports, cwd=tmp_path)
    no_traceback(done.stdout, done.stderr)
    assert done.returncode == 2, done.stderr
    again = f"write it again with: bulkscan validate {SAMPLE} --report --reports-dir {reports}"
    assert done.stderr.rstrip().endswith(again), done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("export", "--region", "cn-north-4", "--project", PROJECT, "--simulate"),
        ("resolve", SAMPLE, "--simulate"),
    ],
    ids=["export", "resolve"],
)
def test_an_output_workbook_that_cannot_be_written_is_one_line(
    tmp_path: Path, command: tuple[str | Path, ...]
) -> None:
    target = tmp_path / "out.xlsx"
    target.mkdir()  # where the workbook goes, something it cannot replace
    done = cli(*command, "--output", target, env=sim_env(), cwd=tmp_path)
    no_traceback(done.stdout, done.stderr)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"bulkscan: error: cannot write the workbook {target}: Is a directory; make it "
        "writable (close it if it is open) and run the command again"
    )


def test_a_plan_file_that_does_not_fit_leaves_no_half_plan(tmp_path: Path) -> None:
    """``plan --output`` on a full disk: one line saying so, and no plan file at all (an
    empty one was left, which a later ``run plan.json`` would meet)."""
    out = tmp_path / "plans" / "plan.json"
    done = cli("plan", SAMPLE, "--output", out, cwd=tmp_path, file_size_cap=4096)
    no_traceback(done.stdout, done.stderr)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"bulkscan: error: cannot write {out}: File too large; make room")
    assert list(out.parent.iterdir()) == []  # neither the plan nor a temporary file
    written = cli("plan", SAMPLE, "--output", out, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["tasks"]


def test_a_template_that_does_not_fit_leaves_no_broken_workbook(tmp_path: Path) -> None:
    """``template`` on a full disk: one line, and nothing under the name (a truncated .xlsx
    was left, which Excel refuses to open and ``validate`` calls corrupt)."""
    out = tmp_path / "inventory.xlsx"
    done = cli("template", out, cwd=tmp_path, file_size_cap=4096)
    no_traceback(done.stdout, done.stderr)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"bulkscan: error: {out}: cannot write the template (File too large)"
    )
    assert list(tmp_path.iterdir()) == []  # neither the workbook nor a temporary file
