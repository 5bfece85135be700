"""``bulkscan validate FILE --report``: the errors workbook, written for real and read back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest

from bulkscan.cli import main
from bulkscan.report.errors import ISSUE_HEADERS

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeXlsx

P1 = "0123456789abcdef0123456789abcdef"
HEADERS = ["Instance ID", "DB Type", "project_id", "region", "owner"]
ROWS = [
    ["ins-a", "MySQL", P1, "cn-north-4", "alice"],
    ["ins-b", "mysq", P1, "cn-north-4", "@SUM(1+1)"],  # 3: an error, inert owner
    ["ins-c", "MySQL", "abc", "cn-nort-4", "carol"],  # 4: an error and a warning
    ["ins-d", "MySQL", P1, "cn-north-4", "dave"],
]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(ws: Any) -> list[dict[str, Any]]:
    lines = list(ws.iter_rows(values_only=True))
    return [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]


@pytest.fixture
def inventory(make_xlsx: MakeXlsx) -> Path:
    return make_xlsx({"instances": [HEADERS, *ROWS]}, name="my dbs.xlsx")


def test_the_errors_workbook_holds_every_row_with_its_problems_beside_it(
    capsys: pytest.CaptureFixture[str], inventory: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    code, out, _ = _cli(capsys, "validate", inventory, "--report", "--reports-dir", reports)
    assert code == 2
    path = reports / "my_dbs-errors.xlsx"  # <stem>-errors.xlsx in the reports directory
    assert f"errors workbook: {path}" in out
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["instances rows", "README"]
    ws = wb["instances rows"]
    assert [c.value for c in ws[1]] == [*ISSUE_HEADERS, *HEADERS]
    lines = _rows(ws)
    # the input's order; a row with two problems twice, one line each; clean rows "ok"
    assert [line["row"] for line in lines] == [2, 3, 4, 4, 5]
    assert [line["severity"] for line in lines] == ["ok", "error", "error", "warning", "ok"]
    assert (lines[1]["column"], lines[1]["value"]) == ("DB Type", "mysq")
    assert "not a known database type" in lines[1]["problem"]
    assert {lines[2]["column"], lines[3]["column"]} == {"project_id", "region"}
    assert [line["Instance ID"] for line in lines] == ["ins-a", "ins-b", "ins-c", "ins-c", "ins-d"]
    owner = ws.cell(3, len(ISSUE_HEADERS) + HEADERS.index("owner") + 1)
    assert owner.value == "@SUM(1+1)" and owner.data_type == "s"  # inert, not a formula
    assert ws["B3"].fill.fgColor.rgb.endswith("FFC7CE")  # errors in red
    assert ws.freeze_panes == "C2" and ws.print_title_rows == "$1:$1"
    readme = [str(r[0]) for r in wb["README"].iter_rows(values_only=True) if r[0]]
    assert "2 error(s) in 2 row(s), 1 warning(s)." in readme
    assert f"Then check again: bulkscan validate '{inventory}' --report" in readme


def test_a_named_report_file_and_the_json_summary(
    capsys: pytest.CaptureFixture[str], make_xlsx: MakeXlsx, tmp_path: Path
) -> None:
    clean = make_xlsx({"instances": [HEADERS, ROWS[0], ROWS[3]]})
    target = tmp_path / "out" / "checked.xlsx"
    code, out, _ = _cli(capsys, "validate", clean, "--report", target, "--json")
    assert code == 0
    assert json.loads(out)["report"] == str(target)
    wb = openpyxl.load_workbook(target)
    assert [line["severity"] for line in _rows(wb["instances rows"])] == ["ok", "ok"]
    readme = [str(r[0]) for r in wb["README"].iter_rows(values_only=True) if r[0]]
    assert "No problem found: every row is marked ok." in readme


def test_profile_problems_go_to_their_own_sheet(
    capsys: pytest.CaptureFixture[str], make_xlsx: MakeXlsx, tmp_path: Path
) -> None:
    book = make_xlsx(
        {
            "instances": [[*HEADERS, "profile"], [*ROWS[0], "nightly"]],
            "profiles": [["profile", "schedule_type"], ["nightly", "HOURLY"]],
        }
    )
    target = tmp_path / "errors.xlsx"
    code, _, _ = _cli(capsys, "validate", book, "--report", target)
    assert code == 2
    wb = openpyxl.load_workbook(target)
    assert wb.sheetnames == ["instances rows", "profiles rows", "README"]
    (line,) = _rows(wb["profiles rows"])
    assert (line["row"], line["severity"], line["column"]) == (2, "error", "schedule_type")
    assert line["profile"] == "nightly"


def test_without_report_no_workbook_is_written(
    capsys: pytest.CaptureFixture[str], inventory: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _cli(capsys, "validate", inventory)
    assert code == 2 and "errors workbook" not in out
    assert not (tmp_path / "reports").exists()
