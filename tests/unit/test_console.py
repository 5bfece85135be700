"""The console's rules: when to colour, how a line is told apart, rows said compactly."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkscan.cli._common import issue_lines
from bulkscan.cli._console import Bar, Console, colour_wanted, compact_rows, kind_of, rows_text
from bulkscan.models import Issue, RowRef

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "env", "wanted"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"TERM": "dumb"}, False),
        (False, {"FORCE_COLOR": "1"}, True),
        (True, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),  # NO_COLOR wins
        (True, {"NO_COLOR": ""}, True),  # set but empty: not set (no-color.org)
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(
    tty: bool, env: dict[str, str], wanted: bool
) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert colour_wanted(stream, env) is wanted


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("bulkscan: error: no such file", "error"),
        ("error: a.xlsx, sheet 'instances', row 2: bad", "error"),
        ("bulkscan: stopped: credentials refused", "error"),
        ("nothing sent: 3 error(s) in a.xlsx; fix them and run again", "error"),
        ("warning: a guessed encoding", "warning"),
        ("note: the plan is applied as it was made", "note"),
        ("results: r/results.xlsx", "info"),
    ],
)
def test_a_line_is_told_apart_by_its_opening_words(line: str, kind: str) -> None:
    assert kind_of(line) == kind


def test_rows_are_listed_as_ranges() -> None:
    assert compact_rows([5, 2, 3, 4, 9, 11, 12, 3]) == "2-5, 9, 11-12"
    assert rows_text([7]) == "row 7"
    assert rows_text([2, 3, 4, 40]) == "rows 2-4, 40 (4 rows)"


@given(st.sets(st.integers(min_value=1, max_value=300), min_size=1))
def test_compact_rows_name_exactly_the_rows_given(rows: set[int]) -> None:
    named: set[int] = set()
    for part in compact_rows(rows).split(", "):
        first, _, last = part.partition("-")
        named.update(range(int(first), int(last or first) + 1))
    assert named == rows


def _issue(row: int, message: str, column: str = "project_id") -> Issue:
    return Issue("error", message, ref=RowRef("a.xlsx", "instances", row), column=column)


def test_one_cause_on_many_rows_is_one_line_where_its_first_row_stood() -> None:
    issues = [_issue(2, "x is bad"), *(_issue(r, "is blank") for r in (3, 4, 5, 9)), _issue(7, "y")]
    issues.append(Issue("error", "no sheet 'profiles'", file="a.xlsx"))
    assert issue_lines(issues) == [
        "error: a.xlsx, sheet 'instances', row 2, column 'project_id': x is bad",
        "error: a.xlsx, sheet 'instances', rows 3-5, 9 (4 rows), column 'project_id': is blank",
        "error: a.xlsx, sheet 'instances', row 7, column 'project_id': y",
        "error: a.xlsx: no sheet 'profiles'",
    ]


def test_two_rows_with_one_cause_keep_a_line_each() -> None:
    lines = issue_lines([_issue(2, "is blank"), _issue(3, "is blank")])
    assert lines == [f"error: {_issue(r, 'is blank')}" for r in (2, 3)]


def test_on_a_terminal_long_text_is_wrapped_and_a_command_kept_whole_on_its_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # draw as on a terminal, into the captured stream
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    shown = Console()
    command = "bulkscan run inventory.xlsx --resume reports/inventory-20261130-101010"
    shown.out(f"11 task(s) held back by --limit; resume with: {command}")
    shown.err("error: " + "a long message that goes on " * 4)
    out, err = capsys.readouterr()
    lines = [line.rstrip() for line in _ESCAPES.sub("", out).splitlines()]
    assert lines == ["11 task(s) held back by --limit; resume", "with:", f"  {command}"]
    assert "\x1b[31m" in err  # an error in red
    assert all(len(line) <= 40 for line in _ESCAPES.sub("", err).splitlines())


def test_quiet_keeps_errors_and_the_outcome_only(capsys: pytest.CaptureFixture[str]) -> None:
    shown = Console()
    shown.configure(quiet=True)
    shown.out("run r: 3 request(s), finished")
    shown.detail("  created   3")
    shown.err("warning: a guessed encoding")
    shown.note("rate 5/s -> 2.5/s (throttled)")
    shown.err("error: a.xlsx, sheet 'instances', row 2: bad")
    out, err = capsys.readouterr()
    assert out == "run r: 3 request(s), finished\n"
    assert err == "error: a.xlsx, sheet 'instances', row 2: bad\n"


def _last_frame(
    width: int, *, colour: bool, total: int | None, done: int, status: str | list[str]
) -> str:
    """The progress line as a terminal of ``width`` columns shows it once the bar is closed."""
    from rich.console import Console as RichConsole

    stream = _Tty()
    rich = RichConsole(
        file=stream,
        force_terminal=True,
        width=width,
        no_color=not colour,
        color_system="standard" if colour else None,
    )
    bar = Bar(rich, "sending", total=total, transient=False, on_close=lambda _bar: None)
    bar.update(done, total=total, rate_per_s=199.7, eta_s=61.0, status=status)
    bar.close()
    frames = stream.getvalue().replace("\r", "\n").split("\n")
    return [_ESCAPES.sub("", frame) for frame in frames if _ESCAPES.sub("", frame).strip()][-1]


@pytest.mark.parametrize("colour", [True, False])
def test_the_progress_line_shows_bar_count_rate_eta_and_status(colour: bool) -> None:
    status = "777 in DSC, 0 failed, 2 retrying, 779 sent"
    line = _last_frame(100, colour=colour, total=2000, done=777, status=status)
    # 777 of 2000 is 7.77 of the bar's 20 cells: 7 whole, one half
    assert re.search(r" sending ━{7}╸", line), line
    # the count right-aligned to the total's width, so that the bar does not move as it grows
    tail = "  777/2000 2e+02/s ETA 61s " + status
    assert line.endswith(tail), line
    assert len(line) == len("⠋ sending ") + 20 + len(tail)


def test_without_a_total_the_progress_line_counts_requests() -> None:
    line = _last_frame(100, colour=True, total=None, done=42, status="last answer: 200")
    assert line.endswith(" sending 42 request(s) 2e+02/s ETA 61s last answer: 200"), line
    assert "━" not in line


@pytest.mark.parametrize("width", [30, 50, 60, 80])
def test_the_progress_line_never_outgrows_the_terminal(width: int) -> None:
    status = "1999 in DSC, 0 failed, 0 retrying, 2000 sent"
    line = _last_frame(width, colour=True, total=2000, done=2000, status=status)
    assert len(line) <= width, line
    assert line.startswith("  sending"), line  # finished: no spinner frame
    assert "sending" in line
    if width >= 80:  # room for everything but the status, which is cut to the room left
        assert "2000/2000" in line and "ETA 61s" in line


@pytest.mark.parametrize(
    ("width", "shown"),
    [
        (120, "1999 in DSC, 0 failed, 0 retrying, 2000 sent"),
        (92, "1999 in DSC, 0 failed, 0 retrying"),
        (80, "1999 in DSC, 0 failed"),
    ],
)
def test_the_progress_line_shows_the_longest_form_of_its_status_that_fits(
    width: int, shown: str
) -> None:
    """At 80 columns the status read "1999 in DSC, 0 failed, 0 ret…": now a shorter form
    of it, whole (narrower still, the shortest is cut: see the test above)."""
    forms = [
        "1999 in DSC, 0 failed, 0 retrying, 2000 sent",
        "1999 in DSC, 0 failed, 0 retrying",
        "1999 in DSC, 0 failed",
    ]
    line = _last_frame(width, colour=False, total=2000, done=1000, status=forms)
    assert line.endswith(" " + shown), line
    assert len(line) <= width, line


def test_one_progress_line_at_a_time_a_new_one_takes_the_place_of_the_one_showing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = _Tty()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.delenv("TERM", raising=False)
    shown = Console()
    counter = shown.bar("scans", transient=True)
    assert counter is not None
    bar = shown.bar("scans", total=3)  # e.g. status --wait, after its first read
    assert bar is not None
    counter.close()  # the counter's own end comes later: it leaves the new line alone
    shown.err("note: a line printed while the bar shows")
    monkeypatch.setattr("builtins.input", lambda question: "y")
    assert shown.ask("Go on? ") == "y"
    assert bar.paused_s > 0  # the line showing was taken off the screen for the question
    bar.update(3, total=3)
    bar.close()
    counter.close()
    lines = [_ESCAPES.sub("", part) for part in stderr.getvalue().replace("\r", "\n").split("\n")]
    assert "note: a line printed while the bar shows" in lines
    assert any("3/3" in line for line in lines), lines
