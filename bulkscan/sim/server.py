"""A local DSC behind a simulated API gateway, for tests, demos and CI (``bulkscan simulate``).

Routes: ``POST`` and ``GET /v1/{project_id}/metadata/task-templates`` (the real shapes), the
lifecycle routes (update, batch delete, operate, task runs: ``bulkscan.sim._lifecycle``), and
``/_sim/...`` introspection and control routes that need no auth (``tasks``, ``stats``,
``faults``, ``quota``, ``reset``, ``DELETE``/``PATCH tasks/{id}``, ``POST put-task``: a task put in
as if created elsewhere, duplicate names allowed).

Each API request goes through, in order: latency (``latency_s`` + uniform ``jitter_s``); route
(else 404 ``APIGW.0101``); auth (``X-Auth-Token`` among the tokens, or an SDK-HMAC-SHA256
signature recomputed over the received request, honouring the official SDK's
``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD``: 401 ``APIGW.0301``; ``X-Sdk-Date`` more than
15 minutes off the clock: 401 ``APIGW.0303``; 5 consecutive failures lock an AK for 5 minutes);
the quota (429 ``APIG.0308``); the project (not 32 lowercase hex, or not configured: 404
``dsc.40400001``; DSC not enabled there: 401 ``dsc.10000009``, as the real service answers);
faults; then DSC itself (a bad body or query: 400 ``dsc.40000011``).  DSC's own codes are
written in lower case, as real answers write them.

Choices where the real service is undocumented:

- Throttling is a fixed window per project, aligned to the clock (every whole second, minute
  or hour), counting every authenticated API request; ``Retry-After`` (the seconds left in the
  window) is sent only when enabled, as the real gateway sends none.  A refusal names the
  limit (``limit:30,time:1 minute``) unless ``quota_stated`` is off: then it says only that
  the threshold was reached, and a client has to learn the window from the refusals.
- One seeded draw per request picks at most one fault: ``reset_before`` (connection dropped
  with a TCP reset, nothing created), ``http500`` (dsc.50000001), ``http502`` (APIG.0201
  backend unavailable), ``http503`` (APIG.0613) and ``http429`` (APIG.0308 under the API's
  default per-IP limit of 200/s, as when other callers share it) create nothing;
  ``http504`` (APIG.0201 backend timeout) creates the task and then answers 504, as a
  gateway that gave up on a slow backend; ``reset_after`` creates the task and drops the
  connection; ``stall`` creates the task and answers normally only after ``stall_s``, so a
  client whose read timed out finds the task by listing; ``echo`` creates nothing and answers
  400 with a message that repeats the request's ``Authorization``, ``X-Auth-Token`` and
  ``X-Security-Token`` headers, as a careless server may.  ``retry_after_s`` adds a
  ``Retry-After`` of that many seconds to ``http429``; ``drip`` creates the task and sends
  the answer's headers at once and its body one byte every ``drip_s`` (default 1 s), as a
  slow link or proxy may, so that only a bound on the whole answer stops the wait.  A GET
  can meet every fault but ``reset_after``, ``drip`` and ``late_create``; ``late_create``
  answers a create 504 at once and creates the task ``late_create_s`` later (a backend
  that finishes after its gateway gave up; ``late_create=1``: every attempt).
  ``list_http429`` answers a listing of tasks 429, drawn on its own before the faults above
  (so a run can meet throttled listings and faulty creates at once).  ``lists_answered=N``
  is no draw: the next N listings of tasks (each page a listing) are answered, every later
  one is refused 503, as a service that goes away in the middle of a run.
- The list filter ``task_name`` matches names containing it; ``schedule_types`` (repeated)
  and ``id`` match exactly.  Results are newest first.  The answer is
  ``{result: [...], total_num}``.  Paging by ``page_size`` only (default 20), as documented.
- Everything the documentation leaves open is a ``ListShape`` (``bulkscan.sim._shape``,
  ``--list-shape``): the name key, the ``data_source`` string format, an ``offset``
  honoured or ignored, a page cap, numeric or UUID-like ids, a ``total_num`` that
  under-counts, a create answered 200 without a usable body.  The default is the
  documented TaskDetail (``create_user``, ``data_source`` strings ``'{db_type}:{ins_id}'``,
  ``delete_failed_meta``, numeric ``id``, ``last_end_time``, ``last_trigger_time``) with the
  name under ``task_name``; a task created with ``start_now`` reports
  ``last_trigger_time`` at its creation and ``last_end_time`` one second later (ms since
  the epoch), other tasks ``null``.
- Ids are increasing integers, never reused (not even after ``/_sim/reset``).  With a state
  file every change is written to it (a temporary file renamed over it), so a restarted
  simulator keeps its tasks and its id counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import random
import re
import socket
import struct
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bulkscan.config import SIMULATOR_AK, SIMULATOR_SK
from bulkscan.errors import UsageError
from bulkscan.sim._api import (
    BadRequest,
    external_id,
    parse_create_body,
    parse_list_query,
    select,
)
from bulkscan.sim._assets import (
    ASSET_FAULTS,
    AssetInstance,
    AssetListingFault,
    AssetRoute,
    Assets,
    faulty_answer,
    generate_assets,
    load_assets,
)
from bulkscan.sim._config import Faults, parse_faults, parse_quota
from bulkscan.sim._control import control_routes
from bulkscan.sim._gateway import Authenticator, Denial, FixedWindowQuota, Received
from bulkscan.sim._lifecycle import Lifecycle, LifecycleRoute, Runs, TemplateNotFound, match_route
from bulkscan.sim._shape import ListShape, parse_list_shape
from bulkscan.sim._store import TaskStore

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Collection, Mapping
    from pathlib import Path

    from aiohttp.typedefs import Handler

__all__ = [
    "DEFAULT_AK",
    "DEFAULT_SK",
    "AssetInstance",
    "Assets",
    "Faults",
    "ListShape",
    "Simulator",
    "generate_assets",
    "load_assets",
    "parse_faults",
    "parse_list_shape",
    "parse_quota",
    "region_endpoint",
]

DEFAULT_AK = SIMULATOR_AK
DEFAULT_SK = SIMULATOR_SK
REQUEST_ID = "X-Request-Id"
_API_PATH = re.compile(r"^/v1/([^/]+)/metadata/task-templates$")
Route = LifecycleRoute | AssetRoute  # what a request asks for, told apart by its type
_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_BODY = 1024 * 1024
_API_NOT_FOUND = Denial(
    404,
    "APIGW.0101",
    "The API does not exist or has not been published in the environment.",
    "api_not_found",
)
_TOO_LARGE = Denial(413, "APIG.0201", "Request entity too large.", "too_large")
_EARLY_ERRORS = {
    "http500": Denial(500, "dsc.50000001", "Internal server error, try again later.", "http500"),
    "http502": Denial(502, "APIG.0201", "Backend unavailable.", "http502"),
    "http503": Denial(503, "APIG.0613", "IAM service is temporarily unavailable.", "http503"),
    "http429": Denial(
        429,
        "APIG.0308",
        "The throttling threshold has been reached: policy ip over ratelimit,limit:200,"
        "time:1 second",
        "http429",
    ),
}
_GATEWAY_TIMEOUT = Denial(504, "APIG.0201", "Backend timeout.", "http504")


class _Stats:
    """Requests by outcome (overall and per project) and every API request's arrival time."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.by_project: dict[str, Counter[str]] = {}
        self.arrivals: list[float] = []

    def count(self, outcome: str, project: str | None) -> None:
        self.requests[outcome] += 1
        if project is not None:
            self.by_project.setdefault(project, Counter())[outcome] += 1

    def snapshot(self, tasks: int) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "by_project": {p: dict(c) for p, c in self.by_project.items()},
            "arrivals": list(self.arrivals),
            "tasks": tasks,
        }


