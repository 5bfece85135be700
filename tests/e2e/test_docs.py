"""The README cannot rot: its commands run, and every CLI command is documented in it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook

from bulkscan.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _quick_start() -> list[str]:
    """The two commands of the quick start, in order (demo, then tests)."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[union-attr]


def test_quick_start_is_exactly_two_commands() -> None:
    demo, tests = _quick_start()
    venv = "python3 -m venv .venv && .venv/bin/python -m pip install -q "
    assert demo.startswith(venv + ". && ")
    assert "--simulate" in demo
    assert tests.startswith(venv + "'.[test]' && ")
    assert "pytest" in tests
    # every later step runs inside the environment, never the system Python (PEP 668)
    for command in (demo, tests):
        for step in command.split(" && ")[1:]:
            assert step.startswith(".venv/bin/python -m "), step


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    _, tests = _quick_start()
    pattern = re.search(r'grep -m1 "(.+?)" README.md', ci)
    assert pattern is not None
    matches = [line for line in README.splitlines() if re.match(pattern.group(1), line)]
    assert matches[0] == tests


def test_the_demo_command_leaves_a_result_workbook(tmp_path: Path) -> None:
    demo, _ = _quick_start()
    command = demo.split(" && ")[-1]  # the package is installed already
    argv = shlex.split(command)
    assert argv[:3] == [".venv/bin/python", "-m", "bulkscan"]
    (tmp_path / "inputs").mkdir()
    shutil.copy(ROOT / "inputs" / "sample.xlsx", tmp_path / "inputs" / "sample.xlsx")
    done = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    workbooks = list((tmp_path / "reports").glob("sample-*/results.xlsx"))
    assert len(workbooks) == 1
    book = load_workbook(workbooks[0], read_only=True)
    assert {"Summary", "Tasks", "Rows", "Issues", "Attempts"} <= set(book.sheetnames)
    book.close()


def test_every_command_is_in_the_readme() -> None:
    for name in _commands():
        assert f"bulkscan {name}" in README, name


def test_every_command_and_option_has_help() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {a.dest: a.help for a in sub._choices_actions}  # type: ignore[attr-defined]
    for name, parser in sub.choices.items():  # type: ignore[union-attr]
        assert helps.get(name), f"command {name} has no help"
        for action in parser._actions:
            assert action.help, f"bulkscan {name} {action.option_strings or action.dest}"
