"""The errors workbook of ``bulkscan validate --report``: the input's rows, problems beside them.

One sheet per input sheet (``instances rows``, ``profiles rows``), in the input's row order:
each row with a problem once per problem (severity, column, value, problem, hint), each row
without one once, marked ``ok``, so the problems are read in their context; the input's own
columns follow.  Problems about a sheet as a whole (a missing column, a hidden row) come first,
without a row number.  A README sheet says what to fix and how to check again.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from bulkscan.i18n import N_, _
from bulkscan.report._summary import notes
from bulkscan.report.cells import (
    SEVERITY_TONES,
    SummarySheet,
    as_written,
    fit_widths,
    new_workbook,
    own_headers,
    save_workbook,
    write_table,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping, Sequence

    from openpyxl import Workbook

    from bulkscan.models import InputBook, Issue, Sheet
    from bulkscan.report.cells import Tone

__all__ = ["ERRORS_SUFFIX", "ISSUE_HEADERS", "ErrorsReport", "errors_path", "write_errors_workbook"]

ERRORS_SUFFIX = "-errors.xlsx"
ISSUE_HEADERS = own_headers(
    N_("row"), N_("severity"), N_("column"), N_("value"), N_("problem"), N_("hint")
)
OK = "ok"
_TONES: Mapping[str, Tone] = MappingProxyType({**SEVERITY_TONES, OK: "good"})
_WIDTHS = (7, 10, 18, 24, 70, 44)


@dataclass(frozen=True, slots=True)
class ErrorsReport:
    """The workbook written and what it holds."""

    path: Path
    errors: int
    warnings: int
    rows_with_errors: int


def errors_path(reports_dir: str | os.PathLike[str], input_path: str | os.PathLike[str]) -> Path:
    """``<reports>/<stem>-errors.xlsx`` (the stem made safe for a file name)."""
    stem = re.sub(r"[^\w.-]+", "_", Path(input_path).stem).strip("._")[:80] or "inventory"
    return Path(reports_dir) / f"{stem}{ERRORS_SUFFIX}"


def write_errors_workbook(
    book: InputBook, issues: Sequence[Issue], path: str | os.PathLike[str], *, command: str
) -> ErrorsReport:
    """Write the errors workbook of ``book`` and its ``issues`` to ``path``.

    ``command`` is the command that checks the input again (shown in the README).
    """
    sheets = [s for s in (book.instances, book.profiles) if s is not None]
    placed = _by_sheet(sheets, issues)
    wb = new_workbook()
    for sheet in sheets:
        _write_sheet(wb, sheet, placed[sheet.name])
    errors = sum(1 for i in issues if i.severity == "error")
    rows = len({i.ref for i in issues if i.severity == "error" and i.ref is not None})
    readme = SummarySheet(wb, "README", widths=(130,))
    lines = _readme(book, [s.name for s in sheets], errors=errors,
                    warnings=len(issues) - errors, rows=rows, command=command)  # fmt: skip
    notes(readme, lines, heading=_("Problems found in {file}").format(file=Path(book.path).name))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return ErrorsReport(save_workbook(wb, target), errors, len(issues) - errors, rows)


def _by_sheet(sheets: Sequence[Sheet], issues: Sequence[Issue]) -> dict[str, list[Issue]]:
    """Each issue under the sheet it names; one that names no sheet read goes to the first."""
    names = {s.name for s in sheets}
    placed: dict[str, list[Issue]] = defaultdict(list)
    for issue in issues:
        name = issue.ref.sheet if issue.ref is not None else issue.sheet
        placed[name if name in names else sheets[0].name].append(issue)
    return placed


def _write_sheet(wb: Workbook, sheet: Sheet, issues: Sequence[Issue]) -> None:
    headers = [*ISSUE_HEADERS, *as_written(sheet.headers)]
    lines = list(_lines(sheet, issues))
    own = fit_widths(sheet.headers, [line[len(ISSUE_HEADERS) :] for line in lines], cap=40)
    write_table(
        wb,
        f"{sheet.name} rows"[:31],
        headers,
        lines,
        widths=[*_WIDTHS, *own],  # the input's ids shown in full
        status_column="severity",
        tones=_TONES,
        frozen_columns=2,
    )


def _lines(sheet: Sheet, issues: Sequence[Issue]) -> Iterator[list[object]]:
    """Sheet-wide problems first, then every row in the input's order with its problems."""
    by_row: dict[int, list[Issue]] = defaultdict(list)
    for issue in issues:
        if issue.ref is None:
            yield [None, *_issue_cells(issue)]
        else:
            by_row[issue.ref.row].append(issue)
    values = {row.ref.row: row.values for row in sheet.rows}
    for number in sorted(values.keys() | by_row.keys()):
        row = values.get(number, {})
        cells = [row.get(column) for column in sheet.columns]
        found: Sequence[Issue | None] = by_row.get(number) or [None]
        for problem_of in found:
            problem = (
                [OK, None, None, None, None] if problem_of is None else _issue_cells(problem_of)
            )
            yield [number, *problem, *cells]


def _issue_cells(issue: Issue) -> list[object]:
    return [issue.severity, issue.column, issue.value, issue.message, issue.hint]


def _readme(
    book: InputBook, sheets: Sequence[str], *, errors: int, warnings: int, rows: int, command: str
) -> list[str]:
    tables = _(" and ").join(f"'{name} rows'" for name in sheets)
    verdict = (
        _("{errors} error(s) in {rows} row(s), {warnings} warning(s).").format(
            errors=errors, rows=rows, warnings=warnings
        )
        if errors or warnings
        else _("No problem found: every row is marked ok.")
    )
    return [
        _("Input: {path} (SHA-256 {sha256}).").format(path=book.path, sha256=book.sha256),
        verdict,
        "",
        _(
            "The sheet(s) {tables} hold every row of the input in its order, its problems "
            "beside it: one line per problem (severity, column, value, problem, hint), 'ok' for "
            "a row without one; the input's own columns follow. Problems about a whole sheet "
            "come first, without a row number. Filter the severity column to see only the "
            "problems."
        ).format(tables=tables),
        _(
            "What to fix: every 'error' (bulkscan sends nothing while one is left), in the "
            "input file itself, not in this workbook; the hint says how. A 'warning' does not "
            "stop a run: it says what bulkscan assumed; fix it if the assumption is wrong."
        ),
        _("Then check again: {command}").format(command=command),
    ]