class Simulator:
    """DSC behind its gateway on a real socket: ``async with Simulator() as sim: sim.url``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        tokens: Collection[str] = (),
        projects: Collection[str] | None = None,
        quota: tuple[int, float] | None = None,
        retry_after: bool = False,
        quota_stated: bool = True,
        faults: Faults = Faults(),  # noqa: B008 - frozen, so one shared default is safe
        seed: int | None = None,
        state_path: Path | None = None,
        save_each_change: bool = True,
        clock: Callable[[], float] = time.time,
        ssl_context: ssl.SSLContext | None = None,
        list_shape: ListShape = ListShape(),  # noqa: B008 - frozen, so one shared default is safe
        dsc_disabled: Collection[str] = (),
        scan_s: float = 1.0,
        scan_failure: float = 0.0,
        assets: Assets | None = None,
        asset_fault: str | None = None,
    ) -> None:
        self.host = host
        # the asset centre; creates are checked against it only when it was given
        self._assets = assets
        if asset_fault is not None and asset_fault not in ASSET_FAULTS:
            raise UsageError(f"asset_fault must be one of {', '.join(ASSET_FAULTS)}")
        self._asset_fault = asset_fault  # its listings fail so (the task routes do not)
        self._shape = list_shape
        self._dsc_disabled = frozenset(dsc_disabled)
        self._port = port
        creds = {DEFAULT_AK: DEFAULT_SK} if credentials is None else credentials
        self._auth = Authenticator(creds, tokens)
        self._projects = None if projects is None else frozenset(projects)
        self._retry_after = retry_after
        self._quota_stated = quota_stated
        self._quota: FixedWindowQuota | None = None
        self.set_quota(quota)
        self._faults = faults
        self._lists_served = 0
        self._store = TaskStore(state_path, save_each_change=save_each_change)
        # a simulator continuing a state file draws on from its seed instead of meeting a
        # resumed run with the very faults the last session met, in the same order
        seed_now = _session_seed(seed, self._store.earlier_sessions)
        self._rng = random.Random(seed_now)
        self._runs = Runs(random.Random(seed_now), scan_s=scan_s, scan_failure=scan_failure)
        self._lifecycle = Lifecycle(self._store, self._runs)
        self._clock = clock
        self._ssl = ssl_context
        self._stats = _Stats()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # -- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: a free one, see ``port``)."""
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self._app(), handle_signals=False, access_log=None, shutdown_timeout=5.0
        )
        await runner.setup()
        try:
            sock = _listen(self.host, self._port)
            await web.SockSite(runner, sock, ssl_context=self._ssl).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(sock.getsockname()[1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening; stalled requests are let go at once."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._stopping.set()
            await runner.cleanup()
            self._store.save()

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("the simulator is not running")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    # -- introspection and control ----------------------------------------------------------

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """Every task: id (str), remote_id (as listed), name, project_id, body, created_at..."""
        shape = self._shape
        return [
            task.to_json() | {"remote_id": external_id(task.id, shape)}
            for task in self._store.all()
        ]

    @property
    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot(len(self._store.all()))

    @property
    def faults(self) -> Faults:
        return self._faults

    @property
    def list_shape(self) -> ListShape:
        return self._shape

    def set_list_shape(self, shape: ListShape) -> None:
        """Answer lists (and creates) in ``shape`` from now on."""
        self._shape = shape

    @property
    def quota(self) -> tuple[int, float] | None:
        return None if self._quota is None else (self._quota.limit, self._quota.period_s)

    def set_dsc_disabled(self, projects: Collection[str]) -> None:
        """Answer every API request of ``projects`` 401 ``dsc.10000009`` from now on, as a
        project whose DSC was switched off (``dsc_disabled`` at start)."""
        self._dsc_disabled = frozenset(projects)

    def set_faults(self, faults: Faults) -> None:
        self._faults = faults
        self._lists_served = 0  # ``lists_answered`` counts from the faults' setting

    @property
    def quota_stated(self) -> bool:
        """Whether a refusal names the quota's limit and period."""
        return self._quota_stated

    def set_quota(
        self,
        quota: tuple[int, float] | None,
        *,
        retry_after: bool | None = None,
        stated: bool | None = None,
    ) -> None:
        """Replace the per-project quota (``(count, period_s)`` or None); windows restart.

        ``retry_after`` and ``stated`` (when given) switch ``Retry-After`` and the limit in
        the message for this and later quotas."""
        if retry_after is not None:
            self._retry_after = retry_after
        if stated is not None:
            self._quota_stated = stated
        if quota is None:
            self._quota = None
            return
        limit, period_s = quota
        if int(limit) < 1 or not float(period_s) > 0:
            raise UsageError(f"quota {limit}/{period_s}s must allow at least 1 request")
        self._quota = FixedWindowQuota(
            int(limit), float(period_s), retry_after=self._retry_after, stated=self._quota_stated
        )

    def delete_task(self, task_id: str | int) -> bool:
        return self._store.delete(int(task_id))

    def update_task(
        self,
        task_id: str | int,
        *,
        enabled: bool | None = None,
        schedule_switch: bool | None = None,
    ) -> dict[str, Any] | None:
        """Disable a task or switch its schedule, as a user would in the console."""
        task = self._store.update(int(task_id), enabled=enabled, schedule_switch=schedule_switch)
        return None if task is None else task.to_json()

    def reset(self) -> None:
        """Forget every task, statistic, failure count and quota window (ids keep growing)."""
        self._store.clear()
        self._stats = _Stats()
        self._auth.reset()
        self.set_quota(self.quota)

    # -- the API ---------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[_with_request_id], client_max_size=_MAX_BODY)
        app.add_routes(control_routes(self))
        app.router.add_route("*", "/{tail:.*}", self._api)
        return app

    async def _api(self, request: web.Request) -> web.StreamResponse:
        now = self._clock()
        faults = self._faults
        self._stats.arrivals.append(now)
        jitter = self._rng.uniform(0.0, faults.jitter_s) if faults.jitter_s > 0 else 0.0
        await self._pause(faults.latency_s + jitter)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._deny(_TOO_LARGE, None)
        region, path = _scoped(request.path)
        _REGION.set(region)  # this request's task, and a late create it schedules, only
        route = _route(request.method, path)
        if route is None:
            return self._deny(_API_NOT_FOUND, None)
        project = route.project
        received = Received(
            request.method,
            request.path,
            tuple(request.query.items()),
            {name.lower(): value for name, value in request.headers.items()},
            body,
        )
        denial = self._auth.check(received, now) or self._take_quota(project, now)
        denial = denial or self._check_project(project)
        if denial is not None:
            return self._deny(denial, project)
        return await self._serve(request, received, route, faults, now)

    def _take_quota(self, project: str, now: float) -> Denial | None:
        return None if self._quota is None else self._quota.take(project, now)

    def _check_project(self, project: str) -> Denial | None:
        if project in self._dsc_disabled:
            return Denial(401, "dsc.10000009", "the DSC instance does not exist", "dsc_disabled")
        if _PROJECT_ID.match(project) and (self._projects is None or project in self._projects):
            return None
        message = f"The project {project[:64]} does not exist or has not enabled DSC."
        return Denial(404, "dsc.40400001", message, "project_not_found")

    async def _serve(
        self,
        request: web.Request,
        received: Received,
        route: Route,
        faults: Faults,
        now: float,
    ) -> web.StreamResponse:
        project = route.project
        creating = route.kind == "create"
        if self._listing_refused(route, faults):
            fault: str | None = "http503"
        elif self._list_throttled(route, faults):
            fault = "http429"
        else:
            fault = faults.pick(self._rng.random())
        if fault == "late_create" and not creating:
            fault = None
        if fault in ("late_create", "reset_before"):
            return await self._before(request, received, route, fault, faults)
        early = _echo(received) if fault == "echo" else _EARLY_ERRORS.get(fault or "")
        if fault == "http429" and faults.retry_after_s and early is not None:
            wait = {"Retry-After": f"{faults.retry_after_s:g}"}
            early = dataclasses.replace(early, headers=wait)
        if early is not None:
            return self._deny(early, project)
        try:
            payload, outcome = self._apply(route, received, now)
        except (BadRequest, TemplateNotFound, AssetListingFault) as exc:
            return self._deny(_refusal(exc), project)
        if fault == "http504":
            return self._deny(_GATEWAY_TIMEOUT, project)
        if fault == "reset_after" and route.writes:
            return self._drop(request, fault, project)
        if fault == "stall":
            outcome = "stalled"
            await self._pause(faults.stall_s)
        if fault == "drip" and route.writes:
            outcome = "dripped"
        self._stats.count(outcome, project)
        answer = self._answer(payload, creating=creating)
        return await self._drip(request, answer, faults) if outcome == "dripped" else answer

    def _listing_refused(self, route: Route, faults: Faults) -> bool:
        """The ``lists_answered`` fault: a listing of tasks past the count answered 503."""
        if faults.lists_answered is None or isinstance(route, AssetRoute) or route.kind != "list":
            return False
        self._lists_served += 1
        return self._lists_served > faults.lists_answered

    def _list_throttled(self, route: Route, faults: Faults) -> bool:
        """The ``list_http429`` fault: a listing of tasks (not of assets) refused 429."""
        if not faults.list_http429 or isinstance(route, AssetRoute) or route.kind != "list":
            return False
        return self._rng.random() < faults.list_http429

    def _apply(self, route: Route, received: Received, now: float) -> tuple[dict[str, Any], str]:
        if isinstance(route, AssetRoute):
            return self._list_assets(route.project, route.listing, received.query)
        if route.kind == "create":
            lost = self._shape.create_answer.endswith("-lost")
            return self._create(route.project, received.body, now, lost=lost)
        if route.kind == "list":
            return self._list(route.project, received.query)
        return self._lifecycle.serve(route, received.body, received.query, self._shape, now)

    def _answer(self, payload: dict[str, Any], *, creating: bool) -> web.Response:
        if creating and self._shape.create_answer != "normal":
            return _unusable_create_answer(self._shape.create_answer.removesuffix("-lost"))
        return web.json_response(payload)

    def _create(
        self, project: str, raw: bytes, now: float, *, lost: bool = False
    ) -> tuple[dict[str, Any], str]:
        body = parse_create_body(raw)
        self._check_assets(project, body)
        if lost:  # answered 200 by a front end; DSC never saw it
            return {}, "lost"
        task = self._store.create(project, body, now, region=_REGION.get())
        if task.body.get("start_now") is True:
            self._runs.start(task, now)
        task_id = external_id(task.id, self._shape)
        payload = {"id": task_id, "msg": "create task template success", "status": "success"}
        return payload, "created"

    async def _before(
        self,
        request: web.Request,
        received: Received,
        route: Route,
        fault: str,
        faults: Faults,
    ) -> web.Response:
        """The faults that answer before DSC sees the request: a reset, or a late create
        (its 504 held ``late_answer_s``, as a gateway's timeout, the task created
        ``late_create_s`` after it)."""
        if fault == "reset_before":
            return self._drop(request, fault, route.project)
        delay_s = faults.late_answer_s + faults.late_create_s
        answer = self._create_late(received.body, route.project, self._clock(), delay_s)
        await self._pause(faults.late_answer_s)
        return answer

    def _create_late(self, raw: bytes, project: str, now: float, delay_s: float) -> web.Response:
        """The 504 to send; the task (if its body is valid) appears ``delay_s`` from now
        (scheduled at once: a client that goes away meanwhile does not undo it)."""
        try:
            body = parse_create_body(raw)
            self._check_assets(project, body)
        except BadRequest as exc:
            return self._deny(_refusal(exc), project)
        create = functools.partial(self._store.create, region=_REGION.get())  # as on time
        asyncio.get_running_loop().call_later(delay_s, create, project, body, now + delay_s)
        return self._deny(dataclasses.replace(_GATEWAY_TIMEOUT, outcome="late_create"), project)

    def add_task(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Put a task into the store as if created elsewhere (no checks: duplicates allowed)."""
        return self._store.create(project_id, body, self._clock()).to_json()

    def _list(self, project: str, query: tuple[tuple[str, str], ...]) -> tuple[dict[str, Any], str]:
        shape = self._shape
        tasks = self._store.all(region=_REGION.get())
        page, total = select(tasks, project, parse_list_query(query, shape), shape)
        return {"result": page, "total_num": total}, "listed"

    def _check_assets(self, project: str, body: dict[str, Any]) -> None:
        if self._assets is None:
            return
        for index, source in enumerate(body["data_sources"]):
            if not self._assets.knows(project, source["ins_id"]):
                raise BadRequest(
                    f"Invalid parameter 'data_sources[{index}].ins_id': instance "
                    f"{source['ins_id'][:64]} is not a database asset of this project"
                )

    def _list_assets(
        self, project: str, kind: str, query: tuple[tuple[str, str], ...]
    ) -> tuple[dict[str, Any], str]:
        assets = self._assets if self._assets is not None else Assets(())
        if self._asset_fault == "low-count":  # the total counts only the page answered
            answer = assets.answer(project, kind, query)
            items = answer.get("instance_list", answer.get("databases", []))
            count_key = "count" if "instance_list" in answer else "total"
            return {**answer, count_key: len(items)}, "assets_low_count"
        if self._asset_fault is not None:
            return faulty_answer(self._asset_fault), f"assets_{self._asset_fault}"
        return assets.answer(project, kind, query), f"assets_{kind.replace('-', '_')}"

    def _deny(self, denial: Denial, project: str | None) -> web.Response:
        self._stats.count(denial.outcome, project)
        request_id = uuid.uuid4().hex
        body = {"error_code": denial.code, "error_msg": denial.message, "request_id": request_id}
        headers = {**denial.headers, REQUEST_ID: request_id}
        return web.json_response(body, status=denial.status, headers=headers)

    def _drop(self, request: web.Request, outcome: str, project: str) -> web.Response:
        """Reset the connection (RST, no answer); the returned response is never sent."""
        self._stats.count(outcome, project)
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=204)

    async def _drip(
        self, request: web.Request, answer: web.Response, faults: Faults
    ) -> web.StreamResponse:
        """Send ``answer``'s headers now and its body one byte per ``faults.drip_s``."""
        body = answer.body if isinstance(answer.body, bytes) else b""
        stream = web.StreamResponse(status=answer.status, headers=answer.headers)
        stream.content_length = len(body)
        await stream.prepare(request)
        for i in range(len(body)):
            await self._pause(faults.drip_s)
            if self._stopping.is_set():
                break
            try:
                await stream.write(body[i : i + 1])
            except (ConnectionError, RuntimeError):  # the client gave up waiting
                return stream
        with contextlib.suppress(ConnectionError, RuntimeError):
            await stream.write_eof()
        return stream

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the simulator stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)


def _session_seed(seed: int | None, earlier_sessions: int) -> int | str | None:
    """The seed of this session: ``seed`` itself for the first, then one per session after it
    (the same for the same seed and session, so a demo stays reproducible)."""
    if seed is None or earlier_sessions == 0:
        return seed
    return f"{seed}/{earlier_sessions}"


def _refusal(exc: BadRequest | TemplateNotFound | AssetListingFault) -> Denial:
    if isinstance(exc, AssetListingFault):
        return Denial(exc.status, exc.code, str(exc), "assets_refused")
    if isinstance(exc, TemplateNotFound):
        return Denial(404, "dsc.600000025", str(exc), "not_found")
    return Denial(400, "dsc.40000011", str(exc), "invalid")


# ``/region/{name}/v1/...``: the simulator standing in for that region's endpoint, so one
# simulator serves several regions as the real service's separate endpoints do (see
# ``region_endpoint``); a plain ``/v1/...`` sees every region's tasks.
_REGION: contextvars.ContextVar[str | None] = contextvars.ContextVar("region", default=None)
_SCOPED = re.compile(r"^/region/([a-z0-9-]{1,64})(/.*)$")


def region_endpoint(url: str) -> str:
    """The endpoint template that scopes each region's requests at the simulator at ``url``."""
    return f"{url}/region/{{region}}"


def _scoped(path: str) -> tuple[str | None, str]:
    match = _SCOPED.match(path)
    return (match.group(1), match.group(2)) if match else (None, path)


def _route(method: str, path: str) -> Route | None:
    """Create and list (the first routes), an asset listing, a lifecycle route, or None."""
    match = _API_PATH.match(path)
    if match is not None and method in ("GET", "POST"):
        return LifecycleRoute("create" if method == "POST" else "list", match.group(1))
    return AssetRoute.match(method, path) or match_route(method, path)


def _echo(received: Received) -> Denial:
    """A 400 whose message repeats the caller's credentials, as a careless server may."""
    said = "; ".join(
        f"{name}: {received.headers[name]}"
        for name in ("authorization", "x-auth-token", "x-security-token")
        if name in received.headers
    )
    return Denial(400, "dsc.40000011", f"invalid request, received headers {said}", "echo")


def _unusable_create_answer(kind: str) -> web.Response:
    """A 200 for a create (that did happen, or not), whose body does not say so usably."""
    if kind == "html":
        page = "<html><body><h1>Welcome</h1></body></html>"
        return web.Response(text=page, content_type="text/html")
    if kind == "error-body":
        body = {"error_code": "dsc.00000004", "error_msg": "system busy", "status": "failed"}
        return web.json_response(body)
    return web.json_response({"msg": "create task template success", "status": "success"})


@web.middleware
async def _with_request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer carries ``X-Request-Id`` (error bodies carry the same as ``request_id``)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.setdefault(REQUEST_ID, uuid.uuid4().hex)
        raise
    response.headers.setdefault(REQUEST_ID, uuid.uuid4().hex)
    return response


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket; SO_REUSEADDR lets a restarted simulator take its old port at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
