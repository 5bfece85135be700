"""SDK-HMAC-SHA256 request signing, as Huawei Cloud's API gateway (APIG) checks it.

The same functions sign requests in the client and verify them in the simulator, and they
reproduce the official SDK signer's test vectors byte for byte (tests/signing_vectors.json).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "canonical_query",
    "canonical_request",
    "format_sdk_date",
    "parse_authorization",
    "Signer",
    "sign_headers",
    "signature",
    "string_to_sign",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_UNRESERVED = "-_.~"


def _encode(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def format_sdk_date(when: dt.datetime) -> str:
    """The ``X-Sdk-Date`` form of a moment: ``20240102T030405Z`` (UTC)."""
    return when.astimezone(dt.UTC).strftime(DATE_FORMAT)


def canonical_path(path: str) -> str:
    """Each segment percent-encoded; a trailing ``/`` added for signing only."""
    encoded = "/".join(_encode(segment) for segment in path.split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sorted by key then value, percent-encoded with space as ``%20``."""
    pairs = sorted((_encode(k), _encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _signable(headers: Mapping[str, str]) -> dict[str, str]:
    # The official SDK leaves header names containing '_' out of the signature.
    return {k.lower(): v.strip() for k, v in headers.items() if "_" not in k}


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[str, str]:
    """The canonical request text and the ``;``-joined names of the signed headers."""
    signable = _signable(headers)
    names = sorted(signable)
    lines = [
        method.upper(),
        canonical_path(path),
        canonical_query(query),
        "".join(f"{name}:{signable[name]}\n" for name in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ]
    return "\n".join(lines), ";".join(names)


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), "sha256").hexdigest()


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    project_id: str | None = None,
    security_token: str | None = None,
    now: dt.datetime | None = None,
    query: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """Return ``headers`` plus X-Sdk-Date, Host, X-Project-Id, X-Security-Token, Authorization.

    ``url`` is the URL without its query; ``query`` the (key, value) pairs that will be sent.
    """
    parts = urlsplit(url)
    out = dict(headers)
    lowered = {k.lower() for k in out}
    if "x-sdk-date" not in lowered:
        out["X-Sdk-Date"] = format_sdk_date(now or dt.datetime.now(dt.UTC))
    if project_id is not None and "x-project-id" not in lowered:
        out["X-Project-Id"] = project_id
    if security_token is not None:
        out["X-Security-Token"] = security_token
    if "host" not in lowered:
        out["Host"] = parts.netloc
    sdk_date = next(v for k, v in out.items() if k.lower() == "x-sdk-date")
    canonical, signed = canonical_request(method, parts.path or "/", query, out, body)
    sig = signature(secret_key, string_to_sign(canonical, sdk_date))
    out["Authorization"] = (
        f"{ALGORITHM} Access={access_key}, SignedHeaders={signed}, Signature={sig}"
    )
    return out


class Signer:
    """``sign_headers`` for one method, URL, query and set of headers, with every part that
    does not change between requests worked out once: each call then hashes the body and
    signs, nothing more.  The result is exactly ``sign_headers``' (tests compare the two).

    ``headers`` must not hold ``X-Sdk-Date``: each call gives the date.
    """

    __slots__ = ("_head", "_headers", "_prefix", "_secret", "_tail")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        access_key: str,
        secret_key: str,
        project_id: str | None = None,
        security_token: str | None = None,
        query: Iterable[tuple[str, str]] = (),
    ) -> None:
        if any(k.lower() == "x-sdk-date" for k in headers):
            raise ValueError("a Signer's headers must not hold X-Sdk-Date: each call gives it")
        template = sign_headers(
            method,
            url,
            headers,
            b"",
            access_key=access_key,
            secret_key=secret_key,
            project_id=project_id,
            security_token=security_token,
            now=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            query=query,
        )
        del template["Authorization"]
        signable = _signable(template)
        names = sorted(signable)
        before = [n for n in names if n < "x-sdk-date"]
        after = [n for n in names if n > "x-sdk-date"]
        signed = ";".join(names)
        parts = urlsplit(url)
        self._prefix = "\n".join(
            [method.upper(), canonical_path(parts.path or "/"), canonical_query(query), ""]
        ) + "".join(f"{n}:{signable[n]}\n" for n in before)
        self._tail = "".join(f"{n}:{signable[n]}\n" for n in after) + f"\n{signed}\n"
        self._headers = template
        self._secret = secret_key.encode("utf-8")
        self._head = f"{ALGORITHM} Access={access_key}, SignedHeaders={signed}, Signature="

    def sign(self, body: bytes, sdk_date: str) -> dict[str, str]:
        """The headers to send with ``body`` at ``sdk_date`` (``format_sdk_date``)."""
        canonical = (
            f"{self._prefix}x-sdk-date:{sdk_date}\n{self._tail}{hashlib.sha256(body).hexdigest()}"
        )
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
        sig = hmac.new(self._secret, to_sign.encode("utf-8"), "sha256").hexdigest()
        out = dict(self._headers)
        out["X-Sdk-Date"] = sdk_date
        out["Authorization"] = self._head + sig
        return out


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """``(access_key, signed_header_names, signature)`` from an Authorization header, or None."""
    if not value.startswith(ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1 :].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        return None
