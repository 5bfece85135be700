"""The loader: headers, exact row numbers, typed values, CSV encodings and hostile files."""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import gc
import hashlib
import re
import struct
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkscan import runner
from bulkscan.config import InputLimits, InputSettings
from bulkscan.errors import InputError, InputLimitError, ValidationFailed
from bulkscan.input import loader
from bulkscan.input.loader import above_pattern, column_letter, load_input, paused_gc
from bulkscan.models import RawRow, RowRef

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

HEADER = ["ins_id", "db_type"]


def values(book: Any) -> list[dict[str, Any]]:
    return [row.values for row in book.instances.rows]


def row_numbers(book: Any) -> list[int]:
    return [row.ref.row for row in book.instances.rows]


# --------------------------------------------------------------------------- headers


def test_headers_are_matched_through_aliases_and_normalisation(make_xlsx: Callable[..., Path]):
    path = make_xlsx(
        {
            "Instances": [
                ["Instance ID", " DB-Type ", "Project.ID", "REGION", "Owner", "scan profile"],
                ["i-1", "MySQL", "p" * 32, "cn-north-4", "payments", "nightly"],
            ],
            "PROFILES ": [
                ["Name", "Schedule", "Batch Size", "Start At"],
                ["nightly", "DAY", 20, "2025-03-01T02:00:00"],
            ],
        }
    )
    book = load_input(path)
    assert book.fmt == "xlsx"
    assert book.instances.headers == (
        "Instance ID",
        "DB-Type",
        "Project.ID",
        "REGION",
        "Owner",
        "scan profile",
    )
    assert book.instances.columns == (
        "ins_id",
        "db_type",
        "project_id",
        "region",
        "Owner",
        "profile",
    )
    assert values(book) == [
        {
            "ins_id": "i-1",
            "db_type": "MySQL",
            "project_id": "p" * 32,
            "region": "cn-north-4",
            "Owner": "payments",
            "profile": "nightly",
        }
    ]
    assert book.profiles is not None
    assert book.profiles.name == "PROFILES "
    assert book.profiles.columns == ("profile", "schedule_type", "max_sources", "start_time")
    assert book.profiles.rows[0].values["max_sources"] == 20


def test_a_header_with_a_note_means_its_column(make_xlsx: Callable[..., Path]):
    """``Enabled (Y/N)`` is the enabled column (read as it, so N rows are skipped); a note
    on an unknown header keeps it as written; a note that meets the column itself is the
    error of two headers meaning one column."""
    header = ["Instance ID *", "db_type", "Enabled (Y/N)", "Region:", "启用？", "Notes (free)"]
    path = make_xlsx({"instances": [header[:4] + header[5:], ["a", "MySQL", "N", "x", "n"]]})
    book = load_input(path)
    assert book.instances.columns == ("ins_id", "db_type", "enabled", "region", "Notes (free)")
    assert book.instances.headers == ("Instance ID *", "db_type", "Enabled (Y/N)", "Region:",
                                      "Notes (free)")  # fmt: skip
    path = make_xlsx({"instances": [["ins_id", "db_type", "enabled", "启用？"]]}, name="two.xlsx")
    with pytest.raises(
        InputError, match=r"'enabled' \(C1\) and '启用？' \(D1\) both mean 'enabled'"
    ):
        load_input(path)


def test_aliases_are_per_sheet(make_xlsx: Callable[..., Path]):
    # 'task' is a column of its own on instances but an alias of task_name on profiles.
    path = make_xlsx(
        {
            "instances": [["ins_id", "db_type", "task"], ["a", "MySQL", "t1"]],
            "profiles": [["profile", "task"], ["p", "{seq}"]],
        }
    )
    book = load_input(path)
    assert book.instances.columns == ("ins_id", "db_type", "task")
    assert book.profiles is not None
    assert book.profiles.columns == ("profile", "task_name")


def test_two_headers_meaning_the_same_column_name_both_cells(make_xlsx: Callable[..., Path]):
    path = make_xlsx(
        {"instances": [["db_type", "Instance ID", "notes", "ins_id"], ["MySQL", "a", "", "b"]]}
    )
    with pytest.raises(InputError) as caught:
        load_input(path)
    message = str(caught.value)
    assert "columns 'Instance ID' (B1) and 'ins_id' (D1) both mean 'ins_id'" in message
    assert message.startswith(f"{path}, sheet 'instances': ")


