"""Every command of the CLI, in process through ``bulkscan.cli.main`` (and as a subprocess
where a signal or the interpreter's entry point matters), on the shipped samples and on
workbooks written into ``tmp_path``."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest

from bulkscan import __version__, runner
from bulkscan.cli import build_parser, main
from bulkscan.plan import plan_to_json
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from tests.e2e._cli import Done, no_traceback

if TYPE_CHECKING:
    from collections.abc import Iterator

INPUTS = Path(__file__).resolve().parents[2] / "inputs"
SAMPLE = INPUTS / "sample.xlsx"
WITH_ERRORS = INPUTS / "sample-with-errors.xlsx"
CSV_INSTANCES = INPUTS / "sample-instances.csv"
CSV_PROFILES = INPUTS / "sample-profiles.csv"
COMMANDS = (
    "audit", "completion", "config", "dedupe", "disable", "doctor", "enable", "export", "plan",
    "report", "resolve", "run", "simulate", "start", "status", "template", "undo", "validate",
)  # fmt: skip


def _cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run ``bulkscan ARGV`` in process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands here never need the caller's cloud settings (the simulator has its own)."""
    for name in list(os.environ):
        if name.startswith(("HUAWEICLOUD_SDK_", "BULKSCAN_")):
            monkeypatch.delenv(name)


# --- the parser ------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no subcommands")


def test_every_command_is_registered_with_a_one_line_help() -> None:
    parser = build_parser()
    assert sorted(_subcommands(parser)) == list(COMMANDS)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            assert sorted(helps) == list(COMMANDS)
            assert all(h and h.strip() for h in helps.values()), helps


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_has_help_text(command: str) -> None:
    sub = _subcommands(build_parser())[command]
    assert sub.description and len(sub.description) > 40
    missing = [
        "/".join(a.option_strings) or a.dest
        for a in sub._actions
        if not a.help or a.help == argparse.SUPPRESS or not a.help.strip()
    ]
    assert missing == []


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_exits_0(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: bulkscan {command}")
    for option in ("--help",):
        assert option in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), command


def test_no_command_prints_the_help_in_workflow_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: bulkscan" in out
    assert out.index("template") < out.index("validate") < out.index(" run ") < out.index("audit")
    no_traceback(out)


def test_python_dash_m_bulkscan_prints_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bulkscan", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"bulkscan {__version__}"


# --- validate --------------------------------------------------------------------------------


def test_validate_the_sample_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "validate", SAMPLE)
    assert code == 0
    assert "OK" in out and "NOT OK" not in out
    assert "0 error(s)" in out
    no_traceback(out, err)


def test_validate_the_sample_with_errors_names_sheet_row_and_column_of_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _cli(capsys, "validate", WITH_ERRORS)
    assert code == 2
    assert "NOT OK" in out
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) >= 9
    for line in lines:
        assert line.startswith(("error: ", "warning: ")), line
        assert re.search(r"sheet '(instances|profiles)', row \d+, column '[^']+'", line), line
    # the realistic mistakes shipped in the sample each appear with their cell
    assert any("row 3, column 'project_id'" in line and "'abc'" in line for line in errors)
    assert any("'nighly'" in line and "did you mean 'nightly'" in line for line in errors)
    assert any("'HOURLY'" in line for line in errors)
    no_traceback(out, err)


def test_a_start_time_the_clocks_skip_is_refused_with_its_cell(
    capsys: pytest.CaptureFixture[str], make_xlsx: Any
) -> None:
    """02:30 on the night the clocks go forward never happens in New York: refused, naming
    the cell, instead of a scan starting at 03:30 that nobody typed."""
    from datetime import datetime

    book = make_xlsx(
        {
            "instances": [
                ["ins_id", "db_type", "project_id", "region", "profile"],
                ["ins-1", "MySQL", "0" * 32, "cn-north-4", "spring"],
            ],
            "profiles": [
                ["profile", "schedule_type", "start_now", "start_time"],
                ["spring", "ONCE", False, datetime(2026, 3, 8, 2, 30)],
            ],
        }
    )
    code, out, err = _cli(capsys, "validate", book, "--timezone", "America/New_York")
    assert code == 2, out + err
    said = out + err
    assert "sheet 'profiles', row 2" in said and "start_time" in said, said
    assert "'2026-03-08 02:30' never shows on the clocks of America/New_York" in said
    assert "such as 2026-03-08 03:30" in said and "Traceback" not in said
    code, out, err = _cli(capsys, "validate", book, "--timezone", "Asia/Shanghai")
    assert code == 0, out + err


