"""Every DSC answer or network failure becomes exactly one ``Verdict``: decided here only.

The rules follow the gateway's error table (codes appear as ``APIGW.xxxx`` or ``APIG.xxxx``,
treated the same): a gateway 401 never retried (the gateway locks a key after 5 failures)
while DSC's own 401 (``dsc.10000009``: DSC not enabled) fails that project alone, 429/0308
slow down and resend, 503 resend, 500/502/504 and lost connections after sending are
*ambiguous* for a create (the task may exist: look before resending), other 4xx fail the task,
404/403 fail the project, a wrong API or broken TLS stops the run.  A 200 to a create without
a task id or with a status other than success is ambiguous (``classify_create_answer``); a
listing whose tasks cannot be told apart is *untrusted* (decided by the client's reader, which
raises ``error_for(Verdict.UNTRUSTED, ...)``): that project is not sent, nothing is retried.

``error_for`` turns a verdict into the exception that carries it (``DscError.verdict``)
together with whether the failure uses up an attempt (``DscError.uses_attempt``): nobody
derives either again from the exception's class.
"""

from __future__ import annotations

import re
import socket
import ssl

import aiohttp

from bulkscan.errors import (
    AmbiguousError,
    DscContext,
    DscError,
    ProjectPermanentError,
    RunFatalError,
    TaskPermanentError,
    ThrottledError,
    TransientError,
    UntrustedListingError,
)
from bulkscan.i18n import N_
from bulkscan.models import Verdict  # defined in a leaf so that errors.py can carry it

__all__ = [
    "RECORD_ADVICE",
    "Verdict",
    "classify_create_answer",
    "classify_exception",
    "classify_response",
    "dsc_not_enabled",
    "error_for",
    "is_dsc_code",
    "gateway_code",
    "failed_while_connecting",
    "parse_throttle_limit",
    "uses_attempt",
]


_GATEWAY_PREFIXES = ("APIGW.", "APIG.")


def gateway_code(error_code: str | None) -> str | None:
    """``'APIGW.0301'`` / ``'APIG.0301'`` → ``'0301'``; None for non-gateway codes."""
    if not error_code:
        return None
    code = error_code.strip().upper()
    for prefix in _GATEWAY_PREFIXES:
        if code.startswith(prefix):
            return code[len(prefix) :]
    return None


def _server_error(idempotent: bool) -> Verdict:
    return Verdict.TRANSIENT if idempotent else Verdict.AMBIGUOUS


def is_dsc_code(error_code: str | None) -> bool:
    """True for DSC's own codes (``dsc.10000009``, ``DSC.40000011``), whatever the case."""
    return bool(error_code) and str(error_code).strip().lower().startswith("dsc.")


def _client_error(status: int, gw: str | None, error_code: str | None = None) -> Verdict:
    if status == 401:
        # DSC's own 401 (dsc.10000009: no DSC instance in the project) concerns that project
        # alone; the gateway's 401s (0301, 0303, 0307, or no code) are about the credentials.
        return Verdict.PROJECT_PERMANENT if is_dsc_code(error_code) else Verdict.RUN_FATAL
    if status == 404:
        return Verdict.RUN_FATAL if gw == "0101" else Verdict.PROJECT_PERMANENT
    if status == 403:
        return Verdict.PROJECT_PERMANENT
    if status == 408:
        return Verdict.TRANSIENT  # the server gave up waiting for the request: not processed
    return Verdict.TASK_PERMANENT


def classify_response(status: int, error_code: str | None, *, idempotent: bool = False) -> Verdict:
    """The verdict for an HTTP answer; ``idempotent`` is True for reads, False for a create."""
    gw = gateway_code(error_code)
    if status == 429 or gw == "0308":
        return Verdict.THROTTLED
    if 200 <= status < 300:
        return Verdict.CREATED if status == 200 else Verdict.ACCEPTED
    if status >= 500:
        return Verdict.TRANSIENT if status == 503 else _server_error(idempotent)
    if status >= 400:
        return _client_error(status, gw, error_code)
    return Verdict.RUN_FATAL  # informational or redirect: not DSC answering, a wrong endpoint


