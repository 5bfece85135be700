"""DSC's side of the simulator: body validation, list queries and the TaskDetail shape."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bulkscan.sim._shape import ListShape
    from bulkscan.sim._store import StoredTask

__all__ = [
    "ListQuery",
    "data_source_label",
    "external_id",
    "parse_create_body",
    "parse_list_query",
    "select",
    "task_detail",
]

SCHEDULE_TYPES = ("ONCE", "DAY", "WEEK", "MONTH")
REQUIRED = ("data_sources", "schedule_type", "start_time", "task_description", "task_name")
BOOL_FIELDS = ("delete_failed_meta", "schedule_switch", "start_now")
SCAN_CONFIG_KEYS = (
    "scan_column_constraints",
    "scan_comment",
    "scan_privileges",
    "scan_system_db",
    "scan_tables",
    "scan_views",
)
MAX_TEXT = 1024
MAX_NAME_FILTER = 256
MAX_START_TIME = 2147483647
DEFAULT_PAGE_SIZE = 20  # when page_size is not sent (the real default is not documented)
MAX_PAGE_SIZE = 2147483647  # page_size's documented range is 0..2147483647
CREATE_USER = "dsc-simulator-user"
_DIGITS = re.compile(r"^\d{1,18}$")


class BadRequest(ValueError):
    """The request is invalid; ``str()`` names the field, as dsc.40000011 messages do."""


def _invalid(field: str, why: str) -> BadRequest:
    return BadRequest(f"Invalid parameter '{field}': {why}")


def parse_create_body(raw: bytes) -> dict[str, Any]:
    """The validated create body, or ``BadRequest`` naming the first wrong field."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Invalid request body: not a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("Invalid request body: not a JSON object")
    for name in REQUIRED:
        if name not in body or body[name] is None:
            raise _invalid(name, "is required")
    _check_text(body, "task_name", allow_empty=False)
    _check_text(body, "task_description", allow_empty=True)
    _check_schedule(body)
    _check_data_sources(body["data_sources"])
    for name in BOOL_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _invalid(name, "must be true or false")
    _check_scan_config(body.get("scan_config"))
    return body


def _check_text(body: dict[str, Any], name: str, *, allow_empty: bool) -> None:
    value = body[name]
    if not isinstance(value, str):
        raise _invalid(name, "must be a string")
    if not allow_empty and not value:
        raise _invalid(name, "must not be empty")
    if len(value) > MAX_TEXT:
        raise _invalid(name, f"is {len(value)} characters long, at most {MAX_TEXT} allowed")


def _check_schedule(body: dict[str, Any]) -> None:
    if body["schedule_type"] not in SCHEDULE_TYPES:
        raise _invalid("schedule_type", f"must be one of {', '.join(SCHEDULE_TYPES)}")
    start = body["start_time"]
    if isinstance(start, bool) or not isinstance(start, int):
        raise _invalid("start_time", "must be an integer")
    if not 0 <= start <= MAX_START_TIME:
        raise _invalid("start_time", f"must be between 0 and {MAX_START_TIME}")


def _check_data_sources(sources: Any) -> None:
    if not isinstance(sources, list):
        raise _invalid("data_sources", "must be an array of {db_type, ins_id} objects")
    if not sources:
        raise _invalid("data_sources", "must not be empty")
    for index, source in enumerate(sources):
        if not isinstance(source, dict):
            raise _invalid(f"data_sources[{index}]", "must be an object")
        for key in ("db_type", "ins_id"):
            value = source.get(key)
            if not isinstance(value, str) or not value.strip():
                raise _invalid(f"data_sources[{index}].{key}", "must be a non-empty string")


