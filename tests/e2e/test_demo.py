"""The --simulate demo is one coherent service: what `run` created, `audit` and a second `run`
see, and every printed next command keeps --simulate."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.e2e._cli import bulkscan

pytestmark = pytest.mark.asyncio

SAMPLE = Path(__file__).resolve().parents[2] / "inputs" / "sample.xlsx"


def _simulated_tasks(reports: Path) -> int:
    state = json.loads((reports / "simulator-tasks.json").read_text("utf-8"))
    return len(state["tasks"])


async def test_audit_and_a_second_run_see_what_the_first_run_created(tmp_path: Path) -> None:
    sim = ("--simulate", "--reports-dir", "demo")
    first = await bulkscan(tmp_path, "run", SAMPLE, *sim, "--yes", "--rate", "200/s")
    assert first.code == 0, first.err
    created = _simulated_tasks(tmp_path / "demo")
    assert created > 0

    audit = await bulkscan(tmp_path, "audit", SAMPLE, *sim, "--json")
    assert audit.code == 0, audit.err
    summary = json.loads(audit.out)
    assert summary["outcomes"] == {"covered": summary["instances"]}
    assert summary["orphan_tasks"] == 0  # each region lists its own tasks, as DSC's do

    again = await bulkscan(tmp_path, "run", SAMPLE, *sim, "--yes", "--json")
    assert again.code == 0, again.err
    outcomes = json.loads(again.out)["outcomes"]
    assert outcomes.get("exists") == created and "created" not in outcomes
    assert _simulated_tasks(tmp_path / "demo") == created  # nothing created twice


async def test_the_audits_next_command_keeps_simulate_and_the_folder(tmp_path: Path) -> None:
    audit = await bulkscan(tmp_path, "audit", SAMPLE, "--simulate", "--reports-dir", "demo")
    assert audit.code == 1, audit.err
    line = next(x for x in audit.out.splitlines() if x.startswith("to close the gap, run: "))
    argv = shlex.split(line.removeprefix("to close the gap, run: "))
    assert argv[:2] == ["bulkscan", "run"]
    assert argv[3:] == ["--simulate", "--reports-dir", "demo"]  # nothing empty, nothing else
    done = await bulkscan(tmp_path, *argv[1:], "--yes", "--rate", "200/s")
    assert done.code == 0, done.err
    closed = await bulkscan(tmp_path, "audit", SAMPLE, "--simulate", "--reports-dir", "demo")
    assert closed.code == 0 and "every instance is covered" in closed.out
