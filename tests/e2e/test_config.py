"""``bulkscan.toml`` drives a real run: endpoint, rate and reports folder typed once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bulkscan.sim.server import Simulator
from tests.e2e._cli import bulkscan, sim_env
from tests.e2e.test_run_e2e import assert_exactly_once, planned, write_inventory

if TYPE_CHECKING:
    from tests.e2e._cli import Done

pytestmark = pytest.mark.asyncio


async def test_a_config_profile_sends_where_it_says(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "wave.xlsx", 6)
    async with Simulator() as sim:
        (tmp_path / "bulkscan.toml").write_text(
            'endpoint = "http://127.0.0.1:9"\n'  # nothing listens there: only the profile works
            'reports_dir = "onboarding"\n'
            f'[profile.sim]\nendpoint = "{sim.url}"\nrate = "200/s"\n',
            encoding="utf-8",
        )
        done = await bulkscan(tmp_path, "--config-profile", "sim", "run", inventory, "--yes")
        assert done.code == 0, done.err
        assert_exactly_once(sim, planned(inventory))
    assert len(list((tmp_path / "onboarding").glob("wave-*/results.xlsx"))) == 1
    assert not (tmp_path / "reports").exists()


async def test_a_flag_wins_over_the_config_file(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "wave.xlsx", 2)
    async with Simulator() as sim:
        (tmp_path / "bulkscan.toml").write_text(
            'endpoint = "http://127.0.0.1:9"\nreports_dir = "onboarding"\n', encoding="utf-8"
        )
        done = await bulkscan(
            tmp_path, "run", inventory, "--yes", "--endpoint", sim.url, "--reports-dir", "mine"
        )
        assert done.code == 0, done.err
        assert len(sim.tasks) == 2
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "onboarding").exists()


SAMPLE = Path(__file__).resolve().parents[2] / "inputs" / "sample.xlsx"
PROJECT = "0123456789abcdef0123456789abcdef"


def _one_error(done: Done) -> str:
    """The one line a refused command wrote, after checking that it wrote only that."""
    assert done.code == 2, done
    assert done.out == "" and done.err.count("\n") == 1, done
    assert done.err.startswith("bulkscan: error: "), done.err
    return done.err.removeprefix("bulkscan: error: ").strip()


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("concurrency = 0", "concurrency must be between 1 and 64, not 0"),
        ("concurrency = 1000", "concurrency must be between 1 and 64, not 1000"),
        ("attempts = 0", "attempts must be between 1 and 20, not 0"),
        ("settle = -5", "settle window (s) must be between 0 and 600, not -5"),
        ("read_timeout = 0", "read timeout (s) must be between 0.05 and 600, not 0"),
        ("task_budget = -1", "task time budget (s) must be between 1 and 86400, not -1"),
        ('project_id = "xyz"', "project_id 'xyz' is not 32 lowercase hex characters"),
    ],
)
async def test_a_value_out_of_bounds_in_the_file_is_refused_naming_file_and_key(
    tmp_path: Path, line: str, said: str
) -> None:
    config = tmp_path / "b.toml"
    config.write_text(line + "\n", encoding="utf-8")
    key = line.partition(" = ")[0]
    expected = f"{config}, key '{key}': {said}"
    assert _one_error(await bulkscan(tmp_path, "--config", config, "config")) == expected
    assert _one_error(await bulkscan(tmp_path, "--config", config, "plan", SAMPLE)) == expected
    assert not (tmp_path / "reports").exists()


async def test_a_bad_value_in_a_variable_names_the_variable(tmp_path: Path) -> None:
    env = sim_env(HUAWEICLOUD_SDK_PROJECT_ID="xyz")
    said = "$HUAWEICLOUD_SDK_PROJECT_ID: project_id 'xyz' is not 32 lowercase hex characters"
    for command in (("config",), ("plan", SAMPLE), ("doctor", "--region", "cn-north-4")):
        assert _one_error(await bulkscan(tmp_path, *command, "--simulate", env=env)) == said


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (("plan", SAMPLE, "--concurrency", "0"), "--concurrency: concurrency must be between"),
        (("plan", SAMPLE, "--settle", "-5"), "--settle: settle window (s) must be between"),
        (("plan", SAMPLE, "--quota-windows", "0s"), "--quota-windows: quota window (s) must"),
        (("plan", SAMPLE, "--project-id", "xyz"), "--project-id: project_id 'xyz' is not 32"),
        (("plan", SAMPLE, "--timezone", "Mars/Base"), "--timezone: timezone 'Mars/Base' is not"),
        (("doctor", "--project", "xyz", "--region", "r"), "--project: project_id 'xyz' is not"),
        (("export", "--project", "xyz", "--region", "r"), "--project: project_id 'xyz' is not"),
    ],
)
async def test_a_bad_value_typed_names_the_flag(
    tmp_path: Path, command: tuple[str | Path, ...], said: str
) -> None:
    done = await bulkscan(tmp_path, *command, "--simulate")
    assert _one_error(done).startswith(said)
    assert not (tmp_path / "reports").exists()


async def test_a_good_file_still_reaches_the_command(tmp_path: Path) -> None:
    config = tmp_path / "b.toml"
    config.write_text(
        f'concurrency = 64\nsettle = 0\nproject_id = "{PROJECT}"\nquota_windows = "none"\n',
        encoding="utf-8",
    )
    done = await bulkscan(tmp_path, "--config", config, "config", "--json")
    assert done.code == 0, done.err
    shown = {s["key"]: s["value"] for s in json.loads(done.out)["settings"]}
    assert (shown["concurrency"], shown["settle"], shown["project_id"]) == (64, 0.0, PROJECT)


async def test_config_names_every_place_it_looks_for_a_file(tmp_path: Path) -> None:
    home, work = tmp_path / "xdg", tmp_path / "work"
    work.mkdir()
    user, local = home / "bulkscan" / "config.toml", work / "bulkscan.toml"
    env = sim_env(XDG_CONFIG_HOME=str(home))
    done = await bulkscan(work, "config", env=env)
    assert done.code == 0, done.err
    assert done.out.splitlines()[0] == f"config files: none (looked for {user}, {local})"
    user.parent.mkdir(parents=True)
    user.write_text('rate = "4/s"\n', encoding="utf-8")
    done = await bulkscan(work, "config", env=env)
    assert done.out.splitlines()[0] == f"config files: {user} (none at {local})"
    rate = next(line.split() for line in done.out.splitlines() if line.startswith("  rate "))
    assert rate == ["rate", "4/s", str(user)]  # the user's file is read, not only named
    done = await bulkscan(work, "config", "--json", env=env)
    document = json.loads(done.out)
    assert (document["files"], document["looked_for"]) == ([str(user)], [str(user), str(local)])
