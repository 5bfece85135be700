"""Safety checks on a workbook archive, before any xlsx reader sees it.

Inventories come from other teams, so an ``.xlsx`` (a zip of XML members) is checked first:

* size caps (file, unpacked archive, rows; ``InputLimits``), a compression-ratio check, and
  every archive member decompressed once against its declared size and CRC, so the reader
  never meets a member larger than the archive directory says;
* no encrypted, duplicated or macro (``vbaProject.bin``) member, and a content-types part;
* no member may carry a DTD (entity declarations: the "billion laughs" bomb);
* the cell extent of every worksheet is bounded before the reader allocates it: the reader
  reserves the whole rectangle between the outermost cells, so two cells at ``A1`` and
  ``XFD1048576`` would otherwise ask for half a terabyte.  Cells with a style but no value
  (a million formatted empty rows) are not counted: the reader skips them too.

``guard_archive`` raises ``InputError`` (``InputLimitError`` for a cap) naming the file; it
reads no cell values.  Reading cells is ``loader``'s job.
"""

from __future__ import annotations

import io
import re
import struct
import xml.parsers.expat
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkscan.errors import InputError, InputLimitError
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from bulkscan.config import InputLimits

__all__ = [
    "CORRUPT",
    "PREFIXED_ROOT",
    "above_pattern",
    "column_index",
    "column_letter",
    "format_mb",
    "guard_archive",
    "member_chunks",
    "parse_member",
    "sheet_parts",
]

CORRUPT = N_("not a valid .xlsx (corrupt?): open it in Excel and save it again as .xlsx")

_MB = 1024 * 1024
_RATIO_MIN_BYTES = 16 * _MB  # members smaller than this are never called a zip bomb
_MAX_RATIO = 100  # deflate reaches ~1000:1 on bombs; real sheets stay near 10-30:1
_ROW_ALLOWANCE = 100  # header and blank rows above the data, on top of --max-rows
_CELLS_PER_ROW = 32  # the cell budget of a sheet is --max-rows times this many
_MIN_BUDGET_ROWS = 10_000  # ... with --max-rows counted as at least this many
_CHUNK = 8 * _MB


def column_letter(index: int) -> str:
    """0 → ``'A'``, 25 → ``'Z'``, 26 → ``'AA'`` (the column letters Excel shows)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int:
    """``'A'`` → 0, ``'AA'`` → 26 (case-insensitive)."""
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index - 1


def format_mb(size: int) -> str:
    return f"{size / _MB:,.1f} MB"


def guard_archive(name: str, data: bytes, limits: InputLimits) -> None:
    """Refuse a workbook archive that is corrupt, macro-enabled, a bomb or over a cap."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _check_directory(name, infos, limits)
            sheets = sheet_parts(archive)
            for info in infos:
                _scan_member(name, archive, info, sheets.get(info.filename), limits)
    except InputError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        OSError,
        ValueError,
        RuntimeError,
        struct.error,
        zlib.error,
    ):
        raise InputError(_(CORRUPT), file=name) from None


def _check_directory(name: str, infos: Sequence[zipfile.ZipInfo], limits: InputLimits) -> None:
    names = [info.filename for info in infos]
    if len(set(names)) != len(names) or any(info.flag_bits & 0x1 for info in infos):
        raise InputError(_(CORRUPT), file=name)
    if "[Content_Types].xml" not in names:
        raise InputError(_(CORRUPT), file=name)
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        raise InputError(_("macro-enabled workbook: save it as .xlsx (Excel Workbook)"), file=name)
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limits.max_unpacked_bytes:
        raise InputLimitError(
            _(
                "the workbook unpacks to {size}, above the {cap} cap (raise it with "
                "--max-unpacked-mb if the file is trusted)"
            ).format(size=format_mb(unpacked), cap=format_mb(limits.max_unpacked_bytes)),
            file=name,
        )
    for info in infos:
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > _MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise InputLimitError(
                _(
                    "member '{member}' would unpack from {packed} to {size} (more than "
                    "{ratio}:1), as zip bombs do and workbooks do not: refused"
                ).format(
                    member=info.filename,
                    packed=format_mb(info.compress_size),
                    size=format_mb(info.file_size),
                    ratio=_MAX_RATIO,
                ),
                file=name,
            )


def sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Archive member → sheet name, best effort (used only to word messages)."""
    try:
        workbook = archive.read("xl/workbook.xml")[: 4 * _MB].decode("utf-8", "replace")
        rels = archive.read("xl/_rels/workbook.xml.rels")[: 4 * _MB].decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile, OSError, ValueError):
        return {}
    targets = {a.get("Id"): a.get("Target", "") for a in _tags("Relationship", rels)}
    parts: dict[str, str] = {}
    for attrs in _tags("sheet", workbook):
        target = targets.get(attrs.get("r:id"), "")
        part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        parts[part] = attrs.get("name", "?").replace("&amp;", "&").replace("&apos;", "'")
    return parts


_TAG_ATTR = re.compile(r'([\w:]+)\s*=\s*"([^"]*)"')


def _tags(tag: str, text: str) -> Iterator[dict[str, str]]:
    """The attributes of every ``<tag ...>`` in a small XML text (no DTD, checked before)."""
    for match in re.finditer(rf"<{tag}\s([^>]*)>", text):
        yield dict(_TAG_ATTR.findall(match.group(1)))


PREFIXED_ROOT = re.compile(rb"<[A-Za-z_][\w.-]*:(?:worksheet|sheetData)\b")
_HEAD = 64 * 1024


@dataclass(slots=True)
class _Extent:
    """The outermost valued cell seen in a worksheet, as (row, column) counted from 1."""

    rows: int = 0
    cols: int = 0
    row_col: int = 0  # the column of the cell that reaches ``rows``

    def see(self, row: int, col: int) -> None:
        if row > self.rows:
            self.rows = row
            self.row_col = col
        self.cols = max(self.cols, col)

    def row_ref(self) -> str:
        """The cell that reaches ``rows`` (``A1000101``), as a message names it."""
        return f"{_letters(self.row_col)}{self.rows}" if self.rows < 10**12 else _("far below")

    def col_ref(self) -> str:
        """The column that reaches ``cols`` (``column XFD``; Z before any), as a message
        names it."""
        return _("column {letters}").format(letters=_letters(self.cols or 26))


def _letters(col: int) -> str:
    """Column letters of a 1-based column, for messages (absurd ones are not spelled out)."""
    return column_letter(max(col, 1) - 1) if col <= 1_000_000 else _("(far right)")


def _scan_member(
    name: str,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    sheet: str | None,
    limits: InputLimits,
) -> None:
    """Decompress one member (size and CRC checked), refuse a DTD, bound its cell extent."""
    if not info.filename.lower().endswith((".xml", ".rels")):
        with archive.open(info) as stream:
            while stream.read(_CHUNK):
                pass
        return
    where = (
        _("sheet '{sheet}'").format(sheet=sheet)
        if sheet
        else _("member '{member}'").format(member=info.filename)
    )
    extent = _fast_extent(name, archive, info, where, limits)
    if extent is None:
        extent = _exact_extent(name, archive, info, where)
    _check_extent(name, where, extent, limits)


class _LongTag(Exception):
    """A piece could not be cut at a tag: one tag or text is longer than a whole chunk."""


def member_chunks(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    *,
    whole_tags: bool = False,
    size: int = _CHUNK,
) -> Iterator[bytes]:
    """The member's bytes in pieces of about ``size`` bytes, cut before the last ``<`` of each.

    With ``whole_tags`` a piece that cannot be cut there (a tag or a text longer than a
    chunk, which a regex would see only in parts) raises ``_LongTag``; without it such a
    piece is passed on whole, which a streaming parser does not mind.  A reader that wants
    only the top of a member asks for small pieces and stops early.
    """
    carry = b""
    with archive.open(info) as stream:
        while block := stream.read(size):
            block = carry + block
            cut = block.rfind(b"<")
            if cut <= 0 and whole_tags:
                raise _LongTag
            carry = block[cut:] if cut > 0 else b""
            yield block[:cut] if cut > 0 else block
    if carry:
        yield carry


def parse_member(
    parser: xml.parsers.expat.XMLParserType,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    *,
    size: int = _CHUNK,
) -> None:
    """Stream the member through an expat ``parser`` (its handlers set), then end it; expat
    raises ``ExpatError`` (or ``ValueError``) on XML that is not well-formed.  A handler
    that has seen enough raises an exception of its own to stop (pieces of ``size`` bytes
    are read one at a time)."""
    for chunk in member_chunks(archive, info, size=size):
        parser.Parse(chunk, False)
    parser.Parse(b"", True)


def _fast_extent(
    name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limits: InputLimits
) -> _Extent | None:
    """Bound the extent with one C-speed regex pass; None if the XML is not regular.

    Regular means every cell tag starts ``<c r="...``, as Excel, LibreOffice and openpyxl
    write them.  The pass (see ``_unusual_cells``) finds only what matters: irregular tags,
    cells beyond column Z, and valued cells below the allowed height.  Ordinary cells cost
    no Python at all.  A wide sheet longer than one chunk is searched a second time.
    """
    try:
        return _regular_extent(name, archive, info, where, limits)
    except _LongTag:
        return None  # a tag longer than a chunk: only the exact parser can be trusted


def _regular_extent(
    name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limits: InputLimits
) -> _Extent | None:
    extent = _Extent()
    limits_used: set[int] = set()
    for index, chunk in enumerate(member_chunks(archive, info, whole_tags=True)):
        _refuse_dtd(name, chunk, where)
        if index == 0 and PREFIXED_ROOT.search(chunk, 0, _HEAD):
            return None
        limit = _row_limit(extent, limits)
        limits_used.add(limit)
        for match in _unusual_cells(limit).finditer(chunk):
            wide, row, letter, far = match.groups()
            if wide is None and far is None:
                return None  # a cell tag without a leading r="..."
            extent.see(int(row or far), column_index((wide or letter).decode("ascii")) + 1)
            if far is not None:
                return extent
    limit = _row_limit(extent, limits)
    if any(used > limit for used in limits_used):
        _rescan_rows(archive, info, limit, extent)
    return extent


def _rescan_rows(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, extent: _Extent
) -> None:
    """Search a wide sheet again for rows beyond the (lower) limit its width allows."""
    for chunk in member_chunks(archive, info, whole_tags=True):
        for match in _unusual_cells(limit).finditer(chunk):
            if match.group(4) is not None:
                extent.see(int(match.group(4)), column_index(match.group(3).decode()) + 1)
                return


def _row_limit(extent: _Extent, limits: InputLimits) -> int:
    """The lowest row a valued cell may not pass, for the columns seen so far (26 at least)."""
    width = max(extent.cols, 26)
    return min(limits.max_rows + _ROW_ALLOWANCE, _cell_budget(limits) // width)


_UNUSUAL_CACHE: dict[int, re.Pattern[bytes]] = {}


def _unusual_cells(limit: int) -> re.Pattern[bytes]:
    """Cell tags that matter to the extent; groups: wide letters, their row, letter, far row.

    * ``<c>``, ``<c s=.. r=..>`` or ``<c r="?..">``: no leading ``r`` (no group set);
    * ``<c r="AB12" ...>`` holding a value: column beyond Z (groups 1, 2);
    * ``<c r="A1000101" ...>`` holding a value, row above ``limit`` (groups 3, 4).
    A self-closed ``<c .../>`` has no value and is skipped, as the xlsx reader skips it.
    """
    pattern = _UNUSUAL_CACHE.get(limit)
    if pattern is None:
        above = above_pattern(limit).encode("ascii")
        digits = len(str(limit))
        pattern = re.compile(
            rb'<c(?:>|\s+(?!r=")|\s+r="(?![A-Za-z])|\s+r="(?:([A-Za-z]{2,})0*([0-9]+)|'
            rb'([A-Za-z])0*(?=[1-9][0-9]{%d})(%s))"[^>]*(?<!/)>)' % (digits - 1, above)
        )
        _UNUSUAL_CACHE.clear()
        _UNUSUAL_CACHE[limit] = pattern
    return pattern


def _refuse_dtd(name: str, chunk: bytes, where: str) -> None:
    """Refuse entity declarations anywhere (markup ``<!`` cannot occur in escaped text)."""
    if b"<!" in chunk and (b"<!DOCTYPE" in chunk or b"<!ENTITY" in chunk):
        raise _dtd_error(name, where)


def _dtd_error(name: str, where: str) -> InputError:
    return InputError(
        _(
            "{where} declares a DTD (XML entities), which Excel never writes: refused as "
            "unsafe; save the workbook again from Excel"
        ).format(where=where),
        file=name,
    )


def _cell_budget(limits: InputLimits) -> int:
    """Cells a sheet's rectangle may hold: generous for real sheets, bounded for bombs."""
    return max(limits.max_rows, _MIN_BUDGET_ROWS) * _CELLS_PER_ROW


