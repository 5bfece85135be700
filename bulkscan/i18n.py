"""The language of what a person reads: messages, prompts, help and workbook headers.

Standard gettext: the domain ``bulkscan``, its catalogs under ``bulkscan/locale`` (the
Chinese one in ``zh_CN/LC_MESSAGES/bulkscan.po`` and its compiled ``.mo``, shipped in the
wheel).  English is the source language and needs no catalog.

The command line calls ``set_language`` once, before it builds its parsers; everything else
calls ``_`` (or ``ngettext``) when it builds a message, so a message is in the language chosen
at that moment.  Text defined at import time (column headers, help tables) is marked with
``N_`` and translated where it is used.  What scripts read stays English whatever the
language: JSON keys and values, sheet names, outcome codes, option names.
"""

from __future__ import annotations

import gettext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "_",
    "choose_language",
    "current_language",
    "in_every_language",
    "is_yes",
    "ngettext",
    "parse_language",
    "pgettext",
    "set_language",
    "unknown_language",
    "yes_no",
]

DOMAIN = "bulkscan"
LANGUAGES = ("en", "zh")
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
_CATALOGS = {"zh": "zh_CN"}  # language → the catalog's directory under LOCALE_DIR
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX order: the first set one decides

_state: dict[str, object] = {"language": "en", "catalog": gettext.NullTranslations()}


def _catalog() -> gettext.NullTranslations:
    found = _state["catalog"]
    assert isinstance(found, gettext.NullTranslations)
    return found


def _(message: str) -> str:
    """``message`` in the current language (itself when there is no translation)."""
    return _catalog().gettext(message)


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, as meant in ``context``: one English word that
    two places translate apart (the rate reason "throttled", a results column's count)."""
    return _catalog().pgettext(context, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n`` in the current language."""
    return _catalog().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for translation where it is defined; ``_`` translates it where used."""
    return message


def current_language() -> str:
    """``"en"`` or ``"zh"``."""
    return str(_state["language"])


def parse_language(value: str) -> str | None:
    """``"zh"``, ``"zh_CN"``, ``"zh-CN.UTF-8"``, ``"中文"`` → ``"zh"``; None when unknown."""
    text = value.strip().lower().replace("-", "_")
    if text in {"zh", "中文", "chinese"} or text.startswith("zh_"):
        return "zh"
    if text in {"en", "english", "c", "posix"} or text.startswith("en_"):
        return "en"
    return None


def unknown_language(value: str, where: str) -> str:
    """The message for a language bulkscan does not speak."""
    return _("{where}: '{value}' is not a language bulkscan speaks (use en or zh)").format(
        where=where, value=value
    )


def choose_language(flag: str | None, configured: str | None, environ: Mapping[str, str]) -> str:
    """The language in force: ``--lang``, then ``BULKSCAN_LANG`` or the config file's
    ``language`` (``configured``, already layered and checked), then the locale (``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``): Chinese when it starts with ``zh``, else English.  An unknown
    ``flag`` or ``configured`` value raises ValueError with the message to show."""
    for given, where in ((flag, "--lang"), (configured, "language")):
        if given:
            language = parse_language(given)
            if language is None:
                raise ValueError(unknown_language(given, where))
            return language
    for variable in _LOCALE_VARIABLES:
        value = environ.get(variable, "").strip()
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def set_language(language: str) -> None:
    """Use ``language`` (``"en"`` or ``"zh"``) from now on, argparse's own words included."""
    if language not in LANGUAGES:
        raise ValueError(unknown_language(language, "language"))
    catalog: gettext.NullTranslations = gettext.NullTranslations()
    if language in _CATALOGS:
        catalog = gettext.translation(DOMAIN, LOCALE_DIR, languages=[_CATALOGS[language]])
    _state["language"] = language
    _state["catalog"] = catalog
    _bind_argparse()


_YES = frozenset({"y", "yes", "是", "是的", "好", "确认", "确定"})


def is_yes(answer: str) -> bool:
    """Whether a typed answer to a yes/no question means yes: y or yes, and in Chinese 是
    (是的, 好, 确认, 确定) too, whatever the language, so either keyboard layout works."""
    return answer.strip().lower() in _YES


def yes_no() -> str:
    """The hint after a yes/no question whose default is no (``[y/N]`` in English)."""
    return _("[y/N]")


def in_every_language(message: str) -> frozenset[str]:
    """``message`` and each of its translations: a header read back from a workbook written
    in any language is known by its English name through this."""
    found = {message}
    for directory in _CATALOGS.values():
        catalog = gettext.translation(DOMAIN, LOCALE_DIR, languages=[directory], fallback=True)
        found.add(catalog.gettext(message))
    return frozenset(found)


def _bind_argparse() -> None:
    """argparse asks ``gettext.gettext`` (the default domain) for "usage:", "error:" ...;
    our catalog carries those words, so argparse is pointed at it."""
    import argparse

    argparse._ = _  # type: ignore[attr-defined]  # argparse's module-level gettext names
    argparse.ngettext = ngettext  # type: ignore[attr-defined]
