"""Fault and quota settings of the DSC simulator, and their text forms."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from bulkscan.config import parse_duration
from bulkscan.errors import UsageError

__all__ = ["FAULT_KINDS", "Faults", "describe_period", "parse_faults", "parse_quota"]

# The order in which one random draw is mapped onto a fault (see Faults.pick).
# New kinds go at the end, so that a seed keeps drawing the same earlier faults.
FAULT_KINDS = (
    "reset_before", "http500", "http502", "http503", "http504", "reset_after", "stall", "http429",
    "echo", "drip", "late_create",
)  # fmt: skip
# Drawn on their own, for the requests they name only, so that they add to the faults above.
_SEPARATE = ("list_http429",)
# Counts, not draws: ``lists_answered`` is how many listings of tasks are answered before
# every later one is refused 503 (a service that goes away in the middle of a run).
_COUNTS = ("lists_answered",)
_DURATIONS = (
    "latency_s", "jitter_s", "stall_s", "retry_after_s", "drip_s", "late_create_s",
    "late_answer_s",
)  # fmt: skip
_ALIASES = {
    "latency": "latency_s", "jitter": "jitter_s", "retry_after": "retry_after_s",
    "drip_interval": "drip_s", "late_create_after": "late_create_s",
    "late_answer": "late_answer_s",
}  # fmt: skip
_QUOTA = re.compile(
    r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|second|m|min|minute|h|hour)s?\s*$", re.IGNORECASE
)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_DURATION_S = 3600.0


@dataclass(frozen=True, slots=True)
class Faults:
    """Probabilities (0..1, summing to at most 1) of each fault, and delays in seconds."""

    http500: float = 0.0
    http502: float = 0.0
    http503: float = 0.0
    http504: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    stall: float = 0.0
    http429: float = 0.0
    echo: float = 0.0  # a 400 whose message echoes the request's credentials
    drip: float = 0.0  # a write acted on, its answer's body sent one byte per ``drip_s``
    late_create: float = 0.0  # a create answered 504 at once and applied ``late_create_s`` later
    list_http429: float = 0.0  # a listing of tasks answered 429 (drawn apart from the above)
    latency_s: float = 0.0
    jitter_s: float = 0.0
    stall_s: float = 30.0
    retry_after_s: float = 0.0  # when set, an ``http429`` fault says ``Retry-After`` this long
    drip_s: float = 1.0  # the pause before each byte of a ``drip`` answer's body
    late_create_s: float = 2.0  # how long after its 504 a ``late_create`` task appears
    late_answer_s: float = 0.0  # how long the gateway holds a ``late_create`` before its 504
    lists_answered: int | None = None  # None: every listing; N: the next N, then 503s

    def __post_init__(self) -> None:
        for name in FAULT_KINDS:
            _check_number(name, getattr(self, name), 1.0)
        for name in _SEPARATE:
            _check_number(name, getattr(self, name), 1.0)
        for name in _DURATIONS:
            _check_number(name, getattr(self, name), _MAX_DURATION_S)
        for name in _COUNTS:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise UsageError(f"fault setting '{name}' must be a whole number, not {value!r}")
        total = sum(getattr(self, name) for name in FAULT_KINDS)
        if total > 1.0 + 1e-9:
            raise UsageError(f"fault probabilities add up to {total:g}; they must total at most 1")

    def pick(self, draw: float) -> str | None:
        """The fault a uniform draw in [0, 1) lands on, or None (faults never overlap)."""
        edge = 0.0
        for name in FAULT_KINDS:
            edge += getattr(self, name)
            if draw < edge:
                return name
        return None

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _check_number(name: str, value: Any, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise UsageError(f"fault setting '{name}' must be a number, not {value!r}")
    if not 0.0 <= value <= high:
        raise UsageError(f"fault setting '{name}' must be between 0 and {high:g}, not {value:g}")


def parse_faults(spec: str) -> Faults:
    """``'http500=0.05,reset_after=0.02,stall=0.01,latency=50ms'`` → ``Faults``."""
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, text = (s.strip() for s in item.partition("="))
        name = _ALIASES.get(key, key)
        if not sep or name not in Faults.__dataclass_fields__:
            known = ", ".join([*FAULT_KINDS, *_SEPARATE, *_COUNTS, *_DURATIONS, *_ALIASES])
            raise UsageError(f"faults: '{item}' is not NAME=VALUE with NAME one of {known}")
        if name in _COUNTS:
            values[name] = _count(item, text)
        else:
            values[name] = parse_duration(text) if name in _DURATIONS else _probability(item, text)
    return Faults(**values)


def _probability(item: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"faults: '{item}' needs a probability between 0 and 1") from None


def _count(item: str, text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"faults: '{item}' needs a whole number, 0 or more")
    return int(text)


def parse_quota(text: str) -> tuple[int, float]:
    """``'30/min'`` → ``(30, 60.0)``; also ``5/s``, ``1000/hour``, ``100/10s``."""
    m = _QUOTA.match(text)
    if not m:
        raise UsageError(f"quota '{text}' is not of the form N/s, N/min or N/hour (e.g. 30/min)")
    count = int(m.group(1))
    period = float(m.group(2) or 1) * _UNIT_S[m.group(3)[0].lower()]
    if count < 1 or period <= 0:
        raise UsageError(f"quota '{text}' must allow at least 1 request in a positive period")
    return count, period


def describe_period(period_s: float) -> str:
    """The gateway's wording of a throttling period: ``1 minute``, ``1 second``, ``2 hour``."""
    for unit, size in (("hour", 3600.0), ("minute", 60.0)):
        if period_s >= size and period_s % size == 0:
            return f"{int(period_s // size)} {unit}"
    return f"{period_s:g} second"
