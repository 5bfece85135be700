"""Coverage audit: which inventory instances are covered by a metadata scan task in DSC.

read the inventory (instances sheet only) → list every task of each (project, region) it names,
paged to the end under the shared rate limit → match instances to tasks through the tasks'
data sources → ``AuditResult`` (the workbooks are written by ``write_audit_workbook`` and
``write_uncovered_workbook``).

Rules worth knowing (also stated on the workbook):

* **Matching** (``source_matches``, the one place): a task's data source matches an instance
  when the ``ins_id`` is equal (surrounding spaces ignored) and, if the service names a
  database type, it is the instance's type (case-insensitive, aliases resolved).  The real
  service's ``data_source`` strings are not fully documented: change the rule here only.
* **Coverage**: an instance is covered when at least one matching task is not disabled
  (``task_enabled``).  The schedule switch is shown but does not decide coverage: a ``ONCE``
  task runs without it, and bulkscan creates tasks with the switch their profile sets.  An
  instance matched only by disabled tasks is *not* covered.  An instance whose project could
  not be listed is *unknown* (not covered, and never put in the uncovered workbook).
* **Input**: only the instances sheet matters.  Its ``profile`` and ``task`` columns are not
  checked (a broken profiles sheet does not stop an audit); a bad ``ins_id``, ``db_type``,
  ``project_id``, ``region`` or ``enabled`` cell does (``ValidationFailed``).  Rows with
  ``enabled`` false are left out.  Rows repeating an instance (same project, region and
  ``ins_id``) are audited once and all go into the uncovered workbook.
* **Orphans**: tasks none of whose data sources match an audited inventory row.
* **Closing the gap**: the uncovered rows go to a separate input workbook
  (``<stem>-uncovered-<time>.xlsx``: sheet ``instances`` with the input's headers, the
  inventory's ``profiles`` sheet copied, a README), because ``bulkscan run`` reads a sheet
  named ``instances``; the audit workbook's Uncovered sheet shows the same rows.  Each row
  gets a new task name (``gap_task_name``): a disabled task keeps its name, so re-using the
  old names would make ``run`` find it and create nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import getpass
import random
import re
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from bulkscan import __version__
from bulkscan.config import DispatchSettings
from bulkscan.dsc.client import DEFAULT_HOST
from bulkscan.errors import (
    AmbiguousError,
    BulkscanError,
    DscError,
    RunFatalError,
    ThrottledError,
    TransientError,
    ValidationFailed,
)
from bulkscan.events import Event, RateChanged
from bulkscan.input import schema
from bulkscan.input.validate import MAX_NAME, validate
from bulkscan.models import InputBook, Instance, Issue, RawRow, RowRef, Sheet
from bulkscan.report.cells import (
    SummarySheet,
    Tone,
    bar_chart,
    count_table,
    new_workbook,
    redact_url,
    safe_cell,
    save_workbook,
    workbook_meta,
    write_table,
)
from bulkscan.run.dispatch import backoff_delay
from bulkscan.run.ratelimit import AdaptiveRate

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Sequence

    from openpyxl import Workbook

    from bulkscan.config import InputSettings
    from bulkscan.dsc.client import DscClient, RemoteTask
    from bulkscan.models import DataSource

__all__ = [
    "AuditEvent",
    "AuditMeta",
    "AuditObserver",
    "AuditResult",
    "CoverageStatus",
    "GroupListed",
    "GroupListing",
    "InstanceCoverage",
    "Inventory",
    "TaskFinding",
    "AuditFiles",
    "audit",
    "audit_files",
    "epoch_to_datetime",
    "gap_task_name",
    "match_coverage",
    "read_inventory",
    "source_matches",
    "task_enabled",
    "uncovered_rows",
    "write_audit_workbook",
    "write_uncovered_workbook",
]

PAGE_SIZE = 100  # the largest page the service is known to accept
_NOT_CHECKED = frozenset({"profile", "task"})  # columns the audit neither needs nor checks
_MS_FROM = 100_000_000_000  # an epoch of 12+ digits is milliseconds
_Group = tuple[str, str]  # (project_id, region)
_Key = tuple[str, str, str]  # (project_id, region, ins_id)


# --------------------------------------------------------------------------- value types


class CoverageStatus(enum.StrEnum):
    """Whether an inventory instance is scanned by some task."""

    COVERED = "covered"
    DISABLED = "only disabled tasks"  # matched, but every matching task is disabled
    MISSING = "not covered"  # no task names it
    UNKNOWN = "unknown"  # its project's tasks could not be listed


@dataclass(frozen=True, slots=True)
class Inventory:
    """The audited part of an input: enabled, valid instances and where their rows are."""

    book: InputBook
    instances: tuple[Instance, ...]  # one per (project, region, ins_id), input order
    rows: Mapping[_Key, tuple[RowRef, ...]]  # every enabled row of each instance
    skipped: tuple[RowRef, ...]  # enabled = false
    issues: tuple[Issue, ...]  # warnings (errors raise ValidationFailed)

    @property
    def groups(self) -> tuple[_Group, ...]:
        """The (project, region) pairs to list, in order of first appearance."""
        return tuple(dict.fromkeys((i.project_id, i.region) for i in self.instances))


@dataclass(frozen=True, slots=True)
class InstanceCoverage:
    """One instance and the tasks whose data sources name it."""

    instance: Instance
    rows: tuple[RowRef, ...]
    status: CoverageStatus
    tasks: tuple[RemoteTask, ...] = ()  # enabled matching tasks (these cover it)
    disabled: tuple[RemoteTask, ...] = ()  # disabled matching tasks (these do not)
    error: str | None = None  # why the status is unknown

    @property
    def covered(self) -> bool:
        return self.status is CoverageStatus.COVERED

    @property
    def schedule_off(self) -> bool:
        """Covered only by periodic tasks whose schedule switch is off."""
        return bool(self.tasks) and all(_schedule_off(t) for t in self.tasks)


@dataclass(frozen=True, slots=True)
class TaskFinding:
    """A task found in DSC, with how it relates to the inventory."""

    project_id: str
    region: str
    task: RemoteTask
    enabled: bool
    matched: tuple[str, ...]  # ins_ids of inventory instances it names
    unmatched: tuple[DataSource, ...]  # its data sources that match no inventory row

    @property
    def orphan(self) -> bool:
        return not self.matched

    @property
    def schedule_off(self) -> bool:
        return _schedule_off(self.task)


@dataclass(frozen=True, slots=True)
class GroupListing:
    """How listing the tasks of one (project, region) went."""

    project_id: str
    region: str
    tasks: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class GroupListed:
    """Event: the tasks of one (project, region) were listed (or could not be)."""

    project_id: str
    region: str
    tasks: int
    done: int
    total: int
    error: str | None = None


AuditEvent: TypeAlias = Event | GroupListed
AuditObserver: TypeAlias = Callable[[AuditEvent], None]


@dataclass(frozen=True, slots=True)
class AuditMeta:
    """Run metadata for the Summary sheet: never a secret."""

    started_at: dt.datetime
    ended_at: dt.datetime
    operator: str
    host: str
    version: str
    input_path: str
    input_sha256: str
    rate_per_s: float
    learned_rate_per_s: float
    concurrency: int
    requests: int
    connection: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def stamp(self) -> str:
        """``YYYYmmdd-HHMMSS`` of the start, as used in file and task names."""
        return self.started_at.strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True, slots=True)
class AuditResult:
    """Everything an audit found."""

    inventory: Inventory
    coverage: tuple[InstanceCoverage, ...]
    tasks: tuple[TaskFinding, ...]
    groups: tuple[GroupListing, ...]
    meta: AuditMeta

    def count(self, status: CoverageStatus) -> int:
        return sum(1 for c in self.coverage if c.status is status)

    @property
    def covered(self) -> int:
        return self.count(CoverageStatus.COVERED)

    @property
    def uncovered(self) -> tuple[InstanceCoverage, ...]:
        """Instances known to lack an enabled task (what the uncovered workbook holds)."""
        gap = (CoverageStatus.MISSING, CoverageStatus.DISABLED)
        return tuple(c for c in self.coverage if c.status in gap)

    @property
    def all_covered(self) -> bool:
        return all(c.covered for c in self.coverage)

    @property
    def orphans(self) -> int:
        return sum(1 for t in self.tasks if t.orphan)

    @property
    def disabled_tasks(self) -> int:
        return sum(1 for t in self.tasks if not t.enabled)


# --------------------------------------------------------------------------- the rules


def _type_key(db_type: str) -> str:
    text = db_type.strip()
    return (schema.canonical_db_type(text) or text).casefold()


def source_matches(instance: Instance, source: DataSource) -> bool:
    """THE matching rule: same ``ins_id``; same db_type (any case or alias) when one is given."""
    if source.ins_id.strip() != instance.ins_id.strip():
        return False
    return not source.db_type.strip() or _type_key(source.db_type) == _type_key(instance.db_type)


def task_enabled(task: RemoteTask) -> bool:
    """False only when the service says the task is disabled (``enabled`` false)."""
    value = task.raw.get("enabled")
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return value is not False and value != 0


def _schedule_off(task: RemoteTask) -> bool:
    """A periodic task whose schedule switch is off (a ONCE task needs no switch)."""
    periodic = (task.schedule_type or "").upper() not in ("", "ONCE")
    return periodic and task.schedule_switch is False


def epoch_to_datetime(value: int | None) -> dt.datetime | None:
    """A DSC time (epoch milliseconds; seconds accepted) as an aware UTC datetime."""
    if value is None or value <= 0:
        return None
    seconds = value / 1000 if value >= _MS_FROM else float(value)
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the inventory


def _strip_columns(sheet: Sheet, names: frozenset[str]) -> Sheet:
    keep = [i for i, column in enumerate(sheet.columns) if column not in names]
    rows = tuple(
        RawRow(row.ref, {k: v for k, v in row.values.items() if k not in names})
        for row in sheet.rows
    )
    return replace(
        sheet,
        headers=tuple(sheet.headers[i] for i in keep),
        columns=tuple(sheet.columns[i] for i in keep),
        rows=rows,
    )


def read_inventory(book: InputBook, settings: InputSettings) -> Inventory:
    """The audited instances of ``book``; ``ValidationFailed`` when a needed cell is wrong.

    The profiles sheet and the ``profile`` and ``task`` columns are ignored here (they are
    copied unchanged into the uncovered workbook).
    """
    audited = replace(book, instances=_strip_columns(book.instances, _NOT_CHECKED), profiles=None)
    validated = validate(audited, settings)
    if validated.has_errors:
        raise ValidationFailed(validated.issues)
    first_of = dict(validated.duplicates)
    rows: dict[_Key, list[RowRef]] = {_key(i): [i.ref] for i in validated.instances}
    by_ref = {i.ref: _key(i) for i in validated.instances}
    for duplicate, first in first_of.items():
        rows[by_ref[first]].append(duplicate)
    # The duplicate warning speaks of profiles, which the audit does not read: say it here.
    id_header = validated.columns.get("ins_id")
    issues = tuple(i for i in validated.issues if not (i.ref in first_of and i.column == id_header))
    return Inventory(
        book=book,
        instances=validated.instances,
        rows=MappingProxyType({k: tuple(sorted(v)) for k, v in rows.items()}),
        skipped=validated.skipped,
        issues=issues,
    )


def _key(instance: Instance) -> _Key:
    return (instance.project_id, instance.region, instance.ins_id.strip())


# --------------------------------------------------------------------------- matching


def match_coverage(
    inventory: Inventory, listed: Mapping[_Group, Sequence[RemoteTask] | DscError]
) -> tuple[tuple[InstanceCoverage, ...], tuple[TaskFinding, ...]]:
    """Pure: each instance's coverage, and each listed task's relation to the inventory."""
    by_group: dict[_Group, list[Instance]] = defaultdict(list)
    for instance in inventory.instances:
        by_group[(instance.project_id, instance.region)].append(instance)
    matches: dict[_Key, list[RemoteTask]] = defaultdict(list)
    findings: list[TaskFinding] = []
    for group, answer in listed.items():
        if isinstance(answer, DscError):
            continue
        index = _index_by_id(by_group.get(group, []))
        for task in answer:
            findings.append(_finding(group, task, index, matches))
    coverage = tuple(
        _coverage(i, inventory.rows[_key(i)], matches.get(_key(i), []), listed)
        for i in inventory.instances
    )
    return coverage, tuple(findings)


def _index_by_id(instances: Iterable[Instance]) -> dict[str, list[Instance]]:
    """Candidates by ``ins_id`` (the rule requires equal ids, so this only narrows)."""
    index: dict[str, list[Instance]] = defaultdict(list)
    for instance in instances:
        index[instance.ins_id.strip()].append(instance)
    return index


def _finding(
    group: _Group,
    task: RemoteTask,
    index: Mapping[str, list[Instance]],
    matches: dict[_Key, list[RemoteTask]],
) -> TaskFinding:
    matched: dict[str, None] = {}
    unmatched: list[DataSource] = []
    for source in task.data_sources:
        hits = [i for i in index.get(source.ins_id.strip(), ()) if source_matches(i, source)]
        if not hits:
            unmatched.append(source)
        for instance in hits:
            if task not in matches[_key(instance)]:
                matches[_key(instance)].append(task)
            matched[instance.ins_id] = None
    return TaskFinding(
        project_id=group[0],
        region=group[1],
        task=task,
        enabled=task_enabled(task),
        matched=tuple(matched),
        unmatched=tuple(unmatched),
    )


def _coverage(
    instance: Instance,
    rows: tuple[RowRef, ...],
    tasks: Sequence[RemoteTask],
    listed: Mapping[_Group, Sequence[RemoteTask] | DscError],
) -> InstanceCoverage:
    answer = listed.get((instance.project_id, instance.region))
    if isinstance(answer, DscError) or answer is None:
        error = str(answer) if answer is not None else "its project was not listed"
        return InstanceCoverage(instance, rows, CoverageStatus.UNKNOWN, error=error)
    active = tuple(t for t in tasks if task_enabled(t))
    disabled = tuple(t for t in tasks if not task_enabled(t))
    if active:
        status = CoverageStatus.COVERED
    else:
        status = CoverageStatus.DISABLED if disabled else CoverageStatus.MISSING
    return InstanceCoverage(instance, rows, status, active, disabled)


# --------------------------------------------------------------------------- listing


def _ignore(event: AuditEvent) -> None:
    """An observer that discards every event."""


@dataclass(slots=True)
class _Lister:
    """Lists every group's tasks under one limiter, with the run's retry rules."""

    client: DscClient
    settings: DispatchSettings
    limiter: AdaptiveRate
    observer: AuditObserver
    rng: random.Random
    page_size: int
    total: int
    done: int = 0
    requests: int = 0

    async def all(self, groups: Sequence[_Group]) -> dict[_Group, list[RemoteTask] | DscError]:
        gate = asyncio.Semaphore(self.settings.concurrency)
        results: dict[_Group, list[RemoteTask] | DscError] = {}

        async def one(group: _Group) -> None:
            async with gate:
                results[group] = await self.group(group)
            self._report(group, results[group])

        try:
            async with asyncio.TaskGroup() as tg:
                for group in groups:
                    tg.create_task(one(group))
        except* BulkscanError as failed:  # run-fatal, or a usage error such as a bad endpoint
            raise failed.exceptions[0] from None
        return {group: results[group] for group in groups}

    async def group(self, group: _Group) -> list[RemoteTask] | DscError:
        """All tasks of one group, or the last error once retries are used up.

        Throttling pauses everyone and slows down, and is bounded by the time budget only;
        transient and ambiguous failures are retried with backoff up to ``max_attempts``;
        a run-fatal answer propagates; a permanent one is returned at once.
        """
        started, tries = time.monotonic(), 0
        while True:
            answer = await self._list_once(group)
            if not isinstance(answer, TransientError | AmbiguousError):
                return answer
            throttled = isinstance(answer, ThrottledError)
            if isinstance(answer, ThrottledError):
                self.limiter.on_throttle(answer.limit_per_s, answer.retry_after)
            else:
                tries += 1
            spent = time.monotonic() - started
            if tries >= self.settings.max_attempts or spent > self.settings.max_task_seconds:
                return answer
            if not throttled:  # a throttled listing waits on the limiter's pause instead
                await asyncio.sleep(self._backoff(tries))

    async def _list_once(self, group: _Group) -> list[RemoteTask] | DscError:
        """One complete listing, every page paced by the limiter; run-fatal errors propagate."""
        pages = 0

        async def pace() -> None:
            nonlocal pages
            pages += 1
            self.requests += 1
            await self.limiter.acquire()

        try:
            found = await self.client.list_tasks(
                group[0], region=group[1], page_size=self.page_size, before_page=pace
            )
        except RunFatalError:
            raise
        except DscError as exc:
            return exc
        for _ in range(pages):
            self.limiter.on_success()
        return found

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt,
            base_s=self.settings.backoff_base_s,
            cap_s=self.settings.backoff_max_s,
            rng=self.rng,
        )

    def _report(self, group: _Group, answer: list[RemoteTask] | DscError) -> None:
        self.done += 1
        error = str(answer) if isinstance(answer, DscError) else None
        count = 0 if isinstance(answer, DscError) else len(answer)
        self.observer(GroupListed(group[0], group[1], count, self.done, self.total, error))


def _local_now() -> dt.datetime:
    return dt.datetime.now().astimezone()


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


async def audit(
    inventory: Inventory,
    *,
    client: DscClient,
    settings: DispatchSettings = DispatchSettings(),  # noqa: B008 - frozen, shared default is safe
    observer: AuditObserver = _ignore,
    limiter: AdaptiveRate | None = None,
    rng: random.Random | None = None,
    page_size: int = PAGE_SIZE,
    connection: Mapping[str, Any] | None = None,
    now: Callable[[], dt.datetime] = _local_now,
) -> AuditResult:
    """List every task of each (project, region) of ``inventory`` and match instances to them.

    ``connection`` is what the Summary may show of the connection (endpoints, auth method;
    never a secret).  Raises ``RunFatalError`` when the service refuses the credentials.
    """
    started = now()
    rng = rng or random.Random()
    limiter = limiter or AdaptiveRate(settings.rate_per_s, rng=rng)
    if limiter.on_change is None:
        limiter.on_change = lambda old, new, why: observer(RateChanged(old, new, why))
    groups = inventory.groups
    lister = _Lister(client, settings, limiter, observer, rng, page_size, total=len(groups))
    listed = await lister.all(groups)
    coverage, findings = match_coverage(inventory, listed)
    meta = AuditMeta(
        started_at=started,
        ended_at=now(),
        operator=_operator(),
        host=socket.gethostname(),
        version=__version__,
        input_path=inventory.book.path,
        input_sha256=inventory.book.sha256,
        rate_per_s=settings.rate_per_s,
        learned_rate_per_s=limiter.current_per_s,
        concurrency=settings.concurrency,
        requests=lister.requests,
        connection=MappingProxyType(dict(connection or {})),
    )
    listings = tuple(
        GroupListing(p, r, 0, str(a)) if isinstance(a, DscError) else GroupListing(p, r, len(a))
        for (p, r), a in listed.items()
    )
    return AuditResult(inventory, coverage, findings, listings, meta)


# --------------------------------------------------------------------------- uncovered rows


def gap_task_name(task: str | None, profile: str | None, region: str, stamp: str) -> str:
    """The task name given to an uncovered row, new so it never meets an existing task.

    ``'{task}-audit-{stamp}'`` for a row that names its task, else
    ``'bulkscan-{profile}-{region}-audit-{stamp}'``; at most 256 characters.
    """
    suffix = f"-audit-{stamp}"
    base = task.strip() if task and task.strip() else f"bulkscan-{profile or 'default'}-{region}"
    return base[: MAX_NAME - len(suffix)] + suffix


def uncovered_rows(result: AuditResult, *, stamp: str | None = None) -> list[dict[str, Any]]:
    """The rows of uncovered instances in the input's format: original header → value.

    Every enabled row of each uncovered instance, in input order.  Blank ``project_id`` and
    ``region`` cells get the value the audit used, and the ``task`` column a new name
    (``gap_task_name``) so that ``bulkscan run`` creates new tasks rather than finding the
    disabled or conflicting ones.  Missing columns are added at the end.
    """
    stamp = stamp or result.meta.stamp
    sheet = result.inventory.book.instances
    wanted = {ref: c.instance for c in result.uncovered for ref in c.rows}
    header_of = dict(zip(sheet.columns, sheet.headers, strict=False))
    out: list[dict[str, Any]] = []
    for raw in sheet.rows:
        instance = wanted.get(raw.ref)
        if instance is None:
            continue
        row = {h: raw.values.get(c) for h, c in zip(sheet.headers, sheet.columns, strict=False)}
        _fill(row, header_of.get("project_id", "project_id"), instance.project_id)
        _fill(row, header_of.get("region", "region"), instance.region)
        task = raw.values.get("task")
        profile = raw.values.get("profile")
        row[header_of.get("task", "task")] = gap_task_name(
            None if task is None else str(task),
            None if profile is None else str(profile).strip() or None,
            instance.region,
            stamp,
        )
        out.append(row)
    return out


def _fill(row: dict[str, Any], header: str, value: str) -> None:
    current = row.get(header)
    if current is None or (isinstance(current, str) and not current.strip()):
        row[header] = value


# --------------------------------------------------------------------------- workbooks

COVERAGE_RULE = (
    "Rule: an instance is covered when a task whose data sources name it (same ins_id; same "
    "db_type, ignoring case, when the service gives one) is not disabled. A disabled task "
    "does not count. The schedule switch is shown but does not decide coverage (a ONCE task "
    "runs without it). 'unknown': the tasks of its project could not be listed."
)
ORPHAN_RULE = (
    "An orphan is a task none of whose data sources match an audited inventory row "
    "(enabled rows of the inventory, in the same project and region)."
)
_STATUS_TONES: Mapping[str, Tone] = MappingProxyType(
    {
        CoverageStatus.COVERED.value: "good",
        CoverageStatus.MISSING.value: "bad",
        CoverageStatus.DISABLED.value: "bad",
        CoverageStatus.UNKNOWN.value: "warn",
    }
)
_TASK_TONES: Mapping[str, Tone] = MappingProxyType(
    {"in use": "good", "orphan": "warn", "schedule off": "warn", "disabled": "bad"}
)
COVERAGE_HEADERS = (
    "input row",
    "ins_id",
    "db_type",
    "project_id",
    "region",
    "covered",
    "status",
    "tasks",
    "task ids",
    "schedule type",
    "schedule switch",
    "last run start (UTC)",
    "last run end (UTC)",
    "disabled tasks",
    "note",
)
TASK_HEADERS = (
    "project_id",
    "region",
    "task id",
    "task name",
    "status",
    "orphan",
    "disabled",
    "schedule type",
    "schedule switch",
    "data sources",
    "inventory instances",
    "not in inventory",
    "last run start (UTC)",
    "last run end (UTC)",
    "created (UTC)",
    "created by",
)


@dataclass(frozen=True, slots=True)
class AuditFiles:
    """Where an audit's workbooks go: the audit workbook and the uncovered-rows workbook."""

    audit: Path
    uncovered: Path


