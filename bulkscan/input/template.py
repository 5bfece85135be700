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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bulkscan.errors import UsageError
from bulkscan.files import write_atomically
from bulkscan.i18n import current_language
from bulkscan.input import schema

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence

    from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["write_template"]

_INLINE_LIMIT = 255  # Excel refuses an inline list formula longer than this
_LAST_ROW = 5000  # drop-downs cover this many rows under the header
_BOOLEANS = ("TRUE", "FALSE")

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


# The README in Chinese (both languages are in every template: one file serves both).
_README_ZH = (
    "填写说明（中文）",
    "",
    "1. 在“instances”工作表中每行填写一个数据库：ins_id（实例ID）和 db_type（数据库类型）必填。",
    "2. 运行 bulkscan 时若给出 --project-id 和 --region（或设置 HUAWEICLOUD_SDK_PROJECT_ID），"
    "project_id（项目ID）和 region（区域）可以留空。",
    "3. profile（扫描配置）填写“profiles”工作表中某一行的名称；留空则使用内置的“default”配置"
    "（见下文）。如果只需要“default”，可以删除“profiles”工作表。",
    "4. enabled = FALSE 的行会被跳过（在报告中记为 skipped）。您添加的其他列（负责人、环境、"
    "备注等）会原样带入报告。",
    "5. 是/否单元格可填 TRUE/FALSE、yes/no、y/n、1/0 或 on/off；留空表示使用默认值。",
    "6. start_time（开始时间）可填 Excel 日期时间、ISO-8601 文本（2025-03-01T02:00:00+08:00）或"
    "纪元秒数；留空表示 0（立即开始）。未带时区偏移的时间（如 02:00）按该扫描配置的 timezone 列"
    "（IANA 时区名，如 Asia/Shanghai）解释，其次按 --timezone，最后按运行 bulkscan 的机器的本地"
    "时区；单元格中写明的偏移（+08:00）始终优先。bulkscan plan 会显示每个开始时间及其偏移。",
    "7. 删除每个工作表的示例行（第 2 行），或替换其全部内容：否则 bulkscan 拒绝发送"
    "（“example row still present”）。然后检查文件：bulkscan validate FILE.xlsx",
    "8. 查看将要创建的扫描任务：bulkscan plan FILE.xlsx；"
    "在数据安全中心创建：bulkscan run FILE.xlsx",
    "",
    "表头匹配不区分大小写、空格、点和连字符，并接受中文表头（如 实例ID、数据库类型、项目ID、区域、"
    "扫描配置、任务名称）：下表列出每列可用的其他名称。工作表名称（instances、profiles）保持英文。"
    "使用 --lang zh（或 LANG=zh_CN.UTF-8）可获得中文提示和中文报告表头。",
)

#: Each column's meaning in Chinese, for the README sheet and the header comments.
COLUMN_HELP_ZH: dict[str, str] = {
    "ins_id": "数据库在数据安全中心（DSC）中的实例ID（文本，与控制台显示一致）。",
    "ins_name": "DSC 资产中心（及 RDS 控制台）显示的实例名称；只有名称而没有 ins_id 的行由"
    "`bulkscan resolve` 补全。",
    "db_type": "数据库类型：MySQL、TDSQL、PostgreSQL、Dameng、Kingbase、GaussDB、DWS、Hive 或 "
    "MRS_HIVE（不区分大小写，也接受 postgres、DM 等常见写法）。",
    "dsc_db_type": "当发送给 DSC 的 db_type 写法需与 bulkscan 的不同时，填写该行要发送的写法"
    "（原样发送，不做检查）。",
    "project_id": "32 位小写十六进制项目ID；留空则使用 --project-id 或 "
    "HUAWEICLOUD_SDK_PROJECT_ID。",
    "region": "区域，如 cn-north-4；留空则使用 --region。",
    "profile": "扫描配置名称（profiles 工作表中的一行）；留空则使用“default”。",
    "task": "显式指定的任务名称；任务名称相同的行放入同一个扫描任务。",
    "enabled": "FALSE/no/0 表示跳过该行（报告中记为 skipped）；留空表示启用。",
}
COLUMN_HELP_ZH_PROFILES: dict[str, str] = {
    "profile": "扫描配置名称，唯一，供 instances 工作表引用。",
    "schedule_type": "ONCE、DAY、WEEK 或 MONTH（默认 ONCE）。",
    "start_time": "Excel 日期时间、ISO-8601 文本或纪元整数；留空表示 0（立即开始）。",
    "timezone": "该配置中未带偏移的 start_time 所用的 IANA 时区（如 Asia/Shanghai）；留空则使用 "
    "--timezone，否则使用本机时区。",
    "start_now": "立即开始扫描（默认 TRUE）。",
    "schedule_switch": "定时扫描开关（默认 FALSE）。",
    "delete_failed_meta": "删除扫描失败的元数据（默认 FALSE）。",
    "scan_column_constraints": "扫描列约束（默认 TRUE）。",
    "scan_comment": "扫描注释（默认 TRUE）。",
    "scan_privileges": "扫描权限（默认 FALSE）。",
    "scan_system_db": "扫描系统库（默认 FALSE）。",
    "scan_tables": "扫描表（默认 TRUE）。",
    "scan_views": "扫描视图（默认 TRUE）。",
    "task_description": "任务描述，最多 1024 个字符。",
    "task_name": "任务名称模板：{profile}、{region}、{project}、{seq}（如 {seq:03}）、{db_type}、"
    "{digest}（项目、区域及排序后数据源的 8 位十六进制摘要：同样的数据库在每一批中"
    "得到同样的名称）；"
    "默认 bulkscan-{profile}-{region}-{digest}；填充后最多 256 个字符。",
    "max_sources": "每个任务最多包含的数据源数（1..500，默认 50）。",
}


