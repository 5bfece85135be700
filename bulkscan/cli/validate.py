"""``bulkscan validate FILE``: report every problem of an input at once, send nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan import runner
from bulkscan.cli._common import (
    add_input_options,
    exit_code,
    input_settings,
    issue_json,
    print_issues,
    print_json,
)

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="check an inventory and report every problem (sends nothing)",
        description="Read the inventory and report every problem in one pass, each with its "
        "file, sheet, row and column. Exit 0 when there are no errors (warnings allowed), "
        "2 when there are errors.",
    )
    add_input_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    checked = runner.check(args.file, profiles_path=args.profiles, settings=input_settings(args))
    errors = sum(1 for i in checked.issues if i.severity == "error")
    warnings = len(checked.issues) - errors
    validated = checked.validated
    if args.json:
        print_json(
            {
                "file": checked.book.path,
                "ok": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "instances": len(validated.instances),
                "skipped": len(validated.skipped),
                "duplicates": len(validated.duplicates),
                "issues": [issue_json(i) for i in checked.issues],
            }
        )
    else:
        print_issues(checked.issues)
        verdict = "OK" if errors == 0 else "NOT OK"
        print(
            f"{checked.book.path}: {verdict}: {len(validated.instances)} instance(s), "
            f"{len(validated.skipped)} skipped, {errors} error(s), {warnings} warning(s)"
        )
    return exit_code(checked.status)
