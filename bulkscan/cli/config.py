"""``bulkscan config``: the settings in force and where each came from."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_OK
from bulkscan.cli._common import local_timezone
from bulkscan.cli._console import console
from bulkscan.cli._json import emit
from bulkscan.cli._settings import KEYS, LOCAL_NAME, Layered
from bulkscan.i18n import N_, _, current_language

if TYPE_CHECKING:
    from collections.abc import Sequence

DESCRIPTION = N_(
    "Print every setting that can be typed once, its value in force and where it came from: "
    "an environment variable, a config file ($XDG_CONFIG_HOME/bulkscan/config.toml, "
    "~/.config/bulkscan/config.toml when XDG_CONFIG_HOME is not set, then ./{local}; "
    "or only the file --config FILE or $BULKSCAN_CONFIG names) or the built-in default; the "
    "first line names every place a config file was looked for. A flag typed on the command "
    "line wins over all of them. Credentials are never read from a config file."
)

_EXAMPLE = N_("example {file}:")
_EXAMPLE_FILE = """\
  region = "cn-north-4"
  rate = "10/s"
  reports_dir = "onboarding/reports"
  timezone = "Asia/Shanghai"

  [endpoints]
  cn-south-1 = "https://sdg.cn-south-1.myhuaweicloud.com"

  [profile.staging]
  endpoint = "http://127.0.0.1:8080"
  rate = "50/s"
"""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "config",
        help="show the settings in force and where each came from (bulkscan.toml, environment)",
        description=_(DESCRIPTION).format(local=LOCAL_NAME),
        epilog=_(_EXAMPLE).format(file=LOCAL_NAME) + "\n" + _EXAMPLE_FILE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    layered: Layered = args.layered
    rows = _rows(layered, _builtin_defaults())
    if args.json:
        settings = [{"key": k, "value": v, "source": s} for k, v, s, _shown_as in rows]
        fields = {
            "files": [str(p) for p in layered.files],
            "looked_for": [str(p) for p in layered.places],
            "profile": layered.profile,
        }
        return emit(args, EXIT_OK, fields | {"settings": settings})
    console.out(_files_line(layered))
    if layered.profile:
        console.out(_("config profile: {profile}").format(profile=layered.profile))
    width = max(len(k.name) for k in KEYS)
    for key, value, _source, shown_source in rows:
        console.out(f"  {key:<{width}}  {_shown(value):<40}  {shown_source}")
    return EXIT_OK


def _files_line(layered: Layered) -> str:
    """The config files read, and every other place one was looked for."""
    absent = ", ".join(str(p) for p in layered.places if p not in layered.files)
    if not layered.files:
        return _("config files: none (looked for {places})").format(places=absent)
    files = ", ".join(str(p) for p in layered.files)
    if not absent:
        return _("config files: {files}").format(files=files)
    return _("config files: {files} (none at {places})").format(files=files, places=absent)


def _builtin_defaults() -> dict[str, object]:
    """Each option's default as shipped, read from the parsers themselves."""
    from bulkscan.cli import build_parser

    parser = build_parser()
    commands = next(
        a
        for a in parser._actions
        if isinstance(a, argparse._SubParsersAction)  # no public API
    )
    out: dict[str, object] = {}
    for command in commands.choices.values():
        for action in command._actions:
            if action.dest not in out and action.default not in (None, argparse.SUPPRESS):
                out[action.dest] = action.default
    return out


_Row = tuple[str, object, str, str]  # key, value, source (as --json says it), source shown
_ZONE_DEFAULT = N_("default: this machine's zone")
_LANGUAGE_DEFAULT = N_("default: --lang, else the locale")


def _rows(layered: Layered, builtin: dict[str, object]) -> list[_Row]:
    """Each key, its value in force and where it came from: as ``--json`` says it (English,
    for scripts), and as a person reads it (in the current language)."""
    given = {s.key: s for s in layered.settings}
    rows: list[_Row] = []
    for key in KEYS:
        if key.name in given:
            setting = given[key.name]
            shown = next(
                (_("env {variable}").format(variable=v) for v in key.env
                 if setting.source == f"env {v}"),
                setting.source,  # a config file
            )  # fmt: skip
            rows.append((key.name, setting.value, setting.source, shown))
            continue
        default = builtin.get(key.dest)
        if key.name == "timezone":  # read at run time from $TZ or /etc/localtime
            rows.append((key.name, local_timezone(), _ZONE_DEFAULT, _(_ZONE_DEFAULT)))
            continue
        if key.name == "language":  # --lang, else the locale (LC_ALL, LC_MESSAGES, LANG)
            rows.append((key.name, current_language(), _LANGUAGE_DEFAULT, _(_LANGUAGE_DEFAULT)))
            continue
        value = default if default != [] else None
        rows.append((key.name, value, _unset(key.env), _unset_shown(key.env)))
    return rows


def _unset(env: Sequence[str]) -> str:
    return "default" + (f" (set by {' or '.join(env)})" if env else "")


def _unset_shown(env: Sequence[str]) -> str:
    """``_unset`` as a person reads it."""
    if not env:
        return _("default")
    return _("default (set by {variables})").format(variables=_(" or ").join(env))


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
