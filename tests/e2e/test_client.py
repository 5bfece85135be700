"""The DSC client against the project's simulator (and a few hand-made servers) on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import socket
import ssl
import subprocess
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from bulkscan.dsc.classify import Verdict
from bulkscan.dsc.client import (
    CREATE_PATH,
    DscClient,
    Endpoints,
    RemoteTask,
    make_ssl_context,
    parse_remote_sources,
    parse_remote_task,
)
from bulkscan.dsc.credentials import AkSk, Credentials, Token
from bulkscan.errors import (
    AmbiguousError,
    DscError,
    ProjectPermanentError,
    RunFatalError,
    TaskPermanentError,
    ThrottledError,
    TransientError,
    UntrustedListingError,
    UsageError,
)
from bulkscan.models import DataSource
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Faults, Simulator, parse_list_shape

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from bulkscan.events import Attempt

PID = "0123456789abcdef0123456789abcdef"
OTHER_PID = "fedcba9876543210fedcba9876543210"
REGION = "cn-north-4"
AK = "AKTESTCLIENT00000001"
SK = "client-test-secret-key-0123456789"
TOKEN = "iam-token-for-the-client-tests-0123456789"
SECRETS = (SK, DEFAULT_SK, TOKEN)


def _body(name: str = "bulkscan-default-cn-north-4-001", **changes: Any) -> bytes:
    body: dict[str, Any] = {
        "data_sources": [
            {"db_type": "MySQL", "ins_id": "ins-1"},
            {"db_type": "PostgreSQL", "ins_id": "ins-2"},
        ],
        "delete_failed_meta": False,
        "scan_config": {"scan_tables": True, "scan_views": True},
        "schedule_switch": False,
        "schedule_type": "ONCE",
        "start_now": True,
        "start_time": 0,
        "task_description": "created by bulkscan",
        "task_name": name,
    }
    body.update(changes)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _assert_no_secret(exc: BaseException) -> None:
    text = f"{exc} {exc!r} {exc.args!r}"
    for secret in SECRETS:
        assert secret not in text
    assert "Signature=" not in text and "Authorization" not in text


# --- units: endpoints, TLS context, parsing ---------------------------------------------------


def test_endpoints_default_override_and_per_region() -> None:
    assert Endpoints().url_for("cn-north-4") == "https://sdg.cn-north-4.myhuaweicloud.com"
    per = Endpoints(per_region={"ap-southeast-1": "https://dsc.ap-southeast-1.example.com/"})
    assert per.url_for("ap-southeast-1") == "https://dsc.ap-southeast-1.example.com"
    assert per.url_for("cn-east-3") == "https://sdg.cn-east-3.myhuaweicloud.com"
    both = Endpoints("http://127.0.0.1:8080", {"cn-east-3": "https://x.example"})
    assert both.url_for("cn-east-3") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("override", "per_region", "message"),
    [
        ("ftp://example.com", None, "not an http"),
        ("sdg.cn-north-4.myhuaweicloud.com", None, "not an http"),
        ("https://", None, "not an http"),
        ("https://example.com/?a=1", None, "query or fragment"),
        (None, {"cn-north-4": "file:///etc/passwd"}, "region 'cn-north-4'"),
    ],
)
def test_endpoints_refuse_non_http_urls(
    override: str | None, per_region: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        Endpoints(override, per_region)


@pytest.mark.parametrize("region", ["evil.example/x", "CN-NORTH-4", "cn", "cn-north-4.attacker"])
def test_default_endpoint_refuses_odd_region_names(region: str) -> None:
    with pytest.raises(UsageError, match="not a region name"):
        Endpoints().url_for(region)


def test_make_ssl_context(tmp_path: Path) -> None:
    assert make_ssl_context(verify=False) is False
    context = make_ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(UsageError, match="does not exist"):
        make_ssl_context(ca_bundle=str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate", "utf-8")
    with pytest.raises(UsageError, match="not a PEM CA bundle"):
        make_ssl_context(ca_bundle=str(junk))


@pytest.mark.parametrize(
    ("value", "sources"),
    [
        (["MySQL:ins-1", "PostgreSQL:ins:2"], [("MySQL", "ins-1"), ("PostgreSQL", "ins:2")]),
        ([{"db_type": "MySQL", "ins_id": "ins-1"}], [("MySQL", "ins-1")]),
        (['{"db_type": "DWS", "ins_id": "d-1"}'], [("DWS", "d-1")]),
        (["ins-bare"], [("", "ins-bare")]),
        ([{"type": "RDS", "instance_id": 7}], [("RDS", "7")]),
        ([":ins-3"], [("", "ins-3")]),  # the type left out
        ([], []),
    ],
)
def test_parse_remote_sources(value: object, sources: list[tuple[str, str]]) -> None:
    assert parse_remote_sources(value) == tuple(DataSource(t, i) for t, i in sources)


@pytest.mark.parametrize(
    "value",
    [
        "MySQL:ins-1",  # not an array
        None,
        {"db_type": "MySQL", "ins_id": "ins-9"},
        ["MySQL:ins-1", None],  # one unreadable item spoils the whole value
        ["MySQL:ins-1", 3],
        [""],
        [{"db_type": "MySQL"}],
        ["{bad json"],
        ["MySQL:"],
    ],
)
def test_unreadable_remote_sources_are_none_not_skipped(value: object) -> None:
    assert parse_remote_sources(value) is None


def test_parse_remote_task_is_tolerant() -> None:
    task = parse_remote_task(
        {
            "id": 1234567890123,
            "task_name": "n1",
            "data_source": ["MySQL:ins-1"],
            "schedule_type": "ONCE",
            "schedule_switch": "false",
            "last_trigger_time": "1700000000000",
            "last_end_time": None,
            "create_user": "someone",
        }
    )
    assert task == RemoteTask(
        id="1234567890123",
        name="n1",
        data_sources=(DataSource("MySQL", "ins-1"),),
        schedule_type="ONCE",
        schedule_switch=False,
        last_trigger_time=1700000000000,
        last_end_time=None,
        create_user="someone",
    )
    assert task.raw["create_user"] == "someone"
    assert parse_remote_task({"task_name": "no id", "data_source": []}) is None
    assert parse_remote_task({"id": "7", "data_source": []}) is None  # no name
    assert parse_remote_task({"id": "7", "name": "n"}) is None  # no data sources
    alt = parse_remote_task({"id": "7", "name": "alt", "data_source": []})
    assert alt == RemoteTask("7", "alt", ())


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(projects=[PID], credentials={AK: SK}, tokens=[TOKEN], seed=1) as s:
        yield s


def _client(
    session: aiohttp.ClientSession,
    url: str,
    creds: Credentials | None = None,
    **kwargs: Any,
) -> DscClient:
    return DscClient(session, creds or AkSk(AK, SK), endpoints=Endpoints(url), **kwargs)


async def _raises(
    cls: type[DscError], call: Callable[[], Awaitable[object]], *, code: str | None = None
) -> DscError:
    with pytest.raises(cls) as info:
        await call()
    err = info.value
    assert type(err) is cls
    if code is not None:
        assert err.code == code
    _assert_no_secret(err)
    return err


# --- against the simulator ------------------------------------------------------------------


async def test_create_and_list_round_trip(sim: Simulator, session: aiohttp.ClientSession) -> None:
    attempts: list[Attempt] = []
    client = _client(session, sim.url, on_attempt=attempts.append)
    result = await client.create_task(PID, _body("round-trip"), region=REGION)
    assert result.verdict is Verdict.CREATED and result.http_status == 200
    assert result.task_id is not None and result.request_id
    assert [str(t["id"]) for t in sim.tasks] == [result.task_id]
    assert sim.tasks[0]["body"] == json.loads(_body("round-trip"))

    listed = await client.list_tasks(PID, region=REGION, task_name="round-trip")
    assert [(t.id, t.name) for t in listed] == [(result.task_id, "round-trip")]
    assert listed[0].data_sources == (
        DataSource("MySQL", "ins-1"),
        DataSource("PostgreSQL", "ins-2"),
    )
    assert listed[0].schedule_type is None  # not in the documented TaskDetail

    path = CREATE_PATH.format(project_id=PID)
    assert [(a.method, a.path, a.status, a.verdict) for a in attempts] == [
        ("POST", path, 200, "created"),
        ("GET", path, 200, "ok"),  # a 2xx that is not a create is no "created"
    ]
    assert all(a.request_id and a.latency_s >= 0 for a in attempts)


async def test_a_create_is_told_with_the_verdict_its_body_gives(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    """A 200 without a task id is an ambiguous create: --debug and ``on_attempt`` say so,
    not "created" as the status alone would."""
    sim.set_list_shape(parse_list_shape("create=no-id"))
    attempts: list[Attempt] = []
    client = _client(session, sim.url, on_attempt=attempts.append)
    await _raises(AmbiguousError, lambda: client.create_task(PID, _body("no-id"), region=REGION))
    assert [(a.method, a.status, a.verdict) for a in attempts] == [("POST", 200, "ambiguous")]


async def test_list_follows_pages_to_the_end(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = _client(session, sim.url)
    made = [await client.create_task(PID, _body(f"paged-{i:02}"), region=REGION) for i in range(7)]
    await client.create_task(PID, _body("other-name"), region=REGION)
    pages: list[Attempt] = []
    lister = _client(session, sim.url, on_attempt=pages.append)
    listed = await lister.list_tasks(PID, region=REGION, task_name="paged-", page_size=3)
    assert sorted(t.id for t in listed) == sorted(str(r.task_id) for r in made)
    assert len(pages) == 2  # a full page of 3, then one page larger than total_num
    everything = await lister.list_tasks(PID, region=REGION, page_size=2)
    assert len(everything) == 8
    assert lister.shapes[(PID, REGION)].paging == "page_size=total_num"
    assert await lister.list_tasks(PID, region=REGION, task_name="absent") == []


async def test_query_with_utf8_and_reserved_characters_is_signed_right(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = _client(session, sim.url)
    name = "任务 a+b&c=d/é?"
    await client.create_task(PID, _body(name), region=REGION)
    listed = await client.list_tasks(PID, region=REGION, task_name=name)
    assert [t.name for t in listed] == [name]


async def test_temporary_credentials_and_token_auth(session: aiohttp.ClientSession) -> None:
    async with Simulator(projects=[PID], credentials={AK: SK}, tokens=[TOKEN], seed=2) as s:
        with_token = _client(session, s.url, AkSk(AK, SK, "temporary-security-token"))
        assert (await with_token.create_task(PID, _body("st"), region=REGION)).task_id
        by_token = _client(session, s.url, Token(TOKEN))
        assert (await by_token.create_task(PID, _body("tok"), region=REGION)).task_id
        assert {t.name for t in await by_token.list_tasks(PID, region=REGION)} == {"st", "tok"}
        bad = _client(session, s.url, Token("not-the-token"))
        err = await _raises(RunFatalError, lambda: bad.create_task(PID, _body(), region=REGION))
        assert "not-the-token" not in str(err)


async def test_default_credentials_of_the_simulator(session: aiohttp.ClientSession) -> None:
    async with Simulator(seed=3) as s:
        client = _client(session, s.url, AkSk(DEFAULT_AK, DEFAULT_SK))
        assert (await client.create_task(PID, _body(), region=REGION)).verdict.ok


async def test_bad_secret_key_is_run_fatal(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = _client(session, sim.url, AkSk(AK, SK + "x"))
    err = await _raises(
        RunFatalError, lambda: client.create_task(PID, _body(), region=REGION), code="APIGW.0301"
    )
    assert err.status == 401 and err.request_id
    assert "never retries" in str(err)
    assert sim.tasks == []


async def test_clock_skew_is_run_fatal(sim: Simulator, session: aiohttp.ClientSession) -> None:
    def skewed() -> dt.datetime:
        return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)

    client = _client(session, sim.url, clock=skewed)
    err = await _raises(
        RunFatalError, lambda: client.list_tasks(PID, region=REGION), code="APIGW.0303"
    )
    assert "fix the system clock" in str(err)


def _mid_minute() -> float:
    """A fixed server time in the middle of the current minute: quota windows cannot roll."""
    return math.floor(time.time() / 60) * 60 + 30.0


async def test_throttled_with_limit(session: aiohttp.ClientSession) -> None:
    frozen = _mid_minute()
    async with Simulator(
        projects=[PID], credentials={AK: SK}, quota=(2, 60.0), seed=4, clock=lambda: frozen
    ) as s:
        client = _client(session, s.url)
        for i in range(2):
            await client.create_task(PID, _body(f"q{i}"), region=REGION)
        err = await _raises(
            ThrottledError, lambda: client.create_task(PID, _body("q3"), region=REGION)
        )
        assert isinstance(err, ThrottledError)
        assert err.status == 429 and err.code == "APIG.0308"
        assert err.limit_per_s == pytest.approx(2 / 60)
        assert err.retry_after is None
        assert len(s.tasks) == 2


async def test_throttled_with_retry_after(session: aiohttp.ClientSession) -> None:
    frozen = _mid_minute()
    async with Simulator(
        projects=[PID],
        credentials={AK: SK},
        quota=(1, 60.0),
        retry_after=True,
        seed=5,
        clock=lambda: frozen,
    ) as s:
        client = _client(session, s.url)
        await client.create_task(PID, _body(), region=REGION)
        err = await _raises(ThrottledError, lambda: client.create_task(PID, _body(), region=REGION))
        assert err.retry_after == 30.0


async def test_invalid_body_is_task_permanent(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = _client(session, sim.url)
    for body in (_body(schedule_type="HOURLY"), _body(data_sources=[]), b"[1, 2]"):
        err = await _raises(
            TaskPermanentError, lambda b=body: client.create_task(PID, b, region=REGION)
        )
        assert err.status == 400 and (err.code or "").startswith("dsc.")
    assert sim.tasks == []


async def test_unknown_project_is_project_permanent(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = _client(session, sim.url)
    err = await _raises(
        ProjectPermanentError, lambda: client.create_task(OTHER_PID, _body(), region=REGION)
    )
    assert err.status == 404
    await _raises(ProjectPermanentError, lambda: client.list_tasks(OTHER_PID, region=REGION))


async def test_malformed_project_id_is_refused_before_sending(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    attempts: list[Attempt] = []
    client = _client(session, sim.url, on_attempt=attempts.append)
    with pytest.raises(ProjectPermanentError, match="not a valid project id"):
        await client.create_task("../../v2/other", _body(), region=REGION)
    assert attempts == []


async def test_wrong_path_is_run_fatal(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = DscClient(
        session, AkSk(AK, SK), endpoints=Endpoints(per_region={REGION: sim.url + "/wrong"})
    )
    err = await _raises(
        RunFatalError, lambda: client.create_task(PID, _body(), region=REGION), code="APIGW.0101"
    )
    assert "wrong endpoint/path" in str(err)


@pytest.mark.parametrize(
    "case",
    [
        ("http500", AmbiguousError, TransientError, False),
        ("http502", AmbiguousError, TransientError, False),
        ("http503", TransientError, TransientError, False),
        ("http504", AmbiguousError, TransientError, True),
        ("reset_before", AmbiguousError, TransientError, False),
        ("reset_after", AmbiguousError, None, True),  # the simulator never resets a GET after
    ],
    ids=lambda case: case[0],
)
async def test_faults_are_classified(
    sim: Simulator,
    session: aiohttp.ClientSession,
    case: tuple[str, type[DscError], type[DscError] | None, bool],
) -> None:
    fault, create_cls, list_cls, leaves_task = case
    attempts: list[Attempt] = []
    client = _client(session, sim.url, on_attempt=attempts.append)
    sim.set_faults(Faults(**{fault: 1.0}))
    await _raises(create_cls, lambda: client.create_task(PID, _body("f"), region=REGION))
    if list_cls is not None:
        await _raises(list_cls, lambda: client.list_tasks(PID, region=REGION))
    sim.set_faults(Faults())
    # Some faults leave the task behind: the reason such a create is ambiguous.
    existing = await client.list_tasks(PID, region=REGION, task_name="f")
    assert len(existing) == int(leaves_task)
    first = Verdict.TRANSIENT if create_cls is TransientError else Verdict.AMBIGUOUS
    assert attempts[0].verdict == first
    if list_cls is not None:
        assert attempts[1].verdict == Verdict.TRANSIENT


async def test_stall_becomes_a_read_timeout(sim: Simulator, session: aiohttp.ClientSession) -> None:
    attempts: list[Attempt] = []
    client = _client(session, sim.url, read_timeout_s=0.2, on_attempt=attempts.append)
    sim.set_faults(Faults(stall=1.0, stall_s=2.0))
    err = await _raises(AmbiguousError, lambda: client.create_task(PID, _body(), region=REGION))
    assert "after sending the request" in str(err)
    assert attempts[0].status is None and attempts[0].verdict == Verdict.AMBIGUOUS
    await _raises(TransientError, lambda: client.list_tasks(PID, region=REGION))


async def test_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _client(session, f"http://127.0.0.1:{port}")
    err = await _raises(TransientError, lambda: client.create_task(PID, _body(), region=REGION))
    assert f"cannot connect to 127.0.0.1:{port}" in str(err)
    assert "SSLContext" not in str(err)  # the message names the address, not Python objects


# --- the official SDK signer --------------------------------------------------------------------


def _official_request(url: str, body: bytes) -> tuple[str, dict[str, str]]:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest

    scheme, host = url.split("://", 1)
    request = SdkRequest(
        method="POST",
        schema=scheme,
        host=host,
        resource_path=CREATE_PATH.format(project_id=PID),
        query_params=[],
        header_params={"Content-Type": "application/json;charset=UTF-8"},
        body=body,
    )
    signed = BasicCredentials(AK, SK, PID).sign_request(request)
    return f"{url}{signed.uri}", dict(signed.header_params)


async def test_official_sdk_signature_is_accepted_and_tampering_refused(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    body = _body("signed-by-the-sdk")
    target, headers = _official_request(sim.url, body)
    assert headers["X-Project-Id"] == PID and "SDK-HMAC-SHA256" in headers["Authorization"]
    async with session.post(target, data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
    tampered = body.replace(b"signed-by-the-sdk", b"tampered-by-a-mitm")
    async with session.post(target, data=tampered, headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error_code"] == "APIGW.0301"
    assert [t["name"] for t in sim.tasks] == ["signed-by-the-sdk"]


# --- hand-made servers for what the simulator does not do ---------------------------------------


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_body_is_sent_byte_identical_and_odd_answers(
    session: aiohttp.ClientSession,
) -> None:
    received: list[bytes] = []

    async def create(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(text="<html>created</html>", status=200)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://elsewhere.example/")

    app = web.Application()
    app.router.add_post(CREATE_PATH.format(project_id=PID), create)
    app.router.add_post(CREATE_PATH.format(project_id=OTHER_PID), moved)
    runner, url = await _serve(app)
    try:
        client = _client(session, url)
        body = _body("bytes ✓", task_description="  spaced  ")
        err = await _raises(AmbiguousError, lambda: client.create_task(PID, body, region=REGION))
        assert received == [body]
        assert err.status == 200 and "not JSON (text/plain)" in str(err)
        err = await _raises(
            RunFatalError, lambda: client.create_task(OTHER_PID, body, region=REGION)
        )
        assert err.status == 302 and "redirect" in str(err)
    finally:
        await runner.cleanup()


async def test_list_that_ignores_paging_is_not_trusted(session: aiohttp.ClientSession) -> None:
    calls: list[dict[str, str]] = []

    async def listing(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        page = [{"id": i, "task_name": f"t{i}", "data_source": []} for i in range(3)]
        return web.json_response({"result": page, "total_num": 5})

    app = web.Application()
    app.router.add_get(CREATE_PATH.format(project_id=PID), listing)
    runner, url = await _serve(app)
    try:
        client = _client(session, url, Token(TOKEN))
        err = await _raises(
            UntrustedListingError, lambda: client.list_tasks(PID, region=REGION, page_size=3)
        )
        assert "ignores offset" in str(err) and "cannot be trusted" in str(err)
        assert calls == [
            {"page_size": "3"},  # full: there may be more
            {"page_size": "6"},  # larger than total_num: still 3 (a cap)
            {"page_size": "3", "offset": "3"},  # offset tried: the same tasks again
        ]
        partial = await client.list_tasks(PID, region=REGION, page_size=3, strict=False)
        assert [t.id for t in partial] == ["0", "1", "2"]
    finally:
        await runner.cleanup()


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_tls_verification_and_ca_bundle(
    self_signed: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with Simulator(credentials={AK: SK}, ssl_context=server_ctx, seed=6) as s:
        assert s.url.startswith("https://127.0.0.1:")
        strict = _client(session, s.url, ssl_context=make_ssl_context())
        err = await _raises(RunFatalError, lambda: strict.create_task(PID, _body(), region=REGION))
        assert "certificate" in str(err).lower() and "--ca-bundle" in str(err)
        trusted = _client(session, s.url, ssl_context=make_ssl_context(ca_bundle=cert))
        assert (await trusted.create_task(PID, _body("a"), region=REGION)).task_id
        unverified = _client(session, s.url, ssl_context=make_ssl_context(verify=False))
        assert (await unverified.create_task(PID, _body("b"), region=REGION)).task_id
        assert [t["name"] for t in s.tasks] == ["a", "b"]


async def test_client_repr_hides_secrets(session: aiohttp.ClientSession) -> None:
    client = _client(session, "http://127.0.0.1:1")
    assert SK not in repr(client) and "AKTE…0001" in repr(client)
