"""Settings typed once: ``bulkscan.toml``, environment variables, and which one wins.

Precedence, highest first: a command-line flag, an environment variable, the config file, the
built-in default.  The config files are read in this order, a later one overriding an earlier
one key by key:

1. the user's file, ``$XDG_CONFIG_HOME/bulkscan/config.toml`` (``~/.config/...``);
2. ``bulkscan.toml`` in the working directory;

or only the file named by ``--config FILE`` / ``$BULKSCAN_CONFIG``.  Top-level keys apply to
every command; a ``[profile.NAME]`` table overrides them when ``--config-profile NAME`` (or
``$BULKSCAN_CONFIG_PROFILE``) selects it.  Credentials are never read from a config file: they
stay in the environment or a token file (``token_file`` may name one).

The layered values become the parsers' defaults, so a flag typed on the command line always
wins and every command sees one namespace.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.config import (
    DispatchSettings,
    check_project_id,
    check_timezone,
    parse_quota_windows,
    parse_rate,
)
from bulkscan.errors import UsageError
from bulkscan.i18n import N_, _, parse_language, unknown_language

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "KEYS",
    "Key",
    "Layered",
    "Setting",
    "check_flag",
    "check_flags",
    "config_files",
    "config_places",
    "load",
]

CONFIG_ENV = "BULKSCAN_CONFIG"
PROFILE_ENV = "BULKSCAN_CONFIG_PROFILE"
LOCAL_NAME = "bulkscan.toml"

_SECRET_WORDS = ("ak", "sk", "access_key", "secret", "token", "password", "security_token")


def _anything(_value: Any) -> None:
    """The rule of a key any value of its kind keeps."""


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: its name in the file, the option it feeds, its type, the rule its value
    keeps and its variables.

    ``check`` is the one rule of the value, whichever way it is given: ``value`` applies it to
    a file's key, an environment variable or a flag (``check_flags``), naming where the value
    came from."""

    name: str
    dest: str  # the argparse destination it feeds
    kind: Callable[[object, str], object]  # (raw value, where) -> value for the namespace
    env: tuple[str, ...] = ()
    help: str = ""
    check: Callable[[Any], None] = _anything  # UsageError saying what is wrong, naming no place

    def value(self, raw: object, where: str) -> object:
        """``raw`` given at ``where`` (``FILE, key 'K'``, ``$VAR``) read and checked;
        UsageError naming ``where``."""
        value = self.kind(raw, where)
        try:
            self.check(value)
        except UsageError as exc:
            raise UsageError(_("{where}: {message}").format(where=where, message=exc)) from None
        return value

    @property
    def flag(self) -> str:
        """The command-line option it feeds (``--task-budget``)."""
        return "--" + self.dest.replace("_", "-")


@dataclass(frozen=True, slots=True)
class Setting:
    """A value in force and where it came from (e.g. ``env HUAWEICLOUD_SDK_REGION``)."""

    key: str
    value: object
    source: str


@dataclass(frozen=True, slots=True)
class Layered:
    """The settings taken from the environment and the config files (defaults not included)."""

    settings: tuple[Setting, ...]
    files: tuple[Path, ...]  # the config files read, in order
    profile: str | None
    places: tuple[Path, ...] = ()  # every place a config file was looked for, in order

    def defaults(self) -> dict[str, object]:
        """``{argparse dest: value}`` for every setting given outside the command line."""
        by_name = {k.name: k for k in KEYS}
        return {by_name[s.key].dest: s.value for s in self.settings}


# --- value kinds ---------------------------------------------------------------------------------


def _expected(where: str, message: str, value: object) -> UsageError:
    """``where``: expected ..., got ``value`` (``message`` says what was expected)."""
    return UsageError(_(message).format(where=where, value=_shown(value)))


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _expected(where, N_("{where}: expected a non-empty text, got {value}"), value)
    return value.strip()


