"""The blocks every Summary sheet is built from, so the result and audit workbooks agree.

A Summary sheet (``cells.SummarySheet``) reads top to bottom: a title and the next steps, a
count table with its bar chart beside it, other count tables, then facts: who ran what, when,
from which input (``provenance_items``), and the settings (``settings_items``: flattened,
secret-like keys left out, URLs without their user-info part), and last the rules that
explain the numbers (``notes``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Protocol

from bulkscan.dsc.endpoints import DEFAULT_HOST
from bulkscan.i18n import N_, _
from bulkscan.report.cells import (
    OUTCOME_TONES,
    Block,
    bar_chart,
    bar_colour,
    count_table,
    redact_url,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from bulkscan.models import DataSource
    from bulkscan.report.cells import SummarySheet, Tone

__all__ = [
    "CHART_ROWS",
    "Provenance",
    "charted_table",
    "duration_text",
    "notes",
    "provenance_items",
    "settings_items",
    "sources_text",
    "zone_text",
]

CHART_ROWS = 18  # rows a summary chart covers, beside its table
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|(^|_)sk($|_)", re.IGNORECASE)


def duration_text(delta: dt.timedelta) -> str:
    """``h:mm:ss`` (never negative)."""
    total = max(0, round(delta.total_seconds()))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02}:{rest % 60:02}"


def zone_text(moment: dt.datetime) -> str:
    """The UTC offset of ``moment`` as ``UTC+08:00`` (``not recorded`` for a naive time)."""
    offset = moment.utcoffset()
    if offset is None:
        return "not recorded"
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(round(offset.total_seconds() / 60))
    return f"UTC{sign}{minutes // 60:02}:{minutes % 60:02}"


def sources_text(sources: Iterable[DataSource]) -> str:
    """Data sources as ``db_type:ins_id`` (just ``ins_id`` when no type is given), ``; ``-joined."""
    return "; ".join(f"{s.db_type}:{s.ins_id}" if s.db_type else s.ins_id for s in sources)


class Provenance(Protocol):
    """What a run's (or an audit's) record says of who ran it, where, when and on what."""

    @property
    def started_at(self) -> dt.datetime | None: ...
    @property
    def ended_at(self) -> dt.datetime | None: ...
    @property
    def operator(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def bulkscan_version(self) -> str: ...
    @property
    def input_path(self) -> str: ...
    @property
    def input_sha256(self) -> str: ...


def provenance_items(meta: Provenance, *, resumed: bool = False) -> list[tuple[str, object]]:
    """Who ran bulkscan, where, when, for how long, and on which input (times shown in UTC).

    ``resumed``: the times are those of the last session (each start of a resumed run sets
    them), and say so; the operator and host are the first session's."""
    started, ended = meta.started_at, meta.ended_at
    duration = duration_text(ended - started) if started and ended else None
    times = (
        (N_("last session started (UTC)"), N_("last session ended (UTC)"),
         N_("last session's duration (h:mm:ss)"))
        if resumed
        else (N_("started (UTC)"), N_("ended (UTC)"), N_("duration (h:mm:ss)"))
    )  # fmt: skip
    return [
        (times[0], started),
        (times[1], ended),
        (N_("time zone of the run"), zone_text(started) if started else None),
        (times[2], duration),
        (N_("operator"), meta.operator),
        (N_("host"), meta.host),
        (N_("bulkscan version of the run"), meta.bulkscan_version),
        (N_("input file"), meta.input_path),
        (N_("input SHA-256"), meta.input_sha256),
    ]


def settings_items(settings: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    """Nested settings as ``dispatch.rate_per_s``-style keys, sorted; secret-like keys left out.

    Every URL loses its user-info part; a missing ``endpoint`` says where requests go instead.
    """
    for key in sorted(settings):
        value = settings[key]
        if _SECRET_KEY.search(key):
            continue
        if isinstance(value, dict):
            yield from settings_items(value, f"{prefix}{key}.")
        elif key == "endpoint" and settings.get("simulated"):  # its port changes each session
            yield f"{prefix}{key}", _("the embedded simulator")
        elif key == "endpoint" and not value:
            yield f"{prefix}{key}", f"per region ({DEFAULT_HOST})"
        else:
            yield f"{prefix}{key}", _setting_value(value)


def _setting_value(value: Any) -> object:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list | tuple):
        return ", ".join(redact_url(str(v)) for v in value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return str(value)


def charted_table(
    sheet: SummarySheet,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    heading: str,
    title: str,
    value_column: int = 2,
    charted_rows: int | None = None,
    anchor_column: str = "F",
    anchor: str | None = None,
    axis_title: str | None = None,
    status_column: int | None = 0,
    tones: Mapping[str, Tone] = OUTCOME_TONES,
    size: tuple[float, float] = (16.0, 8.0),
) -> Block:
    """A ``count_table`` with a bar chart beside it; the sheet goes on below the chart.

    ``charted_rows`` limits the chart to the first rows (e.g. to leave out a total row); every
    row stays in the table, zeros included.  Each bar has its label's colour (``bar_colour``)
    when the table has a status column.  ``anchor`` places the chart elsewhere (e.g. at the
    top of the sheet, above its table); then nothing is reserved beside the table.
    """
    lines = [list(row) for row in rows]
    block = count_table(
        sheet, headers, lines, heading=heading, status_column=status_column, tones=tones
    )
    top = block.header_row or block.first_row
    if block.last_row < block.first_row:
        return block
    last = block.last_row if charted_rows is None else block.first_row + charted_rows - 1
    charted = lines[: last - block.first_row + 1]
    colours = [] if status_column is None else [bar_colour(r[status_column], tones)
                                                for r in charted]  # fmt: skip
    bar_chart(
        sheet,
        Block(block.first_row, last, block.header_row),
        title=title,
        value_column=value_column,
        anchor=anchor or f"{anchor_column}{top}",
        axis_title=axis_title,
        colours=colours,
        size=size,
    )
    if anchor is None:
        sheet.blank(until=max(sheet.row + 2, top + CHART_ROWS))  # nothing long beside it
    return block


def notes(sheet: SummarySheet, lines: Iterable[str], *, heading: str | None = None) -> None:
    """Plain lines of text (rules, next steps), under an optional heading."""
    if heading:
        sheet.heading(heading)
    for line in lines:
        sheet.append([line])
