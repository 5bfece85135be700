"""Pure planning: validated instances → task requests with deterministic names and keys.

Grouping: instances are grouped by (project_id, region, profile, task) in order of first
appearance; a group larger than its profile's ``max_sources`` is split in input order.

Naming, in plan order:

* A group with a ``task`` cell is named by that cell, unless the profile's ``task_name``
  pattern uses ``{task}``: then the pattern is filled with it.
* Otherwise the pattern is filled with ``{profile}``, ``{region}``, ``{project}`` (the full
  project id), ``{seq}``, ``{db_type}`` (the task's one database type, or ``mixed``) and
  ``{digest}`` (``content_digest``: the same databases give the same digest in every run and
  wave, other databases another one).  ``{seq}`` numbers the pattern-named tasks of each
  (project, region, profile) from 1, so it restarts in every spreadsheet; the default
  pattern ``bulkscan-{profile}-{region}-{digest}`` uses the digest instead.
* Every name that would occur more than once in the same project gets ``-01``, ``-02``…
  appended, in plan order (DSC lists tasks, and bulkscan finds them again, per project).
  A name still repeated after that, empty, or over 256 characters is an error ``Issue`` in
  ``Plan.issues`` naming the first row of each task concerned.

Each request body is serialised once (sorted keys, compact, UTF-8); the task key is the
SHA-256 of ``"{project_id}\\n{region}\\n"`` followed by those bytes.
"""

from __future__ import annotations

import enum
import hashlib
import json
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from json.encoder import encode_basestring as _encode_text
from operator import add
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bulkscan.errors import InputError, UsageError
from bulkscan.i18n import _
from bulkscan.input.validate import MAX_NAME, show
from bulkscan.models import DataSource, Instance, Issue, Plan, Profile, RowRef, TaskRequest

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from bulkscan.input.validate import Validated
    from bulkscan.models import InputBook, Sheet

__all__ = [
    "PlanSource",
    "PlanSummary",
    "ProfileRowRecord",
    "RowRecord",
    "RowStatus",
    "RunInput",
    "SavedPlan",
    "SheetLayout",
    "SummaryRow",
    "build_plan",
    "content_digest",
    "plan_hash",
    "plan_summary",
    "plan_to_json",
    "read_saved_plan",
    "serialise_body",
    "start_time_text",
    "start_zones",
    "task_key",
]

PLAN_FORMAT = "bulkscan-plan"
PLAN_VERSION = 1

# What ``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` uses,
# made once: the encoder keeps no state between calls.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Tasks and instances of one (project, region, profile)."""

    project_id: str
    region: str
    profile: str
    tasks: int
    instances: int


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What a plan will do, and roughly how long sending it takes at ``rate_per_s``."""

    rows: tuple[SummaryRow, ...]
    tasks: int
    instances: int
    skipped: int
    duplicates: int
    errors: int
    warnings: int
    rate_per_s: float
    estimated_seconds: float  # tasks / rate, without retries


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The instances of one future task."""

    project_id: str
    region: str
    profile: Profile
    task: str | None
    members: tuple[Instance, ...]


@dataclass(frozen=True, slots=True)
class _Named:
    chunk: _Chunk
    name: str
    explicit: bool  # named by the task cell rather than the profile's pattern


def serialise_body(body: Mapping[str, Any]) -> bytes:
    """The one serialisation of a request body: the bytes that are hashed, signed and sent."""
    return _ENCODER.encode(body).encode("utf-8")


def task_key(project_id: str, region: str, body_bytes: bytes) -> str:
    """The task's identity: hex SHA-256 over project, region and the body bytes."""
    digest = hashlib.sha256(f"{project_id}\n{region}\n".encode())
    digest.update(body_bytes)
    return digest.hexdigest()


DIGEST_LENGTH = 8