def classify_create_answer(status: int, body_status: str | None, task_id: str | None) -> Verdict:
    """The verdict for a 2xx answer to a create, read with its body.

    A 200 is *created* only when its body carries a task id and no ``status`` other than
    success (the documented answer is ``{id, msg, status: "success"}``).  A 200 without an id
    (an HTML page, an error body, an empty body) or with another status may or may not have
    created the task: *ambiguous*, looked up by name.  A 201 ("being created") is *accepted*
    with or without an id.
    """
    if status == 200:
        failed = body_status is not None and body_status.strip().lower() != "success"
        return Verdict.AMBIGUOUS if failed or not task_id else Verdict.CREATED
    return Verdict.ACCEPTED


_FATAL_EXCEPTIONS = (aiohttp.ClientSSLError, ssl.SSLCertVerificationError, aiohttp.InvalidURL)
_NOT_SENT_EXCEPTIONS = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    ConnectionRefusedError,
    socket.gaierror,
)


def failed_while_connecting(exc: BaseException) -> bool:
    """True when ``exc`` happened before a connection existed, so nothing was sent."""
    return isinstance(exc, _NOT_SENT_EXCEPTIONS)


def classify_exception(exc: BaseException, *, sent: bool, idempotent: bool = False) -> Verdict:
    """The verdict for a failure without an HTTP answer.

    ``sent`` is False when the failure happened while connecting (nothing reached the
    service) and True once the request may have been written.
    """
    if isinstance(exc, _FATAL_EXCEPTIONS):
        return Verdict.RUN_FATAL
    if not sent or isinstance(exc, _NOT_SENT_EXCEPTIONS):
        return Verdict.TRANSIENT
    # Read timeout, reset or disconnect after sending, truncated answer, or anything unknown:
    # the service may have acted on the request.
    return _server_error(idempotent)


# --- throttle messages --------------------------------------------------------------------

_LIMIT = re.compile(
    r"limit\s*:\s*(\d+(?:\.\d+)?)\s*,\s*time\s*:\s*(\d+(?:\.\d+)?)?\s*"
    r"(second|sec|s|minute|min|m|hour|h|day|d)\b",
    re.IGNORECASE,
)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_throttle_limit(msg: str | None) -> float | None:
    """Requests per second from ``'... over ratelimit,limit:30,time:1 minute'`` (→ 0.5)."""
    if not msg:
        return None
    m = _LIMIT.search(msg)
    if not m:
        return None
    count = float(m.group(1))
    span = float(m.group(2) or 1) * _UNIT_S[m.group(3)[0].lower()]
    if count <= 0 or span <= 0:
        return None
    return count / span


# --- errors ----------------------------------------------------------------------------------

# What to do about a listing whose shape cannot be trusted (the run, the check, the audit)
RECORD_ADVICE = N_("run 'bulkscan doctor --record FILE' and report the answer it saved")
_FATAL_ADVICE = {
    "0301": (
        "authentication failed: check the AK/SK or the token; the gateway locks a key after "
        "5 failures, so bulkscan never retries"
    ),
    "0303": (
        "the request date was rejected: fix the system clock (it must be within 15 minutes "
        "of the real time)"
    ),
    "0307": "the IAM token has expired or must be renewed: obtain a new token",
    "0101": ("wrong endpoint/path: the API was not found there; check the region and the endpoint"),
}
_PROJECT_ADVICE = {
    "0310": "the project is unavailable (frozen, or DSC not enabled in it): check the project",
    "0302": "not authorised for this API in this project: grant the DSC permissions",
}
_ADVICE = {
    Verdict.THROTTLED: "the gateway throttled the request (nothing was created): slow down",
    Verdict.TRANSIENT: "not applied: safe to send again after a wait",
    Verdict.AMBIGUOUS: "the task may or may not exist: look it up before sending again",
    Verdict.TASK_PERMANENT: "the service refused this request: fix the row's values",
    Verdict.PROJECT_PERMANENT: "the project cannot take tasks: check project_id and region",
    Verdict.RUN_FATAL: "stopping: fix the configuration before running again",
    Verdict.UNTRUSTED: (
        "nothing is sent to this project, since its existing tasks cannot be told apart; "
        + RECORD_ADVICE
    ),
}
_DSC_NOT_ENABLED = "dsc.10000009"
_CLASSES: dict[Verdict, type[DscError]] = {
    Verdict.THROTTLED: ThrottledError,
    Verdict.TRANSIENT: TransientError,
    Verdict.AMBIGUOUS: AmbiguousError,
    Verdict.TASK_PERMANENT: TaskPermanentError,
    Verdict.PROJECT_PERMANENT: ProjectPermanentError,
    Verdict.RUN_FATAL: RunFatalError,
    Verdict.UNTRUSTED: UntrustedListingError,
}
_MAX_DETAIL = 300


