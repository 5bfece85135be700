"""The run journal: creation, reading back, resume checks, one writer at a time, damage."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from bulkscan import __version__
from bulkscan.errors import JournalError
from bulkscan.events import Attempt
from bulkscan.models import (
    DataSource,
    InputBook,
    Issue,
    Outcome,
    Plan,
    RawRow,
    RowRef,
    Sheet,
    TaskRequest,
)
from bulkscan.plan import RowStatus, RunInput, plan_hash, serialise_body, task_key
from bulkscan.run.rundir import (
    JOURNAL_FILE,
    LOCK_FILE,
    RunLockedError,
    SendTarget,
    create_run_dir,
    find_latest_run,
    lock_sending,
)
from bulkscan.run.states import TaskState
from bulkscan.run.store import SCHEMA_VERSION, Journal, PlanDiffers

if TYPE_CHECKING:
    from pathlib import Path

PID = "0123456789abcdef0123456789abcdef"
REGION = "cn-north-4"
FILE = "dbs.xlsx"
HEADERS = ("Instance ID", "DB Type", "Enabled", "Owner", "Since")
COLUMNS = ("ins_id", "db_type", "enabled", "owner", "since")
SINCE = dt.datetime(2024, 5, 1, 9, 30)


def _ref(row: int) -> RowRef:
    return RowRef(FILE, "instances", row)


def _request(seq: int, refs: tuple[RowRef, ...], project: str = PID) -> TaskRequest:
    sources = tuple(DataSource("MySQL", f"ins-{r.row}") for r in refs)
    name = f"bulkscan-default-{REGION}-{seq:03}"
    body: dict[str, Any] = {
        "data_sources": [s.to_json() for s in sources],
        "schedule_type": "ONCE",
        "start_time": 0,
        "task_description": "created by bulkscan",
        "task_name": name,
    }
    raw = serialise_body(body)
    return TaskRequest(
        task_key(project, REGION, raw), name, project, REGION, "default", sources, refs, raw
    )


def _book_and_plan() -> tuple[InputBook, Plan]:
    """Rows 2..7: 2,3 → task 1; 4 → task 2; 5 duplicates 2; 6 disabled; 7 invalid."""
    rows = tuple(
        RawRow(_ref(r), {"ins_id": f"ins-{r}", "db_type": "MySQL", "owner": f"=cmd{r}"})
        for r in range(2, 8)
    )
    rows = (RawRow(_ref(2), {**rows[0].values, "since": SINCE}), *rows[1:])
    sheet = Sheet(FILE, "instances", HEADERS, COLUMNS, rows)
    profiles = Sheet(
        FILE,
        "profiles",
        ("Name", "Schedule"),
        ("name", "schedule_type"),
        (RawRow(RowRef(FILE, "profiles", 2), {"name": "default", "schedule_type": "ONCE"}),),
    )
    book = InputBook(FILE, "ab" * 32, sheet, profiles, "xlsx")
    invalid = Issue("error", "'mysq' is not a known database type", _ref(7), column="db_type")
    warning = Issue("warning", "column 'Owner' is not used", file=FILE, sheet="instances")
    plan = Plan(
        tasks=(_request(1, (_ref(2), _ref(3))), _request(2, (_ref(4),))),
        skipped=(_ref(6),),
        duplicates=((_ref(5), _ref(2)),),
        issues=(invalid, warning),
    )
    return book, plan


def _create(run_dir: Path, **changes: Any) -> Journal:
    book, plan = _book_and_plan()
    kwargs: dict[str, Any] = {
        "run_input": RunInput.from_book(book, plan),
        "plan": plan,
        "plan_hash": plan_hash(plan),
        "settings": {"rate_per_s": 5.0, "concurrency": 8, "endpoint": "http://127.0.0.1:1"},
        "version": __version__,
        "command": ["bulkscan", "run", FILE],
    }
    kwargs.update(changes)
    return Journal.create(run_dir, **kwargs)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return create_run_dir(tmp_path / "reports", FILE, dt.datetime(2024, 6, 1, 12, 0, 0))


def _attempt(key: str, n: int, status: int | None, verdict: str) -> Attempt:
    at = dt.datetime.now().astimezone()
    return Attempt(at, key, n, "POST", f"/v1/{PID}/metadata/task-templates", status,
                         None, "req-1", 0.25, verdict)  # fmt: skip


# --- creating and reading back ------------------------------------------------------------


def test_run_dir_names_follow_the_input_and_never_collide(tmp_path: Path) -> None:
    when = dt.datetime(2024, 6, 1, 12, 0, 0)
    first = create_run_dir(tmp_path / "reports", "inputs/my dbs.xlsx", when)
    second = create_run_dir(tmp_path / "reports", "inputs/my dbs.xlsx", when)
    assert first.name == "my_dbs-20240601-120000"
    assert second.name == "my_dbs-20240601-120000-2"
    assert first.is_dir() and second.is_dir()


def test_a_new_journal_reads_back_everything_the_report_needs(run_dir: Path) -> None:
    _, plan = _book_and_plan()
    with _create(run_dir) as journal:
        meta = journal.meta()
        tasks = journal.tasks()
        rows = journal.rows()
        issues = journal.issues()
        profiles = journal.profile_rows()
        counts = journal.counts()
    assert meta.run_id == run_dir.name
    assert meta.schema_version == SCHEMA_VERSION
    assert meta.bulkscan_version == __version__
    assert meta.created_at.tzinfo is not None
    assert meta.started_at is None and meta.ended_at is None
    assert (meta.input_path, meta.input_sha256, meta.input_format) == (FILE, "ab" * 32, "xlsx")
    assert meta.plan_hash == plan_hash(plan)
    assert meta.settings["rate_per_s"] == 5.0
    assert meta.command == ("bulkscan", "run", FILE)
    assert meta.instances.headers == HEADERS
    assert meta.profiles is not None and meta.profiles.sheet == "profiles"
    assert meta.operator and meta.host

    assert [t.key for t in tasks] == [t.key for t in plan.tasks]
    assert all(t.state is TaskState.PENDING and t.attempts == 0 for t in tasks)
    assert tasks[0].rows == (_ref(2), _ref(3))
    assert tasks[0].request() == plan.tasks[0]  # the same bytes are sent on resume
    assert tasks[0].outcome is Outcome.NOT_ATTEMPTED
    assert counts[TaskState.PENDING] == 2 and sum(counts.values()) == 2

    assert [r.ref.row for r in rows] == [2, 3, 4, 5, 6, 7]
    statuses = [r.status for r in rows]
    assert statuses == [
        RowStatus.PLANNED,
        RowStatus.PLANNED,
        RowStatus.PLANNED,
        RowStatus.DUPLICATE,
        RowStatus.SKIPPED,
        RowStatus.INVALID,
    ]
    assert rows[0].task_key == rows[1].task_key == plan.tasks[0].key
    assert rows[2].task_key == plan.tasks[1].key
    assert rows[3].duplicate_of == _ref(2) and rows[3].task_key is None
    # original headers, sheet order, typed values (a date stays a date), text kept as text
    assert list(rows[0].values) == ["Instance ID", "DB Type", "Owner", "Since"]
    assert rows[0].values["Since"] == SINCE
    assert rows[0].values["Owner"] == "=cmd2"

    assert issues == plan.issues
    assert [p.values for p in profiles] == [{"Name": "default", "Schedule": "ONCE"}]


def test_state_changes_and_attempts_are_stored_and_survive_reopening(run_dir: Path) -> None:
    with _create(run_dir) as journal:
        first, second = (t.key for t in journal.tasks())
        journal.mark_started()
        journal.mark_sending(first)
        journal.record_attempt(_attempt(first, 1, 503, "transient"), state=TaskState.PENDING,
                               error_msg="HTTP 503")  # fmt: skip
        journal.mark_sending(first)
        journal.record_attempt(
            _attempt(first, 2, 200, "created"), state=TaskState.CREATED, task_id="1001"
        )
        journal.mark_sending(second)
        journal.mark_ended("interrupted", "stopped", learned_rate_per_s=2.5)
    with Journal.open(run_dir) as journal:
        done, sending = journal.tasks()
        attempts = journal.attempts()
        meta = journal.meta()
        counts = journal.counts()
    assert done.state is TaskState.CREATED and done.task_id == "1001"
    assert done.attempts == 2 and done.http_status == 200 and done.error_msg is None
    assert done.first_attempt_at is not None and done.last_attempt_at is not None
    assert done.first_attempt_at <= done.last_attempt_at
    assert sending.state is TaskState.SENDING and sending.outcome is Outcome.UNKNOWN
    assert [(a.n, a.status, a.verdict) for a in attempts] == [
        (1, 503, "transient"),
        (2, 200, "created"),
    ]
    assert meta.stop_reason == "interrupted" and meta.learned_rate_per_s == 2.5
    assert meta.started_at is not None and meta.ended_at is not None
    assert counts[TaskState.CREATED] == 1 and counts[TaskState.SENDING] == 1


def test_each_step_is_committed_when_it_returns_and_seen_by_another_reader(
    run_dir: Path,
) -> None:
    """A report reading during a run sees 'sending' before the request leaves, then the outcome."""
    with _create(run_dir) as journal, Journal.open(run_dir, readonly=True) as reader:
        first, second = (t.key for t in journal.tasks())
        journal.mark_sending(first)
        assert reader.states_and_attempts()[first] == (TaskState.SENDING, 0)
        journal.record_attempt(_attempt(first, 1, 503, "transient"), state=TaskState.PENDING,
                               error_msg="HTTP 503", throttled=True)  # fmt: skip
        journal.mark_sending(first)
        journal.record_attempt(
            _attempt(first, 2, 200, "created"), state=TaskState.CREATED, task_id="1001"
        )
        seen = reader.states_and_attempts()
        done = reader.task(first)
    assert seen == {first: (TaskState.CREATED, 2), second: (TaskState.PENDING, 0)}
    assert done.throttled == 1 and done.task_id == "1001" and done.error_msg is None
    assert done.request_id == "req-1" and done.last_latency_s == 0.25


async def test_grouped_changes_share_a_commit_that_sending_waits_for(run_dir: Path) -> None:
    """Group commit: outcomes wait a few ms for company; a mark is durable once awaited."""
    with _create(run_dir) as journal, Journal.open(run_dir, readonly=True) as reader:
        first, second = (t.key for t in journal.tasks())
        with journal.grouped():
            journal.mark_sending(first)
            journal.record_attempt(
                _attempt(first, 1, 200, "created"), state=TaskState.CREATED, task_id="1001"
            )
            journal.mark_sending(second)
            # nothing committed yet: another reader still sees the plan as it was
            assert reader.states_and_attempts()[first] == (TaskState.PENDING, 0)
            await journal.committed()  # all three changes, in one transaction
            assert reader.states_and_attempts() == {
                first: (TaskState.CREATED, 1),
                second: (TaskState.SENDING, 0),
            }
            journal.set_state(second, TaskState.UNKNOWN, error_msg="no answer")
            assert journal.states()[second] is TaskState.UNKNOWN  # its own reads see all
            assert reader.states()[second] is TaskState.UNKNOWN  # (and committed it first)
            journal.set_state(second, TaskState.FAILED)
        assert reader.states()[second] is TaskState.FAILED  # the group's end commits the rest
        journal.set_state(second, TaskState.PENDING)  # not grouped: committed on return
        assert reader.states()[second] is TaskState.PENDING


async def test_marks_of_busy_workers_share_one_commit(run_dir: Path) -> None:
    """A mark whose commit expects another worker's waits for it (the window at most) and
    both are committed together when it asks; a caller whose company never comes is still
    committed within the window."""
    with _create(run_dir) as journal, Journal.open(run_dir, readonly=True) as reader:
        first, second = (t.key for t in journal.tasks())
        with journal.grouped():
            journal.mark_sending(first)
            waiting = asyncio.ensure_future(journal.committed(expect=2))
            await asyncio.sleep(0)  # the loop turns: alone, it would have been committed
            assert not waiting.done()
            assert reader.states_and_attempts()[first] == (TaskState.PENDING, 0)
            journal.mark_sending(second)
            await journal.committed(expect=2)  # the second of two: at once, for both
            await asyncio.sleep(0)  # the first wakes at the next turn, its commit made
            assert waiting.done()
            assert reader.states_and_attempts() == {
                first: (TaskState.SENDING, 0),
                second: (TaskState.SENDING, 0),
            }
            journal.set_state(first, TaskState.UNKNOWN)
            await asyncio.wait_for(journal.committed(expect=8), timeout=5)  # none joins
            assert reader.states()[first] is TaskState.UNKNOWN


async def test_a_grouped_change_to_an_unknown_task_fails_its_commit(run_dir: Path) -> None:
    with _create(run_dir) as journal, journal.grouped():
        first = journal.tasks()[0].key
        journal.mark_sending(first)
        journal.mark_sending("no-such-task")
        with pytest.raises(KeyError):
            await journal.committed()
        with pytest.raises(KeyError):  # and every later use says so
            journal.counts()
    with Journal.open(run_dir, readonly=True) as after:  # the others were committed
        assert after.states()[first] is TaskState.SENDING


def test_marking_an_unknown_task_sending_is_refused(run_dir: Path) -> None:
    with _create(run_dir) as journal:
        with pytest.raises(KeyError):
            journal.mark_sending("no-such-task")
        assert journal.counts()[TaskState.SENDING] == 0


def test_a_journal_written_with_the_older_tables_still_works(run_dir: Path) -> None:
    """Earlier journals indexed tasks.state and numbered attempts with AUTOINCREMENT."""
    _create(run_dir).close()
    conn = sqlite3.connect(run_dir / JOURNAL_FILE, isolation_level=None)
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'attempts'").fetchone()[0]
    conn.executescript(
        "BEGIN; CREATE INDEX tasks_state ON tasks (state); DROP TABLE attempts;"
        + ddl.replace("INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
        + "; COMMIT;"
    )
    conn.close()
    with Journal.open(run_dir) as journal:
        first, _ = (t.key for t in journal.tasks())
        for n in (1, 2):
            journal.mark_sending(first)
            journal.record_attempt(_attempt(first, n, 503, "transient"), state=TaskState.PENDING)
        attempts = journal.attempts()
        counts = journal.counts()
    assert [(a.id, a.n) for a in attempts] == [(1, 1), (2, 2)]
    assert counts[TaskState.PENDING] == 2


def test_project_failure_fails_only_pending_tasks_in_one_step(run_dir: Path) -> None:
    with _create(run_dir) as journal:
        first, second = (t.key for t in journal.tasks())
        journal.set_state(first, TaskState.CREATED, task_id="7")
        changed = journal.fail_tasks([first, second], error_msg="project gone", http_status=404)
        states = journal.states()
    assert changed == 1
    assert states == {first: TaskState.CREATED, second: TaskState.FAILED}


def test_a_conflict_keeps_both_source_lists(run_dir: Path) -> None:
    theirs = (DataSource("MySQL", "ins-99"),)
    with _create(run_dir) as journal:
        key = journal.tasks()[0].key
        journal.set_state(key, TaskState.CONFLICT, error_msg="name taken", conflict=("42", theirs))
        task = journal.task(key)
    assert task.conflict_task_id == "42" and task.conflict_sources == theirs
    assert task.sources == (DataSource("MySQL", "ins-2"), DataSource("MySQL", "ins-3"))


def test_settings_that_look_like_secrets_are_refused(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="secret"):
        _create(run_dir, settings={"secret_key": "x"})
    assert not (run_dir / JOURNAL_FILE).exists()


def test_a_resume_is_recorded_without_secrets(run_dir: Path) -> None:
    _create(run_dir).close()
    with Journal.open(run_dir) as journal:
        assert journal.meta().last_resume is None
        assert journal.meta().last_command == ("bulkscan", "run", FILE)
        with pytest.raises(ValueError, match="secret"):
            journal.mark_resumed(["bulkscan", "run", FILE], {"token": "x"})
        assert journal.meta().last_resume is None  # refused: nothing written
        journal.mark_resumed(["bulkscan", "run", FILE, "--resume"], {"rate_per_s": 2.0})
    with Journal.open(run_dir, readonly=True) as journal:
        meta = journal.meta()
    assert meta.last_command == ("bulkscan", "run", FILE, "--resume")
    with Journal.open(run_dir) as journal:  # resumed through the library: no command to keep
        journal.mark_resumed([], {"rate_per_s": 2.0})
        assert journal.meta().last_command == ("bulkscan", "run", FILE)
    assert meta.command == ("bulkscan", "run", FILE)  # the run's first command stays
    assert meta.last_resume is not None and meta.last_resume.settings == {"rate_per_s": 2.0}


def test_a_run_directory_with_a_journal_is_never_overwritten(run_dir: Path) -> None:
    _create(run_dir).close()
    before = (run_dir / JOURNAL_FILE).read_bytes()
    with pytest.raises(JournalError, match="already has a journal"):
        _create(run_dir)
    assert (run_dir / JOURNAL_FILE).read_bytes() == before  # refused, not removed either


def test_a_read_only_journal_refuses_writes(run_dir: Path) -> None:
    _create(run_dir).close()
    with Journal.open(run_dir, readonly=True) as journal:
        key = journal.tasks()[0].key
        with pytest.raises(JournalError, match="read-only"):
            journal.mark_sending(key)


# --- resume checks --------------------------------------------------------------------------


def test_resume_refuses_a_changed_input_and_a_changed_plan(run_dir: Path) -> None:
    book, plan = _book_and_plan()
    own = "bulkscan run dbs.xlsx --region cn-north-4 --resume 'reports/dbs run'"
    with _create(run_dir) as journal:
        journal.check_same_input(book.sha256, plan_hash(plan), resume_command=own)  # accepted
        with pytest.raises(JournalError, match=r"dbs\.xlsx has changed.*without --resume"):
            journal.check_same_input("cd" * 32, plan_hash(plan), resume_command=own)
        with pytest.raises(PlanDiffers, match=r"plan differs.*without --resume") as differs:
            journal.check_same_input(book.sha256, "0" * 64, resume_command=own)
    assert str(differs.value).endswith(f"resume this one with its own options: {own}")
    assert differs.value.resume_command == own


def test_the_settle_window_is_the_longest_any_session_sent_under(run_dir: Path) -> None:
    """A resume given a shorter --settle waits out the window its tasks were sent with."""
    with _create(run_dir, settings={"dispatch": {"settle_s": 8.0}}) as journal:
        assert journal.meta().settle_window_s is None  # a journal before any session
        assert journal.settle_window(1.0) == 8.0  # the first session's, from its settings
        assert journal.settle_window(20.0) == 20.0  # a longer one is taken
        assert journal.settle_window(1.0) == 20.0  # and kept for every later resume
    with Journal.open(run_dir, readonly=True) as journal:
        assert journal.meta().settle_window_s == 20.0


def test_the_latest_run_of_an_input_is_found(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    assert find_latest_run(reports, FILE) is None
    old = create_run_dir(reports, FILE, dt.datetime(2024, 1, 1, 8, 0, 0))
    _create(old).close()
    for _ in range(11):  # suffixes -2..-11 sort as numbers, not text
        newer = create_run_dir(reports, FILE, dt.datetime(2024, 1, 2, 8, 0, 0))
        _create(newer).close()
    create_run_dir(reports, FILE, dt.datetime(2024, 1, 3, 8, 0, 0))  # empty: no journal
    create_run_dir(reports, "other.xlsx", dt.datetime(2024, 1, 4, 8, 0, 0))
    latest = find_latest_run(reports, FILE)
    assert latest is not None and latest.name == "dbs-20240102-080000-11"


# --- one run at a time ------------------------------------------------------------------------


def test_a_second_writer_in_the_same_process_is_refused(run_dir: Path) -> None:
    with _create(run_dir):
        with pytest.raises(JournalError, match=r"in use by another bulkscan process \(pid \d+\)"):
            Journal.open(run_dir)
        with Journal.open(run_dir, readonly=True) as reader:  # a report may read meanwhile
            assert len(reader.tasks()) == 2
    Journal.open(run_dir).close()  # released on close


def test_a_writer_in_another_process_is_named_by_its_pid(run_dir: Path) -> None:
    _create(run_dir).close()
    holder = textwrap.dedent(
        f"""
        import sys
        from bulkscan.run.store import Journal
        j = Journal.open({str(run_dir)!r})
        print("ready", flush=True)
        sys.stdin.read()
        j.close()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(JournalError, match=rf"pid {proc.pid}\b"):
            Journal.open(run_dir)
    finally:
        proc.communicate("", timeout=10)
    Journal.open(run_dir).close()  # the lock went with the process


