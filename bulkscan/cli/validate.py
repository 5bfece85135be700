"""``bulkscan validate FILE``: report every problem of an input at once, send nothing."""

from __future__ import annotations

import asyncio
import shlex
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_INPUT, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import console
from bulkscan.cli._json import emit
from bulkscan.i18n import _

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from bulkscan.models import Issue
    from bulkscan.report.errors import ErrorsReport

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="check an inventory and report every problem (sends nothing)",
        description="Read the inventory and report every problem in one pass, each with its "
        "file, sheet, row and column. Exit 0 when there are no errors (warnings allowed), "
        "2 when there are errors. With --remote, every valid row is also checked against "
        "DSC's asset centre (the instance exists, is active, DSC is authorised to reach it, "
        "its type can carry a metadata task); a row that fails is an error. With --report, "
        "also write an errors workbook: every row of the input in its order, its problems "
        "beside it.",
    )
    common.add_input_options(parser)
    common.add_json_option(parser)
    parser.add_argument(
        "--remote",
        action="store_true",
        help="also check every row against DSC's asset centre (reads it; creates nothing)",
    )
    parser.add_argument(
        "--report",
        nargs="?",
        const="",
        metavar="XLSX",
        help="write an errors workbook: the input's rows with their problems beside them "
        "(default: REPORTS/<input>-errors.xlsx; give the input first: FILE --report)",
    )
    common.add_reports_dir_option(
        parser, help="folder for the errors workbook when --report names none (default: reports)"
    )
    common.add_connection_options(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    checked = runner.check(**common.inventory(args))
    issues = checked.issues
    if args.remote and not checked.has_errors:
        issues += _remote_issues(args, checked)
    errors = sum(1 for i in issues if i.severity == "error")
    warnings = len(issues) - errors
    validated = checked.validated
    written = _write_report(args, checked, issues) if args.report is not None else None
    code = EXIT_INPUT if errors else common.exit_code(checked.status)
    if args.json:
        emit(
            args,
            code,
            {
                "file": checked.book.path,
                "ok": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "instances": len(validated.instances),
                "skipped": len(validated.skipped),
                "duplicates": len(validated.duplicates),
                "issues": [i.to_json() for i in issues],
                **({"report": str(written.path)} if written else {}),
            },
        )
    else:
        common.print_issues(issues)
        verdict = _("OK") if errors == 0 else _("NOT OK")
        console.out(
            _(
                "{file}: {verdict}: {instances} instance(s), {skipped} skipped, "
                "{errors} error(s), {warnings} warning(s)"
            ).format(
                file=checked.book.path, verdict=verdict, instances=len(validated.instances),
                skipped=len(validated.skipped), errors=errors, warnings=warnings,
            )
        )  # fmt: skip
        if written is not None:
            console.out(_("errors workbook: {path}").format(path=written.path))
    return code


def _write_report(
    args: argparse.Namespace, checked: runner.Checked, issues: Sequence[Issue]
) -> ErrorsReport:
    again = common.typed_command()  # as typed: its --reports-dir, --encoding ... included
    if not again:
        again = ["bulkscan", "validate", checked.book.path, "--report"]
        again += [args.report] if args.report else []
    command = shlex.join(again)
    return runner.write_errors(
        checked.book, issues, args.report or None, command=command, reports_dir=args.reports_dir
    )


def _remote_issues(args: argparse.Namespace, checked: runner.Checked) -> tuple[Issue, ...]:
    with common.counting(args, _("asset check")):
        found = asyncio.run(
            runner.remote_check(checked.validated.instances, **common.service(args))
        )
    return found.issues
