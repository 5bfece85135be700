"""What a worksheet's XML says about its cells that the xlsx reader's values do not.

The reader hands over values only: a formula saved without its value, an error cell
(``#REF!``, ``#VALUE!``...) and every cell of a merged range but the first all read as
blank, a hidden row reads like any other, and ``123`` shown as ``00123`` by its number format
reads as ``123``.  ``read_marks`` finds these in the sheet's XML so that the loader can say
so, naming the cell.

Most sheets have none of them: one pass over the XML looks for the few tags and attributes
that matter (``<f``, ``t="e"``, ``hidden``, ``mergeCell``, a zero-padding style) with plain
substring searches (a regex alternation is several times slower on a 50 MB sheet), and only
a sheet that has one, or writes its tags with a namespace prefix, is parsed exactly.  The
archive was checked by ``archive.guard_archive`` first (no DTD, bounded size), so parsing
it is safe.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bulkscan.input.archive import PREFIXED_ROOT, column_index, member_chunks, sheet_parts

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Marks", "read_marks"]

_STYLES = "xl/styles.xml"
_SMALL = 4 * 1024 * 1024  # styles and workbook parts are read whole up to this size
_CELL = re.compile(r"^([A-Za-z]{1,3})([0-9]+)$")
_PADDED = re.compile(r"^(0{2,})$")  # a number format that pads with zeros: 00000
_NEEDLES = (b"<f", b't="e"', b"hidden", b"mergeCell")
_TRUE = frozenset({"1", "true"})

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
        if _worth_parsing(archive, info, needles):
            found[name] = _parse(archive, info, padded)
    return found


def _worth_parsing(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, needles: tuple[bytes, ...]
) -> bool:
    """Whether the sheet may hold a mark: a needle is in it, or its tags are prefixed."""
    for index, chunk in enumerate(member_chunks(archive, info)):
        if index == 0 and PREFIXED_ROOT.search(chunk, 0, 64 * 1024):
            return True
        if any(needle in chunk for needle in needles):
            return True
    return False


def _padded_styles(archive: zipfile.ZipFile) -> dict[str, str]:
    """Style index (as in ``s="3"``) → number format, for the formats that pad with zeros."""
    try:
        with archive.open(_STYLES) as stream:
            root = ET.fromstring(stream.read(_SMALL))  # noqa: S314 - checked for DTDs
    except (KeyError, ET.ParseError, OSError, zipfile.BadZipFile):
        return {}
    formats = {
        node.get("numFmtId", ""): node.get("formatCode", "")
        for node in root.iter()
        if _local(node.tag) == "numFmt"
    }
    xfs = next((node for node in root.iter() if _local(node.tag) == "cellXfs"), None)
    styles: dict[str, str] = {}
    cells = [x for x in (xfs if xfs is not None else ()) if _local(x.tag) == "xf"]
    for index, xf in enumerate(cells):
        code = formats.get(xf.get("numFmtId", ""), "").split(";")[0].strip()
        if _PADDED.match(code):
            styles[str(index)] = code
    return styles


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].rpartition(":")[2]


def _parse(archive: zipfile.ZipFile, info: zipfile.ZipInfo, padded: Mapping[str, str]) -> Marks:
    reader = _Reader(padded)
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    try:
        for chunk in member_chunks(archive, info):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except (xml.parsers.expat.ExpatError, ValueError):
        pass  # the xlsx reader has its own say on a broken sheet; keep what was found
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
            self._merge(attrs.get("ref", ""))
        elif local == "col" and attrs.get("hidden") in _TRUE:
            low, high = int(attrs.get("min", "0")), int(attrs.get("max", "0"))
            self.marks.hidden_cols.update(range(low, min(high, low + 16_384) + 1))

    def _open_cell(self, attrs: dict[str, str]) -> None:
        match = _CELL.match(attrs.get("r", ""))
        if match:
            self.col = column_index(match.group(1)) + 1
            self.row = int(match.group(2))
        else:
            self.col += 1
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
        marks = self.marks
        if self.kind == "e":
            marks.errors[self.cell] = value or "#N/A"
        elif self.formula and not value:
            marks.no_value.append(self.cell)
        elif self.style in self.padded and self.kind == "n" and value:
            shown = _shown(value, self.padded[self.style])
            if shown is not None:
                marks.padded[self.cell] = shown

    def _merge(self, ref: str) -> None:
        first, _, last = ref.partition(":")
        a, b = _CELL.match(first), _CELL.match(last or first)
        if a and b:
            top = (int(a.group(2)), column_index(a.group(1)) + 1)
            bottom = (int(b.group(2)), column_index(b.group(1)) + 1)
            if top != bottom:
                self.marks.merged.append((top, bottom))


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
