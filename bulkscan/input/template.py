"""The ready-to-fill inventory workbook written by ``bulkscan template``.

Sheets ``instances`` and ``profiles`` carry every column of ``schema`` as a bold, frozen
header with its help as a comment, drop-down lists (data validation) for db_type, region,
schedule_type and the switches, and one example row each; a ``README`` sheet says how to
fill them.  The example rows are marked (the instance's ``ins_id``, the profile's
``task_description``): validation reports them as errors until they are deleted or replaced.
Lists too long for Excel's 255-character inline limit live on a hidden ``lists``
sheet and are referenced by range.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from bulkscan.errors import UsageError
from bulkscan.input import schema

if TYPE_CHECKING:
    from collections.abc import Sequence

    from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["EXAMPLE_INSTANCE", "EXAMPLE_PROFILE", "write_template"]

_INLINE_LIMIT = 255  # Excel refuses an inline list formula longer than this
_LAST_ROW = 5000  # drop-downs cover this many rows under the header
_BOOLEANS = ("TRUE", "FALSE")

EXAMPLE_INSTANCE: dict[str, Any] = {
    "ins_id": "0123456789abcdef0123456789abcdefin01",
    "db_type": "MySQL",
    "project_id": "0123456789abcdef0123456789abcdef",
    "region": "cn-north-4",
    "profile": "nightly",
    "enabled": True,
}
EXAMPLE_PROFILE: dict[str, Any] = {
    "profile": "nightly",
    "schedule_type": "DAY",
    "start_time": "2025-03-01T02:00:00+08:00",
    "timezone": "Asia/Shanghai",
    "start_now": False,
    "schedule_switch": True,
    "delete_failed_meta": False,
    "scan_column_constraints": True,
    "scan_comment": True,
    "scan_privileges": False,
    "scan_system_db": False,
    "scan_tables": True,
    "scan_views": True,
    "task_description": "Example row: delete it, or give the profile a description of yours",
    "task_name": "{profile}-{region}-{digest}",
    "max_sources": 50,
}

_README = (
    "How to fill this workbook",
    "",
    "1. One row per database on the 'instances' sheet: ins_id and db_type are required.",
    "2. project_id and region may be left blank when you run bulkscan with --project-id and "
    "--region (or set HUAWEICLOUD_SDK_PROJECT_ID).",
    "3. profile names a row of the 'profiles' sheet; blank uses the built-in 'default' "
    "profile (see below). Delete the 'profiles' sheet if 'default' is all you need.",
    "4. enabled = FALSE skips a row (it is reported as skipped). Other columns you add "
    "(owner, environment, notes...) are carried to the report untouched.",
    "5. Yes/no cells accept TRUE/FALSE, yes/no, y/n, 1/0 or on/off; blank means the default.",
    "6. start_time takes an Excel date-time, ISO-8601 text (2025-03-01T02:00:00+08:00) or "
    "epoch seconds; blank means 0 (start now). A time written without an offset (02:00) is "
    "read in the profile's timezone column (an IANA name such as Asia/Shanghai), else in the "
    "zone given by --timezone, else in the local zone of the machine that runs bulkscan; an "
    "offset in the cell (+08:00) always wins. bulkscan plan shows every start time with its "
    "offset.",
    "7. Delete the example row of each sheet (row 2), or replace all its values: bulkscan "
    "refuses to send it ('example row still present'). Then check the file: "
    "bulkscan validate FILE.xlsx",
    "8. See what will be created: bulkscan plan FILE.xlsx; create it: bulkscan run FILE.xlsx",
    "",
    "Headers are matched without regard to case, spaces, dots or hyphens; each header's "
    "comment explains the column and lists the other names it may have.",
)


def write_template(path: str | os.PathLike[str]) -> None:
    """Write the template workbook to ``path`` (an existing file is replaced).

    Raises ``UsageError`` when the file cannot be written (missing folder, no permission).
    """
    from openpyxl import Workbook

    book = Workbook()
    instances = book.active
    assert instances is not None
    instances.title = schema.INSTANCES_SHEET
    profiles = book.create_sheet(schema.PROFILES_SHEET)
    readme = book.create_sheet("README")
    lists = book.create_sheet("lists")
    lists.sheet_state = "hidden"
    _fill_sheet(instances, schema.INSTANCE_COLUMNS, EXAMPLE_INSTANCE, lists)
    _fill_sheet(profiles, schema.PROFILE_COLUMNS, EXAMPLE_PROFILE, lists)
    _fill_readme(readme)
    if lists.max_column == 1 and lists["A1"].value is None:
        book.remove(lists)
    book.active = 0
    book.properties.creator = "bulkscan"
    try:
        book.save(os.fspath(path))
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the template ({exc.strerror or exc})") from None


def _fill_sheet(
    sheet: Worksheet,
    columns: Sequence[schema.Column],
    example: dict[str, Any],
    lists: Worksheet,
) -> None:
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill

    bold = Font(bold=True)
    required_fill = PatternFill("solid", fgColor="FFE699")
    optional_fill = PatternFill("solid", fgColor="DDEBF7")
    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=index, value=column.name)
        cell.font = bold
        cell.fill = required_fill if column.required else optional_fill
        cell.comment = Comment(_help_text(column), "bulkscan", width=320, height=140)
        sheet.cell(row=2, column=index, value=example.get(column.name))
        width = max(len(column.name), len(str(example.get(column.name) or ""))) + 4
        sheet.column_dimensions[cell.column_letter].width = min(max(width, 12), 48)
        choices = _choices(column.name)
        if choices is not None:
            _add_drop_down(sheet, cell.column_letter, column.name, choices, lists)
    sheet.freeze_panes = "A2"


def _help_text(column: schema.Column) -> str:
    need = "Required." if column.required else "Optional."
    other = f" Also accepted as: {', '.join(column.aliases)}." if column.aliases else ""
    return f"{column.name}: {column.help} {need}{other}"


def _choices(name: str) -> tuple[tuple[str, ...], bool] | None:
    """(values, strict) for a column with a drop-down; strict refuses other values."""
    if name == "db_type":
        return schema.known_db_types(), False  # other types are allowed, with a warning
    if name == "region":
        return schema.REGIONS, False
    if name == "schedule_type":
        return schema.SCHEDULE_TYPES, True
    if name in schema.BOOLEAN_COLUMNS:
        return _BOOLEANS, False  # yes/no, 1/0... are accepted too
    return None


def _add_drop_down(
    sheet: Worksheet,
    letter: str,
    name: str,
    choices: tuple[tuple[str, ...], bool],
    lists: Worksheet,
) -> None:
    from openpyxl.worksheet.datavalidation import DataValidation

    values, strict = choices
    validation = DataValidation(
        type="list",
        formula1=_list_formula(values, lists),
        allow_blank=True,
        showErrorMessage=True,
        errorStyle="stop" if strict else "warning",
        errorTitle=name,
        error=f"Pick one of the listed values for {name}."
        if strict
        else f"Not in the list: bulkscan will check this {name} value and warn.",
    )
    sheet.add_data_validation(validation)
    validation.add(f"{letter}2:{letter}{_LAST_ROW}")


def _list_formula(values: Sequence[str], lists: Worksheet) -> str:
    """An inline list when it fits Excel's limit, else a range on the hidden lists sheet."""
    inline = ",".join(values)
    if len(inline) + 2 <= _INLINE_LIMIT:
        return f'"{inline}"'
    from openpyxl.utils import get_column_letter

    column = 1 if lists["A1"].value is None else lists.max_column + 1
    for row, value in enumerate(values, start=1):
        lists.cell(row=row, column=column, value=value)
    letter = get_column_letter(column)
    return f"{lists.title}!${letter}$1:${letter}${len(values)}"


