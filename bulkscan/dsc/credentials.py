"""Credentials for DSC: an AK/SK pair (optionally temporary) or an IAM token.

Resolution order: explicit arguments, then the official SDK's environment variables, then an
IAM token from ``BULKSCAN_AUTH_TOKEN`` or a token file.  A token is never taken from a
command-line value, which other users can read in ``ps``.  Neither repr() nor any message
ever shows a secret key or a token; an access key is shown masked.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bulkscan.errors import CredentialsError, UsageError
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ENV_AK",
    "ENV_PROJECT_ID",
    "ENV_SECURITY_TOKEN",
    "ENV_SK",
    "ENV_TOKEN",
    "AkSk",
    "Credentials",
    "Token",
    "auth_method",
    "credential_identity",
    "default_project_id",
    "mask",
    "resolve_credentials",
]

ENV_AK = "HUAWEICLOUD_SDK_AK"
ENV_SK = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
ENV_PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"
ENV_TOKEN = "BULKSCAN_AUTH_TOKEN"  # noqa: S105 - a variable name

MAX_TOKEN_FILE_BYTES = 1024 * 1024  # IAM tokens are a few KiB; anything larger is not one
_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
_HOW_TO = N_(
    "set {ak} and {sk} (plus {security_token} for temporary keys), "
    "or put an IAM token in {token} or in a token file"
)


def _how_to() -> str:
    return _(_HOW_TO).format(
        ak=ENV_AK, sk=ENV_SK, security_token=ENV_SECURITY_TOKEN, token=ENV_TOKEN
    )


def mask(access_key: str) -> str:
    """``'AKEXAMPLE1234890A'`` → ``'AKEX…890A'``; short keys are hidden entirely."""
    if len(access_key) < 12:
        return "…" if access_key else ""
    return f"{access_key[:4]}…{access_key[-4:]}"


@dataclass(frozen=True, slots=True)
class AkSk:
    """An access key pair; ``security_token`` is set for temporary credentials."""

    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        kind = ", temporary" if self.security_token else ""
        return f"AkSk(access_key='{mask(self.access_key)}'{kind})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Token:
    """An IAM token, sent as ``X-Auth-Token``."""

    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Token(<{len(self.token)} characters>)"

    __str__ = __repr__


Credentials = AkSk | Token


def _clean(value: str | None) -> str | None:
    """Strip a value; blank counts as absent."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _pair(ak: str | None, sk: str | None, token: str | None, where: str) -> AkSk | None:
    if ak is None and sk is None:
        if token is not None:
            raise CredentialsError(
                _(
                    "a security token was given {where} without an access key and secret key: {how}"
                ).format(where=_(where), how=_how_to())
            )
        return None
    if ak is None:
        raise CredentialsError(
            _("a secret key was given {where} without its access key: {how}").format(
                where=_(where), how=_how_to()
            )
        )
    if sk is None:
        raise CredentialsError(
            _("access key {ak} was given {where} without its secret key: {how}").format(
                ak=mask(ak), where=_(where), how=_how_to()
            )
        )
    return AkSk(ak, sk, token)


def _read_token_file(path: str) -> Token:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_TOKEN_FILE_BYTES:
            raise CredentialsError(
                _("token file {path} is {size} bytes: not an IAM token").format(
                    path=path, size=size
                )
            )
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise CredentialsError(
            _("token file {path} does not exist: check the path").format(path=path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else _("not UTF-8 text")
        raise CredentialsError(
            _("token file {path} cannot be read ({reason})").format(path=path, reason=reason)
        ) from None
    token = text.strip()
    if not token:
        raise CredentialsError(
            _("token file {path} is empty: write the IAM token into it").format(path=path)
        )
    return Token(token)


def resolve_credentials(
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    security_token: str | None = None,
    token_file: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Credentials:
    """The credentials to use, in order: arguments, SDK env vars, token env var or file."""
    ak, sk, st = _clean(access_key), _clean(secret_key), _clean(security_token)
    explicit = _pair(ak, sk, st, N_("explicitly"))
    if explicit is not None and token_file is not None:
        raise CredentialsError(_("give either an access key pair or a token file, not both"))
    if explicit is not None:
        return explicit
    if token_file is not None:
        return _read_token_file(token_file)
    from_env = _pair(
        _clean(env.get(ENV_AK)),
        _clean(env.get(ENV_SK)),
        _clean(env.get(ENV_SECURITY_TOKEN)),
        N_("in the environment"),
    )
    if from_env is not None:
        return from_env
    token = _clean(env.get(ENV_TOKEN))
    if token is not None:
        return Token(token)
    raise CredentialsError(_("no DSC credentials found: {how}").format(how=_how_to()))


def default_project_id(env: Mapping[str, str] = os.environ) -> str | None:
    """The project id from ``HUAWEICLOUD_SDK_PROJECT_ID``, or None when unset."""
    value = _clean(env.get(ENV_PROJECT_ID))
    if value is not None and not _PROJECT_ID.match(value):
        raise UsageError(
            _("{variable} '{value}' is not 32 lowercase hex characters").format(
                variable=ENV_PROJECT_ID, value=value
            )
        )
    return value


def auth_method(creds: Credentials) -> str:
    """How requests are authenticated, for reports: never the secret itself."""
    if isinstance(creds, Token):
        return "IAM token"
    return "temporary AK/SK" if creds.security_token else "AK/SK"


def credential_identity(creds: Credentials) -> str:
    """A one-way hash of who sends (the access key, or the token): never the value itself.

    Temporary AK/SK of one account share their access key's hash; a token is its own identity.
    """
    value = creds.token if isinstance(creds, Token) else creds.access_key
    kind = "token" if isinstance(creds, Token) else "ak"
    return kind + ":" + hashlib.sha256(value.encode()).hexdigest()[:32]
