"""Options shared by several commands, and the settings they turn into."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from bulkscan.cli import EXIT_FAILED, EXIT_INPUT, EXIT_OK, EXIT_STOPPED, Refused
from bulkscan.cli._console import by_cause, console
from bulkscan.cli._settings import check_flags
from bulkscan.config import (
    SETTINGS_OPTIONS,
    DispatchSettings,
    InputLimits,
    InputSettings,
    check_timezone,
    parse_quota_windows,
    parse_rate,
)
from bulkscan.errors import UsageError
from bulkscan.i18n import N_, _
from bulkscan.models import Status, one_line
from bulkscan.plan import start_time_text as plan_start_text
from bulkscan.plan import start_zones

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Hashable, Mapping

    from bulkscan.errors import ValidationFailed
    from bulkscan.models import Issue, Profile, TaskRequest
    from bulkscan.runner import Connection, SimulatorOptions

__all__ = [
    "Inventory",
    "Service",
    "add_connection_options",
    "add_input_options",
    "add_json_option",
    "add_reports_dir_option",
    "connection_from",
    "counting",
    "dispatch_settings",
    "exit_code",
    "input_settings",
    "invalid_input",
    "inventory",
    "local_timezone",
    "next_options",
    "print_issues",
    "service",
    "settings_options",
    "simulate_options",
    "simulator_state",
    "start_time_text",
    "status_of",
    "working",
]

_MB = 1024 * 1024
_EXIT_CODES: Mapping[Status, int] = {
    Status.OK: EXIT_OK,
    Status.INCOMPLETE: EXIT_FAILED,
    Status.INVALID: EXIT_INPUT,
    Status.STOPPED: EXIT_STOPPED,
}


# ... and back; 4 is ``status``'s "some scans still running or never ran" (incomplete).
_STATUSES: Mapping[int, Status] = {code: s for s, code in _EXIT_CODES.items()} | {
    4: Status.INCOMPLETE
}


def exit_code(status: Status) -> int:
    """The exit code of a command whose work ended with ``status`` (decided by the library)."""
    return _EXIT_CODES[status]


def status_of(code: int) -> Status:
    """The status an exit code stands for: ``exit_code`` read backwards."""
    return _STATUSES[code]


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """FILE, --profiles, defaults for blank cells, interpretation and safety caps."""
    parser.add_argument("file", metavar="FILE", help="inventory workbook (.xlsx) or CSV file")
    parser.add_argument(
        "--profiles", metavar="CSV", help="profiles CSV file (CSV input only; xlsx has a sheet)"
    )
    group = parser.add_argument_group("input defaults and interpretation")
    group.add_argument(
        "--project-id",
        metavar="ID",
        help="project id for rows that leave project_id blank "
        "(default: $HUAWEICLOUD_SDK_PROJECT_ID)",
    )
    group.add_argument("--region", help="region for rows that leave region blank")
    group.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA time zone (e.g. Asia/Shanghai) of start times written without an offset, "
        "for profiles without a timezone column of their own (default: this machine's local "
        "zone, from $TZ or /etc/localtime); an offset in the cell always wins; plan, the "
        "confirmation and the workbook show every start time with its offset",
    )
    group.add_argument(
        "--start-time-unit",
        choices=("s", "ms"),
        default="s",
        help="unit of start_time on the wire: epoch seconds (default) or milliseconds",
    )
    group.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding of CSV files, e.g. cp1252 (default: a BOM, else UTF-8, else "
        "GB18030 with a warning that it is a guess)",
    )
    group.add_argument(
        "--any-db-type",
        dest="strict_db_types",
        action="store_false",
        help="send a db_type that DSC metadata tasks are not documented to support, as "
        "written (a warning instead of an error), for the day DSC adds one",
    )
    group.add_argument(
        "--strict-db-types",
        dest="strict_db_types",
        action="store_true",
        help="an unsupported db_type is an error (the default; kept for older scripts)",
    )
    parser.set_defaults(reads_inventory=True)  # next_options repeats how its rows are read
    caps = parser.add_argument_group("safety caps on input files")
    caps.add_argument(
        "--max-file-mb",
        type=int,
        default=_CAPS.max_file_mb,
        help="largest input file (%(default)s)",
    )
    caps.add_argument(
        "--max-unpacked-mb",
        type=int,
        default=_CAPS.max_unpacked_mb,
        help="largest unpacked xlsx (%(default)s)",
    )
    caps.add_argument(
        "--max-rows", type=int, default=_CAPS.max_rows, help="most rows (%(default)s)"
    )


class _Caps(NamedTuple):
    """The safety caps' defaults as the options write them (from ``InputLimits``)."""

    max_file_mb: int
    max_unpacked_mb: int
    max_rows: int


