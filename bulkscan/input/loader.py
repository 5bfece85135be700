"""Read an inventory (``.xlsx`` workbook or CSV files) into typed rows with exact row numbers.

The loader never interprets cell *values* (that is ``validate``'s job); it hands over each
non-blank row as ``RawRow``: canonical column name → plain Python value (str, int, float,
bool or ``datetime.datetime``), with the file, sheet and row number Excel shows.

Inputs come from other teams, so a workbook is checked before the xlsx reader sees it:

* size caps (file, unpacked archive, rows; ``InputLimits``), a compression-ratio check, and
  every archive member decompressed once against its declared size and CRC, so the reader
  never meets a member larger than the archive directory says;
* no member may carry a DTD (entity declarations: the "billion laughs" bomb);
* the cell extent of every worksheet is bounded before the reader allocates it: the reader
  reserves the whole rectangle between the outermost cells, so two cells at ``A1`` and
  ``XFD1048576`` would otherwise ask for half a terabyte.  Cells with a style but no value
  (a million formatted empty rows) are not counted: the reader skips them too.

Formula cells give their cached value; a formula saved without one (as some generators
write them) reads as blank.  Merged cells carry their value in the top-left cell only.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import io
import os
import re
import struct
import xml.parsers.expat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any, Literal

from bulkscan.config import InputLimits
from bulkscan.errors import InputError, InputLimitError
from bulkscan.input import schema
from bulkscan.models import InputBook, RawRow, RowRef, Sheet

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

__all__ = ["ACCEPTED_FORMATS", "above_pattern", "column_letter", "load_input", "paused_gc"]

ACCEPTED_FORMATS = ".xlsx workbooks, or .csv/.tsv/.txt text files"

_XLSX_SUFFIXES = frozenset({".xlsx"})
_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_REFUSED_SUFFIXES: Mapping[str, str] = {
    ".xlsm": "macro-enabled workbook: save it as .xlsx (Excel Workbook) and try again",
    ".xltm": "macro-enabled template: save it as .xlsx (Excel Workbook) and try again",
    ".xls": "legacy .xls workbook: save it as .xlsx (Excel Workbook) and try again",
    ".xlsb": "binary .xlsb workbook: save it as .xlsx (Excel Workbook) and try again",
    ".ods": "OpenDocument spreadsheet: save it as .xlsx (Excel Workbook) and try again",
}
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_PROTECTED = (
    "password-protected or legacy .xls workbook: remove the password "
    "(File > Info > Protect Workbook) and save it as .xlsx"
)
_CORRUPT = "not a valid .xlsx (corrupt?): open it in Excel and save it again as .xlsx"

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


def _column_index(letters: str) -> int:
    """``'A'`` → 0, ``'AA'`` → 26 (case-insensitive)."""
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index - 1


def load_input(
    path: str | os.PathLike[str],
    *,
    profiles_path: str | os.PathLike[str] | None = None,
    limits: InputLimits = InputLimits(),  # noqa: B008 - frozen, shared default is safe
) -> InputBook:
    """Read a workbook (sheets ``instances`` and optional ``profiles``) or CSV file(s).

    For CSV the given file is the instances sheet and ``profiles_path`` the profiles one.
    Raises ``InputError`` (``InputLimitError`` for a safety cap) naming the file.
    """
    name = os.fspath(path)
    kind = _kind_of(name)
    if kind == "xlsx":
        if profiles_path is not None:
            raise InputError(
                "a workbook carries its profiles in its 'profiles' sheet; "
                "--profiles is for CSV input only",
                file=os.fspath(profiles_path),
            )
        return _load_xlsx(name, limits)
    profiles_name = None if profiles_path is None else os.fspath(profiles_path)
    if profiles_name is not None and _kind_of(profiles_name) != "csv":
        raise InputError(
            "the profiles file of a CSV inventory must be CSV text too", file=profiles_name
        )
    return _load_csv(name, profiles_name, limits)


def _kind_of(name: str) -> Literal["xlsx", "csv"]:
    suffix = Path(name).suffix.lower()
    if suffix in _XLSX_SUFFIXES:
        return "xlsx"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if not Path(name).exists():
        raise InputError("file not found", file=name)
    if suffix in _REFUSED_SUFFIXES:
        raise InputError(_REFUSED_SUFFIXES[suffix], file=name)
    shown = f"'{suffix}'" if suffix else "without an extension"
    raise InputError(f"unsupported file type {shown}: bulkscan reads {ACCEPTED_FORMATS}", file=name)


def _read_file(name: str, limits: InputLimits) -> bytes:
    """The file's bytes, refusing a missing file or one above ``--max-file-mb``."""
    try:
        size = Path(name).stat().st_size
        if Path(name).is_dir():
            raise InputError("is a folder, not a file", file=name)
        if size > limits.max_file_bytes:
            raise _file_too_big(name, size, limits)
        with Path(name).open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except FileNotFoundError:
        raise InputError("file not found", file=name) from None
    except PermissionError:
        raise InputError("permission denied: cannot read the file", file=name) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", file=name) from None
    if len(data) > limits.max_file_bytes:  # grew after stat
        raise _file_too_big(name, len(data), limits)
    return data


