"""Coverage audit: which inventory instances are covered by a metadata scan task in DSC.

read the inventory (instances sheet only) → list every task of each (project, region) it names,
paged to the end under the shared rate limit → match instances to tasks through the tasks'
data sources → ``AuditResult`` (its workbooks are written by ``bulkscan.report.audit``).

Rules worth knowing (also stated on the workbook):

* **Listing and matching** are the run's own (``bulkscan.run.remote``): the same listing path,
  retried by the same policy, and the same rule that reconcile uses to say a remote task is
  a planned one.  A task's data source matches an instance when the ``ins_id`` is equal
  (surrounding spaces ignored) and, if the service names a database type, it is the
  instance's type (case-insensitive, aliases resolved).
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
* **Held by an unfinished run**: an instance without an enabled task that a run directory of
  the reports directory still holds in a task not yet settled (pending, sending, unknown) is
  *held*: resuming that run sends it, so it is left out of the uncovered workbook (a new run
  of those rows would give them a second task once the run is resumed).
* **A run still going on** holds every instance of its unfinished tasks (it sends them), but
  its resume, which its lock would refuse, is not the next step: audit again once it ended.
* **A run that cannot be resumed**: when a run's input is no longer the file it started
  from (its SHA-256 differs from the journal's, or it cannot be read), its resume is refused,
  so it holds nothing it would have to send: the instances of its tasks never sent go into the
  uncovered workbook, their reason naming the run.  A task of unknown outcome (in flight when
  the run stopped) still holds its instances until its settle window has passed when the
  audit lists (a task created late would show by then): audit again after that.
"""

from __future__ import annotations

import datetime as dt
import getpass
import random
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from bulkscan import __version__
from bulkscan.config import DEFAULT_PAGE_SIZE, DispatchSettings
from bulkscan.errors import BulkscanError, DscError, ValidationFailed
from bulkscan.events import Event, RateChanged, local_now
from bulkscan.i18n import _
from bulkscan.input.loader import input_sha256
from bulkscan.input.validate import validate
from bulkscan.models import InputBook, Instance, Issue, RawRow, RowRef, Sheet
from bulkscan.run.ratelimit import AdaptiveRate
from bulkscan.run.remote import (
    Lister,
    fatal_answer,
    list_groups,
    same_sources,
    source_matches,
    task_enabled,
    tells_enabled,
)
from bulkscan.run.retry import RetryPolicy
from bulkscan.run.rundir import JOURNAL_FILE, run_dir_user
from bulkscan.run.states import UNFINISHED_STATES, CoverageStatus, TaskState

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Sequence

    from bulkscan.config import InputSettings
    from bulkscan.dsc.client import DscClient, RemoteTask
    from bulkscan.models import DataSource
    from bulkscan.run.remote import Listed
    from bulkscan.run.store import RunMeta, TaskRecord

__all__ = [
    "AuditEvent",
    "AuditMeta",
    "AuditObserver",
    "AuditResult",
    "CoverageStatus",
    "Duplicate",
    "GroupListed",
    "GroupListing",
    "InstanceCoverage",
    "Inventory",
    "TaskFinding",
    "audit",
    "UnfinishedRun",
    "epoch_to_datetime",
    "hold",
    "find_duplicates",
    "match_coverage",
    "read_inventory",
    "task_enabled",
    "unfinished_runs",
]

_NOT_CHECKED = frozenset({"profile", "task"})  # columns the audit neither needs nor checks
_MS_FROM = 100_000_000_000  # an epoch of 12+ digits is milliseconds
_Group = tuple[str, str]  # (project_id, region)
_Key = tuple[str, str, str]  # (project_id, region, ins_id)