def test_duplicate_header_cells_are_named_with_their_offset(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [["ins_id", "db_type", "ID"]]}, origin=(3, 2))
    with pytest.raises(InputError, match=r"'ins_id' \(B3\) and 'ID' \(D3\) both mean 'ins_id'"):
        load_input(path)


def test_blank_header_keeps_its_data_as_column_letter(make_xlsx: Callable[..., Path]):
    path = make_xlsx(
        {
            "instances": [
                ["ins_id", None, "db_type", None],
                ["a", "orphan value", "MySQL", None],
                ["b", None, "MySQL", None],
            ]
        }
    )
    book = load_input(path)
    assert book.instances.columns == ("ins_id", "column_B", "db_type")
    assert book.instances.headers == ("ins_id", "column_B", "db_type")
    assert values(book)[0] == {"ins_id": "a", "column_B": "orphan value", "db_type": "MySQL"}


def test_unknown_headers_are_kept_as_written(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [[*HEADER, "  Cost Centre "], ["a", "MySQL", 4711]]})
    book = load_input(path)
    assert book.instances.columns[-1] == "Cost Centre"
    assert values(book) == [{"ins_id": "a", "db_type": "MySQL", "Cost Centre": 4711}]


# --------------------------------------------------------------------------- rows and values


def test_row_numbers_are_those_excel_shows_with_leading_blank_rows_and_columns(
    make_xlsx: Callable[..., Path],
):
    rows = [HEADER, ["a", "MySQL"], [None, None], ["  ", "\t"], ["b", "PostgreSQL"]]
    book = load_input(make_xlsx({"instances": rows}, origin=(4, 3)))  # header in C4
    assert row_numbers(book) == [5, 8]
    assert [r.ref.sheet for r in book.instances.rows] == ["instances", "instances"]
    assert values(book)[1] == {"ins_id": "b", "db_type": "PostgreSQL"}


def test_header_is_the_first_non_blank_row_even_after_styled_blank_cells(
    make_raw_xlsx: Callable[..., Path],
):
    # A1 holds an empty shared string, B2 a blank inline string: the header is in C4.
    body = (
        '<row r="1"><c r="A1" t="s"><v>2</v></c></row>'
        '<row r="2"><c r="B2" t="inlineStr"><is><t> </t></is></c></row>'
        '<row r="4"><c r="C4" t="s"><v>0</v></c><c r="D4" t="s"><v>1</v></c></row>'
        '<row r="6"><c r="C6"><v>7</v></c><c r="D6" t="inlineStr"><is><t>MySQL</t></is></c></row>'
    )
    book = load_input(make_raw_xlsx({"instances": body}, shared=["ins_id", "db_type", ""]))
    assert row_numbers(book) == [6]
    assert values(book) == [{"ins_id": 7, "db_type": "MySQL"}]


def test_cell_types_become_plain_python(make_xlsx: Callable[..., Path]):
    moment = dt.datetime(2025, 3, 1, 2, 30)
    rows = [
        [*HEADER, "when", "day", "clock", "flag", "ratio", "big"],
        [12345, "MySQL", moment, dt.date(2025, 3, 1), dt.time(14, 5, 9), True, 0.25, 1e15],
        ["  padded  ", "MySQL", None, None, None, False, -3.0, None],
    ]
    book = load_input(make_xlsx({"instances": rows}))
    first, second = values(book)
    assert first == {
        "ins_id": 12345,
        "db_type": "MySQL",
        "when": moment,
        "day": dt.datetime(2025, 3, 1),
        "clock": "14:05:09",
        "flag": True,
        "ratio": 0.25,
        "big": 10**15,
    }
    assert type(first["ins_id"]) is int
    assert type(first["big"]) is int
    assert second == {"ins_id": "padded", "db_type": "MySQL", "flag": False, "ratio": -3}
    assert type(second["flag"]) is bool


def test_formula_cells_give_their_cached_value(make_raw_xlsx: Callable[..., Path]):
    body = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ins_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>db_type</t></is></c>'
        '<c r="C1" t="inlineStr"><is><t>n</t></is></c></row>'
        '<row r="2"><c r="A2" t="str"><f>"db-"&amp;"7"</f><v>db-7</v></c>'
        '<c r="B2" t="str"><f>UPPER("mysql")</f><v>MYSQL</v></c>'
        '<c r="C2"><f>40+2</f><v>42</v></c></row>'
        '<row r="3"><c r="A3" t="inlineStr"><is><t>db-8</t></is></c>'
        '<c r="B3" t="inlineStr"><is><t>MySQL</t></is></c>'
        '<c r="C3"><f>1/0</f></c></row>'  # saved without a cached value: reads as blank
    )
    book = load_input(make_raw_xlsx({"instances": body}))
    assert values(book) == [
        {"ins_id": "db-7", "db_type": "MYSQL", "n": 42},
        {"ins_id": "db-8", "db_type": "MySQL"},
    ]


