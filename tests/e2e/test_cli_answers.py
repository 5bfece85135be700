"""What the command line answers around its work: refusals in ``--json``, the updates of
``run --on-conflict update``, the ``bulkscan run`` that ``audit`` names, and the line that
says what a question is about, under ``--quiet`` too.

In process (``main``, with ``sys.argv`` as the console script has it) against the embedded
simulator, whose tasks stay in the reports folder from one command to the next; a child
process against a simulator with an unreadable asset centre."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

from bulkscan.cli import build_parser, main
from bulkscan.sim.server import Simulator
from tests.e2e._cli import bulkscan, sim_env

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeXlsx

P1 = "0123456789abcdef0123456789abcdef"
CN = "cn-north-4"
SIM = ("--simulate", "--rate", "200/s")
HEADERS = ["ins_id", "db_type", "project_id", "region", "task"]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of its own, no credential or bulkscan setting, no terminal on stdin."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    for name in ("HUAWEICLOUD_SDK_PROJECT_ID", "BULKSCAN_CONFIG", "BULKSCAN_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    return tmp_path


def _bulkscan(*argv: str) -> tuple[int, str, str]:
    """``bulkscan ARGV`` in process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as mp,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        mp.setattr(sys, "argv", ["bulkscan", *argv])
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _answer(*argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _err = _bulkscan(*argv, "--json")
    return code, json.loads(out)


def _one_task(make_xlsx: MakeXlsx, name: str, ins_id: str) -> Path:
    """An inventory of one row in a task named ``shared``."""
    return make_xlsx({"instances": [HEADERS, [ins_id, "MySQL", P1, CN, "shared"]]}, name=name)


def test_run_json_lists_the_updates_of_on_conflict_update(here: Path, make_xlsx: MakeXlsx) -> None:
    first = _one_task(make_xlsx, "first.xlsx", "ins-ours")
    assert _answer("run", str(first), *SIM, "--yes")[0] == 0
    second = _one_task(make_xlsx, "second.xlsx", "ins-new")  # the same name, another instance
    code, doc = _answer("run", str(second), *SIM, "--yes", "--on-conflict", "update")
    assert doc["outcomes"] == {"conflict": 1} and code == doc["exit_code"]
    (update,) = doc["updates"]
    assert update["task"] == "shared" and update["task_id"]
    assert (update["project_id"], update["region"]) == (P1, CN)
    assert update["outcome"] == "done" and update["message"] is None
    assert "adds ins-new" in update["change"] and "removes ins-ours" in update["change"]
    again = _answer("run", str(second), *SIM, "--yes", "--on-conflict", "update")[1]
    assert (again["outcomes"], again["updates"]) == ({"exists": 1}, [])  # updated before
    back = _answer("run", str(first), *SIM, "--yes")[1]  # a conflict again, not to update
    assert (back["outcomes"], back["updates"]) == ({"conflict": 1}, [])


def test_run_without_a_terminal_or_yes_says_why_in_the_json_error(
    here: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    code, out, err = _bulkscan("run", str(inventory), *SIM, "--json")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 2 and doc["status"] == "invalid"
    assert doc["error"] and "--yes" in doc["error"]
    assert doc["error"] in err  # the same words as on stderr
    assert not [p for p in (here / "reports").iterdir() if p.is_dir()]  # no run was started


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
async def test_run_refused_by_an_unreadable_asset_centre_says_why_in_the_json_error(
    tmp_path: Path, make_xlsx: MakeXlsx, json_flag: tuple[str, ...]
) -> None:
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    async with Simulator(asset_fault="forbidden") as sim:
        code, out, err = await bulkscan(
            tmp_path, "run", inventory, "--endpoint", sim.url, "--yes", "--attempts", "2",
            *json_flag, env=sim_env(state=tmp_path / "state"), limit_s=60.0,
        )  # fmt: skip
        assert not sim.tasks
    assert code == 2, err
    line = err.strip()
    assert line.startswith("nothing sent: DSC's asset centre could not be read"), err
    if json_flag:
        doc = json.loads(out)
        assert (doc["exit_code"], doc["status"], doc["error"]) == (2, "invalid", line)


def test_lifecycle_refusal_without_a_terminal_says_why_in_the_json_error(
    here: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    run_dir = _answer("run", str(inventory), *SIM, "--yes")[1]["run_dir"]
    code, doc = _answer("undo", run_dir, *SIM)
    assert code == doc["exit_code"] == 2
    assert "undo changes tasks in DSC" in doc["error"] and "--yes" in doc["error"]


def test_audit_names_a_run_with_the_config_profile_it_read(here: Path, make_xlsx: MakeXlsx) -> None:
    (here / "bulkscan.toml").write_text('[profile.fast]\nrate = "200/s"\n', encoding="utf-8")
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    code, doc = _answer("--config-profile", "fast", "--lang", "en", "audit", str(inventory),
                        "--simulate")  # fmt: skip
    assert code == 1 and doc["next"]["argv"] == doc["run_command"].split()
    argv = doc["next"]["argv"]
    assert argv[:2] == ["bulkscan", "run"] and "--simulate" in argv
    assert argv[argv.index("--config-profile") + 1] == "fast"
    assert argv[argv.index("--lang") + 1] == "en"
    assert build_parser().parse_args(argv[1:]).config_profile == "fast"
    code, run = _answer(*argv[1:], "--yes")  # the command as printed closes the gap
    assert (code, run["outcomes"]) == (0, {"created": 1})
    code, after = _answer("--config-profile", "fast", "audit", str(inventory), "--simulate")
    assert (code, after["all_covered"]) == (0, True)


def test_audit_names_a_run_with_the_config_file_it_read(here: Path, make_xlsx: MakeXlsx) -> None:
    config = here / "elsewhere.toml"
    config.write_text('rate = "200/s"\n', encoding="utf-8")
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    code, out, _err = _bulkscan("audit", str(inventory), "--simulate", "--config", str(config))
    assert code == 1
    hint = next(line for line in out.splitlines() if line.startswith("to close the gap"))
    assert f"--config {config}" in hint


def test_audit_names_a_run_that_reads_the_rows_as_it_did(here: Path, make_xlsx: MakeXlsx) -> None:
    """Rows that leave project and region blank, of a type DSC does not document: the run
    audit names fills the blanks and takes the type as the audit did."""
    rows = [HEADERS, ["ins-1", "NewDB", "", "", "shared"]]
    inventory = make_xlsx({"instances": rows}, name="dbs.xlsx")
    reading = ("--project-id", P1, "--region", CN, "--any-db-type", "--start-time-unit", "ms")
    code, doc = _answer("audit", str(inventory), *reading, "--simulate")
    assert code == 1, doc
    argv = doc["next"]["argv"]
    for option in ("--project-id", "--region", "--start-time-unit"):
        assert argv[argv.index(option) + 1] == reading[reading.index(option) + 1]
    assert "--any-db-type" in argv and "--profiles" not in argv
    code, run = _answer(*argv[1:], "--yes", "--no-remote-check")
    assert (code, run["outcomes"]) == (0, {"created": 1}), run


@pytest.mark.parametrize("command", ["undo", "start"])
def test_quiet_keeps_what_a_question_is_about(
    here: Path, make_xlsx: MakeXlsx, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    run_dir = _answer("run", str(inventory), *SIM, "--yes")[1]["run_dir"]
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    code, out, err = _bulkscan(command, run_dir, *SIM, "-q")
    assert len(asked) == 1 and code == 0
    assert f"{run_dir}: " in err and "1 task(s)" in err  # what the question is about
    assert "shared" in err  # and the tasks it names
    assert out.strip() == "nothing changed"


def test_quiet_with_yes_asks_nothing_and_says_nothing_before(
    here: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    run_dir = _answer("run", str(inventory), *SIM, "--yes")[1]["run_dir"]
    code, _out, err = _bulkscan("start", run_dir, *SIM, "-q", "--yes")
    assert code == 0 and err == ""  # no question: no line about one


def test_quiet_keeps_what_a_run_asks_about(
    here: Path, make_xlsx: MakeXlsx, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = _one_task(make_xlsx, "dbs.xlsx", "ins-1")
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    code, _out, err = _bulkscan("run", str(inventory), *SIM, "-q")
    assert len(asked) == 1 and code == 0
    assert "sending 1 to the embedded simulator" in err  # where the tasks would go
    assert err.rstrip().endswith("nothing sent")  # and the outcome of the answer


def test_a_lifecycle_command_with_failures_names_the_command_that_sends_them_again(
    here: Path, make_xlsx: MakeXlsx
) -> None:
    """Some tasks not disabled: the last line is the command as typed, which resumes the
    batch (nothing done is sent again); in --json, the same command is next."""
    rows = [HEADERS, ["ins-1", "MySQL", P1, CN, "one"], ["ins-2", "MySQL", P1, CN, "two"]]
    inventory = make_xlsx({"instances": rows}, name="two.xlsx")
    run_dir = _answer("run", str(inventory), *SIM, "--yes")[1]["run_dir"]
    failing = (
        "disable",
        run_dir,
        *SIM,
        "--yes",
        "--simulate-faults",
        "http500=1",
        "--attempts",
        "1",
    )
    code, out, _err = _bulkscan(*failing)
    assert code == 1, out
    assert out.rstrip().splitlines()[-1] == (
        "2 task(s) failed; the tasks done are not sent again; send them again with: "
        f"bulkscan {' '.join(failing)}"
    )
    code, doc = _answer(*failing)
    assert code == 1 and doc["next"]["argv"] == ["bulkscan", *failing, "--json"]
    code, doc = _answer("disable", run_dir, *SIM, "--yes")
    assert (code, doc["outcomes"], doc["next"]) == (0, {"done": 2}, None)


async def test_a_resumed_lifecycle_batch_says_what_an_earlier_command_did(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """A disable that failed for one project, run again: 'done' counts both tasks, and the
    line under it says one was done by the earlier command (only one request now)."""
    other = "fedcba9876543210fedcba9876543210"
    rows = [HEADERS, ["ins-1", "MySQL", P1, CN, "one"], ["ins-2", "MySQL", other, CN, "two"]]
    inventory = make_xlsx({"instances": rows}, name="two.xlsx")
    env = sim_env(state=tmp_path / "state")
    async with Simulator() as sim:
        where = ("--endpoint", sim.url, "--rate", "200/s")
        run = await bulkscan(tmp_path, "run", inventory, *where, "--yes", "--json", env=env)
        assert run.code == 0, run.err
        run_dir = json.loads(run.out)["run_dir"]
        sim.set_dsc_disabled([other])
        failed = await bulkscan(tmp_path, "disable", run_dir, *where, "--yes", env=env)
        assert failed.code == 1, failed.err
        sim.set_dsc_disabled([])
        again = await bulkscan(tmp_path, "disable", run_dir, *where, "--yes", env=env)
    assert again.code == 0, again.err
    assert "disable: 2 done (1 request(s))" in again.out
    assert "  of which 1 done by an earlier disable of this run, not sent again" in again.out


def _sim_tasks(folder: Path) -> dict[str, list[str]]:
    """The embedded simulator's tasks, kept in the reports folder: name -> its ins_ids."""
    state = json.loads((folder / "reports" / "simulator-tasks.json").read_text("utf-8"))
    return {t["name"]: [s["ins_id"] for s in t["body"]["data_sources"]] for t in state["tasks"]}


def test_undo_says_it_deletes_what_the_run_created_and_restores_what_it_updated(
    here: Path, make_xlsx: MakeXlsx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that created one task and updated another (--on-conflict update): undo's list,
    question, outcome and JSON say which it deletes and which it puts back, as it does."""
    assert _answer("run", str(_one_task(make_xlsx, "first.xlsx", "ins-a")), *SIM, "--yes")[0] == 0
    rows = [HEADERS, ["ins-b", "MySQL", P1, CN, "shared"], ["ins-c", "MySQL", P1, CN, "new"]]
    second = make_xlsx({"instances": rows}, name="second.xlsx")
    run = _answer("run", str(second), *SIM, "--yes", "--on-conflict", "update")[1]
    assert [u["outcome"] for u in run["updates"]] == ["done"]
    assert _sim_tasks(here) == {"shared": ["ins-b"], "new": ["ins-c"]}
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "y")
    code, out, err = _bulkscan("undo", run["run_dir"], *SIM)
    assert code == 0, err
    assert asked == ["Delete 1 task(s) and restore 1 task(s)? [y/N] "]
    assert (
        f"{run['run_dir']}: 1 task(s) the run created, to delete; 1 task(s) it updated, "
        "to restore as they were"
    ) in err
    assert "  delete new (id " in err and "  delete shared" not in err
    assert "  restore shared (id " in err and "before the update: adds ins-a; removes ins-b" in err
    assert out.splitlines()[0].startswith("undo: 1 deleted, 1 restored (")
    assert _sim_tasks(here) == {"shared": ["ins-a"]}  # what the words said
    code, doc = _answer("undo", run["run_dir"], *SIM, "--yes")  # again: nothing sent
    assert (code, doc["action"], doc["outcomes"]) == (0, "undo", {"done": 2})
    assert doc["changes"] == {"delete": {"done": 1}, "restore": {"done": 1}}
    assert {t["task"]: t["change"] for t in doc["tasks"]} == {"new": "delete", "shared": "restore"}


def test_after_undo_start_and_status_name_the_tasks_undo_deleted(
    here: Path, make_xlsx: MakeXlsx
) -> None:
    """A task undo deleted is said to be so (with when) by start and status, nothing is sent
    for it and no retry is offered; when undo deleted every task, nothing is left to do."""
    first = _answer("run", str(_one_task(make_xlsx, "first.xlsx", "ins-a")), *SIM, "--yes")[1]
    rows = [HEADERS, ["ins-a", "MySQL", P1, CN, "shared"], ["ins-c", "MySQL", P1, CN, "new"]]
    second = make_xlsx({"instances": rows}, name="second.xlsx")
    run = _answer("run", str(second), *SIM, "--yes")[1]
    assert run["outcomes"] == {"created": 1, "exists": 1}
    run_dir = run["run_dir"]
    assert _answer("undo", run_dir, *SIM, "--yes")[1]["outcomes"] == {"done": 1}  # new alone
    code, out, _err = _bulkscan("start", run_dir, *SIM, "--yes", "--task", "new")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "start: nothing to do: no task left after undo"
    assert lines[1].startswith("  new: deleted by undo on ") and len(lines) == 2
    code, doc = _answer("start", run_dir, *SIM, "--yes")
    assert (code, doc["outcomes"], doc["next"]) == (0, {"done": 1, "gone": 1}, None)
    assert list(doc["not_done"]) == ["new"]
    assert doc["not_done"]["new"].startswith("deleted by undo on ")
    code, doc = _answer("status", run_dir, *SIM)
    assert code != 1 and [s["task"] for s in doc["scans"]] == ["shared"]  # started: running
    assert [(u["task"], u["outcome"]) for u in doc["undone"]] == [("new", "done")]
    assert "does not exist" not in json.dumps(doc)
    code, out, _err = _bulkscan("status", run_dir, *SIM)
    assert "  new: deleted by undo on " in out and "unknown" not in out
    assert _answer("undo", first["run_dir"], *SIM, "--yes")[1]["outcomes"] == {"done": 1}
    code, out, _err = _bulkscan("status", first["run_dir"], *SIM)
    assert code == 0 and out.startswith("nothing to read: no task of this run is left after undo")
    assert "  shared: deleted by undo on " in out and "project" not in out


def test_the_run_question_names_the_start_times_of_the_tasks_it_sends_alone(
    here: Path, make_xlsx: MakeXlsx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--limit 2 of three tasks, each starting on another day: the question names the first
    two days; its --resume, the third alone."""
    days = ("2030-03-01", "2030-04-01", "2030-05-01")
    starts = [[f"p{i}", f"{day}T12:00:00+08:00"] for i, day in enumerate(days)]
    profiles = [["profile", "start_time"], *starts]
    rows = [["ins_id", "db_type", "project_id", "region", "profile"]]
    rows += [[f"ins-{i}", "MySQL", P1, CN, f"p{i}"] for i in range(3)]
    inventory = make_xlsx({"instances": rows, "profiles": profiles}, name="days.xlsx")
    options = (*SIM, "--timezone", "Asia/Shanghai")
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "y")
    code, _out, err = _bulkscan("run", str(inventory), *options, "--limit", "2")
    assert code == 0, err
    (question,) = asked
    assert question.startswith("Create 2 task(s), starting ")
    assert days[0] in question and days[1] in question and days[2] not in question
    code, _out, err = _bulkscan("run", str(inventory), *options, "--resume")
    assert code == 0, err
    assert asked[1].startswith("Create 1 task(s), starting 2030-05-01 12:00+08:00")
    assert days[0] not in asked[1] and days[1] not in asked[1]


def test_after_on_conflict_update_only_the_conflicts_not_updated_need_a_decision(
    here: Path, make_xlsx: MakeXlsx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update done, the run does not ask to decide the conflict it settled (the exit code
    still counts it); the update declined, the conflict still needs a decision."""
    assert _answer("run", str(_one_task(make_xlsx, "first.xlsx", "ins-a")), *SIM, "--yes")[0] == 0
    second = _one_task(make_xlsx, "second.xlsx", "ins-b")
    code, out, err = _bulkscan("run", str(second), *SIM, "--yes", "--on-conflict", "update")
    assert code == 1, err  # the conflicts still count (README)
    assert "update: 1 done" in out and "need a decision" not in out + err
    assert "1 conflict(s) resolved by the update" in out
    assert out.rstrip().endswith("nothing left to do")
    third = _one_task(make_xlsx, "third.xlsx", "ins-c")
    answers = iter(["y", "n"])  # create: yes; update: no
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _prompt: next(answers))
    code, out, err = _bulkscan("run", str(third), *SIM, "--on-conflict", "update")
    assert code == 1, err
    assert "resolved by the update" not in out
    assert out.rstrip().splitlines()[-1].startswith("1 task(s) need a decision")
