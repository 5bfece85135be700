"""``bulkscan run FILE``: validate, plan, then create every task in DSC, exactly once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_FAILED, EXIT_OK, Refused, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import Bar, console, duration
from bulkscan.cli._coverage import add_coverage_option, for_run
from bulkscan.cli._json import Next, emit, outcome_counts
from bulkscan.cli._lifecycle import update_on_conflict, updates_json
from bulkscan.cli._next import left_text, next_step, say_next
from bulkscan.errors import DscError, JournalWriteError, ReportError, ValidationFailed
from bulkscan.events import (
    AttemptFinished,
    Event,
    LockTakenOver,
    Progress,
    RateChanged,
    RunStopped,
)
from bulkscan.i18n import N_, _, is_yes, yes_no
from bulkscan.models import Verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from bulkscan.cli._lifecycle import Updated
    from bulkscan.config import InputSettings
    from bulkscan.models import TaskRequest
    from bulkscan.report.results import ReportPaths
    from bulkscan.run.store import PlanDiffers
    from bulkscan.runner import Prepared, RunResult

__all__ = ["register"]

_PLAN_DIFFERS_WHY = "resume the run with the options it was started with"
# the settings of a plan file that say how its inventory's rows are read
_PLANNED_READING = ("project_id", "region", "timezone", "encoding")

_ENDINGS = {
    "done": N_("finished"),
    "fatal": N_("stopped by a fatal error"),
    "interrupted": N_("interrupted"),
}


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="create every planned task in DSC (journalled, resumable, exactly once)",
        description="Validate the inventory (nothing is sent if it has errors), plan the "
        "tasks, then create them in DSC under a rate limit, with retries, a journal and a "
        "result workbook in a new run directory. Rows whose instance another existing "
        "task already scans are left out (see --allow-duplicate-coverage). Every row is also "
        "checked against DSC's asset centre first (see --no-remote-check). FILE may also be "
        "a plan written by `bulkscan plan --output PLAN.json` (told by its content): it is "
        "applied as it is, with the settings it was planned with, and refused (exit 2) if its "
        "inventory has changed since. Exit 0: every task created or already there; 1: some "
        "failed, rows were held back by the check, or the listing after the run found a task "
        "name twice or could not look (audit, then dedupe); 2: input or usage error, or an "
        "asset centre that cannot be read (nothing sent); 3: stopped (fatal error or Ctrl-C), "
        "or tasks left unknown or pending, even when others failed (resume).",
    )
    common.add_input_options(parser)
    common.add_connection_options(parser)
    group = parser.add_argument_group("the run")
    common.add_reports_dir_option(group, help="parent of run directories (default: reports)")
    group.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a run (default: the latest run of the same input)",
    )
    group.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="send only the first N planned tasks (a canary); --resume sends the rest",
    )
    group.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="do not ask before sending; required when standard input is not a terminal "
        "(a pipe, a script, CI): without it nothing is sent and the exit code is 2",
    )
    group.add_argument(
        "--on-conflict",
        choices=("stop", "update"),
        default="stop",
        help="a task of the same name with other data sources: leave it (stop, the default) "
        "or show the difference, ask and update it (undo puts it back)",
    )
    group.add_argument(
        "--remote-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check every row against DSC's asset centre first (the default; --remote-check "
        "changes nothing): a row whose instance is unknown, not active, not authorised or of "
        "a type metadata tasks cannot carry is reported and not sent (exit 1), and the rest "
        "carry DSC's spelling of their db_type; an asset centre that cannot be read sends "
        "nothing (exit 2). --no-remote-check sends without the check. A resume keeps the "
        "first run's check",
    )
    add_coverage_option(group)
    common.add_json_option(group, help="print one JSON summary on stdout at the end")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    inventory = common.inventory(args)
    dispatching = common.dispatch_settings(args)
    try:
        prepared, settings = _prepared(args, inventory)
    except ValidationFailed as failed:
        line = _("nothing sent: {errors} error(s) in {file}; fix them and run again")
        raise common.invalid_input(args, failed, line) from None
    warnings = [i for i in prepared.plan.issues if i.severity == "warning"]
    if warnings:
        common.print_issues(tuple(warnings), limit=20)
    connection, simulator = common.connection_from(args)
    instances = len(prepared.validated.instances)
    limiter = runner.rate_limiter(dispatching)  # the checks' requests count as the run's
    if args.resume:
        prepared = runner.as_planned_before(
            prepared, reports_dir=args.reports_dir, resume=args.resume
        )
    elif args.remote_check:
        prepared = _checked(
            args,
            prepared,
            connection=connection,
            simulator=simulator,
            dispatching=dispatching,
            limiter=limiter,
        )
    prepared, listed = for_run(args, prepared, connection, simulator, limiter=limiter)
    held = instances - len(prepared.validated.instances) - len(prepared.covered)
    try:
        sending = runner.to_send(
            prepared, reports_dir=args.reports_dir, resume=args.resume, limit=args.limit
        )
    except runner.PlanDiffers as exc:  # options that plan other tasks: the run's own, next
        raise _plan_differs(exc) from None
    asked = bool(sending) and not args.yes  # else refused, or nothing to ask about
    if not _go_ahead(args, prepared, settings, dispatching.rate_per_s, sending):
        console.err(_("nothing sent"), kind="outcome")  # the answer to its question, even -q
        return EXIT_OK
    if asked:  # a person took their time: what another run created meanwhile must be seen
        listed = None
    try:
        result = _dispatch(
            args,
            prepared,
            connection=connection,
            simulator=simulator,
            settings=settings,
            dispatching=dispatching,
            listed=listed,
            limiter=limiter,
            audit=_audit_command(args, prepared, settings),
        )
    except JournalWriteError as exc:  # e.g. disk full: everything stored so far is resumable
        raise _journal_stopped(exc) from None
    updated = update_on_conflict(args, result, connection, simulator, dispatching, limiter=limiter)
    code = common.exit_code(result.status)
    code = max(code, EXIT_FAILED) if held else code
    code = code if updated is None else max(code, updated.code)
    with _interrupts_deferred():
        try:
            with common.working(args, _("writing the result workbook")):
                report = runner.write_report(result.run_dir)
        except ReportError as exc:  # the tasks are done; only the workbook is missing
            console.err(_("bulkscan: error: {message}").format(message=exc), kind="error")
            code = max(code, EXIT_FAILED)  # a script must not take the workbook for written
            if args.json:
                emit(args, code, {"run_dir": str(result.run_dir), "error": str(exc)})
        else:
            _finish(args, result, report, held, code, updated=updated)
    return code


def _audit_command(args: argparse.Namespace, prepared: Prepared, settings: Any) -> str:
    """``bulkscan audit`` of the run's inventory, reaching the same service and reading the
    rows as the run did (``next_options``; a plan file's own settings for a plan file):
    what finds a task created twice, whose workbook ``bulkscan dedupe`` takes."""
    reading = args
    if prepared.plan_file:  # the rows were read with the plan's settings, not those typed
        planned = {name: getattr(settings, name) for name in _PLANNED_READING}
        reading = argparse.Namespace(**(vars(args) | planned))
    command = ["bulkscan", "audit", str(prepared.book.path), *common.next_options(reading)]
    return shlex.join(command)


def _prepared(args: argparse.Namespace, inventory: common.Inventory) -> tuple[Prepared, Any]:
    """The inventory planned, or the plan file (``plan --output``) FILE is, made again; a
    plan keeps the settings it was made with (other ones given are named, not used)."""
    settings = inventory["settings"]
    saved = runner.saved_plan(inventory["path"])
    if saved is None:
        return runner.prepare(**inventory), settings
    planned = runner.input_settings_of(saved, limits=settings.limits)
    for name in ("timezone", "region", "project_id", "encoding"):
        given, kept = getattr(args, name, None), getattr(planned, name)
        if given is not None and given != kept:
            console.err(
                f"note: {args.file} is applied as it was planned, with --"
                f"{name.replace('_', '-')} {kept!r}, not {given!r}; re-run bulkscan plan "
                "to change it"
            )
    return runner.prepare_saved(saved, limits=settings.limits), planned


def _checked(
    args: argparse.Namespace,
    prepared: Prepared,
    *,
    connection: Any,
    simulator: Any,
    dispatching: Any,
    limiter: Any,
) -> Prepared:
    """``prepared`` without the rows DSC's asset centre says cannot be scanned (reported);
    ``Refused`` when nothing may be sent: an answer that stops any run (3, as it would at
    the first create), or an asset centre that cannot be read (2)."""
    try:
        with common.counting(args, _("asset check")):
            found = asyncio.run(
                runner.remote_check(
                    prepared.validated.instances,
                    connection=connection,
                    simulator=simulator,
                    dispatch_settings=dispatching,
                    limiter=limiter,
                )
            )
    except DscError as exc:  # the listing raises only what stops a whole run
        raise Refused.stopped(exc) from None
    if found.unread:
        raise Refused(_unread_text(sorted(found.unread.items())))
    if found.issues:
        common.print_issues(found.issues)
    if found.held:
        console.err(_("{count} row(s) held back: not sent").format(count=len(found.held)))
    return runner.without_held(prepared, found)


def _journal_stopped(exc: JournalWriteError) -> Refused:
    """A run its journal stopped (a full disk): the command that resumes it, once the
    cause is fixed, as a stopped run's summary would give it."""
    command = runner.resume_command_of(exc.run_dir) if exc.run_dir is not None else None
    if command is None:
        return Refused.stopped(exc)
    said = _("{error} with: {command}").format(error=exc, command=command)
    why = _("the run stopped before its end; resume it once the journal can be written")
    return Refused.stopped(said, next_step=Next(command, why), run_dir=str(exc.run_dir))


def _plan_differs(exc: PlanDiffers) -> Refused:
    """A resume refused because its options plan other tasks: exit 2, and the run's own
    resume command as the next step (``next`` in --json, its ``why`` in English)."""
    line = _("bulkscan: error: {message}").format(message=exc)
    return Refused(line, error=str(exc), next_step=Next(exc.resume_command, _PLAN_DIFFERS_WHY))


def _unread_text(unread: Sequence[tuple[tuple[str, str], DscError]]) -> str:
    """Why nothing was sent when the asset centre could not be read, with the advice that
    fits the first failure: wait for a service that did not answer, fix refused access."""
    from bulkscan.dsc.classify import RECORD_ADVICE  # loaded by the check itself
    from bulkscan.run.remote import groups_text

    verdict = unread[0][1].verdict
    if verdict in (Verdict.TRANSIENT, Verdict.THROTTLED, Verdict.AMBIGUOUS):
        advice = _("run again once DSC answers")
    elif verdict is Verdict.UNTRUSTED:
        advice = _(RECORD_ADVICE)
    else:
        advice = _("fix the access and run again")
    return _(
        "nothing sent: DSC's asset centre could not be read, so no row could be checked "
        "({unread}); {advice}, or add --no-remote-check to send without the check"
    ).format(unread=groups_text(unread), advice=advice)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """While the workbook and the summary are written, Ctrl-C only says to wait: a half
    written workbook, or a summary without its resume command, helps no one."""

    said = False

    def _wait(_signum: int, _frame: object) -> None:
        nonlocal said
        if not said:  # once: a key held down is one request to hurry
            said = True  # before saying it: a press while it is said must not say it again
            console.err(_("writing the results workbook from the journal; a moment"))

    previous = signal.signal(signal.SIGINT, _wait)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _plan_line(prepared: Prepared, rate_per_s: float, args: argparse.Namespace, total: int) -> str:
    """What a run is about to send, where, at what pace."""
    head = _("{file}: {tasks} task(s) for {instances} instance(s){covered}").format(
        file=prepared.book.path,
        tasks=len(prepared.plan.tasks),
        instances=prepared.plan.instance_count,
        covered=_covered_text(len(prepared.covered)),
    )
    if total == 0:  # a finished run resumed, or every row held back: no pace to tell
        return _("{head}; nothing to send").format(head=head)
    target = _("the embedded simulator") if args.simulate else (args.endpoint or "DSC")
    if args.resume:
        sending = _("resuming: {count} task(s) not yet done are sent to {target}")
    else:
        sending = _("sending {count} to {target}")
    return _("{head}; {sending} at up to {rate}/s (about {duration} without retries)").format(
        head=head,
        sending=sending.format(count=total, target=target),
        rate=f"{rate_per_s:g}",
        duration=duration(total / rate_per_s),
    )


def _covered_text(covered: int) -> str:
    if not covered:
        return ""
    return _(" ({count} row(s) already covered by other tasks left out)").format(count=covered)


def _go_ahead(
    args: argparse.Namespace,
    prepared: Prepared,
    settings: InputSettings,
    rate_per_s: float,
    sending: int,
) -> bool:
    """Say what is about to be sent, and ask: False when the person says no; ``Refused``
    without a terminal to ask on (``--yes`` answers for the person, the only way then).
    A question comes with what it is about, under --quiet too."""
    asking = bool(sending) and not args.yes and sys.stdin.isatty()
    if asking or not args.json:
        say = console.before_question if asking else console.err
        say(_plan_line(prepared, rate_per_s, args, sending))
    if not sending or args.yes:
        return True
    if not asking:
        raise Refused(
            _(
                "nothing sent: standard input is not a terminal, so bulkscan cannot ask; "
                "add --yes to create the tasks without asking"
            )
        )
    return _confirmed(prepared, settings, _sending(args, prepared, sending))


def _sending(args: argparse.Namespace, prepared: Prepared, count: int) -> Sequence[TaskRequest]:
    """The ``count`` tasks the run sends (``runner.to_send`` counted them), in the order it
    sends them: the plan's first, or on --resume the first of those the run has not finished."""
    tasks: Sequence[TaskRequest] = prepared.plan.tasks
    if args.resume:
        from pathlib import Path

        from bulkscan.run.rundir import find_latest_run
        from bulkscan.run.states import UNFINISHED_STATES
        from bulkscan.run.store import Journal

        run_dir = (
            find_latest_run(args.reports_dir, prepared.book.path)
            if args.resume is True
            else Path(args.resume)
        )
        if run_dir is None:  # to_send said so already
            return tasks[:count]
        with Journal.open(run_dir, readonly=True) as journal:
            states = journal.states()
        tasks = [t for t in tasks if states.get(t.key) in UNFINISHED_STATES]
    return tasks[:count]


def _confirmed(prepared: Prepared, settings: InputSettings, sending: Sequence[TaskRequest]) -> bool:
    """Ask on the terminal, naming the start times of the tasks it sends."""
    profiles = prepared.validated.profiles
    starts = sorted({common.start_time_text(t, settings, profiles) for t in sending})
    more = _(" and {count} more").format(count=len(starts) - 3) if len(starts) > 3 else ""
    shown = ", ".join(starts[:3]) + more
    question = _("Create {count} task(s), starting {start}?").format(
        count=len(sending), start=shown
    )
    return is_yes(console.ask(f"{question} {yes_no()} "))


def _dispatch(
    args: argparse.Namespace,
    prepared: Prepared,
    *,
    connection: runner.Connection | None,
    simulator: runner.SimulatorOptions | None,
    settings: Any,
    dispatching: Any,
    listed: Any = None,
    limiter: Any = None,
    audit: str | None = None,
) -> RunResult:
    renderer = _Renderer(enabled=not args.json, settle_s=args.settle)
    command = common.typed_command()

    async def _main() -> RunResult:
        stop = asyncio.Event()
        main_task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        abandoned = False

        def _interrupt() -> None:
            nonlocal abandoned
            if abandoned:  # a third press: the run is already ending as fast as it can
                return
            if stop.is_set():
                abandoned = True
                renderer.note(_("abandoning requests in flight; they will be checked on resume"))
                if main_task is not None:
                    main_task.cancel()
                return
            stop.set()
            renderer.note(
                _("stopping: letting requests in flight finish (Ctrl-C again to abandon)")
            )

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _interrupt)
        try:
            return await runner.run(
                prepared,
                connection=connection,
                simulator=simulator,
                input_settings=settings,
                dispatch_settings=dispatching,
                reports_dir=args.reports_dir,
                resume=args.resume,
                limit=args.limit,
                observer=renderer,
                stop=stop,
                command=command,
                audit_command=audit,
                listed=listed,
                limiter=limiter,
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(_main())
    finally:
        renderer.close()


class _Renderer:
    """Draws a progress bar on a terminal (count, rate, ETA); notes above it; no bar
    elsewhere or with --quiet."""

    #: Say "no answer" only after this long without any answer from the service.
    SILENT_S = 10.0

    #: Say again how many tasks are being looked up at most this often while more join.
    SETTLING_EVERY_S = 5.0

    def __init__(
        self, *, enabled: bool, settle_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = enabled
        self.settle_s = settle_s
        self.settling = 0  # the most tasks said to be settling since none were
        self.settling_noted = float("-inf")
        self.bar: Bar | None = None
        self.clock = clock
        self.unreachable_noted = float("-inf")
        self.answered = clock()  # the last time any request got an answer (or the start)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            self._window(event.settle_s)
            self._settling(event.settling)
            if self.enabled:
                self._draw(event)
        elif isinstance(event, RateChanged):
            self.note(
                _("rate {old}/s -> {new}/s ({reason})").format(
                    old=f"{event.old_per_s:.3g}", new=f"{event.new_per_s:.3g}", reason=event.reason
                )
            )
        elif isinstance(event, AttemptFinished):
            if event.attempt.status is not None:
                self.answered = self.clock()
            elif event.attempt.verdict == "transient":  # no answer (refused, reset, timed out)
                self._unreachable()
        elif isinstance(event, LockTakenOver):
            why = _("which is gone") if event.gone else _("which no longer holds it")
            self.note(
                _("took over the lock of run {run_dir} left by pid {pid}, {why}").format(
                    run_dir=event.run_dir, pid=event.pid, why=why
                )
            )
        elif isinstance(event, RunStopped) and event.reason == "fatal":
            self.note(_("stopped: {message}").format(message=event.message))

    def _draw(self, event: Progress) -> None:
        if self.bar is None:
            if event.total == 0:  # nothing to send: no bar stuck at 0/0
                return
            self.bar = console.bar(_("sending"), total=event.total)
            if self.bar is None:
                self.enabled = False  # not a terminal, or --quiet
                return
        if event.to_check and event.settled >= event.total:  # the closing listing
            self.bar.update(
                event.settled,
                total=event.total,
                rate_per_s=event.rate_per_s,
                # the projects listed for names created twice (short: room is 26 cells at 80)
                status=_("checking duplicates {checked}/{total}").format(
                    checked=event.checked, total=event.to_check
                ),
                busy=event.checked < event.to_check,
            )
            return
        self.bar.update(
            event.settled,
            total=event.total,
            rate_per_s=event.rate_per_s,
            eta_s=event.eta_s,
            status=[  # the longest form the terminal has room for
                form.format(
                    created=event.created,
                    failed=event.failed,
                    retrying=event.retrying,
                    sent=event.sent,
                )
                for form in (
                    _("{created} in DSC, {failed} failed, {retrying} retrying, {sent} sent"),
                    _("{created} in DSC, {failed} failed, {retrying} retrying"),
                    _("{created} in DSC, {failed} failed"),
                )
            ],
        )

    def _window(self, settle_s: float | None) -> None:
        """Say once that the run waits out a longer settle window than the one asked: the
        one its tasks were sent under (a resume given a shorter --settle)."""
        if settle_s is None or settle_s == self.settle_s:
            return
        self.note(
            _(
                "this run's tasks were sent with a settle window of {used} s: it is waited out, "
                "not the {given} s of --settle, so that a task created late is found before it "
                "could be sent again"
            ).format(used=f"{settle_s:g}", given=f"{self.settle_s:g}")
        )
        self.settle_s = settle_s

    def _settling(self, count: int) -> None:
        """One line when tasks start being looked up after an ambiguous answer, again (at
        most every ``SETTLING_EVERY_S``) when more join, none while their number falls."""
        if count == 0:
            self.settling = 0
            return
        now = self.clock()
        recent = now - self.settling_noted < self.SETTLING_EVERY_S
        if count <= self.settling or (self.settling and recent):
            return
        self.settling, self.settling_noted = count, now
        self.note(
            _(
                "{count} task(s) unknown after an answer that may or may not have created them "
                "(a 504, a timeout, a 200 without a task id): looking them up for up to "
                "{seconds} s before any resend"
            ).format(count=count, seconds=f"{self.settle_s:g}")
        )

    def _unreachable(self) -> None:
        """Say (at most every 30 s) that the service has answered nothing for a while.

        One request that times out or is reset while others are answered is a retry, not
        an outage: only a silence of ``SILENT_S`` over every request is worth a line.
        """
        now = self.clock()
        silent = now - self.answered
        if silent < self.SILENT_S or now - self.unreachable_noted < 30:
            return
        self.unreachable_noted = now
        self.note(
            _(
                "no answer from DSC for {seconds}s: retrying within each task's time budget "
                "(--task-budget); check --endpoint and the network, or Ctrl-C and --resume later"
            ).format(seconds=f"{silent:.0f}")
        )

    def note(self, text: str) -> None:
        console.note(text)  # above the bar, which stays

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _finish(
    args: argparse.Namespace,
    result: RunResult,
    report: ReportPaths,
    held: int,
    code: int,
    *,
    updated: Updated | None = None,
) -> None:
    dispatched = result.dispatch
    for note in result.notes:
        console.err(_("note: {note}").format(note=note), kind="note")
    if args.json:
        fields = _summary_json(result, report, held) | {"updates": updates_json(updated)}
        emit(args, code, fields, next_step=next_step(report))
        return
    console.out(
        _("run {run}: {requests} request(s), {ending}").format(
            run=result.run_dir.name, requests=dispatched.requests, ending=_ending(result, report)
        )
        + (f": {dispatched.message}" if dispatched.message else "")
    )
    for state, n in sorted(result.counts.items(), key=lambda kv: -kv[1]):
        if n:
            console.detail(f"  {state:<10} {n:>6}")
    if result.covered:
        console.detail(
            _("  {label} {count} row(s) not sent: already in other tasks").format(
                label=f"{'covered':<10}", count=f"{result.covered:>6}"
            )
        )
    for line in dispatched.duplicates:
        console.detail(_("duplicate: {line}").format(line=line))
    if held:
        console.detail(
            _("  {label} {count} row(s): DSC's asset centre says they cannot be scanned").format(
                label=f"{'not sent':<10}", count=f"{held:>6}"
            )
        )
    if report.error_codes:
        console.detail(
            _("errors by code ({count} task(s), as in the workbook):").format(
                count=report.tally.errors
            )
        )
        for err, n in report.error_codes.items():
            console.detail(f"  {err:<24} {n:>6}")
    console.detail(_("results: {path}").format(path=report.results))
    resolved = 0 if updated is None else updated.resolved  # decided: --on-conflict update
    if resolved:
        console.detail(
            _(
                "{count} conflict(s) resolved by the update: the existing task(s) now hold the "
                "planned data sources (undo puts them back)"
            ).format(count=resolved)
        )
    say_next(report, resolved=resolved)


def _summary_json(result: RunResult, report: ReportPaths, held: int) -> dict[str, Any]:
    dispatched = result.dispatch
    return {
        "run_dir": str(result.run_dir),
        "results": str(report.results),
        "retry": str(report.retry) if report.retry else None,
        "stop_reason": dispatched.stop_reason,
        "message": dispatched.message,
        "requests": dispatched.requests,
        "learned_rate_per_s": dispatched.learned_rate_per_s,
        "duplicates": list(dispatched.duplicates),
        "duplicates_unchecked": dispatched.unchecked or None,
        "outcomes": outcome_counts(result.counts),
        "rows": {"covered": result.covered, "held": held},
        "errors": report.tally.errors,
        "unfinished": report.tally.unfinished,
        "held_back": dispatched.held_back,
        "error_codes": dict(report.error_codes),
        "resume_command": report.resume_command if report.tally.unfinished else None,
        "rerun_command": report.rerun_command,
    }


def _ending(result: RunResult, report: ReportPaths) -> str:
    """How the run ended, in words that never say "finished" while tasks are left."""
    reason = result.dispatch.stop_reason
    if reason != "done" or not report.tally.unfinished:
        return _(_ENDINGS[reason])
    return left_text(report, say=_)
