"""``bulkscan plan FILE``: show what would be sent, send nothing (a dry run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_OK, Refused, runner
from bulkscan.cli import _common as common
from bulkscan.cli._console import console
from bulkscan.cli._coverage import check_json, print_check, remote_check
from bulkscan.cli._json import emit
from bulkscan.errors import ValidationFailed
from bulkscan.i18n import _
from bulkscan.plan import plan_hash, plan_summary

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

    from bulkscan.config import InputSettings
    from bulkscan.models import Profile, TaskRequest
    from bulkscan.plan import PlanSummary
    from bulkscan.run.coverage import RemoteCheck
    from bulkscan.runner import Prepared

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "plan",
        help="show the tasks a run would create (dry run: sends nothing)",
        description="Validate and plan the inventory, then print tasks and instances per "
        "project, region and profile and how long sending takes at the rate. With --output, "
        "write every request exactly as it will be sent. Start times written without an "
        "offset are read in their profile's timezone column, else --timezone, else this "
        "machine's local zone, and shown with their offset. With --check-remote, list the "
        "service's tasks (read only) and say which planned tasks already exist, which "
        "conflict and which rows other tasks already cover. Nothing is ever sent. Exit 0; 2 "
        "on input errors; 3 when the service refused the credentials (--check-remote).",
    )
    common.add_input_options(parser)
    # its --rate is the rate of the time estimate too
    common.add_connection_options(parser, reports_dir=True)
    parser.add_argument(
        "--check-remote",
        action="store_true",
        help="list the service's tasks (read only, through the run's listing and retry "
        "policy): which planned tasks exist, which conflict, which rows are already covered "
        "by other tasks; nothing is sent",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="PLAN.json",
        help="write every request to this JSON file, with the inventory's hash: "
        "`bulkscan run PLAN.json` applies it as it is, and refuses it once the inventory changed",
    )
    common.add_json_option(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    rate = common.dispatch_settings(args).rate_per_s
    inventory = common.inventory(args)
    settings = inventory["settings"]
    try:
        prepared = runner.prepare(**inventory)
    except ValidationFailed as failed:
        line = _("{file}: not planned: fix the errors above")
        raise common.invalid_input(args, failed, line, ok=False) from None
    plan = prepared.plan
    summary = plan_summary(plan, rate_per_s=rate)
    check = _check_remote(args, prepared) if args.check_remote else None
    if check is not None:
        from bulkscan.run.remote import fatal_answer  # only with --check-remote

        fatal = fatal_answer(check.listed)
        if fatal is not None:
            raise Refused.stopped(fatal, file=args.file)
    if args.output:
        runner.write_plan(prepared, settings, args.output)
    if args.json:
        document = _summary_json(summary, plan_hash(plan), args.output)
        if check is not None:
            document["remote"] = check_json(check)
        return emit(args, EXIT_OK, document)
    common.print_issues(plan.issues)
    _print_tasks(plan.tasks, settings, prepared.validated.profiles)
    _print_summary(prepared.book.path, summary)
    if check is not None:
        print_check(check)
    if args.output:
        console.out(_("wrote every request to {path}").format(path=args.output))
    return EXIT_OK


def _check_remote(args: argparse.Namespace, prepared: Prepared) -> RemoteCheck:
    """The service's tasks against the plan a run would send (covered rows left out)."""
    connection, simulator = common.connection_from(args)
    found = remote_check(args, prepared, connection, simulator)
    sent = runner.without_covered(prepared, found.covered).plan.tasks
    from bulkscan.run.coverage import replanned  # only plan --check-remote needs it

    return replanned(found, sent)


# Column widths of plan's two tables; a negative width right-aligns (a count).
_TASKS = (44, 34, 16, -7, 0, 0)  # task, project, region, sources, "", start (two spaces before)
_TOTAL = (44, 34 + 1 + 16, -7)  # "total", the count of tasks, the sources under their column
_GROUPS = (34, 16, 16, -6, -9)  # project, region, profile, tasks, instances