def _file_too_big(name: str, size: int, limits: InputLimits) -> InputLimitError:
    return InputLimitError(
        f"the file is {_mb(size)}, above the {_mb(limits.max_file_bytes)} cap "
        "(raise it with --max-file-mb if the file is trusted)",
        file=name,
    )


def _mb(size: int) -> str:
    return f"{size / _MB:,.1f} MB"


# --------------------------------------------------------------------------- xlsx


def _load_xlsx(name: str, limits: InputLimits) -> InputBook:
    data = _read_file(name, limits)
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(_OLE2_MAGIC):
        raise InputError(_PROTECTED, file=name)
    if not data.startswith(_ZIP_MAGIC):
        raise InputError(_CORRUPT, file=name)
    _guard_archive(name, data, limits)
    import python_calamine

    try:
        with paused_gc(), python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)) as book:
            sheets = _pick_sheets(name, list(book.sheet_names))
            target = _Target(name, sheets[0], schema.INSTANCE_COLUMNS, limits)
            instances = _read_xlsx_sheet(book, target)
            profiles = None
            if sheets[1] is not None:
                target = _Target(name, sheets[1], schema.PROFILE_COLUMNS, limits)
                profiles = _read_xlsx_sheet(book, target)
    except InputError:
        raise
    except python_calamine.PasswordError:
        raise InputError(_PROTECTED, file=name) from None
    except BaseException as exc:  # the reader's errors, its conversions' and its panics
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit
        raise InputError(
            f"not a readable .xlsx ({_short(exc)}): open it in Excel and save it again as .xlsx",
            file=name,
        ) from None
    return InputBook(name, digest, instances, profiles, "xlsx")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector while an inventory becomes a million acyclic objects.

    The rows are dicts of scalars (no cycles), yet each allocation burst would trigger
    collections that walk every object made so far, again and again.  The collector is
    enabled again on leaving (exceptions too) unless it was off on entry, so pauses nest.

    On leaving, the objects made are filed directly in the oldest generation (``gc.freeze``
    then ``gc.unfreeze``), where they would land anyway after two more walks: they are the
    inventory and its plan, kept for the whole run.  Skipped when the program holds frozen
    objects of its own, which ``unfreeze`` would release.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _pick_sheets(name: str, sheet_names: Sequence[str]) -> tuple[str, str | None]:
    """The workbook's instances sheet and its profiles sheet (if any), matched loosely."""
    found: dict[str, list[str]] = {}
    for sheet in sheet_names:
        found.setdefault(schema.normalise_header(sheet), []).append(sheet)
    for wanted in (schema.INSTANCES_SHEET, schema.PROFILES_SHEET):
        if len(found.get(wanted, ())) > 1:
            both = " and ".join(f"'{s}'" for s in found[wanted])
            raise InputError(f"sheets {both} both mean '{wanted}': rename one", file=name)
    if schema.INSTANCES_SHEET not in found:
        listed = ", ".join(f"'{s}'" for s in sheet_names) or "none"
        raise InputError(
            f"no sheet named '{schema.INSTANCES_SHEET}' (sheets found: {listed}); "
            f"name the sheet that lists the databases '{schema.INSTANCES_SHEET}'",
            file=name,
        )
    profiles = found.get(schema.PROFILES_SHEET)
    return found[schema.INSTANCES_SHEET][0], profiles[0] if profiles else None


