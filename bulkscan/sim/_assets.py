"""The simulator's asset centre: database instances and their authorisation.

Serves ``ListDatabaseInstances`` (``count`` + ``instance_list[]``) and ``ListAuthorizeDatabase``
(``total`` + ``databases[]``, ``limit``/``offset``) from a seeded inventory: a JSON file
(``--assets FILE``) or ``generate_assets``.  Instances may be active or stopped, authorised or
not (with ``authorize_fail_reason``), and of types metadata tasks cannot carry.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bulkscan.errors import InputError
from bulkscan.sim._api import BadRequest

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

__all__ = [
    "ASSETS_PATH",
    "ASSET_FAULTS",
    "INSTANCE_TYPES",
    "AssetListingFault",
    "AssetInstance",
    "AssetRoute",
    "Assets",
    "faulty_answer",
    "generate_assets",
    "load_assets",
]

ASSETS_PATH = re.compile(r"^/v1/([^/]+)/asset-center/database/(instances|authorized-databases)$")
#: instance_type values of ListDatabaseInstances, and the db_type the asset centre gives each
INSTANCE_TYPES: dict[str, tuple[str, ...]] = {
    "RDS": ("Mysql", "PostgreSQL", "SQLServer"),
    "GaussDB": ("GaussDB",),
    "GaussDB(for MySQL)": ("Mysql",),
    "DDS": ("MongoDB",),
}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_DIGITS = re.compile(r"^\d{1,9}$")


@dataclass(frozen=True, slots=True)
class AssetRoute:
    """A ``GET`` of one asset-centre listing: ``listing`` is instances or authorized-databases.

    A read (``writes`` False), so faults that only make sense after a write pass it by."""

    project: str
    listing: str
    kind: str = "assets"
    writes: bool = False

    @classmethod
    def match(cls, method: str, path: str) -> AssetRoute | None:
        found = ASSETS_PATH.match(path)
        if found is None or method != "GET":
            return None
        return cls(found.group(1), found.group(2))


#: switchable ways the asset listings fail while the task routes answer normally: a 403 (the
#: credentials may not read the asset centre), a 500 on every try, or a 200 in a shape the
#: documentation does not describe
ASSET_FAULTS = ("forbidden", "broken", "undocumented", "low-count")


class AssetListingFault(Exception):
    """An asset listing answered with an error instead of its items (see ``ASSET_FAULTS``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def faulty_answer(fault: str) -> dict[str, Any]:
    """The answer of an asset listing switched to ``fault`` (raises for an error answer)."""
    if fault == "forbidden":
        raise AssetListingFault(403, "dsc.40300004", "no permission to read the asset centre")
    if fault == "broken":
        raise AssetListingFault(500, "dsc.50000001", "the asset service is unavailable")
    return {"total_count": 0, "items": []}  # undocumented: neither instance_list nor databases


class AssetQueryError(BadRequest):
    """A listing query out of range; ``str()`` names the parameter."""


@dataclass(frozen=True, slots=True)
class AssetInstance:
    """One database instance the asset centre knows, and DSC's authorisation of it."""

    project_id: str
    ins_id: str
    ins_name: str
    ins_type: str = "RDS"
    db_type: str = "Mysql"
    ins_status: str = "ACTIVE"
    authorized: bool = True
    authorize_fail_reason: str = ""

    def listed(self, row_id: int) -> dict[str, Any]:
        """The ``instance_list[]`` item."""
        return {
            "id": str(row_id),
            "ins_id": self.ins_id,
            "ins_name": self.ins_name,
            "ins_status": self.ins_status,
            "ins_type": self.ins_type,
            "db_type": self.db_type,
            "version": "8.0",
            "address": f"192.168.{row_id // 250 % 250}.{row_id % 250 + 1}",
            "port": "3306",
            "project_id": self.project_id,
            "vpc_id": "vpc-simulated",
            "create_time": 1_700_000_000_000 + row_id,
        }

    def authorisation(self) -> dict[str, Any]:
        """The ``databases[]`` item (one database per instance)."""
        return {
            "ins_id": self.ins_id,
            "ins_name": self.ins_name,
            "db_type": self.db_type,
            "db_name": f"{self.ins_name}_db",
            "authorized": self.authorized,
            "db_authorized": self.authorized,
            "auth_type": "PASSWORD",
            "authorize_fail_reason": "" if self.authorized else self.authorize_fail_reason,
        }


class Assets:
    """The asset centre's instances; ``knows`` tells a create whether an ins_id exists."""

    def __init__(self, instances: Iterable[AssetInstance]) -> None:
        self._all = tuple(instances)
        self._ids = {(a.project_id, a.ins_id) for a in self._all}

    def __len__(self) -> int:
        return len(self._all)

    def knows(self, project_id: str, ins_id: str) -> bool:
        return (project_id, ins_id) in self._ids

    def answer(
        self, project_id: str, kind: str, query: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        """The answer to one listing (``kind``: instances or authorized-databases)."""
        last = dict(query)
        wanted = last.get("instance_type", "").strip()
        if not wanted:
            raise AssetQueryError("Invalid parameter 'instance_type': is required")
        offset = _int(last, "offset", 0, 10**9, 0)
        limit = _int(last, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
        found = [
            (n, a)
            for n, a in enumerate(self._all, 1)
            if a.project_id == project_id and a.ins_type == wanted
        ]
        page = found[offset : offset + limit]
        if kind == "instances":
            return {"count": len(found), "instance_list": [a.listed(n) for n, a in page]}
        return {"total": len(found), "databases": [a.authorisation() for _, a in page]}


def _int(values: dict[str, str], key: str, low: int, high: int, default: int) -> int:
    text = values.get(key, "").strip()
    if not text:
        return default
    if not _DIGITS.match(text) or not low <= int(text) <= high:
        raise AssetQueryError(f"Invalid parameter '{key}': must be between {low} and {high}")
    return int(text)


_FIELDS = frozenset(AssetInstance.__dataclass_fields__)


def load_assets(path: Path) -> Assets:
    """Read ``{"instances": [{project_id, ins_id, ins_name, ...}, ...]}``."""
    try:
        data = json.loads(path.read_text("utf-8"))
        items = data["instances"]
        instances = [
            AssetInstance(**{k: v for k, v in item.items() if k in _FIELDS}) for item in items
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"cannot be read as simulator assets ({str(exc)[:120]}); expected "
            '{"instances": [{"project_id": ..., "ins_id": ..., "ins_name": ...}]}',
            file=str(path),
        ) from None
    return Assets(instances)


def generate_assets(projects: Sequence[str], per_project: int, *, seed: int = 0) -> Assets:
    """A seeded inventory: mostly active and authorised instances, with a few of each kind
    of trouble (stopped, not authorised, a type metadata tasks cannot carry)."""
    rng = random.Random(seed)
    instances = []
    for p, project in enumerate(projects):
        for n in range(per_project):
            instances.append(_generated(rng, project, p, n))
    return Assets(instances)


def _generated(rng: random.Random, project: str, p: int, n: int) -> AssetInstance:
    ins_type = rng.choice(("RDS", "RDS", "RDS", "GaussDB", "GaussDB(for MySQL)", "DDS"))
    draw = rng.random()
    return AssetInstance(
        project_id=project,
        ins_id=f"{rng.getrandbits(128):032x}in01",
        ins_name=f"db-{p:02d}-{n:05d}",
        ins_type=ins_type,
        db_type=rng.choice(INSTANCE_TYPES[ins_type]),
        ins_status="STOPPED" if draw < 0.03 else "ACTIVE",
        authorized=not 0.03 <= draw < 0.06,
        authorize_fail_reason="connection refused" if 0.03 <= draw < 0.06 else "",
    )
