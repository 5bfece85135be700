"""What the service already holds of a plan, as ``run`` and ``plan --check-remote`` show it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bulkscan.cli import runner
from bulkscan.cli._console import by_cause, console
from bulkscan.i18n import _

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

    from bulkscan.run.coverage import CoveredRow, RemoteCheck
    from bulkscan.run.remote import Listed
    from bulkscan.runner import Prepared

__all__ = ["add_coverage_option", "check_json", "for_run", "print_check", "remote_check"]

_SHOWN = 10  # covered rows named one by one before "and N more"


def add_coverage_option(group: Any) -> None:
    group.add_argument(
        "--allow-duplicate-coverage",
        action="store_true",
        help="send rows whose instance another existing task already scans (by default they "
        "are left out, each with 'already covered by task T' in the Rows sheet, and a task "
        "partly covered is planned again from its other rows, under a name of its own)",
    )


def remote_check(
    args: argparse.Namespace,
    prepared: Prepared,
    connection: Any,
    simulator: Any,
    *,
    limiter: Any = None,
) -> RemoteCheck:
    """List the service's tasks for the plan (read only), through the run's ``limiter``."""
    from bulkscan.cli._common import counting, dispatch_settings

    with counting(args, _("listing tasks")):
        return asyncio.run(
            runner.check_remote(
                prepared,
                connection=connection,
                simulator=simulator,
                dispatch_settings=dispatch_settings(args),
                limiter=limiter,
            )
        )


def for_run(
    args: argparse.Namespace,
    prepared: Prepared,
    connection: Any,
    simulator: Any,
    *,
    limiter: Any = None,
) -> tuple[Prepared, Mapping[tuple[str, str], Listed] | None]:
    """The plan a run sends, and the listing its reconcile reuses.

    A new run lists the service's tasks and leaves out the rows other tasks already cover
    (unless ``--allow-duplicate-coverage``); a resumed run leaves out what its first run did.
    """
    if args.resume:
        resumed = runner.covered_before(prepared, reports_dir=args.reports_dir, resume=args.resume)
        return resumed, None
    check = remote_check(args, prepared, connection, simulator, limiter=limiter)
    _say_unlisted(check)
    if not check.covered:
        return prepared, check.listed
    if args.allow_duplicate_coverage:
        console.err(
            _(
                "{count} row(s) already covered by other tasks are sent anyway "
                "(--allow-duplicate-coverage)"
            ).format(count=len(check.covered))
        )
        return prepared, check.listed
    _say_covered(check, prepared)
    return runner.without_covered(prepared, check.covered), check.listed


def _say_unlisted(check: RemoteCheck) -> None:
    for (project, region), error in check.unlisted.items():
        console.err(
            _(
                "project {project} ({region}): its tasks could not be listed, so its rows "
                "were not checked for coverage ({error})"
            ).format(project=project, region=region, error=error)
        )


def _say_covered(check: RemoteCheck, prepared: Prepared) -> None:
    lines = covered_lines(check)
    shown = len(lines) if console.verbose else _SHOWN
    for line in lines[:shown]:
        console.err(line)
    more = len(lines) - shown
    if more > 0:
        console.err(_("... and {more} more (see the Rows sheet of the results)").format(more=more))
    covered = {row.ref for row in check.covered}
    concerned = [t for t in prepared.plan.tasks if t.name in check.covered_tasks]
    whole = sum(1 for t in concerned if covered.issuperset(t.rows))
    said = _("{count} row(s) already covered by other tasks: not sent").format(
        count=len(check.covered)
    )
    if whole:
        said += _("; {count} planned task(s) left out, every row covered").format(count=whole)
    if len(concerned) > whole:
        said += _("; {count} planned task(s) planned again from their other rows").format(
            count=len(concerned) - whole
        )
    console.err(said)


def covered_lines(check: RemoteCheck, indent: str = "") -> list[str]:
    """A line per covered row, or per task covering three rows or more of a sheet (``rows
    2-40 (39 rows): already covered by task T``); ``--verbose``: a line per row."""
    lines = [f"{indent}{row.ref}: {row.source.ins_id}: {row.message}" for row in check.covered]
    if console.verbose:
        return lines
    return by_cause(
        ((r.ref.file, r.ref.sheet, r.message), r.ref.row, line, _covered(indent, r))
        for r, line in zip(check.covered, lines, strict=True)
    )


def _covered(indent: str, row: CoveredRow) -> Callable[[str], str]:
    where = f"{indent}{row.ref.file}, sheet '{row.ref.sheet}', "
    return lambda rows: f"{where}{rows}: {row.message}"


def print_check(check: RemoteCheck) -> None:
    """``plan --check-remote`` as text: what exists, conflicts, is covered; what is new.

    ``check`` is of the plan a run sends (``replanned``), covered rows out.
    """
    from bulkscan.run.remote import group_text  # loaded by the check itself

    groups = len(check.listed)
    console.out(
        _(
            "DSC holds {tasks} task(s) in {groups} project/region group(s) ({requests} listing "
            "request(s); nothing was sent)"
        ).format(tasks=check.remote_tasks, groups=groups, requests=check.requests)
    )
    for task, remote in check.exists:
        said = _("{name} (id {id}): a run finds it and sends nothing")
        console.out(f"  exists    {said.format(name=task.name, id=remote.id)}")
    for task, remote in check.conflicts:
        said = _("{name} (id {id}): that name has other data sources; a run does not send it")
        console.out(f"  conflict  {said.format(name=task.name, id=remote.id)}")
    for line in covered_lines(check, indent="  covered   "):
        console.out(line)
    for (project, region), error in check.unlisted.items():
        said = _("not listed: {why}").format(why=group_text(project, region, error))
        console.out(f"  unknown   {said}")
    waiting = ""
    if check.waiting:
        waiting = _(
            "; {tasks} task(s) of {groups} project/region group(s) not listed: a run lists "
            "them again and sends none to a group it cannot list"
        ).format(tasks=check.waiting, groups=len(check.unlisted))
    console.out(
        _(
            "{exist} exist, {conflict} conflict, {covered} row(s) already covered by other "
            "tasks (left out); a run would create {new} task(s) now{waiting}"
        ).format(
            exist=len(check.exists),
            conflict=len(check.conflicts),
            covered=len(check.covered),
            new=check.new,
            waiting=waiting,
        )
    )


def check_json(check: RemoteCheck) -> dict[str, Any]:
    """``plan --check-remote --json``: the same findings, one object."""
    return {
        "remote_tasks": check.remote_tasks,
        "requests": check.requests,
        "exists": [
            {"name": t.name, "task_id": r.id, "project_id": t.project_id, "region": t.region}
            for t, r in check.exists
        ],
        "conflicts": [
            {"name": t.name, "task_id": r.id, "project_id": t.project_id, "region": t.region}
            for t, r in check.conflicts
        ],
        "covered": [
            {
                "file": c.ref.file,
                "sheet": c.ref.sheet,
                "row": c.ref.row,
                "ins_id": c.source.ins_id,
                "planned_task": c.planned,
                "covered_by": c.by.name,
                "covered_by_id": c.by.id,
            }
            for c in check.covered
        ],
        "unlisted": [
            {"project_id": p, "region": r, "error": e} for (p, r), e in check.unlisted.items()
        ],
        "would_create": check.new,
        "unlisted_tasks": check.waiting,
    }
