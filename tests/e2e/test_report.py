"""The result workbook, built from a real journal of a real dispatch against the simulator.

The mixed run: an input workbook written with openpyxl is loaded, validated and planned; the
simulator (127.0.0.1) already holds one planned task (→ exists) and a task of a planned name
with other data sources (→ conflict); the first planned task is refused (start time beyond
the service's range → failed 400), a second project is unknown (→ failed 404, unsent), and
the last task meets 503s until it gives up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import openpyxl
import pytest

from bulkscan import __version__, runner
from bulkscan.cli import main
from bulkscan.config import DispatchSettings, InputSettings
from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.events import Attempt, AttemptStarted, Event
from bulkscan.input.loader import load_input
from bulkscan.input.validate import validate
from bulkscan.models import Outcome, Status
from bulkscan.plan import RunInput, build_plan, content_digest, plan_hash, serialise_body
from bulkscan.report.cells import DATETIME_FORMAT
from bulkscan.report.results import (
    RESULTS_FILE,
    RETRY_FILE,
    RETRY_REASON,
    build_report,
    rerun_command,
    resume_command,
)
from bulkscan.run.dispatch import dispatch
from bulkscan.run.rundir import JOURNAL_FILE, create_run_dir
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from bulkscan.models import Plan

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
REGION = "cn-north-4"
INJECTION = '=HYPERLINK("http://x","y")'
SINCE = dt.datetime(2024, 5, 1, 9, 30)
SETTINGS = InputSettings(start_time_unit="ms")
FAST = DispatchSettings(
    rate_per_s=200.0, concurrency=4, max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02,
    read_timeout_s=2.0, grace_s=1.0,
)  # fmt: skip
HEADERS = ["Instance ID", "DB Type", "Project", "Region", "Profile", "Owner", "Since", "Enabled"]
PROFILE_HEADERS = ["Profile", "Start Time", "Description", "Max Sources"]


def _row(ins: str, project: str = P1, profile: str = "default", **kw: Any) -> list[Any]:
    db = kw.get("db", "MySQL")
    return [ins, db, project, REGION, profile, kw.get("owner"), kw.get("since"), kw.get("on")]


ROWS = [
    _row(INJECTION, profile="far", owner=INJECTION, since=SINCE, on="yes"),  # 2: task 0, 400
    _row("ins-e", project=P2),  # 3: task 1 (unknown project: 404, unsent)
    _row("ins-f", project=P2),  # 4: task 1
    _row("ins-a", owner="alice"),  # 5: task 2 (created)
    _row("ins-b", db="PostgreSQL"),  # 6: task 2
    _row("ins-c"),  # 7: task 3 (exists)
    _row("ins-d"),  # 8: task 3
    _row("ins-g", on="no"),  # 9: skipped
    _row("ins-a", owner="again"),  # 10: duplicate of row 5
    _row("ins-h"),  # 11: task 4 (conflict)
    _row("ins-i"),  # 12: task 4
    _row("ins-j"),  # 13: task 5 (gave up)
]
PROFILES = [
    ["default", None, "created by bulkscan", 2],
    ["far", dt.datetime(2030, 1, 1), "starts after the service's range", 50],
    ["unused", None, "never used", 5],
]
EXPECTED = [Outcome.FAILED, Outcome.FAILED, Outcome.CREATED, Outcome.EXISTS,
            Outcome.CONFLICT, Outcome.GAVE_UP]  # fmt: skip


def _write_input(path: Path, rows: list[list[Any]] = ROWS) -> Path:
    """An inventory as a user's spreadsheet holds it: formula-like text stored as text."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "instances"
    for values in [HEADERS, *rows]:
        ws.append(values)
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"
    profiles = wb.create_sheet("profiles")
    for values in [PROFILE_HEADERS, *PROFILES]:
        profiles.append(values)
    wb.save(path)
    return path


def _prepare(path: Path) -> tuple[Any, Plan]:
    book = load_input(path)
    validated = validate(book, SETTINGS)
    assert not validated.has_errors, validated.issues
    plan = build_plan(validated)
    assert not plan.has_errors
    return book, plan


def _client(session: aiohttp.ClientSession, sim: Simulator) -> DscClient:
    return DscClient(
        session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(sim.url), read_timeout_s=2.0
    )


def _create_journal(run_dir: Path, book: Any, plan: Plan, command: list[str]) -> Journal:
    settings = runner.run_settings(
        FAST, SETTINGS, {"auth_method": "aksk", "endpoint": "https://u:pw@127.0.0.1"}, limit=None
    )
    return Journal.create(
        run_dir,
        run_input=RunInput.from_book(book, plan),
        plan=plan,
        plan_hash=plan_hash(plan),
        settings=settings,
        version=__version__,
        command=command,
    )