def _whole(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise _expected(where, N_("{where}: expected a whole number, got {value}"), value)
    return value


_SECONDS = N_("{where}: expected a number of seconds, got {value}")


def _seconds(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise _expected(where, _SECONDS, value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _expected(where, _SECONDS, value) from None


def _rate(value: object, where: str) -> str:
    text = f"{value}/s" if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        raise _expected(where, N_("{where}: expected a rate such as 5/s or 300/min, got {value}"),
                        value)  # fmt: skip
    return text


def _endpoints(value: object, where: str) -> list[str]:
    if not isinstance(value, dict):
        raise UsageError(
            _(
                "{where}: expected a table of region = URL, e.g. "
                'endpoints = {{ cn-north-4 = "https://..." }}'
            ).format(where=where)
        )
    return [f"{region}={_text(url, f'{where}.{region}')}" for region, url in value.items()]


def _language(value: object, where: str) -> str:
    text = _text(value, where)
    language = parse_language(text)
    if language is None:
        raise UsageError(unknown_language(text, where))
    return language


# --- the rules values keep -----------------------------------------------------------------------


def _dispatch(field: str, parse: Callable[[Any], object] | None = None) -> Callable[[Any], None]:
    """The rule of a pace or retry knob: the bounds ``DispatchSettings`` keeps for ``field``
    (the one place they are written), applied to the value alone (``parse`` first, as the
    settings take it: ``'10/s'`` → 10.0)."""

    def check(value: Any) -> None:
        knob: dict[str, Any] = {field: parse(value) if parse else value}
        DispatchSettings(**knob)

    return check


def check_flags(args: argparse.Namespace, names: Iterable[str]) -> None:
    """The rule of each key in ``names`` applied to the value its option left in ``args``,
    a refusal naming the flag (``--concurrency: concurrency must be between 1 and 64, not
    0``).  A value from a config file or a variable was checked, naming them, when it was
    read: one refused here was typed."""
    for name in names:
        key = _BY_NAME[name]
        value = getattr(args, key.dest, None)
        if value not in (None, ""):  # an empty --project-id: none given
            key.value(value, key.flag)


def check_flag(name: str, value: object, flag: str) -> None:
    """The rule of key ``name`` applied to ``value`` typed with ``flag``, an option of another
    name that sets the same thing (``--project`` for ``project_id``); UsageError naming it."""
    _BY_NAME[name].value(value, flag)


KEYS: tuple[Key, ...] = (
    Key("region", "region", _text, ("BULKSCAN_REGION", "HUAWEICLOUD_SDK_REGION"),
        "region for rows that leave region blank"),
    Key("project_id", "project_id", _text, ("HUAWEICLOUD_SDK_PROJECT_ID",),
        "project for rows that leave project_id blank", check_project_id),
    Key("endpoint", "endpoint", _text, (), "one endpoint for every region"),
    Key("endpoints", "endpoint_for", _endpoints, (), "endpoint per region: a table region = URL"),
    Key("rate", "rate", _rate, (), "most requests per second or minute (5/s, 300/min)",
        _dispatch("rate_per_s", parse_rate)),
    Key("concurrency", "concurrency", _whole, (), "most requests in flight",
        _dispatch("concurrency")),
    Key("attempts", "attempts", _whole, (), "most attempts per task", _dispatch("max_attempts")),
    Key("connect_timeout", "connect_timeout", _seconds, (), "seconds",
        _dispatch("connect_timeout_s")),
    Key("read_timeout", "read_timeout", _seconds, (), "seconds", _dispatch("read_timeout_s")),
    Key("task_budget", "task_budget", _seconds, (), "most seconds spent on one task",
        _dispatch("max_task_seconds")),
    Key("quota_windows", "quota_windows", _text, (),
        "clock-aligned windows an unstated quota may be counted in (1min,1h; none)",
        _dispatch("quota_windows_s", parse_quota_windows)),
    Key("settle", "settle", _seconds, (), "seconds of lookups after an ambiguous answer",
        _dispatch("settle_s")),
    Key("reports_dir", "reports_dir", _text, (), "parent of run directories and audits"),
    Key("timezone", "timezone", _text, (), "IANA zone of start times written without offset",
        check_timezone),
    Key("token_file", "token_file", _text, (), "file holding an IAM token"),
    Key("ca_bundle", "ca_bundle", _text, (), "extra CA certificates (PEM) to trust"),
    Key("language", "lang", _language, ("BULKSCAN_LANG",),
        "language of messages, help and workbook headers: en or zh (default: from LANG)"),
)  # fmt: skip
_BY_NAME = {k.name: k for k in KEYS}


# --- loading -------------------------------------------------------------------------------------


def config_places(env: Mapping[str, str], cwd: Path, *, explicit: str | None = None) -> list[Path]:
    """Every place a config file is looked for, lowest precedence first, there or not: the
    file ``--config`` or ``$BULKSCAN_CONFIG`` names, else the user's and the working
    directory's."""
    named = explicit or env.get(CONFIG_ENV)
    if named:
        return [Path(named).expanduser()]
    home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [home / "bulkscan" / "config.toml", cwd / LOCAL_NAME]


def config_files(env: Mapping[str, str], cwd: Path, *, explicit: str | None = None) -> list[Path]:
    """The config files to read, lowest precedence first (only those that exist; a file
    named by ``--config`` or ``$BULKSCAN_CONFIG`` must)."""
    places = config_places(env, cwd, explicit=explicit)
    if (explicit or env.get(CONFIG_ENV)) and not places[0].is_file():
        source = "--config" if explicit else f"${CONFIG_ENV}"
        raise UsageError(
            _("{path}: no such config file (named by {source})").format(
                path=places[0], source=source
            )
        )
    return [p for p in places if p.is_file()]


def load(
    env: Mapping[str, str] = os.environ,
    *,
    cwd: Path | None = None,
    explicit: str | None = None,
    profile: str | None = None,
) -> Layered:
    """Read the config files and the environment; UsageError naming file and key on nonsense."""
    cwd = cwd or Path.cwd()
    files = config_files(env, cwd, explicit=explicit)
    chosen = profile or env.get(PROFILE_ENV) or None
    found: dict[str, Setting] = {}
    profiles_seen: set[str] = set()
    for path in files:
        document = _read(path)
        profiles = _profiles(document, path)
        profiles_seen.update(profiles)
        found.update(_settings(document, str(path)))
        checked = {name: _settings(t, f"{path} [profile.{name}]") for name, t in profiles.items()}
        if chosen and chosen in checked:  # every profile is checked, the chosen one applies
            found.update(checked[chosen])
    if chosen and chosen not in profiles_seen:
        where = ", ".join(str(p) for p in files) or _("no config file")
        known = ", ".join(sorted(profiles_seen)) or _("none")
        raise UsageError(
            _("config profile '{profile}' is not defined ({where}; profiles: {known})").format(
                profile=chosen, where=where, known=known
            )
        )
    for key in KEYS:
        for var in key.env:
            raw = env.get(var, "").strip()
            if raw:
                value = key.value(raw, f"${var}")
                found[key.name] = Setting(key.name, value, f"env {var}")
                break
    ordered = tuple(found[k.name] for k in KEYS if k.name in found)
    places = tuple(config_places(env, cwd, explicit=explicit))
    return Layered(settings=ordered, files=tuple(files), profile=chosen, places=places)


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            _("{path}: not valid TOML: {error}").format(path=path, error=exc)
        ) from None
    except OSError as exc:
        raise UsageError(
            _("{path}: cannot read the config file: {error}").format(path=path, error=exc.strerror)
        ) from None


def _profiles(document: Mapping[str, object], path: Path) -> dict[str, dict[str, object]]:
    tables = document.get("profile", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise UsageError(
            _("{path}: 'profile' must hold tables, e.g. [profile.prod]").format(path=path)
        )
    return tables


def _settings(table: Mapping[str, object], where: str) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for name, raw in table.items():
        if name == "profile":
            continue
        key = _BY_NAME.get(name)
        if key is None:
            raise UsageError(_("{where}: {message}").format(where=where, message=_unknown(name)))
        place = _("{where}, key '{key}'").format(where=where, key=name)
        out[name] = Setting(name, key.value(raw, place), where)
    return out


def _unknown(name: str) -> str:
    lowered = name.lower().replace("-", "_")
    secret = lowered in _SECRET_WORDS or any(w in lowered for w in ("secret", "token", "passw"))
    if secret and lowered != "token_file":
        return _(
            "key '{key}': credentials are never read from a config file; use "
            "HUAWEICLOUD_SDK_AK/_SK (and _SECURITY_TOKEN), BULKSCAN_AUTH_TOKEN, or "
            "token_file = PATH"
        ).format(key=name)
    close = get_close_matches(lowered, list(_BY_NAME), n=1)
    known = ", ".join(_BY_NAME)
    if close:
        return _("unknown key '{key}' (did you mean '{close}'?); known keys: {known}").format(
            key=name, close=close[0], known=known
        )
    return _("unknown key '{key}'; known keys: {known}").format(key=name, known=known)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