def test_validate_json_lists_every_issue_with_its_cell(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "validate", WITH_ERRORS, "--json")
    assert code == 2
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["errors"] == sum(1 for i in doc["issues"] if i["severity"] == "error") >= 9
    assert doc["warnings"] == len(doc["issues"]) - doc["errors"]
    for issue in doc["issues"]:
        assert issue["sheet"] in ("instances", "profiles")
        assert isinstance(issue["row"], int) and issue["row"] >= 2
        assert issue["column"]
        assert issue["file"].endswith("sample-with-errors.xlsx")


def test_validate_json_of_a_good_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "validate", SAMPLE, "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["ok"], doc["errors"]) == (True, 0)
    assert doc["instances"] == runner.prepare(SAMPLE).plan.instance_count


def test_validate_a_csv_pair(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "validate", CSV_INSTANCES, "--profiles", CSV_PROFILES)
    assert code == 0, err
    assert "0 error(s)" in out
    no_traceback(out, err)


def test_a_profiles_file_with_an_xlsx_input_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "validate", SAMPLE, "--profiles", CSV_PROFILES)
    assert code == 2
    no_traceback(out, err)
    assert err.strip()


@pytest.mark.parametrize("command", ["validate", "plan", "run", "audit"])
def test_a_missing_file_is_one_line_without_traceback(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--simulate", "--yes", "--reports-dir", str(tmp_path)] if command == "run" else []
    if command == "audit":
        extra = ["--simulate", "--reports-dir", str(tmp_path)]
    code, out, err = _cli(capsys, command, tmp_path / "nope.xlsx", *extra)
    assert code == 2
    assert err.count("\n") == 1
    assert "nope.xlsx" in err and "not found" in err
    assert out == ""
    no_traceback(err)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("inventory.docx", b"PK\x03\x04", "unsupported file type '.docx'"),
        ("inventory.xls", b"\xd0\xcf\x11\xe0", "save it as .xlsx"),
        ("inventory.xlsx", b"", "not a valid .xlsx"),
        ("inventory.xlsx", b"ins_id,db_type\n1,MySQL\n", "not a valid .xlsx"),
    ],
)
def test_a_wrong_kind_of_file_is_one_line_without_traceback(
    name: str, content: bytes, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = _cli(capsys, "validate", path)
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1
    no_traceback(out, err)


def test_a_directory_is_refused_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "validate", tmp_path)
    assert code == 2
    assert err == f"bulkscan: error: {tmp_path}: is a folder, not a file\n"
    no_traceback(out, err)


