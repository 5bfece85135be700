"""How the simulator's list answer looks where DSC's documentation leaves it open.

The documented ``TaskDetail`` (ListTaskTemplates) holds ``create_user``, ``data_source`` (an
array of strings), ``delete_failed_meta``, ``id`` (Long), ``last_end_time`` and
``last_trigger_time``.  Undocumented, hence switchable here: the key of the task's name, the
format of each ``data_source`` string, whether an ``offset`` is honoured, a cap on the page
size, and whether ids are numbers or UUID-like text.  Two misbehaviours can be switched on as
well: a ``total_num`` smaller than the truth, and a create answered 200 without a usable body
(whether the task was created, or, with ``create=html-lost`` or ``error-body-lost``, not).

Spec text (``--list-shape``): comma-separated ``KEY=VALUE`` items, e.g.
``name=name,sources=ins_id,offset=honoured,page_cap=100,ids=uuid,total=short,create=html``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkscan.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CREATE_ANSWERS", "ListShape", "parse_list_shape"]

SOURCE_FORMATS = ("db_type:ins_id", "ins_id")
ID_KINDS = ("number", "uuid")
#: ``*-lost``: the same 200, but the create did not happen (a front end answered for DSC).
CREATE_ANSWERS = ("normal", "html", "error-body", "no-id", "html-lost", "error-body-lost")
_NONE = ("none", "")
_MAX_CAP = 1_000_000


@dataclass(frozen=True, slots=True)
class ListShape:
    """One variant of the list answer; the default is the documented shape.

    ``name_key`` None leaves the name out of each item.  ``page_cap`` None returns as many
    items as ``page_size`` asks.  ``short_total`` makes ``total_num`` under-count by that many.
    ``extras`` adds undocumented fields (schedule, switch, enabled) that a real answer may or
    may not carry.
    """

    name_key: str | None = "task_name"
    source_format: str = "db_type:ins_id"
    offset: bool = False
    page_cap: int | None = None
    ids: str = "number"
    short_total: int = 0
    create_answer: str = "normal"
    extras: bool = False

    def __post_init__(self) -> None:
        if self.name_key is not None and not self.name_key.isidentifier():
            raise UsageError(f"list shape: name key '{self.name_key}' is not a plain key")
        _one_of("sources", self.source_format, SOURCE_FORMATS)
        _one_of("ids", self.ids, ID_KINDS)
        _one_of("create", self.create_answer, CREATE_ANSWERS)
        if self.page_cap is not None and not 1 <= self.page_cap <= _MAX_CAP:
            raise UsageError(f"list shape: page_cap must be 1..{_MAX_CAP}, not {self.page_cap}")
        if self.short_total < 0:
            raise UsageError("list shape: a short total must not be negative")

    def describe(self) -> str:
        """The spec text that gives this shape back (``parse_list_shape(s.describe()) == s``)."""
        parts = [
            f"name={self.name_key or 'none'}",
            f"sources={self.source_format}",
            f"offset={'honoured' if self.offset else 'ignored'}",
            f"page_cap={self.page_cap or 'none'}",
            f"ids={self.ids}",
            f"total={'short' if self.short_total else 'true'}",
            f"create={self.create_answer}",
        ]
        if self.short_total not in (0, _SHORT_BY):
            parts[5] = f"total=short:{self.short_total}"
        if self.extras:
            parts.append("extras=yes")
        return ",".join(parts)


_SHORT_BY = 7  # how many tasks a "short" total leaves out unless told


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"list shape: {what}={value} is not one of {', '.join(allowed)}")


def _flag(key: str, text: str, yes: tuple[str, ...], no: tuple[str, ...]) -> bool:
    if text in yes:
        return True
    if text in no:
        return False
    raise UsageError(f"list shape: {key}={text} is not one of {', '.join(yes + no)}")


def _cap(text: str) -> int | None:
    if text in _NONE:
        return None
    if not text.isdigit():
        raise UsageError(f"list shape: page_cap={text} is not a number or 'none'")
    return int(text)


def _total(text: str) -> int:
    head, _, count = text.partition(":")
    if head == "true" and not count:
        return 0
    if head == "short" and (not count or count.isdigit()):
        return int(count) if count else _SHORT_BY
    raise UsageError(f"list shape: total={text} is not 'true', 'short' or 'short:N'")


def parse_list_shape(spec: str) -> ListShape:
    """``'name=none,offset=honoured'`` → a ``ListShape`` (unnamed keys keep their default)."""
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, text = (s.strip() for s in item.partition("="))
        if not sep:
            raise UsageError(f"list shape: '{item}' is not KEY=VALUE")
        values.update(_item(key, text))
    return dataclasses.replace(ListShape(), **values)  # type: ignore[arg-type]


_HONOURED = ("honoured", "honored", "yes")
_ITEMS: dict[str, Callable[[str, str], tuple[str, object]]] = {
    "name": lambda k, t: ("name_key", None if t.lower() in _NONE else t),
    "sources": lambda k, t: ("source_format", t),
    "offset": lambda k, t: (
        "offset",
        _flag(k, t, ("honoured", "honored", "yes"), ("ignored", "no")),
    ),
    "page_cap": lambda k, t: ("page_cap", _cap(t)),
    "ids": lambda k, t: ("ids", t),
    "total": lambda k, t: ("short_total", _total(t)),
    "create": lambda k, t: ("create_answer", t),
    "extras": lambda k, t: ("extras", _flag(k, t, ("yes", "on"), ("no", "off"))),
}


def _item(key: str, text: str) -> dict[str, object]:
    if key not in _ITEMS:
        raise UsageError(f"list shape: '{key}' is not a known key ({', '.join(_ITEMS)})")
    field, value = _ITEMS[key](key, text)
    return {field: value}
