"""Workbook writing shared by every bulkscan workbook (result, retry and audit workbooks).

Everything goes through ``safe_cell``, the one place where a value becomes a cell:

* text that a spreadsheet could take for a formula (it starts with ``=``, ``+``, ``-``, ``@``,
  tab, CR, or their full-width forms) or for an error value (``#N/A``…) is written as a text
  cell (``t="inlineStr"``) with Excel's *quote prefix* style, so Excel and LibreOffice show
  the literal text, never evaluate it, and keep it text when the cell is edited; reading the
  file back gives the original string;
* characters XML cannot hold (C0 controls other than tab and LF) are dropped, CR and CRLF
  become LF (XML readers would turn them into LF anyway), text longer than a cell can hold
  (32,767 characters) is cut with a marker;
* time-zone-aware date-times become naive UTC (headers say ``(UTC)``), so every date is a
  real Excel date; naive ones (from an input sheet) are written as they are;
* a column carried from an input keeps the input's number format (``input_formats`` of
  ``write_table``) on the values it fits: a date format on dates, any other on numbers,
  none on text, which stays the literal text it is.

Sheets are written in openpyxl's write-only mode, so a table of 100,000 rows streams to disk.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.label import DataLabelList
from openpyxl.chart.marker import DataPoint
from openpyxl.chart.text import RichText
from openpyxl.drawing.text import CharacterProperties, Paragraph, ParagraphProperties
from openpyxl.styles import Font, PatternFill
from openpyxl.styles.numbers import is_date_format
from openpyxl.utils import get_column_letter

from bulkscan.files import write_atomically
from bulkscan.i18n import _, in_every_language

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "AsWritten",
    "as_written",
    "formats_at",
    "DATE_FORMAT",
    "DATETIME_FORMAT",
    "MAX_CELL_CHARS",
    "OUTCOME_TONES",
    "SEVERITY_TONES",
    "VERDICT_TONES",
    "Block",
    "SummarySheet",
    "Table",
    "TableInfo",
    "Tone",
    "bar_chart",
    "bar_colour",
    "cell_value",
    "clean_text",
    "count_table",
    "fit_widths",
    "fitting_format",
    "header_key",
    "own_headers",
    "shown_header",
    "is_risky",
    "new_workbook",
    "print_setup",
    "redact_url",
    "safe_cell",
    "save_workbook",
    "utc_naive",
    "workbook_meta",
    "write_table",
]

Tone = Literal["good", "bad", "warn", "muted"]

DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "hh:mm:ss"
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
_CUT_MARK = " …[cut]"

# Outcome words as the report shows them (models.Outcome values) → colour.
OUTCOME_TONES: Mapping[str, Tone] = {
    "created": "good",
    "accepted": "good",
    "exists": "good",
    "failed": "bad",
    "conflict": "bad",
    "gave up": "warn",
    "unknown": "warn",
    "skipped": "muted",
    "not attempted": "muted",
}
SEVERITY_TONES: Mapping[str, Tone] = {"error": "bad", "warning": "warn"}
# Verdicts of HTTP attempts (dsc.classify.Verdict values, plus "listed") → colour.
VERDICT_TONES: Mapping[str, Tone] = {
    "created": "good",
    "accepted": "good",
    "listed": "good",
    "throttled": "warn",
    "transient": "warn",
    "ambiguous": "warn",
    "task-permanent": "bad",
    "project-permanent": "bad",
    "run-fatal": "bad",
}

# (fill, font colour): Excel's own "good / bad / neutral" cell styles, plus grey.
# A chart's bar of a tone is drawn in the tone's font colour (strong enough to read as a bar).
_TONE_COLOURS: Mapping[str, tuple[str, str]] = {
    "good": ("C6EFCE", "006100"),
    "bad": ("FFC7CE", "9C0006"),
    "warn": ("FFE0B2", "9C4A00"),
    "muted": ("E7E6E6", "595959"),
}
_TONE_STYLES: Mapping[str, tuple[PatternFill, Font, Font]] = {
    tone: (
        PatternFill("solid", start_color=fill, end_color=fill),
        Font(color=colour),
        Font(color=colour, bold=True),
    )
    for tone, (fill, colour) in _TONE_COLOURS.items()
}
# One colour per outcome (and coverage status) in charts: greens for success, reds for
# failure, ambers for "not known yet", greys for "not sent"; each distinct from its neighbours.
_BAR_COLOURS: Mapping[str, str] = {
    "created": "2E7D32",
    "accepted": "66BB6A",
    "exists": "A5D6A7",
    "failed": "C62828",
    "conflict": "AD1457",
    "gave up": "EF6C00",
    "unknown": "F9A825",
    "skipped": "9E9E9E",
    "not attempted": "616161",
    "covered": "2E7D32",
    "not covered": "C62828",
    "only disabled tasks": "AD1457",
}
_TONE_BARS: Mapping[str, str] = {
    "good": "2E7D32", "bad": "C62828", "warn": "EF6C00", "muted": "9E9E9E",
}  # fmt: skip
_CHART_DEFAULT = "1F4E78"
_LABEL_SIZE = 800  # 8 pt, in hundredths of a point
_HEADER_FILL = PatternFill("solid", start_color="1F4E78", end_color="1F4E78")
_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADING_FONT = Font(bold=True, size=13, color="1F4E78")
_BOLD = Font(bold=True)

# Leading characters a spreadsheet may read as the start of a formula (or a DDE call).
_RISKY_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_URL_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


# --- values --------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` without characters XML cannot hold, CR as LF, cut to what one cell can hold."""
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(_CUT_MARK)] + _CUT_MARK
    return text


