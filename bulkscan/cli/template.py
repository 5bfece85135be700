"""``bulkscan template PATH.xlsx``: write a ready-to-fill inventory workbook."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_OK
from bulkscan.cli._console import console
from bulkscan.errors import UsageError
from bulkscan.i18n import _
from bulkscan.input.template import write_template

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "template",
        help="write an empty inventory workbook with drop-downs and help",
        description="Write a ready-to-fill workbook: the instances and profiles sheets with "
        "headers, drop-down lists, a comment on each header, an example row and a README sheet.",
    )
    parser.add_argument("path", metavar="PATH.xlsx", help="where to write the workbook")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.suffix.lower() != ".xlsx":
        raise UsageError(
            _("{path}: the template is an .xlsx workbook; give a name ending in .xlsx").format(
                path=path
            )
        )
    if path.exists() and not args.force:
        raise UsageError(_("{path} already exists; use --force to overwrite it").format(path=path))
    write_template(path)
    console.out(
        _("wrote {path}: fill the 'instances' sheet, then run: {command}").format(
            path=path, command=shlex.join(["bulkscan", "validate", str(path)])
        )
    )
    return EXIT_OK
