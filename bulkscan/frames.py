"""bulkscan as pandas DataFrames, for notebooks (``pip install 'bulkscan[pandas]'``).

* ``rows(run_dir)``, ``tasks(run_dir)``, ``attempts(run_dir)``: a run's Rows, Tasks and
  Attempts sheets, the same columns as ``results.xlsx``, read from its journal;
* ``coverage(audit)``: an audit's Coverage sheet, from an ``AuditResult``, the
  ``runner.AuditReport`` that holds one, or an audit workbook on disk;
* ``load(instances, profiles)``, ``check(...)``, ``prepare(...)``, ``audit_inventory(...)``:
  an inventory given as DataFrames, read by the loader as a workbook's sheets are (same
  header aliases, row 2 is the first row), then validated, planned or audited as a file.

Identifiers (ins_id, project and task ids, request ids, task names) are text (pandas
``string`` dtype) whatever they look like: ``"00123"`` keeps its zeros, a numeric-looking id
is never a number.  pandas is imported here only, and only when one of these is called.
Files are still read by the fast reader: ``runner.check(path)``.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan import runner
from bulkscan.audit import AuditResult, read_inventory
from bulkscan.config import InputSettings
from bulkscan.errors import UsageError
from bulkscan.input.loader import load_rows
from bulkscan.report.audit import coverage_table
from bulkscan.report.results import run_tables

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import pandas as pd

    from bulkscan.audit import Inventory
    from bulkscan.models import InputBook
    from bulkscan.report.cells import Table

__all__ = [
    "DATAFRAME_NAME",
    "attempts",
    "audit_inventory",
    "check",
    "coverage",
    "load",
    "prepare",
    "rows",
    "tasks",
]

DATAFRAME_NAME = "dataframe"  # what messages call an inventory given as DataFrames
_COVERAGE_SHEET = "Coverage"
_MISSING = (
    "bulkscan.frames needs pandas, which is an optional extra: "
    "pip install 'bulkscan[pandas]' (or pip install pandas)"
)


@functools.cache
def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise UsageError(_MISSING) from None
    return pandas


# --- a run and an audit, as DataFrames ------------------------------------------------------


def rows(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The run's input rows with their outcome, task and message (the Rows sheet)."""
    return _frame(run_tables(run_dir)["Rows"])


def tasks(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The run's tasks with their outcome, ids, status and error (the Tasks sheet)."""
    return _frame(run_tables(run_dir)["Tasks"])


def attempts(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Every HTTP request of the run (the Attempts sheet)."""
    return _frame(run_tables(run_dir)["Attempts"])


def coverage(audit: AuditResult | runner.AuditReport | str | os.PathLike[str]) -> pd.DataFrame:
    """One line per audited instance (the Coverage sheet), from an audit or its workbook."""
    if isinstance(audit, runner.AuditReport):
        audit = audit.result
    if isinstance(audit, AuditResult):
        return _frame(coverage_table(audit))
    return _frame(_read_coverage(Path(audit)))


def _read_coverage(path: Path) -> Table:
    from openpyxl import load_workbook

    from bulkscan.report.cells import Table, header_key

    book = load_workbook(path, read_only=True)
    try:
        if _COVERAGE_SHEET not in book.sheetnames:
            raise UsageError(f"{path} has no {_COVERAGE_SHEET} sheet: give a workbook that "
                             "bulkscan audit wrote")  # fmt: skip
        lines = book[_COVERAGE_SHEET].iter_rows(values_only=True)
        headers = tuple(header_key(h) for h in next(lines, ()))  # written in any language
        table = []
        for line in lines:
            if all(v is None for v in line):
                break  # the rule under the table
            table.append(tuple(line[: len(headers)]))
    finally:
        book.close()
    return Table(headers, tuple(table), ("ins_id", "project_id", "task ids"))


def _frame(table: Table) -> pd.DataFrame:
    pd = _pandas()
    frame = pd.DataFrame(list(table.lines), columns=list(table.headers), dtype=object)
    for column in table.ids:
        if column in frame.columns:
            frame[column] = frame[column].map(_id_text, na_action="ignore").astype("string")
    return frame


def _id_text(value: Any) -> str:
    return str(value)


# --- an inventory given as DataFrames -------------------------------------------------------


def load(
    instances: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    *,
    name: str = DATAFRAME_NAME,
    settings: InputSettings | None = None,
) -> InputBook:
    """Read DataFrames as an inventory's ``instances`` and ``profiles`` sheets.

    The columns are the headers (aliases accepted); a missing value (None, NaN, NaT) is a
    blank cell; row 2 is the DataFrame's first row, as in a sheet with its header in row 1.
    """
    limits = (settings or InputSettings()).limits
    grid = _grid(instances)
    return load_rows(name, grid, None if profiles is None else _grid(profiles), limits=limits)


def check(
    instances: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    *,
    name: str = DATAFRAME_NAME,
    settings: InputSettings | None = None,
) -> runner.Checked:
    """Validate DataFrames as ``runner.check`` validates a file: every issue, nothing raised."""
    book = load(instances, profiles, name=name, settings=settings)
    return runner.check_book(book, settings=settings)


def prepare(
    instances: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    *,
    name: str = DATAFRAME_NAME,
    settings: InputSettings | None = None,
) -> runner.Prepared:
    """Validate and plan DataFrames as ``runner.prepare`` does a file (for ``runner.run``);
    raises ``ValidationFailed`` with every issue if any is an error."""
    return runner.planned(check(instances, profiles, name=name, settings=settings))


def audit_inventory(
    instances: pd.DataFrame, *, name: str = DATAFRAME_NAME, settings: InputSettings | None = None
) -> Inventory:
    """What ``runner.audit`` needs from a DataFrame inventory (``runner.read_audit_inventory``)."""
    book = load(instances, name=name, settings=settings)
    return read_inventory(book, settings or InputSettings())


def _grid(frame: pd.DataFrame) -> list[Sequence[Any]]:
    """The header row, then each row, as plain Python values (None for a missing one)."""
    _pandas()
    header = [_plain(c) for c in frame.columns]
    return [header, *([_plain(v) for v in row] for row in frame.itertuples(index=False))]


def _plain(value: Any) -> Any:
    """A pandas/numpy cell as the loader's plain Python (str, int, float, bool, datetime)."""
    pd = _pandas()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime | dt.date | str | bool | int | float):
        return value
    return str(value)