_LIMITS = InputLimits()
_CAPS = _Caps(_LIMITS.max_file_bytes // _MB, _LIMITS.max_unpacked_bytes // _MB, _LIMITS.max_rows)


def input_settings(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> InputSettings:
    """Build validated settings from the options (UsageError on nonsense, naming the flag)."""
    check_flags(args, ("project_id", "timezone"))
    limits = InputLimits(
        max_file_bytes=args.max_file_mb * _MB,
        max_unpacked_bytes=args.max_unpacked_mb * _MB,
        max_rows=args.max_rows,
    )
    return InputSettings(
        project_id=args.project_id or env.get("HUAWEICLOUD_SDK_PROJECT_ID") or None,
        region=args.region,
        timezone=args.timezone or local_timezone(env),
        start_time_unit=args.start_time_unit,
        strict_db_types=args.strict_db_types,
        limits=limits,
        encoding=args.encoding,
    )


class Inventory(TypedDict):
    """The inventory options read back, as ``runner``'s entry points take them."""

    path: str
    profiles_path: str | None
    settings: InputSettings


def inventory(args: argparse.Namespace) -> Inventory:
    """FILE, --profiles and the settings of ``add_input_options``, in one value."""
    return {"path": args.file, "profiles_path": args.profiles, "settings": input_settings(args)}


_JSON_HELP = N_("print one JSON summary on stdout")
REPORTS = "reports"  # --reports-dir by default
_SIMULATED_REPORTS_HELP = N_(
    "with --simulate: the reports folder that holds the simulated service's tasks "
    "(simulator-tasks.json), where run and audit keep them (default: the reports_dir "
    "setting, else reports)"
)


def add_reports_dir_option(container: Any, *, help: str) -> None:
    """--reports-dir: where run directories, audits and errors workbooks go (``help`` says
    which this command writes)."""
    container.add_argument("--reports-dir", default=REPORTS, metavar="DIR", help=help)


def add_json_option(container: Any, *, help: str = _JSON_HELP) -> None:
    """--json: one document on stdout however the command ends (``_json.emit``)."""
    container.add_argument("--json", action="store_true", help=help)


def local_timezone(env: Mapping[str, str] = os.environ) -> str:
    """This machine's IANA zone name: ``$TZ``, else where /etc/localtime points, else UTC."""
    named = env.get("TZ", "").removeprefix(":")
    if named and _known_zone(named):
        return named
    target = os.path.realpath("/etc/localtime")
    _, sep, name = target.partition("zoneinfo/")
    return name if sep and _known_zone(name) else "UTC"


def _known_zone(name: str) -> bool:
    try:
        check_timezone(name)
    except UsageError:
        return False
    return True


def start_time_text(
    task: TaskRequest, settings: InputSettings, profiles: Mapping[str, Profile]
) -> str:
    """A task's start time as a person reads it: in its profile's zone, with the offset."""
    zone = start_zones(profiles, settings.timezone).get(task.profile, settings.timezone)
    return plan_start_text(task.body_bytes, zone=zone, unit=settings.start_time_unit)


def invalid_input(
    args: argparse.Namespace, failed: ValidationFailed, line: str, **fields: object
) -> Refused:
    """What stops a command whose input has errors, to raise: every issue on stderr, then
    ``line`` (its ``{file}`` and ``{errors}`` filled in); with --json the file, ``fields``,
    the count of errors and every issue."""
    print_issues(failed.issues)
    errors = sum(1 for i in failed.issues if i.severity == "error")
    issues = [i.to_json() for i in failed.issues]
    document = {"file": args.file, **fields, "errors": errors, "issues": issues}
    return Refused(line.format(file=args.file, errors=errors), fields=document)


def print_issues(issues: tuple[Issue, ...], *, limit: int = 200) -> None:
    """Errors first, then warnings, on stderr: one line per cause, naming the rows it is on
    compactly when it is on several (``--verbose``: one line per row, as they are)."""
    ordered = sorted(issues, key=lambda i: i.severity != "error")
    lines = (
        [f"{issue.severity}: {issue}" for issue in ordered]
        if console.verbose
        else issue_lines(ordered)
    )
    for line in lines[:limit]:
        _print_issue_line(line)
    if len(lines) > limit:
        console.err(_("... and {count} more").format(count=len(lines) - limit))


def _print_issue_line(line: str) -> None:
    """``line`` with its ``error:``/``warning:`` prefix in the current language, of the kind
    the English prefix tells (coloured and kept by ``--quiet`` alike in every language)."""
    if line.startswith("error: "):
        console.err(_("error: {message}").format(message=line[7:]), kind="error")
    elif line.startswith("warning: "):
        console.err(_("warning: {message}").format(message=line[9:]), kind="warning")
    else:
        console.err(line)


def issue_lines(issues: list[Issue]) -> list[str]:
    """One line per issue, except one cause on many rows of a sheet: said once, with its
    rows (``rows 2-40, 45 (40 rows)``), where its first row stood."""
    items: list[tuple[Hashable, int, str, Callable[[str], str]]] = []
    for n, issue in enumerate(issues):
        line = f"{issue.severity}: {issue}"
        ref = issue.ref
        if ref is None:  # a sheet or a file: stands alone
            items.append(((n,), 0, line, _same(line)))
            continue
        key = (issue.severity, ref.file, ref.sheet, issue.column, issue.message, issue.hint)
        items.append((key, ref.row, line, _around(issue)))
    return by_cause(items)


def _same(line: str) -> Callable[[str], str]:
    return lambda _rows: line


def _around(issue: Issue) -> Callable[[str], str]:
    """The line of ``issue`` said for several rows (``rows`` names them), worded as
    ``Issue.__str__`` words it for one."""

    def summary(rows: str) -> str:
        assert issue.ref is not None
        where = _("{file}, sheet '{sheet}', {rows}").format(
            file=issue.ref.file, sheet=issue.ref.sheet, rows=rows
        )
        if issue.column:
            where += _(", column '{column}'").format(column=issue.column)
        hint = _(" ({hint})").format(hint=issue.hint) if issue.hint else ""
        text = _("{where}: {message}{hint}").format(where=where, message=issue.message, hint=hint)
        return f"{issue.severity}: {one_line(text)}"

    return summary


def add_connection_options(parser: argparse.ArgumentParser, *, reports_dir: bool = False) -> None:
    """Where DSC is, how to trust it, and how hard to push it; ``reports_dir``: with
    --reports-dir, for a command that keeps no reports of its own but may reach the simulated
    service that run and audit keep in theirs (``simulator_state``)."""
    where = parser.add_argument_group(
        "service (credentials come from HUAWEICLOUD_SDK_AK/_SK[/_SECURITY_TOKEN], "
        "BULKSCAN_AUTH_TOKEN or --token-file; never from the command line)"
    )
    where.add_argument(
        "--endpoint", metavar="URL", help="one endpoint for every region, e.g. a simulator"
    )
    where.add_argument(
        "--endpoint-for",
        action="append",
        default=[],
        metavar="REGION=URL",
        help="endpoint of one region (repeatable; default https://sdg.REGION.myhuaweicloud.com)",
    )
    where.add_argument("--token-file", metavar="PATH", help="file holding an IAM token")
    where.add_argument("--ca-bundle", metavar="PATH", help="extra CA certificates (PEM) to trust")
    where.add_argument(
        "--insecure", action="store_true", help="do not verify TLS certificates (warns)"
    )
    where.add_argument(
        "--simulate",
        action="store_true",
        help="run against an embedded DSC simulator instead of the real service",
    )
    where.add_argument(
        "--simulate-faults",
        metavar="SPEC",
        help="faults for --simulate, e.g. http500=0.05,reset_after=0.02 (see bulkscan simulate)",
    )
    where.add_argument("--simulate-seed", type=int, metavar="N", help="seed for --simulate")
    where.add_argument(
        "--simulate-list-shape",
        metavar="SPEC",
        help="list answer shape for --simulate, e.g. name=none,offset=honoured "
        "(see bulkscan simulate --list-shape)",
    )
    where.add_argument(
        "--simulate-assets",
        metavar="FILE",
        help="the asset centre's instances for --simulate (JSON, see bulkscan simulate --assets)",
    )
    if reports_dir:
        add_reports_dir_option(where, help=_SIMULATED_REPORTS_HELP)
    pace = parser.add_argument_group("pace and retries")
    pace.add_argument(
        "--rate", default="5/s", help="most requests per second or minute: N/s or N/min (5/s)"
    )
    pace.add_argument("--concurrency", type=int, default=8, help="most requests in flight (8)")
    pace.add_argument("--attempts", type=int, default=6, help="most attempts per task (6)")
    pace.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="S", help="seconds (10)"
    )
    pace.add_argument("--read-timeout", type=float, default=30.0, metavar="S", help="seconds (30)")
    pace.add_argument(
        "--task-budget",
        type=float,
        default=600.0,
        metavar="S",
        help="most seconds spent on one task or listing, retries and waits included (600)",
    )
    pace.add_argument(
        "--quota-windows",
        default="1min,1h",
        metavar="LIST",
        help="when 429s name no limit: the clock-aligned windows a quota may be counted in; "
        "their boundaries are probed and N per window learned, e.g. 10s,1min ('none' to only "
        "halve the rate) (1min,1h)",
    )
    pace.add_argument(
        "--settle",
        type=float,
        default=30.0,
        metavar="S",
        help="after an ambiguous answer, look the task up over this many seconds before "
        "sending it again; not found by then: left unknown for a resume (30)",
    )


class Service(TypedDict):
    """The service options read back, as ``runner``'s entry points take them."""

    connection: Connection | None
    simulator: SimulatorOptions | None
    dispatch_settings: DispatchSettings


def service(args: argparse.Namespace) -> Service:
    """Where DSC is (or the embedded simulator), how to trust it and how hard to push it: the
    options of ``add_connection_options``, in one value."""
    connection, simulator = connection_from(args)
    return {
        "connection": connection,
        "simulator": simulator,
        "dispatch_settings": dispatch_settings(args),
    }


def counting(args: argparse.Namespace, what: str) -> contextlib.AbstractContextManager[None]:
    """Around a command's requests to DSC: a spinner counting them on a terminal (none with
    ``--json``), for work whose requests are many or not known ahead (one per task at the rate
    limit is a minute for 300 tasks at 5/s); a question takes it off the screen meanwhile."""
    return console.counting_requests(what) if _draws(args) else contextlib.nullcontext()


def working(args: argparse.Namespace, what: str) -> contextlib.AbstractContextManager[None]:
    """Around seconds of work that tells no steps (writing the result workbook): a spinner
    saying what is being done, on a terminal (none with ``--json``)."""
    return console.working(what) if _draws(args) else contextlib.nullcontext()


def _draws(args: argparse.Namespace) -> bool:
    """Whether a command may draw progress on the terminal: not when it answers in JSON."""
    return not getattr(args, "json", False)


def dispatch_settings(args: argparse.Namespace) -> DispatchSettings:
    """The pace and retry options read back (UsageError on nonsense, naming the flag)."""
    check_flags(args, _PACE)
    return DispatchSettings(
        rate_per_s=parse_rate(args.rate),
        concurrency=args.concurrency,
        max_attempts=args.attempts,
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        max_task_seconds=args.task_budget,
        quota_windows_s=parse_quota_windows(args.quota_windows),
        settle_s=args.settle,
    )


# the config keys of the pace and retry options
_PACE = (
    "rate", "concurrency", "attempts", "connect_timeout", "read_timeout", "task_budget",
    "quota_windows", "settle",
)  # fmt: skip


def connection_from(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> tuple[Connection | None, SimulatorOptions | None]:
    """``(Connection, None)`` for a real service, ``(None, SimulatorOptions)`` with --simulate."""
    from bulkscan.dsc.credentials import resolve_credentials
    from bulkscan.dsc.endpoints import Endpoints, make_ssl_context
    from bulkscan.runner import Connection, SimulatorOptions

    if args.simulate:
        from bulkscan.sim.server import parse_faults, parse_list_shape

        faults = parse_faults(args.simulate_faults) if args.simulate_faults else None
        shape = args.simulate_list_shape
        if shape:
            parse_list_shape(shape)  # a bad spec is a usage error before anything starts
        return None, SimulatorOptions(
            faults=faults,
            seed=args.simulate_seed,
            list_shape=shape,
            assets=args.simulate_assets,
            state=simulator_state(args),
        )
    per_region = dict(_region_url(item) for item in args.endpoint_for)
    endpoints = Endpoints(override=args.endpoint, per_region=per_region)
    if args.insecure:
        console.err(
            _(
                "bulkscan: warning: TLS certificates are NOT verified (--insecure); "
                "anyone on the network path can read and change the requests"
            ),
            kind="warning",
        )
    tls = make_ssl_context(ca_bundle=args.ca_bundle, verify=not args.insecure)
    credentials = resolve_credentials(token_file=args.token_file, env=env)
    return Connection(credentials=credentials, endpoints=endpoints, ssl=tls), None


SIMULATOR_STATE = "simulator-tasks.json"


def simulate_options(args: argparse.Namespace) -> list[str]:
    """``--simulate`` and its settings as typed, for a next command this one prints."""
    if not getattr(args, "simulate", False):
        return []
    options = ["--simulate"]
    for flag, value in (
        ("--simulate-faults", args.simulate_faults),
        ("--simulate-seed", args.simulate_seed),
        ("--simulate-list-shape", args.simulate_list_shape),
        ("--simulate-assets", args.simulate_assets),
    ):
        if value is not None:
            options += [flag, str(value)]
    return options


def next_options(args: argparse.Namespace, *, same_file: bool = True) -> list[str]:
    """The options of this command to repeat in the ``bulkscan run`` command it prints next,
    so that the run reads the same settings and rows and reaches the same service, simulated
    or not: the settings options (as a run's resume command repeats them), the simulator's,
    the reports folder, where the service is and, for a command that read an inventory, how
    its rows are read, safety caps included (pace and retries are left to the run's own
    settings).  ``same_file`` False: the run reads a workbook this command wrote (the audit's
    uncovered rows, profiles sheet included), so what only describes the user's file
    (``--profiles``, ``--encoding``) is left out."""
    options = settings_options(args) + simulate_options(args)
    reports = getattr(args, "reports_dir", REPORTS)
    if reports != REPORTS:  # the run's directory beside this one's (and the simulator's)
        options += ["--reports-dir", reports]
    options += _given(args, _WHERE)
    if getattr(args, "reads_inventory", False):
        options += _given(args, _READING + (_THE_FILE if same_file else ()))
        options += [] if args.strict_db_types else ["--any-db-type"]
    return options


# (option, dest, the value not worth repeating) of the service's place and of reading rows.
_WHERE: tuple[tuple[str, str, object], ...] = (
    ("--endpoint", "endpoint", None),
    ("--endpoint-for", "endpoint_for", None),
    ("--token-file", "token_file", None),
    ("--ca-bundle", "ca_bundle", None),
    ("--insecure", "insecure", False),
)
_READING: tuple[tuple[str, str, object], ...] = (
    ("--project-id", "project_id", None),
    ("--region", "region", None),
    ("--timezone", "timezone", None),
    ("--start-time-unit", "start_time_unit", "s"),
    ("--max-file-mb", "max_file_mb", _CAPS.max_file_mb),
    ("--max-unpacked-mb", "max_unpacked_mb", _CAPS.max_unpacked_mb),
    ("--max-rows", "max_rows", _CAPS.max_rows),
)
# what describes the user's own file only
_THE_FILE: tuple[tuple[str, str, object], ...] = (
    ("--profiles", "profiles", None),
    ("--encoding", "encoding", None),
)


def _given(args: argparse.Namespace, table: tuple[tuple[str, str, object], ...]) -> list[str]:
    """The options of ``table`` whose values are worth repeating, as typed."""
    options: list[str] = []
    for option, dest, unsaid in table:
        value = getattr(args, dest, unsaid)
        if value is True:
            options.append(option)
        elif isinstance(value, list):
            options += [part for item in value for part in (option, str(item))]
        elif value and value != unsaid:
            options += [option, str(value)]
    return options


def settings_options(args: argparse.Namespace) -> list[str]:
    """``--config``, ``--config-profile`` and ``--lang`` as given, wherever they were typed."""
    options: list[str] = []
    for option in SETTINGS_OPTIONS:
        value = getattr(args, option.removeprefix("--").replace("-", "_"), None)
        if value:
            options += [option, str(value)]
    return options


def simulator_state(args: argparse.Namespace) -> Path:
    """Where ``--simulate`` keeps the simulated service's tasks, so that every command reaches
    the one service ``run --simulate`` created its tasks in: beside the record a command reads
    (the folder of RUN_DIR, of dedupe's audit workbook: the service that record was made
    against), unless ``--reports-dir`` was typed there (``simulator_dir``); else in the reports
    folder in force, as run and audit use it (``--reports-dir``, else ``reports_dir`` of the
    config file, else ``reports``).  Delete the file to start from an empty one.  Written only
    once the simulator starts, so a command refused before that leaves no folder behind."""
    typed = getattr(args, "simulator_dir", None)
    record = getattr(args, "run_dir", None) or getattr(args, "audit_workbook", None)
    if typed:
        folder = Path(typed)
    elif record:
        folder = Path(record).parent
    else:
        folder = Path(getattr(args, "reports_dir", REPORTS))
    return folder / SIMULATOR_STATE


def _region_url(item: str) -> tuple[str, str]:
    region, sep, url = item.partition("=")
    if not sep or not region.strip() or not url.strip():
        raise UsageError(
            _("--endpoint-for '{value}' is not of the form REGION=URL").format(value=item)
        )
    return region.strip(), url.strip()


def typed_command() -> list[str]:
    """The command as typed (a run's journal builds its re-run and resume commands from it;
    a workbook that could not be written names it to write it again).

    Known only when this process is ``bulkscan`` or ``python -m bulkscan``; when ``main`` is
    called from other code, ``sys.argv`` is not this command's: empty then.
    """
    program = Path(sys.argv[0])
    as_module = program.name == "__main__.py" and program.parent.name == "bulkscan"
    return ["bulkscan", *sys.argv[1:]] if program.name == "bulkscan" or as_module else []
