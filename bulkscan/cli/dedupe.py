"""``bulkscan dedupe AUDIT_WORKBOOK``: delete the extra copies an audit found, after asking."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._common import add_connection_options, add_json_option, counting, service
from bulkscan.cli._console import console
from bulkscan.cli._json import emit, outcome_counts
from bulkscan.cli._lifecycle import ask
from bulkscan.i18n import N_, _
from bulkscan.run.states import ActionState

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["register"]

DESCRIPTION = N_(
    "Delete the tasks that the Duplicates sheet of an audit workbook (written by bulkscan "
    "audit) lists as extra copies: tasks whose name and data sources repeat an older "
    "task's, as an outage can leave behind. The oldest of each set is kept. The list is "
    "shown first and confirmed; only ids the project still lists are sent (so running it "
    "again, or after it was killed, deletes nothing twice), in batches, and each project is "
    "listed again to verify. Exit 0: every extra copy is gone; 1: some are still listed; 2: "
    "usage error, or no terminal and no --yes."
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "dedupe", help="delete the extra copies an audit found (asks first)",
        description=DESCRIPTION,
    )  # fmt: skip
    parser.add_argument(
        "audit_workbook", metavar="AUDIT_WORKBOOK", help="a workbook bulkscan audit wrote"
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask before deleting")
    add_json_option(parser, help="print one JSON document on stdout")
    add_connection_options(parser)
    # not reports_dir: the workbook's own folder, not the configured one, is the service it
    # was audited against (simulator_state); a folder typed here wins over it
    parser.add_argument(
        "--reports-dir",
        dest="simulator_dir",
        metavar="DIR",
        help="with --simulate: the reports folder that holds the simulated service's tasks "
        "(simulator-tasks.json) (default: the audit workbook's folder: the service that audit "
        "saw)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    def confirm(extras: Sequence[tuple[str, str, str, str]]) -> bool:
        about = _("{workbook}: {count} extra copy(ies)").format(
            workbook=args.audit_workbook, count=len(extras)
        )
        line = _("delete {task} (id {id}) in {project}/{region}")
        lines = [line.format(task=name, id=tid, project=project, region=region)
                 for project, region, tid, name in extras]  # fmt: skip
        question = _("Delete {count} task(s)?").format(count=len(extras))
        return ask(args, question, lines, about=about)

    with counting(args, "dedupe"):
        result = asyncio.run(runner.dedupe(args.audit_workbook, confirm=confirm, **service(args)))
    if args.json:
        fields = {
            "confirmed": result.confirmed,
            "deleted": [e[2] for e in result.deleted],
            "still_listed": [e[2] for e in result.still_listed],
            "already_gone": [e[2] for e in result.gone],
            "requests": result.requests,
            "outcomes": outcome_counts({ActionState.DONE: len(result.deleted),
                                        ActionState.GONE: len(result.gone),
                                        ActionState.FAILED: len(result.still_listed)}),
        }  # fmt: skip
        return emit(args, result.exit_code, fields)
    if not result.confirmed:
        console.out(_("nothing changed"))
        return 0
    console.out(
        _(
            "dedupe: {deleted} deleted, {gone} already gone, {listed} still listed "
            "({requests} request(s))"
        ).format(
            deleted=len(result.deleted),
            gone=len(result.gone),
            listed=len(result.still_listed),
            requests=result.requests,
        )
    )
    for _project, _region, tid, name in result.still_listed:
        console.out(_("  still listed: {name} (id {id})").format(name=name, id=tid))
    return result.exit_code