def audit_files(
    reports_dir: str | os.PathLike[str], input_path: str | os.PathLike[str], stamp: str
) -> AuditFiles:
    """``<reports>/<stem>-audit-<stamp>.xlsx`` and ``<reports>/<stem>-uncovered-<stamp>.xlsx``.

    A second audit within the same second gets ``-2`` (``-3``...) rather than overwriting.
    """
    stem = re.sub(r"[^\w.-]+", "_", Path(input_path).stem).strip("._")[:80] or "inventory"
    root = Path(reports_dir)
    for n in range(1, 1000):
        tail = stamp if n == 1 else f"{stamp}-{n}"
        files = AuditFiles(
            root / f"{stem}-audit-{tail}.xlsx", root / f"{stem}-uncovered-{tail}.xlsx"
        )
        if not (files.audit.exists() or files.uncovered.exists()):
            break
    return files


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _switch(task: RemoteTask) -> str:
    return {True: "on", False: "off", None: ""}[task.schedule_switch]


def _latest(values: Iterable[int | None]) -> dt.datetime | None:
    times = [t for t in (epoch_to_datetime(v) for v in values) if t is not None]
    return max(times, default=None)


def _joined(values: Iterable[str]) -> str:
    return "; ".join(values)


def _coverage_note(item: InstanceCoverage) -> str:
    notes: list[str] = []
    if item.error:
        notes.append(f"could not list the tasks: {item.error}")
    if item.schedule_off:
        notes.append("every covering task is periodic with its schedule switch off")
    if item.status is CoverageStatus.DISABLED:
        notes.append("enable a task in the console, or run the uncovered workbook")
    if len(item.rows) > 1:
        others = ", ".join(str(r.row) for r in item.rows[1:])
        notes.append(f"also listed in row(s) {others}")
    return "; ".join(notes)


