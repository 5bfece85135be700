"""Settings typed once: the config file, the environment, and which one wins."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from bulkscan.cli import WORKFLOW, build_parser, main
from bulkscan.cli._settings import KEYS, load
from bulkscan.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _values(tmp_path: Path, env: dict[str, str], **kw: object) -> dict[str, tuple[object, str]]:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "home"), **env}
    layered = load(env, cwd=tmp_path, **kw)  # type: ignore[arg-type]
    return {s.key: (s.value, s.source) for s in layered.settings}


def test_the_working_directory_file_overrides_the_users_key_by_key(tmp_path: Path) -> None:
    user = _write(tmp_path / "home" / "bulkscan" / "config.toml", 'region = "a"\nrate = "9/s"\n')
    local = _write(tmp_path / "bulkscan.toml", 'region = "b"\n')
    got = _values(tmp_path, {})
    assert got["region"] == ("b", str(local))
    assert got["rate"] == ("9/s", str(user))


def test_environment_beats_the_file_and_a_profile_beats_the_top_level(tmp_path: Path) -> None:
    _write(tmp_path / "bulkscan.toml", 'rate = 3\nregion = "x"\n[profile.fast]\nrate = "50/s"\n')
    got = _values(tmp_path, {"HUAWEICLOUD_SDK_REGION": "cn-east-3"}, profile="fast")
    assert got["rate"][0] == "50/s" and got["rate"][1].endswith("[profile.fast]")
    assert got["region"] == ("cn-east-3", "env HUAWEICLOUD_SDK_REGION")
    plain = _values(tmp_path, {"BULKSCAN_REGION": "r1", "HUAWEICLOUD_SDK_REGION": "r2"})
    assert plain["rate"][0] == "3/s"  # a bare number is per second
    assert plain["region"] == ("r1", "env BULKSCAN_REGION")  # bulkscan's own variable first


def test_an_explicit_file_is_the_only_one_read(tmp_path: Path) -> None:
    _write(tmp_path / "bulkscan.toml", 'region = "local"\n')
    other = _write(tmp_path / "elsewhere.toml", "concurrency = 4\n")
    got = _values(tmp_path, {"BULKSCAN_CONFIG": str(other)})
    assert got == {"concurrency": (4, str(other))}
    with pytest.raises(UsageError, match=r"missing\.toml: no such config file \(named by --config"):
        _values(tmp_path, {}, explicit=str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('regoin = "x"\n', r"unknown key 'regoin' \(did you mean 'region'\?\)"),
        ('sk = "s3cr3t-value"\n', r"key 'sk': credentials are never read from a config file"),
        ('[profile.p]\naccess_key = "AKXX"\n', r"\[profile\.p\]: key 'access_key': credentials"),
        ('concurrency = "eight"\n', r"key 'concurrency': expected a whole number, got 'eight'"),
        ('rate = "fast"\n', r"key 'rate': rate 'fast' is not of the form"),
        ('timezone = "Mars/Base"\n', r"key 'timezone': timezone 'Mars/Base' is not a known IANA"),
        ('endpoints = "http://x"\n', r"key 'endpoints': expected a table of region = URL"),
        ('quota_windows = "1 fortnight"\n', r"key 'quota_windows': quota window '1 fortnight'"),
        ("rate = \n", r"bulkscan\.toml: not valid TOML: .*line 1"),
        # out of the bounds the settings keep: refused as read, naming the file and the key
        ("concurrency = 0\n", r"key 'concurrency': concurrency must be between 1 and 64, not 0"),
        ("concurrency = 1000\n", r"key 'concurrency': concurrency must be between 1 and 64"),
        ("attempts = 0\n", r"key 'attempts': attempts must be between 1 and 20, not 0"),
        ("settle = -5\n", r"key 'settle': settle window \(s\) must be between 0 and 600"),
        ("read_timeout = 0\n", r"key 'read_timeout': read timeout \(s\) must be between"),
        ("connect_timeout = 0\n", r"key 'connect_timeout': connect timeout \(s\) must be"),
        ("task_budget = -1\n", r"key 'task_budget': task time budget \(s\) must be between"),
        ('quota_windows = "0s"\n', r"key 'quota_windows': quota window \(s\) must be between"),
        ('quota_windows = "1s,2s,3s,4s,5s"\n', r"key 'quota_windows': at most 4 quota windows"),
        ('project_id = "xyz"\n', r"key 'project_id': project_id 'xyz' is not 32 lowercase hex"),
        ("[profile.p]\nsettle = 601\n", r"\[profile\.p\], key 'settle': settle window"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path / "bulkscan.toml", text)
    with pytest.raises(UsageError, match=message) as caught:
        _values(tmp_path, {})
    assert "s3cr3t" not in str(caught.value) and "AKXX" not in str(caught.value)


def test_a_bad_variable_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^\$HUAWEICLOUD_SDK_PROJECT_ID: project_id 'xyz' is"):
        _values(tmp_path, {"HUAWEICLOUD_SDK_PROJECT_ID": "xyz"})


def test_an_unknown_profile_names_the_ones_there_are(tmp_path: Path) -> None:
    _write(tmp_path / "bulkscan.toml", "[profile.prod]\nrate = 1\n[profile.test]\nrate = 2\n")
    with pytest.raises(UsageError, match=r"config profile 'pord' is not defined .*prod, test"):
        _values(tmp_path, {"BULKSCAN_CONFIG_PROFILE": "pord"})


def test_every_key_feeds_an_option_that_exists() -> None:
    parser = build_parser()
    dests = set()
    for command in next(a for a in parser._actions if a.dest == "command").choices.values():  # type: ignore[attr-defined]
        dests |= {a.dest for a in command._actions}
    assert {k.dest for k in KEYS} <= dests


def test_commands_are_listed_in_workflow_order() -> None:
    parser = build_parser()
    listed = list(next(a for a in parser._actions if a.dest == "command").choices)  # type: ignore[attr-defined]
    assert listed == [name for name in WORKFLOW if name in listed]
    assert set(listed) == set(WORKFLOW)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_shows_each_value_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bulkscan.toml", 'rate = "20/min"\n[endpoints]\ncn-south-1 = "http://s"\n')
    monkeypatch.setenv("BULKSCAN_REGION", "cn-north-4")
    code, out, _ = _cli(capsys, "config", "--json")
    assert code == 0
    doc = json.loads(out)
    rows = {r["key"]: (r["value"], r["source"]) for r in doc["settings"]}
    assert rows["rate"] == ("20/min", str(tmp_path / "bulkscan.toml"))
    assert rows["region"] == ("cn-north-4", "env BULKSCAN_REGION")
    assert rows["endpoints"][0] == ["cn-south-1=http://s"]
    assert rows["concurrency"] == (8, "default")
    code, out, _ = _cli(capsys, "config")
    assert "rate" in out and "20/min" in out and "env BULKSCAN_REGION" in out


def test_a_flag_beats_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bulkscan.toml", 'rate = "7/s"\nregion = "from-file"\nconcurrency = 3\n')
    monkeypatch.setenv("HUAWEICLOUD_SDK_REGION", "from-env")
    from bulkscan.cli import _settings

    parser = build_parser(_settings.load().defaults())
    args = parser.parse_args(["run", "x.xlsx", "--rate", "1/s"])
    assert (args.rate, args.region, args.concurrency) == ("1/s", "from-env", 3)


def test_a_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bulkscan.toml", "concurrency = -\n")
    code, out, err = _cli(capsys, "plan", "x.xlsx")
    assert code == 2 and out == ""
    assert err.startswith("bulkscan: error: ") and "bulkscan.toml: not valid TOML" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bare_command_prints_help_and_v_prints_the_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _cli(capsys)
    assert code == 0 and "usage: bulkscan" in out and "template" in out
    with pytest.raises(SystemExit) as done:
        main(["-V"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("bulkscan ")
