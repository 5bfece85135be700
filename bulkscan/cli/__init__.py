"""The command line: the only place that parses options, prints and chooses exit codes.

Each command lives in its own module with ``register(subparsers)``, which adds a parser whose
``func(args) -> int`` does the work through ``bulkscan.runner`` and renders the result.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from bulkscan import __version__
from bulkscan.errors import BulkscanError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "EXIT_OK", "EXIT_STOPPED", "main"]

EXIT_OK = 0  # everything done (or only warnings)
EXIT_FAILED = 1  # some tasks failed / something is not covered
EXIT_INPUT = 2  # bad input or usage
EXIT_STOPPED = 3  # stopped by a fatal error or interrupted


def _command_modules() -> list[str]:
    """Every public module of this package is a command (``run.py`` → ``bulkscan run``)."""
    import pkgutil

    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkscan",
        description="Onboard many databases into Huawei Cloud DSC metadata scan tasks at once.",
    )
    parser.add_argument("--version", action="version", version=f"bulkscan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import importlib

    for name in _command_modules():
        importlib.import_module(f"bulkscan.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"bulkscan: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BulkscanError as exc:
        print(f"bulkscan: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("bulkscan: interrupted", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:
        # the reader went away (e.g. `bulkscan plan --json | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return code
