"""Read an inventory (``.xlsx`` workbook or CSV files) into typed rows with exact row numbers.

The loader never interprets cell *values* (that is ``validate``'s job); it hands over each
non-blank row as ``RawRow``: canonical column name → plain Python value (str, int, float,
bool or ``datetime.datetime``), with the file, sheet and row number Excel shows.

A workbook passes ``archive.guard_archive`` (size caps, zip bombs, DTDs, cell extent)
before the xlsx reader sees it.

Formula cells give their saved value.  What the values hide (a formula saved without a
value or an error value, both read as blank; merged, hidden or zero-padded cells; see
``sheetxml``) becomes the sheet's ``issues``, each naming its cell.
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
import itertools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any, Literal

from bulkscan.config import InputLimits
from bulkscan.errors import InputError, InputLimitError
from bulkscan.i18n import N_, _
from bulkscan.input import schema
from bulkscan.input._archive import (
    CORRUPT,
    above_pattern,
    column_letter,
    format_mb,
    guard_archive,
)
from bulkscan.input._sheetxml import Marks, read_formats, read_marks
from bulkscan.models import InputBook, Issue, RawRow, RowRef, Severity, Sheet

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
    from typing import TypeAlias

    # cells (row, column) → the number format of those that have one
    _FormatsOf: TypeAlias = Callable[[Collection[tuple[int, int]]], dict[tuple[int, int], str]]

__all__ = [
    "ACCEPTED_FORMATS",
    "above_pattern",
    "column_letter",
    "input_sha256",
    "load_input",
    "load_rows",
    "paused_gc",
    "read_sheet",
]

ACCEPTED_FORMATS = N_(".xlsx workbooks, or .csv/.tsv/.txt text files")

_XLSX_SUFFIXES = frozenset({".xlsx"})
_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_REFUSED_SUFFIXES: Mapping[str, str] = {
    ".xlsm": N_("macro-enabled workbook: save it as .xlsx (Excel Workbook) and try again"),
    ".xltm": N_("macro-enabled template: save it as .xlsx (Excel Workbook) and try again"),
    ".xls": N_("legacy .xls workbook: save it as .xlsx (Excel Workbook) and try again"),
    ".xlsb": N_("binary .xlsb workbook: save it as .xlsx (Excel Workbook) and try again"),
    ".ods": N_("OpenDocument spreadsheet: save it as .xlsx (Excel Workbook) and try again"),
}
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_PROTECTED = N_(
    "password-protected or legacy .xls workbook: remove the password "
    "(File > Info > Protect Workbook) and save it as .xlsx"
)


def load_input(
    path: str | os.PathLike[str],
    *,
    profiles_path: str | os.PathLike[str] | None = None,
    limits: InputLimits = InputLimits(),  # noqa: B008 - frozen, shared default is safe
    encoding: str | None = None,
) -> InputBook:
    """Read a workbook (sheets ``instances`` and optional ``profiles``) or CSV file(s).

    For CSV the given file is the instances sheet and ``profiles_path`` the profiles one;
    ``encoding`` is the CSV files' text encoding (None: a BOM, else UTF-8, else a guess).
    Raises ``InputError`` (``InputLimitError`` for a safety cap) naming the file.
    """
    name = os.fspath(path)
    kind = _kind_of(name)
    if kind == "xlsx":
        if profiles_path is not None:
            raise InputError(
                _(
                    "a workbook carries its profiles in its 'profiles' sheet; "
                    "--profiles is for CSV input only"
                ),
                file=os.fspath(profiles_path),
            )
        return _load_xlsx(name, limits)
    profiles_name = None if profiles_path is None else os.fspath(profiles_path)
    if profiles_name is not None and _kind_of(profiles_name) != "csv":
        raise InputError(
            _("the profiles file of a CSV inventory must be CSV text too"), file=profiles_name
        )
    return _load_csv(name, profiles_name, limits, encoding)


def load_rows(
    name: str,
    instances: Sequence[Sequence[Any]],
    profiles: Sequence[Sequence[Any]] | None = None,
    *,
    limits: InputLimits = InputLimits(),  # noqa: B008 - frozen, shared default is safe
) -> InputBook:
    """An inventory given as rows of plain values, each table's header row first.

    For inventories held in memory (``bulkscan.frames`` gives a DataFrame's rows): read as a
    workbook's sheets are (header aliases, blank rows skipped, the same caps), and numbered
    as a sheet whose header is in row 1, so row 2 is the first data row.  ``name`` stands
    for the file in messages; the SHA-256 is taken over the values.
    """
    cap = limits.max_rows + 1
    if len(instances) > cap or (profiles is not None and len(profiles) > cap):
        table = "instances" if len(instances) > cap else "profiles"
        raise _too_many_rows(_Target(name, table, (), limits), cap + 1)
    sheets = [_rows_sheet(name, schema.INSTANCES_SHEET, schema.INSTANCE_COLUMNS, instances, limits)]
    if profiles is not None:
        sheets.append(
            _rows_sheet(name, schema.PROFILES_SHEET, schema.PROFILE_COLUMNS, profiles, limits)
        )
    text = repr([[list(map(repr, row)) for row in table] for table in (instances, profiles or ())])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return InputBook(name, digest, sheets[0], sheets[1] if profiles is not None else None, "xlsx")


def _rows_sheet(
    name: str,
    sheet: str,
    columns: tuple[schema.Column, ...],
    rows: Sequence[Sequence[Any]],
    limits: InputLimits,
) -> Sheet:
    grid = [list(row) for row in rows]
    return _build_sheet(_Target(name, sheet, columns, limits), grid, range(1, len(grid) + 1), 0)


def _kind_of(name: str) -> Literal["xlsx", "csv"]:
    if name == "-":
        raise InputError(
            _(
                "bulkscan reads a file, not standard input: save the inventory as .xlsx or "
                ".csv and give its path (a run reads it again to resume, and checks that it "
                "did not change)"
            ),
            file=name,
        )
    suffix = Path(name).suffix.lower()
    if suffix in _XLSX_SUFFIXES:
        return "xlsx"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if not Path(name).exists():
        raise InputError(_("file not found"), file=name)
    if Path(name).is_dir():
        raise InputError(_("is a folder, not a file"), file=name)
    if suffix in _REFUSED_SUFFIXES:
        raise InputError(_(_REFUSED_SUFFIXES[suffix]), file=name)
    shown = f"'{suffix}'" if suffix else _("without an extension")
    raise InputError(
        _("unsupported file type {kind}: bulkscan reads {formats}").format(
            kind=shown, formats=_(ACCEPTED_FORMATS)
        ),
        file=name,
    )


def _read_file(name: str, limits: InputLimits) -> bytes:
    """The file's bytes, refusing a missing file or one above ``--max-file-mb``."""
    try:
        size = Path(name).stat().st_size
        if Path(name).is_dir():
            raise InputError(_("is a folder, not a file"), file=name)
        if size > limits.max_file_bytes:
            raise _file_too_big(name, size, limits)
        with Path(name).open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except FileNotFoundError:
        raise InputError(_("file not found"), file=name) from None
    except PermissionError:
        raise InputError(_("permission denied: cannot read the file"), file=name) from None
    except OSError as exc:
        message = _("cannot read the file: {error}").format(error=exc.strerror or exc)
        raise InputError(message, file=name) from None
    if len(data) > limits.max_file_bytes:  # grew after stat
        raise _file_too_big(name, len(data), limits)
    return data


def _file_too_big(name: str, size: int, limits: InputLimits) -> InputLimitError:
    return InputLimitError(
        _(
            "the file is {size}, above the {cap} cap "
            "(raise it with --max-file-mb if the file is trusted)"
        ).format(size=format_mb(size), cap=format_mb(limits.max_file_bytes)),
        file=name,
    )


# --------------------------------------------------------------------------- xlsx


def _load_xlsx(name: str, limits: InputLimits) -> InputBook:
    data = _checked_xlsx(name, limits)
    digest = hashlib.sha256(data).hexdigest()
    with (
        _reading_xlsx(name) as open_book,
        paused_gc(),
        open_book(data) as book,
        zipfile.ZipFile(io.BytesIO(data)) as archive,
    ):
        sheets = _pick_sheets(name, list(book.sheet_names))
        marks = read_marks(archive, tuple(s for s in sheets if s is not None))
        hidden = _hidden_sheets(book)
        target = _Target(name, sheets[0], schema.INSTANCE_COLUMNS, limits)
        instances = _read_xlsx_sheet(book, target, marks, hidden, archive)
        profiles = None
        if sheets[1] is not None:
            target = _Target(name, sheets[1], schema.PROFILE_COLUMNS, limits)
            profiles = _read_xlsx_sheet(book, target, marks, hidden, archive)
    return InputBook(name, digest, instances, profiles, "xlsx")


def read_sheet(
    path: str | os.PathLike[str],
    sheet: str,
    *,
    limits: InputLimits = InputLimits(),  # noqa: B008 - frozen, shared default is safe
) -> list[list[Any]] | None:
    """The cells of ``sheet`` of an .xlsx workbook, row by row (None: the workbook has no
    such sheet), read with the inventory's checks: for a workbook bulkscan wrote and reads
    back, which may still be any file a user names.  Raises ``InputError`` naming the file."""
    name = os.fspath(path)
    if _kind_of(name) != "xlsx":
        raise InputError(_("not an .xlsx workbook"), file=name)
    data = _checked_xlsx(name, limits)
    with _reading_xlsx(name) as open_book, open_book(data) as book:
        if sheet not in book.sheet_names:
            return None
        return [list(row) for row in book.get_sheet_by_name(sheet).to_python()]


def _checked_xlsx(name: str, limits: InputLimits) -> bytes:
    """The file's bytes, refused unless they are a workbook within the archive caps."""
    data = _read_file(name, limits)
    if data.startswith(_OLE2_MAGIC):
        raise InputError(_(_PROTECTED), file=name)
    if not data.startswith(_ZIP_MAGIC):
        raise InputError(_(CORRUPT), file=name)
    guard_archive(name, data, limits)
    return data


@contextlib.contextmanager
def _reading_xlsx(name: str) -> Iterator[Callable[[bytes], Any]]:
    """Gives the function that opens a workbook's bytes; whatever the reader raises inside
    the block (its errors, its conversions', its panics) becomes an ``InputError``."""
    import python_calamine

    def open_book(data: bytes) -> Any:
        return python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))

    try:
        yield open_book
    except InputError:
        raise
    except python_calamine.PasswordError:
        raise InputError(_(_PROTECTED), file=name) from None
    except BaseException as exc:
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit
        raise InputError(
            _("not a readable .xlsx ({error}): open it in Excel and save it again as .xlsx").format(
                error=_short(exc)
            ),
            file=name,
        ) from None


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
            both = _(" and ").join(f"'{s}'" for s in found[wanted])
            message = _("sheets {both} both mean '{wanted}': rename one")
            raise InputError(message.format(both=both, wanted=wanted), file=name)
    if schema.INSTANCES_SHEET not in found:
        listed = ", ".join(f"'{s}'" for s in sheet_names) or _("none")
        raise InputError(
            _(
                "no sheet named '{sheet}' (sheets found: {listed}); "
                "name the sheet that lists the databases '{sheet}'"
            ).format(sheet=schema.INSTANCES_SHEET, listed=listed),
            file=name,
        )
    profiles = found.get(schema.PROFILES_SHEET)
    return found[schema.INSTANCES_SHEET][0], profiles[0] if profiles else None


