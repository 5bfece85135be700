"""bulkscan.frames: a real run's and audit's tables as DataFrames, and DataFrame inventories."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest

pd = pytest.importorskip("pandas", reason="bulkscan[pandas] is not installed")

from bulkscan import frames, runner  # noqa: E402 - after the skip: needs pandas
from bulkscan.cli import main  # noqa: E402
from bulkscan.errors import UsageError, ValidationFailed  # noqa: E402
from bulkscan.report.results import RESULTS_FILE  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

P1 = "0123456789abcdef0123456789abcdef"
HEADERS = ["Instance ID", "DB Type", "project_id", "region", "owner"]


def _inventory() -> Any:
    return pd.DataFrame(
        {
            "Instance ID": ["00123", "ins-b", "ins-c", None],
            "DB Type": ["MySQL", "PostgreSQL", "MySQL", None],
            "project_id": [P1, P1, P1, None],
            "region": ["cn-north-4"] * 3 + [None],
            "owner": ["alice", float("nan"), "carol", "dave"],  # the last row: no ins_id
        }
    )


@pytest.fixture
def run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "dbs.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "instances"
    ws.append(HEADERS)
    ws.append([12345, "MySQL", P1, "cn-north-4", "alice"])  # a numeric-looking id
    ws.append(["ins-b", "PostgreSQL", P1, "cn-north-4", "bob"])
    wb.save(path)
    reports = tmp_path / "reports"
    code = main(["run", str(path), "--simulate", "--yes", "--reports-dir", str(reports)])
    capsys.readouterr()
    assert code == 0
    (found,) = [d for d in reports.iterdir() if (d / RESULTS_FILE).exists()]  # the run's
    return found


def test_a_runs_tables_are_the_workbooks_sheets(run_dir: Path) -> None:
    rows, tasks, attempts = frames.rows(run_dir), frames.tasks(run_dir), frames.attempts(run_dir)
    book = openpyxl.load_workbook(run_dir / RESULTS_FILE, read_only=True)
    try:
        for frame, title in ((rows, "Rows"), (tasks, "Tasks"), (attempts, "Attempts")):
            header, *lines = book[title].iter_rows(values_only=True)
            assert list(frame.columns) == list(header), title
            assert len(frame) == len(lines), title
    finally:
        book.close()
    assert list(rows["Instance ID"]) == ["12345", "ins-b"]  # an id is text, never a number
    assert str(rows["Instance ID"].dtype) == "string"
    assert set(rows["outcome"]) == {"created"}
    assert str(tasks["DSC task id"].dtype) == "string" and tasks["DSC task id"].notna().all()
    assert list(rows["task name"].unique()) == list(tasks["task name"])
    assert (attempts["HTTP status"] >= 200).all()


def test_an_audits_coverage_from_the_result_and_from_its_workbook(
    run_dir: Path, tmp_path: Path
) -> None:
    inventory = frames.audit_inventory(_inventory().iloc[:3])
    report = runner.audit_sync(
        inventory, simulator=runner.SimulatorOptions(), reports_dir=tmp_path / "audit"
    )
    live = frames.coverage(report)
    assert list(live["ins_id"]) == ["00123", "ins-b", "ins-c"]  # zeros kept
    assert set(live["status"]) == {"not covered"}  # a fresh simulator has no task
    assert str(live["ins_id"].dtype) == "string"
    on_disk = frames.coverage(report.workbook)
    assert list(on_disk.columns) == list(live.columns)
    assert list(on_disk["ins_id"]) == list(live["ins_id"])
    assert list(on_disk["status"]) == list(live["status"])


def test_a_dataframe_inventory_is_checked_and_planned_as_a_sheet() -> None:
    checked = frames.check(_inventory())
    assert checked.has_errors
    (error,) = [i for i in checked.issues if i.severity == "error" and i.column == "Instance ID"]
    assert error.ref is not None and (error.ref.file, error.ref.row) == ("dataframe", 5)
    prepared = frames.prepare(_inventory().iloc[:3], name="inventory frame")
    assert prepared.book.path == "inventory frame"
    assert [s.ins_id for t in prepared.plan.tasks for s in t.sources] == ["00123", "ins-b", "ins-c"]
    with pytest.raises(ValidationFailed):
        frames.prepare(_inventory())


def test_the_same_plan_as_the_same_rows_in_a_workbook(tmp_path: Path) -> None:
    frame = _inventory().iloc[:3]
    path = tmp_path / "same.xlsx"
    frame.to_excel(path, sheet_name="instances", index=False)
    from_file = runner.prepare(path)
    from_frame = frames.prepare(frame)
    assert [t.key for t in from_frame.plan.tasks] == [t.key for t in from_file.plan.tasks]


def test_without_pandas_a_clear_error(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    frames._pandas.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"pip install 'bulkscan\[pandas\]'"):
            frames.rows(run_dir)
    finally:
        frames._pandas.cache_clear()
