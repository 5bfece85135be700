"""The asset centre: the simulator's listings, the catalogue read from them, the checks."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from bulkscan.dsc.client import (
    ASSET_INSTANCES_PATH,
    AUTHORIZED_DATABASES_PATH,
    DscClient,
    Endpoints,
)
from bulkscan.dsc.credentials import AkSk
from bulkscan.errors import DscError
from bulkscan.run.assets import (
    INSTANCE_TYPES,
    Catalog,
    check_instance,
    read_catalog,
    resolve_name,
    type_disagrees,
)
from bulkscan.run.ratelimit import AdaptiveRate
from bulkscan.run.retry import RetryPolicy
from bulkscan.sim._assets import AssetInstance, Assets, generate_assets
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator

if TYPE_CHECKING:
    from collections.abc import Sequence

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
CN = "cn-north-4"
FAST = RetryPolicy(max_attempts=4, max_seconds=30.0, backoff_base_s=0.0, backoff_max_s=0.0)

ASSETS = Assets(
    [
        AssetInstance(P1, "id-orders", "orders-db"),
        AssetInstance(P1, "id-billing", "billing-db", db_type="PostgreSQL"),
        AssetInstance(P1, "id-stopped", "old-db", ins_status="STOPPED"),
        AssetInstance(
            P1, "id-unauth", "secret-db", authorized=False, authorize_fail_reason="wrong password"
        ),
        AssetInstance(P1, "id-mongo", "docs-db", ins_type="DDS", db_type="MongoDB"),
        AssetInstance(P1, "id-twin-1", "twin-db"),
        AssetInstance(P1, "id-twin-2", "twin-db", ins_type="GaussDB", db_type="GaussDB"),
        AssetInstance(P2, "id-other", "orders-db"),
    ]
)


async def _catalog(
    sim: Simulator, scopes: Sequence[tuple[str, str]], *, rate: float = 500.0
) -> Catalog:
    async with aiohttp.ClientSession() as session:
        client = DscClient(
            session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url)
        )
        return await read_catalog(
            scopes, client, limiter=AdaptiveRate(rate), policy=FAST, sleep=_no_sleep
        )


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def _asset_requests(sim: Simulator) -> int:
    counts: dict[str, int] = sim.stats["requests"]
    return sum(n for outcome, n in counts.items() if outcome.startswith("assets_"))


async def test_the_simulator_answers_in_the_documented_shapes() -> None:
    async with Simulator(assets=ASSETS) as sim, aiohttp.ClientSession() as session:
        got: dict[str, Any] = {}
        client = DscClient(
            session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url)
        )
        for kind, template in (
            ("instances", ASSET_INSTANCES_PATH),
            ("authorized-databases", AUTHORIZED_DATABASES_PATH),
        ):
            answer = await client._call(
                "GET", P1, CN, [("instance_type", "RDS"), ("limit", "2"), ("offset", "1")], b"",
                idempotent=True, template=template,
            )  # fmt: skip
            got[kind] = answer.payload
    instances = got["instances"]
    assert instances["count"] == 5  # RDS instances of P1
    assert [i["ins_name"] for i in instances["instance_list"]] == ["billing-db", "old-db"]
    assert {"id", "ins_id", "ins_name", "ins_status", "ins_type", "db_type"} <= set(
        instances["instance_list"][0]
    )
    databases = got["authorized-databases"]
    assert databases["total"] == 5
    assert databases["databases"][1]["authorized"] is True
    assert {"ins_id", "db_name", "authorized", "authorize_fail_reason"} <= set(
        databases["databases"][0]
    )


async def test_a_create_naming_an_unknown_ins_id_is_refused_in_the_service_format() -> None:
    body = {
        "task_name": "t", "task_description": "", "schedule_type": "ONCE", "start_time": 0,
        "data_sources": [{"db_type": "MySQL", "ins_id": "id-nobody"}],
    }  # fmt: skip
    async with Simulator(assets=ASSETS) as sim, aiohttp.ClientSession() as session:
        client = DscClient(
            session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url)
        )
        with pytest.raises(DscError) as caught:
            await client.create_task(P1, json.dumps(body).encode(), region=CN)
        body["data_sources"] = [{"db_type": "MySQL", "ins_id": "id-orders"}]
        created = await client.create_task(P1, json.dumps(body).encode(), region=CN)
    assert caught.value.status == 400
    assert caught.value.code == "dsc.40000011"
    assert "id-nobody" in str(caught.value)
    assert created.task_id


async def test_the_catalogue_knows_each_kind_of_instance() -> None:
    async with Simulator(assets=ASSETS) as sim:
        catalog = await _catalog(sim, [(P1, CN), (P2, CN)])
    assert not catalog.errors
    assert check_instance(catalog, P1, CN, "id-orders") is None
    assert "not a database asset" in str(check_instance(catalog, P1, CN, "id-nobody"))
    assert "is the name of id-orders" in str(check_instance(catalog, P1, CN, "orders-db"))
    assert "STOPPED" in str(check_instance(catalog, P1, CN, "id-stopped"))
    assert "wrong password" in str(check_instance(catalog, P1, CN, "id-unauth"))
    assert "MongoDB" in str(check_instance(catalog, P1, CN, "id-mongo"))
    found = resolve_name(catalog, P1, CN, "Orders-DB ")
    assert found.instance is not None and found.instance.ins_id == "id-orders"
    assert resolve_name(catalog, P2, CN, "orders-db").instance.ins_id == "id-other"  # type: ignore[union-attr]
    typo = resolve_name(catalog, P1, CN, "ordres-db")
    assert typo.instance is None and "did you mean 'orders-db'" in str(typo.problem)
    twins = resolve_name(catalog, P1, CN, "twin-db")
    assert twins.instance is None
    assert "id-twin-1" in str(twins.problem) and "id-twin-2" in str(twins.problem)
    clash = resolve_name(catalog, P1, CN, "orders-db", "id-billing")
    assert clash.instance is None and "disagrees" in str(clash.problem)
    billing = catalog.by_id(P1, CN, "id-billing")
    assert billing is not None
    assert type_disagrees("MySQL", billing) and not type_disagrees("postgres", billing)


async def test_5000_instances_in_10_projects_take_one_listing_per_project_and_type() -> None:
    projects = [f"{n:02d}" * 16 for n in range(10)]
    assets = generate_assets(projects, 500, seed=3)
    async with Simulator(assets=assets) as sim:
        catalog = await _catalog(sim, [(p, CN) for p in projects])
        requests = _asset_requests(sim)
    assert sum(len(found) for found in catalog.instances.values()) == 5000
    # every type with instances costs one instance listing and one authorisation listing;
    # the simulator knows no GaussDB(for OpenGauss) instance, so that listing is alone
    present = {(i.project_id, i.ins_type) for f in catalog.instances.values() for i in f}
    expected = len(projects) * len(INSTANCE_TYPES) + len(present)
    assert requests == catalog.requests == expected
    assert requests < 10 * len(INSTANCE_TYPES) * 2 + 1


async def test_pages_follow_limit_and_offset_when_a_type_holds_more_than_a_page() -> None:
    assets = Assets([AssetInstance(P1, f"id-{n}", f"db-{n}") for n in range(2500)])
    async with Simulator(assets=assets) as sim:
        catalog = await _catalog(sim, [(P1, CN)])
        requests = _asset_requests(sim)
    assert len(catalog.instances[(P1, CN)]) == 2500
    assert requests == 3 + 3 + len(INSTANCE_TYPES) - 1  # RDS: 3 pages each, others empty


async def test_a_total_smaller_than_the_truth_does_not_end_the_listing_early() -> None:
    assets = Assets([AssetInstance(P1, f"id-{n}", f"db-{n}") for n in range(1500)])
    async with Simulator(assets=assets, asset_fault="low-count") as sim:
        catalog = await _catalog(sim, [(P1, CN)])
    assert len(catalog.instances[(P1, CN)]) == 1500


async def test_a_failing_scope_is_kept_as_an_error_after_retries() -> None:
    async with Simulator(assets=ASSETS, faults=Faults(http500=1.0)) as sim:
        catalog = await _catalog(sim, [(P1, CN)])
    assert (P1, CN) in catalog.errors
    assert "could not be read" in str(check_instance(catalog, P1, CN, "id-orders"))
    assert catalog.requests == FAST.max_attempts
