"""The shared adaptive limiter: even spacing, few waiters, pausing together, adapting the rate."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest

from bulkscan.run.ratelimit import AdaptiveRate, precise_sleep


class FakeClock:
    """A monotonic clock at 1000 s whose wall time is 20 s into a minute: these tests are
    about episodes, not the clock-aligned windows (tests/unit/test_ratelimit_windows.py), so
    no minute boundary falls within the few seconds they span, whenever they run."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now - 1000.0 + 1_700_000_000.0  # 1_700_000_000 is 20 s into a minute


def _changes() -> tuple[list[tuple[float, float, str]], AdaptiveRate]:
    seen: list[tuple[float, float, str]] = []
    clock = FakeClock()
    limiter = AdaptiveRate(
        10.0,
        floor=0.5,
        clock=clock,
        wall=clock.wall,
        on_change=lambda old, new, why: seen.append((old, new, why)),
        recover_after=5,
        rng=random.Random(1),
    )
    return seen, limiter


# --- the rate arithmetic, on a fake clock ---------------------------------------------------


def test_an_unstated_throttle_halves_the_rate_once_per_episode() -> None:
    """An episode lasts from the first refusal to the first success of a request sent after
    it: refusals of requests in flight, or of probes sent during it, do not halve again."""
    seen, limiter = _changes()
    limiter.on_throttle(sent_at=999.0)
    assert limiter.current_per_s == 5.0
    limiter.on_throttle(sent_at=999.0)  # answered for the old rate: no second halving
    limiter.on_throttle(sent_at=1000.5)  # a probe refused inside the same episode: neither
    assert limiter.current_per_s == 5.0
    limiter.on_success(sent_at=999.5)  # sent before the episode began: it does not end it
    limiter.on_throttle(sent_at=1001.0)
    assert limiter.current_per_s == 5.0
    limiter.on_success(sent_at=1002.0)  # the episode ends
    limiter.on_throttle(sent_at=1001.5)  # sent during the last episode: no halving
    assert limiter.current_per_s == 5.0
    limiter.on_throttle(sent_at=1003.0)  # a new episode: the new rate is too fast too
    assert limiter.current_per_s == 2.5
    assert seen == [(10.0, 5.0, "throttled"), (5.0, 2.5, "throttled")]


def test_the_rate_never_falls_below_the_floor() -> None:
    _, limiter = _changes()
    for _ in range(20):
        limiter.on_throttle()
        limiter.on_success()
    assert limiter.current_per_s == 0.5


def test_a_stated_limit_is_adopted_with_a_margin_and_caps_recovery() -> None:
    seen, limiter = _changes()
    limiter.on_throttle(limit_per_s=4.0)
    assert limiter.current_per_s == pytest.approx(3.8)
    for _ in range(100):
        limiter.on_success()
    assert limiter.current_per_s == pytest.approx(3.8)  # never back above the stated limit
    assert seen == [(10.0, pytest.approx(3.8), "stated limit")]


def test_a_stated_limit_above_the_configured_rate_does_not_raise_it() -> None:
    _, limiter = _changes()
    limiter.on_throttle(limit_per_s=1000.0)
    assert limiter.current_per_s == 10.0


def test_sustained_success_recovers_in_steps_up_to_the_configured_rate() -> None:
    seen, limiter = _changes()
    limiter.on_throttle()
    assert limiter.current_per_s == 5.0
    for _ in range(4):
        limiter.on_success()
    assert limiter.current_per_s == 5.0  # not yet: 5 successes in a row are needed
    limiter.on_success()
    assert limiter.current_per_s == 6.0  # +10% of the configured rate
    for _ in range(100):
        limiter.on_success()
    assert limiter.current_per_s == 10.0
    assert [why for _, _, why in seen] == ["throttled"] + ["recovered"] * 5


def test_a_throttle_resets_the_success_streak() -> None:
    _, limiter = _changes()
    limiter.on_throttle()
    for _ in range(4):
        limiter.on_success()
    limiter.on_throttle(limit_per_s=100.0)  # a throttle with a high stated limit: no decrease
    limiter.on_success()
    assert limiter.current_per_s == 5.0


def test_retry_after_is_honoured_and_jitter_only_lengthens_it() -> None:
    for seed in range(50):
        clock = FakeClock()
        limiter = AdaptiveRate(10.0, clock=clock, wall=clock.wall, rng=random.Random(seed))
        until = limiter.on_throttle(retry_after=3.0)
        assert 3.0 <= until - clock.now <= 3.0 * 1.2
        assert limiter.paused_until == until
        assert limiter.next_slot() >= until


def test_without_retry_after_the_pause_is_at_least_the_minimum_and_one_interval() -> None:
    clock = FakeClock()
    limiter = AdaptiveRate(1.0, clock=clock, wall=clock.wall, min_pause_s=0.5, rng=random.Random(3))
    until = limiter.on_throttle()  # 0.5/s now: one interval is 2 s, longer than the minimum
    assert 2.0 <= until - clock.now <= 2.4


