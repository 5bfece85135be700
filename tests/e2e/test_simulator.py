"""The DSC simulator over a real 127.0.0.1 socket, with raw requests signed by the signer."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from bulkscan.cli import simulate as simulate_cli
from bulkscan.dsc.signing import sign_headers
from bulkscan.errors import InputError, UsageError
from bulkscan.sim.server import (
    DEFAULT_AK,
    DEFAULT_SK,
    Faults,
    Simulator,
    parse_faults,
    parse_list_shape,
    parse_quota,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

PROJECT = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
API = "/v1/{}/metadata/task-templates"
START = 1_700_000_000.0  # a fixed moment for tests that control the clock
TIMEOUT = aiohttp.ClientTimeout(total=10)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Answer:
    status: int
    headers: Any
    json: Any


def body(name: str = "task-1", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "data_sources": [{"db_type": "MySQL", "ins_id": "ins-1"}],
        "delete_failed_meta": False,
        "scan_config": {"scan_tables": True, "scan_views": False},
        "schedule_switch": True,
        "schedule_type": "ONCE",
        "start_now": True,
        "start_time": 0,
        "task_description": "made by a test",
        "task_name": name,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


async def call(
    session: aiohttp.ClientSession,
    sim: Simulator,
    method: str,
    *,
    project: str = PROJECT,
    payload: Any = None,
    raw: bytes | None = None,
    query: Sequence[tuple[str, str]] = (),
    ak: str = DEFAULT_AK,
    sk: str = DEFAULT_SK,
    at: float | None = None,
    path: str | None = None,
) -> Answer:
    """Send one signed request (signed at ``at``, default now) and read the JSON answer."""
    url = sim.url + (path or API.format(project))
    data = raw if raw is not None else b"" if payload is None else json.dumps(payload).encode()
    now = None if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    headers = sign_headers(
        method,
        url,
        {"Content-Type": "application/json"},
        data,
        access_key=ak,
        secret_key=sk,
        project_id=project,
        now=now,
        query=query,
    )
    async with session.request(method, url, params=list(query), data=data, headers=headers) as r:
        return Answer(r.status, r.headers, await r.json(content_type=None))


async def create(session: aiohttp.ClientSession, sim: Simulator, name: str, **kw: Any) -> Answer:
    return await call(session, sim, "POST", payload=body(name), **kw)


async def control(
    session: aiohttp.ClientSession, sim: Simulator, method: str, path: str, payload: Any = None
) -> Answer:
    async with session.request(method, sim.url + path, json=payload) as r:
        text = await r.text()
        return Answer(r.status, r.headers, json.loads(text) if text else None)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
        yield s


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=1) as s:
        yield s


# --- create and list ------------------------------------------------------------------------


async def test_create_answers_a_string_id_and_list_shows_the_task_detail(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    created = await create(session, sim, "orders-db")
    assert created.status == 200
    assert created.json["status"] == "success" and created.json["msg"]
    assert isinstance(created.json["id"], str) and created.json["id"].isdigit()
    listed = await call(session, sim, "GET")
    assert listed.status == 200 and listed.json["total_num"] == 1
    (detail,) = listed.json["result"]
    # the documented TaskDetail, and a name key: nothing of our own invention
    assert set(detail) == {
        "create_user", "data_source", "delete_failed_meta", "id", "last_end_time",
        "last_trigger_time", "task_name",
    }  # fmt: skip
    assert detail["id"] == int(created.json["id"])
    assert detail["task_name"] == "orders-db"
    assert detail["data_source"] == ["MySQL:ins-1"]
    assert detail["delete_failed_meta"] is False and detail["create_user"]
    assert detail["last_trigger_time"] <= detail["last_end_time"]
    assert (sim.tasks[0]["id"], sim.tasks[0]["name"]) == (created.json["id"], "orders-db")
    assert sim.tasks[0]["project_id"] == PROJECT and sim.tasks[0]["body"] == body("orders-db")


async def test_task_not_started_now_has_no_run_times(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    await call(session, sim, "POST", payload=body("later", start_now=False, start_time=2**31 - 1))
    (detail,) = (await call(session, sim, "GET")).json["result"]
    assert detail["last_trigger_time"] is None and detail["last_end_time"] is None


async def test_ids_increase_and_the_same_body_twice_makes_two_tasks(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    ids = [int((await create(session, sim, "same")).json["id"]) for _ in range(3)]
    assert ids == sorted(set(ids))
    assert [t["name"] for t in sim.tasks] == ["same"] * 3


async def test_list_filters_by_name_part_schedule_type_and_id(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    await create(session, sim, "alpha-1")
    await call(session, sim, "POST", payload=body("alpha-2", schedule_type="DAY"))
    beta = await call(session, sim, "POST", payload=body("beta", schedule_type="WEEK"))

    async def names(query: list[tuple[str, str]]) -> list[str]:
        answer = await call(session, sim, "GET", query=query)
        assert answer.status == 200
        return sorted(t["task_name"] for t in answer.json["result"])

    assert await names([("task_name", "alpha")]) == ["alpha-1", "alpha-2"]
    assert await names([("task_name", "alpha-2")]) == ["alpha-2"]
    assert await names([("schedule_types", "DAY"), ("schedule_types", "WEEK")]) == [
        "alpha-2",
        "beta",
    ]
    assert await names([("id", beta.json["id"])]) == ["beta"]
    assert await names([("task_name", "gamma")]) == []


async def test_list_pages_by_page_size_only_and_ignores_offset_by_default(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    for i in range(25):
        await create(session, sim, f"t{i:02}")
    first = await call(session, sim, "GET")
    assert first.json["total_num"] == 25 and len(first.json["result"]) == 20
    assert first.json["result"][0]["task_name"] == "t24"
    big = await call(session, sim, "GET", query=[("page_size", "1000")])
    assert len(big.json["result"]) == 25
    ignored = await call(session, sim, "GET", query=[("offset", "10"), ("page_size", "5")])
    assert [t["task_name"] for t in ignored.json["result"]] == ["t24", "t23", "t22", "t21", "t20"]


async def test_list_pages_newest_first_with_offset_limit_or_page_when_honoured(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.set_list_shape(parse_list_shape("offset=honoured"))
    for i in range(25):
        await create(session, sim, f"t{i:02}")
    seen = []
    for offset in range(0, 25, 10):
        page = await call(session, sim, "GET", query=[("offset", str(offset)), ("limit", "10")])
        seen += [t["task_name"] for t in page.json["result"]]
    assert seen == [f"t{i:02}" for i in reversed(range(25))]
    third = await call(session, sim, "GET", query=[("page", "3"), ("page_size", "10")])
    assert [t["task_name"] for t in third.json["result"]] == ["t04", "t03", "t02", "t01", "t00"]


async def test_list_shows_only_the_project_asked(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    await create(session, sim, "mine")
    await create(session, sim, "theirs", project=OTHER)
    answer = await call(session, sim, "GET", project=OTHER)
    assert [t["task_name"] for t in answer.json["result"]] == ["theirs"]


# --- validation -----------------------------------------------------------------------------

_INVALID_BODIES = [
    *[(body(**{f: ...}), f) for f in ("data_sources", "schedule_type", "start_time")],
    *[(body(**{f: ...}), f) for f in ("task_description", "task_name")],
    (body(task_name=None), "task_name"),
    (body(task_name=7), "task_name"),
    (body(task_name=""), "task_name"),
    (body(task_name="x" * 1025), "task_name"),
    (body(task_description="x" * 1025), "task_description"),
    (body(task_description=["x"]), "task_description"),
    (body(schedule_type="HOURLY"), "schedule_type"),
    (body(start_time="0"), "start_time"),
    (body(start_time=True), "start_time"),
    (body(start_time=1.5), "start_time"),
    (body(start_time=-1), "start_time"),
    (body(start_time=2147483648), "start_time"),
    (body(data_sources=[]), "data_sources"),
    (body(data_sources={"db_type": "MySQL", "ins_id": "i"}), "data_sources"),
    (body(data_sources=["MySQL:i"]), "data_sources[0]"),
    (body(data_sources=[{"db_type": "MySQL"}]), "data_sources[0].ins_id"),
    (body(data_sources=[{"db_type": "", "ins_id": "i"}]), "data_sources[0].db_type"),
    (body(schedule_switch="yes"), "schedule_switch"),
    (body(start_now=1), "start_now"),
    (body(delete_failed_meta="false"), "delete_failed_meta"),
    (body(scan_config=[]), "scan_config"),
    (body(scan_config={"scan_tables": 1}), "scan_config.scan_tables"),
]


@pytest.mark.parametrize(("payload", "field"), _INVALID_BODIES)
async def test_invalid_body_is_400_naming_the_field(
    sim: Simulator, session: aiohttp.ClientSession, payload: dict[str, Any], field: str
) -> None:
    answer = await call(session, sim, "POST", payload=payload)
    assert answer.status == 400
    assert answer.json["error_code"] == "dsc.40000011"
    assert f"'{field}'" in answer.json["error_msg"]
    assert sim.tasks == []


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"", b"\xff\xfe"])
async def test_body_that_is_not_a_json_object_is_400(
    sim: Simulator, session: aiohttp.ClientSession, raw: bytes
) -> None:
    answer = await call(session, sim, "POST", raw=raw)
    assert (answer.status, answer.json["error_code"]) == (400, "dsc.40000011")


async def test_longest_allowed_values_are_accepted(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    long = body("n" * 1024, task_description="d" * 1024, start_time=2147483647)
    assert (await call(session, sim, "POST", payload=long)).status == 200


@pytest.mark.parametrize(
    "query",
    [
        [("page_size", "2147483648")],
        [("page_size", "-1")],
        [("page_size", "ten")],
        [("id", "abc")],
        [("schedule_types", "HOURLY")],
        [("task_name", "x" * 257)],
    ],
)
async def test_invalid_list_query_is_400(
    sim: Simulator, session: aiohttp.ClientSession, query: list[tuple[str, str]]
) -> None:
    answer = await call(session, sim, "GET", query=query)
    assert (answer.status, answer.json["error_code"]) == (400, "dsc.40000011")


async def test_too_large_body_is_413(sim: Simulator, session: aiohttp.ClientSession) -> None:
    url = sim.url + API.format(PROJECT)
    data = json.dumps(body(task_description="x" * 2_000_000)).encode()
    headers = sign_headers("POST", url, {}, data, access_key=DEFAULT_AK, secret_key=DEFAULT_SK)
    async with session.post(url, data=io.BytesIO(data), headers=headers) as r:
        assert (r.status, (await r.json())["error_code"]) == (413, "APIG.0201")
    assert sim.tasks == []


# --- authentication -------------------------------------------------------------------------


async def test_bad_signature_unknown_ak_and_missing_auth_are_401_0301(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    for answer in [
        await create(session, sim, "x", sk=DEFAULT_SK + "x"),
        await create(session, sim, "x", ak="UNKNOWNAK"),
    ]:
        assert (answer.status, answer.json["error_code"]) == (401, "APIGW.0301")
    async with session.get(sim.url + API.format(PROJECT)) as r:
        assert (r.status, (await r.json())["error_code"]) == (401, "APIGW.0301")
    assert sim.tasks == []


async def test_tampered_body_query_or_signed_header_is_refused(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    url = sim.url + API.format(PROJECT)
    data = json.dumps(body("signed")).encode()
    headers = sign_headers(
        "POST", url, {"X-Extra": "1"}, data, access_key=DEFAULT_AK, secret_key=DEFAULT_SK
    )
    tampered = json.dumps(body("tampered")).encode()
    async with session.post(url, data=tampered, headers=headers) as r:
        assert r.status == 401
    async with session.post(url, data=data, headers={**headers, "X-Extra": "2"}) as r:
        assert r.status == 401
    async with session.post(url, data=data, params={"a": "1"}, headers=headers) as r:
        assert r.status == 401
    without = {k: v for k, v in headers.items() if k != "X-Extra"}
    async with session.post(url, data=data, headers=without) as r:
        assert r.status == 401
    async with session.post(url, data=data, headers=headers) as r:
        assert r.status == 200


async def test_configured_credentials_and_tokens(session: aiohttp.ClientSession) -> None:
    async with Simulator(credentials={"MYAK": "mysk"}, tokens=["tok-1"]) as sim:
        assert (await create(session, sim, "a", ak="MYAK", sk="mysk")).status == 200
        assert (await create(session, sim, "b")).status == 401  # defaults replaced
        url = sim.url + API.format(PROJECT)
        async with session.post(url, json=body("c"), headers={"X-Auth-Token": "tok-1"}) as r:
            assert r.status == 200
        async with session.post(url, json=body("d"), headers={"X-Auth-Token": "tok-2"}) as r:
            assert (r.status, (await r.json())["error_code"]) == (401, "APIGW.0301")
        assert [t["name"] for t in sim.tasks] == ["a", "c"]


async def test_date_more_than_15_minutes_off_is_401_0303(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with Simulator(clock=clock) as sim:
        late = await create(session, sim, "late", at=START - 15 * 60 - 1)
        early = await create(session, sim, "early", at=START + 15 * 60 + 1)
        for answer in (late, early):
            assert (answer.status, answer.json["error_code"]) == (401, "APIGW.0303")
        assert (await create(session, sim, "ok", at=START - 14 * 60)).status == 200
        assert [t["name"] for t in sim.tasks] == ["ok"]


async def test_five_failures_lock_the_ak_for_five_minutes(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    async with Simulator(clock=clock) as sim:
        for _ in range(5):
            assert (await create(session, sim, "bad", sk="wrong", at=clock.now)).status == 401
        locked = await create(session, sim, "good", at=clock.now)
        assert (locked.status, locked.json["error_code"]) == (401, "APIGW.0301")
        assert "locked" in locked.json["error_msg"]
        clock.now += 299
        assert (await create(session, sim, "good", at=clock.now)).status == 401
        clock.now += 1
        assert (await create(session, sim, "good", at=clock.now)).status == 200
        assert sim.stats["requests"]["locked"] == 2


async def test_a_success_resets_the_failure_count(session: aiohttp.ClientSession) -> None:
    async with Simulator() as sim:
        for _ in range(4):
            await create(session, sim, "bad", sk="wrong")
        assert (await create(session, sim, "good")).status == 200
        for _ in range(4):
            await create(session, sim, "bad", sk="wrong")
        assert (await create(session, sim, "good")).status == 200


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_official_sdk_signature_is_accepted_and_a_tampered_one_refused(
    sim: Simulator, session: aiohttp.ClientSession, content_type: str
) -> None:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    data = json.dumps(body("by-the-sdk")).encode()
    request = SdkRequest(
        method="POST",
        schema="http",
        host=f"127.0.0.1:{sim.port}",
        resource_path=API.format(PROJECT),
        query_params=[],
        header_params={
            "Content-Type": content_type,  # not JSON: the SDK signs an UNSIGNED-PAYLOAD
            "X-Project-Id": PROJECT,
            "X-Sdk-Date": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        },
        body=data,
    )
    signed = Signer(BasicCredentials(DEFAULT_AK, DEFAULT_SK)).sign(request).header_params
    url = sim.url + API.format(PROJECT)
    other_project = {**signed, "X-Project-Id": OTHER}
    async with session.post(url, data=data, headers=other_project) as r:
        assert r.status == 401
    tampered = data.replace(b"by-the", b"not-by")
    async with session.post(url, data=tampered, headers=signed) as r:
        assert r.status == (401 if content_type == "application/json" else 200)
    async with session.post(url, data=data, headers=signed) as r:
        assert r.status == 200
    names = [t["name"] for t in sim.tasks]
    assert names == (
        ["by-the-sdk"] if content_type == "application/json" else ["not-by-sdk", "by-the-sdk"]
    )


# --- not found ------------------------------------------------------------------------------


async def test_unknown_or_malformed_project_is_404(session: aiohttp.ClientSession) -> None:
    async with Simulator(projects=[PROJECT]) as sim:
        assert (await create(session, sim, "ok")).status == 200
        for project in (OTHER, "not-a-project"):
            answer = await create(session, sim, "x", project=project)
            assert (answer.status, answer.json["error_code"]) == (404, "dsc.40400001")
    async with Simulator() as sim:
        assert (await create(session, sim, "x", project=PROJECT.upper())).status == 404
        assert (await create(session, sim, "x", project=OTHER)).status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v1/{PROJECT}/metadata/task-template"),
        ("POST", f"/v1/{PROJECT}/metadata/task-templates/"),
        ("PUT", f"/v1/{PROJECT}/metadata/task-templates"),
        ("DELETE", f"/v1/{PROJECT}/metadata/task-templates/1"),  # batch delete has no id
        ("GET", f"/v1/{PROJECT}/metadata/task-templates/1"),  # there is no get-one API
        ("GET", "/"),
        ("POST", "/_sim/tasks"),
    ],
)
async def test_wrong_path_or_method_is_404_0101(
    sim: Simulator, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    answer = await call(session, sim, method, payload=body(), path=path)
    assert (answer.status, answer.json["error_code"]) == (404, "APIGW.0101")


async def test_every_answer_carries_a_request_id(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    ok = await create(session, sim, "x")
    bad = await create(session, sim, "x", sk="wrong")
    assert ok.headers["X-Request-Id"] and bad.headers["X-Request-Id"] == bad.json["request_id"]
    assert ok.headers["X-Request-Id"] != bad.headers["X-Request-Id"]
    assert (await control(session, sim, "GET", "/_sim/stats")).headers["X-Request-Id"]


# --- throttling -----------------------------------------------------------------------------


async def test_quota_per_project_answers_429_0308_until_the_window_ends(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    async with Simulator(quota=parse_quota("3/min"), clock=clock) as sim:
        for i in range(3):
            assert (await create(session, sim, f"t{i}", at=clock.now)).status == 200
        throttled = await call(session, sim, "GET", at=clock.now)
        assert (throttled.status, throttled.json["error_code"]) == (429, "APIG.0308")
        assert throttled.json["error_msg"] == (
            "The throttling threshold has been reached: policy user over ratelimit,"
            "limit:3,time:1 minute"
        )
        assert "Retry-After" not in throttled.headers
        assert (await create(session, sim, "other", project=OTHER, at=clock.now)).status == 200
        clock.now += 60
        assert (await create(session, sim, "t3", at=clock.now)).status == 200
        assert sim.stats["by_project"][PROJECT]["throttled"] == 1
        assert len(sim.tasks) == 5


async def test_retry_after_only_when_enabled(session: aiohttp.ClientSession) -> None:
    clock = Clock(START - START % 60 + 20)  # 20 s into a minute
    async with Simulator(quota=(1, 60.0), retry_after=True, clock=clock) as sim:
        assert (await create(session, sim, "a", at=clock.now)).status == 200
        throttled = await create(session, sim, "b", at=clock.now)
        assert throttled.status == 429 and throttled.headers["Retry-After"] == "40"


async def test_quota_per_second_names_the_period(session: aiohttp.ClientSession) -> None:
    clock = Clock(START)
    async with Simulator(quota=(2, 1.0), clock=clock) as sim:
        answers = [await create(session, sim, f"t{i}", at=clock.now) for i in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        assert answers[2].json["error_msg"].endswith("limit:2,time:1 second")


async def test_failed_auth_is_not_counted_against_the_quota(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator(quota=(1, 3600.0)) as sim:
        assert (await create(session, sim, "x", sk="wrong")).status == 401
        assert (await create(session, sim, "x")).status == 200


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code", "created"),
    [
        ("http500", 500, "dsc.50000001", False),
        ("http502", 502, "APIG.0201", False),
        ("http503", 503, "APIG.0613", False),
        ("http504", 504, "APIG.0201", True),
        ("http429", 429, "APIG.0308", False),
    ],
)
async def test_http_faults(
    session: aiohttp.ClientSession, fault: str, status: int, code: str, created: bool
) -> None:
    async with Simulator(faults=Faults(**{fault: 1.0}), seed=7) as sim:
        answer = await create(session, sim, "x")
        assert (answer.status, answer.json["error_code"]) == (status, code)
        assert answer.json["request_id"] == answer.headers["X-Request-Id"]
        assert [t["name"] for t in sim.tasks] == (["x"] if created else [])
        assert (await call(session, sim, "GET")).status == status
        assert sim.stats["requests"] == {fault: 2}


@pytest.mark.parametrize(("fault", "created"), [("reset_before", False), ("reset_after", True)])
async def test_connection_resets(session: aiohttp.ClientSession, fault: str, created: bool) -> None:
    async with Simulator(faults=Faults(**{fault: 1.0}), seed=7) as sim:
        with pytest.raises(aiohttp.ClientConnectionError):
            await create(session, sim, "x")
        assert [t["name"] for t in sim.tasks] == (["x"] if created else [])
        listed = await call(session, sim, "GET") if fault == "reset_after" else None
        assert listed is None or listed.json["total_num"] == 1  # a GET is never reset after


async def test_stall_outlasts_the_read_timeout_but_the_task_exists(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator(faults=Faults(stall=1.0, stall_s=30.0)) as sim:
        url = sim.url + API.format(PROJECT)
        data = json.dumps(body("slow")).encode()
        headers = sign_headers("POST", url, {}, data, access_key=DEFAULT_AK, secret_key=DEFAULT_SK)
        short = aiohttp.ClientTimeout(sock_read=0.3)
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(url, data=data, headers=headers, timeout=short) as r:
                await r.read()
        assert [t["name"] for t in sim.tasks] == ["slow"]
        sim.set_faults(Faults())
        assert (await call(session, sim, "GET")).json["total_num"] == 1


async def test_stop_lets_stalled_requests_go_at_once(session: aiohttp.ClientSession) -> None:
    sim = Simulator(faults=Faults(stall=1.0, stall_s=600.0))
    await sim.start()
    pending = asyncio.ensure_future(create(session, sim, "slow"))
    while not sim.tasks:  # noqa: ASYNC110 - the simulator has no event to wait on
        await asyncio.sleep(0.01)
    await asyncio.wait_for(sim.stop(), 5)
    with contextlib.suppress(aiohttp.ClientError):  # answered or cut: either way, not stuck
        await asyncio.wait_for(pending, 5)


async def test_faults_repeat_with_the_same_seed(session: aiohttp.ClientSession) -> None:
    faults = Faults(http500=0.3, http503=0.3, jitter_s=0.001)
    runs = []
    for _ in range(2):
        async with Simulator(faults=faults, seed=42) as sim:
            runs.append([(await create(session, sim, f"t{i}")).status for i in range(20)])
    assert runs[0] == runs[1]
    assert {200, 500, 503} <= set(runs[0])


async def test_a_restart_that_keeps_its_state_draws_on_from_the_seed(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A resumed demo must not meet the faults its last session met, in the same order (it
    could stay "unknown" for ever); the same seed and state still give the same faults."""
    faults = Faults(http500=0.3, http503=0.3)

    async def session_of(state: Path) -> list[int]:
        async with Simulator(faults=faults, seed=42, state_path=state) as sim:
            return [(await create(session, sim, f"t{i}")).status for i in range(20)]

    runs = {name: [await session_of(tmp_path / name) for _ in range(3)] for name in ("a", "b")}
    assert runs["a"] == runs["b"]  # reproducible, session by session
    assert len({tuple(session) for session in runs["a"]}) == 3  # each session draws on