def _coverage_row(item: InstanceCoverage) -> list[object]:
    instance, tasks = item.instance, item.tasks
    return [
        instance.ref.row,
        instance.ins_id,
        instance.db_type,
        instance.project_id,
        instance.region,
        _yes(item.covered),
        item.status.value,
        _joined(t.name for t in tasks),
        _joined(t.id for t in tasks),
        _joined(dict.fromkeys(t.schedule_type or "" for t in tasks)),
        _joined(_switch(t) for t in tasks),
        _latest(t.last_trigger_time for t in tasks),
        _latest(t.last_end_time for t in tasks),
        _joined(f"{t.name} ({t.id})" for t in item.disabled),
        _coverage_note(item),
        *(value for _, value in instance.extras),
    ]


def _task_status(finding: TaskFinding) -> str:
    if not finding.enabled:
        return "disabled"
    if finding.orphan:
        return "orphan"
    return "schedule off" if finding.schedule_off else "in use"


def _source_text(sources: Iterable[DataSource]) -> str:
    return _joined(f"{s.db_type}:{s.ins_id}" if s.db_type else s.ins_id for s in sources)


def _task_row(finding: TaskFinding) -> list[object]:
    task = finding.task
    created = task.raw.get("create_time")
    return [
        finding.project_id,
        finding.region,
        task.id,
        task.name,
        _task_status(finding),
        _yes(finding.orphan),
        _yes(not finding.enabled),
        task.schedule_type or "",
        _switch(task),
        _source_text(task.data_sources),
        len(finding.matched),
        _source_text(finding.unmatched),
        epoch_to_datetime(task.last_trigger_time),
        epoch_to_datetime(task.last_end_time),
        epoch_to_datetime(created if isinstance(created, int) else None),
        task.create_user or "",
    ]


