"""`bulkscan run` checks every row against DSC's asset centre by default, before sending."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from openpyxl import load_workbook

from bulkscan.sim._assets import AssetInstance, Assets
from bulkscan.sim.server import DEFAULT_AK, Simulator
from tests.e2e._cli import bulkscan, sim_env

if TYPE_CHECKING:
    from tests.conftest import MakeXlsx

P1 = "0123456789abcdef0123456789abcdef"
CN = "cn-north-4"
WHERE = ("--project-id", P1, "--region", CN)
_LIMIT_S = 60.0
SAMPLE = Path(__file__).resolve().parents[2] / "inputs" / "sample.xlsx"

ASSETS = Assets(
    [
        AssetInstance(P1, "id-orders", "orders-db"),
        AssetInstance(P1, "id-billing", "billing-db", db_type="PostgreSQL"),
        AssetInstance(P1, "id-stock", "stock-db"),
        AssetInstance(P1, "id-stopped", "old-db", ins_status="STOPPED"),
        AssetInstance(
            P1, "id-unauth", "secret-db", authorized=False, authorize_fail_reason="wrong password"
        ),
        AssetInstance(P1, "id-mongo", "docs-db", ins_type="DDS", db_type="MongoDB"),
    ]
)
ROWS = [  # each row its own task, so that one refused create fails that row alone
    ["ins_id", "db_type", "task", "notes"],
    ["id-orders", "MySQL", "t-orders", "fine"],  # row 2
    ["id-nobody", "MySQL", "t-nobody", "unknown"],  # row 3
    ["id-stopped", "MySQL", "t-stopped", "stopped"],  # row 4
    ["id-unauth", "MySQL", "t-unauth", "unauthorised"],  # row 5
    ["id-billing", "PostgreSQL", "t-billing", "fine"],  # row 6
    ["id-mongo", "MySQL", "t-mongo", "a type metadata tasks cannot carry"],  # row 7
    ["id-stock", "MySQL", "t-stock", "fine"],  # row 8
]
HELD = {3: "not a database asset", 4: "STOPPED", 5: "wrong password", 7: "MongoDB"}


async def _bulkscan(cwd: Path, *args: str | Path, stdin: bytes = b"") -> tuple[int, str, str]:
    env = sim_env(state=cwd / "state")
    return await bulkscan(cwd, *args, env=env, stdin=stdin, limit_s=_LIMIT_S)


def _asset_requests(sim: Simulator) -> int:
    counted = sim.stats["requests"]
    return sum(n for outcome, n in counted.items() if outcome.startswith("assets_"))


def _sent(sim: Simulator) -> dict[str, str]:
    return {s["ins_id"]: s["db_type"] for t in sim.tasks for s in t["body"]["data_sources"]}


async def test_run_checks_every_row_by_default_and_holds_back_each_bad_one(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx({"instances": ROWS}, name="ids.xlsx")
    async with Simulator(assets=ASSETS) as sim:
        run = ("run", inventory, *WHERE, "--endpoint", sim.url, "--rate", "100/s")
        # without a terminal and without --yes, the rest is not sent either
        code, _, err = await _bulkscan(tmp_path, *run)
        assert code == 2, err
        assert "4 row(s) held back" in err and "add --yes" in err
        assert not sim.tasks

        code, out, err = await _bulkscan(tmp_path, *run, "--yes", "--json")
        assert code == 1, err  # some rows were not sent
        for row, why in HELD.items():
            line = next(x for x in err.splitlines() if f"row {row}," in x)
            assert "sheet 'instances'" in line and why in line and "not sent" in line
        assert _sent(sim) == {"id-orders": "Mysql", "id-billing": "PostgreSQL", "id-stock": "Mysql"}
        summary = json.loads(out)
        assert summary["rows"]["held"] == 4 and summary["exit_code"] == 1
        # each of the two runs: one paged listing per type (RDS, GaussDB, GaussDB(for MySQL),
        # GaussDB(for OpenGauss), DDS), one of the authorised databases per type listed (2)
        assert _asset_requests(sim) == 2 * (5 + 2)

        results = load_workbook(tmp_path / summary["results"])
        rows = list(results["Rows"].iter_rows(values_only=True))
        col = {name: rows[0].index(name) for name in rows[0]}
        by_row = {r[col["source row"]]: r for r in rows[1:]}
        for row, why in HELD.items():
            assert why in by_row[row][col["message"]] and by_row[row][col["DSC task id"]] is None
        assert by_row[2][col["outcome"]] == "created"
        issues = list(results["Issues"].iter_rows(values_only=True))
        assert {r[3] for r in issues[1:] if r[0] == "error"} == set(HELD)


async def test_no_remote_check_sends_every_row_without_reading_the_asset_centre(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx({"instances": ROWS}, name="ids.xlsx")
    async with Simulator(assets=ASSETS) as sim:
        code, _, err = await _bulkscan(
            tmp_path, "run", inventory, *WHERE, "--endpoint", sim.url, "--yes",
            "--rate", "100/s", "--no-remote-check",
        )  # fmt: skip
        assert code == 1, err  # the unknown instance's create is refused by the service
        assert _asset_requests(sim) == 0
        assert "held back" not in err
        assert "id-nobody" not in _sent(sim)
        assert {"id-stopped", "id-unauth", "id-mongo"} <= set(_sent(sim))


@pytest.mark.parametrize(
    ("fault", "said", "advice"),
    [
        ("forbidden", "403", "fix the access and run again"),
        ("broken", "500", "run again once DSC answers"),
        ("undocumented", "no 'instance_list' array", "bulkscan doctor --record FILE"),
    ],
)
async def test_an_asset_centre_that_cannot_be_read_sends_nothing(
    tmp_path: Path, make_xlsx: MakeXlsx, fault: str, said: str, advice: str
) -> None:
    inventory = make_xlsx({"instances": ROWS[:3]}, name="ids.xlsx")
    async with Simulator(assets=ASSETS, asset_fault=fault) as sim:
        code, out, err = await _bulkscan(
            tmp_path, "run", inventory, *WHERE, "--endpoint", sim.url, "--yes",
            "--rate", "100/s", "--attempts", "2", "--reports-dir", tmp_path / "reports",
        )  # fmt: skip
        assert code == 2, err
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("nothing sent: DSC's asset centre could not be read")
        assert f"project {P1} / region {CN}" in lines[0] and said in lines[0]
        assert "--no-remote-check" in lines[0] and advice in lines[0]
        assert "send again" not in lines[0] and lines[0].count(advice) == 1
        assert not sim.tasks and not out
        assert not (tmp_path / "reports").exists()  # no run was started

        # the way out the message names
        code, _, err = await _bulkscan(
            tmp_path, "run", inventory, *WHERE, "--endpoint", sim.url, "--yes",
            "--rate", "100/s", "--no-remote-check", "--reports-dir", tmp_path / "reports",
        )  # fmt: skip
        assert code == 1, err  # id-nobody is refused by the service itself
        assert set(_sent(sim)) == {"id-orders"}


async def test_a_resume_keeps_the_first_runs_check_and_lists_no_asset_again(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx({"instances": ROWS}, name="ids.xlsx")
    reports = tmp_path / "reports"
    async with Simulator(assets=ASSETS) as sim:
        run = ("run", inventory, *WHERE, "--endpoint", sim.url, "--yes", "--rate", "100/s")
        run += ("--reports-dir", reports)
        code, _, err = await _bulkscan(tmp_path, *run, "--limit", "1")
        assert code == 1 and "4 row(s) held back" in err
        assert len(_sent(sim)) == 1
        listed = _asset_requests(sim)

        code, out, err = await _bulkscan(tmp_path, *run, "--resume", "--json")
        assert code == 1, err  # done, but 4 rows were held back by the first run's check
        assert _asset_requests(sim) == listed
        assert _sent(sim) == {"id-orders": "Mysql", "id-billing": "PostgreSQL", "id-stock": "Mysql"}
        summary = json.loads(out)
        assert summary["rows"]["held"] == 4 and summary["outcomes"] == {"created": 3}

        # even without the check, a resume finishes the plan the first run made
        code, out, err = await _bulkscan(tmp_path, *run, "--resume", "--no-remote-check")
        assert code == 1, err
        assert len(sim.tasks) == 3


async def test_the_demo_is_checked_and_resumed_against_the_embedded_simulator(
    tmp_path: Path,
) -> None:
    run = ("run", SAMPLE, "--simulate", "--yes", "--rate", "200/s", "--json")
    run += ("--reports-dir", tmp_path / "reports")
    code, out, err = await _bulkscan(tmp_path, *run, "--limit", "2")
    assert code == 0, err  # the canary's tasks were created; --resume sends the rest
    assert "held back" not in err and json.loads(out)["rows"]["held"] == 0
    code, out, err = await _bulkscan(tmp_path, *run, "--resume")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"]["held"] == 0 and not summary["outcomes"].get("failed")


async def test_a_missing_project_holds_back_its_rows_and_the_others_go_ahead(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    p2 = "fedcba9876543210fedcba9876543210"
    rows = [
        ["ins_id", "db_type", "project_id", "task"],
        ["id-orders", "MySQL", P1, "t-orders"],  # row 2
        ["id-elsewhere", "MySQL", p2, "t-elsewhere"],  # row 3: no such project
    ]
    inventory = make_xlsx({"instances": rows}, name="two.xlsx")
    async with Simulator(assets=ASSETS, projects=[P1]) as sim:
        code, _, err = await _bulkscan(
            tmp_path, "run", inventory, "--region", CN, "--endpoint", sim.url, "--yes",
            "--rate", "100/s",
        )  # fmt: skip
        assert code == 1, err
        line = next(x for x in err.splitlines() if "row 3," in x)
        assert p2 in line and "does not exist" in line and "not sent" in line
        assert _sent(sim) == {"id-orders": "Mysql"}
        assert sim.stats["by_project"][p2] == {"project_not_found": 1}  # one listing, no create


async def test_refused_credentials_stop_at_the_first_asset_listing(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx({"instances": ROWS}, name="ids.xlsx")
    async with Simulator(assets=ASSETS, credentials={DEFAULT_AK: "another-secret"}) as sim:
        code, out, err = await _bulkscan(
            tmp_path, "run", inventory, *WHERE, "--endpoint", sim.url, "--yes",
            "--reports-dir", tmp_path / "reports",
        )  # fmt: skip
        assert code == 3, err  # as a fatal answer to the run's first request would
        assert sim.stats["requests"] == {"unauthorized": 1}
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert line.startswith("bulkscan: stopped: HTTP 401") and "check the AK/SK" in line
    assert not out and not (tmp_path / "reports").exists()