def _hidden_sheets(book: Any) -> frozenset[str]:
    import python_calamine

    visible = python_calamine.SheetVisibleEnum.Visible
    return frozenset(m.name for m in book.sheets_metadata if m.visible != visible)


def _read_xlsx_sheet(
    book: Any,
    target: _Target,
    marks: Mapping[str, Marks],
    hidden: frozenset[str],
    archive: zipfile.ZipFile,
) -> Sheet:
    data = book.get_sheet_by_name(target.sheet)
    start = data.start
    grid = data.to_python() if start is not None else []
    del data  # the reader's copy of the cells: freed before the rows are made
    top, left = start if start is not None else (0, 0)
    numbers = range(top + 1, top + 1 + len(grid))  # the reader's rows start at ``start``
    notes: list[Issue] = []
    if target.sheet in hidden:
        notes.append(
            target.issue(
                "warning",
                _("the sheet is hidden in Excel, yet its rows are read like any other"),
                hint=_("unhide it (right-click a sheet tab > Unhide) to check what is sent"),
            )
        )
    formats = functools.partial(read_formats, archive, target.sheet)
    return _build_sheet(target, grid, numbers, left, marks.get(target.sheet), notes, formats)


# --------------------------------------------------------------------------- csv


def _load_csv(
    name: str, profiles_name: str | None, limits: InputLimits, encoding: str | None
) -> InputBook:
    data = _read_file(name, limits)
    instances = _read_csv_sheet(
        data, _Target(name, schema.INSTANCES_SHEET, schema.INSTANCE_COLUMNS, limits), encoding
    )
    digest = hashlib.sha256(data).hexdigest()
    profiles = None
    if profiles_name is not None:
        extra = _read_file(profiles_name, limits)
        target = _Target(profiles_name, schema.PROFILES_SHEET, schema.PROFILE_COLUMNS, limits)
        profiles = _read_csv_sheet(extra, target, encoding)
        digest = _paired(digest, hashlib.sha256(extra).hexdigest())
    return InputBook(name, digest, instances, profiles, "csv", profiles_path=profiles_name)