def content_digest(project_id: str, region: str, sources: Sequence[tuple[str, str]]) -> str:
    """Hex digits naming a task's content: project, region and its (db_type, ins_id) pairs.

    The pairs are sorted first, so the order of rows does not matter; anything else about
    the task (its profile's settings) does not enter, so a task keeps its name when only
    its settings change and is then found as a conflict rather than sent twice.
    """
    lines = [project_id, region, *sorted(f"{t}\t{i}" for t, i in sources)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:DIGEST_LENGTH]


def build_plan(validated: Validated) -> Plan:
    """Group, split, name and serialise; validation issues are carried into ``Plan.issues``."""
    named = _deduplicate(_base_names(_chunks(validated)))
    issues = _name_issues(named, validated.columns.get("task", "task"))
    writer = _BodyWriter()
    return Plan(
        tasks=tuple(_request(n.chunk, n.name, writer) for n in named),
        skipped=validated.skipped,
        duplicates=validated.duplicates,
        issues=(*validated.issues, *issues),
    )


def _chunks(validated: Validated) -> list[_Chunk]:
    groups: dict[tuple[str, str, str, str | None], list[Instance]] = {}
    for instance in validated.instances:
        key = (instance.project_id, instance.region, instance.profile, instance.task)
        groups.setdefault(key, []).append(instance)
    chunks: list[_Chunk] = []
    for (project_id, region, profile_name, task), members in groups.items():
        profile = validated.profiles[profile_name]
        size = profile.max_sources
        for start in range(0, len(members), size):
            part = tuple(members[start : start + size])
            chunks.append(_Chunk(project_id, region, profile, task, part))
    return chunks


@cache
def _placeholders(pattern: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None)


def _base_names(chunks: Sequence[_Chunk]) -> list[_Named]:
    seq: Counter[tuple[str, str, str]] = Counter()
    named: list[_Named] = []
    for chunk in chunks:
        pattern = chunk.profile.task_name
        if chunk.task is not None and "task" not in _placeholders(pattern):
            named.append(_Named(chunk, chunk.task, explicit=True))
            continue
        scope = (chunk.project_id, chunk.region, chunk.profile.name)
        seq[scope] += 1
        name = pattern.format(
            profile=chunk.profile.name,
            region=chunk.region,
            project=chunk.project_id,
            seq=seq[scope],
            db_type=_db_type_label(chunk.members),
            task=chunk.task or "",
            digest=_digest(chunk) if "digest" in _placeholders(pattern) else "",
        )
        named.append(_Named(chunk, name, explicit=False))
    return named


def _digest(chunk: _Chunk) -> str:
    sources = [(m.db_type, m.ins_id) for m in chunk.members]
    return content_digest(chunk.project_id, chunk.region, sources)


def _db_type_label(members: Sequence[Instance]) -> str:
    types = {m.db_type for m in members}
    return members[0].db_type if len(types) == 1 else "mixed"


def _deduplicate(named: Sequence[_Named]) -> list[_Named]:
    """Append ``-01``, ``-02``… in plan order to every name that repeats within a project.

    Names need only be unique per project: DSC lists (and bulkscan looks tasks up) per project.
    """
    counts = Counter(_scoped(n) for n in named)
    used: Counter[tuple[str, str]] = Counter()
    result: list[_Named] = []
    for item in named:
        if counts[_scoped(item)] == 1:
            result.append(item)
            continue
        used[_scoped(item)] += 1
        suffixed = f"{item.name}-{used[_scoped(item)]:02}"
        result.append(_Named(item.chunk, suffixed, item.explicit))
    return result


def _scoped(item: _Named) -> tuple[str, str]:
    return (item.chunk.project_id, item.name)