def test_a_second_sender_to_the_same_project_is_refused_naming_the_first(tmp_path: Path) -> None:
    target = SendTarget("https://dsc.example", "p1", "id-hash")
    other = SendTarget("https://dsc.example", "p2", "id-hash")
    events: list[object] = []
    with lock_sending([target], events.append) as record:
        record(tmp_path / "first-run")
        with (
            pytest.raises(RunLockedError, match=rf"pid {os.getpid()}, run directory \S*first-run"),
            lock_sending([other, target], events.append),
        ):
            pass  # pragma: no cover
        with lock_sending([other], events.append):
            pass  # another project is free
    with lock_sending([target], events.append):
        pass  # released on leaving
    assert events == []  # nothing was held by a dead process


# --- refusing journals that cannot be trusted ------------------------------------------------


def test_a_directory_without_a_journal_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="not a bulkscan run directory"):
        Journal.open(tmp_path)


def test_a_missing_path_or_a_file_is_named_as_such(tmp_path: Path) -> None:
    """``bulkscan status inventory.xlsx`` (the input, not its run) says what was given."""
    where = "(give the directory that bulkscan run created under reports/)"
    with pytest.raises(JournalError) as missing:
        Journal.open(tmp_path / "gone")
    assert str(missing.value) == f"{tmp_path / 'gone'} not found {where}"
    (tmp_path / "dbs.xlsx").write_bytes(b"")
    with pytest.raises(JournalError) as a_file:
        Journal.open(tmp_path / "dbs.xlsx")
    assert str(a_file.value) == f"{tmp_path / 'dbs.xlsx'} is a file, not a run directory {where}"