def _paired(digest: str, extra: str) -> str:
    """The SHA-256 of an inventory and its profiles file: stable across runs and independent
    of the paths (one hash per file, then combined)."""
    return hashlib.sha256(f"{digest}\n{extra}\n".encode("ascii")).hexdigest()


def input_sha256(
    path: str | os.PathLike[str], *, profiles_path: str | os.PathLike[str] | None = None
) -> str:
    """The SHA-256 ``load_input`` gives the input at ``path`` (and its CSV profiles file),
    read without its cells: how a run's journal knows its input unchanged.  ``OSError`` when
    a file cannot be read."""

    def of(name: str | os.PathLike[str]) -> str:
        with Path(name).open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    digest = of(path)
    return digest if profiles_path is None else _paired(digest, of(profiles_path))


def _read_csv_sheet(data: bytes, target: _Target, encoding: str | None) -> Sheet:
    if data.startswith(_ZIP_MAGIC):
        raise InputError(_("is a workbook (zip), not CSV text: name it .xlsx"), file=target.file)
    if data.startswith(_OLE2_MAGIC):
        raise InputError(
            _("is not CSV text but a {what}").format(what=_(_PROTECTED)), file=target.file
        )
    if encoding is not None:
        text, guessed = _decode_as(target.file, data, encoding), None
    else:
        text, guessed = _decode(target.file, data)
    delimiter = _sniff_delimiter(text)
    with paused_gc():
        try:
            records = list(_csv_records(text, delimiter))
        except csv.Error as exc:
            message = _("is not readable as CSV ({error})").format(error=_short(exc))
            raise target.error(message) from None
        _refuse_unclosed_quote(target, text, delimiter, records)
        if records and delimiter.join(records[0][1]) == f"sep={delimiter}":
            del records[0]  # Excel's line naming the delimiter: not a row
        notes = [_guess_note(target, text, guessed)] if guessed else []
        notes.extend(_long_records(target, records, delimiter))
        grid = [fields for _, fields in records]
        return _build_sheet(target, grid, [line for line, _ in records], 0, None, notes)


