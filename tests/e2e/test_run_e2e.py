"""``bulkscan run`` end to end against the project's DSC simulator on 127.0.0.1.

The proofs of the run: under faults, throttling, SIGKILL and Ctrl-C every planned task is
created exactly once and every input row is accounted for; fatal answers stop at once; the
rate limit holds as the simulator itself measures it.  The CLI runs as a subprocess (a real
``python -m bulkscan run``) wherever signals or the exit code matter; the simulator runs in
the test's event loop, so its tasks and statistics are read directly.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import re
import shlex
import signal
import socket
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import openpyxl
import pytest

from bulkscan import runner
from bulkscan.config import DispatchSettings
from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.plan import RowStatus
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal, TaskRecord
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator, region_endpoint
from tests.e2e._cli import bulkscan, finish, sim_env, start

if TYPE_CHECKING:
    from collections.abc import Sequence

P1 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
P2 = "5e4d3c2b1a0f9e8d7c6b5a4938271605"
REGION = "cn-north-4"
PROFILE_HEADERS = ("profile", "schedule_type", "start_now", "task_name", "max_sources")


# --- inputs ----------------------------------------------------------------------------------


def write_inventory(path: Path, n: int, *, projects: Sequence[str] = (P1, P2)) -> Path:
    """``n`` instances over ``projects``, one data source per task: ``n`` rows, ``n`` tasks."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile", "owner"])
    for i in range(n):
        sheet.append([f"ins-{i:05}", "MySQL", projects[i % len(projects)], REGION, "single", "ops"])
    profiles = book.create_sheet("profiles")
    profiles.append(list(PROFILE_HEADERS))
    profiles.append(["single", "ONCE", True, "{profile}-{project:.8}-{seq:04}", 1])
    book.save(path)
    return path


def planned(path: Path) -> runner.Prepared:
    prepared = runner.prepare(path)
    assert len({t.name for t in prepared.plan.tasks}) == len(prepared.plan.tasks)
    return prepared


# --- the CLI as a subprocess -----------------------------------------------------------------


def run_args(inventory: Path, sim: Simulator, reports: Path, *more: str) -> list[str | Path]:
    return ["run", inventory, "--endpoint", sim.url, "--yes", "--reports-dir", reports, *more]