def _check_scan_config(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise _invalid("scan_config", "must be an object")
    for key in SCAN_CONFIG_KEYS:
        if config.get(key) is not None and not isinstance(config[key], bool):
            raise _invalid(f"scan_config.{key}", "must be true or false")


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What ``GET .../task-templates`` asked for."""

    task_name: str | None = None
    schedule_types: tuple[str, ...] = ()
    task_id: str | None = None
    offset: int = 0
    limit: int = DEFAULT_PAGE_SIZE


def parse_list_query(pairs: Sequence[tuple[str, str]], shape: ListShape) -> ListQuery:
    """Read the query; ``BadRequest`` for values out of range.

    Only ``page_size`` is documented.  ``offset`` (and ``limit``/``page``) are read only when
    the shape honours an offset; otherwise they are ignored, as an undocumented parameter.
    """
    last = dict(pairs)
    name = last.get("task_name") or None
    if name is not None and len(name) > MAX_NAME_FILTER:
        raise _invalid("task_name", f"must be 1 to {MAX_NAME_FILTER} characters")
    types = tuple(v for k, v in pairs if k == "schedule_types")
    for value in types:
        if value not in SCHEDULE_TYPES:
            raise _invalid("schedule_types", f"must be among {', '.join(SCHEDULE_TYPES)}")
    task_id = last["id"].strip() if last.get("id", "").strip() else None
    if task_id is not None and shape.ids == "number":
        task_id = str(_int(last, "id", 0, 10**18))
    limit_key = "limit" if shape.offset and "limit" in last else "page_size"
    limit = _int(last, limit_key, 0, MAX_PAGE_SIZE) if limit_key in last else DEFAULT_PAGE_SIZE
    limit = limit or DEFAULT_PAGE_SIZE
    if shape.page_cap is not None:
        limit = min(limit, shape.page_cap)
    offset = 0
    if shape.offset and "offset" in last:
        offset = _int(last, "offset", 0, 10**9)
    elif shape.offset and "page" in last:
        offset = (_int(last, "page", 1, 10**9) - 1) * limit
    return ListQuery(name, types, task_id, offset, limit)


def _int(values: dict[str, str], key: str, low: int, high: int) -> int:
    text = values[key].strip()
    if not _DIGITS.match(text) or not low <= int(text) <= high:
        raise _invalid(key, f"must be an integer between {low} and {high}")
    return int(text)


def external_id(task_id: int, shape: ListShape) -> str:
    """The id as the service shows it: digits, or UUID-like text."""
    return str(uuid.UUID(int=task_id)) if shape.ids == "uuid" else str(task_id)


def select(
    tasks: Iterable[StoredTask], project_id: str, query: ListQuery, shape: ListShape
) -> tuple[list[Any], int]:
    """One page of matching tasks (newest first) as TaskDetail objects, and ``total_num``."""
    found = [t for t in tasks if t.project_id == project_id and _matches(t, query, shape)]
    found.sort(key=lambda t: t.id, reverse=True)
    page = found[query.offset : query.offset + query.limit]
    total = max(0, len(found) - shape.short_total)
    return [task_detail(t, shape) for t in page], total


def _matches(task: StoredTask, query: ListQuery, shape: ListShape) -> bool:
    if query.task_name is not None and query.task_name not in task.name:
        return False
    if query.schedule_types and task.body["schedule_type"] not in query.schedule_types:
        return False
    return query.task_id is None or external_id(task.id, shape) == query.task_id


def data_source_label(db_type: str, ins_id: str, shape: ListShape | None = None) -> str:
    """One ``data_source`` string: ``'{db_type}:{ins_id}'``, or the bare ins_id."""
    if shape is not None and shape.source_format == "ins_id":
        return ins_id
    return f"{db_type}:{ins_id}"


def task_detail(task: StoredTask, shape: ListShape) -> dict[str, Any]:
    """A TaskDetail as ``ListTaskTemplates`` documents it, in ``shape``'s open choices."""
    body = task.body
    created_ms = int(task.created_at * 1000)
    ran = body.get("start_now") is True
    sources = body["data_sources"]
    detail: dict[str, Any] = {
        "create_user": CREATE_USER,
        "data_source": [data_source_label(s["db_type"], s["ins_id"], shape) for s in sources],
        "delete_failed_meta": body.get("delete_failed_meta") is True,
        "id": task.id if shape.ids == "number" else external_id(task.id, shape),
        "last_end_time": created_ms + 1000 if ran else None,
        "last_trigger_time": created_ms if ran else None,
    }
    if shape.name_key is not None:
        detail[shape.name_key] = task.name
    if shape.extras:
        detail |= {
            "schedule_type": body["schedule_type"],
            "schedule_switch": body.get("schedule_switch") is True,
            "enabled": task.enabled,
            "task_description": body["task_description"],
        }
    return detail
