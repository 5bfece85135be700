"""The one way the command line writes to a person: colour, wrapping, --quiet/--verbose/--debug,
progress bars.

Every line the CLI prints goes through ``console``.  Where it goes is as before: results on
stdout, errors, warnings, notes and progress on stderr.  Not on a terminal, a line is written
exactly as given (scripts and tests read these words).  On a terminal (or with
``FORCE_COLOR``) rich draws it: wrapped to the terminal's width, a command to copy kept whole
on a line of its own, outcome words coloured (unless ``NO_COLOR`` or ``TERM=dumb``).  rich is
imported only then, so ``bulkscan --help`` and ``-V`` stay quick.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

from bulkscan.i18n import _

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence

    from bulkscan.events import Attempt

__all__ = [
    "SUMMARISED_FROM",
    "Bar",
    "Console",
    "by_cause",
    "colour_wanted",
    "compact_rows",
    "console",
    "duration",
    "kind_of",
    "rows_text",
]

Kind = Literal["error", "warning", "note", "info", "outcome"]

# How each line is told apart, by its opening words (one rule for every command).
_KIND_BY_PREFIX: tuple[tuple[str, Kind], ...] = (
    ("bulkscan: error:", "error"),
    ("bulkscan: stopped:", "error"),
    ("bulkscan: interrupted", "error"),
    ("error:", "error"),
    ("bulkscan: warning:", "warning"),
    ("warning:", "warning"),
    ("note:", "note"),
    # the one line of a command that stopped before doing anything
    ("nothing sent:", "error"),
    ("nothing audited:", "error"),
)
_STYLE: Mapping[Kind, str] = {
    "error": "red",
    "warning": "yellow",
    "note": "dim",
    "info": "",
    "outcome": "bold",
}
# Outcome words as the tables and summaries print them, and their colour.
_GOOD = ("created", "accepted", "exists", "enabled", "started", "succeeded", "finished")
_BAD = ("failed", "gave_up", "conflict", "error", "errors", "not covered", "NOT OK")
_UNSURE = (
    "unknown",
    "held",
    "covered",
    "pending",
    "retrying",
    "running",
    "not sent",
    "not finished",
)
_WORDS = re.compile(
    r"(?<![\w-])(?P<good>" + "|".join(_GOOD) + r")(?![\w-])"
    r"|(?<![\w-])(?P<bad>" + "|".join(_BAD) + r")(?![\w-])"
    r"|(?<![\w-])(?P<unsure>" + "|".join(_UNSURE) + r")(?![\w-])"
)
_WORD_STYLE = {"good": "green", "bad": "red", "unsure": "yellow"}
# ``prose: bulkscan run ...`` (a Chinese sentence ends in a full-width colon and no space): on
# a terminal the command goes on a line of its own, unwrapped, so that copying it copies one.
_COMMAND = re.compile(r"^(?P<prose>.*?(?::|：)) ?(?P<command>bulkscan \S.*)$")


def colour_wanted(stream: TextIO, env: Mapping[str, str] = os.environ) -> bool:
    """Colour on a terminal only; never with ``NO_COLOR`` (no-color.org) or ``TERM=dumb``;
    ``FORCE_COLOR`` asks for it where there is no terminal."""
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return bool(env.get("FORCE_COLOR")) or _is_tty(stream)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def kind_of(text: str) -> Kind:
    for prefix, kind in _KIND_BY_PREFIX:
        if text.startswith(prefix):
            return kind
    return "info"


@dataclass(slots=True)
class _Level:
    quiet: bool = False
    verbose: bool = False
    debug: bool = False


class Console:
    """Writes lines to stdout (``out``) and stderr (``err``), draws progress bars."""

    def __init__(self) -> None:
        self.level = _Level()
        self._rich: dict[int, Any] = {}  # one rich console per stream, made on first use
        self._bar: Bar | None = None

    def configure(self, *, quiet: bool = False, verbose: bool = False, debug: bool = False) -> None:
        self.level = _Level(quiet=quiet, verbose=verbose, debug=debug)
        self._rich.clear()  # streams may have changed (tests call main() many times)
        self._bar = None

    @property
    def verbose(self) -> bool:
        return self.level.verbose

    @property
    def quiet(self) -> bool:
        return self.level.quiet

    # -- lines --

    def out(self, text: str = "", *, kind: Kind = "outcome") -> None:
        """A result line on stdout; ``kind="info"`` for detail that ``--quiet`` leaves out."""
        if self.level.quiet and kind == "info":
            return
        self._write(sys.stdout, text, kind_of(text))  # coloured as the words say

    def detail(self, text: str = "") -> None:
        """A line of a result's breakdown on stdout (left out by ``--quiet``)."""
        self.out(text, kind="info")

    def err(self, text: str = "", *, kind: Kind | None = None) -> None:
        """A message on stderr, its kind told by its opening words unless given.  ``--quiet``
        keeps errors and outcomes only."""
        kind = kind or kind_of(text)
        if self.level.quiet and kind not in ("error", "outcome"):
            return
        self._write(sys.stderr, text, kind)

    def before_question(self, text: str = "") -> None:
        """A line on stderr that says what the question after it is about: ``--quiet`` keeps
        it (a question is not progress chatter, and must not come alone)."""
        self._write(sys.stderr, text, kind_of(text))

    def table(
        self,
        titles: Sequence[str],
        rows: Sequence[Sequence[object] | None],
        *,
        right: Sequence[bool],
        lines: Sequence[str],
    ) -> None:
        """A table on stdout (left out by ``--quiet``).  On a terminal wide enough rich draws
        it; on a narrower one each row is said as a record (its first cell, then each other
        cell after its title), so that no row breaks across the screen and no cell is cut.
        Elsewhere ``lines`` (the table as padded text) are written as given.  ``rows`` may
        hold ``None`` for a rule before the rows after it (a total)."""
        if self.level.quiet:
            return
        rich = self._rich_for(sys.stdout)
        if rich is None:
            for line in lines:
                print(line, flush=True)
            return
        from rich.cells import cell_len

        shown = [None if row is None else [str(value) for value in row] for row in rows]
        widths = [
            max([cell_len(title)] + [cell_len(row[i]) for row in shown if row is not None])
            for i, title in enumerate(titles)
        ]
        if sum(widths) + 3 * (len(widths) - 1) > rich.width:
            _print_records(rich, titles, shown)
        else:
            _print_drawn(rich, titles, shown, right)

    def data(self, text: str) -> None:
        """Text for a program (a completion script): written as given, whatever the level."""
        sys.stdout.write(text)

    def ask(self, question: str) -> str:
        """A question on the terminal; its answer as typed.  A progress line showing then is
        taken off the screen while the question waits, and drawn again after."""
        bar = self._bar
        if bar is None:
            return input(question)
        bar.pause()
        try:
            return input(question)
        finally:
            bar.resume()

    def note(self, text: str) -> None:
        self.err(text, kind="note")

    def exchange(self, attempt: Attempt) -> None:
        """``--debug``: one line per request and answer on stderr."""
        if not self.level.debug:
            return
        parts = [
            "debug:",
            attempt.method,
            attempt.path,
            str(attempt.status) if attempt.status is not None else "no-answer",
            f"{attempt.latency_s * 1e3:.0f}ms",
            f"request_id={attempt.request_id or '-'}",
            f"verdict={attempt.verdict}",
        ]
        if attempt.code:
            parts.append(f"code={attempt.code}")
        if attempt.message:
            parts.append(f"message={' '.join(attempt.message.split())[:300]}")
        self._write(sys.stderr, " ".join(parts), "note", wrap=False)

    def _write(self, stream: TextIO, text: str, kind: Kind, *, wrap: bool = True) -> None:
        rich = self._rich_for(stream)
        if rich is None:
            print(text, file=stream, flush=True)  # a reader may wait for this line (simulate)
            return
        bar = self._bar
        target = bar.rich_console if bar is not None and stream is sys.stderr else rich
        for line in text.split("\n"):
            self._print_rich(target, line, kind, wrap=wrap)

    def _print_rich(self, rich: Any, line: str, kind: Kind, *, wrap: bool) -> None:
        from rich.text import Text

        match = _COMMAND.match(line) if wrap else None
        if match and len(line) > rich.width:
            self._print_rich(rich, match["prose"], kind, wrap=True)
            rich.print(Text("  " + match["command"], style="bold"), soft_wrap=True)
            return
        if line and not line.strip("-"):  # a rule under a table: as wide as the terminal
            line = line[: rich.width]
        styled = Text(line, style=_STYLE[kind])
        if kind in ("info", "outcome"):
            for found in _WORDS.finditer(line):
                group = found.lastgroup or "good"
                styled.stylize(_WORD_STYLE[group], found.start(), found.end())
        rich.print(styled, soft_wrap=not wrap, overflow="fold")

    def _rich_for(self, stream: TextIO) -> Any:
        """The rich console drawing on ``stream``, or None where lines are written as given."""
        key = id(stream)
        if key not in self._rich:
            self._rich[key] = _make_rich(stream)
        return self._rich[key]

    # -- progress --

    def bar(
        self,
        what: str,
        *,
        total: int | None = None,
        transient: bool = False,
        counted: bool = True,
    ) -> Bar | None:
        """A progress bar on stderr (a terminal only, never with ``--quiet``), else None:
        callers then say what they said before (a line now and then, or nothing).
        ``counted`` False: no count is shown (work whose steps are not told).  One line at a
        time: a new bar takes the place of the one showing (a request counter, say)."""
        if self.level.quiet or not _is_tty(sys.stderr) or os.environ.get("TERM") == "dumb":
            return None
        rich = self._rich_for(sys.stderr)
        if rich is None:
            return None
        if self._bar is not None:
            self._bar.close()
        self._bar = Bar(
            rich, what, total=total, transient=transient, on_close=self._bar_closed,
            counted=counted,
        )  # fmt: skip
        return self._bar

    @contextlib.contextmanager
    def working(self, what: str) -> Iterator[None]:
        """Around work of a few seconds or more that tells no steps (writing a large result
        workbook): a spinner saying what is being done, on a terminal only, gone after."""
        bar = self.bar(what, transient=True, counted=False)
        try:
            yield
        finally:
            if bar is not None:
                bar.close()

    @contextlib.contextmanager
    def counting_requests(self, what: str) -> Iterator[None]:
        """Around work whose requests are not known beforehand (a listing of the service, the
        asset centre) or are many at the rate limit (one per task): a spinner with the
        requests made so far and their rate, on a terminal only; each request is still told
        to the ``--debug`` watcher."""
        from bulkscan.events import watching_wire, wire_watcher

        bar = self.bar(what, transient=True)  # a busy sign, gone once the work is done
        if bar is None:
            yield
            return
        before = wire_watcher()
        started, count = time.monotonic(), 0
        said, unanswered = _("last answer: {status}"), _("none")

        def _watch(attempt: Attempt) -> None:
            nonlocal count
            if before is not None:
                before(attempt)
            count += 1
            rate = count / max(time.monotonic() - started - bar.paused_s, 1e-3)
            bar.update(
                count, rate_per_s=rate, status=said.format(status=attempt.status or unanswered)
            )

        try:
            with watching_wire(_watch):
                yield
        finally:
            bar.close()

    def _bar_closed(self, bar: Bar) -> None:
        if self._bar is bar:
            self._bar = None