async def wait_for_tasks(
    sim: Simulator, count: int, proc: asyncio.subprocess.Process, *, limit_s: float = 30.0
) -> None:
    """Until the simulator holds ``count`` tasks or ``proc`` has ended (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while len(sim.tasks) < count and proc.returncode is None:
        assert loop.time() < deadline, f"the simulator still has {len(sim.tasks)} task(s)"
        await asyncio.sleep(0.002)


# --- checks ----------------------------------------------------------------------------------


def assert_exactly_once(sim: Simulator, prepared: runner.Prepared) -> None:
    """Every planned task exists once in the simulator, in its project, with its body."""
    by_name = Counter(t["name"] for t in sim.tasks)
    assert [n for n, c in by_name.items() if c > 1] == []  # no duplicate
    plan = {t.name: t for t in prepared.plan.tasks}
    assert sorted(by_name) == sorted(plan)  # nothing missing, nothing extra
    for remote in sim.tasks:
        task = plan[remote["name"]]
        assert remote["project_id"] == task.project_id
        assert remote["body"] == json.loads(task.body_bytes)


def journal_tasks(run_dir: Path) -> tuple[TaskRecord, ...]:
    with Journal.open(run_dir, readonly=True) as journal:
        return journal.tasks()


def assert_journal_matches(run_dir: Path, sim: Simulator) -> None:
    """Every task of the journal is created, with the id the simulator gave it."""
    ids = {t["name"]: t["id"] for t in sim.tasks}
    tasks = journal_tasks(run_dir)
    assert Counter(t.state for t in tasks) == {TaskState.CREATED: len(tasks)}
    assert {t.name: t.task_id for t in tasks} == ids


def only_run_dir(reports: Path) -> Path:
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    return run_dir


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()}


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _connection(sim: Simulator) -> runner.Connection:
    return runner.Connection(
        credentials=AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url)
    )


def rows_sheet(results: Path) -> list[dict[str, Any]]:
    book = openpyxl.load_workbook(results, read_only=True)
    try:
        lines = list(book["Rows"].iter_rows(values_only=True))
    finally:
        book.close()
    headers = [str(h) for h in lines[0]]
    blank = (None,) * len(headers)  # a read-only sheet leaves out trailing empty cells
    return [dict(zip(headers, (*line, *blank), strict=False)) for line in lines[1:]]


# --- faults ----------------------------------------------------------------------------------

FAULTS = Faults(
    http500=0.025,
    http502=0.025,
    http503=0.025,
    http504=0.025,
    http429=0.05,
    reset_after=0.02,
    stall=0.01,
    stall_s=0.6,
)
QUICK = DispatchSettings(
    rate_per_s=200.0,
    concurrency=8,
    max_attempts=10,
    backoff_base_s=0.01,
    backoff_max_s=0.1,
    read_timeout_s=0.3,
    grace_s=2.0,
    settle_s=0.5,
)


@pytest.mark.slow
async def test_under_faults_every_task_is_created_once_and_every_row_accounted_for(
    tmp_path: Path,
) -> None:
    prepared = planned(write_inventory(tmp_path / "dbs.xlsx", 300))
    assert len(prepared.plan.tasks) == 300
    async with Simulator(faults=FAULTS, seed=3) as sim:
        resume: Path | bool = False
        runs = 0
        while runs < 10:  # a task whose create met an ambiguous fault is never resent in
            runs += 1  # its run: left unknown (exit 3), looked up and sent by a resume
            result = await runner.run(
                prepared,
                connection=_connection(sim),
                dispatch_settings=QUICK,
                reports_dir=tmp_path / "reports",
                resume=resume,
            )
            if not result.counts.get(TaskState.UNKNOWN):
                break
            assert result.status is runner.Status.STOPPED
            assert result.unfinished == result.counts[TaskState.UNKNOWN]
            resume = result.run_dir
        seen = Counter(sim.stats["requests"])
        assert runs > 1  # the faults did leave outcomes unknown
        assert result.dispatch.stop_reason == "done"
        assert_exactly_once(sim, prepared)
        assert_journal_matches(result.run_dir, sim)
        ids = {t["name"]: t["id"] for t in sim.tasks}
    # every kind of fault did happen, in about the intended share of the requests
    for kind in ("http500", "http502", "http503", "http504", "http429", "reset_after", "stalled"):
        assert seen[kind] > 0, (kind, seen)
    assert 0.07 <= sum(seen[f"http50{d}"] for d in "0234") / seen.total() <= 0.14, seen
    assert 0.025 <= seen["http429"] / seen.total() <= 0.08, seen
    # every input row is accounted for, in the journal and in the result workbook
    with Journal.open(result.run_dir, readonly=True) as journal:
        rows = journal.rows()
    assert [r.ref.row for r in rows] == list(range(2, 302))
    assert {r.status for r in rows} == {RowStatus.PLANNED}
    report = runner.write_report(result.run_dir)
    sheet = rows_sheet(report.results)
    assert [line["source row"] for line in sheet] == list(range(2, 302))
    assert {line["outcome"] for line in sheet} == {"created"}
    assert {line["task name"]: line["DSC task id"] for line in sheet} == ids
    assert report.retry is None


# --- SIGKILL and resume ------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_run_killed_at_random_moments_then_resumed_creates_each_task_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(20240611)
    inventory = write_inventory(tmp_path / "kill.xlsx", 200)
    prepared = planned(inventory)
    reports = tmp_path / "reports"
    # random delays before the service acts, and stalls after it acted (created, answered
    # 50 ms later), so that kills land both before and after a task exists in the service
    faults = Faults(jitter_s=0.03, stall=0.3, stall_s=0.05)
    kills = left_sending = created_unrecorded = 0
    async with Simulator(faults=faults, seed=8) as sim:
        args = run_args(inventory, sim, reports, "--rate", "100/s", "--settle", "1")
        for round_ in range(12):
            resume = ["--resume"] if round_ else []
            proc = await start(tmp_path, *args, *resume)
            await wait_for_tasks(sim, len(sim.tasks) + rng.randint(1, 25), proc)
            await asyncio.sleep(rng.uniform(0.0, 0.02))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            done = await finish(proc)
            assert done.code in (-signal.SIGKILL, 0), done.err
            sending = {
                t.name for t in journal_tasks(only_run_dir(reports)) if t.state is TaskState.SENDING
            }
            left_sending += len(sending)
            created_unrecorded += len(sending & {t["name"] for t in sim.tasks})
            if kills == 6:
                break
        assert kills >= 5
        # the kills hit requests in flight, some of them already applied by the service (on a
        # loaded machine every one in flight may have been applied before its kill landed)
        assert left_sending >= created_unrecorded > 0
        assert len(sim.tasks) < len(prepared.plan.tasks)  # the kills did leave work to resume
        final = await bulkscan(tmp_path, *args, "--resume")
        assert final.code == 0, final.err
        assert_exactly_once(sim, prepared)
        assert_journal_matches(only_run_dir(reports), sim)


# --- fatal and project-wide errors ------------------------------------------------------------


async def test_a_wrong_secret_key_stops_the_run_after_one_request(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 20)
    reports = tmp_path / "reports"
    wrong = "not-the-secret-key-0123456789"
    async with Simulator() as sim:
        # without the asset-centre check, the first request is the first listing of the run
        args = run_args(inventory, sim, reports, "--no-remote-check")
        done = await bulkscan(tmp_path, *args, env=sim_env(sk=wrong))
        stats = sim.stats
        assert sim.tasks == []
    assert done.code == 3
    assert stats["requests"] == {"unauthorized": 1}
    assert len(stats["arrivals"]) == 1
    said = done.out + done.err
    assert "APIGW.0301" in said
    assert "check the AK/SK" in said and "never retries" in said
    assert "--resume" in done.out
    assert wrong not in said
    assert "Traceback" not in said
    tasks = journal_tasks(only_run_dir(reports))
    assert {t.state for t in tasks} == {TaskState.PENDING}
    assert sum(t.attempts for t in tasks) == 0


async def test_a_missing_project_fails_its_own_tasks_only(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 30)
    prepared = planned(inventory)
    reports = tmp_path / "reports"
    async with Simulator(projects=[P1]) as sim:
        # the dispatcher's own handling of a missing project (the check holds its rows back)
        args = run_args(inventory, sim, reports, "--rate", "200/s", "--no-remote-check")
        done = await bulkscan(tmp_path, *args)
        stats = sim.stats
        created = sorted(t["name"] for t in sim.tasks)
        url = sim.url
    assert done.code == 1, done.err
    assert created == sorted(t.name for t in prepared.plan.tasks if t.project_id == P1)
    assert stats["by_project"][P2] == {"project_not_found": 1}  # one listing, no create
    tasks = journal_tasks(only_run_dir(reports))
    for task in tasks:
        if task.project_id == P1:
            assert task.state is TaskState.CREATED
        else:
            assert (task.state, task.error_code) == (TaskState.FAILED, "dsc.40400001")
            assert task.error_msg and "check project_id and region" in task.error_msg
    assert "dsc.40400001" in done.out
    assert "Traceback" not in done.err
    # the re-run command keeps the run's own options, with the retry workbook as input
    (rerun,) = re.findall(r"re-run the failures after fixing them: (.+)$", done.out, re.M)
    retry = only_run_dir(reports) / "retry.xlsx"
    assert shlex.split(rerun) == [
        "bulkscan", "run", str(retry), "--endpoint", url, "--yes",
        "--reports-dir", str(reports), "--rate", "200/s", "--no-remote-check",
    ]  # fmt: skip


# --- the rate limit, as the service sees it ----------------------------------------------------


async def _existing_tasks(sim: Simulator, project: str, n: int) -> None:
    """``n`` tasks that the inventory does not plan, created beforehand (no limiter)."""
    gate = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as session:
        client = DscClient(session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(sim.url))

        async def create(i: int) -> None:
            body = {
                "task_name": f"made-by-hand-{i:05}",
                "data_sources": [{"db_type": "MySQL", "ins_id": f"other-{i:05}"}],
                "schedule_type": "ONCE",
                "start_time": 0,
                "task_description": "",
            }
            async with gate:
                await client.create_task(project, json.dumps(body).encode(), region=REGION)

        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(create(i))


@pytest.mark.slow
async def test_the_service_never_sees_more_than_the_rate_in_any_second(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "rate.xlsx", 500, projects=(P1,))
    reports = tmp_path / "reports"
    async with Simulator() as sim:
        # the project already holds 1,500 tasks: the first listing takes 2 pages (a full
        # one, then one larger than total_num), which count against the rate like any other
        await _existing_tasks(sim, P1, 1500)
        before = len(sim.stats["arrivals"])
        done = await bulkscan(tmp_path, *run_args(inventory, sim, reports, "--rate", "50/s"))
        stats = sim.stats
        assert len(sim.tasks) == 2000
    assert done.code == 0, done.err
    assert stats["requests"]["listed"] >= 2
    arrivals = sorted(stats["arrivals"][before:])
    # the asset centre's listings (one per instance type, in an empty asset centre) count too
    assert stats["requests"]["assets_instances"] == 5
    assert len(arrivals) == 500 + stats["requests"]["listed"] + 5
    # the busiest half-open window [t, t + 1 s) starts at an arrival
    busiest = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert busiest <= 50


# --- canary, resume, refusals ------------------------------------------------------------------


async def test_a_canary_then_resume_sends_the_rest_with_json_events_and_workbook(
    tmp_path: Path,
) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 30)
    prepared = planned(inventory)
    reports = tmp_path / "reports"
    async with Simulator() as sim:
        args = run_args(inventory, sim, reports, "--rate", "200/s", "--json")
        canary = await bulkscan(tmp_path, *args, "--limit", "5")
        assert canary.code == 0, canary.err
        first = json.loads(canary.out)
        assert first["outcomes"] == {"created": 5, "pending": 25}
        assert sorted(t["name"] for t in sim.tasks) == sorted(
            t.name for t in prepared.plan.tasks[:5]
        )
        rest = await bulkscan(tmp_path, *args, "--resume")
        assert rest.code == 0, rest.err
        second = json.loads(rest.out)
        assert_exactly_once(sim, prepared)
    assert second["outcomes"] == {"created": 30}
    assert second["run_dir"] == first["run_dir"]
    assert (second["exit_code"], second["stop_reason"], second["retry"]) == (0, "done", None)
    run_dir = only_run_dir(reports)
    assert Path(second["results"]) == run_dir / "results.xlsx"
    assert {"results.xlsx", "events.jsonl", "journal.sqlite"} <= files_in(run_dir)
    events = read_events(run_dir)
    finished = [e["name"] for e in events if e["event"] == "TaskFinished"]
    assert sorted(finished) == sorted(t.name for t in prepared.plan.tasks)
    assert [e["reason"] for e in events if e["event"] == "RunStopped"] == ["done", "done"]


async def test_resume_refuses_a_changed_input(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 10)
    reports = tmp_path / "reports"
    async with Simulator() as sim:
        args = run_args(inventory, sim, reports, "--rate", "200/s")
        canary = await bulkscan(tmp_path, *args, "--limit", "2")
        assert canary.code == 0, canary.err
        book = openpyxl.load_workbook(inventory)
        book["instances"]["F2"] = "another owner"  # a carried column: the plan is the same
        book.save(inventory)
        refused = await bulkscan(tmp_path, *args, "--resume")
        assert len(sim.tasks) == 2
    assert refused.code == 2
    assert "has changed since run" in refused.err
    assert "restore the original file" in refused.err and "without --resume" in refused.err
    assert "Traceback" not in refused.err


async def test_a_resume_whose_options_change_the_plan_names_the_runs_own_resume(
    tmp_path: Path,
) -> None:
    """A resume with another --project-id and --region would plan other tasks: refused
    (exit 2) with the run's own resume command, quoted for a shell and as ``next``;
    following it finishes that run, in its directory, rather than starting another."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type"])  # blank project and region: the options decide
    for i in range(6):
        sheet.append([f"ins-{i:05}", "MySQL"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "max_sources"])
    profiles.append(["default", 1])  # one task per row
    inventory = tmp_path / "in6.xlsx"
    book.save(inventory)
    reports = tmp_path / "reports"
    async with Simulator() as sim:
        endpoint = region_endpoint(sim.url)  # holds {region}: quoted in a shell command
        base = ["run", inventory, "--endpoint", endpoint, "--yes", "--reports-dir", reports,
                "--no-remote-check"]  # fmt: skip
        canary = await bulkscan(tmp_path, *base, "--limit", "2", "--project-id", P1,
                                "--region", REGION)  # fmt: skip
        assert canary.code == 0, canary.err
        run_dir = only_run_dir(reports)
        other = ["--resume", "--project-id", P2, "--region", "ap-southeast-1"]
        refused = await bulkscan(tmp_path, *base, *other)
        answer = await bulkscan(tmp_path, *base, *other, "--json")
        assert len(sim.tasks) == 2
        own = ["bulkscan", "run", str(inventory), "--endpoint", endpoint, "--yes",
               "--reports-dir", str(reports), "--no-remote-check", "--project-id", P1,
               "--region", REGION, "--resume", str(run_dir)]  # fmt: skip
        assert refused.code == 2, refused.err
        assert "plan differs" in refused.err and shlex.join(own) in refused.err, refused.err
        document = json.loads(answer.out)
        assert (answer.code, document["status"]) == (2, "invalid")
        assert document["next"]["argv"] == own and document["next"]["command"] == shlex.join(own)
        assert shlex.join(own) in document["error"]
        followed = await bulkscan(tmp_path, *document["next"]["argv"][1:])
        assert followed.code == 0, followed.err
        assert only_run_dir(reports) == run_dir  # the same run, finished; no second one
        assert len(sim.tasks) == 6
    assert {t.state for t in journal_tasks(run_dir)} == {TaskState.CREATED}


