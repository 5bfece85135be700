"""The Scans sheet of ``results.xlsx`` and the chart of run states on its Summary.

Written from ``lifecycle.sqlite`` (``bulkscan status`` saves each task's latest run there);
a run that was never checked gets neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulkscan.report._summary import charted_table
from bulkscan.report.cells import write_table
from bulkscan.run.lifecycle import ScanState

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from openpyxl import Workbook

    from bulkscan.report.cells import SummarySheet, Tone
    from bulkscan.run.lifecycle import ActionRecord, ScanRecord

__all__ = ["SCAN_TONES", "scan_chart", "write_actions", "write_scans"]

SCAN_TONES: Mapping[str, Tone] = {
    ScanState.SUCCEEDED: "good",
    ScanState.FAILED: "bad",
    ScanState.UNKNOWN: "bad",
    ScanState.RUNNING: "warn",
    ScanState.NEVER_RAN: "muted",
}
_HEADERS = (
    "task name", "project", "region", "found as", "DSC task id", "scan state",
    "status (as DSC says)", "started (UTC)", "ended (UTC)", "error message", "runs",
    "checked (local)", "task key",
)  # fmt: skip
_WIDTHS = (36, 34, 14, 10, 16, 12, 18, 20, 20, 60, 8, 20, 66)


def _line(scan: ScanRecord) -> list[object]:
    return [
        scan.name, scan.project_id, scan.region, scan.origin, scan.task_id, str(scan.state),
        scan.status, scan.started, scan.ended, scan.error, scan.runs, scan.checked_at,
        scan.task_key,
    ]  # fmt: skip


def write_scans(wb: Workbook, scans: Sequence[ScanRecord]) -> None:
    """One row per task the run created or found: its latest run."""
    write_table(
        wb,
        "Scans",
        _HEADERS,
        (_line(s) for s in scans),
        widths=_WIDTHS,
        status_column="scan state",
        tones=SCAN_TONES,
    )


def scan_chart(sheet: SummarySheet, scans: Sequence[ScanRecord]) -> None:
    """Run states as a table with a bar chart beside it."""
    counts = {state: 0 for state in ScanState}
    for scan in scans:
        counts[scan.state] += 1
    sheet.blank()
    charted_table(
        sheet,
        ("scan state", "tasks"),
        [[str(state), n] for state, n in counts.items()],
        heading="Scans by state (latest run of each task)",
        title="Scans by state",
        tones=SCAN_TONES,
    )


_ACTION_TONES: Mapping[str, Tone] = {
    "done": "good", "gone": "muted", "kept": "warn", "failed": "bad", "sending": "warn",
}  # fmt: skip
_ACTION_HEADERS = (
    "action", "task name", "DSC task id", "state", "message", "marked (local)", "settled (local)",
    "batch",
)  # fmt: skip


def write_actions(wb: Workbook, actions: Sequence[ActionRecord]) -> None:
    """Every action after the run (start, enable, disable, update, delete, revert)."""
    write_table(
        wb,
        "Actions",
        _ACTION_HEADERS,
        ([a.kind, a.name, a.task_id, a.state, a.detail, a.marked_at, a.done_at, a.batch]
         for a in actions),
        widths=(10, 36, 16, 10, 60, 26, 26, 8),
        status_column="state",
        tones=_ACTION_TONES,
    )  # fmt: skip
