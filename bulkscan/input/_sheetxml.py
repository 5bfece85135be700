"""What a worksheet's XML says about its cells that the xlsx reader's values do not.

The reader hands over values only: a formula saved without its value, an error cell
(``#REF!``, ``#VALUE!``...) and every cell of a merged range but the first all read as
blank, a hidden row reads like any other, and ``123`` shown as ``00123`` by its number format
reads as ``123``.  ``read_marks`` finds these in the sheet's XML so that the loader can say
so, naming the cell.

Most sheets have none of them, and a large sheet is costly to parse (an XML parser's
callbacks take tens of seconds for 100,000 rows).  So the XML is searched for the few tags
and attributes that matter (``<f``, ``t="e"``, ``hidden``, ``mergeCell``, a zero-padding
style) with plain substring searches (a regex alternation is several times slower), and
only the tag or cell around each hit is read.  XML not laid out as Excel, LibreOffice and
openpyxl write it (a namespace prefix, a row or cell without its ``r`` reference) is parsed
exactly instead.  The archive was checked by ``archive.guard_archive`` first (no DTD,
bounded size), so parsing it is safe.

``read_formats`` gives the number format (``yyyy-mm-dd``, ``0%``) of a few named cells near
the top of a sheet, so that a workbook written from the rows can show them as the input did;
it reads the sheet's XML only down to the lowest of those cells.
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import unescape

from openpyxl.styles.numbers import BUILTIN_FORMATS

from bulkscan.input._archive import (
    PREFIXED_ROOT,
    column_index,
    member_chunks,
    parse_member,
    sheet_parts,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = ["Marks", "read_formats", "read_marks"]

_STYLES = "xl/styles.xml"
_SMALL = 4 * 1024 * 1024  # styles and workbook parts are read whole up to this size
_CELL = re.compile(r"^([A-Za-z]{1,3})([0-9]+)$")
_PADDED = re.compile(r"^(0{2,})$")  # a number format that pads with zeros: 00000
_NEEDLES = (b"<f", b't="e"', b"hidden", b"mergeCell")
_TRUE = frozenset({"1", "true"})
_HEAD = 64 * 1024  # where a namespace prefix on the root shows
_ATTR = re.compile(rb'([\w:]+)\s*=\s*"([^"]*)"')
_VALUE = re.compile(rb"<v(?:\s[^>]*)?>([^<]*)</v>")
_GENERAL = "General"
_MAX_FORMAT = 255  # Excel's longest number format code
_TOP_PIECE = 64 * 1024  # the top of a sheet is read in pieces this big, until past its cells

Cell = tuple[int, int]  # (row, column), both counted from 1


@dataclass(slots=True)
class Marks:
    """Cells of one sheet whose value, as read, is not what the sheet shows."""

    no_value: list[Cell] = field(default_factory=list)  # a formula without a saved value
    errors: dict[Cell, str] = field(default_factory=dict)  # an error value: '#REF!'
    merged: list[tuple[Cell, Cell]] = field(default_factory=list)  # (top left, bottom right)
    hidden_rows: set[int] = field(default_factory=set)
    hidden_cols: set[int] = field(default_factory=set)
    padded: dict[Cell, str] = field(default_factory=dict)  # a number → the text it shows


def read_marks(archive: zipfile.ZipFile, sheets: tuple[str, ...]) -> dict[str, Marks]:
    """``{sheet name: Marks}`` for the named sheets (best effort: none for an odd archive)."""
    parts = {name: part for part, name in sheet_parts(archive).items() if name in sheets}
    padded = _padded_styles(archive)
    needles = (*_NEEDLES, *(f' s="{style}"'.encode("ascii") for style in padded))
    found: dict[str, Marks] = {}
    for name, part in parts.items():
        try:
            info = archive.getinfo(part)
        except KeyError:
            continue
        marks = _fast(archive, info, padded, needles)
        found[name] = marks if marks is not None else _parse(archive, info, padded)
    return found


def _position(attrs: Mapping[str, str], row: int, col: int) -> tuple[int, int]:
    """The (row, 1-based column) of a ``<c>`` element: its ``r`` reference, else the cell
    after the previous one in the same row."""
    match = _CELL.match(attrs.get("r", ""))
    if match:
        return int(match.group(2)), column_index(match.group(1)) + 1
    return row, col + 1


class _Irregular(Exception):
    """XML not laid out as Excel writes it (no ``r`` on a row or cell): parse it exactly."""


def _fast(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    padded: Mapping[str, str],
    needles: tuple[bytes, ...],
) -> Marks | None:
    """The marks from substring searches and the few tags around each hit; None when only
    the exact parse can be trusted.  The XML is cut into pieces of whole rows."""
    marks = Marks()
    carry = b""
    try:
        for index, chunk in enumerate(member_chunks(archive, info)):
            if index == 0 and PREFIXED_ROOT.search(chunk, 0, _HEAD):
                return None
            text = carry + chunk
            cut = text.rfind(b"<row")
            if cut == 0:
                carry = text  # one row longer than a chunk: wait for its end
                continue
            cut = cut if cut > 0 else len(text)
            carry = text[cut:]
            _scan(text[:cut], needles, padded, marks)
        _scan(carry, needles, padded, marks)
    except _Irregular:
        return None
    return marks


def _scan(
    piece: bytes, needles: tuple[bytes, ...], padded: Mapping[str, str], marks: Marks
) -> None:
    seen: set[int] = set()  # cells already judged (a formula cell may hold an error too)
    for needle in needles:
        pos = piece.find(needle)
        while pos >= 0:
            _hit(piece, pos, padded, marks, seen)
            pos = piece.find(needle, pos + len(needle))


def _hit(piece: bytes, pos: int, padded: Mapping[str, str], marks: Marks, seen: set[int]) -> None:
    """Judge the tag around ``pos`` (a hit inside a text value is no tag of interest)."""
    start = piece.rfind(b"<", 0, pos + 1)
    end = piece.find(b">", start)
    if start < 0 or end < 0:
        return
    tag = piece[start + 1 : end]
    name = tag.split(None, 1)[0].rstrip(b"/") if tag.strip() else b""
    if name == b"f":
        cell = piece.rfind(b"<c ", 0, start)
        if cell < 0 or piece.find(b"</c>", cell, start) >= 0:
            raise _Irregular
        _cell_at(piece, cell, padded, marks, seen)
    elif name == b"c":
        _cell_at(piece, start, padded, marks, seen)
    elif name in {b"row", b"col", b"mergeCell"}:
        attrs = {k.decode(): v.decode("utf-8", "replace") for k, v in _ATTR.findall(tag)}
        _tag(name.decode(), attrs, marks)


def _tag(name: str, attrs: dict[str, str], marks: Marks) -> None:
    if name == "mergeCell":
        _merge(attrs.get("ref", ""), marks)
    elif attrs.get("hidden") not in _TRUE:
        return
    elif name == "row":
        if not attrs.get("r", "").isdigit():
            raise _Irregular
        marks.hidden_rows.add(int(attrs["r"]))
    else:
        _hide_columns(attrs, marks)


def _cell_at(
    piece: bytes, start: int, padded: Mapping[str, str], marks: Marks, seen: set[int]
) -> None:
    if start in seen:
        return
    seen.add(start)
    end = piece.find(b">", start)
    attrs = {k.decode(): v.decode("utf-8", "replace") for k, v in _ATTR.findall(piece[start:end])}
    match = _CELL.match(attrs.get("r", ""))
    if match is None:
        raise _Irregular
    body = b""
    if piece[end - 1 : end] != b"/":
        close = piece.find(b"</c>", end)
        if close < 0:
            raise _Irregular
        body = piece[end + 1 : close]
    found = _VALUE.search(body)
    value = unescape(found.group(1).decode("utf-8", "replace")).strip() if found else ""
    if not value and b"<is" in body:
        value = " "  # an inline string: a value, whatever its text
    cell = (int(match.group(2)), column_index(match.group(1)) + 1)
    kind, style = attrs.get("t", "n"), attrs.get("s", "")
    _judge(marks, padded, cell, kind, style, formula=b"<f" in body, value=value)


def _padded_styles(archive: zipfile.ZipFile) -> dict[str, str]:
    """Style index (as in ``s="3"``) → number format, for the formats that pad with zeros."""
    styles: dict[str, str] = {}
    for index, code in _style_formats(archive).items():
        first = code.split(";")[0].strip()
        if _PADDED.match(first):
            styles[index] = first
    return styles


def _style_formats(archive: zipfile.ZipFile) -> dict[str, str]:
    """Style index (as in ``s="3"``) → its number format code, a custom ``numFmt`` or a
    built-in one; styles with no format, General or one unknown are left out."""
    try:
        with archive.open(_STYLES) as stream:
            root = ET.fromstring(stream.read(_SMALL))  # noqa: S314 - checked for DTDs
    except (KeyError, ET.ParseError, OSError, zipfile.BadZipFile):
        return {}
    custom = {
        node.get("numFmtId", ""): node.get("formatCode", "")
        for node in root.iter()
        if _local(node.tag) == "numFmt"
    }
    xfs = next((node for node in root.iter() if _local(node.tag) == "cellXfs"), None)
    styles: dict[str, str] = {}
    cells = [x for x in (xfs if xfs is not None else ()) if _local(x.tag) == "xf"]
    for index, xf in enumerate(cells):
        ident = xf.get("numFmtId", "")
        code = custom.get(ident)
        if code is None and ident.isdigit():
            code = BUILTIN_FORMATS.get(int(ident))
        if code and code != _GENERAL and len(code) <= _MAX_FORMAT:
            styles[str(index)] = code
    return styles


def read_formats(archive: zipfile.ZipFile, sheet: str, cells: Collection[Cell]) -> dict[Cell, str]:
    """The number format of each of ``cells`` of ``sheet`` that has one (General left out).

    Best effort: none for an odd archive.  The sheet's XML is read from its top in small
    pieces and no further than the lowest of ``cells``, so the cost does not grow with the
    sheet; styles are read only when one of the cells has a style.
    """
    part = next((p for p, name in sheet_parts(archive).items() if name == sheet), None)
    if not cells or part is None:
        return {}
    try:
        info = archive.getinfo(part)
    except KeyError:
        return {}
    finder = _StyleFinder(cells)
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = finder.start
    parser.EndElementHandler = finder.end
    parser.StartDoctypeDeclHandler = finder.stop  # never met: the archive was checked
    with contextlib.suppress(_Enough, xml.parsers.expat.ExpatError, ValueError, OSError):
        parse_member(parser, archive, info, size=_TOP_PIECE)
    if not finder.found:
        return {}
    formats = _style_formats(archive)
    return {cell: formats[style] for cell, style in finder.found.items() if style in formats}


class _Enough(Exception):
    """The cells asked for are behind: stop reading the sheet."""


class _StyleFinder:
    """The style (``s``) of the wanted cells, placed as the xlsx reader places them."""

    __slots__ = ("col", "found", "last", "row", "wanted")

    def __init__(self, wanted: Collection[Cell]) -> None:
        self.wanted = frozenset(wanted)
        self.last = max(row for row, _ in self.wanted)
        self.found: dict[Cell, str] = {}
        self.row = 0
        self.col = 0

    def stop(self, *_args: object) -> None:
        raise _Enough

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = tag.rpartition(":")[2]
        if local == "row":
            self.row = int(attrs["r"]) if attrs.get("r", "").isdigit() else self.row + 1
            self.col = 0
            if self.row > self.last:
                raise _Enough
        elif local == "c":
            self.row, self.col = _position(attrs, self.row, self.col)
            cell = (max(self.row, 1), self.col)
            style = attrs.get("s")
            if style and cell in self.wanted:
                self.found[cell] = style

    def end(self, tag: str) -> None:
        if tag.rpartition(":")[2] == "sheetData" or len(self.found) == len(self.wanted):
            raise _Enough


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].rpartition(":")[2]


def _parse(archive: zipfile.ZipFile, info: zipfile.ZipInfo, padded: Mapping[str, str]) -> Marks:
    reader = _Reader(padded)
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    # the xlsx reader has its own say on a broken sheet; keep what was found
    with contextlib.suppress(xml.parsers.expat.ExpatError, ValueError):
        parse_member(parser, archive, info)
    return reader.marks


class _Reader:
    """Follows rows and cells as the xlsx reader places them (``r``, or by position)."""

    __slots__ = (
        "cell", "col", "formula", "in_value", "kind", "marks", "padded", "row", "style", "value"
    )  # fmt: skip

    def __init__(self, padded: Mapping[str, str]) -> None:
        self.marks = Marks()
        self.padded = padded
        self.row = 0
        self.col = 0
        self.cell: Cell = (0, 0)
        self.kind = ""
        self.style = ""
        self.formula = False
        self.in_value = False
        self.value: list[str] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = tag.rpartition(":")[2]
        if local == "c":
            self._open_cell(attrs)
        elif local == "v":
            self.in_value = True
        elif local == "is":
            self.value.append(" ")  # an inline string: a value, whatever its text
        elif local == "f":
            self.formula = True
        elif local == "row":
            self.row = int(attrs["r"]) if attrs.get("r", "").isdigit() else self.row + 1
            self.col = 0
            if attrs.get("hidden") in _TRUE:
                self.marks.hidden_rows.add(self.row)
        elif local == "mergeCell":
            _merge(attrs.get("ref", ""), self.marks)
        elif local == "col" and attrs.get("hidden") in _TRUE:
            _hide_columns(attrs, self.marks)

    def _open_cell(self, attrs: dict[str, str]) -> None:
        self.row, self.col = _position(attrs, self.row, self.col)
        self.cell = (max(self.row, 1), self.col)
        self.kind = attrs.get("t", "n")
        self.style = attrs.get("s", "")
        self.formula = False
        self.value = []

    def text(self, data: str) -> None:
        if self.in_value:
            self.value.append(data)

    def end(self, tag: str) -> None:
        local = tag.rpartition(":")[2]
        if local == "v":
            self.in_value = False
        elif local == "c":
            self._close_cell("".join(self.value).strip())

    def _close_cell(self, value: str) -> None:
        _judge(
            self.marks,
            self.padded,
            self.cell,
            self.kind,
            self.style,
            formula=self.formula,
            value=value,
        )


def _judge(
    marks: Marks,
    padded: Mapping[str, str],
    cell: Cell,
    kind: str,
    style: str,
    *,
    formula: bool,
    value: str,
) -> None:
    """Record what the cell's value, as read, does not show."""
    if kind == "e":
        marks.errors[cell] = value or "#N/A"
    elif formula and not value:
        marks.no_value.append(cell)
    elif style in padded and kind == "n" and value:
        shown = _shown(value, padded[style])
        if shown is not None:
            marks.padded[cell] = shown


def _merge(ref: str, marks: Marks) -> None:
    first, _, last = ref.partition(":")
    a, b = _CELL.match(first), _CELL.match(last or first)
    if a and b:
        top = (int(a.group(2)), column_index(a.group(1)) + 1)
        bottom = (int(b.group(2)), column_index(b.group(1)) + 1)
        if top != bottom:
            marks.merged.append((top, bottom))


def _hide_columns(attrs: Mapping[str, str], marks: Marks) -> None:
    low, high = attrs.get("min", "0"), attrs.get("max", "0")
    if low.isdigit() and high.isdigit():
        marks.hidden_cols.update(range(int(low), min(int(high), int(low) + 16_384) + 1))


def _shown(value: str, code: str) -> str | None:
    """The text a whole number shows under a zero-padding format, if it differs from it."""
    try:
        number = float(value)
    except ValueError:
        return None
    if not number.is_integer() or number < 0:
        return None
    text = str(int(number))
    shown = text.zfill(len(code))
    return shown if shown != text else None
