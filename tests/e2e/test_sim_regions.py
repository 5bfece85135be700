"""One simulator standing in for several regions' endpoints, as the real service has them.

The embedded simulator (``--simulate``) is reached at ``URL/region/{region}``, so a task
created in one region is not listed in another: the demo's audit sees no orphans that are
only another region's tasks.  A plain ``URL/v1/...`` still sees every task.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.errors import DscError, UsageError
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator, region_endpoint

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _body(name: str) -> bytes:
    return json.dumps(
        {
            "task_name": name,
            "task_description": "regions",
            "data_sources": [{"ins_id": f"ins-{name}", "db_type": "MySQL"}],
            "schedule_type": "ONCE",
            "start_time": 0,
        }
    ).encode()


def _client(session: aiohttp.ClientSession, url: str) -> DscClient:
    return DscClient(session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(url))


@pytest.mark.asyncio
async def test_each_region_lists_its_own_tasks_and_plain_paths_see_all() -> None:
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        scoped = _client(session, region_endpoint(sim.url))
        await scoped.create_task(PROJECT, _body("north"), region="cn-north-4")
        await scoped.create_task(PROJECT, _body("south"), region="cn-south-1")
        north = await scoped.list_tasks(PROJECT, region="cn-north-4")
        south = await scoped.list_tasks(PROJECT, region="cn-south-1")
        assert [t.name for t in north] == ["north"]
        assert [t.name for t in south] == ["south"]
        everything = await _client(session, sim.url).list_tasks(PROJECT, region="cn-north-4")
        assert sorted(t.name for t in everything) == ["north", "south"]
        assert {t["region"] for t in sim.tasks} == {"cn-north-4", "cn-south-1"}


def test_an_endpoint_with_a_region_placeholder_checks_the_region() -> None:
    endpoints = Endpoints("https://proxy.example/dsc/{region}")
    assert endpoints.url_for("cn-north-4") == "https://proxy.example/dsc/cn-north-4"
    with pytest.raises(UsageError, match="not a region name"):
        endpoints.url_for("../admin")


@pytest.mark.asyncio
async def test_a_late_created_task_is_listed_only_in_the_region_it_was_sent_to() -> None:
    """``late_create`` answers 504 and creates the task later: in the request's region, as
    an on-time create would, not in every region of the project."""
    async with Simulator(faults=Faults(late_create=1.0, late_create_s=0.2)) as sim:
        async with aiohttp.ClientSession() as session:
            scoped = _client(session, region_endpoint(sim.url))
            with pytest.raises(DscError):
                await scoped.create_task(PROJECT, _body("late"), region="cn-north-4")
            for _ in range(100):  # the backend finishes late (bounded wait)
                if sim.tasks:
                    break
                await asyncio.sleep(0.02)
            sim.set_faults(Faults())
            north = await scoped.list_tasks(PROJECT, region="cn-north-4")
            south = await scoped.list_tasks(PROJECT, region="cn-south-1")
        assert [t.name for t in north] == ["late"]
        assert south == []
        assert [t["region"] for t in sim.tasks] == ["cn-north-4"]