@pytest.mark.parametrize("command", ["status", "start", "enable", "disable", "undo"])
def test_a_wrong_run_dir_is_said_before_missing_credentials(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The inventory given where its run directory belongs: that is the mistake to tell, even
    on a machine without credentials (this test has none)."""
    yes = [] if command == "status" else ["--yes"]
    code, out, err = _cli(capsys, command, SAMPLE, *yes)
    assert code == 2, err
    assert err == (
        f"bulkscan: error: {SAMPLE} is a file, not a run directory (give the directory that "
        "bulkscan run created under reports/)\n"
    )
    no_traceback(out, err)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("run-dir", "is a folder, not a file; give the workbook bulkscan audit wrote"),
        ("nope.xlsx", "nope.xlsx: file not found; give the workbook bulkscan audit wrote"),
        ("sample.xlsx", "has no Duplicates sheet: give the workbook bulkscan audit wrote"),
        ("sample-instances.csv", "not an .xlsx workbook; give the workbook"),
        ("broken.xlsx", "not a valid .xlsx (corrupt?)"),
    ],
)
def test_dedupe_of_anything_but_an_audit_workbook_is_one_line(
    given: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dedupe deletes tasks, so it reads only a workbook bulkscan audit wrote; what else a
    user names (the run directory, the inventory) is said in one line, and nothing is sent."""
    (tmp_path / "run-dir").mkdir()
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not a zip")
    path = INPUTS / given if (INPUTS / given).exists() else tmp_path / given
    code, out, err = _cli(capsys, "dedupe", path, "--simulate", "--yes")
    assert code == 2, err
    assert expected in err and err.count("\n") == 1, err
    no_traceback(out, err)


@pytest.mark.parametrize(
    "options",
    [
        ["--project-id", "not-hex"],
        ["--timezone", "Mars/Olympus"],
        ["--max-rows", "0"],
    ],
)
def test_nonsense_options_are_usage_errors(
    options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "validate", SAMPLE, *options)
    assert code == 2
    assert err.startswith("bulkscan: error: ")
    no_traceback(out, err)


# --- plan ------------------------------------------------------------------------------------


def test_plan_prints_a_summary_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    plan = runner.prepare(SAMPLE).plan
    code, out, err = _cli(capsys, "plan", SAMPLE, "--rate", "2/s")
    assert code == 0
    assert f"{len(plan.tasks)} task(s) for {plan.instance_count} instance(s)" in out
    assert "At 2/s" in out and "Nothing was sent." in out
    for task in plan.tasks:
        assert task.project_id in out
    no_traceback(out, err)


def test_plan_output_is_every_request_as_plan_to_json_gives_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "plan.json"
    code, out, _ = _cli(capsys, "plan", SAMPLE, "--output", target)
    assert code == 0
    assert f"wrote every request to {target}" in out
    written = json.loads(target.read_text("utf-8"))
    expected = json.loads(json.dumps(plan_to_json(runner.prepare(SAMPLE).plan)))
    source = written.pop("source")  # the inventory's hash, which `run PLAN.json` checks
    assert written == expected
    assert [f["path"] for f in source["files"]] == [str(SAMPLE)]
    assert written["task_count"] == len(written["tasks"]) > 0


def test_plan_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    plan = runner.prepare(SAMPLE).plan
    code, out, _ = _cli(capsys, "plan", SAMPLE, "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["ok"], doc["tasks"], doc["instances"]) == (True, len(plan.tasks), 148)
    assert sum(g["tasks"] for g in doc["groups"]) == len(plan.tasks)
    assert doc["rate_per_s"] == 5.0


def test_plan_of_a_bad_input_exits_2_with_every_issue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "plan", WITH_ERRORS)
    assert code == 2
    assert "not planned" in err
    assert err.count("error: ") >= 9
    no_traceback(out, err)
    code, out, _ = _cli(capsys, "plan", WITH_ERRORS, "--json")
    assert code == 2
    assert json.loads(out)["ok"] is False


def test_plan_with_a_bad_rate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "plan", SAMPLE, "--rate", "fast")
    assert code == 2
    assert "N/s or N/min" in err
    no_traceback(out, err)


# --- template --------------------------------------------------------------------------------


def test_template_writes_a_workbook_whose_example_rows_cannot_be_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.xlsx"
    code, out, _ = _cli(capsys, "template", path)
    assert code == 0
    assert f"bulkscan validate {path}" in out
    book = openpyxl.load_workbook(path)
    assert {"instances", "profiles", "README"} <= set(book.sheetnames)
    book.close()
    code, out, err = _cli(capsys, "validate", path)
    assert code == 2, err
    assert "sheet 'instances', row 2, column 'ins_id': example row still present" in err
    assert "2 error(s), 0 warning(s)" in out


def test_template_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.xlsx"
    path.write_bytes(b"precious")
    code, _, err = _cli(capsys, "template", path)
    assert code == 2
    assert "--force" in err
    assert path.read_bytes() == b"precious"
    code, _, _ = _cli(capsys, "template", path, "--force")
    assert code == 0
    assert path.read_bytes() != b"precious"


@pytest.mark.parametrize("name", ["template.csv", "template"])
def test_template_wants_an_xlsx_name(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "template", tmp_path / name)
    assert code == 2
    assert ".xlsx" in err
    assert not (tmp_path / name).exists()
    no_traceback(out, err)


# --- run, report and audit (against the embedded simulator) ------------------------------------


def test_run_simulated_creates_every_task_and_writes_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    plan = runner.prepare(SAMPLE).plan
    code, out, err = _cli(
        capsys, "run", SAMPLE, "--simulate", "--yes", "--rate", "200/s", "--reports-dir", reports
    )
    assert code == 0, err
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    assert f"run {run_dir.name}: " in out
    assert f"results: {run_dir / 'results.xlsx'}" in out
    assert "the embedded simulator" in err
    with Journal.open(run_dir, readonly=True) as journal:
        assert [t.state for t in journal.tasks()] == [TaskState.CREATED] * len(plan.tasks)
    no_traceback(out, err)


