"""``bulkscan resolve FILE``: fill each row's ins_id and db_type from DSC's asset centre."""

from __future__ import annotations

import asyncio
import shlex
from typing import TYPE_CHECKING, Any

from bulkscan.cli import Refused, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import console
from bulkscan.cli._json import Next, emit
from bulkscan.errors import RunFatalError
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]

DESCRIPTION = N_(
    "List DSC's asset centre (its database instances and the databases DSC is authorised to "
    "reach) once per project, region and instance type that the inventory names, and match "
    "every row to it: by ins_name (aliases: instance name, name, rds name, 实例名称) when the "
    "row has one, else by ins_id. Writes <FILE stem>-resolved.xlsx beside the input: the "
    "input's own layout with ins_id and DSC's db_type filled in, the instance's status, "
    'authorisation and check, and an Issues sheet. A name that matches no instance ("did '
    'you mean") or several, an ins_id that disagrees with the name, and an instance that is '
    "not active, not authorised or of a type metadata tasks cannot carry are errors naming "
    "the row; such rows are written with enabled FALSE, so that `bulkscan run` of the "
    "resolved file never sends them. Exit 0: every row resolved and passed; 1: some did "
    "not; 2: input or usage error; 3: stopped by a fatal error."
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "resolve",
        help="fill ins_id and db_type from DSC's asset centre, by instance name (a workbook)",
        description=DESCRIPTION,
    )
    common.add_input_options(parser)
    common.add_connection_options(parser, reports_dir=True)
    group = parser.add_argument_group("the resolution")
    group.add_argument(
        "--output", metavar="PATH", help="workbook to write (default: <FILE stem>-resolved.xlsx)"
    )
    common.add_json_option(group, help="print one JSON summary on stdout at the end")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    service = common.service(args)
    try:
        with common.counting(args, "resolve"):
            report = asyncio.run(
                runner.resolve(**common.inventory(args), **service, output=args.output)
            )
    except RunFatalError as exc:
        raise Refused.stopped(exc, file=args.file) from None
    code = common.exit_code(report.status)
    if args.json:
        return emit(args, code, _summary(report), next_step=_next_step(report))
    if report.issues:
        common.print_issues(report.issues)
    ok = len(report.rows) - report.failed
    console.out(
        _(
            "resolved {ok} of {rows} row(s) ({failed} not to be sent) with {requests} "
            "asset-centre request(s); wrote {workbook}"
        ).format(
            ok=ok, rows=len(report.rows), failed=report.failed, requests=report.requests,
            workbook=report.workbook,
        )
    )  # fmt: skip
    step = _next_step(report)
    if step is None:
        console.out(
            _(
                "no row resolved: correct the names or ids in {file} (each row's reason is in "
                "{workbook}), then resolve again"
            ).format(file=report.book.path, workbook=report.workbook)
        )
    else:
        console.out(_("next: {command}").format(command=step.command))
    return code


def _next_step(report: runner.ResolveReport) -> Next | None:
    """Check the resolved workbook before a run; nothing to check when no row resolved."""
    if report.rows and report.failed >= len(report.rows):
        return None
    command = shlex.join(["bulkscan", "validate", str(report.workbook)])
    return Next(command, _("check the resolved workbook before a run"))


def _summary(report: runner.ResolveReport) -> dict[str, Any]:
    return {
        "file": report.book.path,
        "workbook": str(report.workbook),
        "rows": len(report.rows),
        "failed": report.failed,
        "requests": report.requests,
        "issues": [i.to_json() for i in report.issues],
    }