@dataclass(frozen=True, slots=True)
class Mixed:
    input_path: Path
    run_dir: Path
    plan: Plan


async def _mixed_run(tmp_path: Path, sim: Simulator, session: aiohttp.ClientSession) -> Mixed:
    source = _write_input(tmp_path / "dbs.xlsx")
    book, plan = _prepare(source)
    assert [len(t.sources) for t in plan.tasks] == [1, 2, 2, 2, 2, 1]
    client = _client(session, sim)
    await client.create_task(P1, plan.tasks[3].body_bytes, region=REGION)  # → exists
    other = {
        **json.loads(plan.tasks[4].body_bytes),
        "data_sources": [{"db_type": "MySQL", "ins_id": "old"}],
    }
    await client.create_task(P1, serialise_body(other), region=REGION)  # → conflict
    run_dir = create_run_dir(tmp_path / "reports", source)
    command = ["bulkscan", "run", str(source), "--start-time-unit", "ms", "--limit", "5",
               "--yes"]  # fmt: skip
    with _create_journal(run_dir, book, plan, command) as journal:
        await asyncio.wait_for(dispatch(plan.tasks, journal, client, FAST, limit=5), 20)

        def _fail_from_now_on(event: Event) -> None:
            if isinstance(event, AttemptStarted):
                sim.set_faults(Faults(http503=1.0))

        await asyncio.wait_for(
            dispatch(plan.tasks, journal, client, FAST, observer=_fail_from_now_on), 20
        )
    sim.set_faults(Faults())
    return Mixed(source, run_dir, plan)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(projects=[P1], seed=5) as s:
        yield s


@pytest.fixture
async def mixed(tmp_path: Path, sim: Simulator, session: aiohttp.ClientSession) -> Mixed:
    return await _mixed_run(tmp_path, sim, session)


def _sheet(ws: Any) -> list[dict[str, Any]]:
    """A table sheet as dicts keyed by header (first occurrence)."""
    rows = list(ws.iter_rows())
    headers = [c.value for c in rows[0]]
    return [{h: c for h, c in reversed(list(zip(headers, row, strict=True)))} for row in rows[1:]]