def _make_rich(stream: TextIO) -> Any:
    env = os.environ
    forced = bool(env.get("FORCE_COLOR")) and not env.get("NO_COLOR")
    if not (_is_tty(stream) or forced) or env.get("TERM") == "dumb":
        return None
    from rich.console import Console as RichConsole

    colour = colour_wanted(stream)
    return RichConsole(
        file=stream,
        force_terminal=True,
        no_color=not colour,
        color_system="auto" if colour else None,
        highlight=False,
        markup=False,
        emoji=False,
    )


_BAR_WIDTH = 20


def _print_records(rich: Any, titles: Sequence[str], rows: Sequence[list[str] | None]) -> None:
    """Each row as a record: its first cell, then the others after their titles, wrapped
    whole (a title and its value never split); the rows after a rule (a total) on one line."""
    import textwrap

    from rich.cells import cell_len
    from rich.text import Text

    after_rule = False
    for row in rows:
        if row is None:
            after_rule = True
            continue
        if after_rule:  # a total: its first cells as they stand, the others titled
            titled = zip(titles[2:], row[2:], strict=True)
            said = [*row[:2], *(f"{t} {v}" for t, v in titled if v)]
            rich.print(Text("  ".join(v for v in said if v), style="bold"))
            continue
        rich.print(Text(row[0], style="bold"), overflow="fold")
        pairs = [
            f"{t}\u00a0{v}".replace(" ", "\u00a0")  # a pair is never split
            for t, v in zip(titles[1:], row[1:], strict=True)
            if v
        ]
        record = " · ".join(pairs)
        wide = cell_len(record) - len(record)  # cells beyond one a character (Chinese)
        for line in textwrap.wrap(
            record, width=max(20, rich.width - wide), initial_indent="    ",
            subsequent_indent="    ", break_long_words=True, break_on_hyphens=False,
        ):  # fmt: skip
            rich.print(Text(line.replace("\u00a0", " ")), overflow="fold")


