"""``bulkscan export --region R``: an input workbook of what DSC already has."""

from __future__ import annotations

import asyncio
import os
import shlex
from typing import TYPE_CHECKING, Any

from bulkscan.cli import Refused, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import console
from bulkscan.cli._json import Next, emit, outcome_counts
from bulkscan.cli._settings import check_flag
from bulkscan.errors import RunFatalError, UsageError
from bulkscan.i18n import N_, _
from bulkscan.input.schema import REGIONS

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]

DESCRIPTION = N_(
    "Write an input workbook from what DSC already has: every database instance of the "
    "asset centre in the project(s) and region, with the scan tasks that cover it today "
    "(found through the same task listing and matching rule as run and audit). A covered "
    "row names its task in the task column, so `bulkscan run` of the whole file finds it as "
    '"exists" and creates nothing twice; an uncovered row leaves task blank, so a run of it '
    "creates its task; a row that cannot be scanned (not active, not authorised, a type "
    "metadata tasks cannot carry) is written with enabled FALSE. Exit 0: everything listed; "
    "1: some project could not be listed; 2: usage error; 3: stopped by a fatal error."
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="write an input workbook of DSC's database instances and their tasks",
        description=DESCRIPTION,
    )
    group = parser.add_argument_group("what to export")
    group.add_argument("--region", required=True, help="region, e.g. cn-north-4")
    group.add_argument(
        "--project",
        "--project-id",  # as every other command spells it
        dest="project",
        action="append",
        default=[],
        metavar="ID",
        help="project id (repeatable; default: $HUAWEICLOUD_SDK_PROJECT_ID)",
    )
    group.add_argument(
        "--output", default="dsc-export.xlsx", metavar="PATH", help="(default: dsc-export.xlsx)"
    )
    common.add_json_option(group)
    common.add_connection_options(parser, reports_dir=True)
    parser.set_defaults(func=_run)


def _projects(args: argparse.Namespace) -> list[str]:
    for project in args.project:
        check_flag("project_id", project, "--project")
    projects = args.project or [os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID", "")]
    projects = [p.strip() for p in projects if p.strip()]
    if not projects:
        raise UsageError(_("give --project (or set HUAWEICLOUD_SDK_PROJECT_ID)"))
    if args.region not in REGIONS:
        console.err(
            _("bulkscan: warning: region '{region}' is not a known region").format(
                region=args.region
            ),
            kind="warning",
        )
    return projects


def _run(args: argparse.Namespace) -> int:
    scopes = [(p, args.region) for p in _projects(args)]
    service = common.service(args)
    try:
        with common.counting(args, "export"):
            report = asyncio.run(runner.export(scopes, args.output, **service))
    except RunFatalError as exc:
        raise Refused.stopped(exc) from None
    for (project, region), why in report.errors.items():
        console.err(
            _("error: project {project} / region {region}: {error}").format(
                project=project, region=region, error=why
            ),
            kind="error",
        )
    step = _next_step(args, report)
    if args.json:
        return emit(args, common.exit_code(report.status), _summary(report), next_step=step)
    console.out(
        _("{found} instance(s), {uncovered} not covered by a task; wrote {workbook}").format(
            found=len(report.found), uncovered=report.uncovered, workbook=report.workbook
        )
    )
    if step is not None:
        console.out(_("next: {command}").format(command=step.command))
    elif report.uncovered:
        console.out(
            _(
                "the {count} instance(s) without a task cannot be scanned (their asset_check "
                "says why): nothing to run"
            ).format(count=report.uncovered)
        )
    elif report.found:
        console.out(_("every instance has a task: nothing to run"))
    elif not report.errors and args.simulate and not args.simulate_assets:
        console.out(
            _(
                "the embedded simulator's asset centre is empty: nothing to run (give it "
                'instances with --simulate-assets FILE; README, "From names to tasks")'
            )
        )
    elif not report.errors:
        console.out(
            _(
                "DSC's asset centre lists no database instance there: nothing to run (may "
                "these credentials read the asset centre, and is it the right project and "
                "region?)"
            )
        )
    return common.exit_code(report.status)


def _next_step(args: argparse.Namespace, report: runner.ExportReport) -> Next | None:
    """Run the workbook, when some scannable instance has no task (else a run creates
    nothing)."""
    if not report.to_create:
        return None
    command = shlex.join(["bulkscan", "run", str(report.workbook), *common.next_options(args)])
    return Next(command, _("create the tasks of the rows not covered (the covered ones exist)"))


def _summary(report: runner.ExportReport) -> dict[str, object]:
    errors = [{"project_id": p, "region": r, "error": e} for (p, r), e in report.errors.items()]
    return {
        "workbook": str(report.workbook),
        "instances": len(report.found),
        "outcomes": outcome_counts(
            {"covered": len(report.found) - report.uncovered, "not_covered": report.uncovered}
        ),
        "unlisted": errors,
    }