def test_parse_faults_and_quota() -> None:
    spec = "http500=0.05, reset_after=0.02,stall=0.01,latency=50ms,stall_s=2s,jitter_s=10ms"
    assert parse_faults(spec) == Faults(
        http500=0.05, reset_after=0.02, stall=0.01, latency_s=0.05, stall_s=2.0, jitter_s=0.01
    )
    assert parse_faults("") == Faults()
    assert parse_quota("30/min") == (30, 60.0)
    assert parse_quota("5/s") == (5, 1.0)
    assert parse_quota("1000/hour") == (1000, 3600.0)
    assert parse_quota("100/10s") == (100, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Faults().http500 = 1.0  # type: ignore[misc]


async def test_lists_answered_refuses_every_listing_past_the_count(
    session: aiohttp.ClientSession,
) -> None:
    """A service that goes away mid-run: N listings answered, then 503s (creates untouched);
    setting the faults again counts afresh."""
    assert parse_faults("lists_answered=2") == Faults(lists_answered=2)
    async with Simulator(faults=Faults(lists_answered=2)) as sim:

        async def listed() -> int:
            return (await call(session, sim, "GET")).status

        assert [await listed() for _ in range(4)] == [200, 200, 503, 503]
        assert (await create(session, sim, "t1")).status == 200
        sim.set_faults(Faults(lists_answered=1))
        assert [await listed() for _ in range(2)] == [200, 503]


async def test_a_late_create_can_hold_its_504_as_a_gateway_timeout(
    session: aiohttp.ClientSession,
) -> None:
    """``late_answer_s``: the 504 comes that long after the request, the task
    ``late_create_s`` after the 504, even when the client has gone away meanwhile."""
    spec = "late_create=1,late_answer=300ms,late_create_after=200ms"
    held = parse_faults(spec)
    assert held == Faults(late_create=1.0, late_answer_s=0.3, late_create_s=0.2)
    async with Simulator(faults=held) as sim:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await create(session, sim, "t1")).status == 504
        assert loop.time() - started >= 0.3 and sim.tasks == []
        gone = asyncio.create_task(create(session, sim, "t2"))  # its client goes away
        for _ in range(200):  # until its 504 is decided (and held), bounded
            if sim.stats["requests"].get("late_create", 0) >= 2:
                break
            await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.6)
        assert sorted(t["name"] for t in sim.tasks) == ["t1", "t2"]