def _values(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    wb = openpyxl.load_workbook(path)
    return {ws.title: [tuple(c.value for c in r) for r in ws.iter_rows()] for ws in wb}


def _summary(ws: Any) -> dict[str, Any]:
    return {r[0].value: r[1].value for r in ws.iter_rows(max_col=2) if r[0].value}


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _close(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < dt.timedelta(milliseconds=1)


# --- the mixed run -------------------------------------------------------------------------


async def test_tasks_sheet_matches_the_journal(mixed: Mixed) -> None:
    paths = build_report(mixed.run_dir)
    with Journal.open(mixed.run_dir, readonly=True) as journal:
        tasks = journal.tasks()
    assert [t.outcome for t in tasks] == EXPECTED
    lines = _sheet(openpyxl.load_workbook(paths.results)["Tasks"])
    assert len(lines) == len(tasks)
    for line, task in zip(lines, tasks, strict=True):
        assert line["task name"].value == task.name
        assert line["project"].value == task.project_id
        assert line["outcome"].value == str(task.outcome)
        assert line["DSC task id"].value == task.task_id
        assert line["HTTP status"].value == task.http_status
        assert line["error code"].value == task.error_code
        assert line["attempts"].value == task.attempts
        assert line["data sources"].value == len(task.sources)
        assert line["task key"].value == task.key
        assert line["input rows"].value == ", ".join(str(r.row) for r in task.rows)
        first = line["first attempt (UTC)"]
        assert _close(first.value, _utc(task.first_attempt_at))
        if task.first_attempt_at is not None:
            assert isinstance(first.value, dt.datetime) and first.is_date
    by_name = {line["task name"].value: line for line in lines}
    assert by_name[tasks[0].name]["HTTP status"].value == 400
    assert by_name[tasks[0].name]["outcome"].fill.fgColor.rgb.endswith("FFC7CE")
    assert lines[1]["error code"].value == "dsc.40400001"
    assert lines[1]["attempts"].value == 0  # failed with its project, never sent
    assert "already exists" in lines[4]["message"].value
    assert lines[4]["existing task's data sources"].value == "MySQL:old"
    assert lines[5]["outcome"].value == "gave up" and lines[5]["HTTP status"].value == 503


async def test_rows_sheet_links_rows_to_tasks_by_key(mixed: Mixed) -> None:
    paths = build_report(mixed.run_dir)
    with Journal.open(mixed.run_dir, readonly=True) as journal:
        rows, by_key = journal.rows(), {t.key: t for t in journal.tasks()}
    ws = openpyxl.load_workbook(paths.results)["Rows"]
    headers = [c.value for c in ws[1]]
    # identity first (frozen), then the result, then the carried input columns
    assert headers[:9] == [
        "source file",
        "source sheet",
        "source row",
        "Instance ID",
        "outcome",
        "task name",
        "message",
        "DSC task id",
        "row status",
    ]
    assert headers[9:] == [h for h in HEADERS if h != "Instance ID"]
    assert ws.freeze_panes == "E2"
    lines = _sheet(ws)
    assert [line["source row"].value for line in lines] == list(range(2, 14))
    for line, row in zip(lines, rows, strict=True):
        assert line["row status"].value == str(row.status)
        for header in HEADERS:
            assert line[header].value == row.values.get(header)
        if row.task_key is not None:
            task = by_key[row.task_key]
            assert line["task name"].value == task.name
            assert line["outcome"].value == str(task.outcome)
            assert line["DSC task id"].value == task.task_id
    # The first two tasks failed; every later row still carries its own task and id.
    first, later = lines[0], lines[3]
    assert (first["outcome"].value, first["DSC task id"].value) == ("failed", None)
    assert lines[1]["outcome"].value == lines[2]["outcome"].value == "failed"
    assert later["outcome"].value == "created" and later["DSC task id"].value
    created_id = by_key[rows[3].task_key or ""].task_id
    assert later["DSC task id"].value == created_id
    assert lines[4]["DSC task id"].value == created_id  # same task as row 5
    assert lines[5]["outcome"].value == "exists" and lines[5]["DSC task id"].value != created_id
    assert lines[7]["outcome"].value == "skipped" and lines[7]["task name"].value is None
    assert lines[8]["task name"].value == later["task name"].value  # duplicate of row 5
    assert "row 5" in lines[8]["message"].value
    assert lines[0]["Since"].value == SINCE and lines[0]["Since"].is_date


async def test_input_and_service_text_is_inert(mixed: Mixed) -> None:
    with Journal.open(mixed.run_dir) as journal:
        task = journal.tasks()[0]
        attempt = Attempt(
            dt.datetime.now().astimezone(), task.key, task.attempts + 1, "POST", "/v1/x", 400,
            "dsc.40000011", "=rid", 0.1, "task-permanent", "=cmd|' /C calc'!A0",
        )  # fmt: skip
        journal.record_attempt(attempt, state=TaskState.FAILED, error_msg="=1+SUM(A1:A9)")
    paths = build_report(mixed.run_dir)
    wb = openpyxl.load_workbook(paths.results)
    row2 = _sheet(wb["Rows"])[0]
    for cell in (row2["Instance ID"], row2["Owner"]):
        assert cell.value == INJECTION and cell.data_type == "s"
    task_line = _sheet(wb["Tasks"])[0]
    assert task_line["message"].value == "=1+SUM(A1:A9)"
    assert task_line["message"].data_type == "s"
    last = _sheet(wb["Attempts"])[-1]
    assert last["message"].value == "=cmd|' /C calc'!A0" and last["message"].data_type == "s"
    assert last["request id"].value == "=rid" and last["request id"].data_type == "s"
    for path in (paths.results, paths.retry):
        assert path is not None
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("xl/worksheets/"):
                    xml = archive.read(name).decode()
                    assert "<f>" not in xml and "<f " not in xml, name


async def test_issues_and_attempts_sheets_match_the_journal(mixed: Mixed) -> None:
    paths = build_report(mixed.run_dir)
    with Journal.open(mixed.run_dir, readonly=True) as journal:
        issues, attempts = journal.issues(), journal.attempts()
        names = {t.key: t.name for t in journal.tasks()}
    wb = openpyxl.load_workbook(paths.results)
    issue_lines = _sheet(wb["Issues"])
    assert [(i["severity"].value, i["message"].value) for i in issue_lines] == [
        (i.severity, i.message) for i in issues
    ]
    assert any(i["row"].value == 10 and i["severity"].value == "warning" for i in issue_lines)
    lines = _sheet(wb["Attempts"])
    assert len(lines) == len(attempts) > 6
    for line, attempt in zip(lines, attempts, strict=True):
        assert _close(line["time (UTC)"].value, _utc(attempt.at))
        assert line["method"].value == attempt.method
        assert line["HTTP status"].value == attempt.status
        assert line["outcome class"].value == attempt.verdict
        assert line["request id"].value == attempt.request_id
        assert line["task name"].value == names.get(attempt.task_key or "", line["task name"].value)
    verdicts = Counter(line["outcome class"].value for line in lines)
    assert verdicts["created"] >= 1 and verdicts["task-permanent"] == 1
    sends = Counter(line["outcome class"].value for line in lines if line["method"].value == "POST")
    assert sends["transient"] == 2  # the gave-up task: two 503s
    # the run's last listing (names created twice) met the 503s too: a GET, never a resend
    assert verdicts["transient"] > sends["transient"]


async def test_summary_counts_command_and_chart(mixed: Mixed) -> None:
    paths = build_report(mixed.run_dir)
    ws = openpyxl.load_workbook(paths.results)["Summary"]
    facts = _summary(ws)
    with Journal.open(mixed.run_dir, readonly=True) as journal:
        meta = journal.meta()
    assert facts["run id"] == meta.run_id == mixed.run_dir.name
    assert facts["status"] == "done"
    assert facts["input SHA-256"] == meta.input_sha256
    assert facts["plan hash"] == plan_hash(mixed.plan)
    assert isinstance(facts["started (UTC)"], dt.datetime)
    assert facts["dispatch.rate_per_s"] == 200
    assert facts["endpoint"] == "https://***@127.0.0.1"  # never a password
    assert facts["auth_method"] == "aksk"
    assert facts["regions"] == REGION
    expected = f"bulkscan run {paths.retry} --start-time-unit ms --yes"
    assert facts["re-run the failures"] == expected == paths.rerun_command
    assert "1 task(s) need a decision" in facts["conflicts"]
    labels = [r[0].value for r in ws.iter_rows(max_col=1)]
    top = labels.index("outcome")  # the header row of the outcome table
    table = {r[0].value: r[1].value for r in ws.iter_rows(min_row=top + 2, max_row=top + 10)}
    assert table == {str(o): EXPECTED.count(o) for o in Outcome}
    assert labels[top + 10] == "total"
    assert paths.counts[Outcome.FAILED] == 2
    codes = [r[0].value for r in ws.iter_rows(max_col=1)]
    assert "dsc.40400001" in codes and "APIG.0613" in codes and "dsc.40000011" in codes
    assert len(ws._charts) == 1
    # at a glance: "done" is not green while tasks failed; settings come after the facts
    assert ws["B2"].value == "done" and ws["B2"].fill.fgColor.rgb.endswith("FFE0B2")
    assert facts["tasks"] == "4 of 6 task(s) did not succeed"
    assert labels.index("Settings (no secrets are kept)") > labels.index("Run")
    assert labels.index("Run") > labels.index("Input rows") > labels.index("Errors by code")
    chart = ws._charts[0]
    assert chart.x_axis.tickLblSkip == 1 and chart.dataLabels.showVal
    colours = {p.idx: _rgb(p.graphicalProperties.solidFill) for p in chart.series[0].dPt}
    assert len(colours) == len(Outcome) == len(set(colours.values()))  # one per outcome
    assert colours[list(Outcome).index(Outcome.FAILED)] == "C62828"


async def test_every_sheet_prints_landscape_one_page_wide(mixed: Mixed) -> None:
    paths = build_report(mixed.run_dir)
    for path in (paths.results, paths.retry):
        assert path is not None
        for ws in openpyxl.load_workbook(path):
            setup = ws.page_setup
            assert (setup.orientation, setup.fitToWidth, setup.fitToHeight) == ("landscape", 1, 0)
            assert ws.sheet_properties.pageSetUpPr.fitToPage
            if ws.title not in {"Summary", "README"}:
                assert ws.print_title_rows == "$1:$1", ws.title  # the header on every page


async def test_retry_holds_exactly_the_failed_rows_and_loads_back(mixed: Mixed) -> None:
    paths = build_report(mixed.run_dir)
    assert paths.retry is not None
    assert (paths.retry_tasks, paths.retry_rows) == (3, 4)
    wb = openpyxl.load_workbook(paths.retry)
    assert wb.sheetnames == ["instances", "profiles", "README"]
    lines = [[c.value for c in r] for r in wb["instances"].iter_rows()]
    # the input's headers, in order; task names added; the reason last
    assert lines[0] == [*HEADERS, "task", RETRY_REASON]
    assert [line[0] for line in lines[1:]] == [INJECTION, "ins-e", "ins-f", "ins-j"]
    assert wb["instances"]["A2"].data_type == "s"
    assert lines[1][6] == SINCE
    reasons = [line[-1] for line in lines[1:]]
    assert reasons[0].startswith("failed: HTTP 400 dsc.40000011") and "fix this" in reasons[0]
    assert reasons[1] == reasons[2] and "dsc.40400001" in reasons[1]
    assert reasons[3].startswith("gave up after 2 attempt(s): ") and "re-run as is" in reasons[3]
    widths = wb["instances"].column_dimensions
    assert widths["A"].width >= len(INJECTION) + 2  # the ids show in full
    profiles = [[c.value for c in r] for r in wb["profiles"].iter_rows()]
    assert [p[0] for p in profiles] == ["Profile", "default", "far"]
    readme = [str(r[0]) for r in wb["README"].iter_rows(values_only=True) if r[0]]
    assert f"Then run: {paths.rerun_command}" in readme
    assert any(line.startswith("2 task(s) failed: DSC refused the task") for line in readme)
    assert any(line.startswith("1 task(s) gave up: ") for line in readme)
    assert any(line.startswith("Not here: 1 conflict task(s)") for line in readme)
    for ws in wb:
        assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToHeight == 0
    book, plan = _prepare(paths.retry)
    # The same tasks, byte for byte: same names, sources, bodies and keys.
    assert [t.key for t in plan.tasks] == [mixed.plan.tasks[i].key for i in (0, 1, 5)]
    assert book.instances.headers == (*HEADERS, "task", RETRY_REASON)


async def test_retry_fed_back_finishes_the_job_without_duplicates(
    mixed: Mixed, sim: Simulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    retry = build_report(mixed.run_dir).retry
    assert retry is not None
    before = Counter(t["name"] for t in sim.tasks)
    book, plan = _prepare(retry)
    run_dir = create_run_dir(tmp_path / "reports", retry)
    with _create_journal(run_dir, book, plan, ["bulkscan", "run", str(retry)]) as journal:
        client = _client(session, sim)
        await asyncio.wait_for(dispatch(plan.tasks, journal, client, FAST), 20)
        outcomes = [t.outcome for t in journal.tasks()]
    assert outcomes == [Outcome.FAILED, Outcome.FAILED, Outcome.CREATED]  # 400, 404, created
    after = Counter(t["name"] for t in sim.tasks)
    assert set(after.values()) == {1}, "a task was created twice"
    assert after - before == Counter({mixed.plan.tasks[5].name: 1})
    second = build_report(run_dir)
    assert second.retry is not None and second.retry_tasks == 2


async def test_rebuilding_gives_identical_cells(mixed: Mixed) -> None:
    first = build_report(mixed.run_dir, now=lambda: dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    results, retry = _values(first.results), _values(first.retry)  # type: ignore[arg-type]
    second = build_report(mixed.run_dir, now=lambda: dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    again = _values(second.results)
    assert _values(second.retry) == retry  # type: ignore[arg-type]
    assert again.keys() == results.keys() == {"Summary", "Tasks", "Rows", "Issues", "Attempts"}
    differ = [
        (title, i)
        for title in results
        for i, (a, b) in enumerate(zip(results[title], again[title], strict=True))
        if a != b
    ]
    assert len(differ) == 1
    title, index = differ[0]
    assert title == "Summary" and results[title][index][0] == "report generated (UTC)"


# --- other runs ----------------------------------------------------------------------------


async def test_a_crashed_run_is_reported_from_its_journal(tmp_path: Path) -> None:
    book, plan = _prepare(_write_input(tmp_path / "dbs.xlsx"))
    run_dir = create_run_dir(tmp_path / "reports", "dbs.xlsx")
    journal = _create_journal(run_dir, book, plan, ["bulkscan", "run", "dbs.xlsx"])
    journal.mark_started()
    journal.mark_sending(plan.tasks[1].key)  # sending when the process died
    try:  # the writer still holds the run directory: the report needs no lock...
        live = build_report(run_dir)
        running = _summary(openpyxl.load_workbook(live.results)["Summary"])
    finally:
        journal.close()
    # ...and says the run goes on, advising nothing (a resume would be refused, a re-run
    # would send what the run is sending)
    assert running["status"] == "running" and live.running_pid is not None
    assert running["next step"].startswith("none while the run goes on (pid ")
    assert live.next_command is None and live.status is Status.INCOMPLETE
    paths = build_report(run_dir)  # the writer is gone: killed
    ws = openpyxl.load_workbook(paths.results)["Summary"]
    facts = _summary(ws)
    assert facts["status"] == paths.run_status == "unfinished"
    assert paths.status is Status.STOPPED and paths.running_pid is None
    assert facts["ended (UTC)"] is None
    resume = f"bulkscan run {book.path} --resume {run_dir}"
    assert facts["not finished"] == (
        "6 task(s) not sent yet or of unknown outcome (never in retry.xlsx: the resume looks "
        f"them up before sending); resume with: {resume}"
    )
    assert paths.next_command == paths.resume_command == resume
    assert paths.counts[Outcome.UNKNOWN] == 1 and paths.counts[Outcome.NOT_ATTEMPTED] == 5
    # rows 3 and 4 (task 1, in flight): outcome unknown, so for the resume, never retry.xlsx
    assert paths.retry is None and paths.retry_rows == 0 and paths.rerun_command is None
    assert not (run_dir / RETRY_FILE).exists()
    tasks = _sheet(openpyxl.load_workbook(paths.results)["Tasks"])
    assert tasks[0]["message"].value == "not sent yet: resume the run to send it"
    assert tasks[1]["message"].value.startswith("outcome unknown: resume the run to look it up")


async def test_no_retry_workbook_when_nothing_failed(
    tmp_path: Path, sim: Simulator, session: aiohttp.ClientSession
) -> None:
    rows = [_row(f"ok-{i}") for i in range(3)]
    book, plan = _prepare(_write_input(tmp_path / "ok.xlsx", rows))
    run_dir = create_run_dir(tmp_path / "reports", "ok.xlsx")
    (run_dir / RETRY_FILE).write_bytes(b"stale")
    with _create_journal(run_dir, book, plan, []) as journal:
        await asyncio.wait_for(dispatch(plan.tasks, journal, _client(session, sim), FAST), 20)
    paths = build_report(run_dir)
    assert paths.retry is None and paths.rerun_command is None
    assert not (run_dir / RETRY_FILE).exists()
    ws = openpyxl.load_workbook(paths.results)["Summary"]
    facts = _summary(ws)
    assert facts["re-run the failures"].startswith("nothing to re-run")
    assert ws["B2"].value == "done" and ws["B2"].fill.fgColor.rgb.endswith("C6EFCE")  # green
    assert facts["tasks"] == "all 2 task(s) succeeded"
    assert paths.counts[Outcome.CREATED] == 2


def test_a_run_stopped_with_every_task_settled_is_resumed_in_the_summary_too(
    tmp_path: Path,
) -> None:
    """Interrupted after its last create, before the closing listing: nothing is unfinished,
    yet the run stopped (exit 3), and the Summary names the resume as run and report do."""
    rows = [_row(f"ok-{i}") for i in range(3)]
    book, plan = _prepare(_write_input(tmp_path / "ok.xlsx", rows))
    run_dir = create_run_dir(tmp_path / "reports", "ok.xlsx")
    with _create_journal(run_dir, book, plan, ["bulkscan", "run", "ok.xlsx"]) as journal:
        journal.mark_started()
        for task in plan.tasks:
            journal.set_state(task.key, TaskState.CREATED, task_id=f"id-{task.key[:6]}")
        journal.mark_ended("interrupted", "stopped on request")
    paths = build_report(run_dir)
    assert (paths.status, paths.tally.unfinished) == (Status.STOPPED, 0)
    assert paths.next_command == paths.resume_command
    facts = _summary(openpyxl.load_workbook(paths.results)["Summary"])
    assert facts["not finished"] == (
        f"the run stopped before it looked for names created twice; resume with: "
        f"{paths.resume_command}"
    )


def test_rerun_command_keeps_options_and_drops_resume_and_limit(tmp_path: Path) -> None:
    book, plan = _prepare(_write_input(tmp_path / "dbs.xlsx"))
    run_dir = create_run_dir(tmp_path / "reports", "dbs.xlsx")
    command = ["bulkscan", "run", "in/dbs.xlsx", "--resume", "reports/dbs-1", "--limit=3",
               "--rate", "5/s", "--endpoint", "http://127.0.0.1:1", "--yes"]  # fmt: skip
    with _create_journal(run_dir, book, plan, command) as journal:
        meta = journal.meta()
    retry = run_dir / "retry me.xlsx"
    assert rerun_command(meta, retry) == (
        f"bulkscan run '{retry}' --rate 5/s --endpoint http://127.0.0.1:1 --yes"
    )
    assert resume_command(meta, run_dir) == (
        f"bulkscan run {book.path} --rate 5/s --endpoint http://127.0.0.1:1 --yes "
        f"--resume {run_dir}"
    )


def test_resume_and_rerun_keep_the_config_options_typed_before_run(tmp_path: Path) -> None:
    book, plan = _prepare(_write_input(tmp_path / "dbs.xlsx"))
    run_dir = create_run_dir(tmp_path / "reports", "dbs.xlsx")
    command = ["bulkscan", "--config", "team.toml", "--config-profile=sim", "run",
               "in/dbs.xlsx", "--limit", "3", "--yes"]  # fmt: skip
    with _create_journal(run_dir, book, plan, command) as journal:
        meta = journal.meta()
    before_run = "bulkscan --config team.toml --config-profile=sim run "
    assert resume_command(meta, run_dir) == f"{before_run}{book.path} --yes --resume {run_dir}"
    assert rerun_command(meta, run_dir / "retry.xlsx").startswith(before_run)


async def test_cli_report_rebuilds_and_prints(mixed: Mixed, capsys: Any) -> None:
    (mixed.run_dir / RESULTS_FILE).unlink(missing_ok=True)
    assert main(["report", str(mixed.run_dir), "--json"]) == 1  # done, with failures
    document = json.loads(capsys.readouterr().out)
    assert document["results"] == str(mixed.run_dir / RESULTS_FILE)
    assert document["retry"] == str(mixed.run_dir / RETRY_FILE)
    assert document["outcomes"]["failed"] == 2 and document["retry_rows"] == 4
    assert (document["status"], document["run_status"], document["unfinished"]) == (
        "incomplete", "done", 0
    )  # fmt: skip
    # the run's closing listing could not look for names created twice (503s): as the run
    # itself ended, the audit comes before the re-run (which would only add to copies)
    assert document["next"]["command"] == f"bulkscan audit {mixed.run_dir.parent.parent}/dbs.xlsx"
    assert document["next"]["why"].startswith("names created twice were not looked for")
    assert document["rerun_command"].startswith("bulkscan run ")
    assert document["resume_command"] is None
    assert (mixed.run_dir / RESULTS_FILE).is_file()
    assert main(["report", str(mixed.run_dir)]) == 1
    out = capsys.readouterr().out
    assert "gave up" in out and "1 task(s) need a decision" in out and "resume" not in out
    assert out.rstrip().splitlines()[-1].endswith(f"bulkscan dedupe on the audit workbook: "
                                                  f"{document['next']['command']}")  # fmt: skip


def test_cli_report_of_a_folder_without_journal(tmp_path: Path, capsys: Any) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a bulkscan run directory" in capsys.readouterr().err


def test_retry_of_a_csv_input_rebuilds_the_same_named_tasks(tmp_path: Path) -> None:
    """Profiles whose name pattern uses {task}: the retried tasks keep their names and keys."""
    instances = tmp_path / "dbs.csv"
    instances.write_text(
        "ins_id,db_type,project_id,region,profile,task\n"
        f"c-1,MySQL,{P1},{REGION},tagged,alpha\n"
        f"c-2,MySQL,{P1},{REGION},tagged,alpha\n"
        f"c-3,mysql,{P1},{REGION},tagged,beta\n"
        f"c-4,MySQL,{P1},{REGION},,\n",
        encoding="utf-8",
    )
    profiles = tmp_path / "profiles.csv"
    profiles.write_text(
        "profile,task_name,max_sources\ntagged,{profile}-{task}-{seq:02},1\n", encoding="utf-8"
    )
    book = load_input(instances, profiles_path=profiles)
    plan = build_plan(validate(book, SETTINGS))
    names = [t.name for t in plan.tasks]
    digest = content_digest(P1, REGION, [("MySQL", "c-4")])
    assert names == ["tagged-alpha-01", "tagged-alpha-02", "tagged-beta-03",
                     f"bulkscan-default-cn-north-4-{digest}"]  # fmt: skip
    run_dir = create_run_dir(tmp_path / "reports", instances)
    with _create_journal(run_dir, book, plan, ["bulkscan", "run", str(instances)]) as journal:
        journal.fail_tasks([t.key for t in plan.tasks[1:]], error_msg="refused", http_status=400)
    paths = build_report(run_dir)
    assert paths.retry is not None and paths.retry_rows == 3
    assert paths.rerun_command == f"bulkscan run {paths.retry}"  # --profiles: inside it
    wb = openpyxl.load_workbook(paths.retry)
    assert wb.sheetnames == ["instances", "profiles", "README"]
    assert [c.value for c in wb["profiles"][2]] == ["tagged", "{task}", "1"]
    retried = build_plan(validate(load_input(paths.retry), SETTINGS))
    assert [t.name for t in retried.tasks] == names[1:]
    assert [t.key for t in retried.tasks] == [t.key for t in plan.tasks[1:]]


# Input columns with number formats of their own: a date, a percent, a custom currency.
CNY = '#,##0.00 "CNY"'
FORMATS = {"Since": "yyyy-mm-dd", "Share": "0%", "Cost": CNY}


def _formatted_input(path: Path) -> list[list[Any]]:
    """An input whose columns Since, Share and Cost have formats (Owner: General); its rows."""
    rows = [
        [*_row("ins-a", owner="alice", since=SINCE), 0.25, 1234.5],
        [*_row("ins-b", project=P2, owner="bob", since=dt.datetime(2023, 1, 2)), 0.5, 9.99],
    ]
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "instances"
    for values in [[*HEADERS, "Share", "Cost"], *rows]:
        ws.append(values)
    for column in ws.iter_cols(min_row=1, max_row=1):
        for cell in ws[column[0].column_letter][1:]:
            cell.number_format = FORMATS.get(column[0].value, "General")
    wb.save(path)
    return rows


async def _formatted_run(
    tmp_path: Path, sim: Simulator, session: aiohttp.ClientSession
) -> tuple[Path, list[list[Any]]]:
    """A run of an input whose columns Since, Share and Cost have formats (Owner: General);
    the second project is unknown, so its row fails and goes to retry.xlsx."""
    rows = _formatted_input(tmp_path / "fmt.xlsx")
    book, plan = _prepare(tmp_path / "fmt.xlsx")
    run_dir = create_run_dir(tmp_path / "reports", "fmt.xlsx")
    with _create_journal(run_dir, book, plan, ["bulkscan", "run", "fmt.xlsx"]) as journal:
        await asyncio.wait_for(dispatch(plan.tasks, journal, _client(session, sim), FAST), 20)
    return run_dir, rows


async def test_carried_columns_keep_the_number_formats_of_the_input(
    tmp_path: Path, sim: Simulator, session: aiohttp.ClientSession
) -> None:
    run_dir, rows = await _formatted_run(tmp_path, sim, session)
    paths = build_report(run_dir)
    sheet = _sheet(openpyxl.load_workbook(paths.results)["Rows"])
    assert [r["outcome"].value for r in sheet] == ["created", "failed"]
    for line, row in zip(sheet, rows, strict=True):
        for header, value in zip([*HEADERS, "Share", "Cost"], row, strict=True):
            assert line[header].value == value
        assert {h: line[h].number_format for h in FORMATS} == FORMATS
        assert line["Owner"].number_format == "General"
        assert line["Instance ID"].number_format == "General"
    assert paths.retry is not None and paths.retry_rows == 1
    retry = _sheet(openpyxl.load_workbook(paths.retry)["instances"])
    assert [(retry[0][h].value, retry[0][h].number_format) for h in FORMATS] == [
        (rows[1][6], "yyyy-mm-dd"), (0.5, "0%"), (9.99, CNY)
    ]  # fmt: skip
    assert retry[0]["Owner"].number_format == "General"


async def test_the_audits_uncovered_rows_keep_the_number_formats_of_the_input(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Nothing is scanned yet: the row of the known project is uncovered (the other project
    cannot be listed), in the audit workbook's Uncovered sheet and in the uncovered workbook a
    run takes back, each column in its input's format."""
    rows = _formatted_input(tmp_path / "fmt.xlsx")
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", DEFAULT_AK)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", DEFAULT_SK)
    argv = ["audit", str(tmp_path / "fmt.xlsx"), "--endpoint", sim.url, "--reports-dir",
            str(tmp_path / "r"), "--any-db-type", "--json"]  # fmt: skip
    code = await asyncio.to_thread(main, argv)
    said = json.loads(capsys.readouterr().out)
    assert code == 1 and said["outcomes"] == {"not_covered": 1, "unknown": 1}, said
    uncovered = _sheet(openpyxl.load_workbook(said["uncovered_workbook"])["instances"])
    audit = _sheet(openpyxl.load_workbook(said["workbook"])["Uncovered"])
    for lines in (uncovered, audit):
        sheet = [line for line in lines if line["Region"].value]  # not the notes below the table
        assert [line["Cost"].value for line in sheet] == [rows[0][-1]]
        for line in sheet:
            assert {h: line[h].number_format for h in FORMATS} == FORMATS
            assert line["Owner"].number_format == "General"


async def test_a_journal_written_before_formats_were_kept_still_reports(
    tmp_path: Path, sim: Simulator, session: aiohttp.ClientSession
) -> None:
    run_dir, rows = await _formatted_run(tmp_path, sim, session)
    with sqlite3.connect(run_dir / JOURNAL_FILE) as conn:  # its layout without formats
        (text,) = conn.execute("SELECT value FROM meta WHERE key = 'instances'").fetchone()
        layout = json.loads(text)
        assert layout.pop("formats") == FORMATS
        conn.execute("UPDATE meta SET value = ? WHERE key = 'instances'", (json.dumps(layout),))
    conn.close()
    paths = build_report(run_dir)
    sheet = _sheet(openpyxl.load_workbook(paths.results)["Rows"])
    assert [r["Cost"].value for r in sheet] == [row[-1] for row in rows]
    assert {sheet[0][h].number_format for h in ("Share", "Cost", "Owner")} == {"General"}
    assert sheet[0]["Since"].number_format == DATETIME_FORMAT  # what any date-time shows in
    assert paths.retry is not None


def _rgb(fill: Any) -> str:
    """A chart fill's colour, as openpyxl reads it back (a ColorChoice or its text)."""
    return str(fill if isinstance(fill, str) else fill.srgbClr if isinstance(fill.srgbClr, str)
               else fill.srgbClr.val)  # fmt: skip