def _fatal_advice(status: int | None, gw: str | None) -> str:
    if gw in _FATAL_ADVICE:
        return _FATAL_ADVICE[gw]
    if status == 401:
        return _FATAL_ADVICE["0301"]
    if status is not None and status < 400:
        return "the endpoint answered with a redirect: check the endpoint URL"
    return _ADVICE[Verdict.RUN_FATAL]


def dsc_not_enabled(status: int | None, code: str | None) -> bool:
    """The service's "DSC instance does not exist" answer (401 ``dsc.10000009``)."""
    return status == 401 and (code or "").strip().lower() == _DSC_NOT_ENABLED


def _project_advice(status: int | None, gw: str | None) -> str:
    if gw in _PROJECT_ADVICE:
        return _PROJECT_ADVICE[gw]
    if status == 404:
        return "the project does not exist in this region: check project_id and region"
    if status == 401:
        return (
            "DSC is not enabled (or not bought) in this project and region: enable it in the "
            "console, or remove the project's rows; the other projects go on"
        )
    if status == 403:
        return _PROJECT_ADVICE["0302"]
    return _ADVICE[Verdict.PROJECT_PERMANENT]


def _advice(verdict: Verdict, status: int | None, gw: str | None) -> str:
    if verdict is Verdict.RUN_FATAL:
        return _fatal_advice(status, gw)
    if verdict is Verdict.PROJECT_PERMANENT:
        return _project_advice(status, gw)
    return _ADVICE[verdict]


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


def uses_attempt(verdict: Verdict, *, reached: bool) -> bool:
    """Whether a failure counts toward the attempts of a retry budget.

    Not when it was throttled, nor when it never reached the service (refused or dropped
    while connecting: a restart, a network outage): nothing happened there, so such failures
    are bounded by the time budget alone and a run rides through a short outage.
    """
    return reached and verdict is not Verdict.THROTTLED


def error_for(
    verdict: Verdict,
    *,
    status: int | None = None,
    code: str | None = None,
    detail: str | None = None,
    request_id: str | None = None,
    task: str | None = None,
    retry_after: float | None = None,
    reached: bool | None = None,
) -> DscError:
    """The exception for a non-success verdict; its message says what happened and what to do.

    ``detail`` is the service's ``error_msg`` or a short description of a network failure;
    never pass anything that could hold a secret.  ``reached`` says whether the request got
    to the service; when not given, an HTTP answer did, and a transient failure without one
    did not (the failures ``classify_exception`` calls transient are those while connecting).
    """
    if verdict.ok:
        raise ValueError(f"verdict {verdict} is a success, not an error")
    what = " ".join(p for p in (f"HTTP {status}" if status else None, code) if p)
    parts = [p for p in (what, _one_line(detail) if detail else None) if p]
    head = ": ".join(parts) if parts else "no answer"
    rid = f" (request id {request_id})" if request_id else ""
    prefix = f"task '{task}': " if task else ""
    what = f"{prefix}{head}{rid}"
    message = f"{what}; {_advice(verdict, status, gateway_code(code))}"
    if reached is None:
        reached = status is not None or verdict is not Verdict.TRANSIENT
    context: DscContext = {
        "status": status,
        "code": code,
        "request_id": request_id,
        "task": task,
        "retry_after": retry_after,
        "verdict": verdict,
        "uses_attempt": uses_attempt(verdict, reached=reached),
        "what": what,
    }
    if verdict is Verdict.THROTTLED:
        return ThrottledError(message, limit_per_s=parse_throttle_limit(detail), **context)
    return _CLASSES[verdict](message, **context)