def _print_drawn(
    rich: Any, titles: Sequence[str], rows: Sequence[list[str] | None], right: Sequence[bool]
) -> None:
    """The rows as a table rich draws, a rule before the rows after a ``None``."""
    from rich import box
    from rich.table import Table

    drawn = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for title, at_right in zip(titles, right, strict=True):
        drawn.add_column(title, justify="right" if at_right else "left", no_wrap=True)
    for row in rows:
        if row is None:
            drawn.add_section()
        else:
            drawn.add_row(*row)
    rich.print(drawn)


class Bar:
    """One progress line: spinner, description, bar, count, rate, ETA and a short status.

    Redrawn ``REDRAWS_PER_S`` times a second by rich's ``Live`` as one ``Text`` made here.
    rich's ``Progress`` lays its columns out as a table at each redraw: about 1.8 ms against
    0.47 ms for the line, a cost that a run at 200 requests a second pays every second it sends
    (``bench/bench_cli_cpu.py``).  The line is cut to the terminal's width with an ellipsis.
    """

    REDRAWS_PER_S = 8

    def __init__(
        self,
        rich: Any,
        what: str,
        *,
        total: int | None,
        transient: bool,
        on_close: Any,
        counted: bool = True,
    ) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        self._what = what
        self._counted = counted
        self._requests = _("{count} request(s)")  # the words of the count, chosen once
        self._on_close = on_close
        self.rich_console = rich
        self.paused_s = 0.0  # how long the line was off the screen for questions
        self._paused_at = 0.0
        self._spinner = Spinner("dots", style="progress.spinner")
        # what the line shows, replaced as a whole: the redrawing thread reads one consistent set
        self._shown: tuple[int, int | None, str, str, str, bool] = (0, total, "", "", "", False)
        self._live = Live(
            get_renderable=self._line,
            console=rich,
            transient=transient,
            refresh_per_second=self.REDRAWS_PER_S,
        )
        self._live.start()

    def update(
        self,
        done: int,
        *,
        total: int | None = None,
        rate_per_s: float | None = None,
        eta_s: float | None = None,
        status: str | Sequence[str] = "",
        busy: bool = False,
    ) -> None:
        """``status``: one text, or its forms from the longest down, of which the line shows
        the first that fits; ``busy``: the spinner turns on once every step is counted (work
        after the last)."""
        self._shown = (
            done,
            self._shown[1] if total is None else total,
            "" if rate_per_s is None else f"{rate_per_s:.2g}/s",
            "" if eta_s is None else _("ETA {duration}").format(duration=duration(eta_s)),
            self._fitted(status),
            busy,
        )

    def _fitted(self, status: str | Sequence[str]) -> str:
        """The first form of ``status`` that fits the room the other columns leave (at least
        10 cells, else none), or the last cut to it."""
        from rich.cells import cell_len

        room = self.rich_console.width - _BAR_WIDTH - 34
        if room < 10:
            return ""
        forms = [status] if isinstance(status, str) else list(status) or [""]
        for form in forms:
            if cell_len(form) <= room:
                return form
        last = forms[-1]
        while cell_len(last) > room - 1:
            last = last[:-1]
        return last + "…"

    def _line(self) -> Any:
        from rich.text import Text

        done, total, rate, eta, status, busy = self._shown
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        if total is not None and done >= total and not busy:
            line.append(" ")  # finished: the spinner stops
        else:
            frame = self._spinner.render(time.monotonic())
            if isinstance(frame, Text):
                line.append_text(frame)
        line.append(f" {self._what}")
        if total is None:
            if self._counted:
                line.append(" " + self._requests.format(count=done))
        else:
            line.append(" ")
            _draw_bar(line, done, total, self.rich_console)
            line.append(f" {done:{len(str(total))}d}/{total}", "progress.download")
        for part in (rate, eta):
            if part:
                line.append(" " + part)
        if status:
            line.append(" ")
            line.append(status, "dim")
        return line

    def pause(self) -> None:
        """Take the line off the screen (a question follows); ``resume`` draws it again."""
        self._live.stop()
        self._paused_at = time.monotonic()

    def resume(self) -> None:
        self.paused_s += time.monotonic() - self._paused_at
        self._live.start()

    def close(self) -> None:
        """Stop drawing (a transient line is erased); closing again does nothing."""
        self._live.stop()
        self._on_close(self)