async def test_a_second_resume_refuses_while_the_first_holds_the_run(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 20)
    reports = tmp_path / "reports"
    async with Simulator(faults=Faults(latency_s=1.0)) as sim:
        args = run_args(inventory, sim, reports, "--rate", "200/s", "--concurrency", "1")
        first = await start(tmp_path, *args)
        await wait_for_tasks(sim, 1, first)
        assert first.returncode is None
        run_dir = only_run_dir(reports)
        second = await bulkscan(tmp_path, *args, "--resume", str(run_dir))
        sim.set_faults(Faults())
        done = await finish(first)
        assert done.code == 0, done.err
    assert second.code == 2
    assert "in use by another bulkscan process" in second.err
    assert f"pid {first.pid}" in second.err
    assert "Traceback" not in second.err


# --- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_ctrl_c_stops_cleanly_and_resume_completes_without_duplicates(
    tmp_path: Path,
) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 40)
    prepared = planned(inventory)
    reports = tmp_path / "reports"
    async with Simulator(faults=Faults(latency_s=0.3)) as sim:
        args = run_args(inventory, sim, reports, "--rate", "50/s", "--concurrency", "4")
        proc = await start(tmp_path, *args)
        await wait_for_tasks(sim, 6, proc)
        assert proc.returncode is None
        proc.send_signal(signal.SIGINT)
        stopped = await finish(proc, limit_s=15.0)  # the grace period is 10 s
        assert stopped.code == 3, stopped.err
        assert "stopping: letting requests in flight finish" in stopped.err
        assert "request(s), interrupted" in stopped.out
        run_dir = only_run_dir(reports)
        (resume,) = re.findall(r"not finished; resume with: (.+)$", stopped.out, re.MULTILINE)
        command = shlex.split(resume)
        assert command == ["bulkscan", *map(str, args), "--resume", str(run_dir)]
        # the journal agrees with the service: in-flight requests were let finish
        tasks = journal_tasks(run_dir)
        states = Counter(t.state for t in tasks)
        assert set(states) == {TaskState.CREATED, TaskState.PENDING}, states
        created = {t.name: t.task_id for t in tasks if t.state is TaskState.CREATED}
        assert created == {t["name"]: t["id"] for t in sim.tasks}
        assert 6 <= len(created) < 40
        sim.set_faults(Faults())
        resumed = await bulkscan(tmp_path, *command[1:])  # the command exactly as printed
        assert resumed.code == 0, resumed.err
        assert_exactly_once(sim, prepared)
        assert_journal_matches(run_dir, sim)


