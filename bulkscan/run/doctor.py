"""A read-only preflight: can a run be trusted in each project and region it will touch?

For every (project, region), one listing through the same client and reader as a run:
credentials accepted, DSC enabled, listing works, the list shape seen, paging complete.  Then
the busiest rate the run will use.  Nothing is created.  Each check is one ``Check``; the
report is ``ok`` when every check is.  A run-fatal answer (credentials refused, clock off)
stops the checks at once: the gateway locks a key after five failed signatures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.dsc.classify import dsc_not_enabled
from bulkscan.errors import (
    DscError,
    InputError,
    ProjectPermanentError,
    RunFatalError,
    UntrustedListingError,
)
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from bulkscan.dsc.client import DscClient, Listing, RawAnswer

__all__ = [
    "CHECK_NAMES",
    "RECORD_FORMAT",
    "Check",
    "DoctorReport",
    "check_groups",
    "load_record",
    "write_record",
]

RECORD_FORMAT = "bulkscan-doctor-record"


# The checks' names: ``--json``'s keys as they are, shown translated (``_(check.name)``).
CHECK_NAMES = (
    N_("credentials"), N_("DSC"), N_("project"), N_("listing"), N_("list shape"), N_("paging"),
    N_("rate"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the preflight: what was checked where, whether it passed, what to do.
    ``name`` is one of ``CHECK_NAMES``; ``detail`` and ``fix`` are in the chosen language."""

    name: str
    ok: bool
    detail: str
    project_id: str | None = None
    region: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.project_id} / {self.region}: " if self.project_id else ""
        mark = "ok  " if self.ok else "FAIL"
        fix = f" -> {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {where}{_(self.name)}: {self.detail}{fix}"


@dataclass(frozen=True, slots=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)


async def check_groups(
    groups: Sequence[tuple[str, str]], client: DscClient, *, rate_per_s: float
) -> DoctorReport:
    """Every check for ``groups`` (project, region), then the rate; read-only."""
    checks: list[Check] = []
    for project_id, region in groups:
        found, stop = await _check_group(client, project_id, region)
        checks.extend(found)
        if stop:
            break
    checks.append(_rate_check(rate_per_s, len(groups)))
    return DoctorReport(tuple(checks))


async def _check_group(client: DscClient, project: str, region: str) -> tuple[list[Check], bool]:
    def check(name: str, ok: bool, detail: str, fix: str | None = None) -> Check:
        return Check(name, ok, detail, project, region, fix)

    try:
        listing = await client.list_all(project, region=region)
    except RunFatalError as exc:
        return [check("credentials", False, str(exc), _("fix the AK/SK, token or clock"))], True
    except ProjectPermanentError as exc:
        if dsc_not_enabled(exc.status, exc.code):
            fix = _("enable DSC in this project and region, or leave its rows out")
            return [
                check("credentials", True, _("accepted")),
                check("DSC", False, str(exc), fix),
            ], False
        fix = _("check the project id and region")
        return [check("project", False, str(exc), fix)], False
    except UntrustedListingError as exc:
        fix = _("bulkscan run will not send to this project; attach the --record FILE to a report")
        return [*_reached(check), check("list shape", False, str(exc), fix)], False
    except DscError as exc:
        fix = _("check the endpoint and the network, then try again")
        return [check("listing", False, str(exc), fix)], False
    return [*_reached(check), *_listing_checks(check, listing)], False


def _reached(check: _Make) -> list[Check]:
    return [check("credentials", True, _("accepted")), check("DSC", True, _("enabled"))]


def _listing_checks(check: _Make, listing: Listing) -> list[Check]:
    shape = listing.shape
    return [
        check(
            "listing",
            True,
            _("{listed} task(s), total_num {total}").format(
                listed=shape.listed, total=shape.total_num
            ),
        ),
        check("list shape", True, shape.describe()),
        check("paging", True, _("complete ({paging})").format(paging=shape.paging)),
    ]


def _rate_check(rate_per_s: float, groups: int) -> Check:
    per_minute = rate_per_s * 60
    detail = _(
        "at most {rate} request(s)/s ({per_minute}/min) shared by {groups} project/region "
        "pair(s); DSC publishes no limit, and a throttled run slows down by itself"
    ).format(rate=f"{rate_per_s:g}", per_minute=f"{per_minute:g}", groups=groups)
    return Check("rate", True, detail)


def write_record(path: str | os.PathLike[str], answers: Sequence[RawAnswer]) -> None:
    """Save the raw answers (no request header, no credential header) as JSON."""
    document = {
        "format": RECORD_FORMAT,
        "version": 1,
        "answers": [answer.to_json() for answer in answers],
    }
    try:
        Path(path).write_text(json.dumps(document, ensure_ascii=False, indent=1), "utf-8")
    except OSError as exc:
        raise InputError(f"cannot be written ({exc.strerror})", file=str(path)) from None


def load_record(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The answers of a ``--record`` file, in the order they came."""
    try:
        document = json.loads(Path(path).read_text("utf-8"))
        if document.get("format") != RECORD_FORMAT:
            raise ValueError("not a bulkscan doctor record")
        answers: list[dict[str, Any]] = list(document["answers"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot be read as a doctor record ({exc})", file=str(path)) from None
    return answers


if TYPE_CHECKING:
    from typing import Protocol

    class _Make(Protocol):
        def __call__(self, name: str, ok: bool, detail: str, fix: str | None = None) -> Check: ...
