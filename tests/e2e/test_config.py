"""``bulkscan.toml`` drives a real run: endpoint, rate and reports folder typed once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bulkscan.sim.server import Simulator
from tests.e2e._cli import bulkscan
from tests.e2e.test_run_e2e import assert_exactly_once, planned, write_inventory

if TYPE_CHECKING:
    from pathlib import Path

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
