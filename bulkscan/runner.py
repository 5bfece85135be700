"""Library entry points that wire the pipeline; the CLI calls only these.

>>> from bulkscan import runner
>>> prepared = runner.prepare("inputs/sample.xlsx", settings=InputSettings(region="cn-north-4"))
>>> len(prepared.plan.tasks)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan import __version__
from bulkscan import audit as _audit
from bulkscan.config import DEFAULT_PAGE_SIZE, DispatchSettings, InputLimits, InputSettings
from bulkscan.dsc.credentials import AkSk, auth_method, credential_identity
from bulkscan.dsc.endpoints import Endpoints
from bulkscan.errors import (
    DscError,
    InputError,
    JournalError,
    JournalWriteError,
    ReportError,
    UsageError,
    ValidationFailed,
)
from bulkscan.events import (
    Attempt,
    AttemptFinished,
    Event,
    EventLog,
    Observer,
    fan_out,
    ignore,
)
from bulkscan.files import write_atomically
from bulkscan.i18n import _
from bulkscan.input.loader import load_input, paused_gc
from bulkscan.input.validate import validate
from bulkscan.models import Status
from bulkscan.plan import (
    PLAN_FORMAT,
    PlanSource,
    RowStatus,
    RunInput,
    SavedPlan,
    build_plan,
    plan_hash,
    plan_to_json,
    read_saved_plan,
)
from bulkscan.report import audit as _audit_report
from bulkscan.report import errors as _errors_report
from bulkscan.report import results as _report
from bulkscan.run import coverage as _coverage
from bulkscan.run.lifecycle import (
    ActionReport,
    Lifecycle,
    PlannedAction,
    ScanRecord,
    ScanState,
    Wire,
)
from bulkscan.run.ratelimit import AdaptiveRate
from bulkscan.run.remote import Lister, list_groups
from bulkscan.run.retry import RetryPolicy
from bulkscan.run.rundir import (
    EVENTS_FILE,
    SendTarget,
    create_run_dir,
    find_latest_run,
    lock_sending,
    remove_unused_run_dir,
)
from bulkscan.run.states import RETRY_STATES, UNFINISHED_STATES, Standing, tally
from bulkscan.run.store import Journal, PlanDiffers

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

    from bulkscan.dsc.client import DscClient, RawAnswer, RemoteTask
    from bulkscan.dsc.credentials import Credentials
    from bulkscan.input.validate import Validated
    from bulkscan.models import InputBook, Instance, Issue, Plan, RawRow, RowRef
    from bulkscan.run import assets as _assets
    from bulkscan.run.assets import ResolvedRow
    from bulkscan.run.dispatch import DispatchResult
    from bulkscan.run.doctor import DoctorReport
    from bulkscan.run.remote import Listed
    from bulkscan.run.states import TaskState
    from bulkscan.run.store import RunMeta
    from bulkscan.sim.server import Faults

__all__ = [
    "AuditReport",
    "Checked",
    "Connection",
    "ExportReport",
    "PlanDiffers",
    "Prepared",
    "ResolveReport",
    "RunResult",
    "SimulatorOptions",
    "Status",
    "as_planned_before",
    "audit",
    "audit_sync",
    "check",
    "check_book",
    "check_remote",
    "covered_before",
    "doctor",
    "export",
    "input_settings_of",
    "open_run",
    "plan_source",
    "prepare_saved",
    "saved_plan",
    "to_send",
    "prepare",
    "planned",
    "read_audit_inventory",
    "remote_check",
    "resolve",
    "run",
    "rate_limiter",
    "run_settings",
    "write_audit",
    "without_held",
    "without_covered",
    "write_errors",
    "write_report",
    "status",
    "undo",
    "operate",
    "update_conflicts",
    "dedupe",
    "DedupeResult",
    "ScanStatus",
    "ActionOutcome",
]


@dataclass(frozen=True, slots=True)
class Checked:
    """An input read and validated: every issue, errors and warnings alike.  Cells without
    an error are planned too, so that what the plan refuses (a task name too long, two
    tasks of one name) is said where the cells are: ``validate`` says all that ``run`` would.
    """

    book: InputBook
    validated: Validated
    plan: Plan | None = None  # None when a cell has an error

    @property
    def issues(self) -> tuple[Issue, ...]:
        return self.plan.issues if self.plan is not None else self.validated.issues

    @property
    def has_errors(self) -> bool:
        return self.validated.has_errors or (self.plan is not None and self.plan.has_errors)

    @property
    def status(self) -> Status:
        return Status.INVALID if self.has_errors else Status.OK


@dataclass(frozen=True, slots=True)
class Prepared:
    """An input read, validated without errors, and planned."""

    book: InputBook
    validated: Validated
    plan: Plan
    covered: tuple[Issue, ...] = ()  # rows left out: another existing task scans them
    plan_file: str | None = None  # the plan file (``plan --output``) it was applied from


def check(
    path: str | os.PathLike[str],
    *,
    profiles_path: str | os.PathLike[str] | None = None,
    settings: InputSettings | None = None,
) -> Checked:
    """Load and validate ``path``; raises only for a file that cannot be read at all."""
    settings = settings or InputSettings()
    # A large inventory becomes hundreds of thousands of objects (rows, references,
    # instances) in one burst; with the cycle collector running, it would walk all of them
    # again and again, for nothing: they hold no cycles.  Pauses nest (see ``paused_gc``).
    with paused_gc():
        book = load_input(
            path,
            profiles_path=profiles_path,
            limits=settings.limits,
            encoding=settings.encoding,
        )
        return check_book(book, settings=settings)


def check_book(book: InputBook, *, settings: InputSettings | None = None) -> Checked:
    """Validate an input already read (a file's, or rows given in memory: ``load_rows``)."""
    with paused_gc():  # planning makes another object per instance, as validating does
        validated = validate(book, settings or InputSettings())
        return Checked(book, validated, None if validated.has_errors else build_plan(validated))


def prepare(
    path: str | os.PathLike[str],
    *,
    profiles_path: str | os.PathLike[str] | None = None,
    settings: InputSettings | None = None,
) -> Prepared:
    """Load, validate and plan; raises ``ValidationFailed`` with every issue if any is an error."""
    return planned(check(path, profiles_path=profiles_path, settings=settings))


def planned(checked: Checked) -> Prepared:
    """Plan a checked input; raises ``ValidationFailed`` with every issue if any is an error."""
    if checked.has_errors or checked.plan is None:
        raise ValidationFailed(checked.issues)
    return Prepared(checked.book, checked.validated, checked.plan)


# --- plan files: ``plan --output`` then ``run PLAN.json`` -----------------------------------

_PLAN_SETTINGS = ("project_id", "region", "timezone", "start_time_unit", "strict_db_types",
                  "encoding")  # fmt: skip
_PLAN_FILE_CAP = 1 << 30


def plan_source(prepared: Prepared, settings: InputSettings) -> PlanSource:
    """What ``prepared`` was made from, for its plan file: each input file's SHA-256 and the
    input settings that shaped the plan."""
    book = prepared.book
    paths = [book.path] + ([book.profiles_path] if book.profiles_path else [])
    files = tuple((p, _file_sha256(p, missing_ok=False) or "") for p in paths)
    return PlanSource(files, {name: getattr(settings, name) for name in _PLAN_SETTINGS})


def write_plan(prepared: Prepared, settings: InputSettings, path: str | os.PathLike[str]) -> Path:
    """Write ``prepared``'s plan file (``plan --output``), every request as it will be sent,
    atomically: a full disk leaves no half plan to apply.  ``ReportError`` names the file."""
    document = plan_to_json(prepared.plan, plan_source(prepared, settings))
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            fix = _("make room on its disk")
        else:
            fix = _("make it writable, or choose another --output,")
        raise ReportError(
            _("cannot write {path}: {error}; {fix} and run the command again").format(
                path=target, error=exc.strerror or exc, fix=fix
            )
        ) from None


def _file_sha256(path: str, *, missing_ok: bool = True) -> str | None:
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        if missing_ok:
            return None
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", file=path) from None
    return digest.hexdigest()


def saved_plan(path: str | os.PathLike[str]) -> SavedPlan | None:
    """The plan file at ``path`` (told by its content, whatever its name), or None when
    ``path`` is not one (an inventory, or missing: the loader says what is wrong)."""
    name = os.fspath(path)
    try:
        with Path(name).open("rb") as handle:
            if not handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
                return None
            handle.seek(0)
            data = handle.read(_PLAN_FILE_CAP)
        document = json.loads(data.decode("utf-8-sig"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        return None
    return read_saved_plan(document, path=name)


def prepare_saved(saved: SavedPlan, *, limits: InputLimits | None = None) -> Prepared:
    """The plan of ``saved`` made again from its inventory with its settings, the same to
    the byte; refused (``InputError`` naming the file) once an input file has changed."""
    for path, digest in saved.source.files:
        now = _file_sha256(path)
        if now != digest:
            what = "is gone" if now is None else "changed since the plan was made"
            raise InputError(f"{saved.path}: {path} {what}; re-run bulkscan plan", file=path)
    settings = input_settings_of(saved, limits=limits)
    files = [path for path, _ in saved.source.files]
    prepared = prepare(files[0], profiles_path=files[1] if len(files) > 1 else None,
                       settings=settings)  # fmt: skip
    if plan_hash(prepared.plan) != saved.plan_hash:
        raise InputError(
            f"{saved.path}: planning {files[0]} again gives other tasks (another bulkscan "
            "version or time zone data?); re-run bulkscan plan",
            file=saved.path,
        )
    return dataclasses.replace(prepared, plan_file=saved.path)


def input_settings_of(saved: SavedPlan, *, limits: InputLimits | None = None) -> InputSettings:
    """The input settings ``saved`` was planned with."""
    recorded = {k: v for k, v in saved.source.settings.items() if k in _PLAN_SETTINGS}
    try:
        return InputSettings(**recorded, limits=limits or InputLimits())
    except TypeError:
        raise InputError(f"{saved.path}: its settings cannot be read", file=saved.path) from None


# --- sending -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """How to reach DSC: credentials, endpoints and TLS (never printed: see ``describe``)."""

    credentials: Credentials
    endpoints: Endpoints = field(default_factory=Endpoints)
    ssl: ssl.SSLContext | bool = True

    def describe(self) -> dict[str, Any]:
        """What the journal and the report may show: no secret."""
        return {
            "auth_method": auth_method(self.credentials),
            "endpoint": self.endpoints.override,
            "endpoints_per_region": dict(self.endpoints.per_region),
            "tls_verify": self.ssl is not False,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """Run against an embedded DSC simulator instead of the real service (the demo)."""

    faults: Faults | None = None
    seed: int | None = None
    quota: tuple[int, float] | None = None
    list_shape: str | None = None  # a ``--list-shape`` spec; None: the documented shape
    dsc_disabled: tuple[str, ...] = ()
    assets: str | None = None  # the asset centre's instances (``simulate --assets`` JSON)
    cover: tuple[Instance, ...] = ()  # without ``assets``: active, authorised assets for these
    state: Path | None = None  # keep the simulated tasks here, so the next command sees them


@dataclass(frozen=True, slots=True)
class RunResult:
    """Where a run left its files, how dispatch ended, its task counts and its status."""

    run_dir: Path
    dispatch: DispatchResult
    resumed: bool
    notes: tuple[str, ...] = ()  # things the user should know that are not task outcomes
    covered: int = 0  # input rows not sent: another existing task already scans them

    @property
    def counts(self) -> Mapping[TaskState, int]:
        """Tasks by state, over the whole journal (a resumed run's earlier work included)."""
        return self.dispatch.counts

    @property
    def unfinished(self) -> int:
        """Tasks not sent yet or whose outcome is unknown: what ``--resume`` works on."""
        return self.dispatch.unfinished

    @property
    def failed(self) -> int:
        """Tasks that ended without their scan task: failed, gave up or conflict."""
        d = self.dispatch
        return d.total - d.succeeded - d.unfinished

    @property
    def standing(self) -> Standing:
        """How the run stands after this session (``states.Standing``, THE rule)."""
        d = self.dispatch
        return Standing(
            tally(d.counts),
            stop_reason=d.stop_reason,
            held_back=d.held_back,
            duplicates=len(d.duplicates),
            unchecked=bool(d.unchecked),
            retryable=sum(d.counts.get(s, 0) for s in RETRY_STATES),
        )

    @property
    def status(self) -> Status:
        """``Standing.status``: STOPPED, INCOMPLETE or OK, as ``report`` says it too."""
        return self.standing.status

    @property
    def needs_audit(self) -> bool:
        """The closing listing found a planned name more than once (a task created twice,
        by this run or another), or could not look: an audit has to tell, then dedupe."""
        return self.standing.needs_audit


def _check_same_input(journal: Journal, prepared: Prepared, digest: str) -> None:
    """Refuse to resume a run of another file or input, or with options that plan other
    tasks (``PlanDiffers``, naming the run's own resume command, as its summary would);
    ``to_send`` asks before the question, ``open_run`` before sending."""
    _check_same_file(journal.meta(), prepared)
    resume = _report.resume_command(journal.meta(), journal.run_dir)
    journal.check_same_input(prepared.book.sha256, digest, resume_command=resume)


def _check_same_file(meta: RunMeta, prepared: Prepared) -> None:
    """Refuse to resume a run of another file (another name, other content), naming both:
    "FILE has changed" would send the person to restore a file nobody changed."""
    then, now = Path(meta.input_path), Path(prepared.book.path)
    if then.name != now.name and meta.input_sha256 != prepared.book.sha256:
        raise JournalError(
            _(
                "run {run} is a run of {then}, not of {now}: resume it with {then}, or give "
                "--resume the run directory of a run of {now} (or none: its latest)"
            ).format(run=meta.run_id, then=then, now=now)
        )


def _service_at(settings: Mapping[str, Any], region: str) -> str:
    """Where a run with ``settings`` (``run_settings``) sends ``region``'s requests, as a
    person reads it."""
    if settings.get("simulated"):
        return _("the embedded simulator")
    endpoints = Endpoints(
        override=settings.get("endpoint"), per_region=settings.get("endpoints_per_region")
    )
    return endpoints.url_for(region)


def _check_same_service(meta: RunMeta, settings: Mapping[str, Any], prepared: Prepared) -> None:
    """Refuse a resume that would send elsewhere than the run did: its tasks are looked up
    where they were sent, so another service (or the embedded simulator for the real one)
    would take every task sent before for one never sent, and send it again there."""
    if not settings:  # a caller that records no connection (a library test)
        return
    for region in sorted({task.region for task in prepared.plan.tasks}):
        then, now = _service_at(meta.settings, region), _service_at(settings, region)
        if then != now:
            raise JournalError(
                _(
                    "run {run} sent region {region}'s tasks to {then}, and this resume would "
                    "send to {now}: resume against the same service (the run's tasks are "
                    "looked up there), or run without --resume to start a new run"
                ).format(run=meta.run_id, region=region, then=then, now=now)
            )


def open_run(
    prepared: Prepared,
    *,
    reports_dir: str | os.PathLike[str] = "reports",
    resume: str | os.PathLike[str] | bool = False,
    settings: dict[str, Any] | None = None,
    command: Sequence[str] = (),
) -> tuple[Journal, bool]:
    """A new journal for ``prepared``, or the one being resumed (checked against the input)."""
    digest = plan_hash(prepared.plan)
    if resume:
        run_dir = _resume_dir(prepared, reports_dir, resume)
        journal = Journal.open(run_dir)
        try:
            _check_same_input(journal, prepared, digest)
            _check_same_service(journal.meta(), settings or {}, prepared)
            journal.mark_resumed(command, settings or {})
        except BaseException:
            journal.close()
            raise
        return journal, True
    run_dir = create_run_dir(reports_dir, prepared.book.path)
    covered = prepared.covered
    run_input = RunInput.from_book(
        prepared.book,
        prepared.plan,
        prepared.plan.issues + covered,
        covered=[i.ref for i in covered if i.ref is not None],
    )
    try:
        journal = Journal.create(
            run_dir,
            run_input=run_input,
            plan=prepared.plan,
            plan_hash=digest,
            settings=settings or {},
            version=__version__,
            command=command,
        )
    except BaseException:
        remove_unused_run_dir(run_dir)
        raise
    return journal, False


def to_send(
    prepared: Prepared,
    *,
    reports_dir: str | os.PathLike[str] = "reports",
    resume: str | os.PathLike[str] | bool = False,
    limit: int | None = None,
) -> int:
    """How many tasks a run would send: the plan's, or the resumed run's unfinished ones.

    The same count the run itself reports as ``unfinished`` (``UNFINISHED_STATES``), capped
    by ``limit``; a resumed run that is not of this input is refused here, before any question.
    """
    count = len(prepared.plan.tasks)
    if resume:
        run_dir = _resume_dir(prepared, reports_dir, resume)
        with Journal.open(run_dir, readonly=True) as journal:
            _check_same_input(journal, prepared, plan_hash(prepared.plan))
            count = sum(n for s, n in journal.counts().items() if s in UNFINISHED_STATES)
    return count if limit is None else min(count, limit)


def _resume_dir(
    prepared: Prepared,
    reports_dir: str | os.PathLike[str],
    resume: str | os.PathLike[str] | bool,
) -> Path:
    if not isinstance(resume, bool):
        return Path(resume)
    latest = find_latest_run(reports_dir, prepared.book.path)
    if latest is None:
        raise JournalError(
            _(
                "no earlier run of {file} in {reports_dir}: "
                "give the run directory (--resume DIR), or run without --resume"
            ).format(file=prepared.book.path, reports_dir=reports_dir)
        )
    return latest


def rate_limiter(settings: DispatchSettings | None = None) -> AdaptiveRate:
    """The one rate limiter for a run and the checks before it (``remote_check``,
    ``check_remote``, ``run``): each of their requests counts against one rate and one
    learned quota, as the service counts them all."""
    return AdaptiveRate.from_settings(settings or DispatchSettings())


def run_settings(
    dispatch_settings: DispatchSettings,
    input_settings: InputSettings,
    connection: dict[str, Any],
    *,
    limit: int | None,
) -> dict[str, Any]:
    """The settings a journal records: everything that shaped the run, no secret."""
    return {
        "dispatch": dataclasses.asdict(dispatch_settings),
        "start_time_unit": input_settings.start_time_unit,
        "timezone": input_settings.timezone,
        "default_project_id": input_settings.project_id,
        "default_region": input_settings.region,
        "limit": limit,
        **connection,
    }


async def run(
    prepared: Prepared,
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    input_settings: InputSettings | None = None,
    dispatch_settings: DispatchSettings | None = None,
    reports_dir: str | os.PathLike[str] = "reports",
    resume: str | os.PathLike[str] | bool = False,
    limit: int | None = None,
    observer: Observer = ignore,
    stop: asyncio.Event | None = None,
    command: Sequence[str] = (),
    audit_command: str | None = None,
    listed: Mapping[tuple[str, str], Listed] | None = None,
    limiter: AdaptiveRate | None = None,
) -> RunResult:
    """Create every planned task of ``prepared`` in DSC, journalled, exactly once.

    Give ``connection`` for a real service, or ``simulator`` for the embedded one.
    ``audit_command``: the command that audits the run's inventory as it was read, kept in
    the journal for the run's next step when a name may exist twice (``Standing.next``).
    ``listed`` (``check_remote(...).listed``): the listing a new run reconciles with instead
    of listing again, when it is at most ``PRELISTED_MAX_AGE_S`` old.  ``limiter``
    (``rate_limiter``): the one the checks before the run used, so that every request to
    the service counts against one rate and one learned quota.
    """
    dispatch_settings = dispatch_settings or DispatchSettings()
    input_settings = input_settings or InputSettings()
    notes: list[str] = []
    async with _connected(connection, simulator) as conn:
        described = _described(conn, simulator)
        settings = run_settings(dispatch_settings, input_settings, described, limit=limit)
        settings |= _input_facts(prepared)
        with contextlib.ExitStack() as stack:
            journal, resumed, released_at = _open_locked(
                stack,
                prepared,
                conn,
                observer=observer,
                reports_dir=reports_dir,
                resume=resume,
                settings=settings,
                command=command,
            )
            if audit_command is not None:
                journal.set_meta(audit_command=audit_command)
            log = _TolerantLog(EventLog(journal.run_dir / EVENTS_FILE), notes)
            stack.callback(log.close)
            attempts = _AttemptCount()
            try:
                result = await _send(
                    prepared,
                    journal,
                    conn,
                    dispatch_settings,
                    fan_out(observer, log, attempts),
                    limit=limit,
                    stop=stop,
                    listed=None if resumed else _fresh(listed, after=released_at),
                    limiter=limiter,
                )
            except asyncio.CancelledError:
                if stop is None or not stop.is_set():
                    raise
                result = _abandoned(journal, attempts.count)
    covered = len(prepared.covered)
    return RunResult(journal.run_dir, result, resumed, tuple(notes), covered=covered)


def _input_facts(prepared: Prepared) -> dict[str, Any]:
    """What the journal keeps of the input beyond ``run_settings``: the plan file applied
    (resume and re-run commands name it) and the profiles' own time zones (the workbook
    shows each start time in its zone)."""
    profiles = prepared.validated.profiles.values()
    zones = {p.name: p.timezone for p in profiles if p.timezone}
    facts: dict[str, Any] = {"profile_timezones": zones} if zones else {}
    return facts | ({"plan_file": prepared.plan_file} if prepared.plan_file else {})


class _TolerantLog:
    """The event log, which stops (with a note) when it cannot be written: the journal,
    not the log, is what a resume needs, so a full disk is reported by the journal alone."""

    def __init__(self, log: EventLog, notes: list[str]) -> None:
        self._log: EventLog | None = log
        self._notes = notes

    def __call__(self, event: Event) -> None:
        if self._log is not None:
            self._guard(lambda log: log(event))

    def close(self) -> None:
        if self._log is not None:
            self._guard(EventLog.close)
            self._log = None

    def _guard(self, action: Callable[[EventLog], None]) -> None:
        log = self._log
        assert log is not None
        try:
            action(log)
        except OSError as exc:
            self._log = None
            with contextlib.suppress(OSError):
                log.close()
            self._notes.append(
                f"the event log stopped: {exc.strerror or exc} (the journal holds every step)"
            )


def _open_locked(
    stack: contextlib.ExitStack[bool | None],
    prepared: Prepared,
    conn: Connection,
    *,
    observer: Observer,
    reports_dir: str | os.PathLike[str],
    resume: str | os.PathLike[str] | bool,
    settings: dict[str, Any],
    command: Sequence[str],
) -> tuple[Journal, bool, float]:
    """The run's journal, whether it is resumed, and when another run last let go of one of
    its sending locks (``HeldLocks.released_at``), with every lock held.

    A resume opens its run directory first (a directory in use is refused by its own lock);
    a fresh run takes the sending lock first, so a refused run leaves no run directory.
    """
    targets = _send_targets(prepared, conn)
    options: dict[str, Any] = {
        "reports_dir": reports_dir, "resume": resume, "settings": settings, "command": command
    }  # fmt: skip
    if resume:
        journal, resumed = open_run(prepared, **options)
        stack.enter_context(journal)
        locks = stack.enter_context(lock_sending(targets, observer))
        locks(journal.run_dir)
        return journal, resumed, locks.released_at
    locks = stack.enter_context(lock_sending(targets, observer))
    journal, resumed = open_run(prepared, **options)
    stack.enter_context(journal)
    locks(journal.run_dir)
    return journal, resumed, locks.released_at


def _send_targets(prepared: Prepared, conn: Connection) -> set[SendTarget]:
    """Each (endpoint, project, credential identity) the plan sends to, for the sending lock."""
    identity = credential_identity(conn.credentials)
    return {
        SendTarget(conn.endpoints.url_for(t.region), t.project_id, identity)
        for t in prepared.plan.tasks
    }


class _AttemptCount:
    """Counts the requests that left during this run (an observer)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self.count += 1


def _abandoned(journal: Journal, requests: int) -> DispatchResult:
    """The end of a run cancelled after ``stop`` was set (a second Ctrl-C): the caller asked
    to abandon requests in flight, so the cancellation is taken as an answer, not passed on.

    Tasks left *sending* stay so in the journal; a resume looks them up before sending.
    """
    from bulkscan.run.dispatch import DispatchResult

    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    message = "requests in flight abandoned; --resume checks them before sending again"
    journal.mark_ended("interrupted", message)
    return DispatchResult(
        counts=journal.counts(),
        requests=requests,
        stop_reason="interrupted",
        message=message,
        learned_rate_per_s=0.0,
    )


@contextlib.asynccontextmanager
async def _connected(
    connection: Connection | None, simulator: SimulatorOptions | None
) -> AsyncIterator[Connection]:
    if simulator is None:
        if connection is None:
            raise ValueError("run() needs a connection or simulator options")
        yield connection
        return
    from bulkscan.sim.server import (
        DEFAULT_AK,
        DEFAULT_SK,
        Faults,
        Simulator,
        parse_list_shape,
        region_endpoint,
    )

    # the embedded simulator is not the user's service: a request it sees abandoned (Ctrl-C
    # twice) is not worth aiohttp's server traceback on the user's terminal
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    shape = parse_list_shape(simulator.list_shape or "")
    if simulator.state is not None:  # the reports folder, made once the simulator starts
        _make_folder(simulator.state.parent)
    sim = Simulator(
        faults=simulator.faults or Faults(),
        seed=simulator.seed,
        quota=simulator.quota,
        list_shape=shape,
        dsc_disabled=simulator.dsc_disabled,
        assets=_simulated_assets(simulator),
        state_path=simulator.state,
        save_each_change=False,
    )
    async with sim:
        endpoints = Endpoints(override=region_endpoint(sim.url))  # each region apart
        yield Connection(credentials=AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=endpoints)


def _described(conn: Connection, simulator: SimulatorOptions | None) -> dict[str, Any]:
    """The connection as a journal or report records it.

    The embedded simulator listens on a new port each time: its URL would read as a setting
    changed by every resume, so none is recorded (the report names the simulator instead).
    """
    described = conn.describe() | {"simulated": simulator is not None}
    if simulator is not None:
        described["endpoint"] = None
    return described


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder ({exc.strerror})", file=str(folder)) from None


def _simulated_assets(simulator: SimulatorOptions) -> Any:
    """The embedded simulator's asset centre: the file given, else one covering ``cover``."""
    from bulkscan.sim.server import AssetInstance, Assets, load_assets

    if simulator.assets:
        return load_assets(Path(simulator.assets))
    if not simulator.cover:
        return None
    return Assets(
        AssetInstance(i.project_id, i.ins_id, f"instance-{n}", db_type=i.db_type)
        for n, i in enumerate(simulator.cover, 1)
    )


@contextlib.asynccontextmanager
async def _client(
    conn: Connection,
    settings: DispatchSettings,
    *,
    on_attempt: Callable[[Attempt], None] | None = None,
    on_answer: Callable[[RawAnswer], None] | None = None,
) -> AsyncIterator[DscClient]:
    """A DSC client over a session this function owns, sized to the concurrency."""
    import aiohttp

    from bulkscan.dsc.client import DscClient

    connector = aiohttp.TCPConnector(limit=settings.concurrency, ssl=conn.ssl)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield DscClient(
            session,
            conn.credentials,
            endpoints=conn.endpoints,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            ssl_context=conn.ssl,
            on_attempt=on_attempt,
            on_answer=on_answer,
        )


async def _send(
    prepared: Prepared,
    journal: Journal,
    conn: Connection,
    settings: DispatchSettings,
    observer: Observer,
    *,
    limit: int | None,
    stop: asyncio.Event | None,
    listed: Mapping[tuple[str, str], Listed] | None = None,
    limiter: AdaptiveRate | None = None,
) -> DispatchResult:
    from bulkscan.run.dispatch import dispatch

    async with _client(conn, settings) as client:
        try:
            return await dispatch(
                prepared.plan.tasks,
                journal,
                client,
                settings,
                observer=observer,
                limit=limit,
                stop=stop,
                listed=listed,
                limiter=limiter,
            )
        except BaseExceptionGroup as group:  # a journal that cannot write stops every worker
            failed = group.subgroup(JournalWriteError)
            if failed is None:
                raise
            raise _first(failed) from None


def _first(group: BaseExceptionGroup[JournalWriteError]) -> JournalWriteError:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, JournalWriteError)
    return leaf


# --- preflight (``bulkscan doctor``) ----------------------------------------------------------


async def doctor(
    groups: Sequence[tuple[str, str]],
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    record: str | os.PathLike[str] | None = None,
) -> DoctorReport:
    """Read-only checks of each (project, region) a run would touch; ``record`` saves the raw
    answers (headers and bodies, no credential) to that file."""
    from bulkscan.run.doctor import check_groups, write_record

    settings = dispatch_settings or DispatchSettings()
    answers: list[RawAnswer] = []
    keep = answers.append if record is not None else None
    async with (
        _connected(connection, simulator) as conn,
        _client(conn, settings, on_answer=keep) as client,
    ):
        report = await check_groups(groups, client, rate_per_s=settings.rate_per_s)
    if record is not None:
        await asyncio.to_thread(write_record, record, answers)
    return report


# --- coverage audit (``bulkscan audit``) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditReport:
    """An audit's findings and the workbooks written (``uncovered`` None when all is covered)."""

    result: _audit.AuditResult
    workbook: Path
    uncovered: Path | None
    run_command: str | None
    resume_command: str | None = None  # the next step when unfinished runs hold instances

    @property
    def status(self) -> Status:
        """OK when every instance is covered, else INCOMPLETE (unknown ones included)."""
        return Status.OK if self.result.all_covered else Status.INCOMPLETE


def read_audit_inventory(
    path: str | os.PathLike[str],
    *,
    profiles_path: str | os.PathLike[str] | None = None,
    settings: InputSettings | None = None,
) -> _audit.Inventory:
    """Load ``path`` and keep what an audit needs; ``ValidationFailed`` for a bad needed cell."""
    settings = settings or InputSettings()
    book = load_input(
        path, profiles_path=profiles_path, limits=settings.limits, encoding=settings.encoding
    )
    return _audit.read_inventory(book, settings)


async def audit(
    inventory: _audit.Inventory,
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    reports_dir: str | os.PathLike[str] = "reports",
    run_options: Sequence[str] = (),
    observer: _audit.AuditObserver | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AuditReport:
    """List DSC's tasks for ``inventory``, match them, write the audit (and uncovered) workbook.

    Instances that an unfinished run of ``reports_dir`` still holds are *held* (left out of
    the uncovered workbook; ``resume_command`` says which run to resume).

    ``run_options`` are appended to the ``bulkscan run`` command shown for the uncovered rows.
    """
    settings = dispatch_settings or DispatchSettings()
    seen: _audit.AuditObserver = observer or (lambda event: None)
    await asyncio.to_thread(_reports_dir_ready, reports_dir)  # before any request is spent

    def on_attempt(attempt: Attempt) -> None:
        seen(AttemptFinished(attempt, None))

    async with (
        _connected(connection, simulator) as conn,
        _client(conn, settings, on_attempt=on_attempt) as client,
    ):
        described = _described(conn, simulator)
        result = await _audit.audit(
            inventory,
            client=client,
            settings=settings,
            observer=seen,
            page_size=page_size,
            connection=described,
        )
    listed_at = result.meta.started_at  # settle windows are judged from when listing began
    runs = await asyncio.to_thread(_audit.unfinished_runs, reports_dir, listed_at=listed_at)
    result = _audit.hold(result, runs)
    return await asyncio.to_thread(write_audit, result, reports_dir, run_options=run_options)


def _reports_dir_ready(reports_dir: str | os.PathLike[str]) -> None:
    try:
        Path(reports_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            _("--reports-dir {folder}: cannot create it ({error})").format(
                folder=reports_dir, error=exc.strerror
            )
        ) from None


def write_audit(
    result: _audit.AuditResult,
    reports_dir: str | os.PathLike[str] = "reports",
    *,
    run_options: Sequence[str] = (),
) -> AuditReport:
    """Write the audit workbook, and the uncovered workbook when something is not covered."""
    _reports_dir_ready(reports_dir)
    files = _audit_report.audit_files(reports_dir, result.inventory.book.path, result.meta.stamp)
    command = uncovered = None
    if result.uncovered:
        uncovered = files.uncovered
        command = shlex.join(["bulkscan", "run", str(uncovered), *run_options])
        with _workbook_written(uncovered):
            _audit_report.write_uncovered_workbook(result, uncovered, run_command=command)
    with _workbook_written(files.audit):
        _audit_report.write_audit_workbook(
            result, files.audit, uncovered_path=uncovered, run_command=command
        )
    resume = _audit_report.resume_step(result)
    return AuditReport(result, files.audit, uncovered, command, resume)


def audit_sync(inventory: _audit.Inventory, **options: Any) -> AuditReport:
    """``audit`` for callers without an event loop (same keyword options)."""
    return asyncio.run(audit(inventory, **options))


# --- names to ins_ids (``bulkscan resolve``) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolveReport:
    """Every instances row matched to DSC's asset centre, and the workbook written."""

    book: InputBook
    rows: tuple[ResolvedRow, ...]
    workbook: Path
    requests: int  # asset-centre pages asked for

    @property
    def issues(self) -> tuple[Issue, ...]:
        return tuple(i for r in self.rows for i in r.issues)

    @property
    def failed(self) -> int:
        """Rows that may not be sent (not found, ambiguous, not active, not authorised...)."""
        return sum(1 for r in self.rows if r.check != "ok")

    @property
    def status(self) -> Status:
        """OK when every row resolved and passed the check, else INCOMPLETE."""
        return Status.INCOMPLETE if self.failed else Status.OK


async def resolve(
    path: str | os.PathLike[str],
    *,
    profiles_path: str | os.PathLike[str] | None = None,
    settings: InputSettings | None = None,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    output: str | os.PathLike[str] | None = None,
) -> ResolveReport:
    """List DSC's asset centre for every project and region ``path`` names, fill each row's
    ins_id and db_type from it (by ins_name, or check the ins_id given), and write
    ``output`` (default ``<stem>-resolved.xlsx`` beside the input)."""
    from bulkscan.report import resolved as _resolved
    from bulkscan.run import assets as _assets

    settings = settings or InputSettings()
    pace = dispatch_settings or DispatchSettings()
    book = load_input(
        path, profiles_path=profiles_path, limits=settings.limits, encoding=settings.encoding
    )
    rows = book.instances.rows
    scopes = [s for s in (_assets.row_scope(r, settings) for r in rows) if s is not None]
    if simulator is not None and simulator.assets is None:  # as the check of a run has it
        simulator = dataclasses.replace(simulator, cover=_row_cover(rows, settings))
    catalog = await _read_catalog(scopes, connection, simulator, pace)
    resolved = tuple(_assets.resolve_rows(rows, catalog, settings))
    target = Path(output) if output is not None else _resolved.resolved_path(book.path)
    issues = tuple(i for r in resolved for i in r.issues)
    with _workbook_written(target):
        written = await asyncio.to_thread(_resolved.write_resolved, book, resolved, issues, target)
    return ResolveReport(book, resolved, written, catalog.requests)


def _row_cover(rows: Sequence[RawRow], settings: InputSettings) -> tuple[Instance, ...]:
    """The rows that name an ins_id and a db_type, as instances: what the embedded simulator's
    asset centre holds for ``resolve --simulate``, as it holds a run's instances for the
    run's check (a name-only row is not in it: there is no id to give it)."""
    from bulkscan.input.schema import canonical_db_type
    from bulkscan.models import Instance
    from bulkscan.run import assets as _assets

    cover = []
    for row in rows:
        scope = _assets.row_scope(row, settings)
        ins_id = str(row.values.get("ins_id") or "").strip()
        db_type = str(row.values.get("db_type") or "").strip()
        if scope is not None and ins_id and db_type:
            wire = canonical_db_type(db_type) or db_type
            cover.append(Instance(row.ref, ins_id, wire, scope[0], scope[1], profile=""))
    return tuple(cover)


async def _read_catalog(
    scopes: Sequence[tuple[str, str]],
    connection: Connection | None,
    simulator: SimulatorOptions | None,
    pace: DispatchSettings,
    *,
    limiter: AdaptiveRate | None = None,
) -> _assets.Catalog:
    """The asset centre of ``scopes``, read over a connection and client owned here."""
    from bulkscan.run import assets as _assets

    async with (
        _connected(connection, simulator) as conn,
        _client(conn, pace) as client,
    ):
        return await _assets.read_catalog(
            scopes,
            client,
            limiter=limiter or rate_limiter(pace),
            policy=RetryPolicy.from_settings(pace),
        )


# --- what the service already holds (``plan --check-remote``, ``run``) ----------------------

#: A listing older than this (a person thought long at the prompt) is made again by reconcile.
PRELISTED_MAX_AGE_S = 60.0


async def check_remote(
    prepared: Prepared,
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    limiter: AdaptiveRate | None = None,
) -> _coverage.RemoteCheck:
    """List the service's tasks of every (project, region) of the plan (read only, through
    the one listing path and retry policy): which planned tasks exist or conflict, which
    rows another task covers.  ``limiter``: the run's (``rate_limiter``), when a run
    follows.  Raises ``DscError`` on a run-fatal answer."""
    pace = dispatch_settings or DispatchSettings()
    limiter = limiter or rate_limiter(pace)
    groups = [(t.project_id, t.region) for t in prepared.plan.tasks]
    async with _connected(connection, simulator) as conn, _client(conn, pace) as client:
        policy = RetryPolicy.from_settings(pace)
        lister = Lister(client, limiter=limiter, policy=policy)
        listed = await list_groups(lister, groups, concurrency=pace.concurrency)
    return _coverage.check_plan(prepared.plan.tasks, listed, requests=lister.requests)


def without_covered(prepared: Prepared, covered: Sequence[_coverage.CoveredRow]) -> Prepared:
    """``prepared`` planned again without the rows another existing task already scans: a
    task partly covered is named from what it still sends (see ``bulkscan.run.coverage``)."""
    notes = tuple(_coverage.covered_issue(c) for c in covered)
    return _narrowed(prepared, {c.ref for c in covered}, notes)


def covered_before(
    prepared: Prepared,
    *,
    reports_dir: str | os.PathLike[str] = "reports",
    resume: str | os.PathLike[str] | bool = True,
) -> Prepared:
    """``prepared`` without the rows the resumed run left out as covered when it began (so
    its plan is the journal's; coverage is decided once, by the run that created it)."""
    run_dir = _resume_dir(prepared, reports_dir, resume)
    with Journal.open(run_dir, readonly=True) as journal:
        refs = {r.ref for r in journal.rows() if r.status is RowStatus.COVERED}
        notes = tuple(
            i
            for i in journal.issues()
            if i.ref in refs and i.message.startswith(_coverage.COVERED_PREFIX)
        )
    return _narrowed(prepared, refs, notes)


def _narrowed(prepared: Prepared, refs: set[RowRef], notes: tuple[Issue, ...]) -> Prepared:
    if not refs:
        return prepared
    validated = prepared.validated
    kept = tuple(i for i in validated.instances if i.ref not in refs)
    narrowed = dataclasses.replace(validated, instances=kept)
    plan = build_plan(narrowed)
    if plan.has_errors:
        raise ValidationFailed(plan.issues)
    return dataclasses.replace(
        prepared, validated=narrowed, plan=plan, covered=prepared.covered + notes
    )


# A lock file's time is coarse: a listing begun this soon after a release is not trusted.
_RELEASE_MARGIN_S = 1.0


def _fresh(
    listed: Mapping[tuple[str, str], Listed] | None, *, after: float = 0.0
) -> dict[tuple[str, str], Listed] | None:
    """The listings reconcile may trust: young enough (``PRELISTED_MAX_AGE_S``) and begun
    after another run last let go of a sending lock of this run (``after``, wall clock),
    since what that run sent may be missing from a listing made before."""
    if listed is None:
        return None
    now = time.monotonic()
    return {
        group: done
        for group, done in listed.items()
        if now - done.at <= PRELISTED_MAX_AGE_S
        and all(a.at.timestamp() > after + _RELEASE_MARGIN_S for a in done.attempts[-1:])
    }


# --- the asset-centre check before sending (``validate --remote``, ``run``) --------------------


async def remote_check(
    instances: Sequence[Instance],
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    limiter: AdaptiveRate | None = None,
) -> _assets.InstanceCheck:
    """Check every instance against DSC's asset centre: it exists, is active, DSC is
    authorised to reach it, its type can carry a metadata task.  With ``simulator`` and no
    asset file, the embedded simulator's asset centre holds exactly these instances.
    ``limiter``: the run's (``rate_limiter``), when a run follows."""
    from bulkscan.run import assets as _assets

    pace = dispatch_settings or DispatchSettings()
    if simulator is not None and simulator.assets is None:
        simulator = dataclasses.replace(simulator, cover=tuple(instances))
    scopes = [(i.project_id, i.region) for i in instances]
    catalog = await _read_catalog(scopes, connection, simulator, pace, limiter=limiter)
    found = _assets.check_instances(instances, catalog)
    return dataclasses.replace(found, requests=catalog.requests)


def without_held(prepared: Prepared, checked: _assets.InstanceCheck) -> Prepared:
    """``prepared`` re-planned without the rows the check held back, each instance carrying
    the asset centre's spelling of its type, the check's issues carried into the plan (so
    the journal and the workbook say why a row was not sent); ``ValidationFailed`` if the
    plan then fails."""
    from bulkscan.run import assets as _assets

    validated = prepared.validated
    kept = tuple(
        _assets.with_asset_types(i, checked.wire_types)
        for i in validated.instances
        if i.ref not in checked.held
    )
    narrowed = dataclasses.replace(validated, instances=kept)
    plan = build_plan(narrowed)
    if plan.has_errors:
        raise ValidationFailed(plan.issues)
    plan = dataclasses.replace(plan, issues=(*plan.issues, *checked.issues))
    return dataclasses.replace(prepared, validated=narrowed, plan=plan)  # plan_file kept


def as_planned_before(
    prepared: Prepared,
    *,
    reports_dir: str | os.PathLike[str] = "reports",
    resume: str | os.PathLike[str] | bool = True,
) -> Prepared:
    """``prepared`` narrowed as the run being resumed planned it, from its journal alone: the
    rows its asset-centre check held back stay out, the others carry the types it sent.  A
    resume finishes that plan without reading the asset centre again."""
    from bulkscan.run import assets as _assets

    run_dir = _resume_dir(prepared, reports_dir, resume)
    with Journal.open(run_dir, readonly=True) as journal:
        tasks = journal.tasks()
    planned = {(r.sheet, r.row) for t in tasks for r in t.rows}
    sent = {(t.project_id, t.region, s.ins_id): s.db_type for t in tasks for s in t.sources}
    held = frozenset(
        i.ref for i in prepared.validated.instances if (i.ref.sheet, i.ref.row) not in planned
    )
    return without_held(prepared, _assets.InstanceCheck((), held, sent))


# --- what DSC has, as an input workbook (``bulkscan export``) -----------------------------------


@dataclass(frozen=True, slots=True)
class ExportReport:
    """The asset centre's instances with their tasks, and the workbook written."""

    found: tuple[_assets.Covered, ...]
    workbook: Path
    errors: Mapping[tuple[str, str], str]  # (project, region) whose listing failed → why

    @property
    def uncovered(self) -> int:
        return sum(1 for c in self.found if not c.tasks)

    @property
    def to_create(self) -> int:
        """Instances a run of the workbook would send: no task yet, and scannable (a row
        that cannot be scanned is written with ``enabled`` FALSE)."""
        from bulkscan.run.assets import check_known  # loaded by the export already

        return sum(1 for c in self.found if not c.tasks and check_known(c.known) is None)

    @property
    def status(self) -> Status:
        """OK when every scope could be listed, else INCOMPLETE."""
        return Status.INCOMPLETE if self.errors else Status.OK


async def export(
    scopes: Sequence[tuple[str, str]],
    output: str | os.PathLike[str],
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
) -> ExportReport:
    """Write an input workbook of every database instance of the asset centre in ``scopes``
    ((project, region) pairs), each with the tasks that cover it today."""
    from bulkscan.report import resolved as _resolved
    from bulkscan.run import assets as _assets

    pace = dispatch_settings or DispatchSettings()
    limiter = rate_limiter(pace)
    policy = RetryPolicy.from_settings(pace)
    async with (
        _connected(connection, simulator) as conn,
        _client(conn, pace) as client,
    ):
        catalog = await _assets.read_catalog(scopes, client, limiter=limiter, policy=policy)
        lister = Lister(client, limiter=limiter, policy=policy)
        listed: dict[tuple[str, str], list[RemoteTask]] = {}
        errors = {s: str(e) for s, e in catalog.errors.items()}
        for scope in catalog.instances:
            answer = await lister.list_tasks(*scope)
            if isinstance(answer, DscError):
                errors[scope] = str(answer)
            else:
                listed[scope] = answer
    found = tuple(_assets.coverage(catalog, listed))
    with _workbook_written(Path(output)):
        written = await asyncio.to_thread(_resolved.write_export, found, output)
    return ExportReport(found, written, errors)


# --- the result workbook ---------------------------------------------------------------------


def _workbook_named(exc: OSError) -> Path | None:
    """The workbook an OSError is about (its temporary file named as the workbook itself)."""
    name = exc.filename2 or exc.filename
    if not name:
        return None
    path = Path(os.fsdecode(name))
    match = re.fullmatch(r"\.(.+)\.\d+\.tmp", path.name)
    return path.with_name(match.group(1)) if match else path


@contextlib.contextmanager
def _workbook_written(where: Path, *, again: str | None = None) -> Iterator[None]:
    """Making the workbook ``where``: an ``OSError`` (a full disk, a file open in Excel) is a
    ``ReportError`` naming the workbook, what to do, and ``again``, the command that writes it
    again (else: run the command again).  The one message of every workbook bulkscan writes.
    """
    try:
        yield
    except OSError as exc:
        named = _workbook_named(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            # openpyxl writes each sheet to a temporary file first, then the workbook
            fix = _("make room on its disk and in {temp}").format(temp=tempfile.gettempdir())
        else:
            fix = _("make it writable (close it if it is open)")
        values = {"where": named or where, "error": exc.strerror or exc, "fix": fix}
        if again is None:
            message = _(
                "cannot write the workbook {where}: {error}; {fix} and run the command again"
            )
        else:
            message = _(
                "cannot write the workbook {where}: {error}; {fix} and write it again with: {again}"
            )
            values["again"] = again
        raise ReportError(message.format(**values)) from None


def write_report(run_dir: str | os.PathLike[str]) -> _report.ReportPaths:
    """Rebuild ``results.xlsx`` (and ``retry.xlsx`` when tasks need a re-run) from the journal.

    Reads the journal read-only: works during a run, after a crash, and on a copied run dir.
    Raises ``ReportError`` naming the file when a workbook cannot be written.
    """
    where = Path(run_dir) / _report.RESULTS_FILE
    with _workbook_written(where, again=f"bulkscan report {shlex.quote(os.fspath(run_dir))}"):
        return _report.build_report(run_dir)


def resume_command_of(run_dir: str | os.PathLike[str]) -> str | None:
    """The command that resumes ``run_dir``, as its journal on disk holds the run (after a
    run stopped by its journal, e.g. a full disk); None when the journal cannot be read."""
    try:
        with Journal.open(Path(run_dir), readonly=True) as journal:
            meta = journal.meta()
    except JournalError:
        return None
    return _report.resume_command(meta, Path(run_dir))


def write_errors(
    book: InputBook,
    issues: Sequence[Issue],
    path: str | os.PathLike[str] | None,
    *,
    command: str,
    reports_dir: str | os.PathLike[str] = "reports",
) -> _errors_report.ErrorsReport:
    """The errors workbook of ``validate --report`` (``ReportError`` when it cannot be written);
    ``path`` None: its usual place under ``reports_dir``, named after the input."""
    if path is None:
        path = _errors_report.errors_path(reports_dir, book.path)
    with _workbook_written(Path(path), again=command):
        return _errors_report.write_errors_workbook(book, issues, path, command=command)


# --- after creation (``bulkscan status``, ``start``/``enable``/``disable``, ``undo``) --------


@dataclass(frozen=True, slots=True)
class ScanStatus:
    """Every task's latest run; ``exit_code`` 0 all succeeded, 1 some failed (or could not be
    read), 4 some still running (or never ran, or never sent) when the wait ended."""

    scans: tuple[ScanRecord, ...]
    report: _report.ReportPaths
    requests: int

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for scan in self.scans:
            counts[str(scan.state)] = counts.get(str(scan.state), 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        """A run with tasks not sent (or unknown) is never 0: their scans never ran."""
        states = {scan.state for scan in self.scans}
        if states & {ScanState.FAILED, ScanState.UNKNOWN}:
            return 1
        waiting = states & {ScanState.RUNNING, ScanState.NEVER_RAN}
        return 4 if waiting or self.report.tally.unfinished else 0


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What ``undo`` or an operate action did (``confirmed`` False: nothing was sent)."""

    report: ActionReport
    confirmed: bool

    @property
    def exit_code(self) -> int:
        return 0 if self.report.ok else 1


@contextlib.asynccontextmanager
async def _lifecycle(
    run_dir: str | os.PathLike[str],
    connection: Connection | None,
    simulator: SimulatorOptions | None,
    settings: DispatchSettings,
    limiter: AdaptiveRate | None = None,
) -> AsyncIterator[Lifecycle]:
    """The run's journal (holding its lock) and a client over a session owned here."""
    from bulkscan.dsc.client import LifecycleCalls

    with Journal.open(run_dir) as journal:
        async with _connected(connection, simulator) as conn, _client(conn, settings) as client:
            calls = LifecycleCalls(client)
            actions = Lifecycle(journal, client, calls, settings, limiter=limiter)
            try:
                yield actions
            finally:
                actions.close()


async def status(
    run_dir: str | os.PathLike[str],
    *,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    wait_s: float = 0.0,
    poll_s: float = 10.0,
    observer: Callable[[Sequence[ScanRecord]], None] | None = None,
    on_read: Callable[[int, int], None] | None = None,
) -> ScanStatus:
    """Each task's latest run (polling until none runs, for at most ``wait_s``), saved to the
    Scans sheet of ``results.xlsx``.  ``observer`` gets the scans read before each poll,
    ``on_read(done, total)`` each task read (every read, polls included)."""
    if not 0 <= wait_s <= 7 * 86_400 or not 0.5 <= poll_s <= 3600:
        raise UsageError("--timeout must be 0 s to 7 days and --poll 0.5 s to 1 hour")
    settings = dispatch_settings or DispatchSettings()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    async with _lifecycle(run_dir, connection, simulator, settings) as actions:
        scans = await actions.status(on_read)
        while _still_running(scans) and loop.time() + poll_s <= deadline:
            if observer is not None:
                observer(scans)
            await asyncio.sleep(poll_s)
            scans = await actions.status(on_read)
        requests = actions.requests
    report = await asyncio.to_thread(write_report, run_dir)
    return ScanStatus(tuple(scans), report, requests)


def _still_running(scans: Sequence[ScanRecord]) -> bool:
    return any(s.state in (ScanState.RUNNING, ScanState.NEVER_RAN) for s in scans)


async def undo(
    run_dir: str | os.PathLike[str],
    *,
    confirm: Callable[[Sequence[PlannedAction]], bool],
    force: bool = False,
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
) -> ActionOutcome:
    """Delete the tasks the run created (never those it found), after ``confirm`` saw the list;
    a task whose data sources changed since the run is kept unless ``force``."""
    settings = dispatch_settings or DispatchSettings()
    async with _lifecycle(run_dir, connection, simulator, settings) as actions:
        planned = await actions.plan_undo(force=force)
        sending = [p for p in planned if p.state is None]
        if sending and not confirm(planned):
            return ActionOutcome(ActionReport("delete", planned), confirmed=False)
        report = await actions.undo(planned)
        report.requests = actions.requests
    await asyncio.to_thread(write_report, run_dir)
    return ActionOutcome(report, confirmed=True)


async def operate(
    run_dir: str | os.PathLike[str],
    action: str,
    *,
    confirm: Callable[[Sequence[str]], bool],
    names: Sequence[str] = (),
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
) -> ActionOutcome:
    """START, ENABLE or DISABLE the run's tasks (or the named ones), after ``confirm`` saw
    their names; a killed batch is resumed, never applied twice."""
    if action not in ("START", "ENABLE", "DISABLE"):
        raise UsageError(f"action must be START, ENABLE or DISABLE, not {action}")
    settings = dispatch_settings or DispatchSettings()
    async with _lifecycle(run_dir, connection, simulator, settings) as actions:
        targets = [t.name for t in actions.tasks(names)]
        if targets and not confirm(targets):
            return ActionOutcome(ActionReport(action.lower()), confirmed=False)
        report = await actions.operate(action, names)
        report.requests = actions.requests
    await asyncio.to_thread(write_report, run_dir)
    return ActionOutcome(report, confirmed=True)


async def update_conflicts(
    run_dir: str | os.PathLike[str],
    *,
    confirm: Callable[[Sequence[PlannedAction]], bool],
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
    limiter: AdaptiveRate | None = None,
) -> ActionOutcome:
    """``run --on-conflict update``: PUT the planned body to each existing task of the same
    name (after ``confirm`` saw the differences), keeping the task as it was for ``undo``.
    ``limiter``: the run's (``rate_limiter``), with what it learned of the quota."""
    settings = dispatch_settings or DispatchSettings()
    async with _lifecycle(run_dir, connection, simulator, settings, limiter) as actions:
        planned = await actions.plan_updates()
        sending = [p for p in planned if p.state is None]
        if sending and not confirm(planned):
            return ActionOutcome(ActionReport("update", planned), confirmed=False)
        report = await actions.update(planned)
        report.requests = actions.requests
    return ActionOutcome(report, confirmed=True)


@dataclass(frozen=True, slots=True)
class DedupeResult:
    """The extra copies deleted, those still listed after it, and those already gone."""

    deleted: tuple[tuple[str, str, str, str], ...]
    still_listed: tuple[tuple[str, str, str, str], ...]
    gone: tuple[tuple[str, str, str, str], ...]
    confirmed: bool
    requests: int

    @property
    def exit_code(self) -> int:
        return 1 if self.still_listed else 0


async def dedupe(
    audit_workbook: str | os.PathLike[str],
    *,
    confirm: Callable[[Sequence[tuple[str, str, str, str]]], bool],
    connection: Connection | None = None,
    simulator: SimulatorOptions | None = None,
    dispatch_settings: DispatchSettings | None = None,
) -> DedupeResult:
    """Delete the extra copies an audit workbook's Duplicates sheet lists (after ``confirm``
    saw them): only those still listed are sent, then each project is listed to verify."""
    from bulkscan.dsc.client import LifecycleCalls

    extras = await asyncio.to_thread(_audit_report.read_duplicates, audit_workbook)
    settings = dispatch_settings or DispatchSettings()
    if not extras or not confirm(extras):
        return DedupeResult((), (), (), confirmed=bool(extras) is False, requests=0)
    groups: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
    for extra in extras:
        groups.setdefault((extra[0], extra[1]), []).append(extra)
    deleted: list[tuple[str, str, str, str]] = []
    left: list[tuple[str, str, str, str]] = []
    async with _connected(connection, simulator) as conn, _client(conn, settings) as client:
        wire = Wire(client, LifecycleCalls(client), settings)
        for (project, region), items in groups.items():
            done, still = await wire.delete_listed(project, region, [i[2] for i in items])
            deleted += [i for i in items if i[2] in done]
            left += [i for i in items if i[2] in still]
    gone = tuple(e for e in extras if e not in deleted and e not in left)
    return DedupeResult(tuple(deleted), tuple(left), gone, confirmed=True, requests=wire.requests)