def test_openpyxl_formulas_have_no_cached_value_and_read_blank(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [[*HEADER, "n"], ["a", "MySQL", "=1+2"]]})
    assert values(load_input(path)) == [{"ins_id": "a", "db_type": "MySQL"}]


def test_merged_cells_carry_their_value_in_the_top_left_cell(tmp_path: Path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "instances"
    sheet.append([*HEADER, "owner"])
    sheet.append(["a", "MySQL", "payments"])
    sheet.append(["b", "MySQL", None])
    sheet.merge_cells("C2:C3")
    path = tmp_path / "merged.xlsx"
    book.save(path)
    assert values(load_input(path)) == [
        {"ins_id": "a", "db_type": "MySQL", "owner": "payments"},
        {"ins_id": "b", "db_type": "MySQL"},
    ]


def test_cells_without_position_are_placed_like_the_reader_does(
    make_raw_xlsx: Callable[..., Path],
):
    # Some writers omit r="..." on rows and cells: positions are counted.
    body = (
        "<row>"
        '<c t="inlineStr"><is><t>ins_id</t></is></c><c t="inlineStr"><is><t>db_type</t></is></c>'
        "</row><row>"
        '<c t="inlineStr"><is><t>a</t></is></c><c t="inlineStr"><is><t>MySQL</t></is></c>'
        "</row>"
    )
    book = load_input(make_raw_xlsx({"instances": body}))
    assert values(book) == [{"ins_id": "a", "db_type": "MySQL"}]
    assert row_numbers(book) == [2]


def test_an_empty_instances_sheet_reads_as_no_rows(make_xlsx: Callable[..., Path]):
    book = load_input(make_xlsx({"instances": []}))
    assert book.instances.rows == ()
    assert book.instances.headers == ()
    assert book.profiles is None


def test_sha256_is_that_of_the_file_bytes(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [HEADER, ["a", "MySQL"]]})
    assert load_input(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- sheets


def test_missing_instances_sheet_lists_the_sheets_found(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"Sheet1": [HEADER], "data": [HEADER]})
    with pytest.raises(
        InputError, match=r"no sheet named 'instances' \(sheets found: 'Sheet1', 'data'\)"
    ):
        load_input(path)


def test_two_sheets_meaning_instances_are_refused(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [HEADER], "Instances ": [HEADER]})
    with pytest.raises(InputError, match="both mean 'instances'"):
        load_input(path)


def test_profiles_file_is_for_csv_only(make_xlsx: Callable[..., Path], tmp_path: Path):
    path = make_xlsx({"instances": [HEADER]})
    other = tmp_path / "profiles.csv"
    other.write_text("profile\nx\n")
    with pytest.raises(InputError, match="--profiles is for CSV input only"):
        load_input(path, profiles_path=other)


# --------------------------------------------------------------------------- csv


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("gbk", b""),
        ("gb18030", b""),
    ],
)
def test_csv_encodings(tmp_path: Path, encoding: str, prefix: bytes):
    text = "实例ID,db_type,备注\r\nrds-01,MySQL,支付系统 数据库\r\n"
    path = write_bytes(tmp_path, "in.csv", prefix + text.encode(encoding))
    book = load_input(path)
    assert book.fmt == "csv"
    assert book.instances.headers == ("实例ID", "db_type", "备注")
    # 实例ID is the Chinese header of ins_id; 备注 is carried as written
    assert values(book) == [{"ins_id": "rds-01", "db_type": "MySQL", "备注": "支付系统 数据库"}]
    assert book.instances.rows[0].ref.sheet == "instances"