def _decode_as(name: str, data: bytes, encoding: str) -> str:
    """Text of a CSV file in the encoding the user named (a BOM of it is dropped)."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            _(
                "is not {encoding} text (byte {byte} on line {line} is not valid in it): give "
                "the file's encoding with --encoding, or save it as 'CSV UTF-8'"
            ).format(encoding=encoding, byte=f"0x{data[exc.start]:02x}", line=line),
            file=name,
        ) from None
    if "\x00" in text:
        raise _nul_error(name, None)
    return text.removeprefix("\ufeff")


def _guess_note(target: _Target, text: str, encoding: str) -> Issue:
    """A warning that the text encoding was guessed, with a line to judge the guess by."""
    number, line = next(
        ((n, line) for n, line in enumerate(text.splitlines(), 1) if not line.isascii()),
        (1, ""),
    )
    sample = line.strip()
    sample = sample if len(sample) <= 60 else sample[:59] + "…"
    return target.issue(
        "warning",
        _(
            "the file is not UTF-8 and was read as {encoding}, a guess: line {number} reads "
            "'{sample}'"
        ).format(encoding=encoding, number=number, sample=sample),
        hint=_(
            "if that is not the text, give its encoding with --encoding (cp1252 for Western "
            "Windows, latin-1, shift_jis...) or save the file as 'CSV UTF-8'"
        ),
    )


def _refuse_unclosed_quote(
    target: _Target, text: str, delimiter: str, records: Sequence[tuple[int, list[str]]]
) -> None:
    """An opening quote never closed swallows every line after it: refuse, naming its line."""
    if not records or not any("\n" in f or "\r" in f for f in records[-1][1]):
        return
    start = records[-1][0]
    lines = io.StringIO(text, newline="")
    skipped = sum(len(line) for line in itertools.islice(lines, start - 1))
    tail = io.StringIO(text[skipped:], newline="")
    try:
        for _record in csv.reader(tail, delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" not in str(exc):
            return
        last = start + text[skipped:].rstrip("\r\n").count("\n")
        raise target.error(
            _(
                "line {start}: a quoted value opens there and is never closed, so lines "
                "{start}-{last} would read as one value: close the quote (a quote inside a "
                'quoted value is written twice: "")'
            ).format(start=start, last=last)
        ) from None


def _long_records(
    target: _Target, records: Sequence[tuple[int, list[str]]], delimiter: str
) -> list[Issue]:
    """A warning for the records with more fields than the header (after its blank tail)."""
    head = next((fields for _, fields in records if any(f.strip() for f in fields)), None)
    if head is None:
        return []
    width = len(head)
    while width and not head[width - 1].strip():
        width -= 1
    long = [
        (line, len(fields))
        for line, fields in records
        if len(fields) > width and any(f.strip() for f in fields[width:])
    ]
    if not long:
        return []
    listed = ", ".join(str(line) for line, _ in long[:5]) + (", ..." if len(long) > 5 else "")
    shown = _("tab") if delimiter == "\t" else f"'{delimiter}'"
    return [
        target.issue(
            "warning",
            _(
                "{count} line(s) have more fields than the header's {width} (lines {listed}): "
                "the fields beyond it are read as extra columns and not sent"
            ).format(count=len(long), width=width, listed=listed),
            hint=_(
                "a value that holds the delimiter {delimiter} must be in double quotes; "
                "or give the extra fields a header"
            ).format(delimiter=shown),
        )
    ]


def _decode(name: str, data: bytes) -> tuple[str, str | None]:
    """Text of a CSV file: BOM (UTF-8, UTF-16) first, then strict UTF-8, then GB18030.

    Also returns the encoding when it was a guess (GB18030: any bytes decode in it).
    """
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
        return text, ("GB18030 (GBK)" if encoding == "gb18030" else None)
    raise InputError(
        _(
            "is neither UTF-8 nor GBK/GB18030 text: give its encoding with --encoding "
            "(e.g. cp1252), or save it as 'CSV UTF-8' and try again"
        ),
        file=name,
    )


def _nul_error(name: str, data: bytes | None) -> InputError:
    if data is None:
        message = _(
            "contains NUL bytes: this is a binary file, not CSV text; "
            "export the sheet as 'CSV UTF-8'"
        )
    else:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        message = _(
            "contains NUL bytes (first on line {line}): this is a binary file, not CSV text; "
            "export the sheet as 'CSV UTF-8'"
        ).format(line=line)
    return InputError(message, file=name)


def _sniff_delimiter(text: str) -> str:
    """``,``, ``;`` or tab: whichever the first non-blank line (the header) uses most, or
    the one Excel's ``sep=;`` line above the header names."""
    for line in io.StringIO(text, newline=""):
        if len(named := line.rstrip("\r\n")) == len("sep=;") and named.startswith("sep="):
            return named[-1]
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

    def issue(
        self,
        severity: Severity,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
        hint: str | None = None,
    ) -> Issue:
        """An issue about this sheet, or about one of its rows when ``row`` is given."""
        ref = None if row is None else RowRef(self.file, self.sheet, row)
        where = {"file": self.file, "sheet": self.sheet} if ref is None else {}
        return Issue(severity, message, ref=ref, column=column, value=value, hint=hint, **where)


