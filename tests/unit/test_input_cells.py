"""Cells and lines that would silently change what is sent are reported, naming the cell.

Real workbooks written by openpyxl, raw sheet XML for what openpyxl cannot write (formulas
saved without a value, error cells), and real CSV bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import openpyxl
import pytest

from bulkscan.config import InputSettings
from bulkscan.errors import InputError, UsageError
from bulkscan.input.loader import load_input
from bulkscan.runner import check

if TYPE_CHECKING:
    from pathlib import Path

    from bulkscan.models import Issue
    from tests.conftest import MakeRawXlsx, MakeXlsx

PROJECT = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
SETTINGS = InputSettings(project_id=PROJECT, region="cn-north-4")
HEADER = ("ins_id", "db_type", "project_id", "enabled")


def _issues(path: Path, **settings: object) -> list[Issue]:
    if settings:
        return list(check(path, settings=InputSettings(**settings)).issues)  # type: ignore[arg-type]
    return list(check(path, settings=SETTINGS).issues)


def _errors(path: Path) -> list[str]:
    return [str(i) for i in _issues(path) if i.severity == "error"]


def _warnings(path: Path) -> list[str]:
    return [str(i) for i in _issues(path) if i.severity == "warning"]


def _text(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def _header() -> str:
    cells = "".join(_text(f"{col}1", name) for col, name in zip("ABCD", HEADER, strict=False))
    return f'<row r="1">{cells}</row>'


def _row(number: int, *cells: str) -> str:
    return f'<row r="{number}">{"".join(cells)}</row>'


def _plain(number: int, ins_id: str) -> str:
    return _row(number, _text(f"A{number}", ins_id), _text(f"B{number}", "MySQL"))


# --------------------------------------------------------------------------- item 5


def test_project_id_formula_without_a_saved_value_is_an_error(make_raw_xlsx: MakeRawXlsx):
    body = _header() + _row(
        2, _text("A2", "i1"), _text("B2", "MySQL"), '<c r="C2"><f>CONCAT("a","b")</f></c>'
    )
    path = make_raw_xlsx({"instances": body})
    errors = _errors(path)
    assert len(errors) == 1
    assert "row 2, column 'project_id': cell C2 holds a formula without a saved value" in errors[0]
    assert "open and save the workbook in Excel" in errors[0]
    assert check(path, settings=SETTINGS).has_errors


@pytest.mark.parametrize("error", ["#VALUE!", "#REF!", "#N/A", "#DIV/0!"])
def test_project_id_error_value_is_an_error(make_raw_xlsx: MakeRawXlsx, error: str):
    cell = f'<c r="C2" t="e"><f>A1+1</f><v>{error}</v></c>'
    body = _header() + _row(2, _text("A2", "i1"), _text("B2", "MySQL"), cell)
    errors = _errors(make_raw_xlsx({"instances": body}))
    assert len(errors) == 1
    assert f"row 2, column 'project_id': cell C2 holds the error value {error}" in errors[0]


@pytest.mark.parametrize(
    "cell",
    [
        '<c r="D2" t="b"><f>FALSE()</f></c>',
        '<c r="D2" t="b"><f>FALSE()</f><v></v></c>',
        '<c r="D2" t="e"><v>#REF!</v></c>',
    ],
)
def test_enabled_that_reads_blank_is_an_error_not_a_row_sent(make_raw_xlsx: MakeRawXlsx, cell: str):
    body = _header() + _row(2, _text("A2", "i1"), _text("B2", "MySQL"), cell)
    path = make_raw_xlsx({"instances": body})
    checked = check(path, settings=SETTINGS)
    assert checked.has_errors
    (error,) = [str(i) for i in checked.issues if i.severity == "error"]
    assert "row 2, column 'enabled': cell D2 holds" in error


def test_formula_with_its_saved_value_reads_as_the_value(make_raw_xlsx: MakeRawXlsx):
    body = _header() + _row(
        2,
        _text("A2", "i1"),
        _text("B2", "MySQL"),
        f'<c r="C2" t="str"><f>LOWER("{OTHER.upper()}")</f><v>{OTHER}</v></c>',
        '<c r="D2" t="b"><f>TRUE()</f><v>1</v></c>',
    )
    checked = check(make_raw_xlsx({"instances": body}), settings=SETTINGS)
    assert checked.issues == ()
    assert [i.project_id for i in checked.validated.instances] == [OTHER]


def test_project_id_merged_down_several_rows_is_an_error(make_xlsx: MakeXlsx):
    rows = [HEADER, ("i1", "MySQL", OTHER), ("i2", "MySQL"), ("i3", "MySQL"), ("i4", "MySQL")]
    path = make_xlsx({"instances": rows})
    book = openpyxl.load_workbook(path)
    book["instances"].merge_cells("C2:C4")
    book.save(path)
    errors = _errors(path)
    assert len(errors) == 1
    assert (
        "row 2, column 'project_id': cells C2:C4 are merged: only C2 holds the value" in errors[0]
    )
    assert "unmerge" in errors[0]


def test_merged_cells_over_no_data_are_fine(make_xlsx: MakeXlsx):
    path = make_xlsx({"instances": [HEADER, ("i1", "MySQL")]})
    book = openpyxl.load_workbook(path)
    book["instances"].merge_cells("A10:D12")  # a note area below the data, left empty
    book.save(path)
    assert _issues(path) == []


# --------------------------------------------------------------------------- item 6


def test_a_row_made_of_formulas_without_values_is_an_error_not_dropped(
    make_raw_xlsx: MakeRawXlsx,
):
    body = (
        _header()
        + _plain(2, "i1")
        + _row(3, '<c r="A3"><f>Other!A3</f></c>', '<c r="B3"><f>Other!B3</f></c>')
        + _plain(4, "i3")
    )
    path = make_raw_xlsx({"instances": body})
    checked = check(path, settings=SETTINGS)
    assert [i.ref.row for i in checked.validated.instances] == [2, 4]
    errors = [str(i) for i in checked.issues if i.severity == "error"]
    assert len(errors) == 2
    assert all("row 3" in e and "formula without a saved value" in e for e in errors)
    assert "cell A3" in errors[0]
    assert "cell B3" in errors[1]


def test_an_unclosed_quote_in_a_csv_is_an_error_naming_its_line(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_bytes(b'ins_id,db_type\ni1,MySQL\n"i2,MySQL\ni3,MySQL\ni4,MySQL\n')
    with pytest.raises(InputError) as raised:
        load_input(path)
    message = str(raised.value)
    assert "line 3: a quoted value opens there and is never closed" in message
    assert "lines 3-5" in message


def test_a_closed_quoted_value_over_several_lines_is_fine(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_bytes(b'ins_id,db_type,notes\ni1,MySQL,"two\nlines"\n')
    book = load_input(path)
    assert [r.values["notes"] for r in book.instances.rows] == ["two\nlines"]
    assert book.instances.issues == ()


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize("serial", [45717, 45717.0833])
def test_an_excel_date_serial_as_start_time_is_an_error(make_xlsx: MakeXlsx, serial: float):
    path = make_xlsx(
        {
            "instances": [("ins_id", "db_type", "profile"), ("i1", "MySQL", "p")],
            "profiles": [("profile", "start_time"), ("p", serial)],
        }
    )
    (error,) = _errors(path)
    assert "sheet 'profiles', row 2, column 'start_time'" in error
    assert "looks like an Excel date (2025-03-01" in error


def test_an_excel_date_serial_in_csv_text_is_an_error(tmp_path: Path):
    instances = tmp_path / "dbs.csv"
    instances.write_text("ins_id,db_type,profile\ni1,MySQL,p\n")
    profiles = tmp_path / "profiles.csv"
    profiles.write_text("profile,start_time\np,45717\n")
    checked = check(instances, profiles_path=profiles, settings=SETTINGS)
    (error,) = [str(i) for i in checked.issues]
    assert "line" not in error or "row 2" in error
    assert "looks like an Excel date (2025-03-01)" in error


def test_a_windows_1252_csv_read_as_gbk_says_so_and_offers_encoding(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_bytes("ins_id,db_type\nbase-\xe9t\xe9a,MySQL\n".encode("cp1252"))
    warnings = _warnings(path)
    assert len(warnings) == 1
    assert "not UTF-8 and was read as GB18030 (GBK), a guess" in warnings[0]
    assert "line 2 reads 'base-閠閍,MySQL'" in warnings[0]
    assert "--encoding" in warnings[0]
    book = load_input(path, encoding="cp1252")
    assert book.instances.rows[0].values["ins_id"] == "base-étéa"
    assert book.instances.issues == ()
    settings = InputSettings(project_id=PROJECT, region="cn-north-4", encoding="cp1252")
    checked = check(path, settings=settings)
    assert checked.issues == ()
    assert [i.ins_id for i in checked.validated.instances] == ["base-étéa"]


def test_a_named_encoding_that_does_not_fit_is_an_error_naming_the_line(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_bytes("ins_id,db_type\nbase-\xe9t\xe9a,MySQL\n".encode("cp1252"))
    with pytest.raises(InputError, match=r"is not utf-8 text \(byte 0xe9 on line 2"):
        load_input(path, encoding="utf-8")


@pytest.mark.parametrize("name", ["no-such-codec", "base64", "rot13"])
def test_an_unknown_or_binary_encoding_is_a_usage_error(name: str):
    with pytest.raises(UsageError, match="not a known text encoding"):
        InputSettings(encoding=name)


@pytest.mark.parametrize(
    ("ins_id", "said"),
    [
        ("ins\x07tance", "control character (U+0007"),
        ("\x1b[31mins1\x1b[0m", "escape sequence (U+001B"),
        ("ins\u200b1", "invisible character (U+200B zero width space)"),
        ("ins\u202e1ni", "invisible character (U+202E right-to-left override)"),
        ("\u200fins1", "invisible character (U+200F right-to-left mark)"),
        ("ins\ufeff1", "invisible character (U+FEFF"),
        ("line\u2028sep", "invisible character (U+2028 line separator)"),
        ("tab\tin", "control character (U+0009"),
    ],
)
def test_unseen_characters_in_ins_id_are_errors(tmp_path: Path, ins_id: str, said: str):
    path = tmp_path / "dbs.csv"
    path.write_text(f"ins_id,db_type\n{ins_id},MySQL\nplain,MySQL\n", encoding="utf-8")
    checked = check(path, settings=SETTINGS)
    (error,) = [str(i) for i in checked.issues]
    assert "row 2, column 'ins_id'" in error
    assert said in error
    assert [i.ins_id for i in checked.validated.instances] == ["plain"]


def test_unseen_characters_in_an_xlsx_cell_are_errors_too(make_xlsx: MakeXlsx):
    rows = [HEADER, ("ins\u200b1", "MySQL"), ("ins\u200b1", "MySQL")]  # the second: memo path
    errors = _errors(make_xlsx({"instances": rows}))
    assert len(errors) == 2
    assert all("U+200B" in e for e in errors)


def test_unseen_characters_in_db_type_task_and_description_are_errors(tmp_path: Path):
    instances = tmp_path / "dbs.csv"
    instances.write_text(
        "ins_id,db_type,task,profile\ni1,My\u200bDB,t,p\ni2,MySQL,t\u202e,p\n", encoding="utf-8"
    )
    profiles = tmp_path / "profiles.csv"
    profiles.write_text('profile,task_description\np,"two\nlines\x1b[0m"\n', encoding="utf-8")
    checked = check(instances, profiles_path=profiles, settings=SETTINGS)
    where = sorted((i.ref.sheet, i.ref.row, i.column) for i in checked.issues if i.ref)
    assert where == [
        ("instances", 2, "db_type"),
        ("instances", 3, "task"),
        ("profiles", 2, "task_description"),
    ]
    assert all(i.severity == "error" for i in checked.issues)


def test_a_description_over_several_lines_is_fine_and_sent_as_written(tmp_path: Path):
    import json

    from bulkscan.plan import build_plan, serialise_body

    instances = tmp_path / "dbs.csv"
    instances.write_text("ins_id,db_type,profile\ni1\u00a0x,MySQL,p\n")
    profiles = tmp_path / "profiles.csv"
    profiles.write_text('profile,task_description\np,"two\nlines\twith a tab"\n')
    checked = check(instances, profiles_path=profiles, settings=SETTINGS)
    assert checked.issues == ()  # a no-break space shows as a space: not refused
    (task,) = build_plan(checked.validated).tasks
    body = json.loads(task.body_bytes)
    assert body["task_description"] == "two\nlines\twith a tab"
    assert task.body_bytes == serialise_body(body)


def test_a_ten_thousand_character_ins_id_is_an_error(make_xlsx: MakeXlsx):
    path = make_xlsx({"instances": [HEADER, ("x" * 10_000, "MySQL"), ("x" * 128, "MySQL")]})
    (error,) = _errors(path)
    assert "row 2, column 'ins_id': ins_id is 10,000 characters long" in error


def test_a_number_shown_with_leading_zeros_is_an_error(make_xlsx: MakeXlsx):
    path = make_xlsx({"instances": [(*HEADER, "cost centre"), (123, "MySQL", None, None, 7)]})
    book = openpyxl.load_workbook(path)
    book["instances"]["A2"].number_format = "00000"
    book["instances"]["E2"].number_format = "000"
    book.save(path)
    issues = _issues(path)
    shown = [(i.severity, i.column, i.message) for i in issues if "shows" in i.message]
    assert shown == [
        (
            "error",
            "ins_id",
            "cell A2 shows '00123' but holds the number 123, which is what is read",
        ),
        (
            "warning",
            "cost centre",
            "cell E2 shows '007' but holds the number 7, which is what is read",
        ),
    ]


def test_a_zero_padding_format_that_changes_nothing_is_fine(make_xlsx: MakeXlsx):
    path = make_xlsx({"instances": [HEADER, (12345, "MySQL")]})
    book = openpyxl.load_workbook(path)
    book["instances"]["A2"].number_format = "00000"
    book.save(path)
    assert not [i for i in _issues(path) if "shows" in i.message]


def test_hidden_rows_are_read_with_a_warning(make_xlsx: MakeXlsx):
    rows = [HEADER, *((f"i{n}", "MySQL") for n in range(1, 9))]
    path = make_xlsx({"instances": rows})
    book = openpyxl.load_workbook(path)
    for number in (3, 4, 5, 6, 7, 8):
        book["instances"].row_dimensions[number].hidden = True
    book["instances"].row_dimensions[20].hidden = True  # no data there: not mentioned
    book.save(path)
    checked = check(path, settings=SETTINGS)
    assert len(checked.validated.instances) == 8
    (warning,) = [str(i) for i in checked.issues]
    assert (
        "sheet 'instances': 6 hidden row(s) are read like any other (rows 3, 4, 5, 6, 7, ...)"
        in (warning)
    )


def test_hidden_columns_holding_data_are_read_with_a_warning(make_xlsx: MakeXlsx):
    path = make_xlsx({"instances": [HEADER, ("i1", "MySQL", OTHER)]})
    book = openpyxl.load_workbook(path)
    book["instances"].column_dimensions["C"].hidden = True
    book.save(path)
    (warning,) = _warnings(path)
    assert "hidden column(s) 'project_id' are read like any other" in warning


def test_a_hidden_instances_sheet_is_read_with_a_warning(make_xlsx: MakeXlsx):
    path = make_xlsx({"cover": [("see the other sheet",)], "instances": [HEADER, ("i1", "MySQL")]})
    book = openpyxl.load_workbook(path)
    book["instances"].sheet_state = "hidden"
    book.save(path)
    (warning,) = _warnings(path)
    assert "sheet 'instances': the sheet is hidden in Excel" in warning


def test_csv_fields_beyond_the_header_are_a_warning(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_text("ins_id,db_type\ni1,MySQL,x\ni2,MySQL,,\ni3,MySQL\n")
    (warning,) = _warnings(path)
    assert "1 line(s) have more fields than the header's 2 (lines 2)" in warning
    assert "double quotes" in warning


def test_an_ordinary_workbook_has_no_cell_issues(make_xlsx: MakeXlsx):
    path = make_xlsx({"instances": [HEADER, ("i1", "MySQL", OTHER, True), ("i2", "MySQL")]})
    assert _issues(path) == []


# --------------------------------------------------------------------------- the two readers

_STYLES = (
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="00000"/></numFmts>'
    '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs>'
    "</styleSheet>"
)
_MARKED = (
    '<row r="1" hidden="1"><c r="A1" t="inlineStr"><is><t>say t="e" hidden</t></is></c></row>'
    '<row r="2"><c r="A2"><f>X()</f></c><c r="B2" t="e"><f>1/0</f><v>#DIV/0!</v></c>'
    '<c r="C2" s="1"><v>123</v></c><c r="D2" s="1"><v>12345</v></c>'
    '<c r="E2" t="str"><f>Y()</f><v>ok</v></c><c r="F2" t="e"/></row>'
    '<row r="4" hidden="true" s="1" customFormat="1"><c r="A4" s="1" t="s"><v>0</v></c></row>'
    '</sheetData><mergeCells count="2"><mergeCell ref="C5:C9"/><mergeCell ref="A1"/>'
    "</mergeCells><sheetData>"
)


def test_the_fast_reader_finds_what_the_exact_parser_finds(make_raw_xlsx: MakeRawXlsx):
    import zipfile

    from bulkscan.input import _sheetxml as sheetxml

    path = make_raw_xlsx(
        {"instances": _MARKED}, shared=["x"], extra={"xl/styles.xml": _STYLES.encode()}
    )
    with zipfile.ZipFile(path) as archive:
        padded = sheetxml._padded_styles(archive)
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        exact = sheetxml._parse(archive, info, padded)
        needles = (*sheetxml._NEEDLES, b' s="1"')
        fast = sheetxml._fast(archive, info, padded, needles)
    assert padded == {"1": "00000"}
    assert fast == exact
    assert exact.no_value == [(2, 1)]
    assert exact.errors == {(2, 2): "#DIV/0!", (2, 6): "#N/A"}
    assert exact.padded == {(2, 3): "00123"}
    assert exact.hidden_rows == {1, 4}
    assert exact.merged == [((5, 3), (9, 3))]


def test_cells_without_references_are_read_exactly(make_raw_xlsx: MakeRawXlsx):
    body = (
        '<row r="1"><c t="inlineStr"><is><t>ins_id</t></is></c>'
        '<c t="inlineStr"><is><t>db_type</t></is></c>'
        '<c t="inlineStr"><is><t>project_id</t></is></c>'
        '</row><row r="2"><c t="inlineStr"><is><t>i1</t></is></c>'
        '<c t="inlineStr"><is><t>MySQL</t></is></c><c><f>Z()</f></c></row>'
    )
    (error,) = _errors(make_raw_xlsx({"instances": body}))
    assert "row 2, column 'project_id': cell C2 holds a formula without a saved value" in error