def test_csv_mixed_line_endings_keep_line_numbers(tmp_path: Path):
    data = b'ins_id,db_type,notes\r\na,MySQL,x\n\r\nb,MySQL,"two\nlines"\rc,MySQL,\n\n'
    book = load_input(write_bytes(tmp_path, "mixed.csv", data))
    assert values(book) == [
        {"ins_id": "a", "db_type": "MySQL", "notes": "x"},
        {"ins_id": "b", "db_type": "MySQL", "notes": "two\nlines"},
        {"ins_id": "c", "db_type": "MySQL"},
    ]
    assert row_numbers(book) == [2, 4, 6]


@pytest.mark.parametrize(("delimiter", "suffix"), [(";", ".csv"), ("\t", ".tsv"), ("\t", ".txt")])
def test_csv_delimiter_is_sniffed(tmp_path: Path, delimiter: str, suffix: str):
    text = delimiter.join(["ins_id", "db_type", "notes"]) + "\n"
    text += delimiter.join(["a", "MySQL", "1,5"]) + "\n"
    book = load_input(write_bytes(tmp_path, f"in{suffix}", text.encode()))
    assert values(book) == [{"ins_id": "a", "db_type": "MySQL", "notes": "1,5"}]


def test_csv_values_are_stripped_text_and_short_records_are_fine(tmp_path: Path):
    data = b"ins_id,db_type,enabled,extra\n 0042 , MySQL ,FALSE\n\n,,,\n"
    book = load_input(write_bytes(tmp_path, "in.csv", data))
    assert values(book) == [{"ins_id": "0042", "db_type": "MySQL", "enabled": "FALSE"}]


def test_csv_record_longer_than_its_header_keeps_the_extra_field(tmp_path: Path):
    data = b"ins_id,db_type\na,MySQL,stray\n"
    book = load_input(write_bytes(tmp_path, "in.csv", data))
    assert book.instances.columns == ("ins_id", "db_type", "column_C")
    assert values(book) == [{"ins_id": "a", "db_type": "MySQL", "column_C": "stray"}]


def test_csv_with_profiles_file(tmp_path: Path):
    instances = write_bytes(tmp_path, "i.csv", b"ins_id,db_type,profile\na,MySQL,p\n")
    profiles = write_bytes(tmp_path, "p.csv", b"Name,schedule_type,max_sources\np,DAY,5\n")
    book = load_input(instances, profiles_path=profiles)
    assert book.profiles is not None
    assert book.profiles_path == str(profiles)
    assert book.profiles.name == "profiles"
    assert book.profiles.rows[0].ref.file == str(profiles)
    assert book.profiles.rows[0].values == {
        "profile": "p",
        "schedule_type": "DAY",
        "max_sources": "5",
    }
    alone = load_input(instances).sha256
    assert alone == hashlib.sha256(instances.read_bytes()).hexdigest()
    assert book.sha256 != alone
    profiles.write_bytes(b"Name,schedule_type,max_sources\np,DAY,6\n")
    assert load_input(instances, profiles_path=profiles).sha256 != book.sha256


def test_csv_nul_bytes_are_refused(tmp_path: Path):
    path = write_bytes(tmp_path, "nul.csv", b"ins_id,db_type\na\x00b,MySQL\n")
    with pytest.raises(InputError, match=r"NUL bytes \(first on line 2\)") as caught:
        load_input(path)
    assert str(caught.value).startswith(str(path))


def test_csv_nul_in_utf16_text_is_refused(tmp_path: Path):
    path = write_bytes(tmp_path, "nul.csv", codecs.BOM_UTF16_LE + "a\x00b\n".encode("utf-16-le"))
    with pytest.raises(InputError, match="NUL bytes"):
        load_input(path)


def test_csv_in_an_unknown_encoding_is_refused(tmp_path: Path):
    path = write_bytes(tmp_path, "bad.csv", b"ins_id,db_type\n\xff\xfe\xfd\x80,MySQL\n")
    with pytest.raises(InputError, match="neither UTF-8 nor GBK"):
        load_input(path)


def test_workbook_saved_under_a_csv_name_is_recognised(
    make_xlsx: Callable[..., Path], tmp_path: Path
):
    path = write_bytes(tmp_path, "book.csv", make_xlsx({"instances": [HEADER]}).read_bytes())
    with pytest.raises(InputError, match=r"is a workbook .zip., not CSV text: name it .xlsx"):
        load_input(path)


def test_csv_oversized_field_is_an_input_error(tmp_path: Path):
    path = write_bytes(tmp_path, "big.csv", b'ins_id,db_type\n"' + b"x" * 200_000 + b'",MySQL\n')
    with pytest.raises(InputError, match="not readable as CSV"):
        load_input(path)


