"""The one retry policy for every call to the service.

Creates, listings, lookups after an ambiguous answer, and the lifecycle calls to come
(update, delete, operate) all retry by it.  A ``RetryPolicy`` holds the knobs (frozen,
keyword-only, bounded: nonsense is refused with a ``UsageError`` when it is built); a
``RetryBudget`` is what one call (or one task, across its attempts) has used of them.
The rules, in one place:

* **Which failures are retried** is the caller's choice from the verdict the error carries
  (``DscError.verdict``): ``RetryPolicy.call`` retries the verdicts in ``RETRIED_READS``
  (safe for a read), raises a run-fatal one and returns any other.  A create retries
  transient and throttled answers and looks an ambiguous one up first.
* **Attempts**: a failure uses one of ``max_attempts`` when its ``uses_attempt`` says so.
  Throttled answers and failures that never reached the service use none: they are bounded
  by the time budget alone, so a run rides through a restart or a short outage.
* **Waits**: full jitter, uniform in ``[0, min(backoff_max_s, backoff_base_s * 2^(n-1))]``
  for the n-th failure.  A throttled answer waits no backoff of its own: the shared rate
  limiter pauses every caller and slows down.
* **Time**: no try starts after ``max_seconds`` from the budget's start.

Time is injected (``clock``, ``sleep``, ``rng``), so tests control it rather than sleep.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from bulkscan.config import check_retry
from bulkscan.errors import DscError
from bulkscan.models import Verdict

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from bulkscan.config import DispatchSettings

__all__ = ["RETRIED_READS", "RetryBudget", "RetryPolicy", "backoff_delay"]

T = TypeVar("T")

RETRIED_READS = frozenset({Verdict.THROTTLED, Verdict.TRANSIENT, Verdict.AMBIGUOUS})
"""Verdicts a read (or any call safe to repeat) is retried on."""


def backoff_delay(failures: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(failures-1))] after the n-th failure."""
    ceiling = min(cap_s, base_s * 2.0 ** max(0, failures - 1))
    return rng.uniform(0.0, ceiling)


def _ignore(exc: DscError) -> None:
    """An error hook that does nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long a call to the service is tried (bounded, checked when built)."""

    max_attempts: int = 6
    max_seconds: float = 600.0  # total time budget, retries and waits included
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    def __post_init__(self) -> None:
        check_retry(
            max_attempts=self.max_attempts,
            max_seconds=self.max_seconds,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> RetryPolicy:
        """The policy the run's settings describe."""
        return cls(
            max_attempts=settings.max_attempts,
            max_seconds=settings.max_task_seconds,
            backoff_base_s=settings.backoff_base_s,
            backoff_max_s=settings.backoff_max_s,
        )

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The wait after the ``failures``-th failure."""
        return backoff_delay(
            failures, base_s=self.backoff_base_s, cap_s=self.backoff_max_s, rng=rng
        )

    def start(
        self, *, clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None
    ) -> RetryBudget:
        """A fresh budget whose time starts now (by ``clock``)."""
        return RetryBudget(self, clock=clock, rng=rng or random.Random(), started=clock())

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        budget: RetryBudget | None = None,
        retried: frozenset[Verdict] = RETRIED_READS,
        on_error: Callable[[DscError], None] = _ignore,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        first_wait: bool = False,
    ) -> T | DscError:
        """``await attempt()`` until it succeeds; the last error once it is not retried.

        ``on_error`` sees every failure first.  A run-fatal error is raised; a verdict not in
        ``retried`` is returned at once, as is the last error when the budget is spent.
        ``first_wait`` waits one backoff before the first try (to let a slow backend settle).
        """
        budget = budget or self.start()
        delay = budget.first_wait() if first_wait else 0.0
        while True:
            if delay > 0:
                await sleep(delay)
            try:
                return await attempt()
            except DscError as exc:
                on_error(exc)
                if exc.verdict is Verdict.RUN_FATAL:
                    raise
                if exc.verdict not in retried:
                    return exc
                next_delay = budget.after_failure(exc)
                if next_delay is None:
                    return exc
                delay = next_delay


@dataclass(slots=True)
class RetryBudget:
    """What one call, or one task across its attempts, has used of a ``RetryPolicy``."""

    policy: RetryPolicy
    clock: Callable[[], float]
    rng: random.Random
    started: float
    attempts: int = 0  # failures that used an attempt
    failures: int = 0  # failures that back off: the backoff exponent
    last_error: str | None = field(default=None)

    def after_failure(self, exc: DscError) -> float | None:
        """A failure to be retried: the wait before the next try, or None when spent."""
        self.last_error = str(exc)
        self.attempts += exc.uses_attempt
        delay = 0.0
        if exc.verdict is not Verdict.THROTTLED:  # the limiter's pause is the wait
            self.failures += 1
            delay = self.policy.backoff(self.failures, self.rng)
        return None if self.spent(delay) else delay

    def first_wait(self) -> float:
        """A backoff before the first try (a lookup after an ambiguous answer)."""
        return self.policy.backoff(1, self.rng)

    def remaining(self) -> float:
        """Seconds left of the time budget (0 when spent)."""
        return max(0.0, self.policy.max_seconds - (self.clock() - self.started))

    def spent(self, delay: float = 0.0) -> bool:
        """Out of attempts, or the next try (after ``delay``) would start past the budget."""
        elapsed = self.clock() - self.started + delay
        return self.attempts >= self.policy.max_attempts or elapsed > self.policy.max_seconds
