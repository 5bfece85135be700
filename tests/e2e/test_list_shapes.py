"""Every list shape the DSC documentation leaves open: never a duplicate, or a loud refusal.

The simulator answers in each variant of ``--list-shape`` (name key, data_source format,
offset honoured or not, a page cap, id kinds, a lying ``total_num``, creates answered 200
without a usable body).  Through the library's entry points (``runner.run``,
``runner.audit``) and the CLI: a second run of the same inventory finds every task or refuses
the project loudly, an ambiguous create is looked up before anything is sent again, a resume
finishes the rest once, and the audit reads the same listing.  ``bulkscan doctor`` reports each
shape, and a ``--record`` file of its answers replays through the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp
import openpyxl
import pytest
from aiohttp import web

from bulkscan import runner
from bulkscan.config import DispatchSettings
from bulkscan.dsc.client import CREATE_PATH, DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk, Token
from bulkscan.errors import AmbiguousError, InputError
from bulkscan.run.doctor import load_record
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator, parse_list_shape
from tests.e2e._cli import bulkscan, finish, start

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

P1 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
P2 = "5e4d3c2b1a0f9e8d7c6b5a4938271605"
REGION = "cn-north-4"
FAST = DispatchSettings(rate_per_s=200.0, backoff_base_s=0.01, backoff_max_s=0.05, settle_s=0.5)

#: Every variant, and whether bulkscan can tell listed tasks apart in it.
TRUSTED = [
    "",  # the documented shape: name under task_name, offset ignored, no cap
    "name=name",
    "name=template_name",
    "sources=ins_id",
    "ids=uuid",
    "offset=honoured,page_cap=5",
    "total=short,offset=honoured",
    "total=short:2,page_cap=5,offset=honoured",
    "create=html",
    "create=error-body",
    "create=no-id",
    "name=name,sources=ins_id,ids=uuid,total=short,offset=honoured",
]
#: ... and where it cannot, what the refusal says.
REFUSED = {
    "name=none": "have no name",
    "name=title": "have no name",
    "name=none,sources=ins_id,ids=uuid": "have no name",
    "page_cap=5,offset=ignored": "ignores offset",  # 6 tasks a project, 5 a page
    "total=short": "contradicts itself",  # total_num under-counts, offset ignored
}
ALL = TRUSTED + list(REFUSED)


def write_inventory(path: Path, n: int, *, projects: Sequence[str] = (P1, P2)) -> Path:
    """``n`` instances over ``projects``, one task each (names unique per project)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "profile"])
    for i in range(n):
        sheet.append([f"ins-{i:04}", "MySQL", projects[i % len(projects)], REGION, "one"])
    profiles = book.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_now", "task_name", "max_sources"])
    profiles.append(["one", "ONCE", True, "scan-{project:.6}-{seq:04}", 1])
    book.save(path)
    return path


def connection(sim: Simulator, *, secret_key: str = DEFAULT_SK) -> runner.Connection:
    return runner.Connection(
        credentials=AkSk(DEFAULT_AK, secret_key), endpoints=Endpoints(override=sim.url)
    )


async def run(
    sim: Simulator,
    inventory: Path,
    reports: Path,
    *,
    resume: bool = False,
    limit: int | None = None,
) -> runner.RunResult:
    return await runner.run(
        runner.prepare(inventory),
        connection=connection(sim),
        dispatch_settings=FAST,
        reports_dir=reports,
        resume=resume,
        limit=limit,
    )


def no_duplicate(sim: Simulator) -> Counter[str]:
    names = Counter(t["name"] for t in sim.tasks)
    assert [n for n, c in names.items() if c > 1] == []
    return names


def states(result: runner.RunResult) -> Counter[TaskState]:
    with Journal.open(result.run_dir, readonly=True) as journal:
        return Counter(t.state for t in journal.tasks())