# --------------------------------------------------------------------------- files refused


def test_missing_file(tmp_path: Path):
    for name in ("nope.xlsx", "nope.csv", "nope.json"):
        with pytest.raises(InputError, match="file not found") as caught:
            load_input(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name}: file not found"


def test_standard_input_is_refused_with_what_to_do_instead():
    """``bulkscan validate -`` is what a shell user tries first; a run must read its input
    again to resume, so it takes a file, and says so rather than "file not found"."""
    with pytest.raises(InputError, match="not standard input: save the inventory"):
        load_input("-")


def test_a_folder_is_not_a_file(tmp_path: Path):
    folder = tmp_path / "dir.xlsx"
    folder.mkdir()
    with pytest.raises(InputError, match="folder"):
        load_input(folder)


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (".xls", "legacy .xls workbook: save it as .xlsx"),
        (".xlsb", "binary .xlsb workbook"),
        (".ods", "OpenDocument"),
        (".xlsm", "macro-enabled workbook: save it as .xlsx"),
        (".json", "unsupported file type '.json': bulkscan reads .xlsx workbooks, or .csv"),
        ("", "unsupported file type without an extension"),
    ],
)
def test_wrong_extensions_say_what_is_accepted(tmp_path: Path, suffix: str, message: str):
    path = write_bytes(tmp_path, f"input{suffix}", b"PK\x03\x04 anything")
    with pytest.raises(InputError, match=re.escape(message)):
        load_input(path)


def test_ole2_file_is_protected_or_legacy(tmp_path: Path):
    path = write_bytes(tmp_path, "locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    with pytest.raises(InputError, match=r"password-protected or legacy .xls") as caught:
        load_input(path)
    assert "remove the password" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"just text", b"PK\x03\x04" + bytes(100), b"PK\x05\x06" + bytes(18)],
    ids=["empty", "text", "truncated zip", "empty zip"],
)
def test_not_a_zip_is_corrupt(tmp_path: Path, data: bytes):
    with pytest.raises(InputError, match=r"not a valid \.xlsx \(corrupt\?\)"):
        load_input(write_bytes(tmp_path, "broken.xlsx", data))


def test_zip_that_is_not_a_workbook(tmp_path: Path):
    path = tmp_path / "other.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(InputError, match="corrupt"):
        load_input(path)


def test_macros_inside_an_xlsx_are_refused(make_raw_xlsx: Callable[..., Path]):
    path = make_raw_xlsx({"instances": ""}, extra={"xl/vbaProject.bin": b"\x00macro"})
    with pytest.raises(InputError, match="macro-enabled workbook"):
        load_input(path)


# --------------------------------------------------------------------------- caps and bombs


def test_rows_beyond_max_rows(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [HEADER] + [[f"i{n}", "MySQL"] for n in range(6)]})
    assert len(load_input(path, limits=InputLimits(max_rows=6)).instances.rows) == 6
    with pytest.raises(InputLimitError, match=r"more than 5 data rows \(row 7 .*--max-rows"):
        load_input(path, limits=InputLimits(max_rows=5))


def test_csv_rows_beyond_max_rows(tmp_path: Path):
    path = write_bytes(tmp_path, "in.csv", b"ins_id,db_type\n" + b"a,MySQL\n" * 4)
    with pytest.raises(InputLimitError, match="--max-rows"):
        load_input(path, limits=InputLimits(max_rows=3))


def test_file_size_cap(make_xlsx: Callable[..., Path], tmp_path: Path):
    path = make_xlsx({"instances": [HEADER]})
    with pytest.raises(InputLimitError, match="--max-file-mb") as caught:
        load_input(path, limits=InputLimits(max_file_bytes=1000))
    assert str(caught.value).startswith(str(path))
    csv_path = write_bytes(tmp_path, "in.csv", b"ins_id,db_type\n" + b"a,MySQL\n" * 200)
    with pytest.raises(InputLimitError, match="--max-file-mb"):
        load_input(csv_path, limits=InputLimits(max_file_bytes=1000))


def test_unpacked_size_cap(make_xlsx: Callable[..., Path]):
    path = make_xlsx({"instances": [HEADER, ["a" * 5000, "MySQL"]]})
    with pytest.raises(InputLimitError, match=r"unpacks to .* cap .*--max-unpacked-mb"):
        load_input(path, limits=InputLimits(max_unpacked_bytes=4000))


