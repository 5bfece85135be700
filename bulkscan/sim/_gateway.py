"""What the simulated API gateway decides before DSC sees a request: auth and throttling."""

from __future__ import annotations

import calendar
import hmac
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bulkscan.dsc.signing import (
    DATE_FORMAT,
    canonical_request,
    parse_authorization,
    signature,
    string_to_sign,
)
from bulkscan.sim._config import describe_period

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

__all__ = ["Authenticator", "Denial", "FixedWindowQuota", "Received"]

MAX_SKEW_S = 15 * 60
MAX_FAILURES = 5
LOCK_S = 5 * 60
_IAM = "Incorrect IAM authentication information"
_UNSIGNED = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True, slots=True)
class Received:
    """A request as the gateway received it; ``headers`` keyed by lowercase name."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Denial:
    """A gateway (or DSC) refusal: what to answer and how to count it."""

    status: int
    code: str
    message: str
    outcome: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _unauthorized(detail: str, outcome: str = "unauthorized") -> Denial:
    return Denial(401, "APIGW.0301", f"{_IAM}: {detail}", outcome)


class Authenticator:
    """Checks ``X-Auth-Token`` or SDK-HMAC-SHA256 signatures; locks an AK after 5 failures."""

    def __init__(self, credentials: Mapping[str, str], tokens: Collection[str]) -> None:
        self._credentials = dict(credentials)
        self._tokens = tuple(tokens)
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    def reset(self) -> None:
        self._failures.clear()
        self._locked_until.clear()

    def check(self, req: Received, now: float) -> Denial | None:
        token = req.headers.get("x-auth-token")
        if token is not None:
            return None if self._token_ok(token) else _unauthorized("decrypt token fail")
        auth = req.headers.get("authorization")
        if auth is None:
            return _unauthorized("Authorization header not found")
        parsed = parse_authorization(auth)
        if parsed is None:
            return _unauthorized("unsupported Authorization, expected SDK-HMAC-SHA256")
        access_key, names, sig = parsed
        if self._is_locked(access_key, now):
            return _unauthorized(
                f"the AK is locked for {LOCK_S // 60} minutes after {MAX_FAILURES} consecutive "
                "authentication failures",
                "locked",
            )
        denial = self._verify(req, access_key, names, sig, now)
        if denial is None:
            self._failures.pop(access_key, None)
        else:
            self._fail(access_key, now)
        return denial

    def _token_ok(self, token: str) -> bool:
        # Compare against every token so the time taken does not depend on which one matched.
        matches = [hmac.compare_digest(token.encode(), known.encode()) for known in self._tokens]
        return any(matches)

    def _is_locked(self, access_key: str, now: float) -> bool:
        until = self._locked_until.get(access_key)
        if until is None:
            return False
        if now < until:
            return True
        del self._locked_until[access_key]
        return False

    def _fail(self, access_key: str, now: float) -> None:
        count = self._failures.get(access_key, 0) + 1
        if count >= MAX_FAILURES:
            self._locked_until[access_key] = now + LOCK_S
            count = 0
        self._failures[access_key] = count

    def _verify(
        self, req: Received, access_key: str, names: list[str], sig: str, now: float
    ) -> Denial | None:
        secret_key = self._credentials.get(access_key)
        if secret_key is None:
            return _unauthorized("ak not exist")
        sdk_date = req.headers.get("x-sdk-date")
        when = _parse_sdk_date(sdk_date) if sdk_date is not None else None
        if sdk_date is None or when is None:
            return _unauthorized("X-Sdk-Date header missing or not of the form YYYYMMDDTHHMMSSZ")
        if abs(when - now) > MAX_SKEW_S:
            return Denial(
                401,
                "APIGW.0303",
                f"{_IAM}: signature expired, X-Sdk-Date is more than 15 minutes away from the "
                "server time (check the clock)",
                "expired",
            )
        expected = _expected_signature(req, names, secret_key, sdk_date)
        if expected is None or not hmac.compare_digest(expected, sig):
            return _unauthorized("verify aksk signature fail")
        return None


def _parse_sdk_date(text: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(text, DATE_FORMAT)))
    except ValueError:
        return None


def _expected_signature(
    req: Received, names: list[str], secret_key: str, sdk_date: str
) -> str | None:
    """The signature the received request should carry, or None if a signed header is absent."""
    signed: dict[str, str] = {}
    for name in names:
        value = req.headers.get(name.lower())
        if value is None:
            return None
        signed[name.lower()] = value
    canonical, _ = canonical_request(req.method, req.path, req.query, signed, req.body)
    if signed.get("x-sdk-content-sha256") == _UNSIGNED:
        canonical = canonical.rsplit("\n", 1)[0] + "\n" + _UNSIGNED
    return signature(secret_key, string_to_sign(canonical, sdk_date))


class FixedWindowQuota:
    """At most ``limit`` requests per key in each clock-aligned window of ``period_s``.

    A refusal names the limit (``limit:30,time:1 minute``) unless ``stated`` is False: then
    it says only that the threshold was reached, as a gateway whose policy is not shown.
    """

    def __init__(
        self, limit: int, period_s: float, *, retry_after: bool, stated: bool = True
    ) -> None:
        self.limit = limit
        self.period_s = period_s
        self.stated = stated
        self._retry_after = retry_after
        self._windows: dict[str, tuple[float, int]] = {}

    def take(self, key: str, now: float) -> Denial | None:
        start = math.floor(now / self.period_s) * self.period_s
        window, count = self._windows.get(key, (start, 0))
        if window != start:
            count = 0
        if count >= self.limit:
            return self._throttled(start + self.period_s - now)
        self._windows[key] = (start, count + 1)
        return None

    def _throttled(self, wait_s: float) -> Denial:
        message = "The throttling threshold has been reached."
        if self.stated:
            message = (
                "The throttling threshold has been reached: policy user over ratelimit,"
                f"limit:{self.limit},time:{describe_period(self.period_s)}"
            )
        headers = {"Retry-After": str(max(1, math.ceil(wait_s)))} if self._retry_after else {}
        return Denial(429, "APIG.0308", message, "throttled", headers)