def _read_xlsx_sheet(book: Any, target: _Target) -> Sheet:
    data = book.get_sheet_by_name(target.sheet)
    start = data.start
    grid = data.to_python() if start is not None else []
    del data  # the reader's copy of the cells: freed before the rows are made
    top, left = start if start is not None else (0, 0)
    numbers = range(top + 1, top + 1 + len(grid))  # the reader's rows start at ``start``
    return _build_sheet(target, grid, numbers, left)


# --------------------------------------------------------------------------- csv


def _load_csv(name: str, profiles_name: str | None, limits: InputLimits) -> InputBook:
    data = _read_file(name, limits)
    instances = _read_csv_sheet(
        data, _Target(name, schema.INSTANCES_SHEET, schema.INSTANCE_COLUMNS, limits)
    )
    digest = hashlib.sha256(data).hexdigest()
    profiles = None
    if profiles_name is not None:
        extra = _read_file(profiles_name, limits)
        profiles = _read_csv_sheet(
            extra, _Target(profiles_name, schema.PROFILES_SHEET, schema.PROFILE_COLUMNS, limits)
        )
        # Stable across runs and independent of the paths: one hash per file, then combined.
        pair = f"{digest}\n{hashlib.sha256(extra).hexdigest()}\n"
        digest = hashlib.sha256(pair.encode("ascii")).hexdigest()
    return InputBook(name, digest, instances, profiles, "csv", profiles_path=profiles_name)


def _read_csv_sheet(data: bytes, target: _Target) -> Sheet:
    if data.startswith(_ZIP_MAGIC):
        raise InputError("is a workbook (zip), not CSV text: name it .xlsx", file=target.file)
    if data.startswith(_OLE2_MAGIC):
        raise InputError(f"is not CSV text but a {_PROTECTED}", file=target.file)
    text = _decode(target.file, data)
    with paused_gc():
        try:
            records = list(_csv_records(text, _sniff_delimiter(text)))
        except csv.Error as exc:
            raise target.error(f"is not readable as CSV ({_short(exc)})") from None
        grid = [fields for _, fields in records]
        return _build_sheet(target, grid, [line for line, _ in records], 0)


def _decode(name: str, data: bytes) -> str:
    """Text of a CSV file: BOM (UTF-8, UTF-16) first, then strict UTF-8, then GB18030."""
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        if b"\x00" in data:
            raise _nul_error(name, data)
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            raise _nul_error(name, None)
        return text
    raise InputError(
        "is neither UTF-8 nor GBK/GB18030 text: save it as 'CSV UTF-8' and try again", file=name
    )


def _nul_error(name: str, data: bytes | None) -> InputError:
    where = ""
    if data is not None:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        where = f" (first on line {line})"
    return InputError(
        f"contains NUL bytes{where}: this is a binary file, not CSV text; "
        "export the sheet as 'CSV UTF-8'",
        file=name,
    )


def _sniff_delimiter(text: str) -> str:
    """``,``, ``;`` or tab: whichever the first non-blank line (the header) uses most."""
    for line in io.StringIO(text, newline=""):
        if line.strip():
            counts = {d: line.count(d) for d in (",", ";", "\t")}
            best = max(counts, key=lambda d: counts[d])
            return best if counts[best] else ","
    return ","


def _csv_records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, fields); any line ending, quoted newlines kept."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    line = 1
    for record in reader:
        yield line, record
        line = reader.line_num + 1


# --------------------------------------------------------------------------- sheets


@dataclass(frozen=True, slots=True)
class _Target:
    """The sheet being read: where it is, which columns it knows, and the caps."""

    file: str
    sheet: str
    columns: tuple[schema.Column, ...]
    limits: InputLimits

    def error(self, message: str) -> InputError:
        return InputError(message, file=self.file, sheet=self.sheet)