def test_zip_bomb_is_refused_by_its_ratio(make_raw_xlsx: Callable[..., Path]):
    bomb = b"<!-- " + b" " * (64 * 1024 * 1024) + b" -->"  # 64 MiB that packs to ~64 KiB
    path = make_raw_xlsx({"instances": ""}, extra={"xl/bomb.xml": bomb})
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(InputLimitError, match=r"'xl/bomb.xml' would unpack .* zip bombs"):
        load_input(path)


def test_zip_directory_lying_about_sizes_is_corrupt(make_raw_xlsx: Callable[..., Path]):
    # The directory claims 100 bytes; the deflate stream holds far more.  Every member is
    # unpacked against its claimed size and CRC before the xlsx reader opens the file.
    path = make_raw_xlsx({"instances": '<row r="1"><c r="A1"><v>1</v></c></row>' * 200})
    data = bytearray(path.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while at != -1:
            if data[at + name_at : at + name_at + len(name)] == name:
                struct.pack_into("<I", data, at + size_at, 100)
            at = data.find(signature, at + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupt"):
        load_input(path)


ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + "]>"
).replace("&lol0;", "&lol;")


def test_entity_bomb_in_shared_strings_is_refused(make_raw_xlsx: Callable[..., Path]):
    shared = (
        ENTITY_BOMB + '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>ins_id</t></si><si><t>&lol9;</t></si></sst>"
    )
    body = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="s"><v>1</v></c></row>'
    )
    path = make_raw_xlsx({"instances": body}, shared=shared)
    with pytest.raises(InputError, match=r"sharedStrings.xml' declares a DTD .*refused"):
        load_input(path)


def test_undeclared_entity_is_an_input_error_not_expanded(make_raw_xlsx: Callable[..., Path]):
    body = '<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
    with pytest.raises(InputError, match=r"not a readable .xlsx"):
        load_input(make_raw_xlsx({"instances": body}))


def test_entity_bomb_after_a_long_prolog_is_refused(make_raw_xlsx: Callable[..., Path]):
    path = make_raw_xlsx({"instances": '<row r="1"><c r="A1"><v>1</v></c></row>'})
    doctype = ENTITY_BOMB.removeprefix('<?xml version="1.0"?>').encode()
    prolog = b'<?xml version="1.0" encoding="UTF-8"?>' + b" " * 9_000_000 + doctype
    data = _replace_member(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b'<?xml version="1.0" encoding="UTF-8"?>', prolog),
    )
    path.write_bytes(data)
    with pytest.raises(InputError, match="sheet 'instances' declares a DTD"):
        load_input(path)


def _replace_member(path: Path, member: str, change: Callable[[bytes], bytes]) -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, change(data) if info.filename == member else data)
    return out.getvalue()


def test_many_rows_of_empty_strings_hit_the_row_cap_before_reading(
    make_raw_xlsx: Callable[..., Path],
):
    rows = "".join(f'<row r="{n}"><c r="A{n}" t="s"><v>1</v></c></row>' for n in range(2, 20_000))
    path = make_raw_xlsx(
        {"instances": '<row r="1"><c r="A1" t="s"><v>0</v></c></row>' + rows}, shared=["ins_id", ""]
    )
    with pytest.raises(InputLimitError, match=r"down to row 1,101 \(cell A1101\).*--max-rows"):
        load_input(path, limits=InputLimits(max_rows=1000))


FAR_CELL_SCRIPT = """
import sys
from bulkscan.input.loader import load_input
from bulkscan.errors import InputLimitError
try:
    load_input(sys.argv[1])
except InputLimitError as exc:
    print(exc)
"""


FIRST_CELL = '<row r="1"><c r="A1" t="inlineStr"><is><t>ins_id</t></is></c></row>'
IRREGULAR_FIRST_CELL = "<row><c><v>1</v></c></row>"  # no r="...": positions are counted