@dataclass(frozen=True, slots=True)
class _Header:
    """The header row as read: text per column, its canonical name and where it is."""

    row: int
    texts: tuple[str, ...]
    names: tuple[str, ...]


def _build_sheet(  # noqa: PLR0917 - the sheet, its grid and what is known about it
    target: _Target,
    grid: Sequence[Sequence[Any]],
    numbers: Sequence[int],
    left: int,
    marks: Marks | None = None,
    notes: Sequence[Issue] = (),
    formats: _FormatsOf | None = None,
) -> Sheet:
    """Header (first non-blank row), then every non-blank row below it, as ``RawRow``.

    ``numbers[i]`` is the row number of ``grid[i]``; ``left`` the column index of its cell 0.
    ``marks`` (xlsx) and ``notes`` become the sheet's issues; ``formats`` (xlsx) gives the
    number formats of cells, of which each column's first value's becomes the column's.
    """
    first = next((i for i, cells in enumerate(grid) if _filled(cells)), None)
    if first is None:
        issues = (*notes, *_mark_issues(target, None, left, [], (), marks))
        return Sheet(target.file, target.sheet, (), (), (), issues)
    title = first
    first = _header_index(target, grid, first)
    if first != title:
        notes = [*notes, _title_note(target, grid, numbers, title, first)]
    width = max(map(len, grid))
    cells = [*grid[first], *[""] * (width - len(grid[first]))]
    header = _read_header(target, numbers[first], cells, left)
    rows = _read_rows(target, grid[first + 1 :], numbers[first + 1 :], header)
    keep: Sequence[int] = range(width)
    if not all(header.texts):  # blank headers: keep only the columns that hold data
        used = {key for row in rows for key in row.values}
        keep = [i for i, text in enumerate(header.texts) if text or header.names[i] in used]
    headers = tuple(header.texts[i] or header.names[i] for i in keep)
    return Sheet(
        target.file,
        target.sheet,
        headers,
        tuple(header.names[i] for i in keep),
        tuple(rows),
        (*notes, *_mark_issues(target, header, left, rows, headers, marks)),
        _column_formats(formats, header, left, keep, rows) if formats is not None else {},
    )