def _name_issues(named: Sequence[_Named], task_header: str) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[tuple[str, str], _Named] = {}
    split: dict[tuple[str, str], list[_Named]] = {}  # explicit names given a suffix
    for item in named:
        problem = _name_problem(item.name)
        if problem is not None:
            issues.append(_name_issue(item, *problem, task_header))
        first = seen.setdefault(_scoped(item), item)
        if first is not item:
            where = _row_text(first.chunk.members[0].ref, item.chunk.members[0].ref)
            message = _("task name {name} is also the name of the task at {where}").format(
                name=_quote(item.name), where=where
            )
            issues.append(_name_issue(item, message, _COLLIDES, task_header))
        if item.explicit and item.chunk.task is not None and item.name != item.chunk.task:
            split.setdefault((item.chunk.project_id, item.chunk.task), []).append(item)
    issues.extend(_split_warning(items, task_header) for items in split.values())
    return issues


_COLLIDES = "collides"
_TOO_LONG = "too_long"


def _name_problem(name: str) -> tuple[str, str] | None:
    if not name.strip():
        return _("the task name is empty"), _TOO_LONG
    if len(name) > MAX_NAME:
        return _("task name {name} is {length} characters long, over {most}").format(
            name=_quote(name), length=len(name), most=MAX_NAME
        ), _TOO_LONG
    return None


def _name_issue(item: _Named, message: str, kind: str, task_header: str) -> Issue:
    ref = item.chunk.members[0].ref
    if item.explicit:
        hint = _("give the task cells distinct names of at most 256 characters")
        return Issue(
            "error", message, ref=ref, column=task_header, value=show(item.name), hint=hint
        )
    profile = item.chunk.profile
    where = (
        _(" (profiles sheet, row {row})").format(row=profile.ref.row)
        if profile.ref is not None
        else ""
    )
    if kind == _COLLIDES:
        hint = _("change the task_name pattern of profile '{profile}'{where}, e.g. add {{seq}}")
    else:
        hint = _("shorten the task_name pattern of profile '{profile}'{where}")
    return Issue(
        "error",
        message,
        ref=ref,
        value=show(item.name),
        hint=hint.format(profile=profile.name, where=where),
    )


def _split_warning(items: Sequence[_Named], task_header: str) -> Issue:
    """One explicit task name that became several tasks, each with a suffix."""
    first = items[0]
    task = first.chunk.task or ""
    names = ", ".join(_quote(i.name) for i in items)
    return Issue(
        "warning",
        _("task {task} is sent as {count} tasks: {names}").format(
            task=_quote(task), count=len(items), names=names
        ),
        ref=first.chunk.members[0].ref,
        column=task_header,
        value=show(task),
        hint=_(
            "its rows differ in region or profile, or outnumber the profile's max_sources; "
            "one task carries one region's and one profile's rows"
        ),
    )


def _row_text(first: RowRef, here: RowRef) -> str:
    """``row 5`` when in the same sheet as ``here``, else the full reference."""
    same = (first.file, first.sheet) == (here.file, here.sheet)
    return _("row {row}").format(row=first.row) if same else str(first)


def _quote(text: str) -> str:
    return f"'{show(text)}'"


def _request(chunk: _Chunk, name: str, writer: _BodyWriter) -> TaskRequest:
    members = chunk.members
    db_types = [m.db_type for m in members]
    ins_ids = [m.ins_id for m in members]
    sources = tuple(map(DataSource, db_types, ins_ids))
    # DataSource.to_json() of each, as _BodyWriter writes them too (tests hold all three)
    data_sources = [{"db_type": t, "ins_id": i} for t, i in zip(db_types, ins_ids, strict=True)]
    body = {"data_sources": data_sources, **_settings(chunk.profile, name)}
    body_bytes = writer.write(chunk.profile.name, body, db_types, ins_ids)
    return TaskRequest(
        key=task_key(chunk.project_id, chunk.region, body_bytes),
        name=name,
        project_id=chunk.project_id,
        region=chunk.region,
        profile=chunk.profile.name,
        sources=sources,
        rows=tuple([m.ref for m in members]),
        body_bytes=body_bytes,
    )


