"""The --simulate demo is one coherent service: what `run` created, `audit` and a second `run`
see, and every printed next command keeps --simulate."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulkscan.sim.server import Simulator
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


# --- one simulated service, wherever the reports folder is set ---------------------------------

P1 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _wave(folder: Path) -> Path:
    """Four instances of project P1, one task each."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(["ins_id", "db_type", "project_id", "region", "task"])
    for i in range(4):
        sheet.append([f"ins-{i}", "MySQL", P1, "cn-north-4", f"wave-{i}"])
    book.save(folder / "wave.xlsx")
    return folder / "wave.xlsx"


async def _outage_copy(reports: Path) -> None:
    """Leave in the simulated service of ``reports`` a second copy of its oldest task (name and
    data sources), as an outage can, for dedupe to find."""
    async with Simulator(state_path=reports / "simulator-tasks.json") as sim:
        oldest = min(sim.tasks, key=lambda t: int(t["id"]))
        sim.add_task(oldest["project_id"], oldest["body"])


async def _audited(cwd: Path, inventory: Path, *options: str) -> Path:
    """The audit workbook of ``inventory``, which lists one duplicate."""
    audit = await bulkscan(cwd, "audit", inventory, "--simulate", *options, "--json")
    assert audit.code == 0, audit.err
    return Path(cwd, json.loads(audit.out)["workbook"])


async def _deduped(cwd: Path, workbook: Path, *options: str) -> dict[str, Any]:
    done = await bulkscan(cwd, "dedupe", workbook, "--simulate", "--yes", "--json", *options)
    assert done.code == 0, done.err
    document: dict[str, Any] = json.loads(done.out)
    return document


async def test_every_simulated_command_reaches_the_configured_reports_folder(
    tmp_path: Path,
) -> None:
    """``reports_dir`` of bulkscan.toml is where run keeps the simulated service; plan
    --check-remote, export, audit and dedupe reach that one service too (they read
    ./reports, an empty service, and contradicted the run)."""
    (tmp_path / "bulkscan.toml").write_text('reports_dir = "wv"\nrate = "200/s"\n', "utf-8")
    wave = _wave(tmp_path)
    run = await bulkscan(tmp_path, "run", wave, "--simulate", "--yes")
    assert run.code == 0, run.err
    assert _simulated_tasks(tmp_path / "wv") == 4

    plan = await bulkscan(tmp_path, "plan", wave, "--check-remote", "--simulate", "--json")
    assert plan.code == 0, plan.err
    assert len(json.loads(plan.out)["remote"]["exists"]) == 4

    assets = tmp_path / "assets.json"
    instance = {"project_id": P1, "ins_id": "ins-0", "ins_name": "zero"}
    assets.write_text(json.dumps({"instances": [instance]}), encoding="utf-8")
    export = await bulkscan(
        tmp_path, "export", "--project", P1, "--region", "cn-north-4", "--simulate",
        "--simulate-assets", assets, "--output", "dsc.xlsx", "--json",
    )  # fmt: skip
    assert export.code == 0, export.err
    assert json.loads(export.out)["outcomes"] == {"covered": 1}

    await _outage_copy(tmp_path / "wv")
    workbook = await _audited(tmp_path, wave)
    assert workbook.parent == tmp_path / "wv"
    deduped = await _deduped(tmp_path, workbook)
    assert (len(deduped["deleted"]), deduped["already_gone"]) == (1, [])
    assert _simulated_tasks(tmp_path / "wv") == 4
    assert not (tmp_path / "reports").exists()


async def test_plan_takes_reports_dir_for_the_simulated_service(tmp_path: Path) -> None:
    wave = _wave(tmp_path)
    run = await bulkscan(tmp_path, "run", wave, "--simulate", "--reports-dir", "a", "--yes")
    assert run.code == 0, run.err
    plan = await bulkscan(
        tmp_path, "plan", wave, "--check-remote", "--simulate", "--reports-dir", "a", "--json"
    )
    assert plan.code == 0, plan.err
    assert len(json.loads(plan.out)["remote"]["exists"]) == 4
    assert not (tmp_path / "reports").exists()


async def test_dedupe_acts_on_the_service_its_audit_saw(tmp_path: Path) -> None:
    """An audit workbook lists the duplicates of the service it was made against, the one
    beside it: dedupe reaches that one over the configured reports folder, and a folder typed
    with --reports-dir over both (a workbook moved away from its reports)."""
    (tmp_path / "bulkscan.toml").write_text('reports_dir = "wv"\nrate = "200/s"\n', "utf-8")
    wave = _wave(tmp_path)
    run = await bulkscan(tmp_path, "run", wave, "--simulate", "--reports-dir", "demo", "--yes")
    assert run.code == 0, run.err

    await _outage_copy(tmp_path / "demo")
    workbook = await _audited(tmp_path, wave, "--reports-dir", "demo")
    deduped = await _deduped(tmp_path, workbook)  # the config says wv; the audit saw demo
    assert len(deduped["deleted"]) == 1 and _simulated_tasks(tmp_path / "demo") == 4

    await _outage_copy(tmp_path / "demo")
    workbook = await _audited(tmp_path, wave, "--reports-dir", "demo")
    moved = tmp_path / "mail" / workbook.name
    moved.parent.mkdir()
    workbook.rename(moved)
    deduped = await _deduped(tmp_path, moved, "--reports-dir", "demo")
    assert len(deduped["deleted"]) == 1 and _simulated_tasks(tmp_path / "demo") == 4
    assert (
        not (tmp_path / "wv").exists() and not (tmp_path / "mail" / "simulator-tasks.json").exists()
    )
