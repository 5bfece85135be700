"""The simulator's tasks: in memory, optionally mirrored to a JSON file on every change."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bulkscan.errors import InputError
from bulkscan.files import write_atomically

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["StoredTask", "TaskStore"]

_FORMAT = "bulkscan-dsc-simulator-state"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredTask:
    """One created task: the body as received plus what the service adds."""

    id: int
    project_id: str
    body: dict[str, Any]
    created_at: float
    enabled: bool = True
    region: str | None = None  # the region endpoint it was created at (None: unscoped)

    @property
    def name(self) -> str:
        return str(self.body["task_name"])

    def to_json(self) -> dict[str, Any]:
        """The introspection form (``/_sim/tasks``, ``Simulator.tasks``, the state file)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "project_id": self.project_id,
            "body": json.loads(json.dumps(self.body)),
            "created_at": self.created_at,
            "enabled": self.enabled,
            "region": self.region,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredTask:
        return cls(
            id=int(data["id"]),
            project_id=str(data["project_id"]),
            body=dict(data["body"]),
            created_at=float(data["created_at"]),
            enabled=bool(data.get("enabled", True)),
            region=str(data["region"]) if data.get("region") else None,
        )


class TaskStore:
    """Tasks by id; ids are increasing integers and are never reused, even after a reset."""

    def __init__(self, path: Path | None = None, *, save_each_change: bool = True) -> None:
        """``save_each_change`` False: the file is written by ``save()`` only (an embedded
        simulator saves once as it stops, not once per task)."""
        self._path = path
        self._tasks: dict[int, StoredTask] = {}
        self._next_id = 1
        self._each = save_each_change
        # how many simulators kept their tasks in this file before this one
        self.earlier_sessions = 0
        if path is None:
            return
        if path.exists():
            self._load(path)
        self.save()  # proves at once that the file can be written

    def all(self, *, region: str | None = None) -> list[StoredTask]:
        """Every task; with ``region``, those created there or unscoped (as each region's
        endpoint of the real service lists its own tasks)."""
        if region is None:
            return list(self._tasks.values())
        return [t for t in self._tasks.values() if t.region in (None, region)]

    def get(self, task_id: int) -> StoredTask | None:
        return self._tasks.get(task_id)

    def create(
        self, project_id: str, body: dict[str, Any], now: float, *, region: str | None = None
    ) -> StoredTask:
        task = StoredTask(self._next_id, project_id, dict(body), now, region=region)
        self._next_id += 1
        self._tasks[task.id] = task
        self._changed()
        return task

    def delete(self, task_id: int) -> bool:
        found = self._tasks.pop(task_id, None) is not None
        if found:
            self._changed()
        return found

    def update(
        self, task_id: int, *, enabled: bool | None = None, schedule_switch: bool | None = None
    ) -> StoredTask | None:
        task = self._tasks.get(task_id)
        if task is None:
            return None
        if enabled is not None:
            task = dataclasses.replace(task, enabled=enabled)
        if schedule_switch is not None:
            task = dataclasses.replace(task, body={**task.body, "schedule_switch": schedule_switch})
        self._tasks[task_id] = task
        self._changed()
        return task

    def replace_body(self, task_id: int, body: dict[str, Any]) -> StoredTask | None:
        """An update: the task keeps its id, creation time and state, with ``body``."""
        task = self._tasks.get(task_id)
        if task is None:
            return None
        task = dataclasses.replace(task, body=dict(body))
        self._tasks[task_id] = task
        self._changed()
        return task

    def clear(self) -> None:
        self._tasks.clear()
        self._changed()

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("format") != _FORMAT or data.get("version") != _VERSION:
                raise ValueError("not a simulator state file of this version")
            tasks = [StoredTask.from_json(item) for item in data["tasks"]]
            next_id = int(data["next_id"])
            sessions = int(data.get("sessions", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(
                f"cannot be read as simulator state ({exc}); remove it to start empty",
                file=str(path),
            ) from None
        self._tasks = {task.id: task for task in tasks}
        self._next_id = max([next_id, *(task.id + 1 for task in tasks)])
        self.earlier_sessions = sessions

    def _changed(self) -> None:
        if self._each:
            self.save()

    def save(self) -> None:
        """Write the tasks to the state file (if there is one), atomically."""
        if self._path is None:
            return
        data = {
            "format": _FORMAT,
            "version": _VERSION,
            "next_id": self._next_id,
            "sessions": self.earlier_sessions + 1,
            "tasks": [task.to_json() for task in self._tasks.values()],
        }
        try:
            text = json.dumps(data, ensure_ascii=False, indent=1)
            # each change of a standalone simulator is saved: a crash-safe rename, no fsync
            write_atomically(
                self._path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False
            )
        except OSError as exc:
            raise InputError(
                f"cannot be written as simulator state ({exc.strerror}): make room on its disk "
                "or make its folder writable, then run the command again",
                file=str(self._path),
            ) from None
