"""Chinese headers (实例ID, 数据库类型, 项目ID, 区域, 扫描配置, 任务名称...) are accepted in
every language, and a workbook written with them plans exactly as its English twin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bulkscan import runner
from bulkscan.i18n import set_language
from bulkscan.input import schema
from bulkscan.input.loader import load_input

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PROJECT = "0123456789abcdef0123456789abcdef"
ENGLISH = {
    "instances": [
        ["ins_id", "ins_name", "db_type", "project_id", "region", "profile", "task", "enabled",
         "owner"],
        ["i-1", "orders", "MySQL", PROJECT, "cn-north-4", "nightly", None, True, "pay"],
        ["i-2", "users", "postgres", PROJECT, "cn-north-4", "nightly", "t-named", "yes", "id"],
        ["i-3", "logs", "MySQL", PROJECT, "cn-east-3", None, None, False, "ops"],
    ],
    "profiles": [
        ["profile", "schedule_type", "start_time", "timezone", "start_now", "scan_views",
         "task_description", "task_name", "max_sources"],
        ["nightly", "DAY", "2025-03-01T02:00:00", "Asia/Shanghai", False, False, "夜间扫描",
         "{profile}-{region}-{seq}", 10],
    ],
}  # fmt: skip
CHINESE_HEADERS = {
    "instances": ["实例ID", "实例名称", "数据库类型", "项目ID", "区域", "扫描配置", "任务名称",
                  "是否启用", "owner"],
    "profiles": ["扫描配置", "调度类型", "开始时间", "时区", "立即扫描", "扫描视图", "任务描述",
                 "任务名称", "最大数据源数"],
}  # fmt: skip


def _chinese() -> dict[str, list[list[object]]]:
    return {sheet: [CHINESE_HEADERS[sheet], *rows[1:]] for sheet, rows in ENGLISH.items()}


def _tasks(path: Path) -> list[tuple[str, bytes, tuple[int, ...]]]:
    plan = runner.prepare(path).plan
    return [(t.name, t.body_bytes, tuple(r.row for r in t.rows)) for t in plan.tasks]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_workbook_with_chinese_headers_loads_and_plans_as_its_english_twin(
    make_xlsx: Callable[..., Path], language: str
) -> None:
    set_language(language)  # accepted whatever the language
    english = make_xlsx(ENGLISH, name="english.xlsx")
    chinese = make_xlsx(_chinese(), name="chinese.xlsx")
    book = load_input(chinese)
    assert book.instances.headers == tuple(CHINESE_HEADERS["instances"])
    assert book.instances.columns == tuple(ENGLISH["instances"][0])
    assert book.profiles is not None
    assert book.profiles.columns == tuple(ENGLISH["profiles"][0])
    planned = _tasks(chinese)
    assert planned == _tasks(english)
    assert len(planned) == 2  # i-3 is disabled; t-named is a task of its own


@pytest.mark.parametrize(
    ("header", "column"),
    [("实例 ID", "ins_id"), ("实例ＩＤ", "ins_id"), (" 项目 ID ", "project_id"),
     ("数据库实例名称", "ins_name"), ("地域", "region"), ("启用", "enabled")],
)  # fmt: skip
def test_chinese_headers_are_read_with_or_without_spaces_and_in_full_width(
    header: str, column: str
) -> None:
    names = {
        schema.normalise_header(a): c.name
        for c in schema.INSTANCE_COLUMNS
        for a in (c.name, *c.aliases)
    }
    assert names[schema.normalise_header(header)] == column


@pytest.mark.parametrize("columns", [schema.INSTANCE_COLUMNS, schema.PROFILE_COLUMNS])
def test_every_column_has_a_chinese_alias_and_no_alias_means_two_columns(
    columns: tuple[schema.Column, ...],
) -> None:
    seen: dict[str, str] = {}
    for column in columns:
        chinese = [a for a in column.aliases if any("\u4e00" <= ch <= "\u9fff" for ch in a)]
        assert chinese, column.name
        for alias in (column.name, *column.aliases):
            key = schema.normalise_header(alias)
            assert seen.setdefault(key, column.name) == column.name, alias


# --- the template: one file for both languages ---------------------------------------------


def _readme_lines(path: Path) -> list[str]:
    import openpyxl

    sheet = openpyxl.load_workbook(path)["README"]
    return [str(row[0].value) for row in sheet.iter_rows(max_col=1) if row[0].value]


@pytest.mark.parametrize(("language", "first"), [("en", "How to fill"), ("zh", "填写说明")])
def test_the_template_readme_is_in_both_languages_the_chosen_one_first(
    tmp_path: Path, language: str, first: str
) -> None:
    from bulkscan.input.template import write_template

    set_language(language)
    path = tmp_path / "template.xlsx"
    write_template(path)
    lines = _readme_lines(path)
    assert lines[0].startswith(first)
    text = "\n".join(lines)
    assert "How to fill this workbook" in text and "填写说明（中文）" in text
    assert "工作表“instances”" in text and "Sheet 'instances'" in text
    book = load_input(path)  # sheet names and headers stay the ones scripts use
    assert book.instances.columns == tuple(c.name for c in schema.INSTANCE_COLUMNS)


def test_every_column_is_explained_in_chinese() -> None:
    from bulkscan.input.template import zh_help

    for column in (*schema.INSTANCE_COLUMNS, *schema.PROFILE_COLUMNS):
        assert zh_help(column).strip(), column.name
