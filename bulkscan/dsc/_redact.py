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

__all__ = ["REDACTED", "Redactor", "redact_answer", "secrets_of"]

REDACTED = "[redacted]"
_SECRET_HEADERS = ("authorization", "x-auth-token", "x-security-token")
_AUTH_PARTS = re.compile(r"(?:Access|Signature)=([^,\s]+)")
_MIN_LEN = 8  # shorter values would blank out ordinary words


def secrets_of(credentials: Credentials, headers: Mapping[str, str]) -> tuple[str, ...]:
    """Every credential value and signature a request carried, longest first."""
    forms = _forms(_credential_values(credentials) | _header_values(headers))
    return tuple(sorted(forms, key=len, reverse=True))


def _credential_values(credentials: Credentials) -> set[str]:
    found: set[str] = set()
    if isinstance(credentials, Token):
        found.add(credentials.token)
    elif isinstance(credentials, AkSk):
        found.update(v for v in (credentials.access_key, credentials.secret_key) if v)
        if credentials.security_token:
            found.add(credentials.security_token)
    return found


def _header_values(headers: Mapping[str, str]) -> set[str]:
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            found.add(value)
            found.update(_AUTH_PARTS.findall(value))
    return found


def _forms(values: Iterable[str]) -> set[str]:
    """Each value as sent and JSON-escaped, less those too short to be told from words."""
    forms = {form for value in values for form in (value, value.replace("/", "\\/"))}
    return {form for form in forms if len(form) >= _MIN_LEN}


class Redactor:
    """``redact_answer(raw, secrets_of(credentials, headers))`` for one set of credentials,
    with their part worked out once: an answer that holds no secret (nearly all) costs a few
    byte searches, one that does is cleaned exactly as ``redact_answer`` cleans it."""

    __slots__ = ("_credentials", "_fixed")

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._fixed = tuple(form.encode() for form in _forms(_credential_values(credentials)))

    def answer(self, raw: bytes, headers: Mapping[str, str]) -> bytes:
        """``raw`` less every secret of the credentials and of the request's ``headers``."""
        if any(form in raw for form in self._fixed) or self._echoes(raw, headers):
            return redact_answer(raw, secrets_of(self._credentials, headers))
        return raw

    def _echoes(self, raw: bytes, headers: Mapping[str, str]) -> bool:
        """Whether ``raw`` may hold a secret header's value or part (``_header_values``), by
        the fewest searches: an echo of a signed ``Authorization`` holds its signature, and
        its access key is a credential, searched for already."""
        for name, value in headers.items():
            if not _is_secret_header(name):
                continue
            signature = value.rpartition("Signature=")[2].split(",")[0].strip()
            access = value.partition("Access=")[2].split(",")[0].strip()
            if (
                "Signature=" in value
                and len(signature) >= _MIN_LEN
                and (len(access) < _MIN_LEN or access.encode() in self._fixed)
            ):
                if signature.encode() in raw:
                    return True
            elif any(form.encode() in raw for form in _forms(_header_values({name: value}))):
                return True
        return False


_SECRET_NAMES: dict[str, bool] = {}  # a header name as written -> whether it carries a secret


def _is_secret_header(name: str) -> bool:
    secret = _SECRET_NAMES.get(name)
    if secret is None:
        secret = name.lower() in _SECRET_HEADERS
        if len(_SECRET_NAMES) < 256:  # the names a client writes are few
            _SECRET_NAMES[name] = secret
    return secret


def redact_answer(raw: bytes, secrets: Iterable[str]) -> bytes:
    """An answer body with every secret removed (bytes that are not UTF-8 are kept as is)."""
    wanted = tuple(secrets)
    if not any(s.encode() in raw for s in wanted):
        return raw
    for secret in wanted:
        raw = raw.replace(secret.encode(), REDACTED.encode())
    return raw
