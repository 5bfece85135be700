"""The one classifier, pinned row by row against the gateway's error table."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bulkscan.dsc.classify import (
    Verdict,
    classify_exception,
    classify_response,
    error_for,
    failed_while_connecting,
    gateway_code,
    parse_throttle_limit,
)
from bulkscan.errors import (
    AmbiguousError,
    DscError,
    ProjectPermanentError,
    RunFatalError,
    TaskPermanentError,
    ThrottledError,
    TransientError,
)

V = Verdict
CREATE, LIST = False, True

# (status, error code, idempotent, verdict): every row of the reference's error table.
RESPONSES = [
    (200, None, CREATE, V.CREATED),
    (200, None, LIST, V.CREATED),
    (201, None, CREATE, V.ACCEPTED),
    (202, None, CREATE, V.ACCEPTED),
    (429, "APIG.0308", CREATE, V.THROTTLED),
    (429, "APIGW.0308", LIST, V.THROTTLED),
    (429, None, CREATE, V.THROTTLED),
    (403, "APIG.0308", CREATE, V.THROTTLED),  # the code decides, whatever the status
    (429, "apig.0308", CREATE, V.THROTTLED),
    (503, "APIGW.0609", CREATE, V.TRANSIENT),
    (503, None, LIST, V.TRANSIENT),
    (500, "APIGW.0601", CREATE, V.AMBIGUOUS),
    (500, "APIGW.0601", LIST, V.TRANSIENT),
    (500, "DSC.50000001", CREATE, V.AMBIGUOUS),
    (502, "APIG.0201", CREATE, V.AMBIGUOUS),
    (502, "APIG.0201", LIST, V.TRANSIENT),
    (504, "APIGW.0201", CREATE, V.AMBIGUOUS),
    (504, None, LIST, V.TRANSIENT),
    (599, None, CREATE, V.AMBIGUOUS),
    (400, "DSC.40000011", CREATE, V.TASK_PERMANENT),
    (400, "APIGW.0201", CREATE, V.TASK_PERMANENT),
    (413, "APIG.0201", CREATE, V.TASK_PERMANENT),
    (409, None, CREATE, V.TASK_PERMANENT),
    (422, None, LIST, V.TASK_PERMANENT),
    (408, None, CREATE, V.TRANSIENT),
    (404, "APIGW.0101", CREATE, V.RUN_FATAL),
    (404, "APIG.0101", LIST, V.RUN_FATAL),
    (404, "DSC.00000404", CREATE, V.PROJECT_PERMANENT),
    (404, None, LIST, V.PROJECT_PERMANENT),
    (403, "APIG.0310", CREATE, V.PROJECT_PERMANENT),
    (403, "APIGW.0302", CREATE, V.PROJECT_PERMANENT),
    (403, None, LIST, V.PROJECT_PERMANENT),
    (401, "APIGW.0301", CREATE, V.RUN_FATAL),
    (401, "APIG.0303", CREATE, V.RUN_FATAL),
    (401, "APIGW.0307", LIST, V.RUN_FATAL),
    (401, None, LIST, V.RUN_FATAL),
    (301, None, CREATE, V.RUN_FATAL),
    (302, None, LIST, V.RUN_FATAL),
    (100, None, CREATE, V.RUN_FATAL),
]


@pytest.mark.parametrize(("status", "code", "idempotent", "verdict"), RESPONSES)
def test_classify_response(status: int, code: str | None, idempotent: bool, verdict: V) -> None:
    assert classify_response(status, code, idempotent=idempotent) is verdict


def _key() -> ConnectionKey:
    return ConnectionKey("sdg.example", 443, True, True, None, None, None)


def _refused() -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "refused"))


def _bad_cert() -> aiohttp.ClientConnectorCertificateError:
    return aiohttp.ClientConnectorCertificateError(_key(), ssl.SSLCertVerificationError("bad"))


# (exception, sent, idempotent, verdict)
EXCEPTIONS = [
    (_refused(), False, CREATE, V.TRANSIENT),
    (_refused(), True, CREATE, V.TRANSIENT),  # its type proves nothing was sent
    (ConnectionRefusedError(111, "refused"), False, CREATE, V.TRANSIENT),
    (socket.gaierror(-2, "Name or service not known"), False, CREATE, V.TRANSIENT),
    (aiohttp.ConnectionTimeoutError("connect"), True, CREATE, V.TRANSIENT),
    (TimeoutError(), False, CREATE, V.TRANSIENT),
    (aiohttp.SocketTimeoutError("read"), True, CREATE, V.AMBIGUOUS),
    (aiohttp.SocketTimeoutError("read"), True, LIST, V.TRANSIENT),
    (aiohttp.ServerDisconnectedError(), True, CREATE, V.AMBIGUOUS),
    (aiohttp.ServerDisconnectedError(), True, LIST, V.TRANSIENT),
    (aiohttp.ClientOSError(104, "Connection reset by peer"), True, CREATE, V.AMBIGUOUS),
    (ConnectionResetError(104, "reset"), True, CREATE, V.AMBIGUOUS),
    (aiohttp.ClientPayloadError("truncated"), True, CREATE, V.AMBIGUOUS),
    (TimeoutError(), True, CREATE, V.AMBIGUOUS),
    (RuntimeError("unknown"), True, CREATE, V.AMBIGUOUS),
    (_bad_cert(), False, CREATE, V.RUN_FATAL),
    (ssl.SSLCertVerificationError("bad"), False, LIST, V.RUN_FATAL),
    (aiohttp.InvalidURL("sdg..example"), False, CREATE, V.RUN_FATAL),
]


@pytest.mark.parametrize(("exc", "sent", "idempotent", "verdict"), EXCEPTIONS, ids=repr)
def test_classify_exception(exc: BaseException, sent: bool, idempotent: bool, verdict: V) -> None:
    assert classify_exception(exc, sent=sent, idempotent=idempotent) is verdict


@pytest.mark.parametrize(
    ("exc", "connecting"),
    [
        (_refused(), True),
        (aiohttp.ConnectionTimeoutError(), True),
        (socket.gaierror(), True),
        (aiohttp.SocketTimeoutError(), False),
        (aiohttp.ServerDisconnectedError(), False),
        (ConnectionResetError(), False),
    ],
    ids=repr,
)
def test_failed_while_connecting(exc: BaseException, connecting: bool) -> None:
    assert failed_while_connecting(exc) is connecting


@pytest.mark.parametrize(
    ("code", "number"),
    [
        ("APIGW.0301", "0301"),
        ("APIG.0308", "0308"),
        ("apigw.0101", "0101"),
        ("DSC.40000011", None),
        (None, None),
        ("", None),
    ],
)
def test_gateway_code(code: str | None, number: str | None) -> None:
    assert gateway_code(code) == number


@pytest.mark.parametrize(
    ("msg", "per_s"),
    [
        (
            "The throttling threshold has been reached: "
            "policy user over ratelimit,limit:30,time:1 minute",
            0.5,
        ),
        ("policy ip over ratelimit,limit:5,time:1 second", 5.0),
        ("over ratelimit, limit: 120 , time: 1 minute", 2.0),
        ("over ratelimit,limit:10,time:2 second", 5.0),
        ("over ratelimit,limit:3600,time:1 hour", 1.0),
        ("over ratelimit,limit:86400,time:1 day", 1.0),
        ("over ratelimit,limit:5,time:minute", 5 / 60),
        ("over ratelimit", None),
        ("over ratelimit,limit:0,time:1 minute", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_throttle_limit(msg: str | None, per_s: float | None) -> None:
    assert parse_throttle_limit(msg) == (pytest.approx(per_s) if per_s is not None else None)


@pytest.mark.parametrize(
    ("verdict", "cls"),
    [
        (V.THROTTLED, ThrottledError),
        (V.TRANSIENT, TransientError),
        (V.AMBIGUOUS, AmbiguousError),
        (V.TASK_PERMANENT, TaskPermanentError),
        (V.PROJECT_PERMANENT, ProjectPermanentError),
        (V.RUN_FATAL, RunFatalError),
    ],
)
def test_error_for_maps_each_verdict_to_its_class(verdict: V, cls: type[DscError]) -> None:
    err = error_for(verdict, status=418, code="X.1", detail="why", request_id="rid-1", task="t1")
    assert type(err) is cls
    assert err.verdict is verdict  # carried, never derived again from the class
    assert (err.status, err.code, err.request_id, err.task) == (418, "X.1", "rid-1", "t1")
    assert str(err).startswith("task 't1': HTTP 418 X.1: why (request id rid-1); ")


def test_throttled_error_carries_the_limit_and_retry_after() -> None:
    err = error_for(
        V.THROTTLED,
        status=429,
        code="APIG.0308",
        detail="over ratelimit,limit:30,time:1 minute",
        retry_after=2.0,
    )
    assert isinstance(err, ThrottledError) and isinstance(err, TransientError)
    assert err.limit_per_s == pytest.approx(0.5)
    assert err.retry_after == 2.0
    assert "slow down" in str(err)


@pytest.mark.parametrize(
    ("status", "code", "advice"),
    [
        (401, "APIGW.0301", "the gateway locks a key after 5 failures, so bulkscan never retries"),
        (401, None, "check the AK/SK"),
        (401, "APIGW.0303", "fix the system clock"),
        (401, "APIG.0307", "obtain a new token"),
        (404, "APIGW.0101", "wrong endpoint/path"),
        (302, None, "redirect"),
    ],
)
def test_run_fatal_messages_say_what_to_fix(status: int, code: str | None, advice: str) -> None:
    verdict = classify_response(status, code)
    assert verdict is V.RUN_FATAL
    assert advice in str(error_for(verdict, status=status, code=code))


@pytest.mark.parametrize(
    ("status", "code", "advice"),
    [
        (404, None, "does not exist in this region"),
        (403, "APIG.0310", "project is unavailable"),
        (403, "APIGW.0302", "grant the DSC permissions"),
        (403, None, "grant the DSC permissions"),
    ],
)
def test_project_messages_say_what_to_fix(status: int, code: str | None, advice: str) -> None:
    verdict = classify_response(status, code)
    assert verdict is V.PROJECT_PERMANENT
    assert advice in str(error_for(verdict, status=status, code=code))


def test_error_without_answer_and_long_detail() -> None:
    assert str(error_for(V.TRANSIENT)).startswith("no answer; not applied")
    err = error_for(V.TASK_PERMANENT, status=400, detail="bad\nvalue " + "x" * 500)
    text = str(err)
    assert "\n" not in text and "bad value x" in text and "…" in text
    assert len(text) < 420


# (verdict, status, reached, uses an attempt): the one rule of what a failure costs.
ATTEMPTS = [
    (V.THROTTLED, 429, None, False),  # nothing applied: the time budget alone bounds it
    (V.THROTTLED, 429, True, False),
    (V.TRANSIENT, 503, None, True),  # an answer: the service was reached
    (V.TRANSIENT, None, None, False),  # refused or dropped while connecting
    (V.TRANSIENT, None, True, True),  # a read that timed out after sending
    (V.TRANSIENT, None, False, False),
    (V.AMBIGUOUS, None, None, True),  # reset after sending
    (V.AMBIGUOUS, 502, None, True),
    (V.TASK_PERMANENT, 400, None, True),
    (V.PROJECT_PERMANENT, 404, None, True),
    (V.RUN_FATAL, 401, None, True),
]


@pytest.mark.parametrize(("verdict", "status", "reached", "uses"), ATTEMPTS)
def test_error_for_decides_whether_a_failure_uses_an_attempt(
    verdict: V, status: int | None, reached: bool | None, uses: bool
) -> None:
    err = error_for(verdict, status=status, reached=reached)
    assert err.uses_attempt is uses
    assert err.verdict is verdict


@pytest.mark.parametrize(
    ("exc", "sent", "verdict", "uses"),
    [
        (ConnectionRefusedError(), False, V.TRANSIENT, False),
        (TimeoutError(), True, V.AMBIGUOUS, True),
        (aiohttp.ServerDisconnectedError(), True, V.AMBIGUOUS, True),
    ],
)
def test_a_network_failure_carries_its_verdict_and_cost(
    exc: BaseException, sent: bool, verdict: V, uses: bool
) -> None:
    err = error_for(classify_exception(exc, sent=sent), detail="why")
    assert (err.verdict, err.uses_attempt) == (verdict, uses)


@pytest.mark.parametrize(
    ("cls", "verdict", "uses"),
    [
        (ThrottledError, V.THROTTLED, False),
        (TransientError, V.TRANSIENT, True),
        (AmbiguousError, V.AMBIGUOUS, True),
        (TaskPermanentError, V.TASK_PERMANENT, True),
        (ProjectPermanentError, V.PROJECT_PERMANENT, True),
        (RunFatalError, V.RUN_FATAL, True),
    ],
)
def test_an_error_raised_by_its_class_carries_that_verdict(
    cls: type[DscError], verdict: V, uses: bool
) -> None:
    err = cls("the service answered", status=500)
    assert (err.verdict, err.uses_attempt) == (verdict, uses)


def test_a_throttled_error_is_a_429_unless_told_otherwise() -> None:
    assert ThrottledError("slow down").status == 429
    assert ThrottledError("slow down", status=None, code="APIG.0308").status is None
    assert error_for(V.THROTTLED, code="APIG.0308").status is None  # no answer: no status


def test_an_error_cannot_carry_a_success() -> None:
    with pytest.raises(ValueError, match="success"):
        DscError("fine", verdict=V.CREATED)


def test_verdict_lives_in_a_leaf_and_classify_re_exports_it() -> None:
    from bulkscan import models

    assert V is models.Verdict


@pytest.mark.parametrize("verdict", [V.CREATED, V.ACCEPTED])
def test_error_for_refuses_success(verdict: V) -> None:
    assert verdict.ok
    with pytest.raises(ValueError, match="success"):
        error_for(verdict)


def test_verdict_values_are_stable() -> None:
    assert [v.value for v in V] == [
        "created",
        "accepted",
        "throttled",
        "transient",
        "ambiguous",
        "task-permanent",
        "project-permanent",
        "run-fatal",
        "untrusted-listing",
    ]


def test_what_happened_is_kept_apart_from_the_advice() -> None:
    """A caller in another context (the closing listing, after sending) gives its own advice."""
    exc = error_for(Verdict.UNTRUSTED, detail="project p / region r: the list is odd")
    assert exc.what == "project p / region r: the list is odd"
    assert str(exc).startswith(exc.what + "; ") and "nothing is sent" in str(exc)
    served = error_for(Verdict.TRANSIENT, status=500, code="dsc.5", detail="x", request_id="r1")
    assert served.what == "HTTP 500 dsc.5: x (request id r1)"
    assert DscError("raised as is").what == "raised as is"  # no advice: the whole message
