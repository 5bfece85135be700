"""What a person sees on a terminal: colour (never with NO_COLOR or through a pipe), lines that
fit the terminal, a progress bar, --quiet and --debug.  Terminal runs go through a real pty."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len

from bulkscan.input import samples
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Simulator

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import MakeXlsx

P1 = "0123456789abcdef0123456789abcdef"
CN = "cn-north-4"
_LIMIT_S = 120.0
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUAWEICLOUD_", "BULKSCAN_"))
        and k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM")
    }
    env |= {"HUAWEICLOUD_SDK_AK": DEFAULT_AK, "HUAWEICLOUD_SDK_SK": DEFAULT_SK}
    env |= {"TERM": "xterm-256color"}
    return env | extra


def _on_tty(
    cwd: Path,
    *args: str | Path,
    columns: int = 80,
    answers: dict[str, str] | None = None,
    meanwhile: Callable[[], object] | None = None,
    **env: str,
) -> tuple[int, str]:
    """Run bulkscan with stdin, stdout and stderr on a pty ``columns`` wide; all it wrote.
    ``answers``: typed once each, when the text before it (a question) has appeared, after
    ``meanwhile`` is done (what happens while the person reads the question)."""
    waiting = dict(answers or {})
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkscan", *(str(a) for a in args)],
        cwd=cwd, env=_env(**env), stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + _LIMIT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the pty
                break
            if not chunk:
                break
            chunks.append(chunk)
            seen = b"".join(chunks).decode(errors="replace")
            for question in [q for q in waiting if q in seen]:
                if meanwhile is not None:
                    meanwhile()
                    meanwhile = None
                os.write(master, waiting.pop(question).encode() + b"\r")
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


def _piped(cwd: Path, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkscan", *(str(a) for a in args)],
        cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=_LIMIT_S,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def _lines(screen: str) -> list[str]:
    """The lines a person reads: escapes and carriage-return redraws removed."""
    plain = _ANSI.sub("", screen).replace("\r\n", "\n")
    return [line.rsplit("\r", 1)[-1] for line in plain.split("\n")]


def _bad_inventory(make_xlsx: MakeXlsx) -> Path:
    """Many rows with one long problem each (a blank project id), one row with another."""
    rows: list[list[object]] = [["ins_id", "db_type", "project_id", "region", "task"]]
    rows += [[f"id-{n}", "MySQL", "", CN, "t"] for n in range(40)]
    rows.append(["id-x", "MySQL", "abc", CN, "t"])
    return make_xlsx({"instances": rows}, name="bad.xlsx")


def _good_inventory(make_xlsx: MakeXlsx, count: int = 12) -> Path:
    rows: list[list[object]] = [["ins_id", "db_type", "project_id", "region", "task"]]
    rows += [[f"id-{n}", "MySQL", P1, CN, f"t-{n}"] for n in range(count)]
    return make_xlsx({"instances": rows}, name="good.xlsx")


def _finished_run(tmp_path: Path, make_xlsx: MakeXlsx) -> tuple[Path, Path]:
    """A run of three tasks sent to its end through a pipe: (its inventory, its run folder),
    reports under ``r``."""
    good = _good_inventory(make_xlsx, count=3)
    done = _piped(tmp_path, "run", good, "--simulate", "--yes", "--reports-dir", "r")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (d for d in (tmp_path / "r").iterdir() if d.is_dir())
    return good, run_dir


def test_colour_on_a_terminal_none_with_no_color_none_through_a_pipe(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    bad = _bad_inventory(make_xlsx)
    code, screen = _on_tty(tmp_path, "validate", bad)
    assert code == 2
    assert "\x1b[31m" in screen  # errors in red
    code, screen = _on_tty(tmp_path, "validate", bad, NO_COLOR="1")
    assert code == 2 and "error" in screen
    assert not _COLOUR.search(screen), screen[:400]
    code, screen = _on_tty(tmp_path, "validate", bad, TERM="dumb")
    assert code == 2 and not _COLOUR.search(screen)
    piped = _piped(tmp_path, "validate", bad)
    assert piped.returncode == 2
    assert "\x1b" not in piped.stdout + piped.stderr
    forced = _piped(tmp_path, "validate", bad, FORCE_COLOR="1")
    assert "\x1b[31m" in forced.stderr


def test_lines_fit_an_80_column_terminal_and_a_pipe_gets_them_whole(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    bad = _bad_inventory(make_xlsx)
    piped = _piped(tmp_path, "validate", bad)
    assert max(len(line) for line in piped.stderr.splitlines()) > 120  # long, as written
    code, screen = _on_tty(tmp_path, "validate", bad, columns=80)
    assert code == 2
    lines = _lines(screen)
    assert max(cell_len(line) for line in lines) <= 80, max(lines, key=cell_len)
    # read as a person does: the lines joined where the terminal wrapped them (tmp paths are
    # long, so where the wrap falls depends on the directory the test runs in)
    flat = re.sub(r"\s+", " ", _ANSI.sub("", screen))
    assert "column 'project_id'" in flat and "project_id is blank" in flat


def test_plan_tables_fit_the_terminal_and_never_cut_a_cell(tmp_path: Path) -> None:
    """On 80 columns plan's task table is said as records (no row breaks across the screen),
    on 160 it is a table, one row per task; through a pipe it is the padded text."""
    sample = Path(__file__).parents[2] / "inputs" / "sample.xlsx"
    piped = _piped(tmp_path, "plan", sample)
    names = [line.split()[0] for line in piped.stdout.splitlines() if "-00" in line]
    assert len(names) == 16, piped.stdout
    for columns in (80, 160):
        code, screen = _on_tty(tmp_path, "plan", sample, columns=columns)
        assert code == 0, screen
        lines = [_ANSI.sub("", line) for line in _lines(screen)]
        assert max(cell_len(line) for line in lines) <= columns, max(lines, key=cell_len)
        for name in names:
            rows = [line for line in lines if line.split()[:1] == [name]]
            assert len(rows) == 1, (columns, name)
            projects = samples.PROJECTS
            # a table row holds the task's project; a record's first line the name alone
            assert any(p in rows[0] for p in projects) is (columns == 160), rows[0]
        assert any(line.split()[:1] == ["total"] for line in lines)


def test_one_cause_on_many_rows_is_said_once_and_verbose_lists_every_row(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    bad = _bad_inventory(make_xlsx)
    summary = _piped(tmp_path, "validate", bad).stderr.splitlines()
    blank = [line for line in summary if "project_id is blank" in line]
    assert len(blank) == 1, summary
    assert "rows 2-41 (40 rows), column 'project_id'" in blank[0]
    assert any("row 42, column 'project_id'" in line for line in summary)
    every = _piped(tmp_path, "validate", bad, "--verbose").stderr.splitlines()
    assert sum("project_id is blank" in line for line in every) == 40
    assert sum("project_id is blank" in line for line in _piped(
        tmp_path, "-v", "validate", bad).stderr.splitlines()) == 40  # fmt: skip


def test_a_run_on_a_terminal_draws_a_progress_bar_and_a_pipe_does_not(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    good = _good_inventory(make_xlsx)
    code, screen = _on_tty(
        tmp_path, "run", good, "--simulate", "--yes", "--rate", "40/s", "--reports-dir", "r1"
    )
    assert code == 0, screen
    bar = [line for line in _lines(screen) if "sending" in line and "━" in line]
    assert bar, screen
    assert "12/12" in bar[-1] and "/s" in bar[-1]  # count and rate
    assert "\x1b[32m" in screen  # 'created' in green
    piped = _piped(
        tmp_path, "run", good, "--simulate", "--yes", "--rate", "40/s", "--reports-dir", "r2"
    )
    assert piped.returncode == 0, piped.stderr
    assert "━" not in piped.stderr and "\x1b" not in piped.stderr
    assert "  created        12" in piped.stdout


def test_the_bar_counts_the_closing_listing_for_names_created_twice(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """Once every task has its outcome, the run lists each project again for names created
    twice: the bar says so, counting the projects, and its spinner turns until the last one
    is listed (it stood still at "ETA 0s", seconds per project on a slow service)."""
    good = _good_inventory(make_xlsx, count=3)
    code, screen = _on_tty(
        tmp_path, "run", good, "--simulate", "--yes", "--reports-dir", "r",
        "--simulate-faults", "latency_s=0.6",
    )  # fmt: skip
    assert code == 0, screen
    drawn = [d for d in re.split(r"[\r\n]", _ANSI.sub("", screen)) if "3/3" in d and "━" in d]
    listing = [d for d in drawn if "checking duplicates 0/1" in d]
    assert listing, screen
    assert not listing[-1].startswith(" "), listing  # the spinner turns while it lists
    assert "ETA" not in listing[-1], listing
    assert "checking duplicates 1/1" in drawn[-1], drawn


def test_a_resume_with_nothing_left_says_so_and_draws_no_bar(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """A finished run resumed: "nothing to send", without a pace, an ETA or a bar at 0/0."""
    good, _ = _finished_run(tmp_path, make_xlsx)
    args = ("run", good, "--simulate", "--yes", "--reports-dir", "r", "--resume")
    code, screen = _on_tty(tmp_path, *args)
    assert code == 0, screen
    shown = _ANSI.sub("", screen)
    assert "3 task(s) for 3 instance(s); nothing to send" in shown, screen
    assert "━" not in shown and "0/0" not in shown and "without retries" not in shown, screen
    piped = _piped(tmp_path, *args)
    assert "; nothing to send" in piped.stderr, piped.stderr


def test_quiet_prints_only_the_outcome(tmp_path: Path, make_xlsx: MakeXlsx) -> None:
    good = _good_inventory(make_xlsx)
    code, screen = _on_tty(
        tmp_path, "run", good, "--simulate", "--yes", "-q", "--rate", "40/s", "--reports-dir", "r"
    )
    assert code == 0, screen
    said = [line for line in _lines(screen) if line.strip()]
    assert len(said) == 1, said
    assert said[0].startswith("run good-") and said[0].endswith("finished")
    bad = _bad_inventory(make_xlsx)
    quiet = _piped(tmp_path, "--quiet", "validate", bad)
    assert quiet.returncode == 2 and "NOT OK" in quiet.stdout
    assert quiet.stderr.count("error:") == 2  # errors are kept


def test_quiet_and_verbose_together_is_a_usage_error(tmp_path: Path) -> None:
    done = _piped(tmp_path, "-q", "template", "t.xlsx", "-v")
    assert done.returncode == 2 and "cannot be used together" in done.stderr
    assert not (tmp_path / "t.xlsx").exists()


async def test_debug_prints_one_line_per_request_without_a_secret(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    good = _good_inventory(make_xlsx, count=3)
    async with Simulator() as sim:
        done = await asyncio.to_thread(
            _piped, tmp_path, "run", good, "--endpoint", sim.url, "--yes", "--debug",
            "--no-remote-check", "--rate", "40/s", "--reports-dir", "r",
        )  # fmt: skip
        served = sum(sim.stats["requests"].values())
    assert done.returncode == 0, done.stderr
    debug = [line for line in done.stderr.splitlines() if line.startswith("debug: ")]
    assert len(debug) == served, done.stderr
    creates = [line for line in debug if line.startswith("debug: POST ")]
    assert len(creates) == 3
    for line in debug:
        method, path, status, elapsed, rid, verdict = line.split()[1:7]
        assert method in ("GET", "POST") and path.startswith("/v1/") and "?" not in path
        assert status.isdigit() and elapsed.endswith("ms")
        assert rid.startswith("request_id=") and verdict.startswith("verdict=")
    for secret in (DEFAULT_AK, DEFAULT_SK):
        assert secret not in done.stderr + done.stdout
    plain = await asyncio.to_thread(
        _piped, tmp_path, "run", good, "--simulate", "--yes", "--reports-dir", "r2"
    )
    assert "debug:" not in plain.stderr


async def test_reading_scans_draws_a_bar_and_acting_on_tasks_a_spinner_a_question_clears(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """One request per task at the rate limit can take minutes: on a terminal ``status`` draws
    a bar of the tasks read, an action a spinner counting its requests, which is off the
    screen while a question waits for its answer."""
    good = _good_inventory(make_xlsx, count=3)
    async with Simulator(scan_s=0.0) as sim:  # each scan over at once, however fast the run
        done = await asyncio.to_thread(
            _piped, tmp_path, "run", good, "--endpoint", sim.url, "--yes", "--no-remote-check",
            "--rate", "40/s", "--reports-dir", "r",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (run_dir,) = (tmp_path / "r").iterdir()
        code, status = await asyncio.to_thread(
            _on_tty, tmp_path, "status", run_dir, "--endpoint", sim.url, "--rate", "40/s"
        )
        code_off, disable = await asyncio.to_thread(
            _on_tty, tmp_path, "disable", run_dir, "--endpoint", sim.url, "--rate", "40/s",
            answers={"[y/N]": "y"},
        )  # fmt: skip
    assert code == 0, status
    plain = _ANSI.sub("", status)
    assert re.search(r"reading scans ━+ 3/3 \S+/s ETA 0s", plain), status
    assert "succeeded       3" in plain
    assert code_off == 0, disable
    # the answer is echoed right after the question: no spinner was drawn while it waited
    assert "Disable 3 task(s)? [y/N] y" in _ANSI.sub("", disable), disable
    after = disable[disable.index("[y/N]") :]
    assert re.search(r"disable \d+ request\(s\)", _ANSI.sub("", after)), disable
    assert "disable: 3 done" in _ANSI.sub("", disable)


def test_writing_the_result_workbook_shows_what_is_being_done_then_clears_it(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    _, run_dir = _finished_run(tmp_path, make_xlsx)
    code, screen = _on_tty(tmp_path, "report", run_dir)
    assert code == 0, screen
    assert "writing the result workbook" in _ANSI.sub("", screen), screen  # while it worked
    # then erased (the line cleared) before the outcome is written in its place
    after = screen[screen.rindex("writing the result workbook") :]
    assert "\x1b[2K" in after[: after.index("results:")], screen
    piped = _piped(tmp_path, "report", run_dir)
    assert "writing the result workbook" not in piped.stderr + piped.stdout


async def test_status_wait_draws_its_first_read_then_the_bar_of_finished_scans(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    good = _good_inventory(make_xlsx, count=3)
    async with Simulator(scan_s=60.0) as sim:  # the scans outlast the wait
        done = await asyncio.to_thread(
            _piped, tmp_path, "run", good, "--endpoint", sim.url, "--yes", "--no-remote-check",
            "--rate", "40/s", "--reports-dir", "r",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (run_dir,) = (d for d in (tmp_path / "r").iterdir() if d.is_dir())
        code, screen = await asyncio.to_thread(
            _on_tty, tmp_path, "status", run_dir, "--endpoint", sim.url, "--rate", "40/s",
            "--wait", "--poll", "1", "--timeout", "2",
        )  # fmt: skip
    assert code == 4, screen  # still running when the wait ended
    plain = _ANSI.sub("", screen)
    # the first read: a bar of the tasks read (one request each), then the finished scans
    read = re.search(r"reading scans ━+ 3/3 ", plain)
    drawn = re.search(r"(?<!reading )scans ━+ +0/3 .*3 running", plain)
    assert read and drawn and read.start() < drawn.start(), screen
    assert "running         3" in plain


async def test_a_run_lists_again_after_its_question_so_another_runs_tasks_are_not_made_twice(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """While a person reads the question, another run (another reports folder: another
    journal and lock) creates the same tasks; the answered run must find them as existing,
    not trust the listing it made before asking."""
    good = _good_inventory(make_xlsx, count=4)
    common = ("--no-remote-check", "--rate", "40/s")

    def other_run() -> None:
        done = _piped(tmp_path, "run", good, "--endpoint", sim.url, "--yes", *common,
                      "--reports-dir", "other")  # fmt: skip
        assert done.returncode == 0, done.stderr

    async with Simulator() as sim:
        code, screen = await asyncio.to_thread(
            _on_tty, tmp_path, "run", good, "--endpoint", sim.url, *common, "--reports-dir", "r",
            answers={"[y/N]": "y"}, meanwhile=other_run,
        )  # fmt: skip
        names = [task["name"] for task in sim.tasks]
    assert code == 0, screen
    assert sorted(names) == sorted(set(names)) and len(names) == 4, names
    assert re.search(r"exists\s+4", _ANSI.sub("", screen)), screen


def test_a_command_to_copy_is_on_a_line_of_its_own_in_chinese_too(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """After a Chinese sentence ending in a full-width colon (no space) the command is not
    wrapped into the sentence: it stands alone, whole, as after an English 'resume with:'."""
    good = _good_inventory(make_xlsx, count=3)
    run = ("run", good, "--simulate", "--yes", "--reports-dir", "r", "--limit", "1")
    code, screen = _on_tty(tmp_path, "--lang", "zh", *run, columns=80)
    assert code == 0, screen
    commands = [line for line in _lines(screen) if line.startswith("  bulkscan --lang zh run ")]
    assert any(" --resume r/good-" in line for line in commands), screen
