"""The template workbook: headers, help, drop-downs, example rows, README; it loads back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import openpyxl
import pytest

from bulkscan.errors import UsageError
from bulkscan.input import schema
from bulkscan.input.loader import load_input
from bulkscan.input.schema import EXAMPLE_INSTANCE, EXAMPLE_PROFILE
from bulkscan.input.template import _list_formula, write_template
from bulkscan.runner import check

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "template.xlsx"
    write_template(path)
    return path


def test_template_loads_back_with_its_example_rows(template: Path):
    book = load_input(template)
    assert book.instances.columns == tuple(c.name for c in schema.INSTANCE_COLUMNS)
    assert book.profiles is not None
    assert book.profiles.columns == tuple(c.name for c in schema.PROFILE_COLUMNS)
    assert [r.ref.row for r in book.instances.rows] == [2]
    assert book.instances.rows[0].values == EXAMPLE_INSTANCE
    assert book.profiles.rows[0].values == EXAMPLE_PROFILE


def test_template_example_rows_are_errors_naming_their_rows(template: Path):
    issues = check(template).issues
    assert [
        (i.severity, i.ref.sheet if i.ref else None, i.ref.row if i.ref else None) for i in issues
    ] == [
        ("error", "instances", 2),
        ("error", "profiles", 2),
    ]
    assert all("example row still present" in str(i) for i in issues)
    assert [i.column for i in issues] == ["ins_id", "task_description"]


def test_template_validates_once_its_example_rows_are_replaced(template: Path):
    workbook = openpyxl.load_workbook(template)
    workbook["instances"]["A2"] = "4e1a2b3c4d5e6f708192a3b4c5d6e7f8in01"
    workbook["profiles"]["N2"] = "Nightly metadata scan"
    assert workbook["instances"]["A1"].value == "ins_id"
    assert workbook["profiles"]["N1"].value == "task_description"
    workbook.save(template)
    assert check(template).issues == ()


def test_template_readme_says_to_delete_the_example_rows(template: Path):
    readme = openpyxl.load_workbook(template)["README"]
    text = " ".join(str(c.value) for row in readme.iter_rows() for c in row if c.value)
    assert "Delete the example row" in text
    assert "example row still present" in text


def test_template_readme_says_which_zone_a_zone_less_start_time_is_read_in(template: Path):
    readme = openpyxl.load_workbook(template)["README"]
    text = " ".join(str(c.value) for row in readme.iter_rows() for c in row if c.value)
    assert "without an offset" in text and "timezone column" in text
    assert "--timezone" in text and "local zone" in text


def test_headers_are_bold_frozen_and_explained(template: Path):
    workbook = openpyxl.load_workbook(template)
    for title, columns in (
        ("instances", schema.INSTANCE_COLUMNS),
        ("profiles", schema.PROFILE_COLUMNS),
    ):
        sheet = workbook[title]
        assert sheet.freeze_panes == "A2"
        for cell, column in zip(sheet[1], columns, strict=True):
            assert cell.value == column.name
            assert cell.font.bold
            assert cell.comment is not None
            assert column.help in cell.comment.text
            assert ("Required." in cell.comment.text) == column.required
            for alias in column.aliases:
                assert alias in cell.comment.text
            assert sheet.column_dimensions[cell.column_letter].width >= 12


def _validations(sheet: openpyxl.worksheet.worksheet.Worksheet) -> dict[str, str]:
    """Header of the validated column → list formula."""
    headers = {cell.column_letter: cell.value for cell in sheet[1]}
    found: dict[str, str] = {}
    for validation in sheet.data_validations.dataValidation:
        assert validation.type == "list"
        first = str(validation.sqref).split(":")[0]
        assert first[1:] == "2", "drop-downs start under the header"
        found[headers[first[0]]] = validation.formula1
    return found


def test_drop_down_lists(template: Path):
    workbook = openpyxl.load_workbook(template)
    instances = _validations(workbook["instances"])
    assert set(instances) == {"db_type", "region", "enabled"}
    assert instances["db_type"] == '"' + ",".join(schema.known_db_types()) + '"'
    assert instances["region"] == '"' + ",".join(schema.REGIONS) + '"'
    assert instances["enabled"] == '"TRUE,FALSE"'
    profiles = _validations(workbook["profiles"])
    assert profiles["schedule_type"] == '"ONCE,DAY,WEEK,MONTH"'
    booleans = {name for name, formula in profiles.items() if formula == '"TRUE,FALSE"'}
    assert booleans == {
        "start_now",
        "schedule_switch",
        "delete_failed_meta",
        *(c.name for c in schema.PROFILE_COLUMNS if c.name.startswith("scan_")),
    }
    strict = {
        v.formula1: v.errorStyle for v in workbook["profiles"].data_validations.dataValidation
    }
    assert strict['"ONCE,DAY,WEEK,MONTH"'] == "stop"
    assert "lists" not in workbook.sheetnames  # every list fits inline today


def test_long_lists_go_to_the_hidden_lists_sheet():
    workbook = openpyxl.Workbook()
    lists = workbook.create_sheet("lists")
    names = tuple(f"DatabaseType{n:02}" for n in range(30))  # 15 chars each: over 255 inline
    assert _list_formula(names, lists) == "lists!$A$1:$A$30"
    assert _list_formula(("x" * 300,), lists) == "lists!$B$1:$B$1"
    assert [lists.cell(row=r, column=1).value for r in (1, 30)] == [names[0], names[-1]]
    assert _list_formula(("a", "b"), lists) == '"a,b"'


def test_readme_explains_the_sheets(template: Path):
    workbook = openpyxl.load_workbook(template)
    assert workbook.sheetnames[:3] == ["instances", "profiles", "README"]
    assert workbook.active.title == "instances"
    text = "\n".join(
        str(cell.value) for row in workbook["README"].iter_rows() for cell in row if cell.value
    )
    assert "bulkscan validate" in text
    for column in (*schema.INSTANCE_COLUMNS, *schema.PROFILE_COLUMNS):
        assert column.help in text
    assert "built-in 'default' profile" in text


def test_unwritable_path_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot write the template"):
        write_template(tmp_path / "missing-folder" / "template.xlsx")
