"""The audit's workbooks (bulkscan.report.audit), written for real and read back with openpyxl.

The audit result is built by the audit's own pure matching (``match_coverage``) from listed
tasks, so these tests need no service; the end-to-end audit is in tests/e2e/test_audit.py.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import openpyxl

from bulkscan.audit import AuditMeta, AuditResult, GroupListing, Inventory, match_coverage
from bulkscan.dsc.client import RemoteTask
from bulkscan.errors import ProjectPermanentError
from bulkscan.models import DataSource, InputBook, Instance, RawRow, RowRef, Sheet
from bulkscan.report.audit import (
    COVERAGE_RULE,
    ORPHAN_RULE,
    UNCOVERED_REASON,
    audit_files,
    gap_task_name,
    uncovered_rows,
    write_audit_workbook,
    write_uncovered_workbook,
)

if TYPE_CHECKING:
    from pathlib import Path

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
CN = "cn-north-4"
STARTED = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
HEADERS = ("Instance ID", "DB Type", "project_id", "region", "task")
COLUMNS = ("ins_id", "db_type", "project_id", "region", "task")


def _instance(ins_id: str, row: int, project: str = P1) -> Instance:
    return Instance(RowRef("dbs.xlsx", "instances", row), ins_id, "MySQL", project, CN, "default")


def _remote(task_id: str, ins_id: str, *, enabled: bool = True) -> RemoteTask:
    raw = {"id": task_id, "enabled": enabled}
    return RemoteTask(task_id, f"task-{task_id}", (DataSource("MySQL", ins_id),), raw=raw)


def _result() -> AuditResult:
    """ins-a covered, ins-b only by a disabled task, ins-c by none, ins-d's project unlisted."""
    instances = [
        _instance("ins-a", 2),
        _instance("ins-b", 3),
        _instance("ins-c", 4),
        _instance("ins-d", 5, P2),
    ]
    raw = tuple(
        RawRow(i.ref, dict(zip(COLUMNS, (i.ins_id, "MySQL", i.project_id, "", None), strict=True)))
        for i in instances
    )
    sheet = Sheet("dbs.xlsx", "instances", HEADERS, COLUMNS, raw)
    book = InputBook("dbs.xlsx", "0" * 64, sheet, None, "xlsx")
    rows = {(i.project_id, i.region, i.ins_id): (i.ref,) for i in instances}
    inventory = Inventory(book, tuple(instances), rows, (), ())
    listed: dict[tuple[str, str], Any] = {
        (P1, CN): [
            _remote("1", "ins-a"),
            _remote("2", "ins-b", enabled=False),
            _remote("3", "ins-zz"),
        ],
        (P2, CN): ProjectPermanentError("project not found", status=404),
    }
    coverage, findings = match_coverage(inventory, listed)
    meta = AuditMeta(
        started_at=STARTED,
        ended_at=STARTED + dt.timedelta(seconds=75),
        operator="ops",
        host="box",
        bulkscan_version="0.1.0",
        input_path="dbs.xlsx",
        input_sha256="0" * 64,
        rate_per_s=5.0,
        learned_rate_per_s=4.5,
        concurrency=8,
        requests=2,
        connection=MappingProxyType(
            {"auth_method": "AK/SK", "endpoint": "https://user:pw@dsc.example", "secret_key": "x"}
        ),
    )
    groups = (GroupListing(P1, CN, 3), GroupListing(P2, CN, 0, "project not found"))
    return AuditResult(inventory, coverage, findings, groups, meta)


def _facts(ws: Any) -> dict[Any, Any]:
    return {r[0].value: r[1].value for r in ws.iter_rows(max_col=2) if r[0].value}


def _text(ws: Any) -> list[str]:
    return [str(c.value) for row in ws.iter_rows() for c in row if c.value is not None]


def test_gap_task_names_are_new_and_fit_the_list_filter() -> None:
    assert gap_task_name(None, "once", CN, "20250101-000000") == (
        "bulkscan-once-cn-north-4-audit-20250101-000000"
    )
    assert gap_task_name("payments", None, CN, "s") == "payments-audit-s"
    long = gap_task_name("x" * 300, None, CN, "20250101-000000")
    assert len(long) == 256 and long.endswith("-audit-20250101-000000")