def _draw_bar(line: Any, done: int, total: int, rich: Any) -> None:
    """A bar of ``_BAR_WIDTH`` cells as rich's ``ProgressBar`` draws it, half cells included;
    without colour the part to do is blank."""
    ascii_only = rich.legacy_windows or not rich.encoding.lower().startswith("utf")
    full_glyph, half_glyph, start_glyph = ("-", " ", " ") if ascii_only else ("━", "╸", "╺")
    halves = int(_BAR_WIDTH * 2 * min(max(done, 0), total) / total) if total > 0 else 0
    full, half = divmod(halves, 2)
    style = "bar.finished" if done >= total else "bar.complete"
    line.append(full_glyph * full + half_glyph * half, style)
    rest = _BAR_WIDTH - full - half
    if not rest:
        return
    if rich.no_color or rich.color_system is None:
        line.append(" " * rest)
        return
    if full and not half:
        line.append(start_glyph, "bar.back")
        rest -= 1
    line.append(full_glyph * rest, "bar.back")


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- one cause on many rows, said once --


def compact_rows(rows: Iterable[int]) -> str:
    """``2-40, 45, 50-99``: the rows in order, runs of consecutive rows as ranges."""
    ordered = sorted(set(rows))
    parts: list[str] = []
    start = prev = None
    for row in ordered:
        if prev is not None and row == prev + 1:
            prev = row
            continue
        if start is not None:
            parts.append(_span(start, prev))
        start = prev = row
    if start is not None:
        parts.append(_span(start, prev))
    return ", ".join(parts)