_FORMAT_ROWS = 50  # the data rows where a column's first value (and its format) is looked for


def _column_formats(
    formats: _FormatsOf,
    header: _Header,
    left: int,
    keep: Sequence[int],
    rows: Sequence[RawRow],
) -> dict[str, str]:
    """Original header → the number format of the column's first value in the first data
    rows (one cell per column, whatever the sheet's length)."""
    top = rows[:_FORMAT_ROWS]
    first: dict[tuple[int, int], str] = {}
    for index in keep:
        name, shown = header.names[index], header.texts[index] or header.names[index]
        row = next((row for row in top if name in row.values), None)
        if row is not None and shown not in first.values():
            first[(row.ref.row, left + index + 1)] = shown
    found = formats(first) if first else {}
    return {shown: found[cell] for cell, shown in first.items() if cell in found}


_TITLE_ROWS = 10  # filled rows above the header that may be a title, a date, a note


def _header_index(target: _Target, grid: Sequence[Sequence[Any]], first: int) -> int:
    """The header row: the first filled one, unless it names no known column and one of the
    next few filled rows does (a title above the table, ``Database inventory``)."""
    aliases = _alias_map(target.columns)

    def knows(cells: Sequence[Any]) -> bool:
        texts = (_header_text(value) for value in cells)
        return any(text and _known_as(text, aliases) in aliases.values() for text in texts)

    if knows(grid[first]):
        return first
    filled = (i for i in range(first + 1, len(grid)) if _filled(grid[i]))
    for index in itertools.islice(filled, _TITLE_ROWS):
        if knows(grid[index]):
            return index
    return first


