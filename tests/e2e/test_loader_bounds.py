"""The loader against a sheet a million rows long: a proof of its bounds, too slow (about
13 s of CPU) for the everyday unit tests, so it runs with the end-to-end ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulkscan.config import InputLimits
from bulkscan.input.loader import load_input

if TYPE_CHECKING:
    from tests.conftest import MakeRawXlsx


def test_a_million_empty_styled_rows_are_read_in_bounded_time(make_raw_xlsx: MakeRawXlsx) -> None:
    """Rows that carry only a style (Excel writes them after a formatted column) are not
    data: a million of them past one real row leave one row, under a cap of 1,000."""
    styled = "".join(
        f'<row r="{n}" s="1" customFormat="1"><c r="A{n}" s="1"/><c r="B{n}" s="1"/></row>'
        for n in range(3, 1_000_003)
    )
    body = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ins_id</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>db_type</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>a</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>MySQL</t></is></c></row>' + styled
    )
    book = load_input(make_raw_xlsx({"instances": body}), limits=InputLimits(max_rows=1000))
    assert [row.values for row in book.instances.rows] == [{"ins_id": "a", "db_type": "MySQL"}]
