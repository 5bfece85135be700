"""An answer that drips in one byte at a time is bounded as a whole by the read timeout.

``sock_read`` alone bounds each wait for bytes, so a body sent one byte a second never trips
it.  Against the simulator's ``drip`` fault (the create is acted on, its answer trickles),
a run with ``--read-timeout 1`` gives up on each answer after about a second, treats the
create as ambiguous, finds the task by listing and never sends it twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

import aiohttp
import pytest

from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.errors import AmbiguousError
from bulkscan.run.states import SUCCEEDED_STATES
from bulkscan.run.store import Journal
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator, parse_faults
from tests.e2e._cli import bulkscan, sim_env
from tests.e2e.test_client import _body
from tests.e2e.test_exactly_once import P1, no_duplicate, write_inventory

if TYPE_CHECKING:
    from pathlib import Path

# Each byte comes well within the 1 s read timeout, so ``sock_read`` never trips; the whole
# answer (~70 bytes at 0.5 s a byte) would take over half a minute: the bounds below (one
# attempt, a whole run sending one at a time) only hold when the whole answer is bounded.
DRIP = Faults(drip=1.0, drip_s=0.5)


def test_drip_is_a_fault_with_a_configurable_interval() -> None:
    faults = parse_faults("drip=0.5,drip_interval=250ms")
    assert (faults.drip, faults.drip_s) == (0.5, 0.25)
    assert faults.pick(0.4) == "drip"
    assert Faults().drip_s == 1.0


async def test_a_dripping_create_answer_is_cut_off_and_ambiguous() -> None:
    async with Simulator(faults=DRIP) as sim, aiohttp.ClientSession() as session:
        client = DscClient(
            session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url),
            read_timeout_s=1.0,
        )  # fmt: skip
        with pytest.raises(AmbiguousError, match="read timeout of 1 s"):
            await asyncio.wait_for(client.create_task(P1, _body("drip"), region="cn-north-4"), 15)
        assert sim.stats["requests"].get("dripped") == 1
        assert len(sim.tasks) == 1  # acted on: only a lookup can tell


async def test_a_run_against_a_dripping_server_looks_up_and_never_duplicates(
    tmp_path: Path,
) -> None:
    inventory = write_inventory(tmp_path / "dbs.xlsx", 8)
    reports = tmp_path / "r"
    async with Simulator(faults=DRIP) as sim:
        args = (
            str(inventory), "--endpoint", sim.url, "--reports-dir", str(reports),
            "--read-timeout", "1", "--concurrency", "1", "--yes",
        )  # fmt: skip
        done = await bulkscan(tmp_path, "run", *args, env=sim_env(state=tmp_path / "state"))
        said = done.out + done.err
        dripped = sim.stats["requests"].get("dripped", 0)
        listed = sim.stats["requests"].get("listed", 0)
        no_duplicate(sim)
        assert len(sim.tasks) == 8
    assert done.code == 0, said
    assert "Traceback" not in said
    assert dripped == 8  # every create was answered by a drip, none was sent again
    assert listed >= 1  # the ambiguous creates were looked up
    (journal_path,) = reports.glob("*/journal.sqlite")
    with Journal.open(journal_path.parent, readonly=True) as journal:
        states = Counter(t.state for t in journal.tasks())
    assert set(states) <= SUCCEEDED_STATES and sum(states.values()) == 8, states
