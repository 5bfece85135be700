"""The limiter against a quota counted in clock-aligned windows that states no limit.

Everything runs on a controlled clock: the limiter's sleep moves it, and each answer arrives
``LATENCY`` after its request was sent, while other requests are in flight.  Nothing sleeps.

The ideal is the earliest time at which the quota could have admitted the last request,
for a sender that knew the quota and went no faster than the configured rate: requests
``1/rate`` apart from the start, each one that would be the (quota + 1)-th of its window
moved to the next window's opening.  Times are counted from the first request.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bulkscan.run.ratelimit import AdaptiveRate, describe_window

# The ideal is the benchmark's own definition, so the two can never measure different things.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_quota import ideal_s

LATENCY = 0.05
START = 1000.0  # the limiter's monotonic clock at the first request
MINUTE_ZERO = 1_800_000_000.0  # a wall time on a whole hour


def test_the_ideal_of_60_at_30_per_minute() -> None:
    at_start = ideal_s(offset=0, n=60, quota=30, period=60, rate=5)
    assert at_start == pytest.approx(60 + 29 / 5)
    late = ideal_s(offset=58, n=60, quota=30, period=60, rate=5)  # 10, then 30, then 20
    assert late == pytest.approx(62 + 19 / 5)


class Clock:
    def __init__(self, wall_offset: float) -> None:
        self.now = START
        self.wall_offset = wall_offset  # wall time minus clock time

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset


@dataclass
class Service:
    """A gateway counting ``quota`` per window of ``period`` s by the wall clock."""

    quota: int
    period: float
    stated: float | None = None  # a limit stated in each refusal (per second)
    windows: Counter[int] = field(default_factory=Counter)

    def admit(self, wall: float) -> bool:
        window = math.floor(wall / self.period)
        if self.windows[window] >= self.quota:
            return False
        self.windows[window] += 1
        return True


@dataclass
class Outcome:
    grants: list[float]  # wall times the limiter granted
    admitted: list[float]  # clock times of the admitted requests
    refusals: int
    changes: list[tuple[float, float, str]]
    changed_at: list[float]  # wall times of the changes
    limiter: AdaptiveRate

    def learned_at(self) -> float:
        return next(
            t
            for t, (*_, why) in zip(self.changed_at, self.changes, strict=True)
            if why.startswith("learned")
        )


async def run(
    service: Service,
    *,
    offset: float,
    n: int = 60,
    rate: float = 5.0,
    windows: tuple[float, ...] = (60.0, 3600.0),
    seed: int = 0,
) -> Outcome:
    """Send ``n`` creates through one limiter, the first ``offset`` s into a window."""
    clock = Clock(MINUTE_ZERO + offset - START)
    answers: list[tuple[float, float, bool]] = []  # (due, sent, admitted)
    changes: list[tuple[float, float, str]] = []
    changed_at: list[float] = []

    def changed(old: float, new: float, why: str) -> None:
        changes.append((old, new, why))
        changed_at.append(clock.wall())

    admitted: list[float] = []
    grants: list[float] = []
    refusals = 0

    def deliver(until: float) -> None:
        nonlocal refusals
        while answers and answers[0][0] <= until:
            due, sent, ok = heapq.heappop(answers)
            clock.now = max(clock.now, due)
            if ok:
                admitted.append(sent)
                limiter.on_success(sent_at=sent)
            else:
                refusals += 1
                limiter.on_throttle(service.stated, None, sent_at=sent)

    async def sleep(delay: float) -> None:
        target = clock.now + delay
        deliver(target)
        clock.now = max(clock.now, target)

    limiter = AdaptiveRate(
        rate,
        clock=clock,
        wall=clock.wall,
        sleep=sleep,
        on_change=changed,
        windows=windows,
        rng=random.Random(seed),
    )
    for _ in range(100 * n):
        deliver(clock.now)
        if len(admitted) + sum(1 for a in answers if a[2]) >= n:
            if not answers:
                break
            await sleep(answers[0][0] - clock.now)
            continue
        sent = await limiter.acquire()
        grants.append(clock.wall())
        heapq.heappush(answers, (sent + LATENCY, sent, service.admit(clock.wall())))
    assert len(admitted) == n
    return Outcome(grants, sorted(admitted), refusals, changes, changed_at, limiter)


def _elapsed(outcome: Outcome) -> float:
    return outcome.admitted[-1] - START


@pytest.mark.parametrize("offset", [0.0, 2.0, 30.0, 58.0])
async def test_60_at_30_per_minute_finish_within_115_percent_of_the_ideal(offset: float) -> None:
    service = Service(30, 60.0)
    outcome = await run(service, offset=offset)
    ideal = ideal_s(offset=offset, n=60, quota=30, period=60.0, rate=5.0)
    assert _elapsed(outcome) <= 1.15 * ideal, (offset, _elapsed(outcome), ideal)
    assert outcome.limiter.learned_quota == (30, 60.0)
    learned = [why for _, _, why in outcome.changes if why.startswith("learned")]
    assert learned == ["learned a quota of 30 per minute from the service's refusals"]
    # halved once, for the first refusal; the refused probes of the closed window did not
    assert [why for _, _, why in outcome.changes].count("throttled") == 1
    assert outcome.limiter.current_per_s == 5.0  # the rate before the window closed
    assert outcome.refusals <= 8


@pytest.mark.parametrize("offset", [0.0, 13.0, 47.0, 53.0, 59.5])
async def test_no_window_ever_gets_more_grants_than_the_quota_once_learned(
    offset: float,
) -> None:
    service = Service(30, 60.0)
    outcome = await run(service, offset=offset, n=200)
    assert outcome.limiter.learned_quota == (30, 60.0)
    per_window = Counter(math.floor(g / 60.0) for g in outcome.grants)
    learned_in = math.floor(outcome.learned_at() / 60.0)
    after = {w: c for w, c in per_window.items() if w >= learned_in}
    # one probe above it, once: the first window spent without refusal raises the quota,
    # and the probe's refusal fixes it at 30
    assert after and sum(max(0, c - 30) for c in after.values()) <= 1
    # each later window opens with its first request just after the boundary
    ideal = ideal_s(offset=offset, n=200, quota=30, period=60.0, rate=5.0)
    assert _elapsed(outcome) <= 1.15 * ideal


async def test_a_quota_learned_too_low_is_raised_until_a_refusal_fixes_it() -> None:
    """Another client spent 12 of the first window's 30: the run learns 18, then finds
    each window it spends unrefused, raises the quota by half, and the first refusal inside
    a learned window fixes it at the service's 30, where it stays."""
    service = Service(30, 60.0)
    service.windows[math.floor(MINUTE_ZERO / 60.0)] = 12
    outcome = await run(service, offset=0.0, n=200)
    reasons = [why for _, _, why in outcome.changes]
    assert "learned a quota of 18 per minute from the service's refusals" in reasons
    assert "raised the learned quota to 27 per minute: not refused" in reasons
    assert reasons[-1] == "the learned quota is 30 per minute: refused after it"
    assert outcome.limiter.learned_quota == (30, 60.0)
    per_window = Counter(math.floor(g / 60.0) for g in outcome.grants)
    assert max(per_window.values()) <= 31  # a probe's one refused request, no more
    ideal = ideal_s(offset=0.0, n=200, quota=30, period=60.0, rate=5.0)
    assert _elapsed(outcome) <= 1.15 * ideal + 60.0  # at most one window lost to learning


