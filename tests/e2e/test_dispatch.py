"""The dispatcher against the project's simulator on 127.0.0.1: exactly once, whatever happens."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from bulkscan import __version__
from bulkscan.config import DispatchSettings
from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.events import (
    AttemptStarted,
    Event,
    Progress,
    RateChanged,
    Reconciled,
    RunStopped,
    TaskFinished,
    TaskPlanned,
)
from bulkscan.models import DataSource, Plan, TaskRequest
from bulkscan.plan import RunInput, SheetLayout, plan_hash, serialise_body, task_key
from bulkscan.run.dispatch import DispatchResult, dispatch
from bulkscan.run.ratelimit import AdaptiveRate
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
REGION = "cn-north-4"
FAST = DispatchSettings(
    rate_per_s=200.0,
    concurrency=8,
    max_attempts=8,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    read_timeout_s=2.0,
    grace_s=2.0,
    settle_s=0.5,  # no late create here: a task left sending is waited for this long
)


def _request(seq: int, project: str = P1, *, sources: int = 2, prefix: str = "t") -> TaskRequest:
    refs = ()
    data = tuple(DataSource("MySQL", f"{prefix}{seq}-ins-{i}") for i in range(sources))
    name = f"bulkscan-{prefix}-{project[:4]}-{seq:03}"
    body: dict[str, Any] = {
        "data_sources": [s.to_json() for s in data],
        "schedule_type": "ONCE",
        "start_now": True,
        "start_time": 0,
        "task_description": "created by bulkscan",
        "task_name": name,
    }
    raw = serialise_body(body)
    key = task_key(project, REGION, raw)
    return TaskRequest(key, name, project, REGION, "default", data, refs, raw)


def _plan(n: int, project: str = P1, **kw: Any) -> Plan:
    return Plan(tasks=tuple(_request(i, project, **kw) for i in range(1, n + 1)))


def _journal(run_dir: Path, plan: Plan) -> Journal:
    run_dir.mkdir(parents=True, exist_ok=True)
    layout = SheetLayout("dbs.xlsx", "instances", ("ins_id", "db_type"))
    run_input = RunInput("dbs.xlsx", "ab" * 32, "xlsx", layout, None, ())
    return Journal.create(
        run_dir,
        run_input=run_input,
        plan=plan,
        plan_hash=plan_hash(plan),
        settings={"rate_per_s": FAST.rate_per_s},
        version=__version__,
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _client(
    session: aiohttp.ClientSession, sim: Simulator, *, sk: str = DEFAULT_SK, read: float = 2.0
) -> DscClient:
    return DscClient(
        session,
        AkSk(DEFAULT_AK, sk),
        endpoints=Endpoints(sim.url),
        connect_timeout_s=1.0,
        read_timeout_s=read,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def _names_in(sim: Simulator) -> Counter[str]:
    return Counter(t["name"] for t in sim.tasks)


def _assert_exactly_once(sim: Simulator, plan: Plan, journal: Journal) -> None:
    names = _names_in(sim)
    assert sorted(names) == sorted(t.name for t in plan.tasks)
    assert set(names.values()) == {1}, "a task was created twice"
    ids = {t["name"]: t["id"] for t in sim.tasks}
    for task in journal.tasks():
        assert task.state in (TaskState.CREATED, TaskState.EXISTS), (task.name, task.error_msg)
        assert task.task_id == ids[task.name]


async def _run(
    plan: Plan, journal: Journal, client: DscClient, settings: DispatchSettings = FAST, **kw: Any
) -> DispatchResult:
    return await asyncio.wait_for(dispatch(plan.tasks, journal, client, settings, **kw), 30)


# --- the plain run --------------------------------------------------------------------------


async def test_every_task_is_created_once_and_journaled(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = Plan(tasks=(*_plan(12).tasks, *_plan(8, P2).tasks))
    seen = Recorder()
    async with Simulator(seed=1) as sim:
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, _client(session, sim), observer=seen)
            _assert_exactly_once(sim, plan, journal)
            attempts = journal.attempts()
            meta = journal.meta()
    assert result.stop_reason == "done" and result.succeeded == 20 and result.unfinished == 0
    assert result.requests == 24  # two listings per project (start, end), a create per task
    posts = [a for a in attempts if a.method == "POST"]
    assert len(posts) == 20 and all(a.status == 200 and a.verdict == "created" for a in posts)
    assert sum(1 for a in attempts if a.method == "GET") == 4  # per project: start and end
    assert meta.stop_reason == "done" and meta.started_at and meta.ended_at
    assert len(seen.of(TaskFinished)) == 20
    assert seen.of(RunStopped) == [RunStopped("done", "")]
    progress = seen.of(Progress)
    assert progress[-1].settled == progress[-1].total == 20 and progress[-1].created == 20


async def test_a_stated_limit_is_overrun_in_no_window_after_it_is_learned(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """The run adopts 95% of a limit the service states; with the limiter's spacing margin,
    no window of the service's count gets more than the limit after the refusal that taught
    it: only the window the client first overran sees a refusal.  (A 3-s window: the margin
    leaves 0.2 s of slack in it, so a loaded machine's jitter does not decide the test.)"""
    plan = _plan(60, sources=1)
    limiter = AdaptiveRate(40.0, min_pause_s=0.05, rng=random.Random(3))
    settings = dataclasses.replace(FAST, rate_per_s=40.0)
    async with Simulator(seed=4, quota=(30, 3.0)) as sim:  # "limit:30,time:3 second"
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, _client(session, sim), settings, limiter=limiter)
            _assert_exactly_once(sim, plan, journal)
        arrivals = list(sim.stats["arrivals"])
        throttled = sim.stats["requests"].get("throttled", 0)
    per_window = Counter(int(t // 3.0) for t in arrivals)
    overrun = sorted(w for w, n in per_window.items() if n > 30)
    assert len(overrun) == 1, per_window  # the window that taught the limit, no other
    assert result.stop_reason == "done"
    assert throttled > 0 and result.learned_rate_per_s == pytest.approx(9.5)


async def test_faults_and_throttling_never_create_a_task_twice(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(60)
    faults = Faults(
        http500=0.1, http503=0.05, http504=0.03, reset_after=0.05, stall=0.02, stall_s=0.6
    )
    seen = Recorder()
    limiter = AdaptiveRate(150.0, min_pause_s=0.05, recover_after=10, rng=random.Random(2))
    settings = DispatchSettings(
        rate_per_s=150.0, concurrency=8, max_attempts=12, backoff_base_s=0.01,
        backoff_max_s=0.05, read_timeout_s=0.3, grace_s=2.0, settle_s=0.3,
    )  # fmt: skip
    async with Simulator(seed=3, faults=faults, quota=(40, 1.0)) as sim:
        with _journal(tmp_path / "run", plan) as journal:
            for _ in range(10):  # an ambiguous answer not found in the window: a resume
                result = await _run(
                    plan, journal, _client(session, sim, read=0.3), settings,
                    observer=seen, limiter=limiter, rng=random.Random(5),
                )  # fmt: skip
                if result.unfinished == 0:
                    break
            _assert_exactly_once(sim, plan, journal)
            attempts = journal.attempts()
            stats = sim.stats["requests"]
            arrivals = len(sim.stats["arrivals"])
    assert result.stop_reason == "done"
    assert len(attempts) == arrivals  # every request the service saw is in the journal
    verdicts = Counter(a.verdict for a in attempts)
    assert verdicts["ambiguous"] > 0 and verdicts["transient"] > 0  # the faults did happen
    assert stats.get("throttled", 0) > 0 and verdicts["throttled"] == stats["throttled"]
    assert any(e.reason == "stated limit" for e in seen.of(RateChanged))
    assert result.learned_rate_per_s <= 40 * 0.95 + 1e-9  # learned from the 0308 message
    # an ambiguous answer is always followed by a lookup, never by a blind resend
    assert any(isinstance(e, Reconciled) and e.before == "unknown" for e in seen.events)


async def test_a_fatal_401_stops_after_one_request_and_leaves_tasks_pending(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = Plan(tasks=(*_plan(5).tasks, *_plan(5, P2).tasks))
    seen = Recorder()
    async with Simulator(seed=1) as sim:
        client = _client(session, sim, sk="a-wrong-secret-key-000000000000")
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, client, observer=seen)
            counts = journal.counts()
            meta = journal.meta()
        requests = sum(sim.stats["requests"].values())
    assert requests == 1
    assert result.stop_reason == "fatal" and "authentication" in result.message
    assert counts[TaskState.PENDING] == 10
    assert meta.stop_reason == "fatal"
    assert seen.of(RunStopped)[0].reason == "fatal"
    assert "a-wrong-secret-key" not in repr(seen.events) + result.message


async def test_a_fatal_answer_while_sending_stops_new_requests(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """The clock jumps an hour mid-run: one 401 (0303), then nothing new leaves."""
    plan = _plan(30)
    seen = Recorder()
    skew = dt.timedelta(0)

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + skew

    def skew_on_fifth_send(event: Event) -> None:
        nonlocal skew
        seen(event)
        if isinstance(event, AttemptStarted) and len(seen.of(AttemptStarted)) == 5:
            skew = dt.timedelta(hours=1)

    settings = DispatchSettings(rate_per_s=50.0, concurrency=1, backoff_base_s=0.01)
    async with Simulator(seed=1) as sim:
        client = DscClient(
            session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(sim.url), clock=clock
        )
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, client, settings, observer=skew_on_fifth_send)
            counts = journal.counts()
        expired = sim.stats["requests"].get("expired", 0)
    assert result.stop_reason == "fatal" and "clock" in result.message
    assert expired == 1
    assert counts[TaskState.CREATED] == 4 and counts[TaskState.PENDING] == 26


async def test_a_missing_project_fails_only_its_own_tasks(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = Plan(tasks=(*_plan(6).tasks, *_plan(4, P2).tasks))
    async with Simulator(seed=1, projects=[P1]) as sim:
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, _client(session, sim))
            tasks = journal.tasks()
        by_project = sim.stats["by_project"]
    assert result.stop_reason == "done"
    assert {t.state for t in tasks if t.project_id == P1} == {TaskState.CREATED}
    failed = [t for t in tasks if t.project_id == P2]
    assert {t.state for t in failed} == {TaskState.FAILED}
    assert all("does not exist" in (t.error_msg or "") for t in failed)
    assert sum(by_project[P2].values()) == 1  # its listing; no create was sent for it
    assert len(sim.tasks) == 6


async def test_a_project_refused_while_sending_fails_its_other_tasks_unsent(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(20)
    async with Simulator(seed=1) as sim:
        seen = Recorder()

        def drop_project_on_third_send(event: Event) -> None:
            seen(event)
            if isinstance(event, AttemptStarted) and len(seen.of(AttemptStarted)) == 3:
                sim._projects = frozenset()  # the project disappears (no public switch)

        settings = DispatchSettings(rate_per_s=100.0, concurrency=1, backoff_base_s=0.01)
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, _client(session, sim), settings,
                                observer=drop_project_on_third_send)  # fmt: skip
            counts = journal.counts()
        not_found = sim.stats["requests"].get("project_not_found", 0)
    assert result.stop_reason == "done"
    assert counts[TaskState.CREATED] == 2 and counts[TaskState.FAILED] == 18
    assert not_found == 1


# --- exists, conflicts, canary, resume ---------------------------------------------------------


async def test_existing_tasks_are_recognised_and_conflicts_are_not_sent(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(6)
    async with Simulator(seed=1) as sim:
        client = _client(session, sim)
        await client.create_task(P1, plan.tasks[0].body_bytes, region=REGION)  # same task
        clash = _request(2, sources=1, prefix="t")  # same name as task 2, other sources
        assert clash.name == plan.tasks[1].name
        await client.create_task(P1, clash.body_bytes, region=REGION)
        seen = Recorder()
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, client, observer=seen)
            tasks = journal.tasks()
        names = _names_in(sim)
    states = [t.state for t in tasks]
    assert states == [TaskState.EXISTS, TaskState.CONFLICT] + [TaskState.CREATED] * 4
    conflict = tasks[1]
    assert conflict.conflict_sources == clash.sources and conflict.attempts == 0
    assert conflict.error_msg and "other data sources" in conflict.error_msg
    assert names[plan.tasks[0].name] == 1 and names[plan.tasks[1].name] == 1
    assert result.requests == 6  # two listings (start, end), four creates
    assert [e.after for e in seen.of(Reconciled)] == ["exists", "conflict"]


async def test_a_canary_sends_only_the_first_tasks_and_a_resume_sends_the_rest(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(10)
    async with Simulator(seed=1) as sim:
        client = _client(session, sim)
        with _journal(tmp_path / "run", plan) as journal:
            first = await _run(plan, journal, client, limit=3)
            after_canary = journal.states()
        assert first.stop_reason == "done"
        assert [after_canary[t.key] for t in plan.tasks] == (
            [TaskState.CREATED] * 3 + [TaskState.PENDING] * 7
        )
        assert len(sim.tasks) == 3
        with Journal.open(tmp_path / "run") as journal:
            second = await _run(plan, journal, client)
            _assert_exactly_once(sim, plan, journal)
    assert second.requests == 9  # two listings (start, end), seven creates


async def test_resume_after_a_crash_reconciles_tasks_left_sending(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A crash left four tasks 'sending': two had reached the service, two had not."""
    plan = _plan(10)
    async with Simulator(seed=1) as sim:
        client = _client(session, sim)
        reached: dict[str, str] = {}
        with _journal(tmp_path / "run", plan) as journal:
            for task in plan.tasks[:4]:
                journal.mark_sending(task.key)
            for task in plan.tasks[:2]:
                created = await client.create_task(P1, task.body_bytes, region=REGION)
                assert created.task_id is not None
                reached[task.key] = created.task_id
        seen = Recorder()
        with Journal.open(tmp_path / "run") as journal:
            result = await _run(plan, journal, client, observer=seen)
            _assert_exactly_once(sim, plan, journal)
            tasks = {t.key: t for t in journal.tasks()}
    assert result.stop_reason == "done"
    for key, task_id in reached.items():
        assert tasks[key].state is TaskState.CREATED and tasks[key].task_id == task_id
    reconciled = {(e.key, e.before, e.after) for e in seen.of(Reconciled)}
    assert reconciled == {
        (plan.tasks[0].key, "sending", "created"),
        (plan.tasks[1].key, "sending", "created"),
        (plan.tasks[2].key, "sending", "pending"),
        (plan.tasks[3].key, "sending", "pending"),
    }
    assert result.requests == 10  # two listings, eight creates: the two found are not resent


async def test_the_time_left_counts_down_the_settle_window_a_resume_waits_out(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A task left *sending* a moment ago: the resume waits out its settle window before it
    lists, and the progress says so: the time left holds the wait (it said 0.2 s, the
    sending alone, and stood still for the whole window) and counts down each second."""
    plan = _plan(3)
    settings = dataclasses.replace(FAST, settle_s=4.0)
    async with Simulator(seed=1) as sim:
        client = _client(session, sim)
        with _journal(tmp_path / "run", plan) as journal:
            journal.mark_sending(plan.tasks[0].key)  # killed with its request in flight
        seen = Recorder()
        with Journal.open(tmp_path / "run") as journal:
            result = await _run(plan, journal, client, settings, observer=seen)
            _assert_exactly_once(sim, plan, journal)
    assert result.stop_reason == "done"
    waiting = [e for e in seen.of(Progress) if e.settling]
    assert len(waiting) >= 2, seen.of(Progress)  # said at once, then again a second later
    assert waiting[0].eta_s is not None and waiting[0].eta_s > 2.0, waiting[0]
    etas = [e.eta_s for e in waiting]
    assert etas == sorted(etas, reverse=True) and etas[-1] < etas[0] - 0.5, etas


async def test_the_time_left_holds_the_settle_window_of_a_task_looked_up_while_sending(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A 504 whose backend creates the task 1.5 s later: while the task is looked up over its
    4-s settle window, the time left is at least what is left of that window (it said 0 s:
    nothing was left to send), until the task is found."""
    plan = _plan(1)
    settings = dataclasses.replace(FAST, settle_s=4.0)
    async with Simulator(seed=1, faults=Faults(late_create=1.0, late_create_s=1.5)) as sim:
        client = _client(session, sim)
        seen = Recorder()
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, client, settings, observer=seen)
            _assert_exactly_once(sim, plan, journal)
    assert result.stop_reason == "done"
    looking = [e for e in seen.of(Progress) if e.settling]
    assert looking, seen.of(Progress)
    assert looking[0].eta_s is not None and looking[0].eta_s > 3.0, looking[0]
    after = seen.of(Progress)[-1]
    assert after.settling == 0 and after.eta_s == 0.0, after


async def test_a_journal_that_lost_its_last_transactions_still_creates_each_task_once(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Power lost after the requests left: the journal comes back as it was before them.

    Its 'sending' marks are gone too, so the tasks look untouched (pending); the resumed run
    lists the project before sending anything and finds them.
    """
    plan = _plan(8)
    run_dir = tmp_path / "run"
    _journal(run_dir, plan).close()
    before = (run_dir / "journal.sqlite").read_bytes()  # closed: no WAL beside it
    async with Simulator(seed=1) as sim:
        client = _client(session, sim)
        with Journal.open(run_dir) as journal:
            first = await _run(plan, journal, client, limit=5)
        assert first.succeeded == 5 and len(sim.tasks) == 5
        for leftover in ("journal.sqlite-wal", "journal.sqlite-shm"):
            (run_dir / leftover).unlink(missing_ok=True)
        (run_dir / "journal.sqlite").write_bytes(before)
        seen = Recorder()
        with Journal.open(run_dir) as journal:
            assert journal.counts()[TaskState.PENDING] == 8
            again = await _run(plan, journal, client, observer=seen)
            _assert_exactly_once(sim, plan, journal)
            states = [journal.task(t.key).state for t in plan.tasks]
    assert states == [TaskState.EXISTS] * 5 + [TaskState.CREATED] * 3
    assert {(e.before, e.after) for e in seen.of(Reconciled)} == {("pending", "exists")}
    assert again.requests == 5  # two listings, three creates: nothing sent twice


async def test_transient_errors_end_in_gave_up_with_the_last_error(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(3)
    async with Simulator(seed=1) as sim:

        def break_after_listing(event: Event) -> None:
            if isinstance(event, AttemptStarted):
                sim.set_faults(Faults(http503=1.0))

        settings = DispatchSettings(
            rate_per_s=200.0, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02
        )
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, _client(session, sim), settings,
                                observer=break_after_listing)  # fmt: skip
            tasks = journal.tasks()
        sim.set_faults(Faults())
        assert not sim.tasks
        with Journal.open(tmp_path / "run") as journal:  # gave up is resumable: never created
            again = await _run(plan, journal, _client(session, sim))
            _assert_exactly_once(sim, plan, journal)
    assert result.stop_reason == "done"
    assert all(t.state is TaskState.GAVE_UP and t.attempts == 3 for t in tasks)
    assert all("503" in (t.error_msg or "") for t in tasks)
    assert again.succeeded == 3


async def test_stop_lets_in_flight_requests_finish_and_leaves_the_rest_pending(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(40)
    stop = asyncio.Event()
    seen = Recorder()

    def stop_after_five(event: Event) -> None:
        seen(event)
        if isinstance(event, TaskFinished) and len(seen.of(TaskFinished)) == 5:
            stop.set()

    settings = DispatchSettings(rate_per_s=50.0, concurrency=4, grace_s=5.0)
    async with Simulator(seed=1, faults=Faults(latency_s=0.05)) as sim:
        client = _client(session, sim)
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(
                plan, journal, client, settings, stop=stop, observer=stop_after_five
            )
            counts = journal.counts()
            meta = journal.meta()
        assert len(sim.tasks) == counts[TaskState.CREATED]
        with Journal.open(tmp_path / "run") as journal:
            await _run(plan, journal, client, FAST)
            _assert_exactly_once(sim, plan, journal)
    assert result.stop_reason == "interrupted" and meta.stop_reason == "interrupted"
    assert counts[TaskState.SENDING] == 0 and counts[TaskState.UNKNOWN] == 0  # all finished
    assert 5 <= counts[TaskState.CREATED] < 40
    assert counts[TaskState.CREATED] + counts[TaskState.PENDING] == 40


async def test_after_the_grace_period_requests_in_flight_are_abandoned_as_sending(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Stalled creates outlive the grace period: they stay 'sending' and a resume finds them."""
    plan = _plan(4)
    stop = asyncio.Event()
    async with Simulator(seed=1) as sim:

        def stall_creates_then_stop(event: Event) -> None:
            if isinstance(event, AttemptStarted) and not stop.is_set():
                sim.set_faults(Faults(stall=1.0, stall_s=5.0))  # the task is created, then stalls
                asyncio.get_running_loop().call_later(0.2, stop.set)

        settings = DispatchSettings(rate_per_s=200.0, concurrency=4, grace_s=0.1)
        client = _client(session, sim, read=30.0)
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, client, settings, stop=stop,
                                observer=stall_creates_then_stop)  # fmt: skip
            counts = journal.counts()
        sim.set_faults(Faults())
        with Journal.open(tmp_path / "run") as journal:
            again = await _run(plan, journal, client, FAST)
            _assert_exactly_once(sim, plan, journal)
            states = {t.state for t in journal.tasks()}
    assert result.stop_reason == "interrupted"
    assert counts[TaskState.SENDING] >= 1  # abandoned in flight, not guessed at
    assert again.stop_reason == "done" and TaskState.EXISTS not in states  # ours: created


async def test_nothing_to_do_sends_only_nothing(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    plan = _plan(2)
    async with Simulator(seed=1) as sim:
        with _journal(tmp_path / "run", plan) as journal:
            await _run(plan, journal, _client(session, sim))
            again = await _run(plan, journal, _client(session, sim))
    assert again.requests == 0 and again.stop_reason == "done" and again.succeeded == 2


_CHILD = """
import asyncio, sys
sys.path.insert(0, {tests!r})
import aiohttp
from bulkscan.config import DispatchSettings
from bulkscan.run.dispatch import dispatch
from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK
from bulkscan.run.store import Journal
from test_dispatch import _plan

async def main():
    plan = _plan({n})
    settings = DispatchSettings(rate_per_s=100.0, concurrency=8, settle_s=0.5)
    async with aiohttp.ClientSession() as session:
        client = DscClient(session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints({url!r}))
        with Journal.open({run_dir!r}) as journal:
            await dispatch(plan.tasks, journal, client, settings)

asyncio.run(main())
"""


async def test_a_run_killed_mid_flight_resumes_with_no_duplicate_and_no_gap(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    n = 60
    plan = _plan(n)
    run_dir = tmp_path / "run"
    _journal(run_dir, plan).close()
    async with Simulator(seed=1, faults=Faults(latency_s=0.05)) as sim:
        code = _CHILD.format(
            tests=str(Path(__file__).parent), n=n, url=sim.url, run_dir=str(run_dir)
        )
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        try:
            async with asyncio.timeout(20):
                while len(sim.tasks) < 15:  # noqa: ASYNC110 - another process's progress
                    await asyncio.sleep(0.01)
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        killed_at = len(sim.tasks)
        with Journal.open(run_dir) as journal:  # the lock died with the process
            before = journal.counts()
            result = await _run(plan, journal, _client(session, sim))
            _assert_exactly_once(sim, plan, journal)
    assert 15 <= killed_at < n
    assert before[TaskState.SENDING] > 0  # killed with requests in flight
    assert result.stop_reason == "done" and result.succeeded == n


async def test_a_service_outage_is_ridden_through_without_using_up_attempts(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """The service goes away for a moment (connections refused): nothing is given up."""
    plan = _plan(30)
    seen = Recorder()
    restarts: list[asyncio.Task[None]] = []
    settings = DispatchSettings(
        rate_per_s=100.0,
        concurrency=4,
        max_attempts=2,
        backoff_base_s=0.02,
        backoff_max_s=0.1,
        settle_s=0.3,
    )
    async with Simulator(seed=1, state_path=tmp_path / "sim.json") as sim:

        async def restart() -> None:
            await sim.stop()
            await asyncio.sleep(0.5)
            await sim.start()

        def outage_on_fifth_send(event: Event) -> None:
            seen(event)
            if isinstance(event, AttemptStarted) and len(seen.of(AttemptStarted)) == 5:
                restarts.append(asyncio.create_task(restart()))

        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, _client(session, sim), settings,
                                observer=outage_on_fifth_send)  # fmt: skip
            await restarts[0]
            if result.unfinished:  # a request cut by the outage, not found in the window
                result = await _run(plan, journal, _client(session, sim), settings)
            _assert_exactly_once(sim, plan, journal)
            refused = [a for a in journal.attempts() if a.status is None]
    assert result.stop_reason == "done" and result.succeeded == 30
    assert len(refused) > 2 * len(plan.tasks) // 10  # many failures, none fatal to a task


async def test_the_event_log_holds_one_json_line_per_event_and_no_secret(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    import json

    from bulkscan.events import EventLog, fan_out

    plan = _plan(6)
    seen = Recorder()
    log_path = tmp_path / "events.jsonl"
    async with Simulator(seed=2, faults=Faults(http503=0.3)) as sim:
        with _journal(tmp_path / "run", plan) as journal, EventLog(log_path) as log:
            await _run(plan, journal, _client(session, sim), observer=fan_out(seen, log))
    text = log_path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == [type(e).__name__ for e in seen.events]
    assert lines[0]["event"] == "TaskPlanned" and lines[-1] == {
        "event": "RunStopped",
        "at": lines[-1]["at"],
        "reason": "done",
        "message": "",
    }
    assert {"AttemptStarted", "AttemptFinished", "TaskFinished", "Progress"} <= {
        line["event"] for line in lines
    }
    assert DEFAULT_SK not in text and "Signature" not in text


async def test_the_event_log_writes_in_batches_and_everything_by_the_stop(tmp_path: Path) -> None:
    import json

    from bulkscan.events import EventLog

    path = tmp_path / "events.jsonl"
    planned = [TaskPlanned(f"k{i}", f"t{i}", P1, REGION, 1) for i in range(3)]
    with EventLog(path, flush_every=1000, flush_after_s=60.0) as log:
        for event in planned:
            log(event)
        assert path.read_text(encoding="utf-8") == ""  # waiting for the batch
        log(RunStopped("done"))
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [line["event"] for line in lines] == ["TaskPlanned"] * 3 + ["RunStopped"]
    with EventLog(path, flush_every=1000, flush_after_s=0.01) as log:
        log(planned[0])
        async with asyncio.timeout(5):
            while len(path.read_text(encoding="utf-8").splitlines()) < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the timer writes it, no close needed
    with EventLog(path, flush_every=2, flush_after_s=60.0) as log:
        log(planned[1])
        log(planned[2])  # the second line fills the batch
        assert len(path.read_text(encoding="utf-8").splitlines()) == 7


def test_without_an_event_loop_the_event_log_writes_each_line_at_once(tmp_path: Path) -> None:
    from bulkscan.events import EventLog

    path = tmp_path / "events.jsonl"
    with EventLog(path, flush_after_s=60.0) as log:
        log(TaskPlanned("k", "t", P1, REGION, 1))
        assert '"event":"TaskPlanned"' in path.read_text(encoding="utf-8")


async def test_a_configuration_error_before_sending_stops_the_run_cleanly(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A region no endpoint can be made for: nothing is sent, nothing is left 'sending'."""
    good = _request(1)
    bad = TaskRequest(
        good.key.replace(good.key[0], "f" if good.key[0] != "f" else "e", 1),
        good.name, P1, "Not A Region", "default", good.sources, (), good.body_bytes,
    )  # fmt: skip
    plan = Plan(tasks=(bad,))
    async with Simulator(seed=1) as sim:
        client = DscClient(session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints())
        with _journal(tmp_path / "run", plan) as journal:
            result = await _run(plan, journal, client)
            counts = journal.counts()
        assert not sim.stats["arrivals"]
    assert result.stop_reason == "fatal" and "Not A Region" in result.message
    assert counts[TaskState.PENDING] == 1
