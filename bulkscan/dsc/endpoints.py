"""Where each region's DSC lives, and the TLS trust to reach it.

Apart from the client so that what only names an endpoint (the runner's ``Connection``, the
settings sheet of a workbook, option parsing) does not load the HTTP client.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bulkscan.errors import UsageError
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_HOST", "Endpoints", "make_ssl_context"]

DEFAULT_HOST = "https://sdg.{region}.myhuaweicloud.com"
_NOT_A_REGION = N_("region '{region}' is not a region name like cn-north-4")
_REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")


def _check_url(url: str, what: str) -> str:
    """The URL without a trailing slash; ``UsageError`` (never showing a password) if unusable."""
    shown = re.sub(r"//[^/@]*@", "//***@", url.strip())
    try:
        parts = urlsplit(url.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:  # an unclosed IPv6 bracket, a port that is not a number
        raise UsageError(
            _("{what} '{url}' is not a valid URL ({error})").format(what=what, url=shown, error=exc)
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise UsageError(
            _(
                "{what} '{url}' is not an http(s) URL "
                "(e.g. https://sdg.cn-north-4.myhuaweicloud.com)"
            ).format(what=what, url=shown)
        )
    if "@" in parts.netloc:
        raise UsageError(
            _(
                "{what} '{url}' must not hold a user name or password: DSC credentials come "
                "from the environment or a token file, never from the URL"
            ).format(what=what, url=shown)
        )
    if parts.query or parts.fragment:
        raise UsageError(
            _("{what} '{url}' must not have a query or fragment").format(what=what, url=shown)
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True, init=False)
class Endpoints:
    """Where each region's DSC lives: ``override`` for all, then ``per_region``, then default."""

    override: str | None
    per_region: Mapping[str, str]

    def __init__(
        self, override: str | None = None, per_region: Mapping[str, str] | None = None
    ) -> None:
        fixed = _check_url(override, _("endpoint")) if override else None
        table = {
            region: _check_url(url, _("endpoint for region '{region}'").format(region=region))
            for region, url in (per_region or {}).items()
        }
        object.__setattr__(self, "override", fixed)
        object.__setattr__(self, "per_region", MappingProxyType(table))

    def url_for(self, region: str) -> str:
        """The base URL (no trailing slash) for ``region``."""
        if self.override:  # "{region}" in it stands for the region (one proxy for all)
            if "{region}" not in self.override:
                return self.override
            if not _REGION.match(region):
                raise UsageError(_(_NOT_A_REGION).format(region=region))
            return self.override.replace("{region}", region)
        if region in self.per_region:
            return self.per_region[region]
        if not _REGION.match(region):
            raise UsageError(_(_NOT_A_REGION).format(region=region))
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
            raise UsageError(
                _("--ca-bundle {path} does not exist").format(path=ca_bundle)
            ) from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UsageError(
                _("--ca-bundle {path} is not a PEM CA bundle ({error})").format(
                    path=ca_bundle, error=exc
                )
            ) from None
    return context
