"""The aiohttp client for DSC's metadata task API: create a task, list tasks.

The session is created and closed by its owner and passed in.  Every HTTP attempt is
classified by ``bulkscan.dsc.classify`` (the one place that decides retryability) and reported
to an optional ``on_attempt`` callback; anything but 200/201 raises the matching ``DscError``.
Requests are signed with SDK-HMAC-SHA256 over the exact bytes sent, or carry an IAM token.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Never
from urllib.parse import urlsplit

import aiohttp
import yarl

from bulkscan import __version__
from bulkscan.dsc.classify import (
    Verdict,
    classify_exception,
    classify_response,
    error_for,
    failed_while_connecting,
)
from bulkscan.dsc.credentials import AkSk, Credentials, Token
from bulkscan.dsc.signing import canonical_query, sign_headers
from bulkscan.errors import AmbiguousError, ProjectPermanentError, RunFatalError, UsageError
from bulkscan.models import DataSource

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

__all__ = [
    "CREATE_PATH",
    "DEFAULT_HOST",
    "MAX_ANSWER_BYTES",
    "Attempt",
    "CreateResult",
    "DscClient",
    "Endpoints",
    "RemoteTask",
    "make_ssl_context",
    "parse_remote_sources",
    "parse_remote_task",
]

CREATE_PATH = "/v1/{project_id}/metadata/task-templates"  # create (POST) and list (GET)
DEFAULT_HOST = "https://sdg.{region}.myhuaweicloud.com"
MAX_ANSWER_BYTES = 32 * 1024 * 1024  # no DSC answer is near this; a larger one is not DSC
MAX_PAGES = 10_000
_REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
_PROJECT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON = "application/json;charset=UTF-8"


# --- endpoints and TLS -----------------------------------------------------------------------


def _check_url(url: str, what: str) -> str:
    """The URL without a trailing slash; ``UsageError`` (never showing a password) if unusable."""
    shown = re.sub(r"//[^/@]*@", "//***@", url.strip())
    try:
        parts = urlsplit(url.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is not a number
        raise UsageError(f"{what} '{shown}' is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise UsageError(
            f"{what} '{shown}' is not an http(s) URL "
            "(e.g. https://sdg.cn-north-4.myhuaweicloud.com)"
        )
    if "@" in parts.netloc:
        raise UsageError(
            f"{what} '{shown}' must not hold a user name or password: DSC credentials come "
            "from the environment or a token file, never from the URL"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{what} '{shown}' must not have a query or fragment")
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True, init=False)
class Endpoints:
    """Where each region's DSC lives: ``override`` for all, then ``per_region``, then default."""

    override: str | None
    per_region: Mapping[str, str]

    def __init__(
        self, override: str | None = None, per_region: Mapping[str, str] | None = None
    ) -> None:
        fixed = _check_url(override, "endpoint") if override else None
        table = {
            region: _check_url(url, f"endpoint for region '{region}'")
            for region, url in (per_region or {}).items()
        }
        object.__setattr__(self, "override", fixed)
        object.__setattr__(self, "per_region", MappingProxyType(table))

    def url_for(self, region: str) -> str:
        """The base URL (no trailing slash) for ``region``."""
        if self.override:
            return self.override
        if region in self.per_region:
            return self.per_region[region]
        if not _REGION.match(region):
            raise UsageError(f"region '{region}' is not a region name like cn-north-4")
        return DEFAULT_HOST.format(region=region)


