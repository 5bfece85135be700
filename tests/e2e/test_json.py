"""Every command's ``--json`` answer has the one envelope and the one vocabulary.

One sequence of commands in one folder, against the embedded simulator (``--simulate``, its
tasks kept in the reports folder), run once for the module: a canary run (``--limit``), its
report, status and audit, the resume the run's answer names, the commands after a run, a
usage error and an invalid input.  The checks below read the answers it collected.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bulkscan.cli import build_parser, main
from bulkscan.cli._json import SCHEMA, VOCABULARY, term
from bulkscan.models import Outcome

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "inputs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SIM = ("--simulate", "--rate", "200/s")
# The exit codes of the CLI and the status each stands for (README "Exit codes").
STATUS_OF_CODE = {0: "ok", 1: "incomplete", 2: "invalid", 3: "stopped", 4: "incomplete"}


@dataclass(frozen=True)
class Answer:
    argv: tuple[str, ...]
    code: int
    document: dict[str, Any]

    @property
    def command(self) -> str:
        return next(a for a in self.argv if not a.startswith("-"))


def _call(argv: list[str]) -> Answer:
    """``bulkscan ARGV`` in process, as the console script runs it (``sys.argv`` included, so
    a run journals its own command and builds its resume command from it)."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(sys, "argv", ["bulkscan", *argv])
        code = main(argv)
    return Answer(tuple(argv), code, json.loads(out.getvalue()))


def _json_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    choices: dict[str, Any] = sub.choices  # type: ignore[assignment]
    return {n for n, p in choices.items() if any("--json" in a.option_strings for a in p._actions)}


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> list[Answer]:
    folder = tmp_path_factory.mktemp("json")
    shutil.copy(INPUTS / "sample.xlsx", folder / "sample.xlsx")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("XDG_CONFIG_HOME", str(folder / "config-home"))
        for name in list(os.environ):
            if name.startswith(("HUAWEICLOUD_SDK_", "BULKSCAN_")):
                mp.delenv(name)
        return list(_sequence(folder))


def _sequence(folder: Path) -> Iterator[Answer]:
    reports = ["--reports-dir", "reports"]
    yield _call(["config", "--json"])
    yield _call(["validate", "sample.xlsx", "--json"])
    yield _call(["validate", str(INPUTS / "sample-with-errors.xlsx"), "--json"])
    plan = _call(["plan", "sample.xlsx", "--json"])
    yield plan
    yield _call(["doctor", "sample.xlsx", *SIM, "--json"])
    yield _call(["resolve", "sample.xlsx", *SIM, "--output", "resolved.xlsx", "--json"])
    yield _call(["run", "missing.xlsx", *SIM, "--yes", "--json"])  # a usage error
    canary = _call(["run", "sample.xlsx", *SIM, *reports, "--limit", "3", "--yes", "--json"])
    yield canary
    run_dir = canary.document["run_dir"]
    yield _call(["report", run_dir, "--json"])
    # a run whose projects cannot be listed sends nothing and stops, to be resumed
    yield _call(["run", "sample.xlsx", *SIM, "--reports-dir", "unlisted", "--no-remote-check",
                 "--simulate-faults", "lists_answered=0", "--yes", "--json"])  # fmt: skip
    yield _call(["status", run_dir, *SIM, "--json"])
    yield _call(["audit", "sample.xlsx", *SIM, *reports, "--json"])
    yield _call(canary.document["next"]["argv"][1:])  # the resume it names, as printed
    audit = _call(["audit", "sample.xlsx", *SIM, *reports, "--json"])
    yield audit
    group = plan.document["groups"][0]
    where = ["--project", group["project_id"], "--region", group["region"]]
    assets = folder / "assets.json"  # an instance no task covers: the export names a run
    one = {"project_id": group["project_id"], "ins_id": "ins-new", "ins_name": "new"}
    assets.write_text(json.dumps({"instances": [one]}), encoding="utf-8")
    yield _call(["export", *where, *SIM, "--simulate-assets", str(assets),
                 "--output", "dsc.xlsx", "--json"])  # fmt: skip
    for action in ("start", "disable", "enable", "undo"):
        yield _call([action, run_dir, *SIM, "--yes", "--json"])
    yield _call(["dedupe", audit.document["workbook"], *SIM, "--yes", "--json"])