def _uncovered_table(result: AuditResult) -> tuple[list[str], list[list[object]]]:
    rows = uncovered_rows(result)
    headers = list(result.inventory.book.instances.headers)
    for row in rows:
        headers.extend(h for h in row if h not in headers)
    return headers, [[row.get(h) for h in headers] for row in rows]


def _close_gap_lines(result: AuditResult, uncovered: Path | None, command: str | None) -> list[str]:
    if not result.uncovered:
        return ["Every audited instance is covered: nothing to close."]
    if uncovered is None:
        return [f"{len(result.uncovered)} instance(s) have no enabled task (sheet Uncovered)."]
    return [
        f"{len(result.uncovered)} instance(s) have no enabled task. Their rows are in "
        f"{uncovered.name} (sheet 'instances', the input's own columns, with the "
        "profiles sheet copied), ready for bulkscan run.",
        f"To close the gap: {command or f'bulkscan run {uncovered}'}",
        "Each row gets a new task name in its 'task' column, so the new tasks never collide "
        "with existing (e.g. disabled) ones; blank project_id and region cells are filled in.",
    ]


def _append_notes(wb: Workbook, title: str, lines: Iterable[str]) -> None:
    """Note rows under a table (outside its autofilter range)."""
    ws = wb[title]
    ws.append([])
    for line in lines:
        ws.append([safe_cell(ws, line, bold=True)])


