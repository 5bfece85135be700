"""What ``bulkscan report`` says to do next after a crash, and while the run still goes on.

The run is a real ``python -m bulkscan run`` killed with SIGKILL (or left running) against
the project's simulator on 127.0.0.1; the report is a second process, as a person runs it;
what was created is read from the simulator.  The next step the report gives (text and
``--json``'s ``next``) is followed as given, and nothing may be created twice:

* a task whose request was in flight when the run died (*sending*, or *unknown* after a 504
  whose backend creates it later) is never put in retry.xlsx: only a resume, which waits out
  the settle window and looks it up first, may send it again;
* a run with tasks left is *unfinished* (exit 3, ``stopped``, ``next`` its resume command),
  as its workbook says, never "ok";
* while the run is still going on, the report advises no resume and no re-run.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
from collections import Counter
from typing import TYPE_CHECKING

import openpyxl

from bulkscan import runner
from bulkscan.report.results import RETRY_FILE
from bulkscan.run.states import TaskState
from bulkscan.sim.server import Faults, Simulator
from tests.e2e._cli import bulkscan, finish, no_traceback, sim_env, start
from tests.e2e.test_run_e2e import P1, journal_tasks, only_run_dir, wait_for_tasks
from tests.e2e.test_run_e2e import write_inventory as write_two_projects
from tests.e2e.test_run_messages import write_inventory

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e._cli import Done


def _env(tmp_path: Path) -> dict[str, str]:
    return sim_env(state=tmp_path / "state")


async def _cli(tmp_path: Path, *args: str | Path) -> Done:
    return await bulkscan(tmp_path, *args, env=_env(tmp_path))


async def _follow(tmp_path: Path, command: str) -> Done:
    """Run a command bulkscan printed, exactly as printed."""
    argv = shlex.split(command)
    assert argv[0] == "bulkscan", command
    return await _cli(tmp_path, *argv[1:])


def _summary(path: Path) -> dict[str, object]:
    """The label → value pairs of the results workbook's Summary."""
    sheet = openpyxl.load_workbook(path)["Summary"]
    return {r[0].value: r[1].value for r in sheet.iter_rows(max_col=2) if r[0].value}


def _names(sim: Simulator) -> Counter[str]:
    return Counter(t["name"] for t in sim.tasks)


