"""Start-up stays light: building the parser and ``bulkscan --help`` load neither the HTTP
client, nor the workbook library, nor the simulator, nor the journal store; a command that
does not talk to DSC never loads the HTTP client (each command loads what it uses)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import MakeXlsx

HEAVY = (
    "aiohttp",
    "openpyxl",
    "pandas",
    "numpy",
    "rich",
    "bulkscan.sim",
    "bulkscan.dsc.client",
    "bulkscan.run.store",
    "bulkscan.audit",
    "bulkscan.run.remote",
    "bulkscan.run.coverage",
)
HTTP = ("aiohttp", "bulkscan.dsc.client")
PROJECT = "0123456789abcdef0123456789abcdef"

_REPORT = (
    "import sys\nheavy = {heavy!r}\n{work}\nprint(' '.join(m for m in heavy if m in sys.modules))\n"
)


def _loaded_after(work: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    code = _REPORT.format(heavy=heavy, work=work)
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


def _main(argv: list[str]) -> str:
    """Code that runs ``bulkscan ARGV`` and fails unless it exits 0."""
    return (
        "import contextlib, io\n"
        "from bulkscan.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "assert code == 0, code\n"
    )


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_command_that_does_not_talk_to_dsc_loads_no_http_client(
    make_xlsx: MakeXlsx, command: str
) -> None:
    rows = [("ins_id", "db_type", "project_id", "region"), ("i1", "MySQL", PROJECT, "cn-north-4")]
    book = make_xlsx({"instances": rows})
    argv = [command, str(book)]
    if command == "plan":
        argv += ["--output", str(book.with_suffix(".json"))]
    loaded = _loaded_after(_main(argv), heavy=(*HTTP, "openpyxl", "bulkscan.runner"))
    assert loaded == ["openpyxl", "bulkscan.runner"]  # it read the workbook, without aiohttp
    if command == "plan":
        assert book.with_suffix(".json").is_file()


def test_the_public_api_still_resolves_every_name() -> None:
    work = (
        "import bulkscan\n"
        "from bulkscan import runner\n"
        "for name in bulkscan.__all__:\n"
        "    getattr(bulkscan, name)\n"
        "assert bulkscan.check is runner.check and bulkscan.Connection is runner.Connection\n"
    )
    loaded = _loaded_after(work)
    assert "openpyxl" in loaded  # the lazy names are the real ones, loaded on first use
    assert "aiohttp" not in loaded  # the runner loads the HTTP client only to talk to DSC