def test_every_command_with_json_is_checked(answers: list[Answer]) -> None:
    assert {a.command for a in answers} == _json_commands()


def test_every_answer_has_the_envelope(answers: list[Answer]) -> None:
    for answer in answers:
        doc = answer.document
        assert list(doc)[:5] == ["schema", "command", "status", "exit_code", "next"], doc
        assert (doc["schema"], doc["command"]) == (SCHEMA, answer.command)
        assert doc["exit_code"] == answer.code, answer.argv
        assert doc["status"] == STATUS_OF_CODE[answer.code], answer.argv


def test_the_answers_end_every_way(answers: list[Answer]) -> None:
    """The sequence reaches each status, so the envelope is checked on each."""
    assert {a.document["status"] for a in answers} == {"ok", "incomplete", "invalid", "stopped"}
    (report,) = (a for a in answers if a.command == "report")  # of the canary: unfinished
    # ... but as the canary exited: what --limit held back is no stop
    assert (report.code, report.document["run_status"]) == (0, "unfinished")
    assert report.document["next"]["command"] == report.document["resume_command"]
    assert report.document["next"]["why"].endswith("held back by --limit")
    assert report.document["held_back"] == 13 and report.document["audit_command"] is None
    (stopped,) = (a for a in answers if "lists_answered=0" in a.argv)
    assert stopped.code == 3 and stopped.document["outcomes"] == {"pending": 16}
    assert "--resume" in stopped.document["next"]["argv"]
    (refused,) = (a for a in answers if "missing.xlsx" in a.argv)
    assert refused.code == 2 and "missing.xlsx" in refused.document["error"]


def test_next_is_a_command_the_parser_takes(answers: list[Answer]) -> None:
    steps = [(a, a.document["next"]) for a in answers if a.document["next"] is not None]
    assert {a.command for a, _ in steps} >= {"run", "resolve", "status", "audit", "export"}
    for answer, step in steps:
        assert step["argv"] == shlex.split(step["command"]) and step["why"]
        assert step["argv"][0] == "bulkscan"
        build_parser().parse_args(step["argv"][1:])  # exits (fails the test) if it cannot
        if "--simulate" in answer.argv and step["argv"][1] != "validate":
            assert "--simulate" in step["argv"], step  # the demo stays on the simulator


def test_the_resume_it_names_finishes_the_run(answers: list[Answer]) -> None:
    (canary,) = (a for a in answers if "--limit" in a.argv)
    (resumed,) = (a for a in answers if "--resume" in a.argv)
    assert canary.document["next"]["argv"][-2:] == ["--resume", canary.document["run_dir"]]
    assert {"--reports-dir", "--limit"} & set(resumed.argv) == {"--reports-dir"}
    assert (resumed.code, resumed.document["next"]) == (0, None)
    assert set(resumed.document["outcomes"]) <= {"created", "exists"}


def test_outcome_names_are_the_vocabulary(answers: list[Answer]) -> None:
    seen: set[str] = set()
    for answer in answers:
        doc = answer.document
        seen |= set(doc.get("outcomes", {}))
        seen |= {u["status"] for u in doc.get("uncovered", [])}
        seen |= {s["state"] for s in doc.get("scans", [])}
    assert seen and seen <= VOCABULARY
    assert {"created", "pending", "covered", "held", "done"} <= seen, seen


def test_the_vocabulary_is_one_word_each_and_documented() -> None:
    assert (term(Outcome.GAVE_UP), term(Outcome.NOT_ATTEMPTED)) == ("gave_up", "pending")
    section = README.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    for name in VOCABULARY:
        assert " " not in name and f"`{name}`" in section, name
    for command in _json_commands():
        assert f"| `{command}` |" in section, command
    assert f"`{SCHEMA}`" in section
