"""Remove credentials from text that comes back from the service, before it is kept or shown.

A server (or a proxy in front of it) may echo the request's ``Authorization`` header, token or
signature in an error message.  Every answer body passes through ``redact_answer`` at the wire
(``DscClient``), so no message, journal, event log or workbook can carry one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bulkscan.dsc.credentials import AkSk, Token

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from bulkscan.dsc.credentials import Credentials

__all__ = ["REDACTED", "redact_answer", "secrets_of"]

REDACTED = "[redacted]"
_SECRET_HEADERS = ("authorization", "x-auth-token", "x-security-token")
_AUTH_PARTS = re.compile(r"(?:Access|Signature)=([^,\s]+)")
_MIN_LEN = 8  # shorter values would blank out ordinary words


def secrets_of(credentials: Credentials, headers: Mapping[str, str]) -> tuple[str, ...]:
    """Every credential value and signature a request carried, longest first."""
    found: set[str] = set()
    if isinstance(credentials, Token):
        found.add(credentials.token)
    elif isinstance(credentials, AkSk):
        found.update(v for v in (credentials.access_key, credentials.secret_key) if v)
        if credentials.security_token:
            found.add(credentials.security_token)
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            found.add(value)
            found.update(_AUTH_PARTS.findall(value))
    forms = {form for value in found for form in (value, value.replace("/", "\\/"))}
    return tuple(sorted((v for v in forms if len(v) >= _MIN_LEN), key=len, reverse=True))


def redact_answer(raw: bytes, secrets: Iterable[str]) -> bytes:
    """An answer body with every secret removed (bytes that are not UTF-8 are kept as is)."""
    wanted = tuple(secrets)
    if not any(s.encode() in raw for s in wanted):
        return raw
    for secret in wanted:
        raw = raw.replace(secret.encode(), REDACTED.encode())
    return raw