def test_a_simulated_run_resumed_without_its_limit_shows_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedded simulator's new port is no changed setting; a limit dropped reads so."""
    reports = tmp_path / "reports"
    canary = ("run", SAMPLE, "--simulate", "--yes", "--rate", "200/s", "--reports-dir", reports)
    code, _, err = _cli(capsys, *canary, "--limit", "2")
    assert code == 0, err
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    code, _, err = _cli(capsys, *canary, "--resume", run_dir)
    assert code == 0, err
    summary = openpyxl.load_workbook(run_dir / "results.xlsx", read_only=True)["Summary"]
    facts = {r[0]: r[1] for r in summary.iter_rows(max_col=2, values_only=True) if r[0]}
    assert facts["endpoint"] == "the embedded simulator"
    assert facts["limit"] == "2 at the start; not set at the last resume"


def test_run_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(
        capsys, "run", SAMPLE, "--simulate", "--json", "--yes", "--rate", "200/s",
        "--reports-dir", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["outcomes"] == {"created": len(runner.prepare(SAMPLE).plan.tasks)}
    assert (doc["exit_code"], doc["stop_reason"], doc["retry"]) == (0, "done", None)
    assert Path(doc["results"]).is_file()


def test_run_of_a_bad_input_sends_nothing_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys, "run", WITH_ERRORS, "--simulate", "--yes", "--reports-dir", tmp_path
    )
    assert code == 2
    assert "nothing sent" in err
    assert list(tmp_path.iterdir()) == []
    no_traceback(out, err)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--rate", "1000/s"], "at most 200/s"),
        (["--concurrency", "0"], "concurrency"),
        (["--simulate-faults", "http999=0.5"], "http999"),
        (["--resume"], "no earlier run"),
    ],
)
def test_run_refuses_nonsense_options_before_sending(
    options: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys, "run", SAMPLE, "--simulate", "--yes", "--reports-dir", tmp_path, *options
    )
    assert code == 2
    assert needle in err
    assert err.splitlines()[-1].startswith("bulkscan: error: ")
    no_traceback(out, err)


def test_run_without_credentials_says_where_they_come_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys, "run", SAMPLE, "--endpoint", "http://127.0.0.1:9", "--yes",
        "--reports-dir", tmp_path,
    )  # fmt: skip
    assert code == 2
    assert "HUAWEICLOUD_SDK_AK" in err
    assert list(tmp_path.iterdir()) == []
    no_traceback(out, err)


@pytest.fixture
def simulated_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[Path, str]]:
    """A finished simulated run of the sample where some creates met a 503 with one attempt."""
    reports = tmp_path / "reports"
    code, out, err = _cli(
        capsys, "run", SAMPLE, "--simulate", "--yes", "--rate", "200/s", "--attempts", "1",
        "--simulate-faults", "http503=0.3", "--simulate-seed", "5", "--reports-dir", reports,
        "--no-remote-check",  # with one attempt, a 503 on an asset listing would refuse the run
    )  # fmt: skip
    assert code == 1, err
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    yield run_dir, out


def test_a_run_with_failures_exits_1_and_prints_the_rerun_command(
    simulated_run: tuple[Path, str],
) -> None:
    run_dir, out = simulated_run
    with Journal.open(run_dir, readonly=True) as journal:
        gave_up = sum(1 for t in journal.tasks() if t.state is TaskState.GAVE_UP)
    assert gave_up > 0
    assert re.search(rf"^  gave_up +{gave_up}$", out, re.MULTILINE), out
    assert "APIG.0613" in out  # errors by code
    retry = run_dir / "retry.xlsx"
    assert retry.is_file()
    assert f"re-run the failures after fixing them: bulkscan run {retry}" in out