def _title_note(
    target: _Target,
    grid: Sequence[Sequence[Any]],
    numbers: Sequence[int],
    title: int,
    header: int,
) -> Issue:
    """A warning that the rows above the header row were left out, and what the first says."""
    text = next(_header_text(v) for v in grid[title] if _cell(v) is not None)
    text = text if len(text) <= 60 else text[:59] + "…"
    count = sum(1 for cells in grid[title:header] if _filled(cells))
    message = _(
        "{count} filled row(s) above the header row {row} are not read (row {first}: '{text}')"
    )
    return target.issue(
        "warning",
        message.format(count=count, row=numbers[header], first=numbers[title], text=text),
        hint=_("the header row is the first that names a known column"),
    )


# --------------------------------------------------------------------------- what values hide

_SAVE = N_("open and save the workbook in Excel, which saves the value of every formula")
_UNMERGE = N_("unmerge the cells (Home > Merge & Center) and fill in every one")
_RETYPE = N_("format the column as Text and type the value again")
_LISTED = 5  # hidden rows or columns named in a message


@dataclass(frozen=True, slots=True)
class _Columns:
    """Column number (from 1) → the header above it, as the sheet's rows were read."""

    header: _Header | None
    left: int
    known: frozenset[str]
    rows: frozenset[int]  # the data rows, as read
    shown: frozenset[str]  # the headers the sheet keeps

    def at(self, cell: tuple[int, int]) -> dict[str, Any]:
        """Where an issue about ``cell`` points: its row and column when both were read,
        else the sheet (the message names the cell)."""
        name = self.name(cell[1])
        if cell[0] in self.rows and name in self.shown:
            return {"row": cell[0], "column": name}
        return {}

    def cell(self, cell: tuple[int, int]) -> str:
        """``cell B3``, or ``row 3, cell B3`` when the issue cannot point at the row."""
        ref = _("cell {cell}").format(cell=_cell_ref(cell))
        return ref if self.at(cell) else _("row {row}, {cell}").format(row=cell[0], cell=ref)

    def name(self, col: int) -> str:
        index = col - 1 - self.left
        if self.header is not None and 0 <= index < len(self.header.names):
            return self.header.texts[index] or self.header.names[index]
        return f"column_{column_letter(col - 1)}"

    def canonical(self, col: int) -> str:
        index = col - 1 - self.left
        if self.header is not None and 0 <= index < len(self.header.names):
            return self.header.names[index]
        return f"column_{column_letter(col - 1)}"

    def is_known(self, col: int) -> bool:
        return self.canonical(col) in self.known


def _cell_ref(cell: tuple[int, int]) -> str:
    return f"{column_letter(cell[1] - 1)}{cell[0]}"


