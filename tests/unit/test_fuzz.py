"""Random workbooks and CSV files through load, validate and plan (``runner.check``/``prepare``).

Whatever the cells hold (headers that are aliases, near-aliases or junk; any type; CJK, RTL,
emoji and control characters; blanks; huge strings; formulas), the only exceptions are
bulkscan's own input errors, each naming its file, and every issue names its sheet and row,
and its column when it is about a cell, exactly as the user's sheet has them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openpyxl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from bulkscan import runner
from bulkscan.config import InputSettings
from bulkscan.errors import InputError, ValidationFailed
from bulkscan.input import schema

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bulkscan.models import InputBook, Issue

PROJECT = "0123456789abcdef0123456789abcdef"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- strategies

SPECIAL_TEXT = [
    "", " ", "\t", "MySQL", "mysql", "PostgreSQL", "mysq", "Oracle", PROJECT, PROJECT.upper(),
    "cn-north-4", "ap-southeast-1", "xx-new-1", "default", "ONCE", "WEEK", "TRUE", "no", "0",
    "1e309", "NaN", "-0", "2030-01-06 03:00", "1700000000", "数据库实例", "مرحبا بالعالم",
    "\u202eevil\u202c", "zero\u200bwidth", "🙂🚀", "e\u0301", "_x0000_", "_x0007_bell",
    "=1+1", '=HYPERLINK("http://example.invalid","x")', "+cmd|' /C calc'!A0", "@SUM(A1)",
    "#N/A", "{seq}", "{nope}", "{seq:03}", "{db_type}-{region}", "a\nb", "a\r\nb", "'quoted",
]  # fmt: skip

_ALIASES = [
    alias
    for column in (*schema.INSTANCE_COLUMNS, *schema.PROFILE_COLUMNS)
    for alias in (column.name, *column.aliases)
]


def _variants(name: str) -> list[str]:
    spaced = name.replace("_", " ")
    return [name, name.upper(), spaced.title(), f" {spaced} ", name.replace("_", "-")]


KNOWN_COLUMNS = {c.name for c in (*schema.INSTANCE_COLUMNS, *schema.PROFILE_COLUMNS)}
HEADER_WORDS = sorted({v for alias in _ALIASES for v in _variants(alias)})

texts = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=24),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), max_size=8),
    st.text(st.characters(min_codepoint=0x0590, max_codepoint=0x06FF), max_size=8),
    st.builds(
        lambda ch, n: ch * n,
        st.sampled_from(["x", "数", "🙂", "=", " "]),
        st.integers(1_000, 40_000),
    ),
)
values = st.one_of(
    texts,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=dt.datetime(1901, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(min_value=dt.date(1901, 1, 1)),
    st.times(),
)
headers = st.one_of(st.sampled_from(HEADER_WORDS), texts, st.none())
input_settings = st.builds(
    InputSettings,
    project_id=st.sampled_from([None, PROJECT]),
    region=st.sampled_from([None, "cn-north-4", "xx-new-1"]),
    timezone=st.sampled_from(["UTC", "Asia/Shanghai"]),
    start_time_unit=st.sampled_from(["s", "ms"]),
    strict_db_types=st.booleans(),
)


def mostly(good: list[Any], other: st.SearchStrategy[Any] = values) -> st.SearchStrategy[Any]:
    """One of ``good`` (valid values) seven times in eight, else anything."""
    return st.one_of(*[st.sampled_from(good)] * 7, other)


INSTANCE_CELLS = {
    "ins_id": mostly(["ins-1", "ins-2", " ins-3", "实例-4", "=1+1"], texts),
    "db_type": mostly(["MySQL", "postgres", "GaussDB", "mysq"]),
    "project_id": mostly([PROJECT]),
    "region": mostly(["cn-north-4", "ap-southeast-1", "xx-new-1"]),
    "profile": mostly(["default", None]),
    "task": mostly([None, "t-1", "t-2", '=HYPERLINK("x")'], texts),
    "enabled": mostly([True, False, "no", None]),
    "owner": values,
}
PROFILE_CELLS = {
    "profile": mostly(["default", "weekly"], texts),
    "schedule_type": mostly(["ONCE", "WEEK", None]),
    "start_time": mostly([None, 0, dt.datetime(2030, 1, 6, 3, 0), "2030-01-06T03:00"]),
    "start_now": mostly([True, False, None]),
    "max_sources": mostly([None, 1, 2, 500]),
    "task_name": mostly([None, "{profile}-{seq}", "x-{seq:03}", "{db_type}-{region}-{seq}"], texts),
    "task_description": texts,
}


@st.composite
def tables(
    draw: st.DrawFn, cells: dict[str, Any], *, always: int, max_rows: int = 6
) -> list[list[Any]]:
    """A header row and rows of cells, ragged at times: random columns of random values, or
    known columns (under any alias; the first ``always`` of ``cells`` always there) of mostly
    plausible values."""
    if draw(st.booleans()):
        width = draw(st.integers(min_value=0, max_value=9))
        head = draw(st.lists(headers, min_size=width, max_size=width))
        rows = draw(st.lists(st.lists(values, max_size=width + 1), max_size=max_rows))
        return [head, *rows]
    others = draw(st.lists(st.sampled_from(sorted(cells)), unique=True))
    names = draw(st.permutations(sorted({*list(cells)[:always], *others})))
    head = [draw(st.sampled_from(_variants(name))) for name in names]
    row = st.tuples(*(cells[name] for name in names)).map(list)
    return [head, *draw(st.lists(row, max_size=max_rows))]


# --------------------------------------------------------------------------- writing inputs


def _xlsx_value(value: Any, as_formula: bool) -> tuple[Any, bool]:
    """A value openpyxl can store (XML cannot hold C0 controls); text kept as text or not."""
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value), as_formula and value.startswith("=")
    return value, False


def _write_xlsx(
    path: Path, sheets: dict[str, list[list[Any]]], formulas: bool, origin: tuple[int, int]
) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, table in sheets.items():
        ws = book.create_sheet(title)
        for r, row in enumerate(table):
            for c, raw in enumerate(row):
                value, formula = _xlsx_value(raw, formulas)
                if value is None or value == "":
                    continue
                cell = ws.cell(row=origin[0] + r, column=origin[1] + c, value=value)
                if isinstance(value, str) and not formula:
                    cell.data_type = "s"  # as typed into a cell: text, even if it starts with =
    book.save(path)


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _write_csv(
    path: Path, table: list[list[Any]], delimiter: str, newline: str, encoding: str
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    for row in table:
        writer.writerow([_csv_text(v) for v in row])
    path.write_bytes(out.getvalue().encode(encoding, errors="replace"))


# --------------------------------------------------------------------------- the properties


def _sheets_of(book: InputBook) -> dict[tuple[str, str], tuple[set[int], set[str]]]:
    """(file, sheet) → (its data row numbers, the names an issue may give a column: the
    headers as written, or a known column the sheet lacks)."""
    found = {}
    for sheet in (book.instances, book.profiles):
        if sheet is not None:
            rows = {r.ref.row for r in sheet.rows}
            lacking = KNOWN_COLUMNS - set(sheet.columns)
            found[(sheet.file, sheet.name)] = (rows, {*sheet.headers, *lacking})
    return found


def _assert_placed(issues: Iterable[Issue], book: InputBook) -> None:
    """Each issue names a sheet of the input; a row issue names a data row of that sheet;
    a cell issue (row and column) names a header of that sheet, as the user wrote it."""
    sheets = _sheets_of(book)
    for issue in issues:
        text = str(issue)
        assert issue.severity in ("error", "warning"), issue
        assert "\n" not in text and "\r" not in text, text
        if issue.ref is None:
            assert issue.file in {f for f, _ in sheets} | {book.path}, issue
            assert issue.sheet is None or (issue.file, issue.sheet) in sheets, issue
            assert issue.column is None or issue.sheet is not None, issue  # a column of a sheet
            continue
        ref = issue.ref
        assert (ref.file, ref.sheet) in sheets, issue
        rows, names = sheets[(ref.file, ref.sheet)]
        assert ref.row in rows, issue
        assert f"sheet '{ref.sheet}', row {ref.row}" in text
        if issue.column is not None:
            assert issue.column in names, (issue.column, names)


def _assert_input_error(exc: InputError, paths: Sequence[str]) -> None:
    text = str(exc)
    assert exc.file in paths and text.startswith(exc.file), text
    assert text.strip() and "\n" not in text and "\r" not in text, text


def check_all_the_way(path: Path, profiles: Path | None, options: InputSettings) -> None:
    """``check`` then ``prepare``: input errors or issues, never another exception."""
    paths = [os.fspath(p) for p in (path, profiles) if p is not None]
    try:
        checked = runner.check(path, profiles_path=profiles, settings=options)
    except InputError as exc:
        _assert_input_error(exc, paths)
        event("input error")
        return
    _assert_placed(checked.issues, checked.book)
    try:
        prepared = runner.prepare(path, profiles_path=profiles, settings=options)
    except ValidationFailed as failed:
        assert any(i.severity == "error" for i in failed.issues)
        event("validation failed")
        _assert_placed(failed.issues, checked.book)
        return
    assert not checked.has_errors
    event("planned" if prepared.plan.tasks else "nothing to plan")
    _assert_placed(prepared.plan.issues, prepared.book)
    planned = {ref for task in prepared.plan.tasks for ref in task.rows}
    assert planned <= {r.ref for r in prepared.book.instances.rows}
    assert {i.ref for i in prepared.validated.instances} <= planned


# --------------------------------------------------------------------------- the fuzzers

sheet_names = st.one_of(
    st.just("instances"), st.sampled_from(["Instances", " INSTANCES ", "Sheet1", "实例"])
)


@FUZZ
@given(
    instances=tables(INSTANCE_CELLS, always=4),
    profiles=st.one_of(st.none(), tables(PROFILE_CELLS, always=2, max_rows=3)),
    layout=st.tuples(sheet_names, st.booleans(), st.tuples(st.integers(1, 4), st.integers(1, 4))),
    options=input_settings,
)
def test_random_workbooks_give_issues_or_input_errors_only(
    instances: list[list[Any]],
    profiles: list[list[Any]] | None,
    layout: tuple[str, bool, tuple[int, int]],
    options: InputSettings,
) -> None:
    """``layout``: the sheet's name, formulas kept live or as text, the first cell."""
    sheet, formulas, origin = layout
    sheets = {sheet: instances}
    if profiles is not None:
        sheets["profiles"] = profiles
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.xlsx"
        _write_xlsx(path, sheets, formulas, origin)
        check_all_the_way(path, None, options)


csv_format = st.tuples(
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]),
)


@FUZZ
@given(
    instances=tables(INSTANCE_CELLS, always=4),
    profiles=st.one_of(st.none(), tables(PROFILE_CELLS, always=2, max_rows=3)),
    fmt=csv_format,
    options=input_settings,
)
def test_random_csv_files_give_issues_or_input_errors_only(
    instances: list[list[Any]],
    profiles: list[list[Any]] | None,
    fmt: tuple[str, str, str],
    options: InputSettings,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        _write_csv(path, instances, *fmt)
        extra = None
        if profiles is not None:
            extra = Path(folder) / "profiles.csv"
            _write_csv(extra, profiles, *fmt)
        check_all_the_way(path, extra, options)


@FUZZ
@given(data=st.binary(max_size=2_000), suffix=st.sampled_from([".csv", ".xlsx", ".txt"]))
def test_random_bytes_give_input_errors_or_issues_only(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"noise{suffix}"
        path.write_bytes(data)
        check_all_the_way(path, None, InputSettings(project_id=PROJECT, region="cn-north-4"))
