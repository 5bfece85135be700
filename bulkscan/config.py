"""Frozen settings with bounded, validated defaults.

Every knob is keyword-only, has a safe default and a hard cap; a nonsense value raises
``UsageError`` at construction, before any file is read or any request is sent.
"""

from __future__ import annotations

import codecs
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Literal

from bulkscan.errors import UsageError
from bulkscan.i18n import _

__all__ = [
    "SIMULATOR_AK",
    "SIMULATOR_SK",
    "DEFAULT_PAGE_SIZE",
    "SETTINGS_OPTIONS",
    "DispatchSettings",
    "InputLimits",
    "InputSettings",
    "check_project_id",
    "check_retry",
    "check_timezone",
    "parse_duration",
    "parse_quota_windows",
    "parse_rate",
    "settle_offsets",
]

# The command-line options that choose which settings a command reads (config file, profile)
# and the language it speaks: every command printed for a person to run next repeats them.
SETTINGS_OPTIONS = ("--config", "--config-profile", "--lang")

# The first page of a DSC list asked for; a short answer is asked again as large as total_num,
# so most projects still take one request (documented range is 0..2147483647). Here, not in
# dsc.client, so that what reads it does not load the HTTP client.
DEFAULT_PAGE_SIZE = 100

# The one key pair the local simulator accepts unless told others (not a secret: it opens
# nothing but the simulator). Here so that `bulkscan simulate --help` can name it without
# loading the simulator.
SIMULATOR_AK = "BULKSCANSIMULATORAK0"
SIMULATOR_SK = "bulkscan-simulator-sk-not-a-real-secret0"

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$", re.IGNORECASE)
_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*(s|sec|m|min|minute|h|hour)s?\s*$", re.IGNORECASE)
_WINDOW_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_QUOTA_WINDOWS = 4

MAX_RATE_PER_S = 200.0  # APIG's default per-API limit; asking for more is never right
MAX_CONCURRENCY = 64


def parse_rate(text: str) -> float:
    """``'5/s'`` → 5.0, ``'30/min'`` → 0.5 (requests per second)."""
    m = _RATE.match(text)
    if not m:
        raise UsageError(
            _("rate '{text}' is not of the form N/s or N/min (e.g. 5/s, 30/min)").format(text=text)
        )
    value = float(m.group(1))
    per_s = value if m.group(2).lower().startswith("s") else value / 60.0
    if not 0 < per_s <= MAX_RATE_PER_S:
        raise UsageError(
            _("rate '{text}' must be above 0 and at most {most}/s").format(
                text=text, most=f"{MAX_RATE_PER_S:g}"
            )
        )
    return per_s


