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

A quota the service does not state is often counted in windows aligned to the clock (every
whole minute or hour), and refuses everything from the request after the N-th until the next
window opens.  Halving on every such refusal starves the run (5/s fell to 0.08/s against
30/min), so without a stated limit:

* the rate halves at most once per *throttling episode*: from the first refusal to the first
  success of a request sent after it; refused probes inside a closed window do not halve it;
* while the episode lasts, one probe goes out after a backoff that doubles (1 s, 2 s, 4 s ...),
  and always just after the next boundary of a candidate window (``windows``: a minute and an
  hour by default, by the wall clock), when a closed window would open;
* when a boundary probe ends an episode, the refusals were the window's, not the rate's: the
  rate returns to what it was before the episode; and when some probes were refused too (the
  window stayed closed, so this is no per-second limit), the limiter learns "N per window":
  N is the requests it sent in that window before the first refusal.  From then on it grants
  at most N per window (at its rate, then nothing until the next boundary plus a small guard),
  so a window is never overrun by it.  A refusal after the first request of a window pauses
  until that window ends; one of the first request of a window means the window was wrong,
  and it is forgotten.
* every request the run sends to the service counts (listings of tasks and of the asset
  centre too, when they share this limiter): the service counts them all.  A quota may still
  be learned too low (another client spent part of the first window), so a window whose
  learned quota was spent without a refusal raises it by half (a probe); a refusal beyond
  the count known to fit then fixes N at the requests granted in that window before it,
  for the rest of the run.  A refusal within the count known to fit (a stray 429 of the
  gateway) only pauses until the window ends, as before: it does not lower N.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkscan.i18n import N_, _, pgettext

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from bulkscan.config import DispatchSettings

__all__ = ["DEFAULT_WINDOWS", "AdaptiveRate", "describe_window", "precise_sleep"]

DEFAULT_WINDOWS = (60.0, 3600.0)  # an unstated quota is counted per clock minute or hour

_SAFETY = 0.95  # run at 95% of a limit the service states: the spacing margin keeps the run's
# own requests within it, the rest is left to the project's other callers
_JITTER = 0.2  # a pause is lengthened by up to 20%, never shortened
_FINE_S = 0.0015  # the last 1.5 ms of a sleep are slept off the loop's timers
_MARGIN = 1.02  # an interval is 2% longer than 1/rate (see the module docstring)
_MAX_PROBE_S = 60.0  # the longest backoff between two probes of a closed window
_MAX_WINDOWS = 4
_MIN_WINDOW_S = 1.0
_MAX_WINDOW_S = 86_400.0
_MAX_GUARD_S = 5.0
_KEPT_GRANTS = 65_536  # grant times kept to count a window's requests (fewer: a lower count)


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


@dataclass(slots=True)
class _Episode:
    """From the first refusal without a stated limit to the first success sent after it."""

    began: float  # clock time the first refusal was answered
    rate_before: float
    first_refused: float  # earliest send time of a refused request in the episode
    last_refused: float
    probes_refused: int = 0  # refused requests sent after the episode began
    boundary: float | None = None  # wall time of the window boundary the last pause ended at


@dataclass(slots=True)
class _Quota:
    """A learned quota: ``count`` requests per clock-aligned window of ``period_s``."""

    count: int
    period_s: float
    index: int = 0  # the window of the last grant (wall time // period)
    used: int = 0  # grants in that window
    refused: int | None = None  # the last window a request sent in was refused
    fits: int = 0  # the most requests a window took without a refusal (the count learned)
    settled: bool = False  # a probe's refusal fixed the count: no more raising

    def __post_init__(self) -> None:
        self.fits = max(self.fits, self.count)