def above_pattern(limit: int) -> str:
    """A regex matching exactly the decimal numbers greater than ``limit`` (no sign).

    ``above_pattern(129)`` matches 130..139, 200..999 and every number of 4+ digits.
    """
    digits = str(limit)
    size = len(digits)
    options = [f"[1-9][0-9]{{{size},}}"]
    for i, ch in enumerate(digits):
        if ch != "9":
            rest = size - i - 1
            options.append(f"{digits[:i]}[{int(ch) + 1}-9][0-9]{{{rest}}}")
    return "(?:" + "|".join(options) + ")"


def _exact_extent(
    name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str
) -> _Extent:
    """Exact extent with expat, for XML the fast path does not trust (slower, any layout)."""
    counter = _CellCounter()
    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = counter.refuse
    parser.EntityDeclHandler = counter.refuse
    parser.StartElementHandler = counter.start
    try:
        parse_member(parser, archive, info)
    except _DtdFound:
        raise _dtd_error(name, where) from None
    except (xml.parsers.expat.ExpatError, ValueError):
        message = _("{where} is not well-formed XML: {error}").format(where=where, error=_(CORRUPT))
        raise InputError(message, file=name) from None
    return counter.extent


class _DtdFound(Exception):
    pass


class _CellCounter:
    """Follows rows and cells the way the xlsx reader places them (``r`` or position)."""

    __slots__ = ("col", "extent", "pending", "row")

    def __init__(self) -> None:
        self.extent = _Extent()
        self.row = 0
        self.col = 0
        self.pending: tuple[int, int] | None = None

    def refuse(self, *_args: object) -> None:
        raise _DtdFound

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = tag.rpartition(":")[2]
        if local == "row":
            self.row = _to_int(attrs.get("r"), self.row + 1)
            self.col = 0
        elif local == "c":
            self._cell(attrs.get("r"))
        elif local in ("v", "is") and self.pending is not None:
            self.extent.see(*self.pending)
            self.pending = None

    def _cell(self, ref: str | None) -> None:
        match = _REF.match(ref or "")
        if match:
            self.col = column_index(match.group(1)) + 1
            self.row = max(self.row, 1) if not match.group(2) else int(match.group(2))
        else:
            self.col += 1
        self.pending = (max(self.row, 1), self.col)


_REF = re.compile(r"^([A-Za-z]+)([0-9]*)$")


def _to_int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def _check_extent(name: str, where: str, extent: _Extent, limits: InputLimits) -> None:
    if extent.rows > limits.max_rows + _ROW_ALLOWANCE:
        raise InputLimitError(
            _(
                "{where} has data down to row {row} (cell {cell}), beyond the {most}-row cap: "
                "raise it with --max-rows, or delete stray cells far below the data"
            ).format(
                where=where, row=f"{extent.rows:,}", cell=extent.row_ref(),
                most=f"{limits.max_rows:,}",
            ),
            file=name,
        )  # fmt: skip
    cells = extent.rows * extent.cols
    if cells > _cell_budget(limits):
        raise InputLimitError(
            _(
                "{where} spans {rows} rows (down to cell {cell}) by {cols} columns (up to "
                "{column}): more than the {most} cells allowed; delete stray cells far to the "
                "right of or below the data, or raise --max-rows"
            ).format(
                where=where, rows=f"{extent.rows:,}", cell=extent.row_ref(),
                cols=f"{extent.cols:,}", column=extent.col_ref(),
                most=f"{_cell_budget(limits):,}",
            ),
            file=name,
        )  # fmt: skip
