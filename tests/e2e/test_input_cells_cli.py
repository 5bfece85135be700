"""``python -m bulkscan validate`` on cells that would silently change what is sent: one line
naming the cell or line, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeRawXlsx

PROJECT = "0123456789abcdef0123456789abcdef"


def _validate(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUAWEICLOUD_", "BULKSCAN_"))}
    return subprocess.run(
        [sys.executable, "-m", "bulkscan", "validate", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def test_validate_names_a_formula_without_value_and_exits_2(make_raw_xlsx: MakeRawXlsx):
    body = (
        '<row r="1">' + _cell("A1", "ins_id") + _cell("B1", "db_type") + _cell("C1", "project_id")
        + _cell("D1", "enabled") + "</row>"
        '<row r="2">' + _cell("A2", "i1") + _cell("B2", "MySQL")
        + '<c r="C2"><f>Projects!B7</f></c><c r="D2" t="e"><v>#REF!</v></c></row>'
    )  # fmt: skip
    path = make_raw_xlsx({"instances": body}, name="dbs.xlsx")
    done = _validate(path, "--project-id", PROJECT, "--region", "cn-north-4")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert (
        f"error: {path}, sheet 'instances', row 2, column 'project_id': cell C2 holds a formula "
        "without a saved value, so it reads as blank (open and save the workbook in Excel, "
        "which saves the value of every formula)"
    ) in lines
    assert any("column 'enabled': cell D2 holds the error value #REF!" in line for line in lines)
    assert "NOT OK: 1 instance(s), 0 skipped, 2 error(s)" in done.stdout
    assert "Traceback" not in done.stderr


def test_validate_names_the_line_of_an_unclosed_quote_and_exits_2(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_bytes(b'ins_id,db_type\ni1,MySQL\n"i2,MySQL\ni3,MySQL\ni4,MySQL\n')
    done = _validate(path, "--project-id", PROJECT, "--region", "cn-north-4")
    assert done.returncode == 2
    assert "line 3: a quoted value opens there and is never closed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_validate_reads_a_csv_in_the_encoding_given(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_bytes("ins_id,db_type\nbase-\xe9t\xe9a,MySQL\n".encode("cp1252"))
    guessed = _validate(path, "--project-id", PROJECT, "--region", "cn-north-4")
    assert guessed.returncode == 0
    assert "read as GB18030 (GBK), a guess" in guessed.stderr
    assert "--encoding" in guessed.stderr
    given = _validate(
        path, "--project-id", PROJECT, "--region", "cn-north-4", "--encoding", "cp1252"
    )
    assert given.returncode == 0, given.stderr
    assert given.stderr == ""
    assert "OK: 1 instance(s), 0 skipped, 0 error(s), 0 warning(s)" in given.stdout
    wrong = _validate(path, "--encoding", "base64")
    assert wrong.returncode == 2
    assert "--encoding 'base64' is not a known text encoding" in wrong.stderr


def test_validate_says_what_the_plan_would_refuse_as_run_does(tmp_path: Path) -> None:
    """A name pattern that makes a task name over 256 characters is only seen once planned:
    validate plans too, so it exits 2 with the error that plan and run give."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "profile"])
    sheet.append(["i1", "MySQL", "long"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "task_name"])
    profiles.append(["long", "{project}-{region}-" + "x" * 230])
    path = tmp_path / "long.xlsx"
    book.save(path)
    done = _validate(path, "--project-id", PROJECT, "--region", "cn-north-4")
    assert done.returncode == 2, done.stderr
    assert (
        "row 2: task name '0123456789abcdef0123456789abcdef-cn-north-4-xxx" in done.stderr
        and "is 274 characters long, over 256 (shorten the task_name pattern of profile 'long' "
        "(profiles sheet, row 2))"
        in done.stderr
    ), done.stderr
    assert "NOT OK: 1 instance(s), 0 skipped, 1 error(s)" in done.stdout
