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

    parser = build_parser()
    console.data(_SCRIPTS[args.shell](options_by_command(parser), _valued(parser)))
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
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("-"))


def _valued(parser: argparse.ArgumentParser) -> dict[str, tuple[str, ...]]:
    """Every option that takes a value (before a command or after one) → its choices, if the
    parser names them (``--lang``: en zh), else none (a value to type: a file name, say);
    ``completion`` → its shells, as the one positional with choices."""
    out: dict[str, tuple[str, ...]] = {}
    parsers = [parser]
    for action in parser._actions:  # argparse has no public listing
        if isinstance(action, argparse._SubParsersAction):
            parsers += action.choices.values()
    for each in parsers:
        for action in each._actions:
            if action.option_strings and action.nargs != 0:
                for option in action.option_strings:
                    out[option] = tuple(map(str, action.choices or ()))
    out["completion"] = SHELLS
    return out


def _bash(commands: Mapping[str, list[str]], valued: Mapping[str, tuple[str, ...]]) -> str:
    names = " ".join(c for c in commands if c)
    cases = "\n".join(
        f"        {name}) opts={shlex.quote(' '.join(opts))} ;;"
        for name, opts in commands.items()
        if name
    )
    takes = "|".join(sorted(o for o in valued if o.startswith("-")))
    choices = "\n".join(
        f'        {option}) COMPREPLY=($(compgen -W {shlex.quote(" ".join(values))} -- "$cur"));'
        " return ;;"
        for option, values in sorted(valued.items())
        if values
    )
    return f"""\
# bash completion for bulkscan (bulkscan completion bash)
_bulkscan() {{
    local cur prev command="" i opts
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            {takes}) ((i++)) ;;
            -*) ;;
            *) command="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    case "$prev" in
{choices}
    esac
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
    elif [[ "$command" == completion ]]; then
        COMPREPLY=($(compgen -W {shlex.quote(" ".join(SHELLS))} -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _bulkscan bulkscan
"""


def _zsh(commands: Mapping[str, list[str]], valued: Mapping[str, tuple[str, ...]]) -> str:
    return (
        "#compdef bulkscan\n"
        "# zsh completion for bulkscan (bulkscan completion zsh): the bash script, through\n"
        "# zsh's bash completion support\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + _bash(commands, valued)
    )


def _fish_option(option: str, valued: Mapping[str, tuple[str, ...]]) -> str:
    """``-l NAME`` (``-s X`` for a short one), with ``-r`` and ``-a CHOICES`` when it takes a
    value: fish then completes the value, not another option."""
    flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
    if option not in valued:
        return flag
    values = valued[option]
    return f"{flag} -r" + (f" -f -a {shlex.quote(' '.join(values))}" if values else "")


def _fish(commands: Mapping[str, list[str]], valued: Mapping[str, tuple[str, ...]]) -> str:
    names = [c for c in commands if c]
    lines = [
        "# fish completion for bulkscan (bulkscan completion fish)",
        f"complete -c bulkscan -n __fish_use_subcommand -f -a {shlex.quote(' '.join(names))}",
    ]
    lines += [
        f"complete -c bulkscan -n __fish_use_subcommand {_fish_option(o, valued)}"
        for o in commands[""]
    ]
    for name in names:
        for option in commands[name]:
            lines.append(
                f"complete -c bulkscan -n '__fish_seen_subcommand_from {name}' "
                f"{_fish_option(option, valued)}"
            )
    lines.append(
        "complete -c bulkscan -n '__fish_seen_subcommand_from completion' -f "
        f"-a {shlex.quote(' '.join(SHELLS))}"
    )
    return "\n".join(lines) + "\n"


_SCRIPTS = {"bash": _bash, "zsh": _zsh, "fish": _fish}