def write_audit_workbook(
    result: AuditResult,
    path: str | os.PathLike[str],
    *,
    uncovered_path: Path | None = None,
    run_command: str | None = None,
) -> Path:
    """Summary, Coverage, Uncovered and Tasks sheets (see the module docstring).

    ``uncovered_path`` is the uncovered workbook and ``run_command`` the command that feeds
    it to ``bulkscan run`` (both only shown, in the notes).
    """
    wb = new_workbook()
    _write_summary(wb, result, uncovered_path, run_command)
    instances = result.inventory.instances
    extras = [header for header, _ in instances[0].extras] if instances else []
    write_table(
        wb,
        "Coverage",
        [*COVERAGE_HEADERS, *extras],
        (_coverage_row(c) for c in result.coverage),
        status_column="status",
        tones=_STATUS_TONES,
        widths=[10, 36, 14, 34, 16, 9, 20, 40, 20, 14, 14, 20, 20, 30, 40],
    )
    _append_notes(wb, "Coverage", [COVERAGE_RULE])
    headers, rows = _uncovered_table(result)
    write_table(wb, "Uncovered", headers, rows)
    _append_notes(wb, "Uncovered", _close_gap_lines(result, uncovered_path, run_command))
    write_table(
        wb,
        "Tasks",
        TASK_HEADERS,
        (_task_row(t) for t in result.tasks),
        status_column="status",
        tones=_TASK_TONES,
        widths=[34, 16, 12, 40, 13, 8, 9, 14, 14, 50, 12, 40, 20, 20, 20, 20],
    )
    _append_notes(wb, "Tasks", [ORPHAN_RULE, "A disabled task does not count as coverage."])
    return save_workbook(wb, path)