@dataclass(frozen=True, slots=True)
class _Header:
    """The header row as read: text per column, its canonical name and where it is."""

    row: int
    texts: tuple[str, ...]
    names: tuple[str, ...]


def _build_sheet(
    target: _Target, grid: Sequence[Sequence[Any]], numbers: Sequence[int], left: int
) -> Sheet:
    """Header (first non-blank row), then every non-blank row below it, as ``RawRow``.

    ``numbers[i]`` is the row number of ``grid[i]``; ``left`` the column index of its cell 0.
    """
    first = next((i for i, cells in enumerate(grid) if _filled(cells)), None)
    if first is None:
        return Sheet(target.file, target.sheet, (), (), ())
    width = max(map(len, grid))
    cells = [*grid[first], *[""] * (width - len(grid[first]))]
    header = _read_header(target, numbers[first], cells, left)
    rows = _read_rows(target, grid[first + 1 :], numbers[first + 1 :], header)
    keep: Sequence[int] = range(width)
    if not all(header.texts):  # blank headers: keep only the columns that hold data
        used = {key for row in rows for key in row.values}
        keep = [i for i, text in enumerate(header.texts) if text or header.names[i] in used]
    return Sheet(
        target.file,
        target.sheet,
        tuple(header.texts[i] or header.names[i] for i in keep),
        tuple(header.names[i] for i in keep),
        tuple(rows),
    )


def _filled(cells: Sequence[Any]) -> bool:
    return any(_cell(value) is not None for value in cells)


def _read_header(target: _Target, number: int, cells: Sequence[Any], left: int) -> _Header:
    """Canonical names for the header cells; two cells meaning the same column is an error."""
    aliases = _alias_map(target.columns)
    texts: list[str] = []
    names: list[str] = []
    seen: dict[str, int] = {}
    for index, value in enumerate(cells):
        text = _header_text(value)
        key = aliases.get(schema.normalise_header(text), text) if text else ""
        key = key or f"column_{column_letter(left + index)}"
        if key in seen:
            first = seen[key]
            raise target.error(
                f"columns '{texts[first] or names[first]}' ({column_letter(left + first)}{number})"
                f" and '{text or key}' ({column_letter(left + index)}{number}) both mean "
                f"'{key}': delete or rename one of them"
            )
        seen[key] = index
        texts.append(text)
        names.append(key)
    return _Header(number, tuple(texts), tuple(names))


@functools.cache
def _alias_map(columns: tuple[schema.Column, ...]) -> dict[str, str]:
    """Normalised header → canonical name, for a sheet's known columns and their aliases."""
    table: dict[str, str] = {}
    for column in columns:
        for alias in (column.name, *column.aliases):
            table[schema.normalise_header(alias)] = column.name
    return table


def _header_text(value: Any) -> str:
    cell = _cell(value)
    if cell is None:
        return ""
    if isinstance(cell, dt.datetime):
        return cell.isoformat(sep=" ")
    return str(cell)


def _read_rows(
    target: _Target, grid: Sequence[Sequence[Any]], numbers: Sequence[int], header: _Header
) -> list[RawRow]:
    """Every non-blank row under the header.  The hot loop of loading: kept flat on purpose
    (plain strings, the common case, never leave this function)."""
    names, cap, make = header.names, target.limits.max_rows, _row_maker(target.file, target.sheet)
    rows: list[RawRow] = []
    for number, cells in zip(numbers, grid, strict=True):
        values: dict[str, Any] = {}
        for key, raw in zip(names, cells, strict=False):  # CSV records may be short
            if raw.__class__ is str:
                if raw and (value := raw.strip()):
                    values[key] = value
            elif (value := _cell(raw)) is not None:
                values[key] = value
        if values:
            if len(rows) >= cap:
                raise _too_many_rows(target, number)
            rows.append(make(number, values))
    return rows


_REF_FIELDS = ("file", "sheet", "row")
_ROW_FIELDS = ("ref", "values")


