"""A quota the service counts in clock-aligned windows and does not state.

* The simulator's ``--quota-unstated`` refuses with 429 ``APIG.0308`` and neither a limit
  in the message nor ``Retry-After``, so the classifier finds no limit in it.
* ``bulkscan run`` against such a quota (10 per 3 s, scaled down from a minute, with
  ``--quota-windows 3s``), with its asset-centre check and coverage listing in the same
  first window, creates every task once and says, in one line, that it learned the quota,
  counting the listings; the rate halved once, not on every refused probe.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp
from test_hostile import PROJECT, REGION, write_inventory
from test_simulator import TIMEOUT, Clock, call, create

from bulkscan.dsc.classify import parse_throttle_limit
from bulkscan.dsc.client import ASSET_INSTANCES_PATH
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Simulator
from tests.e2e._cli import clean_env, cli, simulator_process

if TYPE_CHECKING:
    from pathlib import Path

ENV = clean_env(HUAWEICLOUD_SDK_AK=DEFAULT_AK, HUAWEICLOUD_SDK_SK=DEFAULT_SK)
N_TASKS = 25


async def test_an_unstated_quota_refuses_without_a_limit_or_a_wait() -> None:
    clock = Clock(1_700_000_000.0 - 1_700_000_000.0 % 60 + 20)  # 20 s into a minute
    async with (
        Simulator(quota=(1, 60.0), quota_stated=False, clock=clock) as sim,
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
    ):
        assert (await create(session, sim, "a", at=clock.now)).status == 200
        refused = await create(session, sim, "b", at=clock.now)
        assert (refused.status, refused.json["error_code"]) == (429, "APIG.0308")
        assert refused.json["error_msg"] == "The throttling threshold has been reached."
        assert parse_throttle_limit(refused.json["error_msg"]) is None
        assert "Retry-After" not in refused.headers
        clock.now += 40  # the next minute
        assert (await create(session, sim, "b", at=clock.now)).status == 200


async def test_the_quota_counts_listings_as_well_as_creates() -> None:
    """A gateway's quota counts every call of the account: a listing of tasks and one of
    the asset centre spend the window as a create does."""
    clock = Clock(1_700_000_000.0 - 1_700_000_000.0 % 60 + 20)
    assets = ASSET_INSTANCES_PATH.format(project_id=PROJECT)
    async with (
        Simulator(quota=(3, 60.0), quota_stated=False, clock=clock) as sim,
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
    ):
        listed = await call(session, sim, "GET", at=clock.now)
        found = await call(
            session, sim, "GET", path=assets, query=[("instance_type", "RDS")],
            at=clock.now,
        )  # fmt: skip
        assert (listed.status, found.status) == (200, 200)
        assert (await create(session, sim, "a", at=clock.now)).status == 200
        refused = await create(session, sim, "b", at=clock.now)
        assert (refused.status, refused.json["error_code"]) == (429, "APIG.0308")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # 127.0.0.1 only
        return json.load(answer)


def test_a_run_learns_an_unstated_windowed_quota_and_creates_every_task_once(
    tmp_path: Path,
) -> None:
    rows = [[f"ins-{i:03}", "MySQL", PROJECT, REGION] for i in range(N_TASKS)]
    inventory = write_inventory(
        tmp_path / "dbs.xlsx",
        ["ins_id", "db_type", "project_id", "region"],
        rows,
        [["profile", "max_sources"], ["default", 1]],
    )
    with simulator_process(tmp_path, "--quota", "10/3s", "--quota-unstated") as (url, _):
        done = cli(
            "run", str(inventory), "--endpoint", url, "--yes",
            "--rate", "20/s", "--quota-windows", "3s",
            "--reports-dir", str(tmp_path / "reports"),
            env=ENV, timeout=120,
        )  # fmt: skip
        tasks = _get(f"{url}/_sim/tasks")
        stats = _get(f"{url}/_sim/stats")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    names = Counter(task["name"] for task in tasks)
    assert len(names) == N_TASKS and set(names.values()) == {1}
    learned = [line for line in done.stderr.splitlines() if "learned a quota" in line]
    assert len(learned) == 1, done.stderr[-3000:]
    said = r"learned a quota of (\d+) per 3 seconds from the service's refusals"
    found = re.search(said, learned[0])
    assert found, learned[0]
    # the asset check's and the coverage listings (6 requests) count too, as the service
    # counts them: never more than the quota; a little fewer when requests granted just
    # before a boundary reached the service after it (a loaded machine), never the 4 the
    # creates alone would show; the speed is measured in bench_quota.py
    assert 7 <= int(found.group(1)) <= 10, learned[0]
    throttled_lines = [line for line in done.stderr.splitlines() if "(throttled)" in line]
    assert len(throttled_lines) <= 2, done.stderr[-3000:]  # halved per episode, not per refusal
    assert stats["by_project"][PROJECT]["throttled"] >= 1