def write_uncovered_workbook(
    result: AuditResult, path: str | os.PathLike[str], *, run_command: str | None = None
) -> Path:
    """The uncovered rows as an input workbook: ``instances``, ``profiles`` (if any), README."""
    wb = new_workbook()
    headers, rows = _uncovered_table(result)
    write_table(wb, schema.INSTANCES_SHEET, headers, rows)
    profiles = result.inventory.book.profiles
    if profiles is not None:
        write_table(
            wb,
            schema.PROFILES_SHEET,
            list(profiles.headers),
            ([row.values.get(c) for c in profiles.columns] for row in profiles.rows),
        )
    readme = SummarySheet(wb, "README", widths=(120,))
    readme.heading("Instances without an enabled scan task")
    for line in _readme_lines(result, Path(path), run_command):
        readme.append([line])
    return save_workbook(wb, path)


def _readme_lines(result: AuditResult, path: Path, command: str | None) -> list[str]:
    meta = result.meta
    return [
        f"Found by the coverage audit of {meta.input_path} started "
        f"{meta.started_at.isoformat(timespec='seconds')}.",
        f"Create the missing tasks with: {command or f'bulkscan run {path}'}",
        "The 'instances' sheet holds the rows of every uncovered instance with the input's "
        "own columns; the 'profiles' sheet (if any) is the inventory's, unchanged.",
        "Each row's 'task' cell is a new task name, so that the new tasks never collide with "
        "existing ones (a disabled task keeps its name); blank project_id and region cells "
        "hold the values the audit used.",
        COVERAGE_RULE,
    ]


