"""Help wrapped by terminal columns: Chinese lines fit the width, English help is untouched."""

from __future__ import annotations

import argparse

import pytest

from bulkscan.cli import build_parser
from bulkscan.cli._help import CellWidthHelpFormatter, cell_width, wrap_cells
from bulkscan.i18n import set_language

_CHINESE = (
    "校验清单（有错误时不发送任何请求），规划任务，然后在速率限制下于 DSC 中创建这些任务，"
    "带重试、运行日志，并在新的运行目录中生成结果工作簿。"
)


def test_a_wide_character_takes_two_columns() -> None:
    assert cell_width("DSC 任务") == 8


@pytest.mark.parametrize("width", [20, 37, 60, 80])
def test_chinese_lines_fit_the_width_and_lose_nothing(width: int) -> None:
    lines = wrap_cells(_CHINESE, width)
    assert all(cell_width(line) <= width for line in lines), lines
    assert "".join(lines).replace(" ", "") == _CHINESE.replace(" ", "")
    assert not any(line[0] in "，。、）" for line in lines)  # closing punctuation never leads


def test_a_word_longer_than_the_width_stands_alone() -> None:
    assert wrap_cells("见 --allow-duplicate-coverage 选项", 10) == [
        "见",
        "--allow-duplicate-coverage",
        "选项",
    ]


def test_english_help_is_laid_out_as_argparse_does() -> None:
    def render(formatter: type[argparse.HelpFormatter]) -> str:
        parser = argparse.ArgumentParser(prog="x", formatter_class=formatter)
        parser.add_argument("--encoding", help="text encoding of CSV files, e.g. cp1252 " * 4)
        return parser.format_help()

    assert render(CellWidthHelpFormatter) == render(argparse.HelpFormatter)


def test_chinese_help_of_every_command_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    set_language("zh")
    try:
        parser = build_parser()
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, command in subparsers.choices.items():
            if command.formatter_class is not CellWidthHelpFormatter:
                continue  # a raw description (config, completion) is laid out by hand
            body = command.format_help().split("\n\n", 1)[1]  # after the usage
            for line in body.splitlines():
                if not line.startswith(" ") and line.endswith((":", "：")):
                    continue  # a group title: argparse never wraps those
                too_wide = cell_width(line) > 80
                assert not too_wide or len(line.split()) == 1, (name, line)  # one long word
    finally:
        set_language("en")