def parse_duration(text: str) -> float:
    """``'50ms'`` → 0.05, ``'2s'`` → 2.0, ``'1m'`` → 60.0, ``'3'`` → 3.0 (seconds)."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(_("duration '{text}' is not of the form 50ms, 2s or 1m").format(text=text))
    value = float(m.group(1))
    unit = (m.group(2) or "s").lower()
    return value / 1000.0 if unit == "ms" else value * 60.0 if unit in ("m", "min") else value


def parse_quota_windows(text: str) -> tuple[float, ...]:
    """``'1min,1h'`` → ``(60.0, 3600.0)``; ``'6s'`` → ``(6.0,)``; ``'none'`` → ``()``."""
    if text.strip().lower() == "none":
        return ()
    windows = []
    for item in text.split(","):
        m = _WINDOW.match(item)
        if not m:
            raise UsageError(
                _(
                    "quota window '{window}' is not of the form 10s, 1min or 1h "
                    "(a comma-separated list, or none)"
                ).format(window=item.strip())
            )
        windows.append(float(m.group(1) or 1) * _WINDOW_UNIT_S[m.group(2)[0].lower()])
    return tuple(windows)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise UsageError(
            _("{name} must be between {low} and {high}, not {value}").format(
                name=name, low=f"{low:g}", high=f"{high:g}", value=f"{value:g}"
            )
        )


def check_retry(
    *, max_attempts: int, max_seconds: float, backoff_base_s: float, backoff_max_s: float
) -> None:
    """The bounds of the retry knobs (``bulkscan.run.retry.RetryPolicy`` and the settings)."""
    _check_range("attempts", max_attempts, 1, 20)
    _check_range("task time budget (s)", max_seconds, 1, 86_400)
    _check_range("backoff base (s)", backoff_base_s, 0.0, 60)
    _check_range("backoff cap (s)", backoff_max_s, 0.0, 3_600)
    if backoff_max_s < backoff_base_s:
        raise UsageError(
            _("backoff cap ({cap} s) must not be below the backoff base ({base} s)").format(
                cap=f"{backoff_max_s:g}", base=f"{backoff_base_s:g}"
            )
        )


def _check_encoding(name: str) -> None:
    """A text encoding Python knows (not a binary codec such as base64)."""
    try:
        known = codecs.lookup(name)._is_text_encoding
    except LookupError:
        known = False
    if not known:
        raise UsageError(
            _(
                "--encoding '{name}' is not a known text encoding (e.g. utf-8, cp1252, gb18030)"
            ).format(name=name)
        )


def check_project_id(value: str) -> None:
    """A DSC project id: 32 lowercase hex characters.  The message names no option: the
    command line says which flag, variable or config key gave the value."""
    if not _PROJECT_ID.match(value):
        raise UsageError(
            _("project_id '{value}' is not 32 lowercase hex characters").format(value=value)
        )


def check_timezone(name: str) -> None:
    """An IANA time zone name this machine knows (``Asia/Shanghai``)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            _("timezone '{value}' is not a known IANA time zone (e.g. Asia/Shanghai)").format(
                value=name
            )
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class InputLimits:
    """Safety caps on what an input file may cost to read; raise them with the CLI options."""

    max_file_bytes: int = 100 * 1024 * 1024
    max_unpacked_bytes: int = 1024 * 1024 * 1024
    max_rows: int = 1_000_000

    def __post_init__(self) -> None:
        _check_range("max file size", self.max_file_bytes, 1, 1 << 40)
        _check_range("max unpacked size", self.max_unpacked_bytes, 1, 1 << 42)
        _check_range("max rows", self.max_rows, 1, 50_000_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSettings:
    """How input cells are interpreted."""

    project_id: str | None = None  # default for blank project_id cells
    region: str | None = None  # default for blank region cells
    timezone: str = "UTC"  # for naive date-times
    start_time_unit: Literal["s", "ms"] = "s"
    strict_db_types: bool = True  # a db_type DSC metadata tasks do not support is an error
    limits: InputLimits = field(default_factory=InputLimits)
    encoding: str | None = None  # of CSV files; None: a BOM, else UTF-8, else a guess

    def __post_init__(self) -> None:
        if self.project_id is not None:
            check_project_id(self.project_id)
        if self.start_time_unit not in ("s", "ms"):
            raise UsageError(
                _("start time unit must be 's' or 'ms', not '{unit}'").format(
                    unit=self.start_time_unit
                )
            )
        if self.encoding is not None:
            _check_encoding(self.encoding)
        check_timezone(self.timezone)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchSettings:
    """How requests are sent: rate, concurrency, retries and timeouts (all bounded)."""

    rate_per_s: float = 5.0
    concurrency: int = 8
    # the retry knobs (see bulkscan.run.retry.RetryPolicy, built from them)
    max_attempts: int = 6
    max_task_seconds: float = 600.0  # total time budget for one task, retries included
    backoff_base_s: float = 1.0  # full jitter: uniform in [0, min(cap, base * 2^(n-1))]
    backoff_max_s: float = 60.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    grace_s: float = 10.0  # how long in-flight requests may finish after Ctrl-C
    # periods of the clock-aligned windows an unstated quota may be counted in (see
    # bulkscan.run.ratelimit): their boundaries are probed and N per window learned
    quota_windows_s: tuple[float, ...] = (60.0, 3600.0)
    # after an ambiguous create, lookups by name spread over this window before any resend;
    # not found by its end: *unknown*, left for a resume (see bulkscan.run.dispatch)
    settle_s: float = 30.0

    def __post_init__(self) -> None:
        _check_range("rate (per second)", self.rate_per_s, 0.001, MAX_RATE_PER_S)
        _check_range("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        check_retry(
            max_attempts=self.max_attempts,
            max_seconds=self.max_task_seconds,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )
        _check_range("connect timeout (s)", self.connect_timeout_s, 0.05, 300)
        _check_range("read timeout (s)", self.read_timeout_s, 0.05, 600)
        _check_range("grace period (s)", self.grace_s, 0, 600)
        if len(self.quota_windows_s) > MAX_QUOTA_WINDOWS:
            raise UsageError(
                _("at most {most} quota windows, not {count}").format(
                    most=MAX_QUOTA_WINDOWS, count=len(self.quota_windows_s)
                )
            )
        for period in self.quota_windows_s:
            _check_range("quota window (s)", period, 1, 86_400)
        _check_range("settle window (s)", self.settle_s, 0, 600)


def settle_offsets(settle_s: float) -> tuple[float, ...]:
    """When to look a task up after an ambiguous create: 1, 3, 7, 15, ... s, ending at the
    window's end (``30`` → 1, 3, 7, 15, 30; ``0`` → one lookup at once)."""
    offsets: list[float] = []
    step = 1.0
    while step < settle_s:
        offsets.append(step)
        step = step * 2 + 1
    offsets.append(settle_s)
    return tuple(offsets)
