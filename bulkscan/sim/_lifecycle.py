"""DSC's side of the simulator after creation: update, batch delete, operate and task runs.

Routes (``dsc-api-family.md``), all behind the same gateway, quota and faults as create:

* ``PUT /v1/{project_id}/metadata/task-templates/{id}``: the create body, validated the same
  way, replaces the task's; answer ``{id, msg, status}``.
* ``DELETE /v1/{project_id}/metadata/task-templates`` with a JSON array of ids (numbers or
  text): deletes those that exist; ids that do not are ignored (the documentation is silent).
* ``POST .../task-templates/{id}/operate`` with ``{"action": "START" | "ENABLE" | "DISABLE"}``.
* ``GET .../task-templates/{id}/task-instances`` with ``limit``/``offset`` (or ``page_size``):
  ``{result: [...], total_num}``, newest first; each run has ``id``, ``schedule_type``,
  ``task_create_time``, ``task_end_time``, ``task_status``, ``task_update_time`` (ms since the
  epoch) and ``error_msg``.

A template unknown in the project answers 404 ``dsc.600000025``.  A task created with
``start_now`` and every START get one run; a run is ``RUNNING`` for ``scan_s`` seconds, then
``SUCCEEDED`` or (with probability ``scan_failure``, drawn from the simulator's seeded
generator when the run starts) ``FAILED``.  The status words are the simulator's choice: the
real ones are not documented.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bulkscan.sim._api import BadRequest, external_id, parse_create_body

if TYPE_CHECKING:
    import random

    from bulkscan.sim._shape import ListShape
    from bulkscan.sim._store import StoredTask, TaskStore

__all__ = ["LifecycleRoute", "Runs", "TemplateNotFound", "match_route"]

_ONE = re.compile(r"^/v1/([^/]+)/metadata/task-templates/([^/]+)$")
_OPERATE = re.compile(r"^/v1/([^/]+)/metadata/task-templates/([^/]+)/operate$")
_RUNS = re.compile(r"^/v1/([^/]+)/metadata/task-templates/([^/]+)/task-instances$")
_ALL = re.compile(r"^/v1/([^/]+)/metadata/task-templates$")
ACTIONS = ("START", "ENABLE", "DISABLE")
SCAN_FAILURE_MESSAGE = "connection to the database instance timed out"


class TemplateNotFound(LookupError):
    """No such template in the project (answered 404 dsc.600000025)."""


@dataclass(frozen=True, slots=True)
class LifecycleRoute:
    """An API request: ``kind`` is create, list, update, delete, operate or runs."""

    kind: str
    project: str
    template: str | None = None

    @property
    def writes(self) -> bool:
        return self.kind not in ("list", "runs")


def match_route(method: str, path: str) -> LifecycleRoute | None:
    """The lifecycle route for ``method path``, or None."""
    for pattern, wanted, kind in (
        (_OPERATE, "POST", "operate"),
        (_RUNS, "GET", "runs"),
        (_ONE, "PUT", "update"),
    ):
        found = pattern.match(path)
        if found is not None and method == wanted:
            return LifecycleRoute(kind, found.group(1), found.group(2))
    found = _ALL.match(path)
    if found is not None and method == "DELETE":
        return LifecycleRoute("delete", found.group(1))
    return None


@dataclass(frozen=True, slots=True)
class _Run:
    id: int
    task_id: int
    started: float
    ends: float
    fails: bool
    schedule_type: str

    def detail(self, now: float) -> dict[str, Any]:
        done = now >= self.ends
        status = "RUNNING" if not done else ("FAILED" if self.fails else "SUCCEEDED")
        return {
            "id": str(self.id),
            "schedule_type": self.schedule_type,
            "task_create_time": int(self.started * 1000),
            "task_end_time": int(self.ends * 1000) if done else None,
            "task_update_time": int(min(now, self.ends) * 1000),
            "task_status": status,
            "error_msg": SCAN_FAILURE_MESSAGE if done and self.fails else None,
        }


class Runs:
    """Every task's runs, in memory; states follow the clock."""

    def __init__(self, rng: random.Random, *, scan_s: float = 1.0, scan_failure: float = 0.0):
        if not 0.0 <= scan_failure <= 1.0 or scan_s < 0:
            raise ValueError("scan_failure must be in 0..1 and scan_s at least 0")
        self._rng = rng
        self.scan_s = scan_s
        self.scan_failure = scan_failure
        self._runs: dict[int, list[_Run]] = {}
        self._next = 1

    def start(self, task: StoredTask, now: float) -> None:
        fails = self._rng.random() < self.scan_failure
        run = _Run(self._next, task.id, now, now + self.scan_s, fails, task.body["schedule_type"])
        self._next += 1
        self._runs.setdefault(task.id, []).append(run)

    def of(self, task_id: int, now: float) -> list[dict[str, Any]]:
        return [run.detail(now) for run in reversed(self._runs.get(task_id, []))]