def _settings(profile: Profile, name: str) -> dict[str, Any]:
    """The DSC create body (CreateMetadataTaskTemplate) but its ``data_sources``."""
    return {
        "delete_failed_meta": profile.delete_failed_meta,
        "scan_config": profile.scan.to_json(),
        "schedule_switch": profile.schedule_switch,
        "schedule_type": profile.schedule_type,
        "start_now": profile.start_now,
        "start_time": profile.start_time,
        "task_description": profile.task_description,
        "task_name": name,
    }


class _BodyWriter:
    """``serialise_body`` of planned bodies, without a dictionary per source.

    Sorted, a body's keys are ``data_sources``, then its profile's settings (the same for
    every task of the profile: encoded once), then ``task_name``; every string goes through
    the encoder's own string encoding.  Tests hold the two byte for byte.  Should the keys
    ever sort otherwise, ``serialise_body`` itself is used.
    """

    __slots__ = ("_heads", "_prefixes")

    def __init__(self) -> None:
        self._heads: dict[str, str] = {}  # profile → '"delete_failed_meta":…,'
        self._prefixes: dict[str, str] = {}  # db_type → '{"db_type":"…","ins_id":'

    def write(
        self, profile: str, body: Mapping[str, Any], db_types: list[str], ins_ids: list[str]
    ) -> bytes:
        head = self._heads.get(profile)
        if head is None:
            head = self._heads[profile] = _head(body)
        if not head:
            return serialise_body(body)
        prefixes = self._prefixes
        for db_type in set(db_types).difference(prefixes):
            prefixes[db_type] = f'{{"db_type":{_encode_text(db_type)},"ins_id":'
        sources = "},".join(
            map(add, map(prefixes.__getitem__, db_types), map(_encode_text, ins_ids))
        )
        array = f"[{sources}}}]" if sources else "[]"
        name = _encode_text(body["task_name"])
        return f'{{"data_sources":{array},{head}"task_name":{name}}}'.encode()


def _head(body: Mapping[str, Any]) -> str:
    """The body's settings between its sources and its name, encoded (``"delete…":…,``), or
    ``''`` if its keys do not sort that way."""
    keys = sorted(body)
    if keys[0] != "data_sources" or keys[-1] != "task_name":
        return ""
    settings = {k: v for k, v in body.items() if k not in ("data_sources", "task_name")}
    return _ENCODER.encode(settings)[1:-1] + ","


def start_zones(profiles: Mapping[str, Profile], default: str) -> dict[str, str]:
    """The zone each profile's zone-less start time was read in: the profile's ``timezone``
    column, else ``default`` (``--timezone``, else the machine's local zone).  A start time
    written with an offset keeps its offset, whatever the zone."""
    return {name: profile.timezone or default for name, profile in profiles.items()}


def start_time_text(body_bytes: bytes, *, zone: str, unit: str = "s") -> str:
    """A request's start time as a person reads it, in ``zone`` with its offset, or ``now``."""
    value = json.loads(body_bytes).get("start_time", 0)
    if not value:
        return _("now")
    seconds = value / 1000 if unit == "ms" else value
    moment = datetime.fromtimestamp(seconds, ZoneInfo(zone))
    return f"{moment.isoformat(sep=' ', timespec='minutes')} ({zone})"


def plan_hash(plan: Plan) -> str:
    """Hex SHA-256 over every task key in plan order: equal hashes, equal plans."""
    digest = hashlib.sha256()
    for task in plan.tasks:
        digest.update(task.key.encode("ascii") + b"\n")
    return digest.hexdigest()