def _mark_issues(  # noqa: PLR0917 - the sheet as read, and its marks
    target: _Target,
    header: _Header | None,
    left: int,
    rows: Sequence[RawRow],
    shown: Sequence[str],
    marks: Marks | None,
) -> list[Issue]:
    """The cells that read otherwise than the sheet shows them, as issues naming the cell."""
    if marks is None:
        return []
    known = frozenset(c.name for c in target.columns)
    numbers = frozenset(row.ref.row for row in rows)
    cols = _Columns(header, left, known, numbers, frozenset(shown))
    issues = [
        target.issue(
            "error",
            _("{cell} holds a formula without a saved value, so it reads as blank").format(
                cell=cols.cell(cell)
            ),
            hint=_(_SAVE),
            **cols.at(cell),
        )
        for cell in marks.no_value
    ]
    issues.extend(
        target.issue(
            "error",
            _("{cell} holds the error value {value}, so it reads as blank").format(
                cell=cols.cell(cell), value=text
            ),
            value=text,
            **cols.at(cell),
            hint=_("correct the formula, or type the value"),
        )
        for cell, text in marks.errors.items()
    )
    top = header.row if header is not None else 0
    merged = (
        (first, last)
        for first, last in marks.merged
        if any(number in numbers for number in range(max(first[0], top + 1), last[0] + 1))
    )  # over data cells
    issues.extend(_merged(target, cols, first, last) for first, last in merged)
    issues.extend(
        target.issue(
            "error" if cols.is_known(cell[1]) else "warning",
            _("{cell} shows '{shown}' but holds the number {number}, which is what is read").format(
                cell=cols.cell(cell), shown=shown, number=int(shown)
            ),
            value=shown,
            hint=_(_RETYPE),
            **cols.at(cell),
        )
        for cell, shown in marks.padded.items()
        if cell[0] > top
    )
    issues.extend(_hidden(target, cols, rows, marks))
    return issues


def _merged(
    target: _Target, cols: _Columns, first: tuple[int, int], last: tuple[int, int]
) -> Issue:
    return target.issue(
        "error",
        _(
            "cells {first}:{last} are merged: only {first} holds "
            "the value, the other cells of the range read as blank"
        ).format(first=_cell_ref(first), last=_cell_ref(last)),
        hint=_(_UNMERGE),
        **cols.at(first),
    )


def _hidden(target: _Target, cols: _Columns, rows: Sequence[RawRow], marks: Marks) -> list[Issue]:
    """One warning for the hidden rows that hold data, one for the hidden columns."""
    issues: list[Issue] = []
    numbers = sorted(marks.hidden_rows.intersection(row.ref.row for row in rows))
    if numbers:
        listed = ", ".join(map(str, numbers[:_LISTED]))
        listed += ", ..." if len(numbers) > _LISTED else ""
        issues.append(
            target.issue(
                "warning",
                _("{count} hidden row(s) are read like any other (rows {listed})").format(
                    count=len(numbers), listed=listed
                ),
                hint=_(
                    "unhide them to check them; delete a row or set enabled to FALSE to leave "
                    "it out"
                ),
            )
        )
    used = {key for row in rows for key in row.values}
    shown = sorted({cols.name(c) for c in marks.hidden_cols if cols.canonical(c) in used})
    if shown:
        named = ", ".join(f"'{n}'" for n in shown[:_LISTED])
        issues.append(
            target.issue(
                "warning",
                _("hidden column(s) {columns} are read like any other").format(columns=named),
                hint=_("unhide them to check what is sent"),
            )
        )
    return issues


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
        key = _known_as(text, aliases) if text else ""
        key = key or f"column_{column_letter(left + index)}"
        if key in seen:
            first = seen[key]
            raise target.error(
                _(
                    "columns '{one}' ({one_cell}) and '{other}' ({other_cell}) both mean "
                    "'{key}': delete or rename one of them"
                ).format(
                    one=texts[first] or names[first],
                    one_cell=f"{column_letter(left + first)}{number}",
                    other=text or key,
                    other_cell=f"{column_letter(left + index)}{number}",
                    key=key,
                )
            )
        seen[key] = index
        texts.append(text)
        names.append(key)
    return _Header(number, tuple(texts), tuple(names))


def _known_as(text: str, aliases: dict[str, str]) -> str:
    """The column a header means: as written, else without its notes (``Enabled (Y/N)``
    means ``enabled``); a header that means no known column is its own name."""
    name = aliases.get(schema.normalise_header(text))
    if name is None:
        name = aliases.get(schema.normalise_header(schema.without_note(text)), text)
    return name


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
        _(
            "more than {most} data rows (row {row} is one too many): raise the cap with --max-rows"
        ).format(most=f"{target.limits.max_rows:,}", row=number),
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
