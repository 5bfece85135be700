"""`bulkscan resolve` of a names-only inventory, then `bulkscan run` of what it wrote."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from openpyxl import load_workbook

from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk
from bulkscan.sim._assets import AssetInstance, Assets
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK, Simulator
from tests.e2e._cli import bulkscan, sim_env

if TYPE_CHECKING:
    from tests.conftest import MakeXlsx

P1 = "0123456789abcdef0123456789abcdef"
CN = "cn-north-4"
_LIMIT_S = 60.0
SAMPLE = Path(__file__).resolve().parents[2] / "inputs" / "sample.xlsx"

INSTANCES = [
    AssetInstance(P1, "id-orders", "orders-db"),
    AssetInstance(P1, "id-billing", "billing-db", db_type="PostgreSQL"),
    AssetInstance(P1, "id-stopped", "old-db", ins_status="STOPPED"),
    AssetInstance(
        P1, "id-unauth", "secret-db", authorized=False, authorize_fail_reason="wrong password"
    ),
    AssetInstance(P1, "id-twin-1", "twin-db"),
    AssetInstance(P1, "id-twin-2", "twin-db", ins_type="GaussDB", db_type="GaussDB"),
    AssetInstance(P1, "id-mongo", "docs-db", ins_type="DDS", db_type="MongoDB"),
]
ROWS = [
    ["Instance Name", "owner"],
    ["orders-db", "team a"],  # row 2: resolves
    ["billing-db", "team b"],  # row 3: resolves (PostgreSQL)
    ["ordres-db", "typo"],  # row 4: unknown, did you mean orders-db
    ["twin-db", "two"],  # row 5: ambiguous
    ["old-db", "stopped"],  # row 6
    ["secret-db", "unauthorised"],  # row 7
    ["docs-db", "mongo"],  # row 8: a type metadata tasks cannot carry
]


async def _bulkscan(cwd: Path, *args: str | Path) -> tuple[int, str, str]:
    return await bulkscan(cwd, *args, env=sim_env(), limit_s=_LIMIT_S)


async def test_names_resolve_validate_and_run_to_tasks_with_every_bad_row_held_back(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx({"instances": ROWS}, name="names.xlsx")
    where = ["--project-id", P1, "--region", CN]
    async with Simulator(assets=Assets(INSTANCES)) as sim:
        # a names-only file cannot be run as it is: it says what to do
        code, _, err = await _bulkscan(tmp_path, "validate", inventory, *where)
        assert code == 2
        assert "has a name but no ins_id yet" in err and "bulkscan resolve" in err

        code, out, err = await _bulkscan(
            tmp_path, "resolve", inventory, *where, "--endpoint", sim.url, "--rate", "100/s"
        )
        assert code == 1, err
        resolved = tmp_path / "names-resolved.xlsx"
        assert str(resolved.name) in out and "resolved 2 of 7 row(s)" in out
        assert "row 4, column 'ins_name'" in err and "did you mean 'orders-db'" in err
        assert "row 5" in err and "id-twin-1" in err and "id-twin-2" in err
        assert "row 6" in err and "STOPPED" in err
        assert "row 7" in err and "wrong password" in err
        assert "row 8" in err and "MongoDB" in err

        book = load_workbook(resolved)
        sheet = book["instances"]
        table = [list(r) for r in sheet.iter_rows(values_only=True)]
        header = table[0]
        assert header[:2] == ["Instance Name", "owner"]
        col = {name: header.index(name) for name in header}
        assert table[1][col["ins_id"]] == "id-orders"
        assert table[1][col["db_type"]] == "Mysql"  # DSC's own spelling
        assert table[1][col["asset_check"]] == "ok"
        assert table[2][col["ins_id"]] == "id-billing"
        assert [r[col["enabled"]] for r in table[1:]] == [None, None] + [False] * 5
        assert table[6][col["asset_authorisation"]] == "not authorised: wrong password"
        issues = [list(r) for r in book["Issues"].iter_rows(values_only=True)]
        assert {r[2] for r in issues[1:]} == {4, 5, 6, 7, 8}

        code, out, err = await _bulkscan(
            tmp_path, "run", resolved, "--endpoint", sim.url, "--yes", "--rate", "100/s"
        )
        assert code == 0, err
        sent = [s for t in sim.tasks for s in t["body"]["data_sources"]]
        assert sorted(s["ins_id"] for s in sent) == ["id-billing", "id-orders"]
        assert {s["ins_id"]: s["db_type"] for s in sent}["id-orders"] == "Mysql"

        # resolving again, then running again, creates nothing twice
        code, *_ = await _bulkscan(tmp_path, "resolve", inventory, *where, "--endpoint", sim.url)
        code, out, err = await _bulkscan(tmp_path, "run", resolved, "--endpoint", sim.url, "--yes")
        assert code == 0, err
        assert len(sim.tasks) == len({t["name"] for t in sim.tasks})
        assert len([s for t in sim.tasks for s in t["body"]["data_sources"]]) == 2


async def test_resolve_simulate_finds_the_rows_a_simulated_run_checks(tmp_path: Path) -> None:
    """The embedded simulator's asset centre holds the rows that name an ins_id, as it holds a
    simulated run's instances for its check: the demo resolves, then validates."""
    out_path = tmp_path / "resolved.xlsx"
    code, out, err = await _bulkscan(tmp_path, "resolve", SAMPLE, "--simulate", "--output",
                                     out_path)  # fmt: skip
    assert code == 0, err
    assert "resolved 150 of 150 row(s) (0 not to be sent)" in out
    assert f"next: bulkscan validate {out_path}" in out
    code, out, err = await _bulkscan(tmp_path, "validate", out_path)
    assert code == 0, err


