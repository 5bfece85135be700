"""Start-up stays light: building the parser and ``bulkscan --help`` load neither the HTTP
client, nor the workbook library, nor the simulator (each command loads what it uses)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("aiohttp", "openpyxl", "pandas", "numpy", "rich", "bulkscan.sim", "bulkscan.dsc.client")

_REPORT = (
    "import sys\nheavy = {heavy!r}\n{work}\nprint(' '.join(m for m in heavy if m in sys.modules))\n"
)


def _loaded_after(work: str) -> list[str]:
    code = _REPORT.format(heavy=HEAVY, work=work)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_building_the_parser_loads_nothing_heavy() -> None:
    assert _loaded_after("import bulkscan.cli\nbulkscan.cli.build_parser()") == []


@pytest.mark.parametrize("argv", [["--help"], ["-V"], ["run", "--help"], ["simulate", "--help"]])
def test_help_and_version_load_nothing_heavy(argv: list[str]) -> None:
    work = (
        "import contextlib, io\n"
        "from bulkscan.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
    )
    assert _loaded_after(work) == []


def test_the_public_api_still_resolves_every_name() -> None:
    loaded = _loaded_after("import bulkscan\nbulkscan.run\nbulkscan.Connection")
    assert "aiohttp" in loaded  # the lazy names are the real ones, loaded on first use