def is_risky(text: str) -> bool:
    """True when a spreadsheet could evaluate ``text`` (a formula, DDE call or error value)."""
    return bool(text) and (text[0] in _RISKY_START or text in ERROR_CODES)


def utc_naive(value: dt.datetime) -> dt.datetime:
    """An aware date-time as naive UTC (Excel has no time zones); naive ones unchanged."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def cell_value(value: object) -> Any:
    """``value`` as a plain value Excel can hold (see the module docstring); None stays None."""
    if value is None or isinstance(value, bool | int):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, dt.datetime):
        return utc_naive(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.date | dt.time):
        return value
    text = (
        json.dumps(value, ensure_ascii=False, default=str)
        if isinstance(value, list | tuple | dict)
        else str(value)
    )
    return clean_text(text)


def _number_format_of(value: object) -> str | None:
    if isinstance(value, dt.datetime):
        return DATETIME_FORMAT
    if isinstance(value, dt.date):
        return DATE_FORMAT
    if isinstance(value, dt.time):
        return TIME_FORMAT
    return None


def fitting_format(code: str | None, value: object) -> str | None:
    """``code``, an input column's number format, if it suits ``value``: a date format for a
    date, any other for a finite number; None for text, booleans and blanks (text keeps no
    format of an input's: it shows as the literal text it is)."""
    if code is None or value is None or isinstance(value, bool):
        return None
    if isinstance(value, dt.date | dt.time):
        return code if _is_date_format(code) else None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return None if _is_date_format(code) else code
    return None


@functools.lru_cache(maxsize=256)
def _is_date_format(code: str) -> bool:
    return bool(is_date_format(code))


def safe_cell(
    ws: Any,
    value: object,
    *,
    tone: Tone | None = None,
    bold: bool = False,
    number_format: str | None = None,
) -> Any:
    """What to append to a row of ``ws`` for ``value``: a plain value, or a styled cell.

    The one way bulkscan turns a value into a cell.  Risky text becomes an inert text cell;
    dates get a date format; ``tone`` colours the cell, ``bold`` sets its font.
    """
    plain = cell_value(value)
    risky = isinstance(plain, str) and is_risky(plain)
    date_format = _number_format_of(plain)
    if not (risky or tone or bold or number_format or date_format):
        return plain
    cell = WriteOnlyCell(ws, value=plain)
    if risky:
        cell.data_type = "s"
        cell.quotePrefix = True
    if number_format or date_format:
        cell.number_format = number_format or date_format
    if tone is not None:
        fill, font, bold_font = _TONE_STYLES[tone]
        cell.fill = fill
        cell.font = bold_font if bold else font
    elif bold:
        cell.font = _BOLD
    return cell


def redact_url(text: str) -> str:
    """A URL without its user-info part (``https://user:pw@host`` → ``https://***@host``)."""
    return _URL_USERINFO.sub("***@", text)


# --- workbooks -----------------------------------------------------------------------------


def new_workbook() -> Workbook:
    """An empty write-only workbook (its sheets stream to disk as rows are appended)."""
    return Workbook(write_only=True)


def save_workbook(wb: Workbook, path: str | os.PathLike[str]) -> Path:
    """Save ``wb`` atomically: a temporary file next to ``path``, synced, then renamed."""
    return write_atomically(path, wb.save)


def print_setup(ws: Any, *, title_rows: str | None = "1:1") -> None:
    """Print (or export to PDF) ``ws`` landscape, one page wide, ``title_rows`` on every page.

    Every sheet bulkscan writes goes through here (``write_table``, ``SummarySheet``), so a
    printed workbook never splits a row across pages nor loses its header row.
    """
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as it takes
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    if title_rows:
        ws.print_title_rows = title_rows


# --- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """A sheet's content as plain values (for callers that want data, e.g. DataFrames).

    ``ids`` names the columns that hold identifiers: text, whatever they look like.
    """

    headers: tuple[str, ...]
    lines: tuple[tuple[object, ...], ...]
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What ``write_table`` wrote: the sheet title, data rows, and the table's range."""

    title: str
    rows: int
    ref: str  # e.g. "A1:K101", header included


def _width(header: str) -> float:
    return float(min(max(len(header) + 4, 10), 50))


def fit_widths(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, cap: int = 60
) -> list[float]:
    """Column widths that show each column's longest value (or header), up to ``cap``.

    For tables a person reads by their ids (retry and uncovered rows): an id cut off by the
    next column is an id nobody can copy.
    """
    longest = [len(str(h)) for h in headers]
    for row in rows:
        for index, value in enumerate(row[: len(longest)]):
            if value is not None:
                text = str(cell_value(value))
                longest[index] = max(longest[index], *map(len, text.split("\n")))
    return [float(min(max(n + 2, 8), cap)) for n in longest]


def _resolve(column: int | str | None, headers: Sequence[str]) -> int | None:
    if column is None or isinstance(column, int):
        return column
    return headers.index(column)


# --- headers in the reader's language ---------------------------------------------------------

_OWN_HEADERS: set[str] = set()


def own_headers(*names: str) -> tuple[str, ...]:
    """Declare bulkscan's own column headers (each marked with ``N_``): tables show them in
    the chosen language; any other header (an input's own, as written) is shown unchanged.
    Code keeps working with the English names (status and number-format columns, reading a
    workbook back through ``header_key``)."""
    _OWN_HEADERS.update(names)
    return names


class AsWritten(str):
    """A header as the input wrote it: shown unchanged in every language, even when it
    spells one of bulkscan's own (an input column named ``status`` or ``region``)."""

    __slots__ = ()


def formats_at(headers: Iterable[str], formats: Mapping[str, str]) -> dict[int, str]:
    """Column index → the number format the input's cells had (``formats``: header → format,
    as the loader read them), for the columns of ``headers`` that are the input's own;
    ``write_table``'s ``input_formats``."""
    return {index: formats[h] for index, h in enumerate(headers) if h in formats}


def as_written(headers: Iterable[str]) -> list[str]:
    """The input's ``headers``, marked to be shown as written (``AsWritten``)."""
    return [AsWritten(header) for header in headers]


def shown_header(name: str) -> str:
    """``name`` as a table shows it: translated when it is one of bulkscan's own headers
    (and not the input's own, ``AsWritten``)."""
    if name in _OWN_HEADERS and not isinstance(name, AsWritten):
        return _(name)
    return str(name)


def header_key(shown: object) -> str:
    """The English name of a header read back from a workbook written in any language."""
    text = "" if shown is None else str(shown)
    for name in _OWN_HEADERS:
        if text in in_every_language(name):
            return name
    return text


def _header_cells(ws: Any, headers: Sequence[str], *, all_own: bool = False) -> list[Any]:
    """Styled header cells; ``all_own`` (a summary's small tables) translates every header."""
    cells = []
    for header in headers:
        shown = _(header) if all_own else shown_header(header)
        cell = WriteOnlyCell(ws, value=cell_value(shown))
        if is_risky(cell.value):
            cell.data_type = "s"
            cell.quotePrefix = True
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cells.append(cell)
    return cells


def write_table(
    wb: Workbook,
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    widths: Sequence[float | None] | None = None,
    status_column: int | str | None = None,
    tones: Mapping[str, Tone] = OUTCOME_TONES,
    number_formats: Mapping[int | str, str] | None = None,
    input_formats: Mapping[int, str] | None = None,
    notes: Iterable[str] = (),
    frozen_columns: int = 0,
) -> TableInfo:
    """A sheet with a styled, frozen header row, an autofilter, widths and coloured statuses.

    ``rows`` may be a generator (it is consumed once, streaming); every value goes through
    ``safe_cell``.  ``status_column`` (index or header) is coloured by ``tones`` of its text;
    ``number_formats`` maps a column (index or header) to an Excel number format;
    ``input_formats`` maps a column carried from an input (index) to the number format its
    input cells had, set on the values it suits (``fitting_format``); ``notes``
    are bold lines under the table, after an empty row (outside the autofilter range);
    ``frozen_columns`` first columns stay in view when scrolling right (a row's identity).
    The sheet prints landscape, one page wide, with the header row on every page.
    """
    ws = wb.create_sheet(title=title)
    ws.freeze_panes = f"{get_column_letter(frozen_columns + 1)}2"
    print_setup(ws)
    for index, header in enumerate(headers):
        given = widths[index] if widths is not None and index < len(widths) else None
        ws.column_dimensions[get_column_letter(index + 1)].width = given or _width(header)
    status = _resolve(status_column, headers)
    formats = {_resolve(k, headers): v for k, v in (number_formats or {}).items()}
    ws.append(_header_cells(ws, headers))
    count = 0
    carried = dict(input_formats or {})
    for row in rows:
        ws.append(_row_cells(ws, row, status, tones, formats, carried))
        count += 1
    last = get_column_letter(max(len(headers), 1))
    ref = f"A1:{last}{count + 1}"
    ws.auto_filter.ref = ref
    lines = list(notes)
    if lines:
        ws.append([])
    for line in lines:
        ws.append([safe_cell(ws, line, bold=True)])
    return TableInfo(title, count, ref)


def _row_cells(  # noqa: PLR0917 - a row and how its columns look
    ws: Any,
    row: Sequence[object],
    status: int | None,
    tones: Mapping[str, Tone],
    formats: Mapping[int | None, str],
    carried: Mapping[int, str] | None = None,
) -> list[Any]:
    cells = []
    for index, value in enumerate(row):
        tone = tones.get(value) if index == status and isinstance(value, str) else None
        fmt = formats.get(index)
        if fmt is None and carried:
            fmt = fitting_format(carried.get(index), value)
        if tone is None and fmt is None:
            cells.append(safe_cell(ws, value))
        else:
            cells.append(safe_cell(ws, value, tone=tone, number_format=fmt))
    return cells


# --- a summary sheet: key/value blocks, small tables and charts ---------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """Rows ``first_row``..``last_row`` (1-based) of a summary sheet, header row excluded."""

    first_row: int
    last_row: int
    header_row: int | None = None


class SummarySheet:
    """A write-only sheet written top to bottom, which knows the number of its last row."""

    def __init__(
        self, wb: Workbook, title: str = "Summary", *, widths: Sequence[float] = (34, 22, 16, 16)
    ) -> None:
        self.ws = wb.create_sheet(title=title)
        for index, width in enumerate(widths):
            self.ws.column_dimensions[get_column_letter(index + 1)].width = width
        # printed (or exported to PDF) one page wide, so a chart is never cut in two
        print_setup(self.ws, title_rows=None)  # no one header row: blocks under headings
        self.row = 0

    def append(self, values: Sequence[object], *, bold: bool = False) -> int:
        """Append one row (every value through ``safe_cell``); returns its row number."""
        self.ws.append([safe_cell(self.ws, v, bold=bold) if v is not None else None
                        for v in values])  # fmt: skip
        self.row += 1
        return self.row

    def append_cells(self, cells: Sequence[object]) -> int:
        """Append cells already made by ``safe_cell``."""
        self.ws.append(list(cells))
        self.row += 1
        return self.row

    def heading(self, text: str) -> int:
        """A bold heading: bulkscan's own words (marked ``N_``), in the chosen language."""
        cell = safe_cell(self.ws, _(text), bold=True)
        cell.font = _HEADING_FONT
        return self.append_cells([cell])

    def blank(self, until: int | None = None) -> None:
        """One empty row, or empty rows until the next row is ``until``."""
        self.append([])
        while until is not None and self.row < until - 1:
            self.append([])


def workbook_meta(
    sheet: SummarySheet,
    items: Iterable[tuple[str, object]],
    *,
    heading: str | None = None,
    tones: Mapping[str, Tone] | None = None,
) -> Block:
    """A key/value block: bold keys in column A, values in B (long text overflows right).

    Keys are bulkscan's own labels (marked ``N_``) and are shown in the chosen language;
    values are shown as given.  ``tones`` colours a value cell whose text it names (e.g. a
    run status).
    """
    if heading:
        sheet.heading(heading)
    first = sheet.row + 1
    for key, value in items:
        tone = tones.get(value) if tones and isinstance(value, str) else None
        key_cell = safe_cell(sheet.ws, _(key), bold=True)
        sheet.append_cells([key_cell, safe_cell(sheet.ws, value, tone=tone)])
    return Block(first, sheet.row)


def count_table(
    sheet: SummarySheet,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    heading: str | None = None,
    status_column: int | None = 0,
    tones: Mapping[str, Tone] = OUTCOME_TONES,
) -> Block:
    """A small table (header row, then ``rows``) inside a summary sheet; its headers are
    bulkscan's own words, shown in the chosen language."""
    if heading:
        sheet.heading(heading)
    header_row = sheet.append_cells(_header_cells(sheet.ws, headers, all_own=True))
    for row in rows:
        sheet.append_cells(_row_cells(sheet.ws, row, status_column, tones, {}))
    return Block(header_row + 1, sheet.row, header_row)


def bar_chart(
    sheet: SummarySheet,
    block: Block,
    *,
    title: str,
    label_column: int = 1,
    value_column: int = 2,
    anchor: str | None = None,
    axis_title: str | None = None,
    colours: Sequence[str | None] = (),
    size: tuple[float, float] = (16.0, 8.0),
) -> BarChart:
    """A bar chart of a ``count_table`` (labels and values are 1-based column numbers).

    Every category label is shown (none skipped for lack of room) and every bar carries its
    value; ``colours[i]`` (RGB hex) colours the i-th bar (``bar_colour`` of its label), the
    rest are the header blue.  ``anchor`` defaults to column F beside the table's header
    row; ``size`` is (width, height) in cm.
    """
    chart = BarChart()
    chart.type = "bar"  # horizontal bars: outcome words stay readable
    chart.title = _(title)
    chart.legend = None
    chart.width, chart.height = size
    chart.x_axis.scaling.orientation = "maxMin"  # first table row at the top
    chart.x_axis.delete = False  # keep both axes visible in current Excel
    chart.y_axis.delete = False
    chart.x_axis.tickLblSkip = 1  # every label, even when the bars are thin
    chart.x_axis.txPr = _font_of_size(_LABEL_SIZE)  # small enough that none is dropped
    chart.y_axis.txPr = _font_of_size(_LABEL_SIZE)
    chart.y_axis.majorGridlines = None
    chart.gapWidth = 40
    if axis_title:
        chart.y_axis.title = _(axis_title)
    top = block.header_row or block.first_row
    data = Reference(sheet.ws, min_col=value_column, min_row=top, max_row=block.last_row)
    labels = Reference(
        sheet.ws, min_col=label_column, min_row=block.first_row, max_row=block.last_row
    )
    chart.add_data(data, titles_from_data=block.header_row is not None)
    chart.set_categories(labels)
    series = chart.series[0]
    series.graphicalProperties.solidFill = _CHART_DEFAULT
    series.graphicalProperties.line.solidFill = _CHART_DEFAULT
    for index, colour in enumerate(colours):
        if colour:
            point = DataPoint(idx=index)
            point.graphicalProperties.solidFill = colour
            point.graphicalProperties.line.solidFill = colour
            series.dPt.append(point)
    chart.dataLabels = DataLabelList()
    chart.dataLabels.showVal = True
    for flag in ("showSerName", "showCatName", "showLegendKey", "showPercent"):
        setattr(chart.dataLabels, flag, False)
    sheet.ws.add_chart(chart, anchor or f"F{top}")
    return chart


def _font_of_size(hundredths_pt: int) -> RichText:
    size = CharacterProperties(sz=hundredths_pt)
    return RichText(p=[Paragraph(pPr=ParagraphProperties(defRPr=size), endParaRPr=size)])


def bar_colour(label: object, tones: Mapping[str, Tone] = OUTCOME_TONES) -> str | None:
    """The colour of ``label``'s bar: its own (outcomes, coverage), else its tone's, else None."""
    if not isinstance(label, str):
        return None
    own = _BAR_COLOURS.get(label)
    if own is not None:
        return own
    tone = tones.get(label)
    return None if tone is None else _TONE_BARS[tone]
