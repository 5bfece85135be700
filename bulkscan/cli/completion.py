"""``bulkscan completion SHELL``: a completion script for bash, zsh or fish, drawn from the parser.

The script lists the commands and each command's options as this version has them, so it is
regenerated (not edited) after an upgrade.  Positional arguments complete as file names.
"""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_OK
from bulkscan.cli._console import console
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    from collections.abc import Mapping

SHELLS = ("bash", "zsh", "fish")

DESCRIPTION = N_("Print a shell completion script on stdout. Install it once:")
_THIS_SHELL = N_("or for this shell only: {command}.")
_THEN = N_("(then: {command})")


def _description() -> str:
    """The description in the current language, its commands as they are typed."""
    then = _(_THEN).format(command="compinit")
    return "\n".join([
        _(DESCRIPTION),
        "",
        "  bash:  bulkscan completion bash > ~/.local/share/bash-completion/completions/bulkscan",
        f'  zsh:   bulkscan completion zsh > "${{fpath[1]}}/_bulkscan"   {then}',
        "  fish:  bulkscan completion fish > ~/.config/fish/completions/bulkscan.fish",
        "",
        _(_THIS_SHELL).format(command='eval "$(bulkscan completion bash)"'),
        "",
    ])  # fmt: skip


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description=_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from bulkscan.cli import build_parser

    commands = options_by_command(build_parser())
    console.data(_SCRIPTS[args.shell](commands))
    return EXIT_OK


def options_by_command(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """``{command: its option strings}``, with ``""`` for the options before a command."""
    out = {"": _options(parser)}
    for action in parser._actions:  # argparse has no public listing
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                out[name] = _options(command)
    return out


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))


def _bash(commands: Mapping[str, list[str]]) -> str:
    names = " ".join(c for c in commands if c)
    cases = "\n".join(
        f"        {name}) opts={shlex.quote(' '.join(opts))} ;;"
        for name, opts in commands.items()
        if name
    )
    return f"""\
# bash completion for bulkscan (bulkscan completion bash)
_bulkscan() {{
    local cur command="" i opts
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --config|--config-profile) ((i++)) ;;
            -*) ;;
            *) command="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    if [[ -z "$command" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W {shlex.quote(" ".join(commands[""]))} -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{names}" -- "$cur"))
        fi
        return
    fi
    case "$command" in
{cases}
        *) opts="" ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _bulkscan bulkscan
"""


def _zsh(commands: Mapping[str, list[str]]) -> str:
    return (
        "#compdef bulkscan\n"
        "# zsh completion for bulkscan (bulkscan completion zsh): the bash script, through\n"
        "# zsh's bash completion support\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + _bash(commands)
    )


def _fish(commands: Mapping[str, list[str]]) -> str:
    names = [c for c in commands if c]
    lines = [
        "# fish completion for bulkscan (bulkscan completion fish)",
        f"complete -c bulkscan -n __fish_use_subcommand -f -a {shlex.quote(' '.join(names))}",
    ]
    lines += [f"complete -c bulkscan -n __fish_use_subcommand -l {o[2:]}" for o in commands[""]]
    for name in names:
        for option in commands[name]:
            lines.append(
                f"complete -c bulkscan -n '__fish_seen_subcommand_from {name}' -l {option[2:]}"
            )
    return "\n".join(lines) + "\n"


_SCRIPTS = {"bash": _bash, "zsh": _zsh, "fish": _fish}