def test_a_journal_from_a_newer_bulkscan_is_refused(run_dir: Path) -> None:
    _create(run_dir).close()
    with sqlite3.connect(run_dir / JOURNAL_FILE) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(JournalError, match=r"newer bulkscan.*schema 99.*upgrade"):
        Journal.open(run_dir)
    with pytest.raises(JournalError, match="newer bulkscan"):
        Journal.open(run_dir, readonly=True)


def test_a_file_that_is_not_a_database_is_refused(run_dir: Path) -> None:
    (run_dir / JOURNAL_FILE).write_bytes(b"this is not sqlite at all\n" * 100)
    with pytest.raises(JournalError, match=r"damaged.*nothing was read"):
        Journal.open(run_dir)
    with pytest.raises(JournalError, match="damaged"):  # a second try meets the same error,
        Journal.open(run_dir)  # not a lock left behind by the first


def test_a_truncated_journal_is_refused(run_dir: Path) -> None:
    _create(run_dir).close()
    path = run_dir / JOURNAL_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(JournalError, match="damaged"):
        Journal.open(run_dir)


def test_a_journal_missing_a_table_or_a_run_fact_is_refused(run_dir: Path) -> None:
    _create(run_dir).close()
    with sqlite3.connect(run_dir / JOURNAL_FILE) as conn:
        conn.execute("DROP TABLE attempts")
    conn.close()
    with pytest.raises(JournalError, match=r"damaged.*attempts"):
        Journal.open(run_dir)