@pytest.mark.parametrize(
    ("first", "cell", "message"),
    [
        (FIRST_CELL, "XFD1048576", "down to row 1,048,576 (cell XFD1048576), beyond the 1,000,000"),
        (FIRST_CELL, "XFD2000", "spans 2,000 rows (down to cell XFD2000) by 16,384 columns"),
        (FIRST_CELL, "A99999999", "down to row 99,999,999"),
        (FIRST_CELL, "AB99999999999999", "down to row 99,999,999,999,999"),
        (IRREGULAR_FIRST_CELL, "XFD1048576", "down to row 1,048,576 (cell XFD1048576)"),
        (IRREGULAR_FIRST_CELL, "XFD2000", "by 16,384 columns (up to column XFD)"),
    ],
    ids=["corner", "wide", "deep", "absurd", "irregular-corner", "irregular-wide"],
)
def test_far_apart_cells_are_refused_before_the_reader_allocates_them(
    make_raw_xlsx: Callable[..., Path], first: str, cell: str, message: str
):
    row = re.sub(r"^[A-Z]+", "", cell)
    body = first + f'<row r="{row}"><c r="{cell}" t="inlineStr"><is><t>far</t></is></c></row>'
    assert message in refused_in_another_process(make_raw_xlsx({"instances": body}))


def test_far_rows_without_cell_positions_are_refused(make_raw_xlsx: Callable[..., Path]):
    body = IRREGULAR_FIRST_CELL + '<row r="5000000"><c t="inlineStr"><is><t>x</t></is></c></row>'
    output = refused_in_another_process(make_raw_xlsx({"instances": body}))
    assert "down to row 5,000,000 (cell A5000000)" in output


def refused_in_another_process(path: Path) -> str:
    """The loader's InputLimitError message for ``path``, read in a separate interpreter.

    Two cells at A1 and XFD1048576 would make the xlsx reader reserve 512 GB and abort the
    process; running the load apart keeps such a regression from taking the suite down.
    """
    done = subprocess.run(
        [sys.executable, "-c", FAR_CELL_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sheet 'instances'" in done.stdout
    return done.stdout


def test_wide_but_reasonable_sheet_is_read(make_raw_xlsx: Callable[..., Path]):
    body = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ins_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>db_type</t></is></c></row>'
        '<row r="40000"><c r="AB40000" t="inlineStr"><is><t>far</t></is></c></row>'
    )
    book = load_input(make_raw_xlsx({"instances": body}))
    assert values(book) == [{"column_AB": "far"}]
    assert row_numbers(book) == [40000]


def test_reader_errors_become_input_errors_naming_the_file(make_raw_xlsx: Callable[..., Path]):
    path = make_raw_xlsx({"instances": '<row r="1"><c r="A1" t="s"><v>9</v></c></row>'}, shared=[])
    try:
        book = load_input(path)
    except InputError as exc:
        assert str(exc).startswith(str(path))
    else:  # the reader may also treat a missing shared string as blank
        assert book.instances.rows == ()


# --------------------------------------------------------------------------- helpers


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10**10))
def test_above_pattern_matches_exactly_the_larger_numbers(limit: int, number: int):
    matched = re.fullmatch(above_pattern(limit), str(number)) is not None
    assert matched == (number > limit)


@given(st.integers(min_value=1, max_value=10**6))
def test_above_pattern_at_the_boundary(limit: int):
    assert not re.fullmatch(above_pattern(limit), str(limit))
    assert re.fullmatch(above_pattern(limit), str(limit + 1))


def test_column_letters():
    assert [column_letter(i) for i in (0, 25, 26, 51, 701, 702, 16383)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "ZZ",
        "AAA",
        "XFD",
    ]


# --------------------------------------------------------------------------- speed helpers