def _row_maker(file: str, sheet: str) -> Callable[[int, dict[str, Any]], RawRow]:
    """``RawRow(RowRef(file, sheet, number), values)`` for one sheet, a third faster.

    The ``__init__`` of a frozen dataclass only sets each field with ``object.__setattr__``
    by name; this writes the slots directly.  Should either class change shape (other
    fields, a ``__post_init__``), the constructors are used instead.  Tests hold both equal.
    """
    if not (_slots_only(RowRef, _REF_FIELDS) and _slots_only(RawRow, _ROW_FIELDS)):
        return lambda number, values: RawRow(RowRef(file, sheet, number), values)
    new = object.__new__
    set_file, set_sheet, set_row = (RowRef.__dict__[name].__set__ for name in _REF_FIELDS)
    set_ref, set_values = (RawRow.__dict__[name].__set__ for name in _ROW_FIELDS)

    def make(number: int, values: dict[str, Any]) -> RawRow:
        ref = new(RowRef)
        set_file(ref, file)
        set_sheet(ref, sheet)
        set_row(ref, number)
        row = new(RawRow)
        set_ref(row, ref)
        set_values(row, values)
        return row

    return make


def _slots_only(cls: type, names: tuple[str, ...]) -> bool:
    """Whether ``cls(*values)`` does nothing but set the slots ``names`` in this order."""
    return (
        tuple(f.name for f in dataclasses.fields(cls)) == names
        and all(f.init for f in dataclasses.fields(cls))
        and not hasattr(cls, "__post_init__")
        and all(isinstance(cls.__dict__.get(name), MemberDescriptorType) for name in names)
    )


def _too_many_rows(target: _Target, number: int) -> InputLimitError:
    return InputLimitError(
        f"more than {target.limits.max_rows:,} data rows (row {number} is one too many): "
        "raise the cap with --max-rows",
        file=target.file,
        sheet=target.sheet,
    )


def _cell(value: Any) -> Any:
    """A cell value as plain Python (str, int, float, bool, datetime), or None if blank."""
    if value is None:
        return None
    convert = _CONVERTERS.get(value.__class__)
    if convert is None:
        return str(value).strip() or None
    return convert(value)


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _midnight(value: dt.date) -> dt.datetime:
    return dt.datetime(value.year, value.month, value.day)  # naive: the timezone is a setting