def make_ssl_context(*, ca_bundle: str | None = None, verify: bool = True) -> ssl.SSLContext | bool:
    """The default trust store plus ``ca_bundle``; ``False`` when verification is turned off."""
    if not verify:
        return False
    context = ssl.create_default_context()
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except FileNotFoundError:
            raise UsageError(f"--ca-bundle {ca_bundle} does not exist") from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UsageError(f"--ca-bundle {ca_bundle} is not a PEM CA bundle ({exc})") from None
    return context


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt, for the journal: never headers, signatures or bodies."""

    method: str
    path: str
    status: int | None
    code: str | None
    request_id: str | None
    latency_s: float
    verdict: Verdict
    detail: str | None = None  # the service's error_msg, or the network failure's kind


@dataclass(frozen=True, slots=True)
class CreateResult:
    """A successful create (200) or an accepted one (201)."""

    task_id: str | None
    msg: str | None
    status: str | None
    http_status: int
    request_id: str | None
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """A task as the list API describes it (ids compared as strings)."""

    id: str
    name: str
    data_sources: tuple[DataSource, ...]
    schedule_type: str | None = None
    schedule_switch: bool | None = None
    last_trigger_time: int | None = None
    last_end_time: int | None = None
    create_user: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


# --- tolerant parsing of the list answer -------------------------------------------------------


def _str_or_none(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text else None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _bool_or_none(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _source_from_dict(item: Mapping[str, Any]) -> DataSource | None:
    db_type = item.get("db_type", item.get("type", item.get("dbType")))
    ins_id = item.get("ins_id", item.get("instance_id", item.get("insId")))
    ins = _str_or_none(ins_id)
    return DataSource(_str_or_none(db_type) or "", ins) if ins else None


def _source_from_str(text: str) -> DataSource | None:
    text = text.strip()
    if text.startswith("{"):
        try:
            item = json.loads(text)
        except ValueError:
            return None
        return _source_from_dict(item) if isinstance(item, dict) else None
    db_type, sep, ins_id = text.partition(":")
    if sep and ins_id.strip():
        return DataSource(db_type.strip(), ins_id.strip())
    return DataSource("", text) if text else None


def parse_remote_sources(value: object) -> tuple[DataSource, ...]:
    """The data sources of a listed task, whatever their shape.

    The list API documents ``data_source`` only as "array of strings"; the format is not
    published.  Accepted: ``'MySQL:ins-1'``, a bare ``'ins-1'`` (db_type ``''``), a JSON object
    string, or ``{db_type, ins_id}`` objects.  Anything else is skipped.
    """
    items = value if isinstance(value, list) else [value] if value is not None else []
    found: list[DataSource] = []
    for item in items:
        if isinstance(item, dict):
            source = _source_from_dict(item)
        elif isinstance(item, str):
            source = _source_from_str(item)
        else:
            source = None
        if source is not None:
            found.append(source)
    return tuple(found)


def parse_remote_task(item: Mapping[str, Any]) -> RemoteTask | None:
    """A ``TaskDetail`` object as a ``RemoteTask``; None when it has no id."""
    task_id = _str_or_none(item.get("id"))
    if task_id is None:
        return None
    sources = item.get("data_sources", item.get("data_source"))
    return RemoteTask(
        id=task_id,
        name=_str_or_none(item.get("task_name", item.get("name"))) or "",
        data_sources=parse_remote_sources(sources),
        schedule_type=_str_or_none(item.get("schedule_type")),
        schedule_switch=_bool_or_none(item.get("schedule_switch")),
        last_trigger_time=_int_or_none(item.get("last_trigger_time")),
        last_end_time=_int_or_none(item.get("last_end_time")),
        create_user=_str_or_none(item.get("create_user")),
        raw=MappingProxyType(dict(item)),
    )


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    payload: dict[str, Any] | None
    request_id: str | None
    code: str | None
    message: str | None
    retry_after: float | None


def _project_path(project_id: str, region: str) -> str:
    if not _PROJECT.match(project_id):
        raise ProjectPermanentError(
            f"project id '{project_id[:80]}' in region {region} is not a valid project id: "
            "use the 32-character id shown in the console under My Credentials"
        )
    return CREATE_PATH.format(project_id=project_id)


def _page_query(offset: int, page_size: int) -> list[tuple[str, str]]:
    """The paging parameters of the list API (the only place that knows them).

    Only ``page_size`` is documented; ``offset``/``limit`` are sent too and the caller never
    trusts them blindly (see ``DscClient.list_tasks``).
    """
    return [("page_size", str(page_size)), ("limit", str(page_size)), ("offset", str(offset))]


def _error_fields(payload: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    if not payload:
        return None, None
    inner = payload.get("error")
    source = inner if isinstance(inner, dict) else payload
    code = source.get("error_code", source.get("code"))
    msg = source.get("error_msg", source.get("message", source.get("msg")))
    return _str_or_none(code), _str_or_none(msg)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # the HTTP-date form is not used by the gateway
    return seconds if 0 <= seconds < 86_400 else None


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise RunFatalError(
                f"the endpoint sent more than {MAX_ANSWER_BYTES} bytes: it is not DSC; "
                "check the endpoint",
                status=response.status,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class DscClient:
    """Signed (or token-authenticated) calls to one DSC service, over a session it does not own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        *,
        endpoints: Endpoints,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        user_agent: str = f"bulkscan/{__version__}",
        clock: Callable[[], dt.datetime] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        ssl_context: ssl.SSLContext | bool = True,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._endpoints = endpoints
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._user_agent = user_agent
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._on_attempt = on_attempt
        self._ssl = ssl_context

    def __repr__(self) -> str:
        return f"DscClient({self._credentials!r})"

    # -- public calls --

    async def create_task(self, project_id: str, body: bytes, *, region: str) -> CreateResult:
        """POST one create request; ``body`` is sent exactly as given (serialised once)."""
        answer = await self._call("POST", project_id, region, [], body, idempotent=False)
        payload = answer.payload or {}
        return CreateResult(
            task_id=_str_or_none(payload.get("id")),
            msg=_str_or_none(payload.get("msg")),
            status=_str_or_none(payload.get("status")),
            http_status=answer.status,
            request_id=answer.request_id,
            verdict=classify_response(answer.status, answer.code),
        )

    async def list_tasks(
        self,
        project_id: str,
        *,
        region: str,
        task_name: str | None = None,
        page_size: int = 100,
        strict: bool = True,
        before_page: Callable[[], Awaitable[object]] | None = None,
    ) -> list[RemoteTask]:
        """Every task of the project (filtered by ``task_name``, maybe a partial match).

        ``before_page`` (e.g. a shared rate limiter's ``acquire``) is awaited before each page
        request, so that a long listing is paced like every other request.

        Follows pages until one is short, ``total_num`` is reached, or a page brings no new id
        (a service that ignores the offset).  If fewer than ``total_num`` tasks could be read,
        ``strict`` raises ``AmbiguousError`` (absence would prove nothing); otherwise the
        tasks found are returned.
        """
        if not 1 <= page_size <= 1000:
            raise UsageError(f"page size must be between 1 and 1000, not {page_size}")
        found: dict[str, RemoteTask] = {}
        total: int | None = None
        for _ in range(MAX_PAGES):
            query = _page_query(len(found), page_size)
            if task_name is not None:
                query.append(("task_name", task_name))
            if before_page is not None:
                await before_page()
            answer = await self._call("GET", project_id, region, query, b"", idempotent=True)
            items, total = _page_items(answer.payload)
            new = _add_new(found, items)
            if len(items) < page_size or not new or (total is not None and len(found) >= total):
                break
        if strict and total is not None and len(found) < total:
            raise AmbiguousError(
                f"project {project_id}: the service lists {total} task(s) but only "
                f"{len(found)} could be read (paging not honoured); narrow the search by name"
            )
        return list(found.values())

    # -- one HTTP attempt --

    async def _call(
        self,
        method: str,
        project_id: str,
        region: str,
        query: list[tuple[str, str]],
        body: bytes,
        *,
        idempotent: bool,
    ) -> _Answer:
        url = self._endpoints.url_for(region) + _project_path(project_id, region)
        path = urlsplit(url).path
        headers = self._headers(method, url, project_id, query, body)
        qs = canonical_query(query)
        target = yarl.URL(url + (f"?{qs}" if qs else ""), encoded=True)
        started = time.monotonic()
        try:
            answer = await self._exchange(method, target, headers, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._fail(method, path, started, exc, idempotent=idempotent)
        verdict = classify_response(answer.status, answer.code, idempotent=idempotent)
        self._record(method, path, started, answer, verdict)
        if not verdict.ok:
            raise error_for(
                verdict,
                status=answer.status,
                code=answer.code,
                detail=answer.message,
                request_id=answer.request_id,
                retry_after=answer.retry_after,
            )
        return answer

    def _headers(
        self,
        method: str,
        url: str,
        project_id: str,
        query: Iterable[tuple[str, str]],
        body: bytes,
    ) -> dict[str, str]:
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if body or method == "POST":
            headers["Content-Type"] = _JSON
        creds = self._credentials
        if isinstance(creds, Token):
            headers["X-Auth-Token"] = creds.token
            return headers
        assert isinstance(creds, AkSk)
        return sign_headers(
            method,
            url,
            headers,
            body,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            project_id=project_id,
            security_token=creds.security_token,
            now=self._clock(),
            query=query,
        )

    async def _exchange(
        self, method: str, target: yarl.URL, headers: dict[str, str], body: bytes
    ) -> _Answer:
        async with self._session.request(
            method,
            target,
            headers=headers,
            data=body if body else None,
            timeout=self._timeout,
            allow_redirects=False,
            ssl=self._ssl,
        ) as response:
            raw = await _read_capped(response)
            payload = _decode(raw)
            code, message = _error_fields(payload) if response.status >= 300 else (None, None)
            rid = response.headers.get("X-Request-Id") or _str_or_none(
                (payload or {}).get("request_id")
            )
            return _Answer(
                status=response.status,
                payload=payload,
                request_id=rid,
                code=code,
                message=message,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )

    def _record(
        self, method: str, path: str, started: float, answer: _Answer, verdict: Verdict
    ) -> None:
        if self._on_attempt is None:
            return
        self._on_attempt(
            Attempt(
                method=method,
                path=path,
                status=answer.status,
                code=answer.code,
                request_id=answer.request_id,
                latency_s=time.monotonic() - started,
                verdict=verdict,
                detail=answer.message,
            )
        )

    def _fail(
        self, method: str, path: str, started: float, exc: BaseException, *, idempotent: bool
    ) -> Never:
        sent = not failed_while_connecting(exc)
        verdict = classify_exception(exc, sent=sent, idempotent=idempotent)
        detail = _describe(exc, sent=sent)
        if self._on_attempt is not None:
            self._on_attempt(
                Attempt(method, path, None, None, None, time.monotonic() - started, verdict, detail)
            )
        raise error_for(verdict, detail=detail) from exc


def _describe(exc: BaseException, *, sent: bool) -> str:
    """A short, secret-free description of a network failure."""
    kind = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or "not trusted"
        return (
            f"the TLS certificate of {exc.host}:{exc.port} was refused ({reason}): if it is "
            "the right server, add its CA certificate with --ca-bundle"
        )
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientSSLError
    ):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port} ({reason})"
    when = "after sending the request" if sent else "while connecting"
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        when += (
            ": TLS failed (if the server's certificate is not trusted, add its CA with --ca-bundle)"
        )
    text = " ".join(str(exc).split())[:160]
    return f"{kind} {when}" + (f" ({text})" if text else "")


def _page_items(payload: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], int | None]:
    if not payload:
        return [], None
    result = payload.get("result", payload.get("task_templates", payload.get("tasks")))
    items = [i for i in result if isinstance(i, dict)] if isinstance(result, list) else []
    return items, _int_or_none(payload.get("total_num", payload.get("total")))


def _add_new(found: dict[str, RemoteTask], items: Iterable[Mapping[str, Any]]) -> int:
    added = 0
    for item in items:
        task = parse_remote_task(item)
        if task is not None and task.id not in found:
            found[task.id] = task
            added += 1
    return added