class Lifecycle:
    """Serves the lifecycle routes over the simulator's task store and runs."""

    def __init__(self, store: TaskStore, runs: Runs) -> None:
        self.store = store
        self.runs = runs

    def serve(
        self,
        route: LifecycleRoute,
        raw: bytes,
        query: tuple[tuple[str, str], ...],
        shape: ListShape,
        now: float,
    ) -> tuple[dict[str, Any], str]:
        """The answer and the outcome counted; ``BadRequest`` or ``TemplateNotFound``."""
        if route.kind == "delete":
            return self._delete(route.project, raw, shape)
        task = self._task(route, shape)
        if route.kind == "update":
            body = parse_create_body(raw)
            self.store.replace_body(task.id, body)
            return _ok(task, shape, "update task template success"), "updated"
        if route.kind == "operate":
            return self._operate(task, raw, shape, now)
        return self._list_runs(task, query, now), "listed_runs"

    def _task(self, route: LifecycleRoute, shape: ListShape) -> StoredTask:
        wanted = route.template or ""
        for task in self.store.all():
            if task.project_id == route.project and external_id(task.id, shape) == wanted:
                return task
        raise TemplateNotFound(f"the task template {wanted[:64]} does not exist")

    def _delete(self, project: str, raw: bytes, shape: ListShape) -> tuple[dict[str, Any], str]:
        try:
            ids = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("Invalid request body: not a JSON array of ids") from None
        if not isinstance(ids, list) or not ids:
            raise BadRequest("Invalid request body: a non-empty JSON array of ids is required")
        wanted = {str(i) for i in ids if isinstance(i, str | int) and not isinstance(i, bool)}
        if len(wanted) != len(set(map(str, ids))):
            raise BadRequest("Invalid parameter 'ids': every id must be a number or a string")
        for task in self.store.all():
            if task.project_id == project and external_id(task.id, shape) in wanted:
                self.store.delete(task.id)
        return {"id": None, "msg": "delete task template success", "status": "success"}, "deleted"

    def _operate(
        self, task: StoredTask, raw: bytes, shape: ListShape, now: float
    ) -> tuple[dict[str, Any], str]:
        try:
            action = json.loads(raw.decode("utf-8")).get("action")
        except (UnicodeDecodeError, ValueError, AttributeError):
            raise BadRequest("Invalid request body: not a JSON object") from None
        if action not in ACTIONS:
            raise BadRequest(f"Invalid parameter 'action': must be one of {', '.join(ACTIONS)}")
        if action == "START":
            self.runs.start(task, now)
        else:
            self.store.update(task.id, enabled=action == "ENABLE")
        return _ok(task, shape, f"{action.lower()} success"), action.lower()

    def _list_runs(
        self, task: StoredTask, query: tuple[tuple[str, str], ...], now: float
    ) -> dict[str, Any]:
        values = dict(query)
        limit = _number(values, "limit", values.get("page_size", "100"))
        offset = _number(values, "offset", "0")
        runs = self.runs.of(task.id, now)
        return {"result": runs[offset : offset + (limit or 100)], "total_num": len(runs)}


def _number(values: dict[str, str], key: str, default: str) -> int:
    text = values.get(key, default).strip()
    if not text.isdigit() or int(text) > 2147483647:
        raise BadRequest(f"Invalid parameter '{key}': must be an integer from 0 to 2147483647")
    return int(text)


def _ok(task: StoredTask, shape: ListShape, msg: str) -> dict[str, Any]:
    return {"id": external_id(task.id, shape), "msg": msg, "status": "success"}