def test_a_journal_missing_run_facts_is_refused(run_dir: Path) -> None:
    _create(run_dir).close()
    with sqlite3.connect(run_dir / JOURNAL_FILE) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'plan_hash'")
    conn.close()
    with pytest.raises(JournalError, match=r"damaged.*plan_hash"):
        Journal.open(run_dir)


def test_a_half_written_journal_is_not_a_journal(run_dir: Path) -> None:
    """A crash while creating leaves only the temporary file: nothing to resume."""
    (run_dir / (JOURNAL_FILE + ".tmp")).write_bytes(b"partial")
    with pytest.raises(JournalError, match="not a bulkscan run directory"):
        Journal.open(run_dir)
    _create(run_dir).close()  # and a new journal can still be written there
    assert not (run_dir / (JOURNAL_FILE + ".tmp")).exists()


def test_an_interrupted_create_leaves_nothing_half_written(run_dir: Path) -> None:
    """Ctrl-C while the journal is written: no temporary file, no journal, lock released."""

    def interrupted() -> dt.datetime:  # asked for the creation time, inside the write
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _create(run_dir, now=interrupted)
    assert {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}
    _create(run_dir).close()  # the folder is free: the lock went with the interrupt


def test_a_real_workbook_is_journaled_row_by_row_under_its_own_headers(tmp_path: Path) -> None:
    """openpyxl → loader → validate → plan → journal: every row, by key, in input order."""
    from openpyxl import Workbook

    from bulkscan.config import InputSettings
    from bulkscan.input.loader import load_input
    from bulkscan.input.validate import validate
    from bulkscan.plan import build_plan

    path = tmp_path / "estate.xlsx"
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "instances"
    ws.append(["Instance ID", "DB Type", "Enabled", "Cost centre"])
    ws.append(["ins-a", "MySQL", "yes", "cc-1"])
    ws.append(["ins-b", "PostgreSQL", "no", "cc-2"])
    ws.append(["ins-a", "MySQL", "yes", "cc-3"])  # repeats row 2
    ws.append([None, "MySQL", "yes", "cc-4"])  # no instance id: an error, never planned
    ws.append(["ins-d", "PostgreSQL", None, "cc-5"])
    wb.save(path)

    settings = InputSettings(project_id=PID, region=REGION)
    book = load_input(path, limits=settings.limits)
    validated = validate(book, settings)
    plan = build_plan(validated)
    run_dir = create_run_dir(tmp_path / "reports", path)
    run_input = RunInput.from_book(book, plan)
    with Journal.create(
        run_dir,
        run_input=run_input,
        plan=plan,
        plan_hash=plan_hash(plan),
        settings={},
        version=__version__,
    ) as journal:
        rows = journal.rows()
        tasks = {t.key: t for t in journal.tasks()}
        issues = journal.issues()
    assert [r.ref.row for r in rows] == [2, 3, 4, 5, 6]
    assert [r.status for r in rows] == [
        RowStatus.PLANNED,
        RowStatus.SKIPPED,
        RowStatus.DUPLICATE,
        RowStatus.INVALID,
        RowStatus.PLANNED,
    ]
    assert rows[2].duplicate_of == rows[0].ref
    for row in (rows[0], rows[4]):
        assert row.task_key is not None
        assert row.ref in tasks[row.task_key].rows
    assert rows[0].values["Cost centre"] == "cc-1"  # a carried column, under its own header
    assert "Instance ID" in rows[0].values and "ins_id" not in rows[0].values
    assert any(i.ref == rows[3].ref and i.severity == "error" for i in issues)


def test_column_formats_are_kept_and_an_older_journal_has_none(run_dir: Path) -> None:
    book, plan = _book_and_plan()
    formats = {"Since": "yyyy-mm-dd", "Owner": "@"}
    book = dataclasses.replace(book, instances=dataclasses.replace(book.instances, formats=formats))
    _create(run_dir, run_input=RunInput.from_book(book, plan)).close()
    with Journal.open(run_dir, readonly=True) as journal:
        meta = journal.meta()
    assert meta.instances.formats == formats
    assert meta.profiles is not None and meta.profiles.formats == {}
    with sqlite3.connect(run_dir / JOURNAL_FILE) as conn:  # as a journal written before
        for key in ("instances", "profiles"):
            (text,) = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            layout = json.loads(text)
            del layout["formats"]
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(layout), key))
    conn.close()
    with Journal.open(run_dir, readonly=True) as journal:
        meta = journal.meta()
    assert meta.instances.headers == HEADERS and meta.instances.formats == {}
    assert meta.profiles is not None and meta.profiles.formats == {}