async def test_nothing_resolved_says_what_to_correct_not_to_validate(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """Validating a workbook whose every row failed would only repeat the failures: the next
    step is to correct the names and resolve again (and --json has no next command)."""
    inventory = make_xlsx({"instances": [ROWS[0], ["no-such-db", "ops"]]}, name="names.xlsx")
    where = ["--project-id", P1, "--region", CN]
    async with Simulator(assets=Assets(INSTANCES)) as sim:
        args = ["resolve", inventory, *where, "--endpoint", sim.url, "--rate", "100/s"]
        code, out, err = await _bulkscan(tmp_path, *args)
        assert code == 1, err
        assert f"no row resolved: correct the names or ids in {inventory}" in out
        assert "next: bulkscan validate" not in out
        code, out, err = await _bulkscan(tmp_path, *args, "--json")
    assert code == 1 and json.loads(out)["next"] is None, out


async def test_an_ins_id_that_disagrees_with_the_name_is_an_error(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx(
        {
            "instances": [
                ["ins_name", "ins_id", "db_type"],
                ["orders-db", "id-billing", "MySQL"],
                ["billing-db", None, "MySQL"],
            ]
        },
        name="mixed.xlsx",
    )
    assets = tmp_path / "assets.json"
    assets.write_text(json.dumps({"instances": [vars_of(i) for i in INSTANCES]}))
    code, out, err = await _bulkscan(
        tmp_path, "resolve", inventory, "--project-id", P1, "--region", CN,
        "--simulate", "--simulate-assets", assets, "--json",
    )  # fmt: skip
    assert code == 1, err
    summary = json.loads(out)
    messages = [(i["row"], i["severity"], i["message"]) for i in summary["issues"]]
    assert any(r == 2 and s == "error" and "disagrees" in m for r, s, m in messages)
    assert any(r == 3 and s == "warning" and "PostgreSQL" in m for r, s, m in messages)
    assert summary["requests"] >= 1


def vars_of(instance: AssetInstance) -> dict[str, object]:
    return {name: getattr(instance, name) for name in instance.__dataclass_fields__}


async def test_validate_remote_and_run_remote_check_hold_back_every_bad_row(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    inventory = make_xlsx(
        {
            "instances": [
                ["ins_id", "db_type", "notes"],
                ["id-orders", "MySQL", "fine"],  # row 2
                ["id-nobody", "MySQL", "unknown"],  # row 3
                ["id-stopped", "MySQL", "stopped"],  # row 4
                ["id-unauth", "MySQL", "unauthorised"],  # row 5
                ["id-billing", "MySQL", "type disagrees: warned, sent as written"],  # row 6
            ]
        },
        name="ids.xlsx",
    )
    where = ["--project-id", P1, "--region", CN]
    async with Simulator(assets=Assets(INSTANCES)) as sim:
        code, _, err = await _bulkscan(
            tmp_path, "validate", inventory, *where, "--remote", "--endpoint", sim.url
        )
        assert code == 2, err
        assert "row 3, column 'ins_id': instance id-nobody is not a database asset" in err
        assert "row 4" in err and "STOPPED" in err
        assert "row 5" in err and "wrong password" in err
        assert "warning" in err and "row 6" in err and "PostgreSQL" in err
        assert "row 2" not in err
        assert not sim.tasks  # validate sends nothing

        code, _, err = await _bulkscan(
            tmp_path, "run", inventory, *where, "--endpoint", sim.url, "--yes"
        )  # the check is the default
        assert code == 1, err  # the rows held back are not onboarded
        assert "3 row(s) held back: not sent" in err
        sent = {s["ins_id"]: s["db_type"] for t in sim.tasks for s in t["body"]["data_sources"]}
        assert sent == {"id-orders": "Mysql", "id-billing": "MySQL"}


async def test_a_name_found_only_ignoring_case_resolves_with_a_warning(
    tmp_path: Path, make_xlsx: MakeXlsx
) -> None:
    """'ORDERS-DB' for DSC's 'orders-db' is taken (names typed by hand), but said: it is a
    guess, and another instance may be meant."""
    rows = [["Instance Name"], ["ORDERS-DB"], ["billing-db"]]
    inventory = make_xlsx({"instances": rows}, name="names.xlsx")
    where = ["--project-id", P1, "--region", CN]
    async with Simulator(assets=Assets(INSTANCES)) as sim:
        code, out, err = await _bulkscan(
            tmp_path, "resolve", inventory, *where, "--endpoint", sim.url, "--rate", "100/s"
        )
    assert code == 0, err
    assert "resolved 2 of 2 row(s)" in out
    assert (
        f"warning: {inventory}, sheet 'instances', row 2, column 'ins_name': no instance is named "
        "'ORDERS-DB' exactly; 'orders-db' (id-orders) was taken" in err
    ), err
    assert "row 3" not in err  # the exact name: nothing to say
    book = load_workbook(tmp_path / "names-resolved.xlsx")
    issues = [r for r in book["Issues"].iter_rows(min_row=2, values_only=True) if r[0]]
    assert [(r[0], r[2], r[3]) for r in issues] == [("warning", 2, "ins_name")]


async def test_the_demo_with_a_remote_check_still_creates_every_task(tmp_path: Path) -> None:
    # --remote-check is the default; the flag is still accepted
    code, _, err = await _bulkscan(
        tmp_path, "run", SAMPLE, "--simulate", "--yes", "--remote-check", "--rate", "200/s",
        "--reports-dir", tmp_path / "reports",
    )  # fmt: skip
    assert code == 0, err
    assert "held back" not in err


async def test_export_then_run_round_trips_and_creates_nothing_twice(tmp_path: Path) -> None:
    body = {
        "task_name": "legacy-scan", "task_description": "", "schedule_type": "ONCE",
        "start_time": 0,
        "data_sources": [{"db_type": "Mysql", "ins_id": "id-orders"},
                         {"db_type": "PostgreSQL", "ins_id": "id-billing"}],
    }  # fmt: skip
    more = [AssetInstance(P1, f"id-new-{n}", f"new-{n}") for n in range(3)]
    async with Simulator(assets=Assets([*INSTANCES, *more])) as sim:
        async with aiohttp.ClientSession() as session:
            client = DscClient(
                session, AkSk(DEFAULT_AK, DEFAULT_SK), endpoints=Endpoints(override=sim.url)
            )
            await client.create_task(P1, json.dumps(body).encode(), region=CN)
        exported = tmp_path / "dsc.xlsx"
        where = ["--region", CN, "--project", P1, "--endpoint", sim.url, "--rate", "100/s"]
        code, out, err = await _bulkscan(tmp_path, "export", *where, "--output", exported)
        assert code == 0, err
        assert "10 instance(s), 8 not covered by a task" in out
        assert f"next: bulkscan run {exported} --endpoint {sim.url}" in out
        rows = list(load_workbook(exported)["instances"].iter_rows(values_only=True))
        col = {name: rows[0].index(name) for name in rows[0]}
        by_id = {r[col["ins_id"]]: r for r in rows[1:]}
        assert by_id["id-orders"][col["task"]] == "legacy-scan"
        assert by_id["id-new-0"][col["task"]] is None
        assert by_id["id-stopped"][col["enabled"]] is False

        run = ["run", exported, "--endpoint", sim.url, "--yes", "--rate", "100/s"]
        code, out, err = await _bulkscan(tmp_path, *run)
        assert code == 0, err
        created = {s["ins_id"] for t in sim.tasks for s in t["body"]["data_sources"]}
        new = {"id-new-0", "id-new-1", "id-new-2", "id-twin-1", "id-twin-2"}
        assert created == {"id-orders", "id-billing", *new}  # not stopped, unauth, mongo
        tasks = len(sim.tasks)

        code, out, err = await _bulkscan(tmp_path, "export", *where, "--output", exported)
        assert code == 0 and "10 instance(s), 3 not covered by a task" in out, err
        # the three left cannot be scanned (stopped, unauthorised, MongoDB): no run to suggest
        assert out.rstrip().endswith(
            "the 3 instance(s) without a task cannot be scanned (their asset_check says why): "
            "nothing to run"
        )
        assert "next:" not in out
        code, out, err = await _bulkscan(tmp_path, *run)
        assert code == 0, err
        assert len(sim.tasks) == tasks  # every covered row was found as existing
        assert re.search(r"exists\s+2\b", out + err)


async def test_an_export_with_no_instance_suggests_no_run(tmp_path: Path) -> None:
    """An asset centre that lists nothing (wrong project, or credentials that may not read
    it): the export says so instead of naming a run of an empty workbook."""
    where = ["--region", CN, "--project", P1, "--simulate"]
    code, out, err = await _bulkscan(tmp_path, "export", *where, "--output", tmp_path / "e.xlsx")
    assert code == 0, err
    assert "0 instance(s), 0 not covered by a task" in out and "next:" not in out
    assert "simulator's asset centre is empty: nothing to run" in out
    assert "--simulate-assets FILE" in out
    code, out, err = await _bulkscan(
        tmp_path, "export", *where, "--output", tmp_path / "e.xlsx", "--json"
    )
    assert code == 0 and json.loads(out)["next"] is None, err
    assets = tmp_path / "assets.json"  # instances of another project only
    other = [dataclasses.replace(i, project_id="f" * 32) for i in INSTANCES]
    assets.write_text(json.dumps({"instances": [vars_of(i) for i in other]}))
    code, out, err = await _bulkscan(
        tmp_path, "export", *where, "--simulate-assets", assets, "--output", tmp_path / "e.xlsx"
    )
    assert code == 0, err
    assert "lists no database instance there: nothing to run (may these credentials" in out