def test_report_rebuilds_the_workbooks_of_a_run(
    simulated_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = simulated_run[0]
    (run_dir / "results.xlsx").unlink()
    code, out, err = _cli(capsys, "report", run_dir)
    assert code == 1, err  # done, with tasks that gave up: as the run itself exited
    assert (run_dir / "results.xlsx").is_file()
    assert "re-run the failures after fixing them: bulkscan run" in out
    code, out, _ = _cli(capsys, "report", run_dir, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["status"] == "incomplete" and doc["next"]["command"] == doc["rerun_command"]
    with Journal.open(run_dir, readonly=True) as journal:
        tasks = journal.tasks()
    assert sum(doc["outcomes"].values()) == len(tasks)
    assert doc["retry_tasks"] == sum(1 for t in tasks if t.state is TaskState.GAVE_UP)


def test_report_of_a_directory_without_journal_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "report", tmp_path)
    assert code == 2
    assert "not a bulkscan run directory" in err
    no_traceback(out, err)


def test_audit_against_an_empty_simulator_finds_nothing_covered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys, "audit", SAMPLE, "--simulate", "--json", "--reports-dir", tmp_path
    )
    assert code == 1, err
    doc = json.loads(out)
    assert (doc["all_covered"], doc["outcomes"].get("covered")) == (False, None)
    assert doc["outcomes"]["not_covered"] == doc["instances"] == 148
    assert Path(doc["workbook"]).is_file() and Path(doc["uncovered_workbook"]).is_file()
    code, out, err = _cli(capsys, "audit", SAMPLE, "--simulate", "--reports-dir", tmp_path)
    assert code == 1
    assert "0 covered, 148 not covered" in out
    no_traceback(out, err)


# --- simulate ----------------------------------------------------------------------------------


def test_simulate_refuses_half_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "simulate", "--port", "0", "--ak", "ONLYAK")
    assert code == 2
    assert "--ak and --sk go together" in err
    no_traceback(out, err)


def test_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "bulkscan", "simulate", "--port", "0", "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        match = re.match(r"DSC simulator listening on (http://127\.0\.0\.1:\d+)$", first.strip())
        assert match, first
        with urllib.request.urlopen(f"{match.group(1)}/_sim/stats", timeout=10) as answer:
            stats: dict[str, Any] = json.load(answer)
        assert stats["tasks"] == 0
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "DSC simulator stopped" in out
    assert state.is_file()
    no_traceback(err)


def test_a_reader_that_goes_away_getsno_traceback() -> None:
    """``bulkscan plan --json | head -1``: the closed pipe ends the command quietly."""
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: the first write fails with EPIPE
    with os.fdopen(writer, "wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "bulkscan", "plan", str(SAMPLE), "--json"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


_FULL = Path("/dev/full")  # every write fails with ENOSPC: a full disk behind "> out.txt"


def _to_full(*args: str | Path, stdout: bool, env: dict[str, str] | None = None) -> Done:
    """A command whose stdout (or stderr) is the full device; the other stream is read."""
    with _FULL.open("w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "bulkscan", *map(str, args)],
            stdout=full if stdout else subprocess.PIPE,
            stderr=subprocess.PIPE if stdout else full,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    return Done(done.returncode, done.stdout or "", done.stderr or "")


@pytest.mark.skipif(not _FULL.exists(), reason="no /dev/full here")
@pytest.mark.parametrize(
    "args",
    [("validate", SAMPLE), ("validate", SAMPLE, "--json"), ("plan", SAMPLE), ("--help",)],
    ids=["text", "json", "plan", "help"],
)
def test_results_that_cannot_be_written_are_one_error_not_a_traceback(
    args: tuple[str | Path, ...],
) -> None:
    done = _to_full(*args, stdout=True)
    assert done.code == 1
    assert done.err.strip().splitlines()[-1] == (
        "bulkscan: error: cannot write to standard output (No space left on device)"
    )
    no_traceback(done.err)
    assert "Exception ignored" not in done.err


@pytest.mark.skipif(not _FULL.exists(), reason="no /dev/full here")
def test_a_run_whose_messages_cannot_be_written_still_sends_everything(tmp_path: Path) -> None:
    """stderr on a full disk: the run goes on (the journal is what counts), its results on
    stdout as usual."""
    reports = tmp_path / "reports"
    done = _to_full("run", SAMPLE, "--simulate", "--yes", "--reports-dir", reports, stdout=False)
    assert done.code == 0, done.out
    assert "results:" in done.out
    (run_dir,) = (d for d in reports.iterdir() if d.is_dir())
    with Journal.open(run_dir, readonly=True) as journal:
        assert {s: n for s, n in journal.counts().items() if n} == {TaskState.CREATED: 16}
