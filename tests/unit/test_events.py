"""Event lines: the same JSON the standard encoder writes, with cheap local time stamps."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bulkscan.events import (
    Attempt,
    AttemptFinished,
    Event,
    EventLog,
    LocalStamps,
    LockTakenOver,
    Progress,
    RateChanged,
    Reconciled,
    RunStopped,
    TaskFinished,
    TaskPlanned,
    event_to_json,
    local_now,
)
from bulkscan.run.states import TaskState

_AT = dt.datetime(2026, 11, 30, 7, 55, 29, tzinfo=dt.UTC)
EVENTS: list[Event] = [
    TaskPlanned("k" * 64, 'naïve "quoted"\n\\ name\u2028', "p", "cn-north-4", 3),
    AttemptFinished(
        Attempt(_AT, None, 0, "GET", "/v1/p/x", None, "DSC.0001", None, 0.25, "listed"), None
    ),
    AttemptFinished(
        Attempt(_AT, "k", 2, "POST", "/v1/p/x", 500, None, "rid", float("nan"), "transient", "m"),
        "n",
    ),
    TaskFinished("k", "n", TaskState.CREATED, "123", None),
    Reconciled("k", "n", TaskState.UNKNOWN, TaskState.PENDING),
    RateChanged(1.5, float("inf"), "throttled"),
    RunStopped("done"),
    RunStopped("fatal", "100% %s %(x)s {}"),
    Progress(
        settled=True, total=2, created=1, failed=0, retrying=0, sent=1, rate_per_s=1e300, eta_s=None
    ),
    LockTakenOver("reports/run 'x'", "123", True, "p1, p2"),
]


def _fields(event: Event) -> dict[str, object]:
    """The fields of an event's line: its own, but an attempt's line keeps the fields it had
    before the attempt was one record (readers of events.jsonl see the same lines)."""
    if isinstance(event, AttemptFinished):
        a = event.attempt
        return {"key": a.task_key, "name": event.name, "attempt": a.n, "method": a.method,
                "status": a.status, "code": a.code, "verdict": a.verdict,
                "latency_s": a.latency_s, "request_id": a.request_id}  # fmt: skip
    return {name: getattr(event, name) for name in event.__slots__}


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_a_line_is_what_the_json_encoder_writes(event: Event) -> None:
    at = dt.datetime(2026, 11, 30, 7, 55, 29, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    record: dict[str, object] = {
        "event": type(event).__name__,
        "at": "2026-11-30T07:55:29.123+01:00",
    }
    record.update(_fields(event))
    expected = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    assert event_to_json(event, at=at) == expected
    del record["at"]
    assert event_to_json(event) == json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Shanghai", "America/St_Johns"])
def test_local_now_is_now_in_the_local_zone(zone: str) -> None:
    """The cached offset gives what ``datetime.now().astimezone()`` gives, in any zone."""
    code = (
        "import datetime as dt; from bulkscan.events import local_now; "
        "a = local_now(); b = dt.datetime.now().astimezone(); "
        "print(a.tzinfo == b.tzinfo, a.utcoffset() == b.utcoffset(), a.tzname() == b.tzname(), "
        "abs((b - a).total_seconds()) < 5)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "TZ": zone}, capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.split() == ["True"] * 4


def test_stamps_have_the_form_and_offset_of_local_now() -> None:
    stamps = LocalStamps()
    micros, millis = stamps.micros(), stamps.millis()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d", micros), micros
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", millis), millis
    offset = local_now().utcoffset()
    for text in (micros, millis):
        assert dt.datetime.fromisoformat(text).utcoffset() == offset
    assert dt.datetime.fromisoformat(micros) <= dt.datetime.fromisoformat(stamps.micros())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.asyncio
async def test_a_timed_write_to_a_full_disk_reaches_the_next_caller_not_the_loop() -> None:
    """The log's timer flush meets ENOSPC: no 'Exception in callback' traceback on the
    terminal; the next event raises it, so the run's guard can stop the log with a note."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: seen.append(context))
    log = EventLog("/dev/full", flush_after_s=0.01)
    log(RateChanged(5.0, 2.5, "throttled"))
    await asyncio.sleep(0.1)  # the timer fires and its write fails
    assert seen == []
    with pytest.raises(OSError, match="No space left"):
        log(RateChanged(2.5, 5.0, "recovered"))
    with pytest.raises(OSError):  # the lines still waiting cannot be written either
        log.close()
    log(RateChanged(5.0, 5.0, "after close"))  # a closed log takes nothing, raises nothing