def test_a_later_throttle_never_shortens_a_pause() -> None:
    clock = FakeClock()
    limiter = AdaptiveRate(10.0, clock=clock, wall=clock.wall, rng=random.Random(2))
    long_pause = limiter.on_throttle(retry_after=10.0)
    assert limiter.on_throttle(retry_after=1.0) == long_pause


async def test_each_interval_keeps_a_margin_so_n_plus_one_requests_span_over_a_second() -> None:
    clock = FakeClock()

    async def no_sleep(delay: float) -> None:
        clock.now += delay

    limiter = AdaptiveRate(20.0, clock=clock, wall=clock.wall, sleep=no_sleep)
    first = await limiter.acquire()  # the first slot is free: no wait
    assert limiter.next_slot() == pytest.approx(first + 1.02 / 20)
    assert 20 * (limiter.next_slot() - first) > 1.0  # hence 21 requests span over 1 s
    assert limiter.wait_s() == pytest.approx(1.02 / 20)  # seconds from now
    clock.now += 1.0
    assert limiter.wait_s() == 0.0  # the slot is past: no wait, never negative


def test_nonsense_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        AdaptiveRate(0.0)


# --- acquiring, on the real clock (assertions on order and counts, never on durations) -----


async def _grants(limiter: AdaptiveRate, workers: int, total: int) -> list[float]:
    grants: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            grants.append(await limiter.acquire())

    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())
    return grants


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:  # half-open: [t0, t0 + window)
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_requests_are_spaced_evenly_never_in_a_burst() -> None:
    rate = 400.0
    limiter = AdaptiveRate(rate)
    grants = await _grants(limiter, workers=16, total=120)
    assert len(grants) == 120
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= 1 / rate  # no two requests closer than one interval
    # hence never more than N requests in any window of N intervals (here: 10)
    assert _max_in_window(grants, 10 / rate) <= 10


@pytest.mark.parametrize("delay", [0.0, 0.0004, 0.0019, 0.0021, 0.009, 0.0131])
async def test_a_precise_sleep_never_ends_before_its_time(delay: float) -> None:
    """Around the 1.5 ms slept off the loop's timers, and on delays epoll rounds up twice."""
    for _ in range(5):
        before = time.monotonic()
        await precise_sleep(delay)
        assert time.monotonic() - before >= delay


async def test_a_cancelled_precise_sleep_ends_at_once() -> None:
    for delay in (0.0019, 30.0):  # just over the part slept off the loop's timers, and long
        sleeper = asyncio.create_task(precise_sleep(delay))
        await asyncio.sleep(0)  # it starts, and waits
        assert not sleeper.done()
        sleeper.cancel()
        async with asyncio.timeout(1):
            with pytest.raises(asyncio.CancelledError):
                await sleeper


async def test_only_one_worker_waits_on_the_clock_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many workers, few wake-ups: each grant costs about one timer, not a poll per waiter."""
    loop = asyncio.get_running_loop()
    timers = 0
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal timers
        timers += 1
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    limiter = AdaptiveRate(200.0)
    grants = await _grants(limiter, workers=32, total=40)
    monkeypatch.undo()
    assert len(grants) == 40
    # 32 waiters polling every interval/4 would set well over a thousand timers
    assert timers <= 3 * len(grants)


async def test_a_throttle_pauses_every_worker_until_a_known_time() -> None:
    limiter = AdaptiveRate(1000.0, min_pause_s=0.05, rng=random.Random(4))
    await limiter.acquire()
    until = limiter.on_throttle(retry_after=0.05)
    assert limiter.current_per_s == 500.0
    grants = await _grants(limiter, workers=8, total=16)
    assert min(grants) >= until  # nobody started before the pause ended
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= 1 / 500.0  # and then at the lowered rate


async def test_a_rate_drop_while_waiting_is_honoured_by_the_next_grant() -> None:
    limiter = AdaptiveRate(20.0, floor=0.1, rng=random.Random(5))
    first = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)  # the waiter is asleep until first + 1/20 s
    limiter.on_throttle(limit_per_s=5.0, retry_after=0.001)
    second = await waiter
    assert second - first >= 1 / 4.75  # the new interval, not the one it went to sleep on


async def test_slot_is_a_context_manager_over_acquire() -> None:
    limiter = AdaptiveRate(1000.0)
    before = time.monotonic()
    async with limiter.slot() as granted:
        assert granted >= before


def test_one_limiter_serves_event_loops_one_after_another() -> None:
    """The checks before a run and the run itself each run their own loop, on one limiter:
    waiters queued in the second loop must not meet a lock bound to the first."""
    limiter = AdaptiveRate(100.0)  # 10 ms apart: the waiters sleep on the lock

    async def burst() -> list[float]:
        return list(await asyncio.gather(*(limiter.acquire() for _ in range(3))))

    first = asyncio.run(burst())
    second = asyncio.run(burst())
    grants = first + second
    assert grants == sorted(grants) and len(set(grants)) == 6