@pytest.mark.parametrize(
    "spec",
    [
        "http500", "http418=0.1", "http500=lots", "http500=1.5", "http500=0.6,http502=0.6",
        "lists_answered=-1", "lists_answered=1.5", "lists_answered=some",
    ],
)  # fmt: skip
def test_bad_fault_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_faults(spec)


@pytest.mark.parametrize("text", ["30", "30/fortnight", "0/min", "-1/s", "x/min"])
def test_bad_quotas_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_quota(text)


# --- state ----------------------------------------------------------------------------------


async def test_state_file_survives_a_restart_on_the_same_port(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    async with Simulator(state_path=state) as sim:
        await create(session, sim, "a")
        await create(session, sim, "b")
        port = sim.port
        sim.update_task(1, enabled=False)
    async with Simulator(state_path=state, port=port) as again:
        assert [(t["id"], t["name"], t["enabled"]) for t in again.tasks] == [
            ("1", "a", False),
            ("2", "b", True),
        ]
        assert (await create(session, again, "c")).json["id"] == "3"
    left = await asyncio.to_thread(os.listdir, tmp_path)
    assert left == ["state.json"]  # no temporary file left behind


def test_a_state_file_that_cannot_be_written_says_what_to_do(tmp_path: Path) -> None:
    """Refused at once (not at the first task), naming the file and what fixes it."""
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(InputError, match="make room on its disk or make its folder writable"):
        Simulator(state_path=blocked / "state.json")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


async def test_ids_are_never_reused_after_delete_or_reset(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with Simulator(state_path=state) as sim, aiohttp.ClientSession() as session:
        await create(session, sim, "a")
        sim.reset()
        assert sim.tasks == []
    async with Simulator(state_path=state) as sim, aiohttp.ClientSession() as session:
        assert (await create(session, sim, "b")).json["id"] == "2"


@pytest.mark.parametrize("text", ["{", "[]", '{"format": "other"}'])
def test_unreadable_state_file_is_an_input_error(tmp_path: Path, text: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(text, "utf-8")
    with pytest.raises(InputError, match=r"state\.json"):
        Simulator(state_path=state)


def test_state_file_in_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="writable"):
        Simulator(state_path=tmp_path / "missing" / "state.json")


# --- introspection and control --------------------------------------------------------------


async def test_sim_tasks_and_stats(sim: Simulator, session: aiohttp.ClientSession) -> None:
    await create(session, sim, "a")
    await create(session, sim, "b", sk="wrong")
    await call(session, sim, "GET", project=OTHER)
    tasks = (await control(session, sim, "GET", "/_sim/tasks")).json
    assert tasks == sim.tasks
    assert set(tasks[0]) == {
        "id", "remote_id", "name", "project_id", "body", "created_at", "enabled", "region",
    }  # fmt: skip
    stats = (await control(session, sim, "GET", "/_sim/stats")).json
    assert stats["requests"] == {"created": 1, "unauthorized": 1, "listed": 1}
    assert stats["by_project"] == {PROJECT: {"created": 1, "unauthorized": 1}, OTHER: {"listed": 1}}
    assert len(stats["arrivals"]) == 3 and stats["arrivals"] == sorted(stats["arrivals"])
    assert stats["tasks"] == 1


async def test_sim_faults_and_quota_switch_at_runtime(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    set_faults = await control(session, sim, "POST", "/_sim/faults", {"http500": 1.0})
    assert set_faults.status == 200 and sim.faults == Faults(http500=1.0)
    assert (await control(session, sim, "GET", "/_sim/faults")).json == set_faults.json
    assert (await create(session, sim, "x")).status == 500
    assert (await control(session, sim, "POST", "/_sim/faults", {})).status == 200
    assert (await create(session, sim, "x")).status == 200
    for bad in ({"http500": 2}, {"nope": 1}, [1]):
        assert (await control(session, sim, "POST", "/_sim/faults", bad)).status == 400
    quota = await control(session, sim, "POST", "/_sim/quota", {"quota": "1/hour"})
    assert quota.json == {"quota": [1, 3600.0]}
    assert (await create(session, sim, "y")).status == 200
    assert (await create(session, sim, "z")).status == 429
    assert (await control(session, sim, "POST", "/_sim/quota", {"quota": None})).status == 200
    assert (await create(session, sim, "z")).status == 200
    assert (await control(session, sim, "POST", "/_sim/quota", {"quota": "lots"})).status == 400


async def test_sim_delete_patch_and_reset(sim: Simulator, session: aiohttp.ClientSession) -> None:
    for name in ("a", "b", "c"):
        await create(session, sim, name)
    assert (await control(session, sim, "DELETE", "/_sim/tasks/1")).status == 204
    assert (await control(session, sim, "DELETE", "/_sim/tasks/1")).status == 404
    off = await control(session, sim, "PATCH", "/_sim/tasks/2", {"enabled": False})
    assert off.json["enabled"] is False
    switch = await control(session, sim, "PATCH", "/_sim/tasks/3", {"schedule_switch": False})
    assert switch.json["body"]["schedule_switch"] is False
    assert (await control(session, sim, "PATCH", "/_sim/tasks/9", {"enabled": False})).status == 404
    assert (await control(session, sim, "PATCH", "/_sim/tasks/2", {"enabled": "no"})).status == 400
    sim.set_list_shape(parse_list_shape("extras=yes"))  # the undocumented fields, when sent
    listed = {t["task_name"]: t for t in (await call(session, sim, "GET")).json["result"]}
    assert set(listed) == {"b", "c"}
    assert (listed["b"]["enabled"], listed["b"]["schedule_switch"]) == (False, True)
    assert (listed["c"]["enabled"], listed["c"]["schedule_switch"]) == (True, False)
    assert (await control(session, sim, "POST", "/_sim/reset")).status == 200
    assert sim.tasks == [] and sim.stats["requests"] == {}


# --- list shapes the documentation leaves open --------------------------------------------------


async def test_list_shape_variants(sim: Simulator, session: aiohttp.ClientSession) -> None:
    for i in range(5):
        await create(session, sim, f"t{i}")
    sim.set_list_shape(parse_list_shape("name=none,sources=ins_id,ids=uuid,page_cap=2,total=short"))
    answer = (await call(session, sim, "GET", query=[("page_size", "100")])).json
    assert len(answer["result"]) == 2 and answer["total_num"] == 0  # 5 less a short total of 7
    first = answer["result"][0]
    assert "task_name" not in first and first["data_source"] == ["ins-1"]
    assert isinstance(first["id"], str) and first["id"].count("-") == 4
    assert first["id"] == sim.tasks[-1]["remote_id"]
    by_id = await call(session, sim, "GET", query=[("id", first["id"])])
    assert [t["id"] for t in by_id.json["result"]] == [first["id"]]
    sim.set_list_shape(parse_list_shape("name=templateTitle,total=short:1"))
    answer = (await call(session, sim, "GET", query=[("page_size", "100")])).json
    assert answer["total_num"] == 4 and len(answer["result"]) == 5
    assert answer["result"][0]["templateTitle"] == "t4"


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("html", lambda text: text.startswith("<html>")),
        ("error-body", lambda text: json.loads(text)["status"] == "failed"),
        ("no-id", lambda text: "id" not in json.loads(text)),
    ],
)
async def test_create_answered_200_without_a_usable_body_still_creates(
    sim: Simulator, session: aiohttp.ClientSession, kind: str, check: Any
) -> None:
    sim.set_list_shape(parse_list_shape(f"create={kind}"))
    url = f"{sim.url}/v1/{PROJECT}/metadata/task-templates"
    raw = json.dumps(body("odd")).encode()
    headers = sign_headers(
        "POST", url, {"Content-Type": "application/json"}, raw,
        access_key=DEFAULT_AK, secret_key=DEFAULT_SK, project_id=PROJECT,
        now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    async with session.post(url, data=raw, headers=headers) as r:
        assert r.status == 200 and check(await r.text())
    assert [t["name"] for t in sim.tasks] == ["odd"]


async def test_project_without_dsc_is_401_with_a_dsc_code(session: aiohttp.ClientSession) -> None:
    async with Simulator(dsc_disabled=[OTHER]) as sim:
        answer = await call(session, sim, "GET", project=OTHER)
        assert (answer.status, answer.json["error_code"]) == (401, "dsc.10000009")
        assert (await call(session, sim, "GET")).status == 200


async def test_list_shape_control_route(sim: Simulator, session: aiohttp.ClientSession) -> None:
    spec = {"spec": "name=name,offset=honoured"}
    answer = await control(session, sim, "POST", "/_sim/list-shape", spec)
    assert answer.status == 200 and sim.list_shape == parse_list_shape(spec["spec"])
    assert parse_list_shape(answer.json["spec"]) == sim.list_shape
    assert (await control(session, sim, "GET", "/_sim/list-shape")).json == answer.json
    bad = await control(session, sim, "POST", "/_sim/list-shape", {"spec": "name=a b"})
    assert bad.status == 400


@pytest.mark.parametrize(
    "spec", ["name", "colour=red", "ids=words", "page_cap=0", "total=maybe", "offset=perhaps"]
)
def test_bad_list_shape_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="list shape"):
        parse_list_shape(spec)


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"],
            *["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            *["-keyout", str(key), "-out", str(cert)],
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_https_with_a_self_signed_certificate(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    async with Simulator(ssl_context=server) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await create(session, sim, "refused")
        trusting = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(cert)))
        async with aiohttp.ClientSession(connector=trusting, timeout=TIMEOUT) as session:
            assert (await create(session, sim, "over-tls")).status == 200
        assert [t["name"] for t in sim.tasks] == ["over-tls"]


# --- the command line -----------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bulkscan")
    simulate_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_every_option_has_help() -> None:
    parser = argparse.ArgumentParser(prog="bulkscan")
    sub = parser.add_subparsers()
    simulate_cli.register(sub)
    (simulate,) = sub.choices.values()
    options = [a for a in simulate._actions if a.option_strings and a.dest != "help"]
    assert {a.option_strings[0] for a in options} >= {
        "--host", "--port", "--ak", "--sk", "--token", "--project", "--quota",
        "--retry-after", "--latency", "--faults", "--seed", "--state",
    }  # fmt: skip
    assert all(a.help for a in options)


def test_options_become_simulator_settings(tmp_path: Path) -> None:
    args = _parse(
        [
            *["--port", "0", "--ak", "AK1", "--sk", "SK1", "--token", "t1", "--project", PROJECT],
            *["--quota", "30/min", "--retry-after", "--latency", "50ms", "--seed", "3"],
            *["--faults", "http500=0.1,stall=0.2", "--state", str(tmp_path / "s.json")],
        ]
    )
    options = simulate_cli.simulator_options(args)
    assert options["credentials"] == {"AK1": "SK1"} and options["tokens"] == ("t1",)
    assert options["projects"] == (PROJECT,) and options["quota"] == (30, 60.0)
    assert options["faults"] == Faults(http500=0.1, stall=0.2, latency_s=0.05)
    assert options["retry_after"] is True and options["seed"] == 3
    assert Simulator(**options).quota == (30, 60.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--quota", "lots"],
        ["--latency", "soon"],
        ["--faults", "http999=1"],
        ["--ak", "AK1"],
        ["--sk", "SK1"],
        ["--project", "not-hex"],
        ["--port", "70000"],
        ["--tls-key", "key.pem"],
        ["--tls-cert", "missing.pem"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        simulate_cli.simulator_options(_parse(argv))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_command_serves_until_a_stop_signal(
    session: aiohttp.ClientSession, tmp_path: Path, stop: signal.Signals
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkscan",
        "simulate",
        "--port",
        "0",
        "--project",
        PROJECT,
        "--state",
        str(tmp_path / "state.json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout = proc.stdout
    assert stdout is not None
    try:
        first = (await asyncio.wait_for(stdout.readline(), 20)).decode()
        if not first:
            _, err = await asyncio.wait_for(proc.communicate(), 20)
            pytest.fail(f"the command ended at once: {err.decode()[-2000:]}")
        assert first.startswith("DSC simulator listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        rest = (await asyncio.wait_for(stdout.readline(), 5)).decode()
        assert rest.strip() == f"export HUAWEICLOUD_SDK_AK={DEFAULT_AK}"
        target = url + API.format(PROJECT)
        data = json.dumps(body("from-the-cli")).encode()
        headers = sign_headers(
            "POST", target, {}, data, access_key=DEFAULT_AK, secret_key=DEFAULT_SK
        )
        async with session.post(target, data=data, headers=headers) as r:
            assert (r.status, (await r.json())["id"]) == (200, "1")
        proc.send_signal(stop)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        assert "DSC simulator stopped" in out.decode()
        assert "from-the-cli" in (tmp_path / "state.json").read_text("utf-8")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_http429_fault_states_a_limit_in_the_gateway_form(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator(faults=Faults(http429=1.0), seed=7) as sim:
        answer = await create(session, sim, "x")
        assert "over ratelimit,limit:200,time:1 second" in answer.json["error_msg"]
        assert "Retry-After" not in answer.headers