# --- the next command after a resume -------------------------------------------------------


async def test_a_resume_prints_its_own_options_in_the_next_resume_command(tmp_path: Path) -> None:
    """An operator who resumed with other options (a lower rate after throttling) is told to
    resume with those, not the first run's; the Summary keeps both commands."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 6)
    prepared = planned(inventory)
    reports = tmp_path / "reports"

    def next_resume(out: str) -> list[str]:
        (resume,) = re.findall(r"resume with: (.+)$", out, re.MULTILINE)
        return shlex.split(resume)

    async with Simulator() as sim:
        first = run_args(inventory, sim, reports, "--rate", "20/s", "--limit", "2")
        canary = await bulkscan(tmp_path, *first)
        assert canary.code == 0, canary.err
        run_dir = only_run_dir(reports)
        assert next_resume(canary.out) == [
            "bulkscan", *map(str, first[:-2]), "--resume", str(run_dir)
        ]  # fmt: skip
        again = [*run_args(inventory, sim, reports, "--rate", "8/s", "--limit", "2"),
                 "--resume", run_dir]  # fmt: skip
        resumed = await bulkscan(tmp_path, *again)
        assert resumed.code == 0, resumed.err
        told = next_resume(resumed.out)
        assert told == ["bulkscan", *map(str, again[:-4]), "--resume", str(run_dir)]
        assert "8/s" in told and "20/s" not in told and "--limit" not in told
        summary = openpyxl.load_workbook(run_dir / "results.xlsx", read_only=True)["Summary"]
        facts = {r[0]: r[1] for r in summary.iter_rows(max_col=2, values_only=True) if r[0]}
        assert facts["command"] == shlex.join(["bulkscan", *map(str, first)])
        assert facts["last resumed with"] == shlex.join(["bulkscan", *map(str, again)])
        assert facts["last resumed by"].endswith(f" on {socket.gethostname()}")
        assert facts["dispatch.rate_per_s"] == "20 at the start; 8 at the last resume"
        assert facts["dispatch.concurrency"] == 8  # unchanged: shown once, as a number
        # the times are the last session's, and say so; the journal's creation is the first's
        assert "started (UTC)" not in facts and facts["last session started (UTC)"] is not None
        assert facts["last session started (UTC)"] > facts["journal created (UTC)"]
        done = await bulkscan(tmp_path, *told[1:])  # the command exactly as printed
        assert done.code == 0, done.err
        assert_exactly_once(sim, prepared)


async def test_a_resume_that_would_send_to_another_service_is_refused(tmp_path: Path) -> None:
    """A run's tasks are looked up where they were sent: resumed against another service,
    each task sent before would read as never sent and be sent again there."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 4)
    first = await bulkscan(
        tmp_path, "run", inventory, "--simulate", "--yes", "--reports-dir", "r",
        "--no-remote-check", "--limit", "2",
    )  # fmt: skip
    assert first.code == 0, first.err
    async with Simulator() as sim:
        resumed = await bulkscan(
            tmp_path, *run_args(inventory, sim, tmp_path / "r", "--no-remote-check"), "--resume"
        )
        assert sim.tasks == []  # nothing sent
        url = sim.url
    assert resumed.code == 2, resumed.err
    assert (
        f"sent region {REGION}'s tasks to the embedded simulator, and this resume would send "
        f"to {url}: resume against the same service"
    ) in resumed.err, resumed.err
    again = await bulkscan(
        tmp_path, "run", inventory, "--simulate", "--yes", "--reports-dir", "r",
        "--no-remote-check", "--resume",
    )  # fmt: skip
    assert again.code == 0, again.err  # the same service: resumed


