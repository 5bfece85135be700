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


CSV = SAMPLE.with_name("sample-instances.csv")
PROFILES = SAMPLE.with_name("sample-profiles.csv")


def _suggested(out: str, prefix: str) -> list[str]:
    line = next(x for x in out.splitlines() if prefix in x)
    return shlex.split(line.split(prefix, 1)[1].strip("`"))


async def test_the_doctors_canary_reads_the_csv_with_its_profiles(tmp_path: Path) -> None:
    doctor = await bulkscan(tmp_path, "doctor", CSV, "--profiles", PROFILES, "--simulate")
    assert doctor.code == 0, doctor.err
    argv = _suggested(doctor.out, "next, ")
    assert argv[:3] == ["bulkscan", "run", str(CSV)]
    assert argv[3:] == ["--profiles", str(PROFILES), "--limit", "5", "--simulate"]
    canary = await bulkscan(tmp_path, *argv[1:], "--yes", "--json")
    assert canary.code == 0, canary.err
    assert json.loads(canary.out)["outcomes"]["created"] == 5  # the rest held back


async def test_the_doctors_canary_without_a_file_keeps_the_service_options(
    tmp_path: Path,
) -> None:
    """Checked by --project and --region alone: the canary names FILE for the user's own
    inventory, and still the service just checked (it said ``bulkscan run FILE --limit 5``,
    which would send to the real DSC after a check of the simulator)."""
    where = ("--project", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "--region", "cn-north-4")
    doctor = await bulkscan(tmp_path, "doctor", *where, "--simulate")
    assert doctor.code == 0, doctor.err
    assert _suggested(doctor.out, "next, ") == [
        "bulkscan", "run", "FILE", "--limit", "5", "--simulate"
    ]  # fmt: skip


async def test_the_audits_next_run_keeps_the_caps_and_not_the_csvs_own_options(
    tmp_path: Path,
) -> None:
    """The uncovered rows are a workbook with its profiles sheet: --profiles and --encoding
    describe the user's CSV only, while a raised cap still applies to the run."""
    read = ("--profiles", PROFILES, "--encoding", "utf-8", "--max-rows", "5000")
    audit = await bulkscan(tmp_path, "audit", CSV, *read, "--simulate")
    assert audit.code == 1, audit.err
    argv = _suggested(audit.out, "to close the gap, run: ")
    assert argv[:2] == ["bulkscan", "run"] and argv[2].endswith(".xlsx")
    assert argv[3:] == ["--simulate", "--max-rows", "5000"]
    done = await bulkscan(tmp_path, *argv[1:], "--yes", "--rate", "200/s")
    assert done.code == 0, done.err
    closed = await bulkscan(tmp_path, "audit", CSV, "--profiles", PROFILES, "--simulate")
    assert closed.code == 0 and "every instance is covered" in closed.out
