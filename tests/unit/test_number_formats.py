"""The number format of each input column, read from the workbook's XML for the report."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import openpyxl

from bulkscan.input.loader import load_input

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeRawXlsx

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
HEADER = ["ins_id", "db_type", "since", "share", "cost", "note", "late"]
CNY = '#,##0.00 "CNY"'


def _formatted(path: Path) -> Path:
    """Dates (built-in 14), percents (built-in 9) and a custom currency; ``note`` plain;
    ``late`` has its first value (formatted) below the rows where formats are looked for."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "instances"
    ws.append(HEADER)
    for n in range(2, 62):
        ws.append([f"ins-{n}", "MySQL", dt.datetime(2024, 5, 1), 0.25, 1234.5, "x"])
    ws["G61"] = 7
    ws["G61"].number_format = "0.0"
    for cell in ws["C"][1:]:
        cell.number_format = "mm-dd-yy"  # built-in 14: openpyxl writes numFmtId, no numFmt
    ws["D2"].number_format = "0%"  # built-in 9
    ws["E2"] = None  # a blank first cell with a format of its own...
    ws["E2"].number_format = "0.000"
    ws["E3"].number_format = CNY  # ...then the first value, whose format is the column's
    wb.save(path)
    return path


def test_each_column_takes_the_format_of_its_first_value(tmp_path: Path) -> None:
    sheet = load_input(_formatted(tmp_path / "dbs.xlsx")).instances
    assert sheet.formats == {"since": "mm-dd-yy", "share": "0%", "cost": CNY}
    assert sheet.rows[0].values["since"] == dt.datetime(2024, 5, 1)  # values as before
    assert sheet.rows[0].values["share"] == 0.25 and "cost" not in sheet.rows[0].values


def _styles(*xfs: str, custom: str = "") -> bytes:
    cells = "".join(f'<xf numFmtId="{x}"/>' for x in xfs)
    return (
        f'<styleSheet xmlns="{MAIN_NS}"><numFmts>{custom}</numFmts>'
        f"<cellXfs>{cells}</cellXfs></styleSheet>"
    ).encode()


def _raw_sheet(styles: tuple[str, str, str]) -> str:
    a, b, c = styles
    return (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ins_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>db_type</t></is></c>'
        '<c r="C1" t="inlineStr"><is><t>Share</t></is></c>'
        '<c r="D1" t="inlineStr"><is><t>Cost</t></is></c></row>'
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>i1</t></is></c>'
        f'<c r="B2" t="inlineStr"><is><t>MySQL</t></is></c>'
        f'<c r="C2" s="{a}"/><c r="D2" s="{b}"><v>1.5</v></c></row>'
        f'<row r="3"><c r="A3" t="inlineStr"><is><t>i2</t></is></c>'
        f'<c r="B3" t="inlineStr"><is><t>MySQL</t></is></c>'
        f'<c r="C3" s="{c}"><v>0.5</v></c></row>'
    )


def test_built_in_and_custom_formats_by_style_index(make_raw_xlsx: MakeRawXlsx) -> None:
    custom = '<numFmt numFmtId="164" formatCode="0.0 &quot;t&quot;"/>'
    styles = _styles("0", "10", "164", custom=custom)
    path = make_raw_xlsx(
        {"instances": _raw_sheet(("2", "2", "1"))}, extra={"xl/styles.xml": styles}
    )
    # C2 is blank: C3's built-in 10 (0.00%) is the column's; D2's custom 164
    assert load_input(path).instances.formats == {"Share": "0.00%", "Cost": '0.0 "t"'}


def test_general_and_unknown_formats_are_left_out(make_raw_xlsx: MakeRawXlsx) -> None:
    path = make_raw_xlsx(
        {"instances": _raw_sheet(("0", "0", "1"))}, extra={"xl/styles.xml": _styles("0", "199")}
    )
    assert load_input(path).instances.formats == {}


def test_a_workbook_without_styles_has_no_formats(make_raw_xlsx: MakeRawXlsx) -> None:
    book = load_input(make_raw_xlsx({"instances": _raw_sheet(("1", "2", "3"))}))
    assert book.instances.formats == {}
    assert [row.values.get("Share") for row in book.instances.rows] == [None, 0.5]


def test_csv_input_has_no_formats(tmp_path: Path) -> None:
    path = tmp_path / "dbs.csv"
    path.write_text("ins_id,db_type,since\ni1,MySQL,2024-05-01\n", encoding="utf-8")
    assert load_input(path).instances.formats == {}