async def test_a_listing_made_before_another_run_sent_is_not_trusted_by_reconcile(
    tmp_path: Path,
) -> None:
    """The checks before a run list the service; another run (another reports folder, so
    another journal) then creates the same tasks and lets go of its sending locks before
    this run takes them. The listing predates what that run sent: reconcile lists again."""
    prepared = planned(write_inventory(tmp_path / "dbs.xlsx", 4))
    async with Simulator() as sim:
        connection = _connection(sim)
        before = await runner.check_remote(prepared, connection=connection)
        assert before.new == 4  # nothing exists yet
        await asyncio.sleep(1.1)  # a listing begun this soon before the release is not trusted
        other = await runner.run(prepared, connection=connection, reports_dir=tmp_path / "a")
        assert other.counts[TaskState.CREATED] == 4
        listings = Counter(sim.stats["requests"])["listed"]
        late = await runner.run(
            prepared, connection=connection, reports_dir=tmp_path / "b", listed=before.listed
        )
        assert late.counts.get(TaskState.EXISTS) == 4 and not late.counts.get(TaskState.CREATED)
        assert_exactly_once(sim, prepared)
        assert Counter(sim.stats["requests"])["listed"] - listings == 2 + 2  # again, closing
        await asyncio.sleep(1.1)
        fresh = await runner.check_remote(prepared, connection=connection)
        listings = Counter(sim.stats["requests"])["listed"]
        again = await runner.run(
            prepared, connection=connection, reports_dir=tmp_path / "c", listed=fresh.listed
        )
        assert again.counts.get(TaskState.EXISTS) == 4  # a listing begun after the release
        assert Counter(sim.stats["requests"])["listed"] - listings == 2  # reused: closing only


async def test_resuming_the_run_of_another_file_names_both_files(tmp_path: Path) -> None:
    first = write_inventory(tmp_path / "w1.xlsx", 2)
    second = write_inventory(tmp_path / "w2.xlsx", 3)
    done = await bulkscan(
        tmp_path, "run", first, "--simulate", "--yes", "--reports-dir", "r", "--no-remote-check"
    )
    assert done.code == 0, done.err
    (run_dir,) = (tmp_path / "r").glob("w1-*")
    resumed = await bulkscan(
        tmp_path, "run", second, "--simulate", "--yes", "--reports-dir", "r",
        "--no-remote-check", "--resume", run_dir,
    )  # fmt: skip
    assert resumed.code == 2, resumed.err
    assert f"is a run of {first}, not of {second}: resume it with {first}" in resumed.err
    assert "has changed" not in resumed.err