# --- the Summary sheet ---


def _by(result: AuditResult, attribute: str) -> list[list[object]]:
    """Coverage counts per value of an instance attribute, largest first."""
    counts: dict[str, Counter[CoverageStatus]] = defaultdict(Counter)
    for item in result.coverage:
        counts[str(getattr(item.instance, attribute))][item.status] += 1
    rows: list[list[object]] = []
    for value, tally in sorted(counts.items(), key=lambda kv: (-kv[1].total(), kv[0])):
        total = tally.total()
        covered = tally[CoverageStatus.COVERED]
        missing = tally[CoverageStatus.MISSING] + tally[CoverageStatus.DISABLED]
        unknown = tally[CoverageStatus.UNKNOWN]
        rows.append([value, total, covered, missing, unknown, round(100 * covered / total, 1)])
    return rows


def _write_summary(
    wb: Workbook, result: AuditResult, uncovered: Path | None, command: str | None
) -> None:
    sheet = SummarySheet(wb, "Summary", widths=(34, 22, 12, 12, 12, 12))
    workbook_meta(sheet, _summary_items(result, uncovered), heading="Coverage audit")
    sheet.blank()
    sheet.heading("Closing the gap")
    for line in _close_gap_lines(result, uncovered, command):
        sheet.append([line])
    sheet.blank()
    totals = [[s.value, result.count(s)] for s in CoverageStatus]
    block = count_table(sheet, ["status", "instances"], totals, heading="Instances by status",
                        tones=_STATUS_TONES)  # fmt: skip
    bar_chart(sheet, block, title="Instances by coverage status", anchor=f"H{block.first_row}")
    sheet.blank(until=block.first_row + 16)
    headers = ["", "instances", "covered", "not covered", "unknown", "% covered"]
    for title, attribute in (("project", "project_id"), ("region", "region"),
                             ("db_type", "db_type")):  # fmt: skip
        block = count_table(
            sheet, [title, *headers[1:]], _by(result, attribute),
            heading=f"Coverage by {title}", status_column=None,
        )  # fmt: skip
        if attribute == "db_type" and block.last_row >= block.first_row:
            bar_chart(
                sheet, block, title="% covered by db_type", value_column=6,
                anchor=f"H{block.first_row}", axis_title="% covered",
            )  # fmt: skip
        sheet.blank()
    sheet.heading("Rules")
    for line in (COVERAGE_RULE, ORPHAN_RULE, _MATCH_RULE):
        sheet.append([line])


