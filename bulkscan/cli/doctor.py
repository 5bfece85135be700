"""``bulkscan doctor [FILE]``: read-only checks before a real run, one line per check."""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_INPUT, Refused, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import console
from bulkscan.cli._json import Next, emit
from bulkscan.cli._settings import check_flag
from bulkscan.config import InputSettings
from bulkscan.errors import UsageError, ValidationFailed
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    import argparse

    from bulkscan.run.doctor import Check

__all__ = ["register"]

DESCRIPTION = N_(
    "Check, without creating anything, that a run can be trusted in every project and "
    "region that FILE names (or that --project and --region name): the credentials are "
    "accepted, DSC is enabled, the task list can be read, which list shape the service "
    "answers in (the name key, the data_source format, the ids), that paging reaches every "
    "task, and the busiest rate the run will use. One line per check. Exit 0 when a run can "
    "be trusted; 1 with what to fix otherwise; 2 for input or usage errors. --record FILE "
    "saves the raw answers (headers and bodies; nothing of the request or its signature, no "
    "credential header) to attach to a bug report."
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="check credentials, DSC, listing and paging before a real run (read-only)",
        description=DESCRIPTION,
    )
    parser.add_argument("file", metavar="FILE", nargs="?", help="inventory (.xlsx or CSV)")
    parser.add_argument("--profiles", metavar="CSV", help="profiles CSV file (CSV input only)")
    where = parser.add_argument_group("where to check (without FILE, or for its blank cells)")
    where.add_argument(
        "--project", "--project-id", dest="project", action="append", default=[], metavar="ID",
        help="project id",
    )  # fmt: skip
    where.add_argument("--region", action="append", default=[], help="region, e.g. cn-north-4")
    parser.add_argument(
        "--record", metavar="FILE", help="save the raw answers (no secret) to this JSON file"
    )
    common.add_json_option(parser)
    common.add_connection_options(parser, reports_dir=True)
    parser.set_defaults(func=_run)


def _groups(args: argparse.Namespace) -> list[tuple[str, str]]:
    for project in args.project:
        check_flag("project_id", project, "--project")
    default_project = os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID") or None
    if args.file is None:
        projects = args.project or ([default_project] if default_project else [])
        if not projects or not args.region:
            raise UsageError(_("give an inventory FILE, or --project ID and --region REGION"))
        return list(itertools.product(projects, args.region))
    settings = InputSettings(
        project_id=(args.project or [default_project])[0],
        region=(args.region or [None])[0],
        strict_db_types=False,  # the types do not matter to these checks
    )
    inventory = runner.read_audit_inventory(
        args.file, profiles_path=args.profiles, settings=settings
    )
    return list(inventory.groups)


def _run(args: argparse.Namespace) -> int:
    try:
        groups = _groups(args)
    except ValidationFailed as failed:
        line = _("bulkscan: error: {message}").format(message=failed)
        raise Refused(line, code=EXIT_INPUT, error=str(failed)) from None
    report = asyncio.run(runner.doctor(groups, **common.service(args), record=args.record))
    step = _next_step(args) if report.ok else None
    if args.json:
        checks = [_check_json(c) for c in report.checks]
        return emit(args, 0 if report.ok else 1, {"checks": checks, "record": args.record},
                    next_step=step)  # fmt: skip
    for check in report.checks:
        console.out(str(check))
    if args.record:
        console.out(_("raw answers saved to {path}").format(path=args.record))
    if report.ok:
        command = step.command if step else _canary(args, "FILE")  # FILE: the user's
        console.out(_("a run can be trusted here: next, `{command}`").format(command=command))
        return 0
    console.out(
        _("{count} check(s) failed: fix them before a real run").format(count=len(report.failed))
    )
    return 1


def _next_step(args: argparse.Namespace) -> Next | None:
    """A canary run of FILE, through the service just checked; None without FILE."""
    if args.file is None:
        return None
    return Next(_canary(args, args.file), _("a run can be trusted here: start with a canary"))


def _canary(args: argparse.Namespace, file: str) -> str:
    """``bulkscan run FILE --limit 5`` through the service just checked (``--simulate``,
    ``--endpoint`` ...), reading FILE as the checks did."""
    reading = []  # how the checks read FILE, as the run's options say it
    if args.profiles:
        reading += ["--profiles", args.profiles]
    if args.project and args.file is not None:
        reading += ["--project-id", args.project[0]]
    if args.region and args.file is not None:
        reading += ["--region", args.region[0]]
    return shlex.join(["bulkscan", "run", file, *reading, "--limit", "5",
                       *common.next_options(args)])  # fmt: skip


def _check_json(check: Check) -> dict[str, Any]:
    return {
        "name": check.name,
        "ok": check.ok,
        "detail": check.detail,
        "project_id": check.project_id,
        "region": check.region,
        "fix": check.fix,
    }