def plan_summary(plan: Plan, *, rate_per_s: float) -> PlanSummary:
    """Tasks and instances per (project, region, profile), totals and the time to send."""
    if not rate_per_s > 0:
        raise UsageError(f"rate must be above 0 per second, not {rate_per_s:g}")
    tasks: Counter[tuple[str, str, str]] = Counter()
    instances: Counter[tuple[str, str, str]] = Counter()
    for task in plan.tasks:
        scope = (task.project_id, task.region, task.profile)
        tasks[scope] += 1
        instances[scope] += len(task.sources)
    errors = sum(1 for i in plan.issues if i.severity == "error")
    return PlanSummary(
        rows=tuple(SummaryRow(*scope, tasks[scope], instances[scope]) for scope in tasks),
        tasks=len(plan.tasks),
        instances=plan.instance_count,
        skipped=len(plan.skipped),
        duplicates=len(plan.duplicates),
        errors=errors,
        warnings=len(plan.issues) - errors,
        rate_per_s=rate_per_s,
        estimated_seconds=len(plan.tasks) / rate_per_s,
    )


def _ref_json(ref: RowRef) -> dict[str, Any]:
    return {"file": ref.file, "sheet": ref.sheet, "row": ref.row}


def _task_json(task: TaskRequest) -> dict[str, Any]:
    return {
        "name": task.name,
        "key": task.key,
        "project_id": task.project_id,
        "region": task.region,
        "profile": task.profile,
        "rows": [_ref_json(r) for r in task.rows],
        "body": json.loads(task.body_bytes),
    }


@dataclass(frozen=True, slots=True)
class PlanSource:
    """What a plan was made from: each input file with the SHA-256 of its bytes (the
    instances file first, then a separate profiles file), and the settings that shaped it
    (``InputSettings`` fields: timezone, default project and region, start time unit...)."""

    files: tuple[tuple[str, str], ...]
    settings: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        files = [{"path": path, "sha256": digest} for path, digest in self.files]
        return {"files": files, "settings": dict(self.settings)}


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A plan file written by ``plan --output``: what it was made from and its hash."""

    path: str
    plan_hash: str
    task_count: int
    source: PlanSource


def read_saved_plan(document: Mapping[str, Any], *, path: str) -> SavedPlan:
    """The plan file ``path`` (parsed JSON) checked for what applying it needs."""
    saved = _saved_plan(document, path) if document.get("version") == PLAN_VERSION else None
    if saved is None:
        raise InputError(
            f"{path}: not a plan this version of bulkscan can apply (no inventory hash, or "
            "another format version); re-run bulkscan plan --output",
            file=path,
        )
    return saved


def _saved_plan(document: Mapping[str, Any], path: str) -> SavedPlan | None:
    try:
        source = document["source"]
        files = tuple((str(f["path"]), str(f["sha256"])) for f in source["files"])
        settings = dict(source["settings"])
        digest, count = document["plan_hash"], int(document["task_count"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not files or not isinstance(digest, str) or len(digest) != 64:
        return None
    return SavedPlan(path, digest, count, PlanSource(files, settings))


def plan_to_json(plan: Plan, source: PlanSource | None = None) -> dict[str, Any]:
    """Every request exactly as it will be sent, with where each came from (deterministic).

    With ``source``, the document records the inventory's hash and settings, so that
    ``bulkscan run PLAN.json`` can apply it, and refuse it once the inventory has changed.
    """
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        **({"source": source.to_json()} if source is not None else {}),
        "plan_hash": plan_hash(plan),
        "task_count": len(plan.tasks),
        "instance_count": plan.instance_count,
        "tasks": [_task_json(t) for t in plan.tasks],
        "skipped": [_ref_json(r) for r in plan.skipped],
        "duplicates": [{"row": _ref_json(d), "first": _ref_json(f)} for d, f in plan.duplicates],
        "issues": [i.to_json() for i in plan.issues],
    }


# --- the row ledger: where each input row went ---------------------------------------------


class RowStatus(enum.StrEnum):
    PLANNED = "planned"  # its instance is in a task (task_key set)
    SKIPPED = "skipped"  # enabled = false
    DUPLICATE = "duplicate"  # repeats an earlier row (duplicate_of set)
    INVALID = "invalid"  # has a validation error
    COVERED = "covered"  # another existing task already scans its instance: not sent
    UNPLANNED = "unplanned"  # none of the above (never expected; kept visible, not hidden)


@dataclass(frozen=True, slots=True)
class SheetLayout:
    """A sheet's place and original headers, so a workbook can be written in the same shape,
    and the number formats of its columns (xlsx), so it can show them the same way."""

    file: str
    sheet: str
    headers: tuple[str, ...]
    formats: Mapping[str, str] = field(default_factory=dict)  # original header → format


@dataclass(frozen=True, slots=True)
class RowRecord:
    """One input row of the instances sheet: original header → value, and where it went."""

    seq: int
    ref: RowRef
    values: dict[str, Any]
    status: RowStatus
    task_key: str | None = None
    duplicate_of: RowRef | None = None


@dataclass(frozen=True, slots=True)
class ProfileRowRecord:
    seq: int
    ref: RowRef
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInput:
    """What the journal keeps of the input: its identity, layout, rows and issues."""

    path: str
    sha256: str
    fmt: str
    instances: SheetLayout
    profiles: SheetLayout | None
    rows: tuple[RowRecord, ...]
    profile_rows: tuple[ProfileRowRecord, ...] = ()
    issues: tuple[Issue, ...] = ()

    @classmethod
    def from_book(
        cls,
        book: InputBook,
        plan: Plan,
        issues: Sequence[Issue] | None = None,
        *,
        covered: Collection[RowRef] = (),
    ) -> RunInput:
        """Every row of ``book`` with its status under ``plan``.

        ``issues`` defaults to ``plan.issues`` (validation's issues plus planning's own);
        ``covered`` are the rows left out because another task already scans them.
        """
        issues = plan.issues if issues is None else tuple(issues)
        profiles = book.profiles
        return cls(
            path=book.path,
            sha256=book.sha256,
            fmt=book.fmt,
            instances=_layout(book.instances),
            profiles=_layout(profiles) if profiles is not None else None,
            rows=_row_records(book.instances, plan, issues, frozenset(covered)),
            profile_rows=_profile_records(profiles) if profiles is not None else (),
            issues=issues,
        )


def _layout(sheet: Sheet) -> SheetLayout:
    return SheetLayout(sheet.file, sheet.name, tuple(sheet.headers), dict(sheet.formats))


def _original_values(sheet: Sheet, values: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical column → value becomes original header → value, in sheet order."""
    out: dict[str, Any] = {}
    for header, column in zip(sheet.headers, sheet.columns, strict=False):
        if column in values and header not in out:
            out[header] = values[column]
    return out


