"""Shell completion: the scripts are drawn from the parser and complete in a real bash."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from bulkscan.cli import build_parser, main
from bulkscan.cli.completion import options_by_command

if TYPE_CHECKING:
    from pathlib import Path


def _script(capsys: pytest.CaptureFixture[str], shell: str) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def _complete(script: Path, cwd: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (``bulkscan`` implied first)."""
    program = (
        f"source {script}; COMP_WORDS=(bulkscan {' '.join(words)}); COMP_CWORD={len(words)}; "
        '_bulkscan; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", program],
        cwd=cwd, capture_output=True, text=True, timeout=20, check=True,
    )  # fmt: skip
    return [x for x in done.stdout.splitlines() if x]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "bulkscan.bash"
    script.write_text(_script(capsys, "bash"), encoding="utf-8")
    (tmp_path / "wave1.xlsx").write_bytes(b"")
    assert _complete(script, tmp_path, "res") == ["resolve"]
    assert _complete(script, tmp_path, "run", "--resu") == ["--resume"]
    assert _complete(script, tmp_path, "--config", "x.toml", "audit", "--json") == ["--json"]
    assert _complete(script, tmp_path, "run", "wav") == ["wave1.xlsx"]
    assert _complete(script, tmp_path, "--con") == ["--config", "--config-profile"]
    # a global option's value is not taken for the command; values with choices complete
    assert _complete(script, tmp_path, "--lang", "zh", "st") == ["status", "start"]
    assert _complete(script, tmp_path, "--lang", "") == ["en", "zh"]
    assert _complete(script, tmp_path, "run", "--on-conflict", "") == ["stop", "update"]
    assert _complete(script, tmp_path, "completion", "") == ["bash", "zsh", "fish"]
    assert "-q" in _complete(script, tmp_path, "run", "-")  # short options too


def test_fish_completes_values_not_options_after_an_option_that_takes_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = _script(capsys, "fish").splitlines()
    assert "complete -c bulkscan -n __fish_use_subcommand -l lang -r -f -a 'en zh'" in lines
    run = [line for line in lines if "__fish_seen_subcommand_from run'" in line]
    assert any(line.endswith("-l reports-dir -r") for line in run)
    assert any(line.endswith("-l json") for line in run)  # a flag takes no value


def test_every_command_and_option_is_in_each_script(capsys: pytest.CaptureFixture[str]) -> None:
    commands = options_by_command(build_parser())
    assert {"run", "audit", "config", "completion"} <= set(commands)
    for shell in ("bash", "zsh", "fish"):
        text = _script(capsys, shell)
        for name, options in commands.items():
            assert name in text
            assert all(o[2:] in text for o in options), (shell, name)