# --------------------------------------------------------------------------- value types


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
    held_by: Path | None = None  # the unfinished run directory that holds it (HELD)
    held_until: dt.datetime | None = None  # held by a run that cannot be resumed: until then
    dropped_by: UnfinishedRun | None = None  # would have sent it, but cannot be resumed

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
    bulkscan_version: str
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
    held_by: tuple[UnfinishedRun, ...] = ()  # the unfinished runs holding some instance
    stale: tuple[UnfinishedRun, ...] = ()  # runs that cannot be resumed, of some instance

    def count(self, status: CoverageStatus) -> int:
        return sum(1 for c in self.coverage if c.status is status)

    @property
    def resumable(self) -> tuple[UnfinishedRun, ...]:
        """The runs holding instances that a resume of theirs would send."""
        return tuple(r for r in self.held_by if r.stale is None)

    def held_in(self, runs: Iterable[UnfinishedRun]) -> int:
        """How many instances ``runs`` hold."""
        dirs = {r.run_dir for r in runs}
        return sum(1 for c in self.coverage if c.held_by is not None and c.held_by in dirs)

    @property
    def covered(self) -> int:
        return self.count(CoverageStatus.COVERED)

    @property
    def uncovered(self) -> tuple[InstanceCoverage, ...]:
        """Instances known to lack an enabled task that no unfinished run holds (what the
        uncovered workbook holds)."""
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

    @property
    def enabled_untold(self) -> int:
        """Tasks listed without an enabled state (the documented list has none): each counts
        as coverage, although it may be disabled."""
        return sum(1 for t in self.tasks if not tells_enabled(t.task))

    @property
    def multiply_covered(self) -> tuple[InstanceCoverage, ...]:
        """Instances covered by more than one enabled task (an outage's leftovers, often)."""
        return tuple(c for c in self.coverage if len(c.tasks) > 1)

    @property
    def duplicates(self) -> tuple[Duplicate, ...]:
        """Tasks whose name and data sources repeat an older task's: the extra copies."""
        return find_duplicates(self.tasks)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An extra copy of ``kept`` (same project, region, name and data sources)."""

    extra: TaskFinding
    kept: TaskFinding


def _id_order(finding: TaskFinding) -> tuple[int, str]:
    """Older first: ids grow (numeric ids by value, others as text)."""
    text = finding.task.id
    return (int(text), "") if text.isdigit() else (1 << 62, text)


def find_duplicates(tasks: Iterable[TaskFinding]) -> tuple[Duplicate, ...]:
    """The oldest task of each same-name, same-sources set is kept; the others are extras.
    Sources are compared by the one matching rule (``same_sources``)."""
    by_name: dict[tuple[str, str, str], list[TaskFinding]] = defaultdict(list)
    for finding in tasks:
        by_name[(finding.project_id, finding.region, finding.task.name)].append(finding)
    found: list[Duplicate] = []
    for group in by_name.values():
        kept: list[TaskFinding] = []
        for finding in sorted(group, key=_id_order):
            sources = finding.task.data_sources
            original = next((k for k in kept if same_sources(k.task.data_sources, sources)), None)
            if original is None:
                kept.append(finding)
            else:
                found.append(Duplicate(finding, original))
    return tuple(found)


# --------------------------------------------------------------------------- the rules


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
        candidates = index.get(source.ins_id.strip(), ())
        hits = [i for i in candidates if source_matches(i.source, source)]
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
        error = str(answer) if answer is not None else _("its project was not listed")
        return InstanceCoverage(instance, rows, CoverageStatus.UNKNOWN, error=error)
    active = tuple(t for t in tasks if task_enabled(t))
    disabled = tuple(t for t in tasks if not task_enabled(t))
    if active:
        status = CoverageStatus.COVERED
    else:
        status = CoverageStatus.DISABLED if disabled else CoverageStatus.MISSING
    return InstanceCoverage(instance, rows, status, active, disabled)


# --------------------------------------------------------------------------- unfinished runs


@dataclass(frozen=True, slots=True)
class UnfinishedRun:
    """A run directory whose journal still has tasks not settled: resuming it sends them.

    ``sources`` are the (project, region, source) of the tasks that hold their instances:
    every unfinished one while the run can be resumed.  ``stale`` says why it cannot: it is
    still going on (``live``: a process holds its directory and may send every task, so all
    still hold), or its input changed since it started, or cannot be read (its resume is
    refused); then only its tasks of unknown outcome whose settle window had not passed when
    the audit listed hold (until ``settles_at``), and ``dropped`` are the sources of the
    others, which that run will never send and which are not in DSC.
    """

    run_dir: Path
    meta: RunMeta
    tasks: int  # tasks pending, sending or of unknown outcome
    sources: tuple[tuple[str, str, DataSource], ...]  # (project, region, source) of those
    stale: str | None = None
    dropped: tuple[tuple[str, str, DataSource], ...] = ()
    settles_at: dt.datetime | None = None
    live: bool = False


def unfinished_runs(
    reports_dir: str | os.PathLike[str], *, listed_at: dt.datetime | None = None
) -> tuple[UnfinishedRun, ...]:
    """Every run directory in ``reports_dir`` with tasks not yet settled, oldest first.

    Journals are read only (a run in progress is read too); a directory whose journal cannot
    be read (damaged, from a newer bulkscan) holds nothing here.  ``listed_at``: when the
    audit began to list the service's tasks (default: now), for the settle windows of a run
    that cannot be resumed.
    """
    parent = Path(reports_dir)
    if not parent.is_dir():
        return ()
    found = []
    for entry in sorted(parent.iterdir()):
        if (entry / JOURNAL_FILE).is_file():
            run = _unfinished(entry, listed_at or local_now())
            if run is not None:
                found.append(run)
    return tuple(found)


def _unfinished(run_dir: Path, listed_at: dt.datetime) -> UnfinishedRun | None:
    from bulkscan.run.store import Journal  # here: ``--help`` loads this module, not the store

    try:
        with Journal.open(run_dir, readonly=True) as journal:
            tasks = [t for t in journal.tasks() if t.state in UNFINISHED_STATES]
            meta = journal.meta()
    except (BulkscanError, OSError):
        return None
    if not tasks:
        return None
    pid = run_dir_user(run_dir)
    if pid is not None:  # a resume would be refused while it runs; what it holds, it sends
        why = _("it is still going on (pid {pid})").format(pid=pid)
        return UnfinishedRun(run_dir, meta, len(tasks), _sources(tasks), why, live=True)
    stale = _stale(meta)
    if stale is None:
        return UnfinishedRun(run_dir, meta, len(tasks), _sources(tasks))
    window = dt.timedelta(seconds=meta.settle_window())
    settling = [t for t in tasks if t.state is not TaskState.PENDING
                and t.sent_at + window > listed_at]  # fmt: skip
    dropped = [t for t in tasks if t not in settling]
    settles_at = max((t.sent_at + window for t in settling), default=None)
    return UnfinishedRun(run_dir, meta, len(tasks), _sources(settling), stale,
                         _sources(dropped), settles_at)  # fmt: skip


def _sources(tasks: Iterable[TaskRecord]) -> tuple[tuple[str, str, DataSource], ...]:
    return tuple((t.project_id, t.region, s) for t in tasks for s in t.sources)


def _stale(meta: RunMeta) -> str | None:
    """Why a resume of the run would be refused for its input (the journal's check: the
    input's SHA-256 now is not the one it started from), or None when it would not."""
    csv_profiles = meta.profiles.file if meta.profiles and meta.input_format == "csv" else None
    try:
        now = input_sha256(meta.input_path, profiles_path=csv_profiles)
    except OSError as exc:
        return _("{file} cannot be read ({error})").format(
            file=meta.input_path, error=exc.strerror or exc
        )
    if now == meta.input_sha256:
        return None
    return _("{file} has changed since it started").format(file=meta.input_path)


def hold(result: AuditResult, runs: Sequence[UnfinishedRun]) -> AuditResult:
    """``result`` with each instance lacking an enabled task that one of ``runs`` still holds
    marked *held* by it (by the one matching rule), so the uncovered workbook leaves it out;
    one that a run which cannot be resumed dropped stays uncovered, naming that run."""
    held_index = _index((run, run.sources) for run in runs)
    stale_index = _index((run, run.dropped) for run in runs)
    gap = (CoverageStatus.MISSING, CoverageStatus.DISABLED)
    coverage: list[InstanceCoverage] = []
    holding: list[UnfinishedRun] = []
    stale: list[UnfinishedRun] = []
    for item in result.coverage:
        key = _key(item.instance)
        holder = _holder(item, held_index.get(key, ())) if item.status in gap else None
        dropper = _holder(item, stale_index.get(key, ())) if item.status in gap else None
        coverage.append(_marked(item, holder, dropper))
        holding += [holder] if holder is not None else []
        stale += [r for r in (holder, dropper) if r is not None and r.stale is not None]
    return replace(result, coverage=tuple(coverage), held_by=_distinct(holding),
                   stale=_distinct(stale))  # fmt: skip


def _marked(
    item: InstanceCoverage, holder: UnfinishedRun | None, dropper: UnfinishedRun | None
) -> InstanceCoverage:
    """``item`` held by ``holder``, else naming the run that dropped it, else as it was."""
    if holder is not None:
        until = holder.settles_at if holder.stale is not None else None
        return replace(item, status=CoverageStatus.HELD, held_by=holder.run_dir, held_until=until)
    if dropper is not None:
        return replace(item, dropped_by=dropper)
    return item


def _index(
    runs: Iterable[tuple[UnfinishedRun, Iterable[tuple[str, str, DataSource]]]],
) -> dict[_Key, list[tuple[DataSource, UnfinishedRun]]]:
    index: dict[_Key, list[tuple[DataSource, UnfinishedRun]]] = defaultdict(list)
    for run, sources in runs:
        for project, region, source in sources:
            index[(project, region, source.ins_id.strip())].append((source, run))
    return index


def _distinct(runs: Iterable[UnfinishedRun]) -> tuple[UnfinishedRun, ...]:
    return tuple({run.run_dir: run for run in runs}.values())


def _holder(
    item: InstanceCoverage, candidates: Iterable[tuple[DataSource, UnfinishedRun]]
) -> UnfinishedRun | None:
    for source, run in candidates:
        if source_matches(item.instance.source, source):
            return run
    return None


# --------------------------------------------------------------------------- listing


def _ignore(event: AuditEvent) -> None:
    """An observer that discards every event."""


async def _list_all(
    lister: Lister, groups: Sequence[_Group], *, concurrency: int, observer: AuditObserver
) -> dict[_Group, list[RemoteTask] | DscError]:
    """Every group's tasks (or the error that stopped its listing), through the run's
    ``list_groups``.  A run-fatal answer, or a usage error such as a bad endpoint, is raised.
    """
    done = 0

    def seen(group: _Group, listed: Listed) -> None:
        nonlocal done
        done += 1
        answer = listed.answer
        error = str(answer) if isinstance(answer, DscError) else None
        count = len(listed.tasks)
        observer(GroupListed(group[0], group[1], count, done, len(groups), error))

    found = await list_groups(lister, groups, concurrency=concurrency, on_listed=seen)
    fatal = fatal_answer(found)
    if fatal is not None:
        raise fatal
    return {g: a if isinstance(a := v.answer, DscError) else list(a) for g, v in found.items()}


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
    page_size: int = DEFAULT_PAGE_SIZE,
    connection: Mapping[str, Any] | None = None,
    now: Callable[[], dt.datetime] = local_now,
) -> AuditResult:
    """List every task of each (project, region) of ``inventory`` and match instances to them.

    ``connection`` is what the Summary may show of the connection (endpoints, auth method;
    never a secret).  Raises ``RunFatalError`` when the service refuses the credentials.
    """
    started = now()
    rng = rng or random.Random()
    limiter = limiter or AdaptiveRate.from_settings(settings, rng=rng)
    if limiter.on_change is None:
        limiter.on_change = lambda old, new, why: observer(RateChanged(old, new, why))
    policy = RetryPolicy.from_settings(settings)
    lister = Lister(client, limiter=limiter, policy=policy, rng=rng, page_size=page_size)
    groups = inventory.groups
    listed = await _list_all(lister, groups, concurrency=settings.concurrency, observer=observer)
    coverage, findings = match_coverage(inventory, listed)
    meta = AuditMeta(
        started_at=started,
        ended_at=now(),
        operator=_operator(),
        host=socket.gethostname(),
        bulkscan_version=__version__,
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