def describe_window(period_s: float) -> str:
    """``60`` → ``minute``, ``3600`` → ``hour``, ``6`` → ``6 seconds``, ``120`` → ``2 minutes``."""
    for one, several, size in _UNITS:
        if period_s >= size and period_s % size == 0:
            n = int(period_s // size)
            return _(one) if n == 1 else _(several).format(count=n)
    return _(_SECONDS).format(count=f"{period_s:g}")


_SECONDS = N_("{count} seconds")
_UNITS = (
    (N_("hour"), N_("{count} hours"), 3600.0),
    (N_("minute"), N_("{count} minutes"), 60.0),
    (N_("second"), _SECONDS, 1.0),
)


def _per_window(count: int, period_s: float) -> str:
    """``5 per minute``: a quota as said to the user."""
    return _("{count} per {window}").format(count=count, window=describe_window(period_s))


def _check_windows(windows: tuple[float, ...]) -> tuple[float, ...]:
    if not 0 <= len(windows) <= _MAX_WINDOWS:
        raise ValueError(f"at most {_MAX_WINDOWS} quota windows")
    for period in windows:
        if not _MIN_WINDOW_S <= period <= _MAX_WINDOW_S:
            raise ValueError(
                f"a quota window must be {_MIN_WINDOW_S:g} s to {_MAX_WINDOW_S:g} s, "
                f"not {period:g} s"
            )
    return tuple(sorted(set(windows)))


class AdaptiveRate:
    """The shared limiter: ``await acquire()`` (or ``async with slot()``) before each request.

    ``initial_per_s`` is the configured rate and the ceiling; ``floor`` the lowest rate it
    will fall to.  ``clock`` and ``sleep`` must agree (default: ``time.monotonic`` and
    ``precise_sleep``); ``wall`` is the clock the service's windows are aligned to
    (``time.time``).  The rate arithmetic (``on_throttle``/``on_success``) uses only the
    clocks and is tested with fake ones.  ``windows`` are the periods of the clock-aligned
    windows an unstated quota may be counted in; ``window_guard_s`` how long after a
    boundary the first request of a window goes.  ``on_change(old, new, reason)``
    (assignable) is called on every rate change, and when a quota is learned or forgotten.
    """

    def __init__(
        self,
        initial_per_s: float,
        *,
        floor: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = precise_sleep,
        on_change: Callable[[float, float, str], None] | None = None,
        recover_after: int = 20,
        recover_step: float = 0.1,
        min_pause_s: float = 1.0,
        windows: tuple[float, ...] = DEFAULT_WINDOWS,
        window_guard_s: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        if initial_per_s <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= window_guard_s <= _MAX_GUARD_S:
            raise ValueError(f"window guard must be 0 to {_MAX_GUARD_S:g} s")
        self._ceiling = initial_per_s
        self._floor = min(initial_per_s, floor if floor is not None else 1 / 60)
        self._rate = initial_per_s
        self._cap = initial_per_s  # lowered to a stated limit, never raised above it
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.on_change = on_change
        self._recover_after = recover_after
        self._recover_step = recover_step
        self._min_pause_s = min_pause_s
        self._windows = _check_windows(tuple(windows))
        self._guard_s = window_guard_s
        self._rng = rng or random.Random()
        self._successes = 0
        self._paused_until = float("-inf")
        self._last_slot = float("-inf")
        self._grants: collections.deque[float] = collections.deque(maxlen=_KEPT_GRANTS)
        self._episode: _Episode | None = None
        # refusals of requests sent before this belong to an episode that is over
        self._stale_before = float("-inf")
        self._quota: _Quota | None = None
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(
        cls, settings: DispatchSettings, *, rng: random.Random | None = None
    ) -> AdaptiveRate:
        """The limiter of ``settings``: its rate and its quota windows."""
        return cls(settings.rate_per_s, windows=settings.quota_windows_s, rng=rng)

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

    @property
    def learned_quota(self) -> tuple[int, float] | None:
        """``(count, period_s)`` of the quota learned from unstated refusals, if any."""
        return None if self._quota is None else (self._quota.count, self._quota.period_s)

    def next_slot(self) -> float:
        """The earliest clock time the next request may start."""
        spaced = max(self._paused_until, self._last_slot + self.period * _MARGIN)
        return max(spaced, self._window_gate(spaced))

    def wait_s(self) -> float:
        """Seconds from now until the next request may start (0: it may start now)."""
        return max(0.0, self.next_slot() - self._clock())

    # --- acquiring -------------------------------------------------------------------------

    async def acquire(self) -> float:
        """Wait for the next slot; returns the clock time it was granted.

        One limiter may serve several event loops in turn (the checks before a run and the
        run itself): each loop gets its own lock."""
        async with self._loop_lock():
            while (now := self._clock()) < (target := self.next_slot()):
                await self._sleep(target - now)
            self._grant(now)
            return now

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        yield await self.acquire()

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _grant(self, now: float) -> None:
        self._last_slot = now
        self._grants.append(now)
        quota = self._quota
        if quota is not None:
            index = self._window_index(now, quota.period_s)
            if index != quota.index:
                self._maybe_raise(quota)
                quota.index, quota.used = index, 0
            quota.used += 1

    def _maybe_raise(self, quota: _Quota) -> None:
        """The window of the last grant is over: when its learned quota was spent and nothing
        sent in it was refused, the quota may be higher than learned: raise it by half."""
        if quota.settled or quota.used < quota.count or quota.refused == quota.index:
            return
        quota.fits = quota.count
        quota.count += max(1, quota.count // 2)
        what = _per_window(quota.count, quota.period_s)
        said = _("raised the learned quota to {quota}: not refused").format(quota=what)
        self._say(self._rate, self._rate, said)

    # --- adapting --------------------------------------------------------------------------

    def on_throttle(
        self,
        limit_per_s: float | None = None,
        retry_after: float | None = None,
        *,
        sent_at: float | None = None,
    ) -> float:
        """The service throttled a request: slow down and pause everyone; returns the pause end.

        A stated limit is adopted (times 0.95) and caps later recovery.  Without one the rate
        halves once per throttling episode (see the module docstring): refusals of requests
        sent (``sent_at``) before the episode began, or during it, do not halve it again.
        """
        now = self._clock()
        sent = now if sent_at is None else sent_at
        self._successes = 0
        if limit_per_s is not None and limit_per_s > 0:
            self._cap = max(self._floor, min(self._ceiling, limit_per_s * _SAFETY))
            self._set_rate(min(self._rate, self._cap), _("stated limit"), now)
        elif self._refused_in_window(sent):
            until = self._window_end(sent)
            if retry_after is not None and retry_after > 0:  # a stated wait still wins
                until = max(until, now + self._pause_for(retry_after, now))
            return self._pause_until(until, now)
        else:
            self._refused(sent, now)
        return self._pause_until(now + self._pause_for(retry_after, now), now)

    def on_success(self, *, sent_at: float | None = None) -> None:
        """A request (sent at ``sent_at``) went through: it may end an episode; after
        ``recover_after`` in a row, raise the rate a step."""
        now = self._clock()
        episode = self._episode
        sent = now if sent_at is None else sent_at
        if episode is not None and sent >= episode.began:
            self._episode = None
            self._stale_before = max(self._stale_before, sent)
            self._episode_ended(episode, sent)
        self._successes += 1
        if self._successes < self._recover_after or self._rate >= self._cap:
            return
        self._successes = 0
        step = self._ceiling * self._recover_step
        self._set_rate(min(self._cap, self._rate + step), _("recovered"), now)

    def _refused(self, sent: float, now: float) -> None:
        """An unstated refusal: start an episode (halving once) or count it in the current one."""
        episode = self._episode
        if episode is None:
            if sent < self._stale_before:
                return  # sent before the last episode ended: that one answered for it
            self._episode = _Episode(now, self._rate, sent, sent)
            self._stale_before = now
            halved = max(self._floor, self._rate / 2)
            self._set_rate(halved, pgettext("rate change", "throttled"), now)
            return
        episode.first_refused = min(episode.first_refused, sent)
        episode.last_refused = max(episode.last_refused, sent)
        if sent >= episode.began:
            episode.probes_refused += 1

    def _pause_until(self, until: float, now: float) -> float:
        self._paused_until = max(self._paused_until, until, now)
        return self._paused_until

    def _pause_for(self, retry_after: float | None, now: float) -> float:
        jitter = 1.0 + self._rng.uniform(0.0, _JITTER)
        episode = self._episode
        if episode is not None:
            episode.boundary = None  # unless this pause ends at one (below)
        if retry_after is not None and retry_after > 0:
            return retry_after * jitter
        base = max(self._min_pause_s, self.period)
        if episode is None:
            return base * jitter
        backoff = min(max(base, _MAX_PROBE_S), base * 2.0**episode.probes_refused) * jitter
        boundary = self._next_boundary(now)
        if boundary is not None and self._to_clock(boundary, now) + self._guard_s < now + backoff:
            episode.boundary = boundary
            return self._to_clock(boundary, now) + self._guard_s - now
        return backoff

    def _set_rate(self, new: float, reason: str, now: float) -> None:
        old = self._rate
        if new == old:
            return
        self._rate = new
        self._say(old, new, reason)

    def _say(self, old: float, new: float, reason: str) -> None:
        if self.on_change is not None:
            self.on_change(old, new, reason)

    # --- windows -------------------------------------------------------------------------

    def _skew(self, now: float) -> float:
        """Wall time minus clock time."""
        return self._wall() - now

    def _to_clock(self, wall_time: float, now: float) -> float:
        return wall_time - self._skew(now)

    def _window_index(self, at: float, period_s: float) -> int:
        return math.floor((at + self._skew(self._clock())) / period_s)

    def _next_boundary(self, now: float) -> float | None:
        """The wall time of the next boundary of any candidate window after ``now``."""
        wall = now + self._skew(now)
        ends = [(math.floor((wall - self._guard_s) / p) + 1) * p for p in self._windows]
        return min(ends, default=None)

    def _window_gate(self, at: float) -> float:
        """With a learned quota spent in ``at``'s window: when the next window opens."""
        quota = self._quota
        if quota is None or quota.used < quota.count:
            return float("-inf")
        if self._window_index(at, quota.period_s) != quota.index:
            return float("-inf")
        return self._window_end_of(quota.index, quota.period_s)

    def _window_end_of(self, index: int, period_s: float) -> float:
        return self._to_clock((index + 1) * period_s, self._clock()) + self._guard_s

    def _window_end(self, sent: float) -> float:
        assert self._quota is not None
        period = self._quota.period_s
        return self._window_end_of(self._window_index(sent, period), period)

    def _grants_between(self, start: float, end: float) -> int:
        """Requests granted at clock times in ``[start, end)``."""
        return bisect.bisect_left(self._grants, end) - bisect.bisect_left(self._grants, start)

    def _refused_in_window(self, sent: float) -> bool:
        """A refusal under a learned quota: True when it fits (pause until the window ends).

        One of the first request of a window does not fit: the quota is forgotten.
        """
        quota = self._quota
        if quota is None:
            return False
        index = self._window_index(sent, quota.period_s)
        start = self._to_clock(index * quota.period_s, self._clock())
        before = self._grants_between(start, sent)
        if before > 0:
            self._refused_after(quota, index, before)
            return True
        self._quota = None
        what = _per_window(quota.count, quota.period_s)
        said = _("forgot the quota of {quota}: refused at once").format(quota=what)
        self._say(self._rate, self._rate, said)
        return False

    def _refused_after(self, quota: _Quota, index: int, before: int) -> None:
        """A request of window ``index`` refused after ``before`` others of that window: a
        raised quota that ``before`` reaches what is known to fit is fixed at ``before``."""
        quota.refused = index
        if quota.settled or not quota.fits <= before < quota.count:
            return
        quota.count, quota.settled = before, True
        what = _per_window(before, quota.period_s)
        said = _("the learned quota is {quota}: refused after it").format(quota=what)
        self._say(self._rate, self._rate, said)

    def _episode_ended(self, episode: _Episode, sent: float) -> None:
        """A success sent after the episode began: restore the rate after a window closed."""
        if episode.boundary is None:
            return  # not at a window boundary: the halved rate stands, to recover in steps
        boundary = episode.boundary
        learned = self._learn(episode, boundary, sent) if episode.probes_refused else None
        restored = min(self._cap, max(self._rate, episode.rate_before))
        if learned is not None:
            old, self._rate = self._rate, restored
            self._say(old, restored, learned)
        else:
            self._set_rate(restored, _("a window reopened"), sent)

    def _learn(self, episode: _Episode, boundary: float, sent: float) -> str | None:
        """Learn ``N per period`` from an episode that ended at ``boundary``: the shortest
        candidate period with the boundary on it and every refusal inside one window (a
        longer window is learned, if it was one, when the shorter one is refused at once)."""
        now = self._clock()
        skew = self._skew(now)
        first, last = episode.first_refused + skew, episode.last_refused + skew
        for period in self._windows:
            index = round(boundary / period)
            if not math.isclose(index * period, boundary) or not (
                (index - 1) * period <= first and last < boundary <= sent + skew
            ):
                continue
            count = self._grants_between((index - 1) * period - skew, episode.first_refused)
            if count < 1:
                return None
            used = self._grants_between(boundary - skew, now + 1.0)
            self._quota = _Quota(count, period, index, used)
            return _("learned a quota of {quota} from the service's refusals").format(
                quota=_per_window(count, period)
            )
        return None
