"""Issue 7, "hostile input, secrets and concurrent use": where each bullet is proven.

* **Spreadsheets as attacks** (refused or read within bounded time and memory, one-line error
  naming the file).  The loader itself: ``tests/test_loader.py`` (entity bombs
  ``test_entity_bomb_*``, zip bomb ``test_zip_bomb_is_refused_by_its_ratio``, a directory
  lying about sizes, huge extents ``test_far_apart_cells_*``, a million styled rows
  ``test_a_million_empty_styled_rows_*``, macros ``test_macros_inside_an_xlsx_are_refused``,
  ``.xlsm``/``.xls``/``.ods`` by name, not a zip ``test_not_a_zip_is_corrupt``, CSV NUL bytes
  and mixed line endings, every cap ``test_*_cap`` / ``test_rows_beyond_max_rows``).  Here:
  the same attacks through the real command line, in a child process whose address space is
  capped, so that a regression shows up as a failing test, not as a machine out of memory.
* **Fuzzing**: ``tests/test_fuzz.py``.
* **Formula injection**: one escaping function, ``bulkscan.report.cells.safe_cell``
  (``tests/test_xlsx.py``); the result and retry workbooks (``tests/test_report.py::
  test_input_and_service_text_is_inert``); the audit workbooks (``tests/test_audit.py::
  test_injected_text_stays_inert_and_no_secret_is_written``).  Here: every workbook the
  command line writes, fed formulas from the input and from the service at once.
* **Secrets**: ``tests/test_secrets.py`` (``tests/test_credentials.py`` for repr and str).
* **TLS**: ``tests/test_tls.py`` (the client alone: ``tests/test_client.py::
  test_tls_verification_and_ca_bundle``).
* **One run at a time**, newer or damaged journals: ``tests/test_journal.py`` (the lock, the
  schema version, damaged files) and, through the command line, ``tests/test_resilience.py``.
* **Damaged sessions** (simulator restarted, network down for ten seconds):
  ``tests/test_resilience.py``.

The helpers below (a command-line child process, a simulator child process, a clean
environment) are shared by those files.
"""

from __future__ import annotations

import codecs
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest

from tests.e2e._cli import clean_env, cli, simulator_process

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Sequence

    from conftest import MakeRawXlsx

PROJECT = "0123456789abcdef0123456789abcdef"
REGION = "cn-north-4"
MEMORY_CAP = 1536 << 20  # address space of a capped child: a bomb that expands hits it

# --------------------------------------------------------------------------- shared helpers


def one_line_error(done: subprocess.CompletedProcess[str], path: Path | str) -> str:
    """The single stderr line of a refused command, checked to name ``path``."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"bulkscan: error: {path}"), lines[0]
    return lines[0]


def write_inventory(
    path: Path,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    profiles: Sequence[Sequence[Any]] | None = None,
) -> Path:
    """An inventory as a user saves it; text starting with '=' stays text, not a formula."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    tables = [(sheet, [headers, *rows])]
    if profiles is not None:
        tables.append((book.create_sheet("profiles"), list(profiles)))
    for ws, table in tables:
        for r, row in enumerate(table, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    cell = ws.cell(row=r, column=c, value=value)
                    if isinstance(value, str) and value.startswith("="):
                        cell.data_type = "s"
    book.save(path)
    return path


def sheet_xml(path: Path) -> dict[str, str]:
    """Every worksheet and shared-strings part of a workbook, as text."""
    with zipfile.ZipFile(path) as archive:
        return {
            name: archive.read(name).decode("utf-8")
            for name in archive.namelist()
            if name.startswith("xl/worksheets/") or name == "xl/sharedStrings.xml"
        }


# --------------------------------------------------------------------------- attacks


def _inline_row(n: int, *texts: str) -> str:
    cells = "".join(
        f'<c r="{chr(65 + i)}{n}" t="inlineStr"><is><t>{t}</t></is></c>'
        for i, t in enumerate(texts)
    )
    return f'<row r="{n}">{cells}</row>'


_HEADER_ROW = _inline_row(1, "ins_id", "db_type")
_ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + "]>"
).replace("&lol0;", "&lol;")


