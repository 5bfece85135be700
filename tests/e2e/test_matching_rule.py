"""One matching rule, met three ways against the simulator: reconcile, the lookup after an
ambiguous create, and the audit.  Each spelling case gives the same answer in all three.

The simulator lists a task's data sources as it received them, so a task spelled the way
another client (or the console) spelled it is created through a state file, a simulator
restarted with the tasks it had.  Its create API refuses a blank db_type, so the case of
a type the service left out is met on reconcile and audit only (see test_matching for the
rule itself).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from bulkscan import __version__
from bulkscan.audit import CoverageStatus, audit, read_inventory
from bulkscan.config import DispatchSettings, InputSettings
from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.events import AttemptFinished, AttemptStarted, Event, Reconciled
from bulkscan.input.loader import load_input
from bulkscan.models import DataSource, Plan, TaskRequest
from bulkscan.plan import RunInput, SheetLayout, plan_hash, serialise_body, task_key
from bulkscan.run.dispatch import dispatch
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

P1 = "0123456789abcdef0123456789abcdef"
REGION = "cn-north-4"
NAME = "bulkscan-pg-check"
PLANNED = DataSource("PostgreSQL", "pg-1")
FAST = DispatchSettings(
    rate_per_s=200.0, concurrency=2, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.02
)

# (how the service spells the planned instance, is it the planned one)
SPELLINGS = [
    pytest.param(("postgres", "pg-1"), True, id="alias"),
    pytest.param(("POSTGRESQL", "pg-1"), True, id="case"),
    pytest.param(("", "pg-1"), True, id="type-left-out"),
    pytest.param(("PostgreSQL", "pg-2"), False, id="other-ins-id"),
]
SENT_SPELLINGS = [p for p in SPELLINGS if p.id != "type-left-out"]  # the create API needs one


def _body(name: str, db_type: str, ins_id: str) -> dict[str, Any]:
    return {
        "data_sources": [{"db_type": db_type, "ins_id": ins_id}],
        "schedule_type": "ONCE",
        "start_now": True,
        "start_time": 0,
        "task_description": "created elsewhere",
        "task_name": name,
    }


def _request(sent: tuple[str, str] = ("PostgreSQL", "pg-1")) -> TaskRequest:
    """The planned task (for ``PLANNED``), its request spelling the source as ``sent``."""
    body = _body(NAME, *sent)
    raw = serialise_body(body)
    key = task_key(P1, REGION, raw)
    return TaskRequest(key, NAME, P1, REGION, "default", (PLANNED,), (), raw)


def _state_file(path: Path, spelled: tuple[str, str]) -> Path:
    """A simulator state file holding one task of ``NAME`` whose source is ``spelled``."""
    task = {"id": "7", "project_id": P1, "body": _body(NAME, *spelled),
            "created_at": 1_700_000_000.0, "enabled": True}  # fmt: skip
    state = {"format": "bulkscan-dsc-simulator-state", "version": 1, "next_id": 8,
             "tasks": [task]}  # fmt: skip
    path.write_text(json.dumps(state), encoding="utf-8")
    return path


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


def _client(session: aiohttp.ClientSession, sim: Simulator, *, read: float = 2.0) -> DscClient:
    return DscClient(
        session,
        AkSk(DEFAULT_AK, DEFAULT_SK),
        endpoints=Endpoints(sim.url),
        connect_timeout_s=1.0,
        read_timeout_s=read,
    )


async def _dispatch(
    plan: Plan, journal: Journal, client: DscClient, observer: Callable[[Event], None]
) -> None:
    await asyncio.wait_for(dispatch(plan.tasks, journal, client, FAST, observer=observer), 30)


@pytest.mark.parametrize(("spelled", "same"), SPELLINGS)
async def test_reconcile(
    tmp_path: Path, session: aiohttp.ClientSession, spelled: tuple[str, str], same: bool
) -> None:
    plan = Plan(tasks=(_request(),))
    seen: list[Event] = []
    async with Simulator(seed=1, state_path=_state_file(tmp_path / "sim.json", spelled)) as sim:
        with _journal(tmp_path / "run", plan) as journal:
            await _dispatch(plan, journal, _client(session, sim), seen.append)
            task = journal.task(plan.tasks[0].key)
        names = [t["name"] for t in sim.tasks]
    assert names == [NAME]  # never sent: it exists, or it is a conflict
    assert task.attempts == 0
    if same:
        assert (task.state, task.task_id) == (TaskState.EXISTS, "7")
    else:
        assert task.state is TaskState.CONFLICT
        assert task.conflict_sources == (DataSource(*spelled),)
    after = [e.after for e in seen if isinstance(e, Reconciled)]
    assert after == [TaskState.EXISTS if same else TaskState.CONFLICT]


@pytest.mark.parametrize(("spelled", "same"), SENT_SPELLINGS)
async def test_the_lookup_after_an_ambiguous_create(
    tmp_path: Path, session: aiohttp.ClientSession, spelled: tuple[str, str], same: bool
) -> None:
    plan = Plan(tasks=(_request(sent=spelled),))  # the service keeps the spelling it is sent
    seen: list[Event] = []
    async with Simulator(seed=1) as sim:

        def stall_the_create(event: Event) -> None:
            """The create is applied but its answer comes too late: ambiguous."""
            seen.append(event)
            if isinstance(event, AttemptStarted):
                sim.set_faults(Faults(stall=1.0, stall_s=1.0))
            elif isinstance(event, AttemptFinished) and event.attempt.method == "POST":
                sim.set_faults(Faults())

        with _journal(tmp_path / "run", plan) as journal:
            await _dispatch(plan, journal, _client(session, sim, read=0.3), stall_the_create)
            task = journal.task(plan.tasks[0].key)
        remote = {t["name"]: t["id"] for t in sim.tasks}
    verdicts = [e.attempt.verdict for e in seen if isinstance(e, AttemptFinished)]
    assert verdicts == ["listed", "ambiguous", "listed", "listed"]  # reconcile, create, lookup, end
    assert list(remote) == [NAME] and task.attempts == 1  # looked up, never re-sent
    if same:
        assert (task.state, task.task_id) == (TaskState.CREATED, remote[NAME])
        reconciled = [(e.before, e.after) for e in seen if isinstance(e, Reconciled)]
        assert reconciled == [(TaskState.UNKNOWN, TaskState.CREATED)]
    else:
        assert task.state is TaskState.CONFLICT
        assert task.conflict_sources == (DataSource(*spelled),)


@pytest.mark.parametrize(("spelled", "same"), SPELLINGS)
async def test_the_audit(
    tmp_path: Path,
    session: aiohttp.ClientSession,
    make_xlsx: Callable[..., Path],
    spelled: tuple[str, str],
    same: bool,
) -> None:
    path = make_xlsx({"instances": [["ins_id", "db_type", "project_id", "region"],
                                     ["pg-1", "PostgreSQL", P1, REGION]]})  # fmt: skip
    inventory = read_inventory(load_input(path), InputSettings())
    async with Simulator(seed=1, state_path=_state_file(tmp_path / "sim.json", spelled)) as sim:
        result = await audit(inventory, client=_client(session, sim), settings=FAST)
    (coverage,) = result.coverage
    (finding,) = result.tasks
    if same:
        assert coverage.status is CoverageStatus.COVERED
        assert [t.id for t in coverage.tasks] == ["7"] and finding.matched == ("pg-1",)
    else:
        assert coverage.status is CoverageStatus.MISSING
        assert finding.orphan