def _span(start: int, end: int | None) -> str:
    return str(start) if end is None or end == start else f"{start}-{end}"


SUMMARISED_FROM = 3  # rows with one cause before they are said once


def by_cause(items: Iterable[tuple[Hashable, int, str, Callable[[str], str]]]) -> list[str]:
    """``(cause, row, line, summary)`` items as lines: each item's own ``line``, except one
    ``cause`` on ``SUMMARISED_FROM`` or more rows, said once where its first row stood, as
    ``summary(rows_text(rows))`` (``--verbose`` callers print every line instead)."""
    groups: dict[Hashable, list[tuple[int, str, Callable[[str], str]]]] = {}
    for cause, row, line, summary in items:
        groups.setdefault(cause, []).append((row, line, summary))
    lines: list[str] = []
    for group in groups.values():
        if len(group) < SUMMARISED_FROM:
            lines += [line for _, line, _ in group]
        else:
            lines.append(group[0][2](rows_text([row for row, _, _ in group])))
    return lines


def rows_text(rows: list[int]) -> str:
    """``row 7`` or ``rows 2-40, 45 (40 rows)``."""
    if len(rows) == 1:
        return _("row {row}").format(row=rows[0])
    return _("rows {rows} ({count} rows)").format(rows=compact_rows(rows), count=len(rows))


console = Console()