def _entity_bomb(tmp: Path, raw: MakeRawXlsx) -> Path:
    shared = (
        _ENTITY_BOMB + '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>ins_id</t></si><si><t>&lol9;</t></si></sst>"
    )
    body = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="s"><v>1</v></c></row>'
    )
    return raw({"instances": body}, shared=shared, name="entity-bomb.xlsx")


def _zip_bomb(tmp: Path, raw: MakeRawXlsx) -> Path:
    bomb = b"<!-- " + b" " * (64 << 20) + b" -->"
    return raw({"instances": _HEADER_ROW}, extra={"xl/bomb.xml": bomb}, name="zip-bomb.xlsx")


def _far_cells(tmp: Path, raw: MakeRawXlsx) -> Path:
    far = '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    return raw({"instances": _HEADER_ROW + far}, name="far-cells.xlsx")


def _unpacked_over_cap(tmp: Path, raw: MakeRawXlsx) -> Path:
    filler = b"<!-- " + bytes(range(33, 127)) * (30_000) + b" -->"  # ~2.8 MB, packs well
    return raw({"instances": _HEADER_ROW}, extra={"xl/filler.xml": filler}, name="big.xlsx")


def _macros_inside(tmp: Path, raw: MakeRawXlsx) -> Path:
    return raw({"instances": _HEADER_ROW}, extra={"xl/vbaProject.bin": b"\x00vba"}, name="m.xlsx")


def _xlsm(tmp: Path, raw: MakeRawXlsx) -> Path:
    path = _macros_inside(tmp, raw)
    return Path(path.rename(tmp / "macros.xlsm"))


def _bytes(name: str, data: bytes) -> Callable[[Path, MakeRawXlsx], Path]:
    def make(tmp: Path, raw: MakeRawXlsx) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2048)
_CSV_HEAD = b"ins_id,db_type,project_id,region\n"

