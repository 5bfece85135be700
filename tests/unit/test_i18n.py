"""Chinese: how the language is chosen, and that the shipped catalog is whole and current."""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bulkscan.cli import build_parser, main
from bulkscan.cli._settings import load
from bulkscan.i18n import (
    LOCALE_DIR,
    _,
    choose_language,
    current_language,
    in_every_language,
    set_language,
)

ROOT = Path(__file__).resolve().parents[2]
PO = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "bulkscan.po"
sys.path.insert(0, str(ROOT / "scripts"))
import update_translations  # noqa: E402 (a script, not a package)


@pytest.mark.parametrize(
    ("flag", "configured", "environ", "expected"),
    [
        (None, None, {}, "en"),
        (None, None, {"LANG": "zh_CN.UTF-8"}, "zh"),
        (None, None, {"LANG": "zh_TW.UTF-8"}, "zh"),
        (None, None, {"LANG": "en_US.UTF-8"}, "en"),
        (None, None, {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # POSIX: LC_ALL wins
        (None, None, {"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
        (None, "zh", {"LANG": "en_US.UTF-8"}, "zh"),  # config file / BULKSCAN_LANG
        ("en", "zh", {"LANG": "zh_CN.UTF-8"}, "en"),  # the flag wins over everything
        ("zh", None, {}, "zh"),
        ("zh_CN", None, {}, "zh"),
    ],
)
def test_the_language_is_chosen_flag_then_setting_then_locale(
    flag: str | None, configured: str | None, environ: dict[str, str], expected: str
) -> None:
    assert choose_language(flag, configured, environ) == expected


def test_an_unknown_language_is_refused_naming_where_it_came_from() -> None:
    with pytest.raises(ValueError, match=r"--lang: 'fr' is not a language"):
        choose_language("fr", None, {})


def test_set_language_switches_messages_and_back() -> None:
    message = "bulkscan: error: {message}"
    set_language("zh")
    assert current_language() == "zh"
    assert _(message) == "bulkscan：错误：{message}"
    set_language("en")
    assert _(message) == message
    assert in_every_language(message) == {message, "bulkscan：错误：{message}"}


def test_one_english_word_translated_apart_by_its_context() -> None:
    """The rate reason "throttled" and the results column "throttled" (a count) are one
    English word and two Chinese ones."""
    from bulkscan.i18n import pgettext
    from bulkscan.run.ratelimit import AdaptiveRate

    set_language("zh")
    try:
        assert (pgettext("rate change", "throttled"), _("throttled")) == ("被限流", "被限流次数")
        said: list[str] = []
        limiter = AdaptiveRate(10.0, on_change=lambda _old, _new, why: said.append(why))
        limiter.on_throttle()
    finally:
        set_language("en")
    assert said == ["被限流"], said
    assert pgettext("rate change", "throttled") == "throttled"


def test_argparse_own_words_follow_the_language(capsys: pytest.CaptureFixture[str]) -> None:
    set_language("zh")
    help_text = build_parser().format_help()
    assert help_text.startswith("用法：bulkscan")
    assert "选项" in help_text
    set_language("en")
    assert build_parser().format_help().startswith("usage: bulkscan")


@pytest.mark.parametrize("argv", [["--lang", "zh", "validate"], ["validate", "--lang", "zh"]])
def test_lang_is_read_before_or_after_the_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "缺少以下必需参数：FILE" in capsys.readouterr().err


def test_lang_zh_from_the_locale_and_english_by_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.xlsx")
    assert main(["validate", missing]) == 2
    assert "bulkscan: error:" in capsys.readouterr().err
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert main(["validate", missing]) == 2
    assert "bulkscan：错误：" in capsys.readouterr().err


def test_the_config_file_and_bulkscan_lang_set_the_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bulkscan.toml").write_text('language = "zh"\n', encoding="utf-8")
    layered = load({}, cwd=tmp_path)
    assert [(s.key, s.value) for s in layered.settings] == [("language", "zh")]
    got = load({"BULKSCAN_LANG": "en"}, cwd=tmp_path)
    assert [(s.key, s.value, s.source) for s in got.settings] == [
        ("language", "en", "env BULKSCAN_LANG")
    ]
    monkeypatch.chdir(tmp_path)
    assert main(["config"]) == 0
    shown = capsys.readouterr().out
    assert re.search(r"language\s+zh\s+.*bulkscan\.toml", shown)
    (tmp_path / "bulkscan.toml").write_text('language = "klingon"\n', encoding="utf-8")
    assert main(["config"]) == 2
    assert "key 'language': 'klingon' is not a language bulkscan speaks" in (
        capsys.readouterr().err
    )


# --- the catalog ------------------------------------------------------------------------------


def _catalog() -> list[tuple[str, str, bool]]:
    """(msgid, msgstr, fuzzy) of every message of the Chinese catalog (plural: first forms)."""
    with PO.open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    out = []
    for message in catalog:
        if not message.id:
            continue
        msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
        text = message.string[0] if isinstance(message.string, tuple | list) else message.string
        out.append((msgid, text or "", message.fuzzy))
    return out


def _placeholders(text: str) -> list[str]:
    """``{name}`` fields (str.format) and ``%(name)s`` / ``%s`` (argparse's own messages)."""
    braces = sorted(f for _, f, _, _ in string.Formatter().parse(text) if f is not None)
    percents = sorted(re.findall(r"%(?:\(\w+\))?[sdr]", text))
    return braces + percents


def test_every_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    entries = _catalog()
    assert len(entries) > 40
    untranslated = [m for m, s, _ in entries if not s.strip()]
    fuzzy = [m for m, _, f in entries if f]
    differing = [m for m, s, _ in entries if s and _placeholders(m) != _placeholders(s)]
    assert (untranslated, fuzzy, differing) == ([], [], [])


def test_every_marked_string_of_the_source_is_in_the_catalog_and_the_mo_is_compiled() -> None:
    """Extraction of today's source, merged into the catalog, changes nothing: no message
    is missing or left over, and the shipped .mo is the compilation of the .po."""
    assert update_translations.main(["--check"]) == 0


def test_the_checker_sees_a_new_message() -> None:
    pot = update_translations.template()
    pot.add("a message nobody translated yet")
    catalog = update_translations.merged("zh_CN", pot)
    assert not catalog["a message nobody translated yet"].string


@pytest.mark.parametrize(
    ("answer", "meant"),
    [("y", True), ("YES", True), (" 是 ", True), ("是的", True), ("n", False), ("否", False),
     ("", False), ("yep", False)],
)  # fmt: skip
def test_a_yes_may_be_typed_in_either_language(answer: str, meant: bool) -> None:
    from bulkscan.i18n import is_yes

    assert is_yes(answer) is meant


def _command_helps() -> dict[str, list[str]]:
    """Each command's one-line help and the help of each of its options, as built now."""
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    one_line = {c.dest: c.help or "" for c in sub._choices_actions}
    return {
        name: [one_line[name], *(a.help or "" for a in parser._actions)]
        for name, parser in sub.choices.items()
    }


def test_every_help_text_of_every_command_is_translated() -> None:
    english = _command_helps()
    set_language("zh")
    chinese = _command_helps()
    untranslated = [
        (name, text)
        for name, texts in english.items()
        for text, shown in zip(texts, chinese[name], strict=True)
        if text and text == shown and re.search(r"[a-z]{3,} [a-z]{3,}", text)
    ]
    assert untranslated == []


@pytest.mark.parametrize(
    ("typed", "meant"), [("是", True), ("y", True), ("否", False), ("", False)]
)
def test_the_confirmation_takes_a_chinese_yes(
    monkeypatch: pytest.MonkeyPatch, typed: str, meant: bool
) -> None:
    import argparse

    from bulkscan.cli._lifecycle import ask

    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or typed)
    set_language("zh")
    question = _("Delete {count} task(s)?").format(count=2)
    assert ask(argparse.Namespace(yes=False), question, []) is meant
    assert asked == ["删除 2 个任务？ [y/N，输入“是”或 y 确认] "]