def test_audit_files_never_overwrite_an_earlier_audit(tmp_path: Path) -> None:
    first = audit_files(tmp_path, "inputs/My DBs.xlsx", "20250101-000000")
    assert first.audit.name == "My_DBs-audit-20250101-000000.xlsx"
    assert first.uncovered.name == "My_DBs-uncovered-20250101-000000.xlsx"
    first.audit.write_bytes(b"")
    second = audit_files(tmp_path, "inputs/My DBs.xlsx", "20250101-000000")
    assert second.audit.name == "My_DBs-audit-20250101-000000-2.xlsx"


def test_the_summary_shares_the_result_workbook_blocks(tmp_path: Path) -> None:
    result = _result()
    path = write_audit_workbook(result, tmp_path / "audit.xlsx", run_command="bulkscan run x")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Summary", "Coverage", "Uncovered", "Tasks", "Duplicates"]
    summary = wb["Summary"]
    facts = _facts(summary)
    assert facts["verdict"] == "NOT all covered"
    assert (facts["covered"], facts["not covered (no task)"]) == (1, 1)
    assert facts["not covered (only disabled tasks)"] == 1
    assert facts["unknown (project not listed)"] == 1
    assert (facts["tasks found"], facts["orphan tasks"], facts["disabled tasks"]) == (3, 1, 1)
    assert facts["tasks with enabled state unknown"] == 0  # all say
    # the provenance and settings blocks of the result workbook, same keys and rules
    assert facts["started (UTC)"] == dt.datetime(2025, 3, 1, 2, 0)
    assert facts["time zone of the run"] == "UTC+08:00"
    assert facts["duration (h:mm:ss)"] == "0:01:15"
    assert facts["endpoint"] == "https://***@dsc.example"  # never a password
    assert "secret_key" not in facts and "x" not in facts.values()
    assert facts[f"could not list {P2} / {CN}"] == "project not found"
    assert facts["projects/regions listed"] == "1 of 2"
    text = _text(summary)
    assert COVERAGE_RULE in text and ORPHAN_RULE in text
    assert len(summary._charts) == 2  # by status, and % covered by db_type
    # both charts sit right under the verdict block, seen without scrolling
    rows = [chart.anchor._from.row + 1 for chart in summary._charts]
    assert rows == [16, 16], rows
    assert facts["verdict"] and all(row < 20 for row in rows)


def test_notes_sit_under_the_tables(tmp_path: Path) -> None:
    result = _result()
    path = write_audit_workbook(result, tmp_path / "audit.xlsx")
    wb = openpyxl.load_workbook(path)
    coverage = wb["Coverage"]
    assert coverage.auto_filter.ref == "A1:O5"  # the table, not its notes
    assert coverage.cell(coverage.max_row, 1).value == COVERAGE_RULE
    assert coverage.cell(coverage.max_row, 1).font.b
    tasks = list(wb["Tasks"].iter_rows(values_only=True))
    assert tasks[-1][0] == "A disabled task does not count as coverage."
    uncovered = [r[0] for r in wb["Uncovered"].iter_rows(values_only=True)]
    assert uncovered[:3] == ["Instance ID", "ins-b", "ins-c"]
    assert any(str(v).startswith("2 instance(s) have no enabled task") for v in uncovered)


def test_the_uncovered_workbook_is_an_input_with_new_task_names(tmp_path: Path) -> None:
    result = _result()
    rows = uncovered_rows(result, stamp="s")
    assert [r["Instance ID"] for r in rows] == ["ins-b", "ins-c"]
    assert [r["region"] for r in rows] == [CN, CN]  # blank cells filled in
    assert {r["task"] for r in rows} == {f"bulkscan-default-{CN}-audit-s"}
    path = write_uncovered_workbook(result, tmp_path / "gap.xlsx", run_command="bulkscan run g")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["instances", "README"]
    assert [c.value for c in wb["instances"][1]] == [*HEADERS, UNCOVERED_REASON]
    reasons = [r[-1] for r in wb["instances"].iter_rows(min_row=2, values_only=True)]
    assert reasons[0].startswith("only disabled tasks name it (task-2 (2))")
    assert reasons[1] == f"no task in project {P1}, {CN} names it: run this row to create one"
    readme = _text(wb["README"])
    assert "Create the missing tasks with: bulkscan run g" in readme
    assert any(line.startswith("What to fix:") for line in readme)
    # the ids show in full: every column as wide as its longest value
    ids = wb["instances"].column_dimensions["A"].width
    assert ids >= len("Instance ID") + 2
    for ws in wb:
        assert ws.page_setup.orientation == "landscape"
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0
    assert wb["instances"].print_title_rows == "$1:$1"