def test_rows_made_for_speed_are_the_dataclasses_themselves():
    make = loader._row_maker("f.xlsx", "instances")
    made = make(7, {"ins_id": "a"})
    expected = RawRow(RowRef("f.xlsx", "instances", 7), {"ins_id": "a"})
    assert (made, repr(made), hash(made.ref)) == (expected, repr(expected), hash(expected.ref))
    assert made.ref < RowRef("f.xlsx", "instances", 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.ref.row = 8  # type: ignore[misc]


def test_rows_are_made_by_the_constructors_for_a_class_of_another_shape():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        ref: RowRef
        values: dict[str, Any]

        def __post_init__(self) -> None:
            pass

    assert loader._slots_only(RawRow, loader._ROW_FIELDS)
    assert loader._slots_only(RowRef, loader._REF_FIELDS)
    assert not loader._slots_only(Checked, loader._ROW_FIELDS)
    assert not loader._slots_only(RowRef, ("file", "sheet"))


def test_paused_gc_pauses_nests_and_always_resumes():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause leaves the outer one in force
    assert gc.isenabled()
    with pytest.raises(KeyError), paused_gc():
        raise KeyError
    assert gc.isenabled()


def test_paused_gc_leaves_a_collector_that_was_off_off():
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_made_while_paused_join_the_oldest_generation():
    with paused_gc():
        made = [[n] for n in range(5000)]
    assert gc.get_count()[0] < 1000  # not thousands of young objects for the next collection
    assert gc.get_freeze_count() == 0
    assert any(obj is made[-1] for obj in gc.get_objects(generation=2))


def test_objects_the_program_froze_stay_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with paused_gc():
            made = [[n] for n in range(100)]
        assert gc.get_freeze_count() == frozen
        assert made
    finally:
        gc.unfreeze()


def test_check_and_prepare_resume_the_collector(make_xlsx: Callable[..., Path], tmp_path: Path):
    good = make_xlsx({"instances": [["ins_id", "db_type"], ["a", "MySQL"]]}, name="good.xlsx")
    bad = make_xlsx({"instances": [["ins_id", "db_type"], ["", "MySQL"]]}, name="bad.xlsx")
    settings = InputSettings(project_id="0" * 32, region="cn-north-4")
    assert runner.prepare(good, settings=settings).plan.instance_count == 1
    assert gc.isenabled()
    with pytest.raises(ValidationFailed):
        runner.prepare(bad, settings=settings)
    assert gc.isenabled()
    with pytest.raises(InputError):
        runner.check(tmp_path / "missing.xlsx")
    assert gc.isenabled()


def test_a_far_cell_hidden_in_a_tag_longer_than_a_chunk_is_still_found(
    make_raw_xlsx: Callable[..., Path],
) -> None:
    """A 20 MB attribute must not split the tag out of the fast extent scan's sight."""
    import base64
    import os

    pad = base64.b64encode(os.urandom(15 * 1024 * 1024)).decode()
    body = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ins_id</t></is></c></row>'
        f'<row r="2000000"><c r="Z2000000" pad="{pad}"><v>1</v></c></row>'
    )
    path = make_raw_xlsx({"instances": body})
    with pytest.raises(InputLimitError):
        load_input(path, limits=InputLimits(max_rows=1000))


def test_parse_member_streams_a_member_through_expat_and_ends_it(tmp_path: Path) -> None:
    import xml.parsers.expat

    from bulkscan.input._archive import parse_member

    rows = 20_000
    body = b"<rows>" + b"<r>x</r>" * rows + b"</rows>"
    path = tmp_path / "member.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("good.xml", body)
        archive.writestr("cut.xml", body[: len(body) // 2])
    seen: list[str] = []
    with zipfile.ZipFile(path) as archive:
        parser = xml.parsers.expat.ParserCreate()
        parser.StartElementHandler = lambda name, _attrs: seen.append(name)
        parse_member(parser, archive, archive.getinfo("good.xml"))
        assert len(seen) == rows + 1
        with pytest.raises(xml.parsers.expat.ExpatError):
            parse_member(xml.parsers.expat.ParserCreate(), archive, archive.getinfo("cut.xml"))


def test_a_title_above_the_table_is_left_out_with_a_warning(make_xlsx: Callable[..., Path]):
    rows = [["Database inventory"], [None], ["as of 2025-03-01"], HEADER, ["a", "MySQL"]]
    book = load_input(make_xlsx({"instances": rows}))
    assert book.instances.columns == ("ins_id", "db_type")
    assert row_numbers(book) == [5]
    (note,) = book.instances.issues
    assert note.severity == "warning" and note.ref is None
    assert note.message == (
        "2 filled row(s) above the header row 4 are not read (row 1: 'Database inventory')"
    )
    # a first row naming no known column, with none below either, is the header (and the
    # missing columns are the validation's errors)
    plain = load_input(make_xlsx({"instances": [["a", "b"], ["c", "d"]]}, name="plain.xlsx"))
    assert plain.instances.headers == ("a", "b") and not plain.instances.issues


def test_excels_sep_line_names_the_delimiter_and_is_not_a_row(tmp_path: Path):
    path = tmp_path / "dbs.csv"
    path.write_text("sep=;\nins_id;db_type\ni1;MySQL\n", encoding="utf-8")
    book = load_input(path)
    assert book.instances.columns == ("ins_id", "db_type") and not book.instances.issues
    assert values(book) == [{"ins_id": "i1", "db_type": "MySQL"}] and row_numbers(book) == [3]