def _print_tasks(
    tasks: Sequence[TaskRequest], settings: InputSettings, profiles: Mapping[str, Profile]
) -> None:
    """Every task, sorted by project, region and name, with its start time and zone."""
    titles = (_("task"), _("project"), _("region"), _("sources"), "", _("start"))
    rows = [
        (task.name, task.project_id, task.region, len(task.sources), "",
         common.start_time_text(task, settings, profiles))
        for task in sorted(tasks, key=lambda t: (t.project_id, t.region, t.name))
    ]  # fmt: skip
    count = _("{count} task(s)").format(count=f"{len(tasks):>6}")
    sources = sum(len(t.sources) for t in tasks)  # under the sources column
    lines = _table_lines(titles, rows, _TASKS, rule_extra=24)
    lines += [_cells((_("total"), count, sources), _TOTAL), ""]
    # on a terminal, without the spacer column the padded text needs
    shown = [(name, project, region, n, start) for name, project, region, n, _gap, start in rows]
    total = (_("total"), count.strip(), "", sources, "")
    console.table(
        (*titles[:4], titles[5]), [*shown, None, total], right=(False, False, False, True, False),
        lines=lines,
    )  # fmt: skip
    console.detail()


def _print_summary(path: str, summary: PlanSummary) -> None:
    titles = (_("project"), _("region"), _("profile"), _("tasks"), _("instances"))
    rows = [(r.project_id, r.region, r.profile, r.tasks, r.instances) for r in summary.rows]
    lines = _table_lines(titles, rows, _GROUPS)
    lines.append("-" * _width(lines[0]))
    console.table(titles, rows, right=[w < 0 for w in _GROUPS], lines=lines)
    minutes = summary.estimated_seconds / 60
    console.out(
        _(
            "{path}: {tasks} task(s) for {instances} instance(s); {skipped} skipped, "
            "{duplicates} duplicate(s), {warnings} warning(s). At {rate}/s sending takes about "
            "{minutes} min (more if retries are needed). Nothing was sent."
        ).format(
            path=path,
            tasks=summary.tasks,
            instances=summary.instances,
            skipped=summary.skipped,
            duplicates=summary.duplicates,
            warnings=summary.warnings,
            rate=f"{summary.rate_per_s:g}",
            minutes=f"{minutes:.1f}",
        )
    )


def _table_lines(
    titles: Sequence[str],
    rows: Sequence[Sequence[object]],
    widths: Sequence[int],
    *,
    rule_extra: int = 0,
) -> list[str]:
    """``titles``, a rule under them and ``rows``, each cell padded to its column."""
    header = _cells(titles, widths)
    return [header, "-" * (_width(header) + rule_extra), *(_cells(row, widths) for row in rows)]


def _cells(values: Sequence[object], widths: Sequence[int]) -> str:
    """``values`` padded to ``widths`` columns (a negative width right-aligns), one space
    apart."""
    return " ".join(
        _pad(str(v), abs(w), right=w < 0) for v, w in zip(values, widths, strict=True)
    ).rstrip()


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: a Chinese character takes two."""
    import unicodedata  # only a table needs it

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded to ``width`` columns (right-aligned with ``right``)."""
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _summary_json(summary: PlanSummary, digest: str, output: str | None) -> dict[str, Any]:
    return {
        "ok": True,
        "plan_hash": digest,
        "tasks": summary.tasks,
        "instances": summary.instances,
        "skipped": summary.skipped,
        "duplicates": summary.duplicates,
        "warnings": summary.warnings,
        "rate_per_s": summary.rate_per_s,
        "estimated_seconds": summary.estimated_seconds,
        "groups": [
            {
                "project_id": r.project_id,
                "region": r.region,
                "profile": r.profile,
                "tasks": r.tasks,
                "instances": r.instances,
            }
            for r in summary.rows
        ],
        "output": output,
    }