ATTACKS: dict[str, tuple[Callable[[Path, MakeRawXlsx], Path], str, tuple[str, ...]]] = {
    "entity-bomb": (_entity_bomb, "declares a DTD", ()),
    "zip-bomb": (_zip_bomb, "as zip bombs do", ()),
    "far-cells": (_far_cells, "down to row 1,048,576", ()),
    "unpacked-size": (_unpacked_over_cap, "--max-unpacked-mb", ("--max-unpacked-mb", "1")),
    "macros-inside": (_macros_inside, "macro-enabled workbook", ()),
    "xlsm": (_xlsm, "macro-enabled workbook: save it as .xlsx", ()),
    "not-a-zip": (_bytes("text.xlsx", b"just some text\n" * 10), "not a valid .xlsx", ()),
    "empty-xlsx": (_bytes("empty.xlsx", b""), "not a valid .xlsx", ()),
    "truncated-zip": (_bytes("cut.xlsx", b"PK\x03\x04" + bytes(64)), "not a valid .xlsx", ()),
    "ole2": (_bytes("locked.xlsx", _OLE2), "password-protected", ()),
    "csv-nul": (_bytes("nul.csv", _CSV_HEAD + b"a\x00b,MySQL,,\n"), "NUL bytes", ()),
    "csv-binary": (_bytes("bin.csv", _CSV_HEAD + bytes(range(128, 256))), "neither UTF-8", ()),
    "csv-zip": (_bytes("book.csv", b"PK\x03\x04" + bytes(64)), "not CSV text", ()),
    "csv-rows": (
        _bytes("rows.csv", _CSV_HEAD + b"a,MySQL,,\n" * 50),
        "--max-rows",
        ("--max-rows", "10"),
    ),
    "csv-size": (
        _bytes("size.csv", _CSV_HEAD + b"a,MySQL,,\n" * 150_000),
        "--max-file-mb",
        ("--max-file-mb", "1"),
    ),
    "ods": (_bytes("sheet.ods", b"PK\x03\x04" + bytes(64)), "OpenDocument", ()),
    "missing": (lambda tmp, raw: tmp / "nowhere.xlsx", "file not found", ()),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_refused_in_one_line_naming_the_file(
    attack: str, tmp_path: Path, make_raw_xlsx: MakeRawXlsx
) -> None:
    make, expected, options = ATTACKS[attack]
    path = make(tmp_path, make_raw_xlsx)
    done = cli("validate", str(path), *options, memory_cap=MEMORY_CAP)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == ""
    assert expected in one_line_error(done, path)


@pytest.mark.parametrize("attack", ["entity-bomb", "zip-bomb", "xlsm"])
def test_every_command_that_reads_input_refuses_it_before_anything_else(
    attack: str, tmp_path: Path, make_raw_xlsx: MakeRawXlsx
) -> None:
    make, expected, _ = ATTACKS[attack]
    path = make(tmp_path, make_raw_xlsx)
    reports = tmp_path / "reports"
    for command in (
        ["plan", str(path), "--output", str(tmp_path / "plan.json")],
        ["run", str(path), "--simulate", "--yes", "--reports-dir", str(reports)],
        ["audit", str(path), "--simulate", "--reports-dir", str(reports)],
    ):
        done = cli(*command, memory_cap=MEMORY_CAP)
        assert done.returncode == 2, (command, done.stderr[-3000:])
        assert expected in one_line_error(done, path)
        assert done.stdout == ""
    assert not reports.exists() and not (tmp_path / "plan.json").exists()


def _million_styled_rows(raw: MakeRawXlsx) -> Path:
    styled = "".join(
        f'<row r="{n}" s="1" customFormat="1"><c r="A{n}" s="1"/><c r="B{n}" s="1"/></row>'
        for n in range(3, 1_000_003)
    )
    return raw(
        {"instances": _HEADER_ROW + _inline_row(2, "ins-a", "MySQL") + styled}, name="styled.xlsx"
    )


def test_a_million_empty_styled_rows_are_read_by_validate_under_the_default_caps(
    make_raw_xlsx: MakeRawXlsx,
) -> None:
    """Formatting a whole column down to row 1,000,002 is not data: read, bounded, valid."""
    path = _million_styled_rows(make_raw_xlsx)
    done = cli(
        "validate",
        str(path),
        "--project-id",
        PROJECT,
        "--region",
        REGION,
        "--json",
        memory_cap=MEMORY_CAP,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["file"] == str(path)
    assert (summary["instances"], summary["errors"], summary["warnings"]) == (1, 0, 0)


def test_a_csv_with_mixed_line_endings_names_the_lines_a_text_editor_shows(
    tmp_path: Path,
) -> None:
    text = (
        b"ins_id,db_type,project_id,region,notes\r\n"  # line 1, CRLF
        b"a,MySQL,,\n"  # line 2, LF
        b"b,MySQL,,\r"  # line 3, a bare CR (old Mac)
        b'c,MySQL,,,"two\nlines"\r\n'  # lines 4-5, a quoted newline (in a carried column:
        # an ins_id holding one is an error of its own)
        b"e,mysq,,\n"  # line 6: the bad one
    )
    path = tmp_path / "mixed.csv"
    path.write_bytes(codecs.BOM_UTF8 + text)
    done = cli(
        "validate",
        str(path),
        "--project-id",
        PROJECT,
        "--region",
        REGION,
        "--strict-db-types",
        "--json",
    )
    assert done.returncode == 2, done.stderr
    issues = [i for i in json.loads(done.stdout)["issues"] if i["severity"] == "error"]
    assert [(i["row"], i["column"], i["value"]) for i in issues] == [(6, "db_type", "mysq")]


# --------------------------------------------------------------------------- formula injection

RISKY = [
    '=HYPERLINK("http://example.invalid","open me")',
    "=1+1",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "＝1+1",
    "=cmd|' /C notepad'!A0",
]


def _risky_inventory(path: Path) -> Path:
    rows = [
        [f"ins-{i}", "MySQL", PROJECT, REGION, text if i % 2 else None, text, text]
        for i, text in enumerate(RISKY)
    ]
    headers = ["Instance ID", "DB Type", "project_id", "region", "task", "owner", "=notes"]
    profiles = [["profile", "task_description"], ["default", "=2+2"]]
    return write_inventory(path, headers, rows, profiles)


def _live_formulas(path: Path) -> list[str]:
    found = []
    for name, xml in sheet_xml(path).items():
        if "<f>" in xml or "<f " in xml or 't="e"' in xml:
            found.append(name)
    return found


@pytest.mark.slow
def test_no_workbook_ever_holds_a_live_formula_from_input_or_service(tmp_path: Path) -> None:
    """Formulas in input cells, and task names the service lists back, stay inert text in the
    result, audit and uncovered workbooks (the retry workbook: ``tests/test_report.py``)."""
    inventory = _risky_inventory(tmp_path / "risky.xlsx")
    env = clean_env(
        HUAWEICLOUD_SDK_AK="BULKSCANSIMULATORAK0",
        HUAWEICLOUD_SDK_SK="bulkscan-simulator-sk-not-a-real-secret0",
    )
    reports = tmp_path / "reports"
    with simulator_process(tmp_path, "--seed", "3", env=env) as (url, _):
        common = ["--endpoint", url, "--rate", "100/s", "--reports-dir", str(reports)]
        done = cli("run", str(inventory), *common, "--yes", "--limit", "2", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        (run_dir,) = reports.iterdir()
        report = cli("report", str(run_dir), env=env)  # rebuilt from the journal
        assert report.returncode == 0, report.stderr[-3000:]  # as the canary exited
        # the audit in a reports directory of its own: in the run's, the rows the canary has
        # not sent are held by that unfinished run and no uncovered workbook is written
        elsewhere = [*common[:-1], str(reports / "audit")]
        audit = cli("audit", str(inventory), *elsewhere, "--json", env=env)
        assert audit.returncode == 1, audit.stderr[-3000:]
    books = sorted(reports.rglob("*.xlsx"))
    kinds = {"results" if p.name == "results.xlsx" else p.name.split("-")[1] for p in books}
    assert kinds == {"results", "audit", "uncovered"}, books
    for path in books:
        assert _live_formulas(path) == [], path
        assert _texts(path, None) & set(RISKY), f"{path.name} shows none of the input's text"
    (audit_book,) = (p for p in books if "-audit-" in p.name)
    assert "=1+1" in _texts(audit_book, "Tasks")  # a task name as the service listed it


def _texts(path: Path, sheet: str | None) -> set[str]:
    """Every text cell of a workbook (or of one sheet), as openpyxl reads it back."""
    book = openpyxl.load_workbook(path)
    return {
        cell.value
        for ws in (book.worksheets if sheet is None else [book[sheet]])
        for row in ws.iter_rows()
        for cell in row
        if cell.data_type == "s" and isinstance(cell.value, str)
    }


# --------------------------------------------------------------------------- one line each


def test_line_breaks_and_bidi_controls_in_cells_cannot_break_or_disguise_a_message(
    tmp_path: Path,
) -> None:
    """A header typed with Alt+Enter, a value with a right-to-left override: each issue is
    still one line on screen, with those characters shown escaped."""
    headers = ["Instance\nID", "DB Type", "project_id", "region"]
    rows = [[None, "MySQL", PROJECT, REGION], ["ins\u202egpj.exe", "my\nsql", PROJECT, REGION]]
    inventory = write_inventory(tmp_path / "odd.xlsx", headers, rows)
    done = cli("validate", str(inventory), "--strict-db-types")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), lines
    assert any("row 2, column 'Instance\\nID': ins_id is blank" in line for line in lines)
    assert any("'my\\nsql'" in line for line in lines), lines
    assert "\u202e" not in done.stderr
    twice = write_inventory(tmp_path / "twice.xlsx", ["ins_id", "Instance\nID"], [["a", "b"]])
    refused = cli("validate", str(twice))
    assert "'Instance\\nID' (B1) both mean 'ins_id'" in one_line_error(refused, twice)