def recorded_shapes(result: runner.RunResult) -> dict[str, dict[str, object]]:
    db = next(p for p in result.run_dir.iterdir() if p.suffix in (".sqlite", ".db", ".sqlite3"))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, value FROM meta WHERE key LIKE 'list_shape:%'")
        return {k: json.loads(v) for k, v in rows}


async def test_a_closing_listing_the_service_no_longer_answers_says_to_audit_later(
    tmp_path: Path,
) -> None:
    """The service goes away after the creates: every task is created, and the run says that
    names created twice were not looked for, and how to look later (not how to send)."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 4)  # two project groups
    async with Simulator(faults=Faults(lists_answered=2)) as sim:  # one listing per group
        result = await run(sim, inventory, tmp_path / "r")
        assert states(result) == {TaskState.CREATED: 4}
        no_duplicate(sim)
    said = result.dispatch.message
    assert result.status is runner.Status.INCOMPLETE and result.dispatch.unchecked in said
    assert said.startswith("names created twice not checked: the last listing failed (project ")
    assert "HTTP 503" in said and "1 other project/region group(s) too" in said
    assert said.endswith("'bulkscan audit' lists the tasks again once the service answers)")
    assert "send again" not in said and "bulkscan doctor" not in said


# --- reconcile: a second run of the same inventory ---------------------------------------------


@pytest.mark.parametrize("spec", ALL)
async def test_second_run_finds_every_task_or_refuses_loudly(tmp_path: Path, spec: str) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 12)
    async with Simulator(list_shape=parse_list_shape(spec)) as sim:
        first = await run(sim, inventory, tmp_path / "r1")
        assert states(first) == {TaskState.CREATED: 12}  # empty projects: nothing to tell apart
        said = first.dispatch.message  # the closing listing meets the shape once tasks exist
        if spec in TRUSTED:
            assert said == "" and first.status is runner.Status.OK
        else:  # one group's reason, the others counted; no advice about sending, now over
            assert first.status is runner.Status.INCOMPLETE  # not a plain success: audit
            assert said.startswith("names created twice not checked: the last listing failed")
            assert said.count("cannot be trusted") == 1 and REFUSED[spec] in said
            assert "1 other project/region group(s) too" in said and "bulkscan doctor" in said
            assert "nothing is sent" not in said
        before = len(sim.tasks)
        second = await run(sim, inventory, tmp_path / "r2")
        assert len(sim.tasks) == before == 12
        no_duplicate(sim)
        creates = sim.stats["requests"].get("created", 0)
    assert creates == 12  # the second run sent no create at all
    if spec in TRUSTED:
        assert states(second) == {TaskState.EXISTS: 12}
        assert second.dispatch.stop_reason == "done" and not second.dispatch.message
        shapes = recorded_shapes(second)
        assert set(shapes) == {f"list_shape:{p}/{REGION}" for p in (P1, P2)}
        assert all(s["listed"] == 6 for s in shapes.values())
    else:
        assert states(second) == {TaskState.PENDING: 12}  # nothing sent, left for later
        message = second.dispatch.message
        assert "12 task(s) not sent" in message and "cannot be trusted" in message
        assert REFUSED[spec] in message and "bulkscan doctor" in message
        if REFUSED[spec] == "have no name":
            assert "keys seen: create_user, data_source, delete_failed_meta, id" in message


async def test_refused_project_makes_the_cli_exit_non_zero(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 4)
    async with Simulator(list_shape=parse_list_shape("name=none")) as sim:
        await run(sim, inventory, tmp_path / "r1")
        args = ["run", str(inventory), "--endpoint", sim.url, "--yes"]
        done = await _cli(tmp_path, *args, "--reports-dir", str(tmp_path / "r2"))
        assert len(sim.tasks) == 4
    assert done[0] != 0, done
    assert "cannot be trusted" in done[1] + done[2] and "Traceback" not in done[2]


async def test_plan_check_remote_counts_no_task_of_a_group_it_cannot_list(
    tmp_path: Path,
) -> None:
    """A dry run does not promise creates where the run would refuse: tasks of a group whose
    list cannot be trusted are counted apart, and each group is named once."""
    inventory = write_inventory(tmp_path / "dbs.xlsx", 4)
    more = write_inventory(tmp_path / "more.xlsx", 6)  # 2 more tasks, same two projects
    async with Simulator(list_shape=parse_list_shape("name=none")) as sim:
        await run(sim, inventory, tmp_path / "r1")
        args = ["plan", str(more), "--endpoint", sim.url, "--check-remote"]
        text = await _cli(tmp_path, *args)
        document = await _cli(tmp_path, *args, "--json")
        assert len(sim.tasks) == 4  # nothing sent
    code, out, err = text
    assert code == 0, err
    assert (
        "a run would create 0 task(s) now; 6 task(s) of 2 project/region group(s) not "
        "listed: a run lists them again and sends none to a group it cannot list" in out
    )
    for project in (P1, P2):
        line = f"  unknown   not listed: project {project} / region {REGION}: the task list"
        assert line in out and out.count(f"project {project}") == 1, out
    remote = json.loads(document[1])["remote"]
    assert remote["would_create"] == 0 and remote["unlisted_tasks"] == 6


async def _cli(cwd: Path, *args: str) -> tuple[int, str, str]:
    return await bulkscan(cwd, *args, limit_s=90)


# --- more than 100 existing tasks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["", "name=name", "page_cap=100,offset=honoured", "total=short,offset=honoured"]
)
async def test_more_than_100_existing_tasks_are_all_found(tmp_path: Path, spec: str) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 130, projects=(P1,))
    async with Simulator(list_shape=parse_list_shape(spec)) as sim:
        await run(sim, inventory, tmp_path / "r1")
        second = await run(sim, inventory, tmp_path / "r2")
        assert len(sim.tasks) == 130
    assert states(second) == {TaskState.EXISTS: 130}


async def test_a_page_cap_with_offset_ignored_is_refused_not_guessed(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 130, projects=(P1,))
    async with Simulator() as sim:
        await run(sim, inventory, tmp_path / "r1")
        sim.set_list_shape(parse_list_shape("page_cap=100"))
        second = await run(sim, inventory, tmp_path / "r2")
        assert len(sim.tasks) == 130
    assert states(second) == {TaskState.PENDING: 130}
    message = second.dispatch.message
    assert "only 100 of total_num 130" in message or "ignores offset" in message


# --- verify after an ambiguous create, and resume -------------------------------------------------


@pytest.mark.parametrize("spec", ALL)
async def test_ambiguous_creates_are_looked_up_and_resume_never_duplicates(
    tmp_path: Path, spec: str
) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 16)
    faults = Faults(http504=0.3, reset_after=0.1)  # the task is created, the answer lost
    async with Simulator(list_shape=parse_list_shape(spec), faults=faults, seed=7) as sim:
        first = await run(sim, inventory, tmp_path / "r", limit=10)
        no_duplicate(sim)
        sim.set_faults(Faults())
        resumed = await run(sim, inventory, tmp_path / "r", resume=True)
        names = no_duplicate(sim)
    assert resumed.run_dir == first.run_dir
    after = states(resumed)
    if spec in TRUSTED:
        assert after == {TaskState.CREATED: 16} and len(names) == 16
    elif REFUSED[spec] == "have no name":
        # a lookup that cannot tell tasks apart leaves them unknown, and their projects unsent
        assert after[TaskState.CREATED] + after[TaskState.UNKNOWN] <= len(names) < 16
    else:  # paging that fails only once a project holds more than one page
        assert sum(after.values()) == 16 and after[TaskState.CREATED] <= len(names)


# --- audit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL)
async def test_audit_reads_the_same_listing(tmp_path: Path, spec: str) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 8)
    async with Simulator(list_shape=parse_list_shape(spec)) as sim:
        await run(sim, inventory, tmp_path / "r")
        report = await runner.audit(
            runner.read_audit_inventory(inventory),
            connection=connection(sim),
            dispatch_settings=FAST,
            reports_dir=tmp_path / "audit",
        )
    result = report.result
    if spec in TRUSTED:
        assert result.all_covered and result.covered == 8
    elif REFUSED[spec] != "have no name":  # paging: refused only past one page (4 < 5 here)
        assert result.all_covered or all(g.error for g in result.groups)
    else:
        assert result.covered == 0 and all(g.error for g in result.groups)
        assert all("cannot be trusted" in str(g.error) for g in result.groups)


# --- errors as the service writes them -----------------------------------------------------------


async def test_a_project_without_dsc_fails_alone(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 10)
    async with Simulator(dsc_disabled=[P2]) as sim:
        result = await run(sim, inventory, tmp_path / "r")
        created = {t["project_id"] for t in sim.tasks}
    assert created == {P1} and states(result) == {TaskState.CREATED: 5, TaskState.FAILED: 5}
    with Journal.open(result.run_dir, readonly=True) as journal:
        failed = [t for t in journal.tasks() if t.state is TaskState.FAILED]
    assert {t.project_id for t in failed} == {P2}
    for task in failed:
        assert task.error_code == "dsc.10000009"
        assert f"DSC is not enabled in project {P2} / region {REGION}" in (task.error_msg or "")


# --- bulkscan doctor, and a recorded answer replayed ------------------------------------------
# The replay serves a --record file's answers, in order, from a plain local aiohttp server (not
# the simulator) and reads them with bulkscan's own client: what a user attaches to a bug
# report is what the test suite can read back.

_BODY = {
    "data_sources": [{"db_type": "MySQL", "ins_id": "ins-1"}],
    "schedule_type": "ONCE",
    "start_time": 0,
    "task_description": "",
}


async def fill(sim: Simulator, project: str, n: int) -> None:
    async with aiohttp.ClientSession() as session:
        client = DscClient(session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(sim.url))
        for i in range(n):
            body = json.dumps({**_BODY, "task_name": f"old-{i:03}"}).encode()
            with contextlib.suppress(AmbiguousError):  # create=...: 200 without an id
                await client.create_task(project, body, region=REGION)


@pytest.mark.parametrize("spec", TRUSTED + list(REFUSED))
async def test_doctor_in_every_list_shape(spec: str) -> None:
    async with Simulator(list_shape=parse_list_shape(spec)) as sim:
        await fill(sim, P1, 6)  # more than the page cap of 5, and than a short total
        report = await runner.doctor([(P1, REGION)], connection=connection(sim))
    names = [c.name for c in report.checks]
    assert names[:2] == ["credentials", "DSC"] and names[-1] == "rate"
    if spec in TRUSTED:
        assert report.ok, [str(c) for c in report.failed]
        assert names == ["credentials", "DSC", "listing", "list shape", "paging", "rate"]
        (shape,) = (c for c in report.checks if c.name == "list shape")
        assert "6 listed" in shape.detail
    else:
        (failed,) = report.failed
        assert failed.name == "list shape" and REFUSED[spec] in failed.detail
        assert "keys seen: create_user" in failed.detail or "offset" in failed.detail


async def test_a_project_without_dsc_and_refused_credentials() -> None:
    async with Simulator(dsc_disabled=[P2]) as sim:
        report = await runner.doctor([(P1, REGION), (P2, REGION)], connection=connection(sim))
        (failed,) = report.failed
        assert (failed.project_id, failed.name) == (P2, "DSC")
        assert f"DSC is not enabled in project {P2} / region {REGION}" in failed.detail
        assert "enable DSC" in str(failed)
        bad = await runner.doctor(
            [(P1, REGION), (P2, REGION)], connection=connection(sim, secret_key="wrong-secret")
        )
    # credentials refused: the checks stop at once (five failures lock the key)
    assert [c.name for c in bad.checks] == ["credentials", "rate"] and not bad.ok


async def test_record_holds_no_secret_and_replays_into_the_same_listing(tmp_path: Path) -> None:
    record = tmp_path / "answers.json"
    async with Simulator(
        list_shape=parse_list_shape("name=name,page_cap=5,offset=honoured")
    ) as sim:
        await fill(sim, P1, 12)
        live = await runner.doctor([(P1, REGION)], connection=connection(sim), record=record)
    assert live.ok
    text = record.read_text("utf-8")
    for secret in (DEFAULT_SK, DEFAULT_AK, "Authorization", "Signature", "X-Sdk-Date"):
        assert secret not in text
    answers = load_record(record)
    assert [dict(a["query"]).get("offset") for a in answers] == [None, None, "5", "10"]
    replayed = await _replay(answers)
    assert sorted(t.name for t in replayed.tasks) == [f"old-{i:03}" for i in range(12)]
    (shape,) = (c.detail for c in live.checks if c.name == "list shape")
    assert replayed.shape.describe() == shape


async def _replay(answers: list[dict[str, Any]]) -> Any:
    queue = list(answers)

    async def answer(request: web.Request) -> web.Response:
        recorded = queue.pop(0)
        assert request.path == recorded["path"]
        assert sorted(request.query.items()) == sorted(tuple(p) for p in recorded["query"])
        kind = dict(recorded["headers"]).get("Content-Type", "application/json")
        return web.Response(
            status=recorded["status"], text=recorded["body"], content_type=kind.split(";")[0]
        )

    app = web.Application()
    app.router.add_get(CREATE_PATH.format(project_id=P1), answer)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            client = DscClient(session, Token("t"), endpoints=Endpoints(f"http://127.0.0.1:{port}"))
            return await client.list_all(P1, region=REGION)
    finally:
        await app_runner.cleanup()


def test_a_file_that_is_not_a_record_is_an_input_error(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"format": "something else"}', "utf-8")
    with pytest.raises(InputError, match="doctor record"):
        load_record(other)


async def _doctor_cli(*args: str) -> tuple[int, str]:
    done = await finish(await start(None, "doctor", *args, stderr=asyncio.subprocess.STDOUT), 90)
    return done.code, done.out


async def test_cli_exit_codes(tmp_path: Path) -> None:
    async with Simulator(dsc_disabled=[P2]) as sim:
        good = await _doctor_cli("--project", P1, "--region", REGION, "--endpoint", sim.url)
        bad = await _doctor_cli(
            "--project", P1, "--project", P2, "--region", REGION, "--endpoint", sim.url
        )
        usage = await _doctor_cli("--endpoint", sim.url)
    assert good[0] == 0 and "a run can be trusted" in good[1] and "--limit 5" in good[1]
    assert good[1].count("\n") == 7  # one line per check, then the verdict
    assert bad[0] == 1 and "FAIL" in bad[1] and "DSC is not enabled" in bad[1]
    assert usage[0] == 2 and "--project" in usage[1] and "Traceback" not in usage[1]


def test_rate_line_names_the_rate() -> None:
    settings = DispatchSettings(rate_per_s=2.0)
    report = asyncio.run(_doctor_without_groups(settings))
    (rate,) = report.checks
    assert rate.ok and "2 request(s)/s (120/min)" in rate.detail


async def _doctor_without_groups(settings: DispatchSettings) -> Any:
    async with Simulator() as sim:
        return await runner.doctor([], connection=connection(sim), dispatch_settings=settings)


async def test_run_simulate_takes_a_list_shape(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 2)
    common = ("run", str(inventory), "--simulate", "--yes", "--reports-dir", str(tmp_path / "r"))
    good = await _cli(tmp_path, *common, "--simulate-list-shape", "name=name,ids=uuid")
    bad = await _cli(tmp_path, *common, "--simulate-list-shape", "name=a b")
    assert good[0] == 0, good
    assert bad[0] == 2 and "list shape" in bad[2] and "Traceback" not in bad[2]
