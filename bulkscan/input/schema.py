"""The input format: sheet names, columns, header aliases, regions and database types.

One place that loader, validator, template writer and README agree on.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "BOOLEAN_COLUMNS",
    "EXAMPLE_INSTANCE",
    "EXAMPLE_PROFILE",
    "BOOL_FALSE",
    "BOOL_TRUE",
    "INSTANCE_COLUMNS",
    "INSTANCES_SHEET",
    "PROFILE_COLUMNS",
    "PROFILES_SHEET",
    "REGIONS",
    "SCHEDULE_TYPES",
    "Column",
    "DbType",
    "canonical_db_type",
    "db_types",
    "known_db_types",
    "normalise_header",
    "without_note",
    "unsupported_db_type",
]

INSTANCES_SHEET = "instances"
PROFILES_SHEET = "profiles"

REGIONS: tuple[str, ...] = (
    "cn-north-4", "cn-north-1", "cn-north-9", "cn-east-2", "cn-east-3", "cn-south-1",
    "cn-southwest-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "sa-brazil-1",
    "la-south-2", "la-north-2", "af-south-1", "tr-west-1", "eu-west-101",
)  # fmt: skip

SCHEDULE_TYPES: tuple[str, ...] = ("ONCE", "DAY", "WEEK", "MONTH")

BOOL_TRUE = frozenset({"true", "yes", "y", "1", "on", "t"})
BOOL_FALSE = frozenset({"false", "no", "n", "0", "off", "f"})


@dataclass(frozen=True, slots=True)
class Column:
    """A known column: its canonical name, whether it is required, aliases and help text."""

    name: str
    required: bool
    help: str
    aliases: tuple[str, ...] = ()


INSTANCE_COLUMNS: tuple[Column, ...] = (
    Column("ins_id", True, "DSC instance id of the database (text, as shown in the console).",
           ("instance_id", "instance", "ins", "id", "db_instance_id", "实例ID", "数据库实例ID")),
    Column("ins_name", False,
           "Instance name as DSC's asset centre (and the RDS console) shows it; a row with a "
           "name but no ins_id is filled in by `bulkscan resolve`.",
           ("instance_name", "name", "rds_name", "实例名称", "实例名", "数据库实例名称")),
    Column("db_type", True,
           "Database type: MySQL, TDSQL, PostgreSQL, Dameng, Kingbase, GaussDB, DWS, Hive or "
           "MRS_HIVE (any case, common spellings such as postgres or DM too).",
           ("type", "engine", "database_type", "db_engine", "dbtype", "数据库类型", "数据库引擎")),
    Column("dsc_db_type", False,
           "The db_type spelling to send to DSC for this row, when it must differ from "
           "bulkscan's (sent as written, not checked).", ("wire_db_type", "DSC数据库类型")),
    Column("project_id", False,
           "32-character lowercase hex project id; blank uses --project-id "
           "or HUAWEICLOUD_SDK_PROJECT_ID.", ("project", "projectid", "项目ID")),
    Column("region", False, "Region such as cn-north-4; blank uses --region.",
           ("region_id", "region_name", "区域", "区域ID", "地域")),
    Column("profile", False, "Name of a row of the profiles sheet; blank uses 'default'.",
           ("scan_profile", "profile_name", "扫描配置")),
    Column("task", False,
           "Explicit task name; rows with the same task go into the same task request.",
           ("task_name", "任务名称", "任务名")),
    Column("enabled", False, "FALSE/no/0 skips the row (reported as skipped); blank means yes.",
           ("enable", "active", "include", "启用", "是否启用")),
)  # fmt: skip

PROFILE_COLUMNS: tuple[Column, ...] = (
    Column("profile", True, "Profile name, unique, referred to from the instances sheet.",
           ("name", "profile_name", "扫描配置", "配置名称")),
    Column("schedule_type", False, "ONCE, DAY, WEEK or MONTH (default ONCE).",
           ("schedule", "frequency", "调度类型", "扫描周期")),
    Column("start_time", False,
           "Excel date-time, ISO-8601 text or epoch integer; blank means 0 (start now).",
           ("start", "start_at", "开始时间")),
    Column("timezone", False,
           "IANA time zone (e.g. Asia/Shanghai) of this profile's start_time when it has no "
           "offset; blank uses --timezone, else the machine's local zone.",
           ("time_zone", "tz", "时区")),
    Column("start_now", False, "Start the scan immediately (default TRUE).", ("立即扫描",)),
    Column("schedule_switch", False, "Scheduling on/off (default FALSE).",
           ("schedule_on", "定时扫描")),
    Column("delete_failed_meta", False, "Delete metadata of failed scans (default FALSE).",
           ("删除失败元数据",)),
    Column("scan_column_constraints", False, "Scan column constraints (default TRUE).",
           ("扫描列约束",)),
    Column("scan_comment", False, "Scan comments (default TRUE).", ("扫描注释",)),
    Column("scan_privileges", False, "Scan privileges (default FALSE).", ("扫描权限",)),
    Column("scan_system_db", False, "Scan system databases (default FALSE).",
           ("扫描系统库",)),
    Column("scan_tables", False, "Scan tables (default TRUE).", ("扫描表",)),
    Column("scan_views", False, "Scan views (default TRUE).", ("扫描视图",)),
    Column("task_description", False, "Task description, up to 1024 characters.",
           ("description", "任务描述")),
    Column("task_name", False,
           "Task name pattern: {profile}, {region}, {project}, {seq} (e.g. {seq:03}), "
           "{db_type}, {digest} (8 hex digits of project, region and the sorted data "
           "sources: the same databases get the same name in every wave); default "
           "bulkscan-{profile}-{region}-{digest}; at most 256 characters once filled.",
           ("name_pattern", "task", "任务名称", "任务名称模板")),
    Column("max_sources", False, "Most data sources in one task (1..500, default 50).",
           ("max_data_sources", "batch_size", "最大数据源数")),
)  # fmt: skip

#: Columns (of either sheet) that hold yes/no values.
BOOLEAN_COLUMNS = frozenset(
    {"enabled", "start_now", "schedule_switch", "delete_failed_meta"}
    | {c.name for c in PROFILE_COLUMNS if c.name.startswith("scan_")}
)

_NON_WORD = re.compile(r"[\s.\-/]+")
_CJK = "\u3400-\u9fff\uf900-\ufaff"
_CJK_GAP = re.compile(f"(?<=[{_CJK}])_|_(?=[{_CJK}])")


_NOTE = re.compile(r"\s*(?:\([^()]*\)|（[^（）]*）|\[[^\[\]]*\]|[?？:：*＊])\s*$")


def without_note(header: str) -> str:
    """``'Enabled (Y/N)'`` → ``'Enabled'``: a header without the notes that end it, in
    brackets, or a ``?``, ``:`` or ``*`` (a template's mark of a required column)."""
    text = header.strip()
    while (bare := _NOTE.sub("", text)) != text and bare:
        text = bare
    return text


def normalise_header(header: str) -> str:
    """``' Instance ID '`` → ``'instance_id'``: lowercase, spaces, dots, hyphens as ``_``.

    Full-width forms read as their ASCII twins (NFKC), and a gap beside a
    Chinese character is dropped, so ``实例 ID`` and ``实例ID`` are one header."""
    text = unicodedata.normalize("NFKC", header).strip().lower()
    return _CJK_GAP.sub("", _NON_WORD.sub("_", text).strip("_"))


@dataclass(frozen=True, slots=True)
class DbType:
    """A database type DSC can create metadata tasks for, and the spelling sent for it."""

    name: str  # as the user guide writes it
    wire: str  # the one spelling sent on the wire
    source: str  # the documentation page that spells it so
    aliases: tuple[str, ...] = ()


@cache
def _db_types() -> tuple[dict[str, DbType], tuple[DbType, ...], frozenset[str]]:
    raw = json.loads(resources.files("bulkscan.data").joinpath("db_types.json").read_text())
    types = tuple(
        DbType(t["name"], t["wire"], t["source"], tuple(t["aliases"])) for t in raw["types"]
    )
    table = {spelling.lower(): t for t in types for spelling in (t.name, t.wire, *t.aliases)}
    return table, types, frozenset(name.lower() for name in raw["unsupported"])


def db_types() -> tuple[DbType, ...]:
    """The types metadata tasks support, with their wire spelling and its source."""
    return _db_types()[1]


def known_db_types() -> tuple[str, ...]:
    """The names of the supported types (for messages and hints), in the data file's order."""
    return tuple(t.name for t in _db_types()[1])


def canonical_db_type(value: str) -> str | None:
    """The wire spelling of a supported db_type (any case, aliases too), or None."""
    found = _db_types()[0].get(value.strip().lower())
    return None if found is None else found.wire


def unsupported_db_type(value: str) -> bool:
    """True for a type DSC knows but cannot create metadata tasks for (e.g. Oracle)."""
    return value.strip().lower() in _db_types()[2]


# The template's example rows (``bulkscan template``); validation refuses them when they are
# left in an inventory, so they live here, where both read them.
EXAMPLE_INSTANCE: dict[str, Any] = {
    "ins_id": "0123456789abcdef0123456789abcdefin01",
    "db_type": "MySQL",
    "project_id": "0123456789abcdef0123456789abcdef",
    "region": "cn-north-4",
    "profile": "nightly",
    "enabled": True,
}
EXAMPLE_PROFILE: dict[str, Any] = {
    "profile": "nightly",
    "schedule_type": "DAY",
    "start_time": "2025-03-01T02:00:00+08:00",
    "timezone": "Asia/Shanghai",
    "start_now": False,
    "schedule_switch": True,
    "delete_failed_meta": False,
    "scan_column_constraints": True,
    "scan_comment": True,
    "scan_privileges": False,
    "scan_system_db": False,
    "scan_tables": True,
    "scan_views": True,
    "task_description": "Example row: delete it, or give the profile a description of yours",
    "task_name": "{profile}-{region}-{digest}",
    "max_sources": 50,
}
