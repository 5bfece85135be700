"""One shared, adaptive rate limit for every worker: requests spaced evenly, never in a burst.

The limiter does its spacing itself, from the known time of the next slot (no library: a
token bucket such as asyncio-throttle polls each waiter every ``retry_interval``, which a
thousand waiters pay for in CPU, and lets a whole period's tokens go at once):

* one request per interval: requests are spaced evenly.  Each interval is 2% longer than
  ``1/rate``: a request takes a varying time from its slot to the service (journal, signing,
  network), and the margin keeps N + 1 requests at N/s at least 1.02 s apart, so up to
  20 ms of that jitter (a busy, shared machine) cannot put N + 1 of them into one second at
  the service;
* an ``asyncio.Lock``, so only one worker at a time waits for the clock and the others sleep
  on the lock (no polling); that worker sleeps until the known time of the next slot;
* that sleep is ``precise_sleep``: asyncio rounds a timer up to the next millisecond (and
  CPython's epoll sometimes adds one more), so a plain ``asyncio.sleep`` ends 1-2 ms late and
  every interval with it, which alone cost 8-15% of the rate at 100/s; so its last 1.5 ms
  are slept off the loop's timers.

``AdaptiveRate`` also holds the run's learned rate: a throttled answer pauses every worker
until a known time (``Retry-After`` honoured, with jitter that only lengthens the wait) and
lowers the rate to the limit the service stated (times a safety factor) or by half; sustained
success raises it again in small steps, never above the configured rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["AdaptiveRate", "precise_sleep"]

_SAFETY = 0.9  # run at 90% of a limit the service states
_JITTER = 0.2  # a pause is lengthened by up to 20%, never shortened
_FINE_S = 0.0015  # the last 1.5 ms of a sleep are slept off the loop's timers
_MARGIN = 1.02  # an interval is 2% longer than 1/rate (see the module docstring)


async def precise_sleep(delay: float) -> None:
    """``asyncio.sleep``, but ending within a fraction of a millisecond of ``delay``.

    The loop sleeps all but the last 1.5 ms (its timers are millisecond-grained and fire late);
    the rest, at most 1.5 ms, is slept with ``time.sleep`` on the loop's own thread (to ~0.1
    ms), which holds the loop that long once per request.  Handing the rest to an executor
    thread, which then wakes the loop, kept the loop free but cost about 0.4 ms of CPU per
    request at 200/s, a fifth of the whole sending path.  Never shorter than ``delay``; a
    cancelled sleep ends at once, unless it is in its last 1.5 ms.
    """
    deadline = time.monotonic() + delay
    if delay > _FINE_S:
        await asyncio.sleep(delay - _FINE_S)
    rest = deadline - time.monotonic()
    if rest > 0:
        time.sleep(rest)  # noqa: ASYNC251 - at most 1.5 ms, on purpose (see above)


class AdaptiveRate:
    """The shared limiter: ``await acquire()`` (or ``async with slot()``) before each request.

    ``initial_per_s`` is the configured rate and the ceiling; ``floor`` the lowest rate it
    will fall to.  ``clock`` and ``sleep`` must agree (default: ``time.monotonic`` and
    ``precise_sleep``); the rate arithmetic
    (``on_throttle``/``on_success``) uses only ``clock`` and is tested with a fake one.
    ``on_change(old, new, reason)`` (assignable) is called on every rate change.
    """

    def __init__(
        self,
        initial_per_s: float,
        *,
        floor: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = precise_sleep,
        on_change: Callable[[float, float, str], None] | None = None,
        recover_after: int = 20,
        recover_step: float = 0.1,
        min_pause_s: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial_per_s <= 0:
            raise ValueError("rate must be positive")
        self._ceiling = initial_per_s
        self._floor = min(initial_per_s, floor if floor is not None else 1 / 60)
        self._rate = initial_per_s
        self._cap = initial_per_s  # lowered to a stated limit, never raised above it
        self._clock = clock
        self._sleep = sleep
        self.on_change = on_change
        self._recover_after = recover_after
        self._recover_step = recover_step
        self._min_pause_s = min_pause_s
        self._rng = rng or random.Random()
        self._successes = 0
        self._decreased_at = float("-inf")
        self._paused_until = float("-inf")
        self._last_slot = float("-inf")
        self._lock = asyncio.Lock()

    # --- state ---------------------------------------------------------------------------

    @property
    def current_per_s(self) -> float:
        return self._rate

    @property
    def ceiling_per_s(self) -> float:
        return self._ceiling

    @property
    def period(self) -> float:
        """Seconds between two requests at the current rate."""
        return 1.0 / self._rate

    @property
    def paused_until(self) -> float:
        """Clock time before which no request may start (``-inf`` when not paused)."""
        return self._paused_until

    def next_slot(self) -> float:
        """The earliest clock time the next request may start."""
        return max(self._paused_until, self._last_slot + self.period * _MARGIN)

    # --- acquiring -------------------------------------------------------------------------

    async def acquire(self) -> float:
        """Wait for the next slot; returns the clock time it was granted."""
        async with self._lock:
            while (now := self._clock()) < (target := self.next_slot()):
                await self._sleep(target - now)
            self._last_slot = now
            return self._last_slot

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        yield await self.acquire()

    # --- adapting --------------------------------------------------------------------------

    def on_throttle(
        self,
        limit_per_s: float | None = None,
        retry_after: float | None = None,
        *,
        sent_at: float | None = None,
    ) -> float:
        """The service throttled a request: slow down and pause everyone; returns the pause end.

        A stated limit is adopted (times 0.9) and caps later recovery.  Without one the rate
        halves, once per throttling episode: answers to requests sent (``sent_at``) before
        the last decrease were caused by the old rate and do not halve it again.
        """
        now = self._clock()
        self._successes = 0
        if limit_per_s is not None and limit_per_s > 0:
            self._cap = max(self._floor, min(self._ceiling, limit_per_s * _SAFETY))
            self._set_rate(min(self._rate, self._cap), "stated limit", now)
        elif sent_at is None or sent_at >= self._decreased_at:
            self._set_rate(max(self._floor, self._rate / 2), "throttled", now)
        pause = self._pause_for(retry_after)
        self._paused_until = max(self._paused_until, now + pause)
        return self._paused_until

    def on_success(self) -> None:
        """A request went through: after ``recover_after`` in a row, raise the rate a step."""
        self._successes += 1
        if self._successes < self._recover_after or self._rate >= self._cap:
            return
        self._successes = 0
        step = self._ceiling * self._recover_step
        self._set_rate(min(self._cap, self._rate + step), "recovered", self._clock())

    def _pause_for(self, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            base = retry_after
        else:
            base = max(self._min_pause_s, self.period)
        return base * (1.0 + self._rng.uniform(0.0, _JITTER))

    def _set_rate(self, new: float, reason: str, now: float) -> None:
        old = self._rate
        if new == old:
            return
        self._rate = new
        if new < old:
            self._decreased_at = now
        if self.on_change is not None:
            self.on_change(old, new, reason)