def zh_help(column: schema.Column) -> str:
    """The column's meaning in Chinese."""
    table = COLUMN_HELP_ZH_PROFILES if column in schema.PROFILE_COLUMNS else COLUMN_HELP_ZH
    return table[column.name]


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
    _fill_sheet(instances, schema.INSTANCE_COLUMNS, schema.EXAMPLE_INSTANCE, lists)
    _fill_sheet(profiles, schema.PROFILE_COLUMNS, schema.EXAMPLE_PROFILE, lists)
    _fill_readme(readme)
    if lists.max_column == 1 and lists["A1"].value is None:
        book.remove(lists)
    book.active = 0
    book.properties.creator = "bulkscan"
    try:
        write_atomically(path, book.save)  # a full disk leaves no broken workbook
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
        cell.comment = Comment(_help_text(column), "bulkscan", width=320, height=200)
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
    zh_need = "必填。" if column.required else "选填。"
    return f"{column.name}: {column.help} {need}{other}\n\n{zh_help(column)}{zh_need}"


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
    """The README in English and in Chinese, the language in force first."""
    from openpyxl.styles import Alignment

    parts = [_english_readme, _chinese_readme]
    if current_language() == "zh":
        parts.reverse()
    row = 1
    for part in parts:
        row = part(sheet, row) + 2
    sheet.column_dimensions["A"].width = 28
    sheet.column_dimensions["B"].width = 12
    sheet.column_dimensions["C"].width = 80
    sheet.column_dimensions["D"].width = 40
    for line in sheet.iter_rows(min_col=3, max_col=3):
        line[0].alignment = Alignment(wrap_text=True, vertical="top")


def _english_readme(sheet: Worksheet, row: int) -> int:
    return _readme_part(sheet, row, _README, _ENGLISH_TABLE)


def _chinese_readme(sheet: Worksheet, row: int) -> int:
    return _readme_part(sheet, row, _README_ZH, _CHINESE_TABLE)


@dataclass(frozen=True, slots=True)
class _TableWords:
    """The words of one language's column tables."""

    sheet_title: str  # with {name}
    heads: tuple[str, str, str, str]
    yes: str
    no: str
    default_title: str
    meaning: Callable[[schema.Column], str]


_ENGLISH_TABLE = _TableWords(
    "Sheet '{name}'", ("column", "required", "meaning", "also accepted as"), "yes", "no",
    "The built-in 'default' profile", lambda column: column.help,
)  # fmt: skip
_CHINESE_TABLE = _TableWords(
    "工作表“{name}”", ("列", "必填", "含义", "其他可用名称"), "是", "否",
    "内置的“default”扫描配置", zh_help,
)  # fmt: skip


def _readme_part(sheet: Worksheet, row: int, lines: Sequence[str], words: _TableWords) -> int:
    """One language's README from ``row``: its lines, the column tables and the default
    profile; returns the last row written."""
    from openpyxl.styles import Font

    for offset, line in enumerate(lines):
        sheet.cell(row=row + offset, column=1, value=line)
    sheet.cell(row=row, column=1).font = Font(bold=True, size=14)
    row += len(lines) + 1
    for name, columns in (
        (schema.INSTANCES_SHEET, schema.INSTANCE_COLUMNS),
        (schema.PROFILES_SHEET, schema.PROFILE_COLUMNS),
    ):
        row = _column_table(sheet, row, words.sheet_title.format(name=name), columns, words) + 1
    sheet.cell(row=row, column=1, value=words.default_title).font = Font(bold=True)
    for offset, (name, value) in enumerate(_default_profile(), start=1):
        sheet.cell(row=row + offset, column=1, value=name)
        sheet.cell(row=row + offset, column=2, value=value)
    return row + len(_default_profile())


def _column_table(
    sheet: Worksheet, row: int, title: str, columns: Sequence[schema.Column], words: _TableWords
) -> int:
    """A table (column, required, meaning, other names); returns the next free row."""
    from openpyxl.styles import Font

    sheet.cell(row=row, column=1, value=title).font = Font(bold=True)
    for index, head in enumerate(words.heads, 1):
        sheet.cell(row=row + 1, column=index, value=head).font = Font(italic=True)
    for offset, column in enumerate(columns, start=2):
        sheet.cell(row=row + offset, column=1, value=column.name)
        sheet.cell(row=row + offset, column=2, value=words.yes if column.required else words.no)
        sheet.cell(row=row + offset, column=3, value=words.meaning(column))
        sheet.cell(row=row + offset, column=4, value=", ".join(column.aliases))
    return row + len(columns) + 2


def _default_profile() -> tuple[tuple[str, str], ...]:
    from bulkscan.input.validate import describe_default_profile

    return describe_default_profile()
