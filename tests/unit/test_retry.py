"""The one retry policy, with time under the test's control (a fake clock; nothing sleeps)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from bulkscan.config import DispatchSettings
from bulkscan.dsc.classify import error_for
from bulkscan.errors import DscError, RunFatalError, UsageError
from bulkscan.models import Verdict
from bulkscan.run.retry import RETRIED_READS, RetryPolicy, backoff_delay

V = Verdict


class FakeTime:
    """A clock that moves only when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Service:
    """Fails with ``errors`` in turn, then answers ``'listed'``; ``forever`` repeats the last."""

    def __init__(self, *errors: DscError, forever: bool = True, took_s: float = 0.0,
                 time: FakeTime | None = None) -> None:  # fmt: skip
        self.errors = list(errors)
        self.forever = forever
        self.calls = 0
        self.took_s = took_s
        self.time = time

    async def __call__(self) -> str:
        self.calls += 1
        if self.time is not None:
            self.time.now += self.took_s
        if not self.errors:
            return "listed"
        if self.forever and len(self.errors) == 1:
            raise self.errors[0]
        raise self.errors.pop(0)


def _policy(**kw: Any) -> RetryPolicy:
    knobs: dict[str, Any] = {
        "max_attempts": 4,
        "max_seconds": 60.0,
        "backoff_base_s": 1.0,
        "backoff_max_s": 8.0,
    }
    return RetryPolicy(**{**knobs, **kw})


async def _call(policy: RetryPolicy, service: Service, time: FakeTime, **kw: Any) -> object:
    budget = policy.start(clock=time.clock, rng=random.Random(1))
    return await policy.call(service, budget=budget, sleep=time.sleep, **kw)


TRANSIENT_503 = error_for(V.TRANSIENT, status=503)
REFUSED = error_for(V.TRANSIENT, detail="connection refused while connecting")
THROTTLED = error_for(V.THROTTLED, status=429, code="APIG.0308")


# --- the knobs --------------------------------------------------------------------------------


def test_the_defaults_are_bounded_and_are_the_run_settings() -> None:
    policy = RetryPolicy()
    assert RetryPolicy.from_settings(DispatchSettings()) == policy
    assert 1 <= policy.max_attempts <= 20 and policy.max_seconds <= 86_400
    assert policy.backoff_base_s <= policy.backoff_max_s


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"max_attempts": 0}, "attempts must be between 1 and 20, not 0"),
        ({"max_attempts": 21}, "attempts must be between 1 and 20"),
        ({"max_seconds": 0.5}, "time budget"),
        ({"max_seconds": 10**6}, "time budget"),
        ({"backoff_base_s": -1.0}, "backoff base"),
        ({"backoff_max_s": 4000.0}, "backoff cap"),
        ({"backoff_base_s": 5.0, "backoff_max_s": 1.0}, "must not be below the backoff base"),
    ],
)
def test_nonsense_is_refused_when_the_policy_is_built(knobs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        RetryPolicy(**knobs)


def test_the_settings_refuse_the_same_nonsense() -> None:
    with pytest.raises(UsageError, match="must not be below the backoff base"):
        DispatchSettings(backoff_base_s=5.0, backoff_max_s=1.0)


def test_knobs_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().max_attempts = 9  # type: ignore[misc]


def test_backoff_is_full_jitter_under_a_growing_capped_ceiling() -> None:
    rng = random.Random(7)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0), (30, 10.0)):
        delays = [backoff_delay(failures, base_s=1.0, cap_s=10.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # the whole range is used, not a fixed delay


# --- the loop ---------------------------------------------------------------------------------


async def test_success_after_failures_returns_the_answer() -> None:
    time = FakeTime()
    service = Service(TRANSIENT_503, REFUSED, THROTTLED, forever=False)
    assert await _call(_policy(), service, time) == "listed"
    assert service.calls == 4 and len(time.sleeps) == 2  # no backoff after the throttling


async def test_failures_that_reached_the_service_use_up_the_attempts() -> None:
    time = FakeTime()
    service = Service(TRANSIENT_503)
    answer = await _call(_policy(max_attempts=4), service, time)
    assert answer is TRANSIENT_503
    assert service.calls == 4
    assert len(time.sleeps) == 3  # a wait between tries, none after the last
    for n, slept in enumerate(time.sleeps, start=1):
        assert 0.0 <= slept <= min(8.0, 2.0 ** (n - 1))


async def test_failures_that_never_reached_the_service_are_bounded_by_time_alone() -> None:
    time = FakeTime()
    service = Service(REFUSED)
    answer = await _call(_policy(max_attempts=2, max_seconds=60.0), service, time)
    assert answer is REFUSED
    assert service.calls > 2  # no attempt used up: an outage is ridden through
    assert time.now - 1000.0 <= 60.0  # and no try started past the budget
    assert sum(time.sleeps) <= 60.0


async def test_throttling_uses_no_attempt_and_waits_no_backoff_of_its_own() -> None:
    time = FakeTime()
    service = Service(THROTTLED, time=time, took_s=5.0)  # the limiter's pause: 5 s a try
    answer = await _call(_policy(max_attempts=1, max_seconds=30.0), service, time)
    assert answer is THROTTLED
    assert time.sleeps == []
    assert service.calls == 7  # tries start at 0, 5, .. 30 s, whatever max_attempts says


async def test_a_run_fatal_answer_is_raised_at_once() -> None:
    time = FakeTime()
    fatal = error_for(V.RUN_FATAL, status=401, code="APIGW.0301")
    service = Service(fatal)
    seen: list[DscError] = []
    with pytest.raises(RunFatalError):
        await _call(_policy(), service, time, on_error=seen.append)
    assert service.calls == 1 and seen == [fatal]


@pytest.mark.parametrize("verdict", [V.TASK_PERMANENT, V.PROJECT_PERMANENT])
async def test_a_permanent_answer_is_returned_without_a_retry(verdict: V) -> None:
    time = FakeTime()
    error = error_for(verdict, status=404 if verdict is V.PROJECT_PERMANENT else 400)
    service = Service(error)
    assert await _call(_policy(), service, time) is error
    assert service.calls == 1 and time.sleeps == []


async def test_only_the_verdicts_asked_for_are_retried() -> None:
    time = FakeTime()
    ambiguous = error_for(V.AMBIGUOUS, status=502)
    service = Service(ambiguous)
    retried = RETRIED_READS - {V.AMBIGUOUS}  # a create looks an ambiguous answer up instead
    assert await _call(_policy(), service, time, retried=retried) is ambiguous
    assert service.calls == 1
    assert V.AMBIGUOUS in RETRIED_READS and V.RUN_FATAL not in RETRIED_READS


async def test_first_wait_waits_one_backoff_before_the_first_try() -> None:
    time = FakeTime()
    service = Service()
    assert await _call(_policy(), service, time, first_wait=True) == "listed"
    assert len(time.sleeps) == 1 and 0.0 <= time.sleeps[0] <= 1.0


# --- a budget held across a task's attempts ------------------------------------------------------


def test_a_budget_gives_up_when_the_next_try_would_start_past_its_time() -> None:
    time = FakeTime()
    budget = _policy(max_attempts=20, max_seconds=10.0, backoff_base_s=4.0).start(
        clock=time.clock, rng=random.Random(3)
    )
    delays = []
    while (delay := budget.after_failure(TRANSIENT_503)) is not None:
        delays.append(delay)
        time.now += delay
    assert time.now - budget.started <= 10.0
    assert budget.last_error == str(TRANSIENT_503)
    assert budget.attempts == len(delays) + 1
