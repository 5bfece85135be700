"""The simulator's ``/_sim/...`` routes: look inside it and change it while it runs (no auth)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from bulkscan.errors import UsageError
from bulkscan.sim._config import Faults, parse_quota
from bulkscan.sim._shape import ListShape, parse_list_shape

__all__ = ["Controlled", "control_routes"]


class Controlled(Protocol):
    """What the routes drive: the simulator's introspection and control (``Simulator``)."""

    @property
    def tasks(self) -> list[dict[str, Any]]: ...
    @property
    def stats(self) -> dict[str, Any]: ...
    @property
    def faults(self) -> Faults: ...
    @property
    def list_shape(self) -> ListShape: ...
    @property
    def quota(self) -> tuple[int, float] | None: ...
    def set_faults(self, faults: Faults) -> None: ...
    def set_list_shape(self, shape: ListShape) -> None: ...
    def set_quota(
        self,
        quota: tuple[int, float] | None,
        *,
        retry_after: bool | None = None,
        stated: bool | None = None,
    ) -> None: ...
    def add_task(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def delete_task(self, task_id: str | int) -> bool: ...
    def update_task(
        self,
        task_id: str | int,
        *,
        enabled: bool | None = None,
        schedule_switch: bool | None = None,
    ) -> dict[str, Any] | None: ...
    def reset(self) -> None: ...


class _BadControl(ValueError):
    """A control request the simulator cannot follow; answered 400 ``{"error": ...}``."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        raise _BadControl("the body is not JSON") from None
    if not isinstance(data, dict):
        raise _BadControl("the body must be a JSON object")
    return data


def _quota_from(data: dict[str, Any]) -> tuple[int, float] | None:
    if "quota" in data:
        return None if data["quota"] is None else parse_quota(str(data["quota"]))
    if "limit" in data:
        return int(data["limit"]), float(data.get("period_s", 60.0))
    raise _BadControl('send {"quota": "30/min"}, {"quota": null} or {"limit": N, "period_s": S}')


def _flags(data: dict[str, Any]) -> dict[str, bool]:
    flags = {k: v for k, v in data.items() if k in ("enabled", "schedule_switch")}
    if not flags or len(flags) != len(data) or not all(isinstance(v, bool) for v in flags.values()):
        raise _BadControl('send {"enabled": true|false} and/or {"schedule_switch": true|false}')
    return flags


def control_routes(sim: Controlled) -> list[web.RouteDef]:
    """The ``/_sim/...`` routes bound to ``sim``; every answer is JSON."""
    control = _Control(sim)
    return [
        web.get("/_sim/tasks", control.tasks),
        web.post("/_sim/put-task", control.add_task),
        web.get("/_sim/stats", control.stats),
        web.get("/_sim/faults", control.current_faults),
        web.post("/_sim/faults", control.faults),
        web.post("/_sim/quota", control.quota),
        web.get("/_sim/list-shape", control.current_shape),
        web.post("/_sim/list-shape", control.list_shape),
        web.delete("/_sim/tasks/{id}", control.delete_task),
        web.patch("/_sim/tasks/{id}", control.patch_task),
        web.post("/_sim/reset", control.reset),
    ]


class _Control:
    def __init__(self, sim: Controlled) -> None:
        self._sim = sim

    async def tasks(self, _: web.Request) -> web.Response:
        return web.json_response(self._sim.tasks)

    async def add_task(self, request: web.Request) -> web.Response:
        """``{"project_id": ..., "body": {...}}``: a task put in as if created elsewhere."""
        try:
            data = await _json_object(request)
        except _BadControl as exc:
            return _error(400, str(exc))
        project, body = data.get("project_id"), data.get("body")
        if not isinstance(project, str) or not isinstance(body, dict) or "task_name" not in body:
            return _error(400, 'send {"project_id": "...", "body": {"task_name": "...", ...}}')
        return web.json_response(self._sim.add_task(project, body), status=201)

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(self._sim.stats)

    async def current_faults(self, _: web.Request) -> web.Response:
        return web.json_response(self._sim.faults.as_dict())

    async def faults(self, request: web.Request) -> web.Response:
        try:
            new = Faults(**await _json_object(request))
        except (TypeError, UsageError, _BadControl) as exc:
            return _error(400, f"faults: {exc}")
        self._sim.set_faults(new)
        return web.json_response(new.as_dict())

    async def current_shape(self, _: web.Request) -> web.Response:
        return web.json_response({"spec": self._sim.list_shape.describe()})

    async def list_shape(self, request: web.Request) -> web.Response:
        try:
            shape = parse_list_shape(str((await _json_object(request)).get("spec", "")))
        except (UsageError, _BadControl) as exc:
            return _error(400, f"list shape: {exc}")
        self._sim.set_list_shape(shape)
        return web.json_response({"spec": shape.describe()})

    async def quota(self, request: web.Request) -> web.Response:
        try:
            data = await _json_object(request)
            retry_after, stated = data.pop("retry_after", None), data.pop("stated", None)
            self._sim.set_quota(
                _quota_from(data),
                retry_after=None if retry_after is None else bool(retry_after),
                stated=None if stated is None else bool(stated),
            )
        except (TypeError, ValueError, UsageError) as exc:
            return _error(400, f"quota: {exc}")
        quota = self._sim.quota
        return web.json_response({"quota": None if quota is None else list(quota)})

    async def delete_task(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["id"]
        if not task_id.isdigit() or not self._sim.delete_task(task_id):
            return _error(404, f"no task {task_id}")
        return web.Response(status=204)

    async def patch_task(self, request: web.Request) -> web.Response:
        try:
            flags = _flags(await _json_object(request))
        except _BadControl as exc:
            return _error(400, str(exc))
        task_id = request.match_info["id"]
        task = self._sim.update_task(task_id, **flags) if task_id.isdigit() else None
        return _error(404, f"no task {task_id}") if task is None else web.json_response(task)

    async def reset(self, _: web.Request) -> web.Response:
        self._sim.reset()
        return web.json_response({"status": "reset"})
