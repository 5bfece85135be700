"""``bulkscan plan FILE``: show what would be sent, send nothing (a dry run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_INPUT, EXIT_OK, EXIT_STOPPED, lazy_module
from bulkscan.cli._common import (
    add_connection_options,
    add_input_options,
    connection_from,
    dispatch_settings,
    input_settings,
    issue_json,
    print_issues,
    start_time_text,
)
from bulkscan.cli._console import console
from bulkscan.cli._coverage import check_json, print_check, remote_check
from bulkscan.cli._json import emit
from bulkscan.errors import UsageError, ValidationFailed
from bulkscan.i18n import _
from bulkscan.plan import plan_hash, plan_summary, plan_to_json
from bulkscan.run.coverage import replanned
from bulkscan.run.remote import fatal_answer

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

    from bulkscan import runner
    from bulkscan.config import InputSettings
    from bulkscan.models import Profile, TaskRequest
    from bulkscan.plan import PlanSummary
    from bulkscan.run.coverage import RemoteCheck
    from bulkscan.runner import Prepared
else:
    runner = lazy_module("bulkscan.runner")

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
    add_input_options(parser)
    add_connection_options(parser)  # its --rate is the rate of the time estimate too
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
    parser.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    rate = dispatch_settings(args).rate_per_s
    settings = input_settings(args)
    try:
        prepared = runner.prepare(args.file, profiles_path=args.profiles, settings=settings)
    except ValidationFailed as failed:
        if args.json:
            issues = [issue_json(i) for i in failed.issues]
            emit(args, EXIT_INPUT, {"file": args.file, "ok": False, "issues": issues})
        else:
            print_issues(failed.issues)
            console.err(
                _("{file}: not planned: fix the errors above").format(file=args.file),
                kind="error",
            )
        return EXIT_INPUT
    plan = prepared.plan
    summary = plan_summary(plan, rate_per_s=rate)
    check = _check_remote(args, prepared) if args.check_remote else None
    fatal = fatal_answer(check[0].listed) if check is not None else None
    if fatal is not None:
        console.err(_("bulkscan: stopped: {error}").format(error=fatal), kind="error")
        if args.json:
            emit(args, EXIT_STOPPED, {"file": args.file, "error": str(fatal)})
        return EXIT_STOPPED
    if args.output:
        _write(Path(args.output), plan_to_json(plan, runner.plan_source(prepared, settings)))
    if args.json:
        document = _summary_json(summary, plan_hash(plan), args.output)
        if check is not None:
            document["remote"] = check_json(check[0]) | {"would_create": check[1]}
        return emit(args, EXIT_OK, document)
    print_issues(plan.issues)
    _print_tasks(plan.tasks, settings, prepared.validated.profiles)
    _print_summary(prepared.book.path, summary)
    if check is not None:
        print_check(*check)
    if args.output:
        console.out(_("wrote every request to {path}").format(path=args.output))
    return EXIT_OK


def _check_remote(args: argparse.Namespace, prepared: Prepared) -> tuple[RemoteCheck, int]:
    """The service's tasks against the plan a run would send (covered rows left out), and
    how many tasks that run would create."""
    connection, simulator = connection_from(args)
    found = remote_check(args, prepared, connection, simulator)
    sent = runner.without_covered(prepared, found.covered).plan.tasks
    check = replanned(found, sent)
    return check, len(sent)


def _write(path: Path, document: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _print_tasks(
    tasks: Sequence[TaskRequest], settings: InputSettings, profiles: Mapping[str, Profile]
) -> None:
    """Every task, sorted by project, region and name, with its start time and zone."""
    name, project, region, sources, start = (
        _("task"), _("project"), _("region"), _("sources"), _("start")
    )  # fmt: skip
    header = (
        f"{_pad(name, 44)} {_pad(project, 34)} {_pad(region, 16)} "
        f"{_pad(sources, 7, right=True)}  {start}"
    )
    console.detail(header)
    console.detail("-" * (_width(header) + 24))
    for task in sorted(tasks, key=lambda t: (t.project_id, t.region, t.name)):
        console.detail(
            f"{task.name:<44} {task.project_id:<34} {task.region:<16} "
            f"{len(task.sources):>7}  {start_time_text(task, settings, profiles)}"
        )
    all_sources = sum(len(t.sources) for t in tasks)
    total, count = _("total"), _("{count} task(s)").format(count=f"{len(tasks):>6}")
    console.detail(f"{_pad(total, 44)} {_pad(count, 42)}{all_sources:>7}")
    console.detail()


def _print_summary(path: str, summary: PlanSummary) -> None:
    project, region, profile, tasks, instances = (
        _("project"), _("region"), _("profile"), _("tasks"), _("instances")
    )  # fmt: skip
    header = (
        f"{_pad(project, 34)} {_pad(region, 16)} {_pad(profile, 16)} "
        f"{_pad(tasks, 6, right=True)} {_pad(instances, 9, right=True)}"
    )
    console.detail(header)
    console.detail("-" * _width(header))
    for row in summary.rows:
        console.detail(
            f"{row.project_id:<34} {row.region:<16} {row.profile:<16} "
            f"{row.tasks:>6} {row.instances:>9}"
        )
    console.detail("-" * _width(header))
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