def _row_records(
    sheet: Sheet, plan: Plan, issues: Sequence[Issue], covered: frozenset[RowRef]
) -> tuple[RowRecord, ...]:
    task_of = {ref: t.key for t in plan.tasks for ref in t.rows}
    duplicate_of = dict(plan.duplicates)
    skipped = set(plan.skipped)
    invalid = {i.ref for i in issues if i.severity == "error" and i.ref}
    records = []
    for seq, raw in enumerate(sheet.rows):
        ref = raw.ref
        key = task_of.get(ref)
        if key is not None:
            status = RowStatus.PLANNED
        elif ref in duplicate_of:
            status = RowStatus.DUPLICATE
        elif ref in skipped:
            status = RowStatus.SKIPPED
        elif ref in covered:
            status = RowStatus.COVERED
        elif ref in invalid:
            status = RowStatus.INVALID
        else:
            status = RowStatus.UNPLANNED
        values = _original_values(sheet, raw.values)
        records.append(RowRecord(seq, ref, values, status, key, duplicate_of.get(ref)))
    return tuple(records)


def _profile_records(sheet: Sheet) -> tuple[ProfileRowRecord, ...]:
    return tuple(
        ProfileRowRecord(seq, raw.ref, _original_values(sheet, raw.values))
        for seq, raw in enumerate(sheet.rows)
    )
