"""The shared workbook helpers: inert text, clean values, real dates, styled streaming tables."""

from __future__ import annotations

import datetime as dt
import zipfile
from typing import TYPE_CHECKING

import openpyxl
import pytest

from bulkscan.input.loader import load_input
from bulkscan.report import cells as xlsx

if TYPE_CHECKING:
    from pathlib import Path

RISKY = [
    '=HYPERLINK("http://x","y")',
    "=1+2",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
    "#N/A",
    "=",
]
PLAIN = ["ins-1", "MySQL", " =not at the start", "a=b", "", "x" * 50]


def _save(tmp_path: Path, headers: list[str], rows: list[list[object]], **kw: object) -> Path:
    wb = xlsx.new_workbook()
    xlsx.write_table(wb, "T", headers, rows, **kw)  # type: ignore[arg-type]
    return xlsx.save_workbook(wb, tmp_path / "t.xlsx")


@pytest.mark.parametrize("text", RISKY)
def test_risky_text_is_detected(text: str) -> None:
    assert xlsx.is_risky(text)


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_not_risky(text: str) -> None:
    assert not xlsx.is_risky(text)


def test_risky_text_reads_back_as_the_same_inert_text(tmp_path: Path) -> None:
    path = _save(tmp_path, ["value"], [[t] for t in RISKY + PLAIN[:4]])
    ws = openpyxl.load_workbook(path)["T"]
    for row, text in enumerate(RISKY + PLAIN[:4], start=2):
        cell = ws.cell(row=row, column=1)
        assert cell.data_type == "s", text
        assert cell.value == text.replace("\r", "\n")  # XML keeps no bare CR
        assert cell.quotePrefix == (text in RISKY and not text.startswith("\r"))
    with zipfile.ZipFile(path) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    assert 't="e"' not in sheet_xml


def test_the_loader_reads_inert_text_back_as_text(tmp_path: Path) -> None:
    wb = xlsx.new_workbook()
    xlsx.write_table(wb, "instances", ["ins_id", "db_type"], [[t, "MySQL"] for t in RISKY[:5]])
    path = xlsx.save_workbook(wb, tmp_path / "in.xlsx")
    book = load_input(path)
    assert [r.values["ins_id"] for r in book.instances.rows] == [t.strip() for t in RISKY[:5]]


def test_illegal_characters_are_dropped_and_long_text_is_cut() -> None:
    assert xlsx.clean_text("a\x00b\x07c\x1fd\te\nf\rg\r\nh") == "abcd\te\nf\ng\nh"
    long = xlsx.clean_text("y" * 40_000)
    assert len(long) == xlsx.MAX_CELL_CHARS
    assert long.endswith("[cut]")


def test_values_become_what_excel_can_hold() -> None:
    aware = dt.datetime(2024, 6, 1, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert xlsx.cell_value(aware) == dt.datetime(2024, 6, 1, 12, 0)
    naive = dt.datetime(2024, 6, 1, 20, 0)
    assert xlsx.cell_value(naive) is naive
    assert xlsx.cell_value(float("nan")) == "nan"
    assert xlsx.cell_value(["a", 1]) == '["a", 1]'
    assert xlsx.cell_value(True) is True
    assert xlsx.cell_value(None) is None
    assert xlsx.redact_url("https://user:pw@host.example/x") == "https://***@host.example/x"


def test_table_layout_dates_and_colours(tmp_path: Path) -> None:
    when = dt.datetime(2024, 6, 1, 12, 0, 5, 250_000, tzinfo=dt.UTC)
    rows: list[list[object]] = [
        ["created", when, 0.1234, "a\x01b"],
        ["failed", None, 2, "=cmd"],
        ["gave up", dt.date(2024, 1, 2), None, None],
        ["not attempted", None, None, "x"],
        ["something else", None, None, None],
    ]
    path = _save(
        tmp_path,
        ["outcome", "when (UTC)", "latency (s)", "message"],
        rows,
        widths=[20, 22],
        status_column="outcome",
        number_formats={2: "0.000"},
    )
    ws = openpyxl.load_workbook(path)["T"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:D6"
    assert ws.column_dimensions["A"].width == 20
    assert ws.column_dimensions["D"].width > 0
    assert ws["A1"].font.bold
    fills = [ws.cell(row=r, column=1).fill.fgColor.rgb for r in range(2, 7)]
    assert fills[0].endswith("C6EFCE") and fills[1].endswith("FFC7CE")
    assert fills[2].endswith("FFE0B2") and fills[3].endswith("E7E6E6")
    assert ws["A6"].fill.fill_type is None
    assert isinstance(ws["B2"].value, dt.datetime)
    assert abs(ws["B2"].value - dt.datetime(2024, 6, 1, 12, 0, 5, 250_000)) < dt.timedelta(
        milliseconds=1
    )
    assert ws["B2"].is_date and ws["B4"].is_date
    assert ws["C2"].number_format == "0.000"
    assert ws["D2"].value == "ab"
    assert ws["D3"].value == "=cmd" and ws["D3"].data_type == "s"


def test_a_streamed_table_counts_its_rows(tmp_path: Path) -> None:
    wb = xlsx.new_workbook()
    info = xlsx.write_table(wb, "Big", ["n", "text"], ([i, f"row {i}"] for i in range(2500)))
    assert info == xlsx.TableInfo("Big", 2500, "A1:B2501")
    path = xlsx.save_workbook(wb, tmp_path / "big.xlsx")
    wb_read = openpyxl.load_workbook(path, read_only=True)
    values = list(wb_read["Big"].iter_rows(values_only=True))
    wb_read.close()
    assert len(values) == 2501
    assert values[-1] == (2499, "row 2499")


def test_summary_blocks_and_chart(tmp_path: Path) -> None:
    wb = xlsx.new_workbook()
    sheet = xlsx.SummarySheet(wb, "Summary")
    meta = xlsx.workbook_meta(
        sheet, [("run id", "r1"), ("status", "done"), ("note", "=2+2")], heading="Run",
        tones={"done": "good"},
    )  # fmt: skip
    sheet.blank()
    table = xlsx.count_table(
        sheet, ["outcome", "tasks"], [["created", 3], ["failed", 1]], heading="Outcomes"
    )
    xlsx.bar_chart(sheet, table, title="Tasks by outcome")
    path = xlsx.save_workbook(wb, tmp_path / "s.xlsx")
    assert meta == xlsx.Block(2, 4)
    assert table == xlsx.Block(8, 9, 7)
    ws = openpyxl.load_workbook(path)["Summary"]
    assert ws["A1"].value == "Run" and ws["A1"].font.bold
    assert ws["B2"].value == "r1" and ws["A2"].font.bold
    assert ws["B3"].fill.fgColor.rgb.endswith("C6EFCE")
    assert ws["B4"].value == "=2+2" and ws["B4"].data_type == "s"
    assert [ws["A8"].value, ws["B8"].value, ws["A9"].value, ws["B9"].value] == [
        "created", 3, "failed", 1,
    ]  # fmt: skip
    assert ws["A8"].fill.fgColor.rgb.endswith("C6EFCE")
    assert len(ws._charts) == 1


def test_save_is_atomic_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out.xlsx"
    target.write_bytes(b"old")
    wb = xlsx.new_workbook()
    xlsx.write_table(wb, "T", ["a"], [[1]])
    xlsx.save_workbook(wb, target)
    assert openpyxl.load_workbook(target)["T"]["A2"].value == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.xlsx"]
