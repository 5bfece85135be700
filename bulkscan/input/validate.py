"""Pure validation: an ``InputBook`` → valid instances and profiles, plus every issue at once.

``validate`` never raises for a bad cell: it records an ``Issue`` (file, sheet, row, the column
header as written, the value, a hint) and goes on, so one pass reports every problem.  The
value parsers are public and raise ``CellError`` (message and hint, no location).

Decisions worth knowing:

* A sheet with headers and no row is an error (an export that came out empty: a run of it
  would report success having done nothing); one whose every row is switched off
  (``enabled``) is a warning.
* A 32-character project id written in uppercase hex is accepted, lowercased, with a warning.
* A region is lowercased; one bulkscan does not know is a warning (its endpoint may be set by
  hand), one that cannot be a host name part is an error.
* Profile names match case-insensitively; a blank profile cell means ``default``.
* Rows with ``enabled`` false are skipped without checking their other cells.
* A profile row with errors still yields a profile (its valid cells over the defaults) so that
  planning can report its own problems; ``has_errors`` says the input must not be sent.
* What the loader found while reading (``Sheet.issues``: a formula without a saved value,
  an error cell, merged or hidden cells, a guessed encoding...) is reported with the rest.
* Text that is sent (ins_id, an unknown db_type, task, task_name, task_description) may not
  hold characters nobody sees: control characters, escape sequences, zero-width characters,
  direction marks.  An ins_id longer than ``MAX_INS_ID`` is an error.
* A start time that is an Excel date serial (45717, a date that lost its date format) is an
  error, not a moment of January 1970.
* The template's example rows (``schema.EXAMPLE_INSTANCE``'s ins_id, ``EXAMPLE_PROFILE``'s
  task_description) are errors: "example row still present".
* Carried (non-schema) columns become ``Instance.extras``: every such column in sheet order,
  ``''`` for a blank cell, numbers without a spurious ``.0``, date-times in ISO-8601.
"""

from __future__ import annotations