_MATCH_RULE = (
    "Matching: the tasks of every project and region named by the inventory are listed "
    "(all pages); a data source matches an instance on ins_id, and on db_type when the "
    "service states one (any case; aliases such as 'postgres' resolved)."
)


def _summary_items(result: AuditResult, uncovered: Path | None) -> list[tuple[str, object]]:
    meta, inventory = result.meta, result.inventory
    duplicates = sum(len(c.rows) - 1 for c in result.coverage)
    failed = [g for g in result.groups if g.error]
    return [
        ("verdict", "all covered" if result.all_covered else "NOT all covered"),
        ("instances audited", len(result.coverage)),
        ("covered", result.covered),
        ("not covered (no task)", result.count(CoverageStatus.MISSING)),
        ("not covered (only disabled tasks)", result.count(CoverageStatus.DISABLED)),
        ("unknown (project not listed)", result.count(CoverageStatus.UNKNOWN)),
        ("rows left out (enabled = FALSE)", len(inventory.skipped)),
        ("rows repeating an instance", duplicates),
        ("tasks found", len(result.tasks)),
        ("orphan tasks", result.orphans),
        ("disabled tasks", result.disabled_tasks),
        ("projects/regions listed", f"{len(result.groups) - len(failed)} of {len(result.groups)}"),
        ("started (UTC)", meta.started_at),
        ("ended (UTC)", meta.ended_at),
        ("started (local)", meta.started_at.isoformat(timespec="seconds")),
        ("duration (s)", round((meta.ended_at - meta.started_at).total_seconds(), 1)),
        ("operator", meta.operator),
        ("host", meta.host),
        ("bulkscan version", meta.version),
        ("input file", meta.input_path),
        ("input SHA-256", meta.input_sha256),
        *_connection_items(meta.connection),
        ("rate asked (requests/s)", meta.rate_per_s),
        ("rate learned (requests/s)", round(meta.learned_rate_per_s, 3)),
        ("concurrency", meta.concurrency),
        ("list requests", meta.requests),
        ("uncovered workbook", uncovered.name if uncovered and result.uncovered else "(none)"),
        *((f"could not list {g.project_id} / {g.region}", g.error) for g in failed),
    ]


def _connection_items(connection: Mapping[str, Any]) -> list[tuple[str, object]]:
    """What the Summary shows of the connection; URLs lose any user-info part."""
    items: list[tuple[str, object]] = []
    for key, value in connection.items():
        if key == "endpoints_per_region" and isinstance(value, Mapping):
            text = ", ".join(f"{r}={redact_url(str(u))}" for r, u in value.items())
            items.append(("endpoints per region", text or "(none)"))
        elif key == "endpoint":
            shown = redact_url(str(value)) if value else f"per region ({DEFAULT_HOST})"
            items.append(("endpoint", shown))
        else:
            items.append((key.replace("_", " "), value if _plain(value) else str(value)))
    return items


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