def _duration_text(value: dt.timedelta) -> str:
    """A duration cell as Excel's ``[h]:mm:ss`` shows it."""
    seconds = round(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours}:{rest // 60:02}:{rest % 60:02}"


def _same(value: Any) -> Any:
    return value


_CONVERTERS: dict[type, Any] = {
    str: lambda text: text.strip() or None,
    bool: _same,
    int: _same,
    float: _number,
    dt.datetime: _same,
    dt.date: _midnight,
    dt.time: lambda clock: clock.isoformat(timespec="seconds"),
    dt.timedelta: _duration_text,
}


# --------------------------------------------------------------------------- archive guard


def _guard_archive(name: str, data: bytes, limits: InputLimits) -> None:
    """Refuse a workbook archive that is corrupt, macro-enabled, a bomb or over a cap."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _check_directory(name, infos, limits)
            sheets = _sheet_parts(archive)
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
        raise InputError(_CORRUPT, file=name) from None


def _check_directory(name: str, infos: Sequence[zipfile.ZipInfo], limits: InputLimits) -> None:
    names = [info.filename for info in infos]
    if len(set(names)) != len(names) or any(info.flag_bits & 0x1 for info in infos):
        raise InputError(_CORRUPT, file=name)
    if "[Content_Types].xml" not in names:
        raise InputError(_CORRUPT, file=name)
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        raise InputError("macro-enabled workbook: save it as .xlsx (Excel Workbook)", file=name)
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limits.max_unpacked_bytes:
        raise InputLimitError(
            f"the workbook unpacks to {_mb(unpacked)}, above the "
            f"{_mb(limits.max_unpacked_bytes)} cap (raise it with --max-unpacked-mb "
            "if the file is trusted)",
            file=name,
        )
    for info in infos:
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > _MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise InputLimitError(
                f"member '{info.filename}' would unpack from {_mb(info.compress_size)} to "
                f"{_mb(info.file_size)} (more than {_MAX_RATIO}:1), as zip bombs do and "
                "workbooks do not: refused",
                file=name,
            )


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
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


_PREFIXED_ROOT = re.compile(rb"<[A-Za-z_][\w.-]*:(?:worksheet|sheetData)\b")
_HEAD = 64 * 1024


@dataclass(slots=True)
class _Extent:
    """The outermost valued cell seen in a worksheet, as (row, column) counted from 1."""

    rows: int = 0
    cols: int = 0
    row_ref: str = ""
    col_ref: str = ""

    def see(self, row: int, col: int) -> None:
        if row > self.rows:
            self.rows = row
            self.row_ref = f"{_letters(col)}{row}" if row < 10**12 else "far below"
        if col > self.cols:
            self.cols = col
            self.col_ref = f"column {_letters(col)}"


def _letters(col: int) -> str:
    """Column letters of a 1-based column, for messages (absurd ones are not spelled out)."""
    return column_letter(max(col, 1) - 1) if col <= 1_000_000 else "(far right)"


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
    where = f"sheet '{sheet}'" if sheet else f"member '{info.filename}'"
    extent = _fast_extent(name, archive, info, where, limits)
    if extent is None:
        extent = _exact_extent(name, archive, info, where)
    _check_extent(name, where, extent, limits)


class _LongTag(Exception):
    """A piece could not be cut at a tag: one tag or text is longer than a whole chunk."""


def _chunks(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, whole_tags: bool = False
) -> Iterator[bytes]:
    """The member's bytes in pieces, cut before the last ``<`` of each.

    With ``whole_tags`` a piece that cannot be cut there (a tag or a text longer than a
    chunk, which a regex would see only in parts) raises ``_LongTag``; without it such a
    piece is passed on whole, which a streaming parser does not mind.
    """
    carry = b""
    with archive.open(info) as stream:
        while block := stream.read(_CHUNK):
            block = carry + block
            cut = block.rfind(b"<")
            if cut <= 0 and whole_tags:
                raise _LongTag
            carry = block[cut:] if cut > 0 else b""
            yield block[:cut] if cut > 0 else block
    if carry:
        yield carry


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
    for index, chunk in enumerate(_chunks(archive, info, whole_tags=True)):
        _refuse_dtd(name, chunk, where)
        if index == 0 and _PREFIXED_ROOT.search(chunk, 0, _HEAD):
            return None
        limit = _row_limit(extent, limits)
        limits_used.add(limit)
        for match in _unusual_cells(limit).finditer(chunk):
            wide, row, letter, far = match.groups()
            if wide is None and far is None:
                return None  # a cell tag without a leading r="..."
            extent.see(int(row or far), _column_index((wide or letter).decode("ascii")) + 1)
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
    for chunk in _chunks(archive, info, whole_tags=True):
        for match in _unusual_cells(limit).finditer(chunk):
            if match.group(4) is not None:
                extent.see(int(match.group(4)), _column_index(match.group(3).decode()) + 1)
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
        f"{where} declares a DTD (XML entities), which Excel never writes: refused as "
        "unsafe; save the workbook again from Excel",
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
        for chunk in _chunks(archive, info):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _DtdFound:
        raise _dtd_error(name, where) from None
    except (xml.parsers.expat.ExpatError, ValueError):
        raise InputError(f"{where} is not well-formed XML: {_CORRUPT}", file=name) from None
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
            self.col = _column_index(match.group(1)) + 1
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
            f"{where} has data down to row {extent.rows:,} (cell {extent.row_ref}), beyond "
            f"the {limits.max_rows:,}-row cap: raise it with --max-rows, or delete stray "
            "cells far below the data",
            file=name,
        )
    cells = extent.rows * extent.cols
    if cells > _cell_budget(limits):
        raise InputLimitError(
            f"{where} spans {extent.rows:,} rows (down to cell {extent.row_ref}) by "
            f"{extent.cols:,} columns (up to {extent.col_ref or 'column Z'}): more than the "
            f"{_cell_budget(limits):,} cells allowed; delete stray cells far to the right of "
            "or below the data, or raise --max-rows",
            file=name,
        )
