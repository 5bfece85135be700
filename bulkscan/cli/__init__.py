"""The command line: the only place that parses options, prints and chooses exit codes.

Each command lives in its own module with ``register(subparsers)``, which adds a parser whose
``func(args) -> int`` does the work through ``bulkscan.runner`` and renders the result.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from bulkscan import __version__
from bulkscan.cli._console import console
from bulkscan.cli._help import use_cell_width
from bulkscan.config import SETTINGS_OPTIONS
from bulkscan.errors import BulkscanError, UsageError
from bulkscan.i18n import LANGUAGES, N_, _, choose_language, set_language

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import ModuleType

    from bulkscan.cli._json import Next
    from bulkscan.cli._settings import Layered

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_OK", "EXIT_STOPPED", "Refused", "main"]

EXIT_OK = 0  # everything done (or only warnings)
EXIT_FAILED = 1  # some tasks failed / something is not covered
EXIT_INPUT = 2  # bad input or usage
EXIT_STOPPED = 3  # stopped by a fatal error or interrupted


class Refused(Exception):
    """A command that ends before its work, with the one line it says why on stderr: with
    ``--json`` the envelope carries ``error`` (the message without the line's opening words)
    and ``fields`` besides, and the exit code is ``code``."""

    def __init__(
        self,
        line: str,
        *,
        code: int = EXIT_INPUT,
        error: str | None = None,
        fields: Mapping[str, object] | None = None,
        next_step: Next | None = None,
    ) -> None:
        super().__init__(line)
        self.code = code
        self.error = line if error is None else error
        self.fields = dict(fields or {})
        self.next_step = next_step

    @classmethod
    def stopped(cls, error: object, *, next_step: Next | None = None, **fields: object) -> Refused:
        """Stopped by ``error`` (e.g. credentials refused): exit 3."""
        line = _("bulkscan: stopped: {error}").format(error=error)
        return cls(line, code=EXIT_STOPPED, error=str(error), fields=fields, next_step=next_step)


def lazy_module(name: str) -> ModuleType:
    """``name``, loaded on its first attribute read: ``runner`` below is so, so that building
    the parser (``--help``, completion, any other command) does not load the HTTP client and
    the workbook writer."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _dot, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)
    return module


if TYPE_CHECKING:
    from bulkscan import runner as runner
else:  # the library's entry points, loaded when a command first calls one
    runner = lazy_module("bulkscan.runner")


# The commands in the order a person uses them; ``bulkscan --help`` lists them so.
WORKFLOW = (
    "template", "validate", "resolve", "export", "plan", "run", "status", "report", "audit",
    "start", "enable", "disable", "undo", "dedupe", "doctor", "config", "completion", "simulate",
)  # fmt: skip


def _command_modules() -> list[str]:
    """Every public module of this package is a command (``run.py`` → ``bulkscan run``)."""
    import pkgutil

    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [name for name in WORKFLOW if name in found] + sorted(found - set(WORKFLOW))


def build_parser(defaults: Mapping[str, object] | None = None) -> argparse.ArgumentParser:
    """The whole parser; ``defaults`` (from the config file and environment) replace the
    built-in defaults of the options that have them, so a typed flag still wins."""
    parser = argparse.ArgumentParser(
        prog="bulkscan",
        description=_("Onboard many databases into Huawei Cloud DSC metadata scan tasks at once."),
        epilog=_(
            "Settings typed once (region, endpoint, rate, ...) go in bulkscan.toml: "
            "see `bulkscan config`."
        ),
    )
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"bulkscan {__version__}",
        help=_("show the version and exit"),
    )
    _add_config_options(parser)
    _add_output_options(parser)
    _add_lang(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in _command_modules():
        importlib.import_module(f"bulkscan.cli.{name}").register(sub)
    for command in sub.choices.values():  # these options: before or after the command
        _add_output_options(command)
        _add_lang(command)
        _add_config_options(command, command=True)
        if defaults:
            _apply_defaults(command, defaults)
    _in_language(parser)
    return parser


def _add_config_options(parser: argparse.ArgumentParser, *, command: bool = False) -> None:
    """--config and --config-profile, read early by ``_preparse``: before the command name or
    after it (``command``: SUPPRESS, so that a command's parser does not undo what was typed
    before its name), as a next command a person is shown may carry them."""
    unset = argparse.SUPPRESS if command else None
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=unset,
        help=_(
            "read settings from FILE only (default: ~/.config/bulkscan/config.toml, then "
            "./bulkscan.toml; also $BULKSCAN_CONFIG)"
        ),
    )
    parser.add_argument(
        "--config-profile",
        metavar="NAME",
        default=unset,
        help=_("use the [profile.NAME] table of the config file (also $BULKSCAN_CONFIG_PROFILE)"),
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """-q/-v/--debug, before or after the command name (SUPPRESS: a command's parser does
    not undo what was typed before its name)."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only errors and the final outcome; no progress bar",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="list every row of a repeated problem instead of a summary per cause",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one line per request and answer on stderr (method, path, status, time, "
        "request id, verdict, error), credentials removed",
    )


def _in_language(parser: argparse.ArgumentParser) -> None:
    """Every help text of ``parser`` and its commands in the chosen language.

    The command modules write their help in English, as argparse takes it; this one pass
    translates descriptions, epilogs, group titles and option helps (the extraction script
    collects those literals into the catalog), so no command module calls gettext itself.
    """
    use_cell_width(parser)
    parser.description = _(parser.description) if parser.description else parser.description
    parser.epilog = _(parser.epilog) if parser.epilog else parser.epilog
    for group in parser._action_groups:  # argparse has no public listing of either
        group.title = _(group.title) if group.title else group.title
        group.description = _(group.description) if group.description else group.description
    for action in parser._actions:
        if action.help and action.help != argparse.SUPPRESS:
            action.help = _(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = _(choice.help) if choice.help else choice.help
            for command in dict.fromkeys(action.choices.values()):  # aliases share a parser
                _in_language(command)


_LANG_HELP = N_(
    "language of messages, help and workbook headers: en or zh (also $BULKSCAN_LANG, the "
    "config key language, else the locale: LANG=zh_CN.UTF-8 gives zh)"
)


def _add_lang(parser: argparse.ArgumentParser) -> None:
    """``--lang``: read early by ``_preparse`` (it must be known before any help text is
    built); declared on every parser so that it is accepted and shown in each help."""
    parser.add_argument("--lang", choices=LANGUAGES, default=argparse.SUPPRESS, help=_(_LANG_HELP))


def _apply_defaults(parser: argparse.ArgumentParser, defaults: Mapping[str, object]) -> None:
    """Set the defaults this command has an option for (others would only clutter it)."""
    known = {action.dest for action in parser._actions}  # argparse has no public listing
    parser.set_defaults(**{dest: v for dest, v in defaults.items() if dest in known})


def _configured_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, Layered]:
    """The parser whose defaults come from the config files and the environment."""
    from bulkscan.cli import _settings

    early = _preparse(argv)
    _choose_language(early.lang, os.environ.get("BULKSCAN_LANG"))  # errors below in it too
    layered = _settings.load(explicit=early.config, profile=early.config_profile)
    configured = next((s.value for s in layered.settings if s.key == "language"), None)
    _choose_language(early.lang, str(configured) if configured else None)
    return build_parser(layered.defaults()), layered


def _choose_language(flag: str | None, configured: str | None) -> None:
    try:
        set_language(choose_language(flag, configured, os.environ))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _preparse(argv: Sequence[str]) -> argparse.Namespace:
    """``--config``, ``--config-profile`` and ``--lang``, read before the parser is built."""
    early = argparse.ArgumentParser(add_help=False)
    for option in SETTINGS_OPTIONS:
        early.add_argument(option)
    known, _rest = early.parse_known_args(argv)
    return known


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it).

    Once the command's outcome is decided, Ctrl-C is ignored: only its last lines and the
    clean-up are left, and an interruption there would end in a traceback.  Called with
    ``argv`` (from Python, a test), the caller's Ctrl-C handling is put back on return; as
    the program (``argv`` None) it stays ignored until the process exits."""
    from bulkscan.cli._streams import StreamFailed, cleanup_unsaid, guarded_streams

    handler = signal.getsignal(signal.SIGINT) if _on_main_thread() else None
    try:
        with guarded_streams(), cleanup_unsaid(say=lambda: console.level.debug):
            return _main(list(sys.argv[1:] if argv is None else argv))
    except StreamFailed as failed:
        with contextlib.suppress(OSError):
            console.err(
                _("bulkscan: error: cannot write to standard output ({reason})").format(
                    reason=failed.reason
                ),
                kind="error",
            )
        return EXIT_FAILED
    except KeyboardInterrupt:  # before a command began (reading its arguments, say)
        with contextlib.suppress(OSError):
            console.err(_("bulkscan: interrupted"), kind="error")
        return EXIT_STOPPED
    finally:
        if argv is not None and handler is not None:
            signal.signal(signal.SIGINT, handler)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _settled() -> None:
    """The command's outcome is decided: ignore Ctrl-C from now on (see ``main``)."""
    if _on_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _main(argv: list[str]) -> int:
    try:
        parser, layered = _configured_parser(argv)
    except UsageError as exc:
        console.err(_("bulkscan: error: {message}").format(message=exc), kind="error")
        return EXIT_INPUT
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `bulkscan`: say what it can do
        parser.print_help()
        return EXIT_OK
    args.layered = layered
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    if quiet and verbose:
        parser.error("-q/--quiet and -v/--verbose cannot be used together")
    console.configure(quiet=quiet, verbose=verbose, debug=getattr(args, "debug", False))
    return _call(args)


def _call(args: argparse.Namespace) -> int:
    """The command's own exit code, or the one its error or interruption stands for; with
    ``--json``, one document on stdout whichever way it ended."""
    from bulkscan.cli._json import emit_missing
    from bulkscan.events import watching_wire

    error: str | None = None
    fields: Mapping[str, object] = {}
    next_step: Next | None = None
    try:
        with watching_wire(console.exchange) if console.level.debug else contextlib.nullcontext():
            code: int = args.func(args)
    except Refused as refused:
        console.err(str(refused), kind="error")
        code, error, fields = refused.code, refused.error, refused.fields
        next_step = refused.next_step
    except BulkscanError as exc:  # UsageError included
        console.err(_("bulkscan: error: {message}").format(message=exc), kind="error")
        code, error = EXIT_INPUT, str(exc)
    except KeyboardInterrupt:
        _settled()
        console.err(_("bulkscan: interrupted"), kind="error")
        code, error = EXIT_STOPPED, "interrupted"
    except BrokenPipeError:
        # the reader went away (e.g. `bulkscan plan --json | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    _settled()
    emit_missing(args, code, error, fields, next_step=next_step)
    return code
