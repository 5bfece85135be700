"""``<stem>-resolved.xlsx``: the input's own layout with what DSC's asset centre said of each row.

The instances sheet keeps every column and cell as read; ``ins_id`` and ``db_type`` (and the
project and region the row was looked up in) are filled from the asset centre (DSC's spelling
also goes to ``dsc_db_type``, so that it is what the create carries), and three columns tell
the instance's status, its authorisation and the check.  A row that fails the check is
written with ``enabled`` FALSE, so that a run of the file reports it as skipped and never
sends it.  An Issues sheet lists every problem by row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.input.schema import INSTANCES_SHEET, PROFILES_SHEET
from bulkscan.report.cells import Tone, as_written, new_workbook, save_workbook, write_table
from bulkscan.run.assets import check_known, type_disagrees

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Sequence

    from bulkscan.models import InputBook, Issue, Sheet
    from bulkscan.run.assets import Covered, ResolvedRow

__all__ = ["ASSET_COLUMNS", "EXPORT_HEADERS", "resolved_path", "write_export", "write_resolved"]

ASSET_COLUMNS = ("asset_status", "asset_authorisation", "asset_check")
_FILLED = ("ins_id", "db_type", "dsc_db_type", "project_id", "region", "enabled")
ISSUE_HEADERS = ("severity", "sheet", "row", "column", "message", "hint")


def resolved_path(input_path: str | os.PathLike[str]) -> Path:
    """``inputs/dbs.xlsx`` → ``inputs/dbs-resolved.xlsx`` (beside the input)."""
    path = Path(input_path)
    return path.with_name(f"{path.stem}-resolved.xlsx")


def _layout(sheet: Sheet) -> tuple[list[str], list[str]]:
    """(headers, canonical columns): the sheet's own, then any filled or asset column missing."""
    headers, columns = as_written(sheet.headers), list(sheet.columns)
    for name in (*_FILLED, *ASSET_COLUMNS):
        if name not in columns:
            headers.append(name)
            columns.append(name)
    return headers, columns


def _filled(resolved: ResolvedRow) -> dict[str, Any]:
    """The cells resolution changes in one row."""
    known, values = resolved.known, resolved.row.values
    cells: dict[str, Any] = {"asset_check": resolved.check}
    if resolved.check != "ok":
        cells["enabled"] = False
    if known is None:
        return cells
    cells |= {
        "ins_id": known.ins_id,
        "project_id": known.project_id,
        "region": known.region,
        "asset_status": known.ins_status,
        "asset_authorisation": known.authorisation,
    }
    stated = values.get("db_type")
    if stated is None or not type_disagrees(str(stated), known):
        cells["db_type"] = known.db_type
        if values.get("dsc_db_type") is None:
            cells["dsc_db_type"] = known.db_type
    return cells


def _instance_rows(rows: Sequence[ResolvedRow], columns: Sequence[str]) -> Iterator[list[Any]]:
    for resolved in rows:
        values = resolved.row.values | _filled(resolved)
        yield [values.get(column) for column in columns]


def _sheet_rows(sheet: Sheet) -> Iterator[list[Any]]:
    for row in sheet.rows:
        yield [row.values.get(column) for column in sheet.columns]


def _issue_rows(issues: Sequence[Issue]) -> Iterator[list[Any]]:
    for issue in issues:
        ref = issue.ref
        sheet = ref.sheet if ref is not None else issue.sheet
        yield [
            issue.severity, sheet, ref.row if ref else None, issue.column, issue.message,
            issue.hint,
        ]  # fmt: skip


def write_resolved(
    book: InputBook,
    rows: Sequence[ResolvedRow],
    issues: Sequence[Issue],
    path: str | os.PathLike[str],
) -> Path:
    """Write the resolved workbook (instances, profiles when the input has them, Issues)."""
    wb = new_workbook()
    headers, columns = _layout(book.instances)
    write_table(wb, INSTANCES_SHEET, headers, _instance_rows(rows, columns))
    if book.profiles is not None:
        headers = as_written(book.profiles.headers)
        write_table(wb, PROFILES_SHEET, headers, _sheet_rows(book.profiles))
    tones: dict[str, Tone] = {"error": "bad", "warning": "warn"}
    write_table(
        wb, "Issues", ISSUE_HEADERS, _issue_rows(issues), status_column="severity", tones=tones
    )
    return save_workbook(wb, path)


EXPORT_HEADERS = (
    "ins_id", "ins_name", "db_type", "dsc_db_type", "project_id", "region", "task", "enabled",
    "covered_by", *ASSET_COLUMNS,
)  # fmt: skip


def _export_rows(found: Sequence[Covered]) -> Iterator[list[Any]]:
    for item in found:
        known, problem = item.known, check_known(item.known)
        yield [
            known.ins_id, known.ins_name, known.db_type, known.db_type, known.project_id,
            known.region, item.tasks[0] if item.tasks else None,
            False if problem else None, ", ".join(item.tasks) or None,
            known.ins_status, known.authorisation, problem or "ok",
        ]  # fmt: skip


def write_export(found: Sequence[Covered], path: str | os.PathLike[str]) -> Path:
    """An input workbook of every asset-centre instance: a covered row names its task (so a
    run finds it as existing), an uncovered one leaves ``task`` blank, and a row that cannot
    be scanned is written with ``enabled`` FALSE."""
    wb = new_workbook()
    write_table(wb, INSTANCES_SHEET, EXPORT_HEADERS, _export_rows(found))
    return save_workbook(wb, path)