def _fill_readme(sheet: Worksheet) -> None:
    from openpyxl.styles import Alignment, Font

    for row, line in enumerate(_README, start=1):
        sheet.cell(row=row, column=1, value=line)
    sheet["A1"].font = Font(bold=True, size=14)
    row = len(_README) + 2
    for title, columns in (
        ("Sheet 'instances'", schema.INSTANCE_COLUMNS),
        ("Sheet 'profiles'", schema.PROFILE_COLUMNS),
    ):
        row = _column_table(sheet, row, title, columns) + 1
    sheet.cell(row=row, column=1, value="The built-in 'default' profile").font = Font(bold=True)
    for offset, (name, value) in enumerate(_default_profile(), start=1):
        sheet.cell(row=row + offset, column=1, value=name)
        sheet.cell(row=row + offset, column=2, value=value)
    sheet.column_dimensions["A"].width = 28
    sheet.column_dimensions["B"].width = 12
    sheet.column_dimensions["C"].width = 80
    sheet.column_dimensions["D"].width = 40
    for line in sheet.iter_rows(min_col=3, max_col=3):
        line[0].alignment = Alignment(wrap_text=True, vertical="top")


def _column_table(sheet: Worksheet, row: int, title: str, columns: Sequence[schema.Column]) -> int:
    """A table (column, required, meaning, other names); returns the next free row."""
    from openpyxl.styles import Font

    sheet.cell(row=row, column=1, value=title).font = Font(bold=True)
    for index, head in enumerate(("column", "required", "meaning", "also accepted as"), 1):
        sheet.cell(row=row + 1, column=index, value=head).font = Font(italic=True)
    for offset, column in enumerate(columns, start=2):
        sheet.cell(row=row + offset, column=1, value=column.name)
        sheet.cell(row=row + offset, column=2, value="yes" if column.required else "no")
        sheet.cell(row=row + offset, column=3, value=column.help)
        sheet.cell(row=row + offset, column=4, value=", ".join(column.aliases))
    return row + len(columns) + 2


def _default_profile() -> tuple[tuple[str, str], ...]:
    from bulkscan.input.validate import describe_default_profile

    return describe_default_profile()