async def _posts_answered(sim: Simulator, outcome: str, n: int, proc: object) -> None:
    """Until the simulator answered ``n`` creates with ``outcome`` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60.0
    while sim.stats["requests"].get(outcome, 0) < n:
        assert getattr(proc, "returncode", None) is None, "the run ended before the kill"
        assert loop.time() < deadline, sim.stats["requests"]
        await asyncio.sleep(0.005)


async def test_tasks_in_flight_at_a_crash_go_to_the_resume_never_to_retry_xlsx(
    tmp_path: Path,
) -> None:
    inventory = write_inventory(tmp_path / "in5.xlsx", 5)
    reports = tmp_path / "r"
    # every create is answered 504 at once and applied 4 s later: a slow backend
    late = Faults(late_create=1.0, late_create_s=4.0)
    async with Simulator(faults=late) as sim:
        run = ("run", inventory, "--endpoint", sim.url, "--yes", "--reports-dir", reports,
               "--no-remote-check", "--rate", "20/s", "--settle", "6")  # fmt: skip
        proc = await start(tmp_path, *run, env=_env(tmp_path))
        await _posts_answered(sim, "late_create", 5, proc)  # each being looked up
        proc.send_signal(signal.SIGKILL)
        killed = await finish(proc)
        assert killed.code == -signal.SIGKILL, killed.err
        sim.set_faults(Faults())
        run_dir = only_run_dir(reports)
        states = Counter(t.state for t in journal_tasks(run_dir))
        assert set(states) <= {TaskState.SENDING, TaskState.UNKNOWN}, states

        said = await _cli(tmp_path, "report", run_dir, "--json")
        no_traceback(said.out, said.err)
        found = json.loads(said.out)
        # not one of them is known to be absent: nothing to re-run, all to resume
        assert found["retry"] is None and found["retry_rows"] == 0, found
        assert found["rerun_command"] is None
        assert not (run_dir / RETRY_FILE).exists()
        text = await _cli(tmp_path, "report", run_dir)
        assert "re-run the failures" not in text.out, text.out
        facts = _summary(run_dir / "results.xlsx")
        assert str(facts["re-run the failures"]).startswith("nothing to re-run")

        # report's one next step is the resume; followed at once, it waits out the settle
        # window, finds each late-created task, and sends nothing twice
        assert (said.code, found["status"]) == (3, "stopped")
        assert found["next"]["command"] == runner.resume_command_of(run_dir)
        assert f"resume with: {found['next']['command']}" in text.out
        followed = await _follow(tmp_path, found["next"]["command"])
        assert followed.code == 0, followed.err
        await asyncio.sleep(1.0)  # any late create the resume could have missed lands now
        assert _names(sim) == {f"scan-{i:04}": 1 for i in range(1, 6)}
        assert sim.stats["requests"].get("created", 0) == 0  # the 504s' own tasks, no others


async def test_a_killed_run_is_reported_unfinished_with_its_resume_as_the_next_step(
    tmp_path: Path,
) -> None:
    inventory = write_inventory(tmp_path / "in100.xlsx", 100)
    reports = tmp_path / "r"
    async with Simulator() as sim:
        run = ("run", inventory, "--endpoint", sim.url, "--yes", "--reports-dir", reports,
               "--no-remote-check", "--rate", "20/s")  # fmt: skip
        proc = await start(tmp_path, *run, env=_env(tmp_path))
        await wait_for_tasks(sim, 5, proc)
        proc.send_signal(signal.SIGKILL)
        assert (await finish(proc)).code == -signal.SIGKILL
        assert len(sim.tasks) < 100
        run_dir = only_run_dir(reports)
        resume = runner.resume_command_of(run_dir)
        assert resume is not None

        said = await _cli(tmp_path, "report", run_dir, "--json")
        found = json.loads(said.out)
        # what the workbook says: unfinished, resume with ...; exit 3 as a run's own
        assert (said.code, found["status"], found["exit_code"]) == (3, "stopped", 3), found
        assert found["run_status"] == "unfinished"
        assert found["next"]["command"] == found["resume_command"] == resume
        assert found["unfinished"] == 100 - found["outcomes"].get("created", 0)
        assert found["retry"] is None and found["rerun_command"] is None
        facts = _summary(run_dir / "results.xlsx")
        assert facts["status"] == "unfinished"
        step = str(facts.get("not sent yet") or facts.get("not finished"))
        assert step.endswith(f"resume with: {resume}")
        text = await _cli(tmp_path, "report", run_dir)
        assert text.code == 3, text.err
        assert text.out.rstrip().splitlines()[-1].endswith(f"; resume with: {resume}")
        assert "re-run" not in text.out

        # followed as given, the next step finishes the job: each task once, nothing left
        followed = await _follow(tmp_path, found["next"]["command"])
        assert followed.code == 0, followed.err
        assert _names(sim) == {f"scan-{i:04}": 1 for i in range(1, 101)}
        again = await _cli(tmp_path, "report", run_dir, "--json")
        done = json.loads(again.out)
        assert (again.code, done["status"], done["next"], done["run_status"]) == (
            0, "ok", None, "done"
        )  # fmt: skip


async def test_while_the_run_goes_on_report_advises_no_resume_and_no_rerun(
    tmp_path: Path,
) -> None:
    inventory = write_two_projects(tmp_path / "dbs.xlsx", 120)  # P2 is unknown: its tasks fail
    reports = tmp_path / "r"
    async with Simulator(projects=[P1]) as sim:
        run = ("run", inventory, "--endpoint", sim.url, "--yes", "--reports-dir", reports,
               "--no-remote-check", "--rate", "2/s")  # fmt: skip
        proc = await start(tmp_path, *run, env=_env(tmp_path))
        try:
            await wait_for_tasks(sim, 2, proc)
            assert proc.returncode is None, "the run ended too soon"
            run_dir = only_run_dir(reports)
            said = await _cli(tmp_path, "report", run_dir, "--json")
            text = await _cli(tmp_path, "report", run_dir)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            ended = await finish(proc)
        assert ended.code == -signal.SIGKILL, ended.out + ended.err  # still going on when reported
        found = json.loads(said.out)
        assert (said.code, found["status"], found["next"]) == (4, "incomplete", None), found
        assert found["run_status"] == "running"
        assert found["outcomes"].get("failed") == 60 and found["retry_rows"] == 60
        assert text.code == 4, text.err
        assert f"run still going on (pid {proc.pid})" in text.out
        assert "resume with" not in text.out and "re-run the failures" not in text.out
        facts = _summary(run_dir / "results.xlsx")
        assert facts["status"] == "running"
        assert str(facts["next step"]).startswith(f"none while the run goes on (pid {proc.pid}")
        assert "re-run the failures" not in facts and "not sent yet" not in facts

        # killed, the run is unfinished: the resume first, the re-run of retry.xlsx after it
        after = await _cli(tmp_path, "report", run_dir)
        resume = runner.resume_command_of(run_dir)
        lines = after.out.rstrip().splitlines()
        assert after.code == 3, after.err
        assert lines[-1].endswith(f"; resume with: {resume}")
        rerun = f"bulkscan run {run_dir / RETRY_FILE} --endpoint {sim.url} --yes --reports-dir"
        assert lines[-2].startswith(f"after the resume, re-run the failures with: {rerun}")
        facts = _summary(run_dir / "results.xlsx")
        assert str(facts["re-run the failures"]).startswith(f"after the resume: {rerun}")