async def test_a_window_that_closes_just_before_its_end_costs_no_halving() -> None:
    """53 s into a minute: the window closes for a second, too short to learn from, but the
    probe at the boundary succeeds, so the rate is restored rather than left halved."""
    outcome = await run(Service(30, 60.0), offset=53.0)
    assert outcome.limiter.current_per_s == 5.0
    ideal = ideal_s(offset=53.0, n=60, quota=30, period=60.0, rate=5.0)
    assert _elapsed(outcome) <= 1.15 * ideal


async def test_a_scaled_minute_is_learned_from_its_window() -> None:
    outcome = await run(Service(30, 6.0), offset=2.0, rate=50.0, windows=(6.0,))
    assert outcome.limiter.learned_quota == (30, 6.0)
    assert "learned a quota of 30 per 6 seconds from the service's refusals" in [
        why for _, _, why in outcome.changes
    ]
    ideal = ideal_s(offset=2.0, n=60, quota=30, period=6.0, rate=50.0)
    assert _elapsed(outcome) <= 1.15 * ideal


async def test_an_hourly_window_is_learned_after_the_minute_boundaries_stay_closed() -> None:
    outcome = await run(Service(30, 3600.0), offset=3500.0, n=40)
    assert outcome.limiter.learned_quota == (30, 3600.0)
    assert outcome.refusals <= 30  # about one probe a minute while the hour is closed


async def test_a_per_second_quota_is_not_taken_for_a_window_of_a_minute() -> None:
    outcome = await run(Service(20, 1.0), offset=10.0, n=400, rate=50.0)
    assert outcome.limiter.learned_quota is None
    assert outcome.limiter.current_per_s < 50.0  # it slowed down instead


async def test_a_stated_limit_is_never_exceeded_even_where_a_window_would_allow_more() -> None:
    service = Service(30, 60.0, stated=0.5)  # 'limit:30,time:1 minute'
    outcome = await run(service, offset=0.0, n=40)
    assert outcome.limiter.learned_quota is None
    assert outcome.limiter.current_per_s == pytest.approx(0.475)
    after = [g for g in outcome.grants if g > outcome.grants[30]]
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert gaps and min(gaps) >= 1 / 0.475


async def test_a_learned_window_refused_at_once_is_forgotten() -> None:
    service = Service(30, 60.0)
    outcome = await run(service, offset=0.0, n=60)
    assert outcome.limiter.learned_quota == (30, 60.0)
    limiter = outcome.limiter
    limiter.on_throttle(sent_at=limiter.next_slot() + 0.001)  # no grant in that window yet
    assert limiter.learned_quota is None
    assert "forgot the quota of 30 per minute: refused at once" in [
        why for _, _, why in outcome.changes
    ]


@pytest.mark.parametrize(
    ("period", "text"),
    [(60.0, "minute"), (3600.0, "hour"), (6.0, "6 seconds"), (120.0, "2 minutes"), (1.0, "second")],
)
def test_windows_are_named_as_people_say_them(period: float, text: str) -> None:
    assert describe_window(period) == text


@pytest.mark.parametrize("windows", [(0.5,), (86_401.0,), (1.0, 2.0, 3.0, 4.0, 5.0)])
def test_nonsense_windows_are_refused(windows: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="window"):
        AdaptiveRate(5.0, windows=windows)


async def test_a_stated_wait_wins_over_a_learned_window() -> None:
    outcome = await run(Service(30, 60.0), offset=0.0, n=60)
    limiter = outcome.limiter
    assert limiter.learned_quota == (30, 60.0)
    sent = outcome.admitted[-1]  # in a window with requests before it: the window fits
    until = limiter.on_throttle(retry_after=300.0, sent_at=sent)  # past the window's end
    assert until >= sent + 300.0
    assert limiter.learned_quota == (30, 60.0)  # within what a window took: not lowered