import difflib
import re
import string
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import MappingProxyType, MemberDescriptorType
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bulkscan.errors import BulkscanError
from bulkscan.i18n import N_, _
from bulkscan.input import schema
from bulkscan.models import (
    InputBook,
    Instance,
    Issue,
    Profile,
    RawRow,
    RowRef,
    ScanConfig,
    Severity,
    Sheet,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from bulkscan.config import InputSettings

__all__ = [
    "DEFAULT_PROFILE",
    "MAX_DESCRIPTION",
    "MAX_INS_ID",
    "MAX_NAME",
    "MAX_START_TIME_S",
    "NAME_FIELDS",
    "CellError",
    "Validated",
    "check_name_pattern",
    "describe_default_profile",
    "did_you_mean",
    "parse_bool",
    "parse_int",
    "parse_schedule_type",
    "parse_start_time",
    "parse_timezone",
    "parse_text",
    "show",
    "validate",
]

T = TypeVar("T")

DEFAULT_PROFILE = Profile(name="default")
MAX_START_TIME_S = 2_147_483_647  # the service's documented start_time range
MAX_DESCRIPTION = 1024
MAX_NAME = 256  # the list API filters names of 1..256 characters
MAX_SOURCES = 500
MAX_INS_ID = 128  # instance ids are about 36 characters; anything near this is not one
NAME_FIELDS: tuple[str, ...] = (
    "profile", "region", "project", "seq", "db_type", "task", "digest"
)  # fmt: skip

_MS_FROM = 100_000_000_000  # an epoch of 12+ digits is milliseconds (1e11 s is year 5138)
_MAX_LONG = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXACT_DIGITS = 10**15  # Excel keeps 15 significant digits of a number
# Excel's date serials (days since 1899-12-30) from 1970-01-01 to 9999-12-31: as epoch
# seconds they would all fall in January 1970, so a start time in this range is a date that
# lost its format.
_SERIAL_MIN, _SERIAL_MAX = 25_569, 2_958_465
_SERIAL_EPOCH = datetime(1899, 12, 30)
_EXAMPLE_ID = str(schema.EXAMPLE_INSTANCE["ins_id"])
_EXAMPLE_DESCRIPTION = str(schema.EXAMPLE_PROFILE["task_description"])
_EXAMPLE = N_("example row still present: it is the template's example, not a database of yours")
_EXAMPLE_HINT = N_("delete it (or replace its values with a real database's) before sending")
_INT = re.compile(r"^[+-]?\d+$")
_DIGITS = re.compile(r"^\d+$")
_PROJECT = re.compile(r"^[0-9a-f]{32}$")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_REGION = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_REGIONS = frozenset(schema.REGIONS)
_SEPARATORS = re.compile(r"[\s_.]+")
_SHOW_MAX = 80
_SAMPLE = {
    "profile": "default",
    "region": "cn-north-4",
    "project": "0" * 32,
    "seq": 1,
    "db_type": "MySQL",
    "task": "task",
    "digest": "0a1b2c3d",
}
_INSTANCE_NAMES = frozenset(c.name for c in schema.INSTANCE_COLUMNS)
_PROFILE_NAMES = frozenset(c.name for c in schema.PROFILE_COLUMNS)
_SCAN_FIELDS = tuple(f.name for f in fields(ScanConfig))
_FLAG_FIELDS = ("start_now", "schedule_switch", "delete_failed_meta")


class CellError(BulkscanError):
    """A cell value that cannot be used; ``validate`` adds where it is."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


@dataclass(frozen=True, slots=True)
class Validated:
    """The outcome of validation: what can be planned, what was left out, every issue."""

    instances: tuple[Instance, ...]  # enabled, valid, de-duplicated, input order
    profiles: Mapping[str, Profile]  # by name; 'default' unless the sheet defines its own
    skipped: tuple[RowRef, ...]  # enabled = false
    duplicates: tuple[tuple[RowRef, RowRef], ...]  # (duplicate row, first row)
    issues: tuple[Issue, ...]  # errors and warnings, sheet then row order
    # instances sheet: canonical column name → header as written
    columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def has_errors(self) -> bool:
        return any(i.severity == "error" for i in self.issues)


# --------------------------------------------------------------------------- value parsers


def show(value: object) -> str:
    """A cell value as safe one-line text for a message (control characters escaped)."""
    text = _plain(value)
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return safe if len(safe) <= _SHOW_MAX else safe[: _SHOW_MAX - 1] + "…"


def _q(value: object) -> str:
    return f"'{show(value)}'"


def _plain(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def did_you_mean(text: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``text`` (case-insensitive), or None when none is close."""
    by_lower = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(text.strip().lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


def _suggest(text: str, choices: Iterable[str], *, fallback: str | None = None) -> str | None:
    close = did_you_mean(text, choices)
    return _("did you mean '{close}'?").format(close=close) if close else fallback


def parse_bool(value: object) -> bool:
    """Excel TRUE/FALSE, true/false, yes/no, y/n, 1/0, on/off, t/f in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in schema.BOOL_TRUE:
            return True
        if word in schema.BOOL_FALSE:
            return False
    raise CellError(
        _("{value} is not a yes/no value").format(value=_q(value)),
        hint=_("use TRUE or FALSE (or yes/no, 1/0)"),
    )


def parse_int(value: object, *, low: int, high: int) -> int:
    """A whole number within ``low..high``: an int, a whole float, or digits as text."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip())
    if number is None:
        raise CellError(
            _("{value} is not a whole number").format(value=_q(value)),
            hint=_("use {low} to {high}").format(low=low, high=high),
        )
    if not low <= number <= high:
        raise CellError(
            _("{number} is out of range").format(number=number),
            hint=_("use a whole number from {low} to {high}").format(low=low, high=high),
        )
    return number


def parse_text(value: object) -> str:
    """A cell as text: strings stripped, ``12345`` or ``12345.0`` → ``'12345'``, dates ISO."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return _plain(value)


def _text_caveat(value: object) -> tuple[str, str] | None:
    """Why an identifier typed in a non-text cell may not be what the user meant."""
    retype = _("format the column as Text and retype the value")
    if isinstance(value, bool):
        why = _("{value} is a yes/no cell, used as text")
    elif isinstance(value, date | time):
        why = _("{value} is a date cell: the spreadsheet may have converted it")
    elif isinstance(value, float) and not value.is_integer():
        why = _("{value} is a number with a fraction, used as text")
    elif isinstance(value, int | float) and abs(value) >= _EXACT_DIGITS:
        why = _("{value} is a number of 16+ digits: Excel keeps only 15 exactly")
    else:
        return None
    return why.format(value=_q(value)), retype


def parse_schedule_type(value: object) -> str:
    """ONCE, DAY, WEEK or MONTH, any case."""
    word = parse_text(value).upper()
    if word in schema.SCHEDULE_TYPES:
        return word
    choices = ", ".join(schema.SCHEDULE_TYPES)
    fallback = _("use one of {choices}").format(choices=choices)
    hint = _suggest(word, schema.SCHEDULE_TYPES, fallback=fallback)
    raise CellError(_("{value} is not a schedule type").format(value=_q(value)), hint=hint)


def parse_timezone(value: object) -> str:
    """An IANA time zone name (``Asia/Shanghai``), as the tz database spells it."""
    name = parse_text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        raise CellError(
            _("{value} is not a known time zone").format(value=_q(value)),
            hint=_(
                "give an IANA name such as Asia/Shanghai, Europe/Paris or UTC, or leave it "
                "blank for --timezone"
            ),
        ) from None
    return name


def parse_start_time(value: object, *, tz: tzinfo, unit: Literal["s", "ms"]) -> int:
    """A start time in the wire ``unit``; blank → 0.

    Accepts a date-time cell, ISO-8601 text (with or without offset; naive ones are in
    ``tz``) and epoch numbers: 12 or more digits are milliseconds, fewer are seconds.
    """
    if _is_blank(value):
        return 0
    millis = _start_millis(value, tz)
    if millis < 0:
        raise CellError(
            _("{value} is before 1970").format(value=_q(value)),
            hint=_("use a later time, or 0 to start now"),
        )
    if unit == "ms":
        if millis > _MAX_LONG:
            raise CellError(_("{value} is too large for a start time").format(value=_q(value)))
        return millis
    seconds = millis // 1000
    if seconds > MAX_START_TIME_S:
        raise CellError(
            _(
                "{value} is after 2038-01-19 03:14:07 UTC, beyond the start_time range "
                "0..{most} in seconds"
            ).format(value=_q(value), most=MAX_START_TIME_S),
            hint=_("if the service takes milliseconds, run with --start-time-unit ms"),
        )
    return seconds


def _start_millis(value: object, tz: tzinfo) -> int:
    if isinstance(value, datetime):
        return _datetime_millis(value, tz)
    if isinstance(value, date):
        return _datetime_millis(datetime.combine(value, time()), tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        _refuse_serial(value)
        if isinstance(value, int) or value.is_integer():
            return _epoch_millis(int(value))
    if isinstance(value, str):
        return _text_millis(value.strip(), tz)
    raise CellError(
        _("{value} is not a start time").format(value=_q(value)),
        hint=_("use a date-time cell, ISO-8601 text or epoch seconds"),
    )


def _datetime_millis(moment: datetime, tz: tzinfo) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = _on_the_clock(moment.replace(tzinfo=None), tz)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _on_the_clock(naive: datetime, tz: tzinfo) -> datetime:
    """``naive`` as the clocks of ``tz`` show it; refused when they never show it (skipped
    when they go forward) or show it twice (when they go back): Python would pick one hour
    silently, and the scan would start an hour away from the time typed."""
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    zone = getattr(tz, "key", None) or str(tz)
    shown = naive.isoformat(sep=" ", timespec="minutes")
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise CellError(
            _("{value} never shows on the clocks of {zone}: they go forward over it").format(
                value=_q(shown), zone=zone
            ),
            hint=_(
                "write a time the clocks show, such as {later}, or give the time with its UTC "
                "offset"
            ).format(later=first.astimezone(UTC).astimezone(tz).isoformat(sep=" ")[:16]),
        )
    raise CellError(
        _("{value} shows twice on the clocks of {zone}: they go back over it").format(
            value=_q(shown), zone=zone
        ),
        hint=_("give it with its UTC offset: {a} (the first) or {b} (the second)").format(
            a=f"{naive.isoformat(timespec='minutes')}{_offset_text(first)}",
            b=f"{naive.isoformat(timespec='minutes')}{_offset_text(second)}",
        ),
    )


def _offset_text(moment: datetime) -> str:
    """``+08:00``: the UTC offset as ISO 8601 writes it."""
    return moment.isoformat()[-6:] if moment.utcoffset() else "+00:00"


def _refuse_serial(number: float) -> None:
    """A number that reads as an Excel date serial (45717 is 2025-03-01), not an epoch."""
    if _SERIAL_MIN <= number <= _SERIAL_MAX:
        day = _SERIAL_EPOCH + timedelta(days=number)
        shown = day.isoformat(sep=" ", timespec="minutes").removesuffix(" 00:00")
        raise CellError(
            _(
                "{value} looks like an Excel date ({date}) that lost its date format: as "
                "epoch seconds it would be a time in January 1970"
            ).format(value=_q(number), date=shown),
            hint=_(
                "format the cell as a date (Format Cells > Date), or write ISO-8601 such as "
                "2025-03-01T02:00:00+08:00"
            ),
        )


def _epoch_millis(number: int) -> int:
    return number if abs(number) >= _MS_FROM else number * 1000


def _text_millis(text: str, tz: tzinfo) -> int:
    if _DIGITS.match(text):
        _refuse_serial(int(text))
        return _epoch_millis(int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CellError(
            _("{value} is not a start time").format(value=_q(text)),
            hint=_("use ISO-8601 such as 2025-03-01T02:00:00+08:00, or epoch seconds"),
        ) from None
    return _datetime_millis(moment, tz)


def _unseen_character(text: str, *, allowed: str = "") -> str | None:
    """Why ``text`` is unfit to send as typed: a character nobody sees in a cell, or None.

    Control characters (an escape sequence starts with one), format characters (zero-width
    ones, direction marks and right-to-left overrides) and line or paragraph separators do
    not show, yet they are sent and stored.  Spaces of any width show as spaces.
    """
    if text.isprintable():
        return None
    char = next((c for c in text if c not in allowed and _is_unseen(c)), None)
    if char is None:
        return None
    name = unicodedata.name(char, "").lower()
    code = f"U+{ord(char):04X}" + (f" {name}" if name else "")
    if char == "\x1b":
        return _("holds an escape sequence ({code}), which no cell shows").format(code=code)
    if unicodedata.category(char) == "Cc":
        return _("holds a control character ({code}), which no cell shows").format(code=code)
    return _("holds an invisible character ({code})").format(code=code)


_UNSEEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _is_unseen(char: str) -> bool:
    return not char.isprintable() and unicodedata.category(char) in _UNSEEN


def _check_seen(text: str, *, allowed: str = "") -> str:
    """``text``, or ``CellError`` if it holds a character nobody sees (``_unseen_character``)."""
    problem = _unseen_character(text, allowed=allowed)
    if problem is None:
        return text
    raise CellError(
        f"{_q(text)} {problem}",
        hint=_(
            "retype the value: text pasted from a terminal or a web page can carry such characters"
        ),
    )


def _description(value: object) -> str:
    text = _check_seen(parse_text(value), allowed="\n\r\t")
    if len(text) > MAX_DESCRIPTION:
        raise CellError(
            _("the description is {length} characters long").format(length=len(text)),
            hint=_("keep it to {most} characters").format(most=MAX_DESCRIPTION),
        )
    return text


def check_name_pattern(value: object) -> str:
    """A name pattern using only ``{profile} {region} {project} {seq} {db_type} {task} {digest}``.

    Format specs are allowed (``{seq:03}``); attribute access, indexing and conversions are not.
    """
    pattern = _check_seen(parse_text(value))
    allowed = ", ".join(f"{{{n}}}" for n in NAME_FIELDS)
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise CellError(
            _("{value} is not a valid name pattern: {error}").format(value=_q(pattern), error=exc),
            hint=_("write a placeholder as {seq}; double a brace ({{ or }}) to keep it as text"),
        ) from None
    for _literal, placeholder, spec, conversion in parts:
        if placeholder is None:
            continue
        if placeholder not in NAME_FIELDS:
            fallback = _("use {allowed}").format(allowed=allowed)
            hint = _suggest(placeholder, NAME_FIELDS, fallback=fallback)
            raise CellError(
                _("{value} uses an unknown placeholder {{{placeholder}}}").format(
                    value=_q(pattern), placeholder=placeholder
                ),
                hint=hint,
            )
        if conversion is not None or "{" in (spec or ""):
            raise CellError(
                _("{value} uses a conversion or nested placeholder in {{{placeholder}}}").format(
                    value=_q(pattern), placeholder=placeholder
                ),
                hint=_("only a plain format spec such as {seq:03} is allowed"),
            )
    try:
        pattern.format(**_SAMPLE)
    except (ValueError, TypeError) as exc:
        raise CellError(
            _("{value} cannot be filled in: {error}").format(value=_q(pattern), error=exc),
            hint=_("number format specs such as :03 or :d fit {seq} only"),
        ) from None
    return pattern


def describe_default_profile() -> tuple[tuple[str, str], ...]:
    """The built-in ``default`` profile as (profiles column, value as a cell shows it)."""
    return tuple((c.name, _profile_cell(DEFAULT_PROFILE, c.name)) for c in schema.PROFILE_COLUMNS)


def _profile_cell(profile: Profile, column: str) -> str:
    if column == "profile":
        return profile.name
    if column in _SCAN_FIELDS:
        return _plain(getattr(profile.scan, column))
    if column == "timezone" and profile.timezone is None:
        return _("(--timezone, else the local zone)")
    return _plain(getattr(profile, column))


# --------------------------------------------------------------------------- issue collection


class _Sink:
    """Collects the issues of one sheet and knows its headers as written."""

    __slots__ = ("errors", "file", "headers", "issues", "positions", "sheet")

    def __init__(self, sheet: Sheet) -> None:
        self.file = sheet.file
        self.sheet = sheet.name
        self.headers: dict[str, str] = {}
        self.positions: dict[str, int] = {}
        for index, (header, column) in enumerate(zip(sheet.headers, sheet.columns, strict=False)):
            self.headers.setdefault(column, header)
            self.positions.setdefault(column, index)
        self.issues: list[Issue] = list(sheet.issues)  # what reading the sheet found
        self.errors = sum(issue.severity == "error" for issue in sheet.issues)

    def add(
        self,
        severity: Severity,
        message: str,
        *,
        ref: RowRef | None = None,
        column: str | None = None,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        """Record an issue; ``column`` is canonical and is shown as the header written."""
        self.errors += severity == "error"
        header = None if column is None else self.headers.get(column, column)
        self.issues.append(
            Issue(
                severity,
                message,
                ref=ref,
                file=self.file if ref is None else None,
                sheet=self.sheet if ref is None else None,
                column=header,
                value=None if value is None else show(value),
                hint=hint,
            )
        )

    def cell_error(self, row: RawRow, column: str, value: object, exc: CellError) -> None:
        self.add("error", exc.message, ref=row.ref, column=column, value=value, hint=exc.hint)

    def ordered(self) -> list[Issue]:
        """Sheet-level issues first, then by row, then by column position in the sheet."""
        by_header = {h: self.positions[c] for c, h in self.headers.items()}

        def key(issue: Issue) -> tuple[int, int]:
            row = issue.ref.row if issue.ref is not None else 0
            return row, by_header.get(issue.column or "", -1)

        return sorted(self.issues, key=key)


def _parsed(row: RawRow, column: str, parse: Callable[[object], T], default: T, sink: _Sink) -> T:
    """``parse`` the cell, or record its error and fall back to ``default``; blank → default."""
    value = row.values.get(column)
    if _is_blank(value):
        return default
    try:
        return parse(value)
    except CellError as exc:
        sink.cell_error(row, column, value, exc)
        return default


def _nothing_to_scan(skipped: int, sink: _Sink) -> None:
    """A sheet without one instance to scan, and nothing else wrong with it: an export that
    came out empty (an error: a run of it would report success having done nothing), or
    every row switched off (a warning: that may be meant)."""
    if not skipped:
        sink.add(
            "error",
            _("the sheet has no instance rows, only its headers: nothing to scan"),
            hint=_("is this the file you meant? an export that came out empty looks like this"),
        )
    else:
        sink.add(
            "warning",
            _(
                "every row is switched off ({count} row(s) say no in '{column}'): nothing to scan"
            ).format(count=skipped, column=sink.headers.get("enabled", "enabled")),
            column="enabled",
        )


def _missing_columns(sheet: Sheet, required: Iterable[str], sink: _Sink) -> set[str]:
    """One sheet-level error per required column the sheet lacks."""
    missing = {name for name in required if name not in sheet.columns}
    found = ", ".join(f"'{h}'" for h in sheet.headers) or _("none")
    for name in sorted(missing):
        close = did_you_mean(name, sheet.headers)
        hint = _("did you mean '{close}'? ").format(close=close) if close else ""
        sink.add(
            "error",
            _("the required column '{name}' is missing").format(name=name),
            column=name,
            hint=hint + _("headers found: {found}").format(found=found),
        )
    return missing


_INSTANCE_SPELLINGS = {
    schema.normalise_header(spelling): column.name
    for column in schema.INSTANCE_COLUMNS
    for spelling in (column.name, *column.aliases)
}


def _warn_near_miss_columns(sheet: Sheet, sink: _Sink) -> None:
    """A header close to a known column the sheet lacks (``regions``, ``Scan profile
    name``) is carried to the reports like any other; say so, since the user likely meant
    the column (its cells are not read as it)."""
    said = {*_required_columns(sheet), "ins_name"}  # missing: an error that suggests it
    absent = {
        spelling: name
        for spelling, name in _INSTANCE_SPELLINGS.items()
        if name not in sheet.columns and name not in said
    }
    for header, column in zip(sheet.headers, sheet.columns, strict=False):
        if column in _INSTANCE_NAMES or not header:
            continue
        spelling = schema.normalise_header(schema.without_note(header))
        close = difflib.get_close_matches(spelling, list(absent), n=1, cutoff=0.8)
        if close:
            sink.add(
                "warning",
                _("column '{header}' is not read as '{name}', only carried to the report").format(
                    header=header, name=absent[close[0]]
                ),
                column=column,
                hint=_("rename it to '{name}' if its cells are meant as that").format(
                    name=absent[close[0]]
                ),
            )


# --------------------------------------------------------------------------- profiles sheet


@dataclass(frozen=True, slots=True)
class _Profiles:
    by_name: dict[str, Profile]  # name as written → profile
    index: dict[str, str]  # lowercased name → name as written
    checkable: bool  # False when the profiles sheet itself is unusable
    issues: list[Issue]


def _validate_profiles(sheet: Sheet | None, settings: InputSettings) -> _Profiles:
    if sheet is None:
        return _Profiles({"default": DEFAULT_PROFILE}, {"default": "default"}, True, [])
    sink = _Sink(sheet)
    missing = _missing_columns(sheet, ["profile"], sink)
    _warn_unknown_profile_columns(sheet, sink)
    by_name: dict[str, Profile] = {}
    index: dict[str, str] = {}
    for row in sheet.rows:
        profile = _profile_row(row, sink, settings, named="profile" not in missing)
        if profile is None:
            continue
        existing = index.get(profile.name.lower())
        if existing is not None:
            first = by_name[existing].ref
            where = _("row {row}").format(row=first.row) if first else _("another row")
            sink.add(
                "error",
                _("profile {name} is already defined at {where}").format(
                    name=_q(profile.name), where=where
                ),
                ref=row.ref,
                column="profile",
                value=profile.name,
                hint=_("give each profile a different name"),
            )
            continue
        by_name[profile.name] = profile
        index[profile.name.lower()] = profile.name
    if "default" not in index:
        by_name["default"] = DEFAULT_PROFILE
        index["default"] = "default"
    return _Profiles(by_name, index, not missing, sink.ordered())


def _warn_unknown_profile_columns(sheet: Sheet, sink: _Sink) -> None:
    for header, column in zip(sheet.headers, sheet.columns, strict=False):
        if column in _PROFILE_NAMES:
            continue
        hint = _suggest(header, _PROFILE_NAMES, fallback=_("it is not a profile setting"))
        message = _("column '{header}' is ignored").format(header=header)
        sink.add("warning", message, column=column, hint=hint)


def _profile_row(
    row: RawRow, sink: _Sink, settings: InputSettings, *, named: bool
) -> Profile | None:
    """The profile of one row, or None when it has no usable name."""
    errors = sink.errors
    name = parse_text(row.values.get("profile", ""))
    if not name and named:
        sink.add(
            "error",
            _("the profile name is blank"),
            ref=row.ref,
            column="profile",
            hint=_("name the profile, or delete the row"),
        )
    zone = _parsed(row, "timezone", parse_timezone, None, sink)
    start_time = _parsed(
        row,
        "start_time",
        lambda v: parse_start_time(
            v, tz=ZoneInfo(zone) if zone else settings.tz, unit=settings.start_time_unit
        ),
        DEFAULT_PROFILE.start_time,
        sink,
    )
    flags = {
        f: _parsed(row, f, parse_bool, getattr(DEFAULT_PROFILE, f), sink) for f in _FLAG_FIELDS
    }
    scan = {
        f: _parsed(row, f, parse_bool, getattr(DEFAULT_PROFILE.scan, f), sink) for f in _SCAN_FIELDS
    }
    profile = Profile(
        name=name,
        schedule_type=_parsed(row, "schedule_type", parse_schedule_type, "ONCE", sink),
        start_time=start_time,
        scan=ScanConfig(**scan),
        task_description=_parsed(
            row, "task_description", _description, DEFAULT_PROFILE.task_description, sink
        ),
        task_name=_parsed(row, "task_name", check_name_pattern, DEFAULT_PROFILE.task_name, sink),
        max_sources=_parsed(row, "max_sources", _max_sources, DEFAULT_PROFILE.max_sources, sink),
        ref=row.ref,
        timezone=zone,
        **flags,
    )
    if profile.task_description == _EXAMPLE_DESCRIPTION:
        sink.add(
            "error", _(_EXAMPLE), ref=row.ref, column="task_description", hint=_(_EXAMPLE_HINT)
        )
    if sink.errors == errors:
        _warn_odd_schedule(row, profile, sink)
    return profile if name else None


def _max_sources(value: object) -> int:
    return parse_int(value, low=1, high=MAX_SOURCES)


def _warn_odd_schedule(row: RawRow, profile: Profile, sink: _Sink) -> None:
    """Settings that are valid but almost certainly not what the user meant."""
    if profile.schedule_type != "ONCE" and not profile.schedule_switch:
        sink.add(
            "warning",
            _("schedule_type is {schedule} but schedule_switch is FALSE").format(
                schedule=profile.schedule_type
            ),
            ref=row.ref,
            column="schedule_switch" if "schedule_switch" in sink.headers else "schedule_type",
            hint=_("the schedule stays off; set schedule_switch to TRUE for a recurring scan"),
        )
    if profile.schedule_type == "ONCE" and not profile.start_now and profile.start_time == 0:
        sink.add(
            "warning",
            _(
                "start_now is FALSE, schedule_type is ONCE and there is no start_time: "
                "the task would never run"
            ),
            ref=row.ref,
            column="start_now",
            hint=_("set start_now to TRUE or give a start_time"),
        )


# --------------------------------------------------------------------------- instances sheet


@dataclass(frozen=True, slots=True)
class _Context:
    settings: InputSettings
    profiles: _Profiles
    missing: set[str]  # required columns the sheet lacks
    extras: tuple[tuple[str, str], ...]  # (canonical key, header as written) of carried columns
    region: str | None  # the --region default, normalised
    known_types: dict[str, str | None]  # db_type as written → canonical (a cache)
    csv: bool  # CSV text, where a spreadsheet writes formulas and numbers as they are


def validate(book: InputBook, settings: InputSettings) -> Validated:
    """Check every cell of ``book``; never raises for bad cells (see the module docstring)."""
    profiles = _validate_profiles(book.profiles, settings)
    sheet = book.instances
    sink = _Sink(sheet)
    context = _Context(
        settings=settings,
        profiles=profiles,
        missing=_missing_columns(sheet, _required_columns(sheet), sink),
        extras=tuple(
            (c, h)
            for h, c in zip(sheet.headers, sheet.columns, strict=False)
            if c not in _INSTANCE_NAMES or c == "ins_name"  # the name is carried to reports
        ),
        region=_default_region(settings, sink),
        known_types={},
        csv=book.fmt == "csv",
    )
    _warn_near_miss_columns(sheet, sink)
    instances, skipped, duplicates = _validate_instances(sheet, sink, context)
    _warn_projects_in_regions(instances, sink)
    if not instances and not sink.errors:
        _nothing_to_scan(len(skipped), sink)
    return Validated(
        instances=tuple(instances),
        profiles=MappingProxyType(dict(profiles.by_name)),
        skipped=tuple(skipped),
        duplicates=tuple(duplicates),
        issues=(*sink.ordered(), *profiles.issues),
        columns=MappingProxyType(dict(sink.headers)),
    )


class _Shared(NamedTuple):
    """The cells of a row other than ``ins_id`` and the carried ones, parsed.

    Inventories repeat a handful of combinations of these cells, so ``_validate_instances``
    parses each distinct combination once.
    """

    enabled: bool
    db_type: str | None
    project_id: str | None
    region: str | None
    profile: str | None
    task: str | None


def _validate_instances(
    sheet: Sheet, sink: _Sink, context: _Context
) -> tuple[list[Instance], list[RowRef], list[tuple[RowRef, RowRef]]]:
    """The hot loop of validation: a row whose shared cells (``_Shared``, in that order)
    were seen before without an issue costs a look-up, its ``ins_id`` and its extras."""
    instances: list[Instance] = []
    skipped: list[RowRef] = []
    duplicates: list[tuple[RowRef, RowRef]] = []
    seen: dict[tuple[str, str, str, str], Instance] = {}
    memo: dict[tuple[object, ...], _Shared] = {}
    extras = _Extras(context.extras)
    for row in sheet.rows:
        errors = sink.errors
        get = row.values.get
        key: tuple[object, ...] = (
            get("enabled"),
            get("db_type"),
            get("project_id"),
            get("region"),
            get("profile"),
            get("task"),
        )
        try:
            shared = memo.get(key)
        except TypeError:  # a cell that cannot be a dictionary key: never remembered
            shared, key = None, ()
        if shared is None:
            shared, ins_id, clean = _first_sight(row, sink, context)
            if clean and key and _storable(key, bools_at=0):
                memo[key] = shared
        elif shared.enabled:
            ins_id = get("ins_id")  # usually text, checked here without calls
            if (
                ins_id.__class__ is not str
                or not (ins_id := ins_id.strip())
                or not ins_id.isprintable()
                or len(ins_id) > MAX_INS_ID
                or ins_id == _EXAMPLE_ID
                or ins_id[0] == "="
                or "E+" in ins_id
                or "e+" in ins_id
            ):
                ins_id = _ins_id(row, sink, context)
        if not shared.enabled:
            skipped.append(row.ref)
            continue
        _enabled, db_type, project_id, region, profile, task = shared
        if sink.errors != errors or not (ins_id and db_type and project_id and region and profile):
            continue
        instance = _make_instance(
            row.ref, ins_id, db_type, project_id, region, profile, task, extras.of(get)
        )
        first = seen.setdefault((project_id, region, profile, ins_id), instance)
        if first is instance:
            instances.append(instance)
        else:
            duplicates.append((row.ref, first.ref))
            _warn_duplicate(row, instance, first, sink)
    return instances, skipped, duplicates


def _storable(key: tuple[object, ...], *, bools_at: int | None = None) -> bool:
    """Whether cells parsed once may stand for every equal row: text and blanks only.

    A number may equal a cell of another type (``1 == 1.0 == True``) yet read differently
    as text, so other values are never remembered.  ``bools_at`` admits yes/no cells in one
    position: that of ``enabled``, where the numbers equal to TRUE and FALSE (1 and 0) read
    the same as they do.
    """
    for index, value in enumerate(key):
        if value is None or value.__class__ is str:
            continue
        if index != bools_at or value.__class__ is not bool:
            return False
    return True


def _first_sight(row: RawRow, sink: _Sink, context: _Context) -> tuple[_Shared, str | None, bool]:
    """Check every cell of the row in sheet order: (shared cells, ins_id, whether the shared
    cells were free of issues, so that their parse may be remembered)."""
    before = len(sink.issues)
    enabled = _parsed(row, "enabled", parse_bool, True, sink)
    clean = len(sink.issues) == before
    if not enabled:
        return _Shared(False, None, None, None, None, None), None, clean
    ins_id = _ins_id(row, sink, context)
    before = len(sink.issues)
    shared = _Shared(
        True,
        _db_type(row, sink, context),
        _project_id(row, sink, context),
        _region(row, sink, context),
        _profile_name(row, sink, context),
        _task(row, sink),
    )
    return shared, ins_id, clean and len(sink.issues) == before


_INSTANCE_FIELDS = (
    "ref", "ins_id", "db_type", "project_id", "region", "profile", "task", "extras"
)  # fmt: skip


def _instance_maker() -> Callable[..., Instance]:
    """``Instance(*fields)``, twice as fast: a frozen dataclass's ``__init__`` only sets each
    field with ``object.__setattr__`` by name, this writes the slots directly.  Should the
    class change shape (other fields, a ``__post_init__``), it is the class itself.  Tests
    hold both equal."""
    if (
        tuple(f.name for f in fields(Instance)) != _INSTANCE_FIELDS
        or not all(f.init for f in fields(Instance))
        or hasattr(Instance, "__post_init__")
        or not all(
            isinstance(Instance.__dict__.get(n), MemberDescriptorType) for n in _INSTANCE_FIELDS
        )
    ):
        return Instance
    new = object.__new__
    s_ref, s_id, s_type, s_project, s_region, s_profile, s_task, s_extras = (
        Instance.__dict__[name].__set__ for name in _INSTANCE_FIELDS
    )

    def make(  # noqa: PLR0917 - Instance's own positional fields
        ref: RowRef,
        ins_id: str,
        db_type: str,
        project_id: str,
        region: str,
        profile: str,
        task: str | None,
        extras: tuple[tuple[str, str], ...],
    ) -> Instance:
        instance = new(Instance)
        s_ref(instance, ref)
        s_id(instance, ins_id)
        s_type(instance, db_type)
        s_project(instance, project_id)
        s_region(instance, region)
        s_profile(instance, profile)
        s_task(instance, task)
        s_extras(instance, extras)
        return instance

    return make


_make_instance = _instance_maker()


class _Extras:
    """The carried cells of rows as ``Instance.extras``, one tuple per distinct combination."""

    __slots__ = ("headers", "keys", "memo")

    def __init__(self, extras: tuple[tuple[str, str], ...]) -> None:
        self.keys = tuple(key for key, _header in extras)
        self.headers = tuple(header for _key, header in extras)
        self.memo: dict[tuple[object, ...], tuple[tuple[str, str], ...]] = {}

    def of(self, get: Callable[[str], object]) -> tuple[tuple[str, str], ...]:
        """The extras of the row whose ``values.get`` is ``get``."""
        if not self.keys:
            return ()
        cells = tuple(map(get, self.keys))
        try:
            found = self.memo.get(cells)
        except TypeError:  # a cell that cannot be a dictionary key
            return self._build(cells)
        if found is None:
            found = self._build(cells)
            if _storable(cells):
                self.memo[cells] = found
        return found

    def _build(self, cells: tuple[object, ...]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (header, _extra(value)) for header, value in zip(self.headers, cells, strict=True)
        )


def _warn_duplicate(row: RawRow, instance: Instance, first: Instance, sink: _Sink) -> None:
    hint = _("it is sent once")
    if instance.db_type != first.db_type:
        hint = _("it is sent once, as {db_type} from row {row}").format(
            db_type=repr(first.db_type), row=first.ref.row
        )
    sink.add(
        "warning",
        _("instance {ins_id} repeats row {row} (same project, region and profile)").format(
            ins_id=_q(instance.ins_id), row=first.ref.row
        ),
        ref=row.ref,
        column="ins_id",
        value=instance.ins_id,
        hint=hint,
    )


def _warn_projects_in_regions(instances: Sequence[Instance], sink: _Sink) -> None:
    """A Huawei Cloud project belongs to one region (each region has its own project ids),
    so a project given with a second region is a mistake in one of the two cells: warn at
    the first row of each region other than the project's most used one, with how many rows
    it has.
    """
    regions: dict[str, dict[str, list[Instance]]] = {}
    for instance in instances:
        if instance.region not in _REGIONS:  # warned of already: one mistake, one message
            continue
        by_region = regions.setdefault(instance.project_id, {})
        by_region.setdefault(instance.region, []).append(instance)
    for project, by_region in regions.items():
        if len(by_region) < 2:
            continue
        home = max(by_region, key=lambda region: len(by_region[region]))  # first of equals
        first = by_region[home][0]
        for region, rows in by_region.items():
            if region == home:
                continue
            sink.add(
                "warning",
                _(
                    "project {project} is in region {home} at row {row} and in region "
                    "{region} here ({count} row(s) with that region)"
                ).format(
                    project=_q(project),
                    home=_q(home),
                    row=first.ref.row,
                    region=_q(region),
                    count=len(rows),
                ),
                ref=rows[0].ref,
                column="region",
                value=region,
                hint=_(
                    "a project belongs to one region, so DSC in one of them will refuse it: "
                    "check the region and the project_id"
                ),
            )


def _required_columns(sheet: Sheet) -> list[str]:
    """ins_id and db_type; a sheet of instance names may lack both until it is resolved."""
    return [] if "ins_name" in sheet.columns else ["ins_id", "db_type"]


def _awaits_resolve(row: RawRow) -> bool:
    """The row names its instance but has no ins_id yet."""
    return _is_blank(row.values.get("ins_id")) and not _is_blank(row.values.get("ins_name"))


def _blank_required(row: RawRow, column: str, sink: _Sink, context: _Context) -> None:
    if _awaits_resolve(row):
        if column == "ins_id":
            sink.add(
                "error",
                _("instance {name} has a name but no ins_id yet").format(
                    name=_q(row.values["ins_name"])
                ),
                ref=row.ref,
                column="ins_id",
                hint=_(
                    "run `bulkscan resolve {file}` to fill ins_id and db_type "
                    "from DSC's asset centre, then use the -resolved.xlsx it writes"
                ).format(file=row.ref.file),
            )
        return
    if column not in context.missing:
        sink.add(
            "error",
            _("{column} is blank").format(column=column),
            ref=row.ref,
            column=column,
            hint=_("fill it in, or set enabled to FALSE to skip the row"),
        )


def _ins_id(row: RawRow, sink: _Sink, context: _Context) -> str | None:
    value = row.values.get("ins_id")
    if _is_blank(value):
        _blank_required(row, "ins_id", sink, context)
        return None
    caveat = _text_caveat(value)
    if caveat is not None:
        sink.add("warning", caveat[0], ref=row.ref, column="ins_id", value=value, hint=caveat[1])
    text = parse_text(value)
    try:
        if context.csv:
            _refuse_excel_text(text)
        return _ins_id_text(text)
    except CellError as exc:
        sink.cell_error(row, "ins_id", value, exc)
        return None


def _ins_id_text(text: str) -> str:
    """An instance id as typed, or ``CellError``: too long, an unseen character, the example."""
    if len(text) > MAX_INS_ID:
        raise CellError(
            _("ins_id is {length} characters long, more than an instance id ever is").format(
                length=f"{len(text):,}"
            ),
            hint=_("put the instance id alone in the cell (at most {most} characters)").format(
                most=MAX_INS_ID
            ),
        )
    if text == _EXAMPLE_ID:
        raise CellError(_(_EXAMPLE), hint=_(_EXAMPLE_HINT))
    return _check_seen(text)


_EXCEL_TEXT = re.compile(r'^="((?:[^"]|"")*)"$')  # Excel's formula that keeps text as typed
_SCIENTIFIC = re.compile(r"^[+-]?\d(?:\.\d+)?[eE]\+\d+$")


def _refuse_excel_text(text: str) -> None:
    """What a spreadsheet wrote into CSV text instead of the id a person sees: its text
    formula (``="00123"``), another formula, a number in scientific notation.  (In a
    workbook, a text cell shows as it is written.)"""
    if match := _EXCEL_TEXT.match(text):
        inner = match.group(1).replace('""', '"')
        raise CellError(
            _("{value} is a spreadsheet formula, not the id: Excel shows {inner}").format(
                value=_q(text), inner=_q(inner)
            ),
            hint=_("write the id alone, without = and quotes"),
        )
    if text.startswith("="):
        raise CellError(
            _("{value} is a spreadsheet formula, not the id").format(value=_q(text)),
            hint=_("write the id the formula gives"),
        )
    if _SCIENTIFIC.match(text):
        raise CellError(
            _("{value} is a number in scientific notation: the id's digits are lost").format(
                value=_q(text)
            ),
            hint=_("export the column as text from where the file came from"),
        )


def _db_type(row: RawRow, sink: _Sink, context: _Context) -> str | None:
    value = row.values.get("db_type")
    if _is_blank(value):
        _blank_required(row, "db_type", sink, context)
        return None
    override = row.values.get("dsc_db_type")
    if not _is_blank(override):
        return parse_text(override)  # the row's own spelling for DSC, sent as written
    text = parse_text(value)
    if text not in context.known_types:
        context.known_types[text] = schema.canonical_db_type(text)
    canonical = context.known_types[text]
    if canonical is not None:
        return canonical
    problem = _unseen_character(text)
    if problem is not None:
        sink.add("error", f"{_q(text)} {problem}", ref=row.ref, column="db_type", value=value)
        return None
    strict = context.settings.strict_db_types
    known = ", ".join(schema.known_db_types())
    unsupported = schema.unsupported_db_type(text)
    if unsupported:
        what = _("{value} is a type DSC metadata tasks do not support")
    else:
        what = _("{value} is not a known database type")
    then = _(" (--any-db-type sends it)") if strict else _("; it is sent as written")
    sink.add(
        "error" if strict else "warning",
        what.format(value=_q(text)) + then,
        ref=row.ref,
        column="db_type",
        value=value,
        hint=_suggest(
            text, schema.known_db_types(), fallback=_("known types: {known}").format(known=known)
        ),
    )
    return None if strict else text


def _default_for_blank(
    row: RawRow,
    sink: _Sink,
    column: str,
    default: str | None,
    *,
    option: str,
    variable: str | None = None,
) -> str | None:
    """What a blank ``column`` stands for: ``default`` (from ``option`` or the environment
    ``variable``), or an error when none is set."""
    if default is None:
        unset = option
        if variable is not None:
            unset = _("{option} or {variable}").format(option=option, variable=variable)
        sink.add(
            "error",
            _("{column} is blank and no {unset} is set").format(column=column, unset=unset),
            ref=row.ref,
            column=column,
            hint=_("fill the cell, or give a default with {option}").format(option=option),
        )
    return default


def _project_id(row: RawRow, sink: _Sink, context: _Context) -> str | None:
    value = row.values.get("project_id")
    if _is_blank(value):
        default = context.settings.project_id
        variable = "HUAWEICLOUD_SDK_PROJECT_ID"
        return _default_for_blank(
            row, sink, "project_id", default, option="--project-id", variable=variable
        )
    caveat = _text_caveat(value)
    if caveat is not None:  # Excel shows 1.23457E+31, and the digits it kept are not the id
        sink.add("error", caveat[0], ref=row.ref, column="project_id", value=value, hint=caveat[1])
        return None
    text = parse_text(value)
    if _PROJECT.match(text):
        return text
    if _HEX32.match(text):
        sink.add(
            "warning",
            _("project_id {value} is in uppercase; it is sent lowercased").format(value=_q(text)),
            ref=row.ref,
            column="project_id",
            value=value,
        )
        return text.lower()
    sink.add(
        "error",
        _("{value} is not 32 hex characters").format(value=_q(text)),
        ref=row.ref,
        column="project_id",
        value=value,
        hint=_("it has {length}; a project id looks like 0123456789abcdef0123456789abcdef").format(
            length=len(text)
        ),
    )
    return None


def _region_check(text: str) -> tuple[str, Severity | None, str, str | None]:
    """(normalised region, severity of a problem or None, message, hint)."""
    region = text.strip().lower()
    if region in _REGIONS:
        return region, None, "", None
    example = _("use a region id such as cn-north-4")
    dashed = _SEPARATORS.sub("-", region)
    not_an_id = _("{value} is not a region id").format(value=_q(text))
    if dashed in _REGIONS:
        return region, "error", not_an_id, _("did you mean '{close}'?").format(close=dashed)
    if not _REGION.match(region):
        hint = _suggest(region, schema.REGIONS, fallback=example)
        return region, "error", not_an_id, hint
    hint = _suggest(region, schema.REGIONS, fallback=_("it is used as written"))
    unknown = _("{value} is not a region bulkscan knows").format(value=_q(text))
    return region, "warning", unknown, hint


def _default_region(settings: InputSettings, sink: _Sink) -> str | None:
    if settings.region is None:
        return None
    region, severity, message, hint = _region_check(settings.region)
    if severity is not None:
        sink.add(severity, f"--region: {message}", hint=hint)
    return region


def _region(row: RawRow, sink: _Sink, context: _Context) -> str | None:
    value = row.values.get("region")
    if _is_blank(value):
        return _default_for_blank(row, sink, "region", context.region, option="--region")
    region, severity, message, hint = _region_check(parse_text(value))
    if severity is not None:
        sink.add(severity, message, ref=row.ref, column="region", value=value, hint=hint)
    return None if severity == "error" else region


def _profile_name(row: RawRow, sink: _Sink, context: _Context) -> str | None:
    value = row.values.get("profile")
    name = "default" if _is_blank(value) else parse_text(value)
    profiles = context.profiles
    found = profiles.index.get(name.lower())
    if found is not None or not profiles.checkable:
        return found  # an unusable profiles sheet is already reported once
    known = ", ".join(f"'{n}'" for n in profiles.by_name)
    close = did_you_mean(name, profiles.by_name)
    hint = (_("did you mean '{close}'? ").format(close=close) if close else "") + _(
        "known profiles: {known}"
    ).format(known=known)
    sink.add(
        "error",
        _("profile {name} is not defined").format(name=_q(name)),
        ref=row.ref,
        column="profile",
        value=value,
        hint=hint,
    )
    return None


def _task(row: RawRow, sink: _Sink) -> str | None:
    """The ``task`` cell's name; one the sheet shows otherwise than it is sent (a date
    cell, a number Excel rounds) is warned of."""
    value = row.values.get("task")
    shown_otherwise = isinstance(value, date | time) or (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) >= _EXACT_DIGITS
    )
    caveat = _text_caveat(value) if shown_otherwise else None
    if caveat is not None:
        sink.add("warning", caveat[0], ref=row.ref, column="task", value=value, hint=caveat[1])
    return _parsed(row, "task", _task_name, None, sink)


def _task_name(value: object) -> str:
    text = _check_seen(parse_text(value))
    if len(text) > MAX_NAME:
        raise CellError(
            _("the task name is {length} characters long").format(length=len(text)),
            hint=_("keep task names to {most} characters, so they can be found again").format(
                most=MAX_NAME
            ),
        )
    return text


def _extra(value: object) -> str:
    """A carried cell as text: strings untouched, blank as ''."""
    if value is None:
        return ""
    return value if isinstance(value, str) else parse_text(value)
