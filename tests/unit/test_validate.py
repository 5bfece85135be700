"""Validation: every value parser as a table, every issue kind with its row and column."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkscan.config import InputSettings
from bulkscan.i18n import set_language
from bulkscan.input import schema
from bulkscan.input import validate as validate_module
from bulkscan.input.validate import (
    DEFAULT_PROFILE,
    MAX_START_TIME_S,
    CellError,
    Validated,
    check_name_pattern,
    describe_default_profile,
    did_you_mean,
    parse_bool,
    parse_int,
    parse_schedule_type,
    parse_start_time,
    parse_text,
    show,
    validate,
)
from bulkscan.models import (
    InputBook,
    Instance,
    Issue,
    Profile,
    RawRow,
    RowRef,
    ScanConfig,
    Sheet,
)

FILE = "inputs/dbs.xlsx"
PROJECT = "0123456789abcdef0123456789abcdef"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
UTC_TZ = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
JAN_1_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z


# --------------------------------------------------------------------------- builders


def make_sheet(name: str, headers: dict[str, str], rows: list[dict[str, Any]]) -> Sheet:
    """``headers`` maps each header as written to its canonical column; rows use canonical keys.

    Rows are numbered from 2, as under a header row in Excel; ``None`` cells are left out.
    """
    raw = tuple(
        RawRow(RowRef(FILE, name, n), {k: v for k, v in row.items() if v is not None})
        for n, row in enumerate(rows, start=2)
    )
    return Sheet(FILE, name, tuple(headers), tuple(headers.values()), raw)


INSTANCE_HEADERS = {
    "Instance ID": "ins_id",
    "DB Type": "db_type",
    "project_id": "project_id",
    "Region": "region",
    "profile": "profile",
    "task": "task",
    "enabled": "enabled",
}


def make_book(
    rows: list[dict[str, Any]],
    *,
    headers: dict[str, str] | None = None,
    profiles: list[dict[str, Any]] | None = None,
    profile_headers: dict[str, str] | None = None,
) -> InputBook:
    instances = make_sheet("instances", headers or INSTANCE_HEADERS, rows)
    profile_sheet = None
    if profiles is not None:
        names = profile_headers or {c.name: c.name for c in schema.PROFILE_COLUMNS}
        profile_sheet = make_sheet("profiles", names, profiles)
    return InputBook(FILE, "0" * 64, instances, profile_sheet, "xlsx")


def settings(**overrides: Any) -> InputSettings:
    values: dict[str, Any] = {"project_id": PROJECT, "region": "cn-north-4"}
    values.update(overrides)
    return InputSettings(**values)


def run(rows: list[dict[str, Any]], **kwargs: Any) -> Validated:
    cfg = kwargs.pop("cfg", None) or settings()
    return validate(make_book(rows, **kwargs), cfg)


def only(issues: tuple[Issue, ...], severity: str | None = None) -> Issue:
    chosen = [i for i in issues if severity is None or i.severity == severity]
    assert len(chosen) == 1, [str(i) for i in issues]
    return chosen[0]


def row(ins_id: Any = "ins-1", db_type: Any = "MySQL", **cells: Any) -> dict[str, Any]:
    return {"ins_id": ins_id, "db_type": db_type, **cells}


# --------------------------------------------------------------------------- parse_bool


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (1.0, True),
        (0.0, False),
        *[(word, True) for word in ("TRUE", "true", "Yes", "Y", "1", "on", "ON", "t", " yes ")],
        *[(word, False) for word in ("FALSE", "false", "No", "n", "0", "off", "Off", "F", "no\t")],
    ],
)
def test_parse_bool_accepts_every_alias(value: object, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "", "yess", 2, -1, 0.5, None, date(2024, 1, 1)])
def test_parse_bool_refuses_everything_else(value: object) -> None:
    with pytest.raises(CellError, match="is not a yes/no value") as info:
        parse_bool(value)
    assert info.value.hint is not None and "TRUE or FALSE" in info.value.hint


@given(st.sampled_from(sorted(schema.BOOL_TRUE | schema.BOOL_FALSE)), st.data())
def test_parse_bool_ignores_case(word: str, data: st.DataObject) -> None:
    mixed = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert parse_bool(mixed) is (word in schema.BOOL_TRUE)


# --------------------------------------------------------------------------- parse_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), (500, 500), (50.0, 50), ("50", 50), (" 7 ", 7), ("+3", 3)],
)
def test_parse_int_accepts_whole_numbers(value: object, expected: int) -> None:
    assert parse_int(value, low=1, high=500) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ten", "is not a whole number"),
        (2.5, "is not a whole number"),
        ("50.0", "is not a whole number"),
        (True, "is not a whole number"),
        (float("nan"), "is not a whole number"),
        (0, "out of range"),
        (501, "out of range"),
        ("-1", "out of range"),
    ],
)
def test_parse_int_refuses_fractions_words_and_out_of_range(value: object, message: str) -> None:
    with pytest.raises(CellError, match=message) as info:
        parse_int(value, low=1, high=500)
    assert info.value.hint is not None and "500" in info.value.hint


# --------------------------------------------------------------------------- parse_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  ins-01  ", "ins-01"),
        (12345, "12345"),
        (12345.0, "12345"),
        (1.5, "1.5"),
        (True, "TRUE"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (date(2024, 1, 2), "2024-01-02"),
        ("数据库-1", "数据库-1"),
    ],
)
def test_parse_text_never_adds_a_spurious_fraction(value: object, expected: str) -> None:
    assert parse_text(value) == expected


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_parse_text_keeps_every_integer_exactly(number: int) -> None:
    assert parse_text(number) == str(number)


def test_show_escapes_control_characters_and_truncates() -> None:
    assert show("a\nb\x00c") == "a\\nb\\x00c"
    long = show("x" * 500)
    assert len(long) == 80 and long.endswith("…")
    assert show(3.0) == "3"


# --------------------------------------------------------------------------- parse_start_time


@pytest.mark.parametrize(
    ("value", "tz", "unit", "expected"),
    [
        (None, UTC_TZ, "s", 0),
        ("", UTC_TZ, "s", 0),
        ("   ", UTC_TZ, "ms", 0),
        (0, UTC_TZ, "s", 0),
        (JAN_1_2024, UTC_TZ, "s", JAN_1_2024),
        (JAN_1_2024, UTC_TZ, "ms", JAN_1_2024 * 1000),
        (float(JAN_1_2024), UTC_TZ, "s", JAN_1_2024),
        (str(JAN_1_2024), UTC_TZ, "s", JAN_1_2024),
        # 12 digits or more are milliseconds, converted to the wire unit
        (JAN_1_2024 * 1000 + 999, UTC_TZ, "s", JAN_1_2024),
        (JAN_1_2024 * 1000 + 999, UTC_TZ, "ms", JAN_1_2024 * 1000 + 999),
        (f"{JAN_1_2024 * 1000}", SHANGHAI, "ms", JAN_1_2024 * 1000),
        # a naive Excel date-time cell is in the configured zone
        (datetime(2024, 1, 1), UTC_TZ, "s", JAN_1_2024),
        (datetime(2024, 1, 1, 8), SHANGHAI, "s", JAN_1_2024),
        (datetime(2024, 1, 1, tzinfo=UTC), SHANGHAI, "s", JAN_1_2024),
        (date(2024, 1, 1), UTC_TZ, "s", JAN_1_2024),
        # ISO-8601 text with an offset ignores the zone; without one it uses it
        ("2024-01-01T00:00:00Z", SHANGHAI, "s", JAN_1_2024),
        ("2024-01-01T08:00:00+08:00", UTC_TZ, "s", JAN_1_2024),
        ("2023-12-31T19:00:00-05:00", SHANGHAI, "s", JAN_1_2024),
        ("2024-01-01 08:00", SHANGHAI, "s", JAN_1_2024),
        ("2024-01-01", UTC_TZ, "s", JAN_1_2024),
        ("2024-01-01T00:00:00.123Z", UTC_TZ, "ms", JAN_1_2024 * 1000 + 123),
        ("2024-01-01T00:00:00.999Z", UTC_TZ, "s", JAN_1_2024),
        # summer time is honoured: Paris is UTC+2 in July
        ("2024-07-01T12:00:00", ZoneInfo("Europe/Paris"), "s", 1_719_828_000),
        (MAX_START_TIME_S, UTC_TZ, "s", MAX_START_TIME_S),
        ("2040-01-01T00:00:00Z", UTC_TZ, "ms", 2_208_988_800_000),
    ],
)
def test_parse_start_time_forms_zones_and_units(
    value: object, tz: ZoneInfo, unit: str, expected: int
) -> None:
    assert parse_start_time(value, tz=tz, unit=unit) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow", "is not a start time"),
        ("2024-13-01", "is not a start time"),
        ("-5", "is not a start time"),
        (-5, "before 1970"),
        ("1969-12-31T23:59:59Z", "before 1970"),
        (True, "is not a start time"),
        (1.5, "is not a start time"),
    ],
)
def test_parse_start_time_refuses_nonsense(value: object, message: str) -> None:
    with pytest.raises(CellError, match=message):
        parse_start_time(value, tz=UTC_TZ, unit="s")


@pytest.mark.parametrize(
    ("value", "zone", "said", "hint"),
    [
        # the clocks go forward over 02:00-03:00: Python would read 02:30 as 03:30, silently
        ("2026-03-08T02:30", "America/New_York", "never shows on the clocks", "2026-03-08 03:30"),
        (datetime(2026, 3, 29, 2, 30), "Europe/Paris", "never shows on the clocks", "03:30"),
        # the clocks go back over 01:00-02:00: 01:30 happens twice, an hour apart
        ("2026-11-01 01:30", "America/New_York", "shows twice", "2026-11-01T01:30-04:00"),
        (datetime(2026, 10, 25, 2, 30), "Europe/Paris", "shows twice", "T02:30+01:00 (the second)"),
    ],
)
def test_a_start_time_the_clocks_skip_or_repeat_is_refused(
    value: object, zone: str, said: str, hint: str
) -> None:
    with pytest.raises(CellError, match=said) as info:
        parse_start_time(value, tz=ZoneInfo(zone), unit="s")
    assert zone in str(info.value) and info.value.hint is not None and hint in info.value.hint


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026-03-08T03:30", "America/New_York", 1_772_955_000),  # just after the change
        ("2026-03-08T02:30-05:00", "America/New_York", 1_772_955_000),  # the offset decides
        ("2026-11-01T01:30-05:00", "America/New_York", 1_793_514_600),  # the second 01:30
        ("2026-03-29T02:30", "Asia/Shanghai", 1_774_722_600),  # no change there
    ],
)
def test_a_start_time_beside_a_clock_change_or_with_an_offset_is_kept(
    value: str, zone: str, expected: int
) -> None:
    assert parse_start_time(value, tz=ZoneInfo(zone), unit="s") == expected


@pytest.mark.parametrize("value", [MAX_START_TIME_S + 1, "2040-01-01T00:00:00Z"])
def test_parse_start_time_beyond_2038_in_seconds_points_to_milliseconds(value: object) -> None:
    with pytest.raises(CellError, match="beyond the start_time range") as info:
        parse_start_time(value, tz=UTC_TZ, unit="s")
    assert info.value.hint is not None and "--start-time-unit ms" in info.value.hint


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2037, 12, 31),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5))]
        ),
    )
)
def test_parse_start_time_agrees_with_timestamp(moment: datetime) -> None:
    expected_ms = int(moment.timestamp() * 1000) if moment.microsecond == 0 else None
    seconds = parse_start_time(moment.isoformat(), tz=SHANGHAI, unit="s")
    assert seconds == int(moment.replace(microsecond=0).timestamp())
    if expected_ms is not None:
        assert parse_start_time(moment, tz=SHANGHAI, unit="ms") == expected_ms


# --------------------------------------------------------------------------- small parsers


@pytest.mark.parametrize(
    ("value", "expected"), [("once", "ONCE"), (" Week ", "WEEK"), ("DAY", "DAY")]
)
def test_parse_schedule_type(value: str, expected: str) -> None:
    assert parse_schedule_type(value) == expected


def test_parse_schedule_type_suggests_the_close_one() -> None:
    with pytest.raises(CellError, match="'daily' is not a schedule type") as info:
        parse_schedule_type("daily")
    assert info.value.hint == "did you mean 'DAY'?"


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        ("mysq", schema.known_db_types(), "MySQL"),
        ("POSTGRESQ", schema.known_db_types(), "PostgreSQL"),
        ("kingbse", schema.known_db_types(), "Kingbase"),
        ("cn-nrth-4", schema.REGIONS, "cn-north-4"),
        ("zzzzzz", schema.known_db_types(), None),
    ],
)
def test_did_you_mean(text: str, choices: tuple[str, ...], expected: str | None) -> None:
    assert did_you_mean(text, choices) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        "{profile}-{region}-{seq:03}",
        "plain-name",
        "{db_type}_{project}_{task}_{seq}",
        "{{literal}}-{seq:>4}",
        "扫描-{region}",
    ],
)
def test_check_name_pattern_accepts_known_placeholders(pattern: str) -> None:
    assert check_name_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "message", "hint"),
    [
        ("{profil}-{seq}", "unknown placeholder {profil}", "did you mean 'profile'?"),
        ("{owner}", "unknown placeholder {owner}", "use {profile}, {region}"),
        ("{}", "unknown placeholder {}", "use {profile}"),
        ("{0}", "unknown placeholder {0}", "use {profile}"),
        ("{profile.__class__}", "unknown placeholder", None),
        ("{region[0]}", "unknown placeholder", None),
        ("{seq", "not a valid name pattern", "double a brace"),
        ("seq}", "not a valid name pattern", None),
        ("{profile!r}", "conversion or nested placeholder", "plain format spec"),
        ("{seq:{seq}}", "conversion or nested placeholder", None),
        ("{region:d}", "cannot be filled in", "fit {seq} only"),
    ],
)
def test_check_name_pattern_refuses_bad_ones(pattern: str, message: str, hint: str | None) -> None:
    with pytest.raises(CellError, match=message.replace("{", r"\{").replace("[", r"\[")) as info:
        check_name_pattern(pattern)
    if hint is not None:
        assert info.value.hint is not None and hint in info.value.hint


def test_describe_default_profile_covers_every_profile_column() -> None:
    described = dict(describe_default_profile())
    assert list(described) == [c.name for c in schema.PROFILE_COLUMNS]
    assert described["profile"] == "default"
    assert described["schedule_type"] == "ONCE"
    assert described["start_time"] == "0"
    assert described["start_now"] == "TRUE"
    assert described["scan_privileges"] == "FALSE"
    assert described["max_sources"] == str(DEFAULT_PROFILE.max_sources)
    assert described["task_name"] == DEFAULT_PROFILE.task_name


# --------------------------------------------------------------------------- instances sheet


def test_a_clean_sheet_yields_instances_with_extras_and_no_issues() -> None:
    headers = {**INSTANCE_HEADERS, "Owner": "Owner", "Since": "Since", "Cost": "Cost"}
    result = run(
        [
            row("ins-1", "mysql", region="cn-north-1", Owner="ana", Cost=12.0),
            row(12345, "postgres", project_id=OTHER_PROJECT, Since=datetime(2024, 5, 6)),
            row(
                "ins-3",
                "DWS",
                project_id="ab" * 16,
                profile="Default",
                task="nightly",
                enabled="yes",
            ),  # a project of --region's region, as each project has one
        ],
        headers=headers,
    )
    assert result.issues == ()
    assert not result.has_errors
    first, second, third = result.instances
    assert (first.ins_id, first.db_type, first.project_id, first.region) == (
        "ins-1",
        "MySQL",
        PROJECT,
        "cn-north-1",
    )
    assert first.extras == (("Owner", "ana"), ("Since", ""), ("Cost", "12"))
    assert (second.ins_id, second.db_type, second.project_id) == (
        "12345",
        "PostgreSQL",
        OTHER_PROJECT,
    )
    assert second.extras[1] == ("Since", "2024-05-06T00:00:00")
    assert (third.profile, third.task, third.region) == ("default", "nightly", "cn-north-4")
    assert first.ref == RowRef(FILE, "instances", 2)
    assert result.profiles == {"default": DEFAULT_PROFILE}
    assert result.columns["ins_id"] == "Instance ID"


def test_unknown_db_type_is_a_warning_sent_as_written_with_any_db_type() -> None:
    result = run([row(db_type="mysq")], cfg=settings(strict_db_types=False))
    issue = only(result.issues)
    assert issue.severity == "warning"
    assert issue.message == "'mysq' is not a known database type; it is sent as written"
    assert issue.hint == "did you mean 'MySQL'?"
    assert issue.column == "DB Type"
    assert issue.ref == RowRef(FILE, "instances", 2)
    assert issue.value == "mysq"
    assert result.instances[0].db_type == "mysq"
    assert str(issue) == (
        "inputs/dbs.xlsx, sheet 'instances', row 2, column 'DB Type': 'mysq' is not a known "
        "database type; it is sent as written (did you mean 'MySQL'?)"
    )


@pytest.mark.parametrize(
    ("written", "sent"),
    [("DM", "DMDBMS"), ("dmdbms", "DMDBMS"), ("dameng", "DMDBMS"), ("KINGBASE", "KINGBASE"),
     ("postgres", "PostgreSQL"), ("mrs_hive", "MRS_HIVE"), ("hive", "HIVE")],
)  # fmt: skip
def test_common_spellings_are_sent_as_dsc_spells_them(written: str, sent: str) -> None:
    result = run([row(db_type=written)])
    assert result.issues == () and result.instances[0].db_type == sent


def test_a_type_dsc_metadata_tasks_do_not_support_is_an_error_naming_the_supported() -> None:
    issue = only(run([row(db_type="Oracle")]).issues)
    assert issue.severity == "error"
    assert (
        issue.message
        == "'Oracle' is a type DSC metadata tasks do not support (--any-db-type sends it)"
    )
    assert issue.hint == (
        "known types: MySQL, PostgreSQL, TDSQL, GaussDB, DWS, Dameng, Kingbase, Hive, MRS_HIVE"
    )


def test_a_dsc_db_type_column_overrides_the_spelling_sent() -> None:
    result = run([row(db_type="Dameng", dsc_db_type="DM")])
    assert result.issues == () and result.instances[0].db_type == "DM"


def test_unknown_db_type_is_an_error_by_default() -> None:
    result = run([row(db_type="mysq")])
    issue = only(result.issues)
    assert issue.severity == "error"
    assert issue.message == "'mysq' is not a known database type (--any-db-type sends it)"
    assert result.instances == () and result.has_errors


def test_unknown_db_type_far_from_any_lists_the_known_ones() -> None:
    issue = only(run([row(db_type="qqqqqq")]).issues)
    assert issue.hint is not None and issue.hint.startswith("known types: MySQL, PostgreSQL")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, "is a number with a fraction"),
        (12345678901234567890.0, "16+ digits"),
        (datetime(2024, 1, 2), "is a date cell"),
        (True, "is a yes/no cell"),
    ],
)
def test_ins_id_in_a_suspicious_cell_is_kept_with_a_warning(value: object, message: str) -> None:
    result = run([row(value)])
    issue = only(result.issues)
    assert issue.severity == "warning" and message in issue.message
    assert issue.column == "Instance ID"
    assert issue.hint == "format the column as Text and retype the value"
    assert result.instances[0].ins_id == parse_text(value)


def test_project_id_defaults_and_errors() -> None:
    rows = [row(project_id=None), row("b", project_id="abc"), row("c", project_id=PROJECT.upper())]
    result = run(rows)
    assert [i.ins_id for i in result.instances] == ["ins-1", "c"]
    assert result.instances[0].project_id == PROJECT
    assert result.instances[1].project_id == PROJECT  # lowercased
    error = only(result.issues, "error")
    assert error.message == "'abc' is not 32 hex characters"
    assert error.hint is not None and "it has 3" in error.hint
    warning = only(result.issues, "warning")
    assert "sent lowercased" in warning.message and warning.ref is not None
    assert warning.ref.row == 4


def test_blank_project_id_without_a_default_is_an_error() -> None:
    result = run([row()], cfg=settings(project_id=None))
    issue = only(result.issues)
    assert issue.severity == "error" and issue.column == "project_id"
    assert "no --project-id or HUAWEICLOUD_SDK_PROJECT_ID" in issue.message


def test_region_defaults_normalises_and_suggests() -> None:
    rows = [
        row("a"),
        row("b", region="CN-North-4"),
        row("c", region="cn-nrth-4"),
        row("d", region="cn north 4"),
    ]
    result = run(rows)
    assert [(i.ins_id, i.region) for i in result.instances] == [
        ("a", "cn-north-4"),
        ("b", "cn-north-4"),
        ("c", "cn-nrth-4"),
    ]
    warning = only(result.issues, "warning")
    assert warning.message == "'cn-nrth-4' is not a region bulkscan knows"
    assert warning.hint == "did you mean 'cn-north-4'?" and warning.column == "Region"
    error = only(result.issues, "error")
    assert error.message == "'cn north 4' is not a region id"
    assert error.hint == "did you mean 'cn-north-4'?"


def test_blank_region_without_a_default_is_an_error() -> None:
    issue = only(run([row()], cfg=settings(region=None)).issues)
    assert issue.severity == "error" and issue.message == "region is blank and no --region is set"


def test_a_blank_project_id_takes_the_default_or_names_where_one_comes_from() -> None:
    pid = "0123456789abcdef0123456789abcdef"
    result = run([row()], cfg=settings(project_id=pid))
    assert [i.project_id for i in result.instances] == [pid] and not result.issues
    issue = only(run([row()], cfg=settings(project_id=None)).issues)
    assert issue.message == (
        "project_id is blank and no --project-id or HUAWEICLOUD_SDK_PROJECT_ID is set"
    )
    assert issue.hint == "fill the cell, or give a default with --project-id"
    set_language("zh")  # the conftest sets English back after each test
    issue = only(run([row()], cfg=settings(region=None)).issues)
    assert issue.message == "region 为空，且未设置 --region"
    assert issue.hint == "请填写该单元格，或用 --region 给出默认值"


def test_an_unknown_default_region_is_reported_once() -> None:
    result = run([row("a"), row("b")], cfg=settings(region="xx-new-1"))
    issue = only(result.issues)
    assert issue.severity == "warning" and issue.ref is None
    assert issue.message.startswith("--region: 'xx-new-1'")
    assert [i.region for i in result.instances] == ["xx-new-1", "xx-new-1"]


def test_enabled_false_rows_are_skipped_unchecked() -> None:
    rows = [
        row("a", enabled=False),
        row(None, "nonsense", region="?? ??", enabled="no"),
        row("c", enabled=0),
        row("d", enabled="Y"),
    ]
    result = run(rows)
    assert result.issues == ()
    assert [r.row for r in result.skipped] == [2, 3, 4]
    assert [i.ins_id for i in result.instances] == ["d"]


def test_a_sheet_with_headers_only_is_an_error_naming_the_sheet() -> None:
    """An export that came out empty: a run of it would report success having done nothing."""
    issue = only(run([]).issues)
    assert issue.severity == "error" and (issue.file, issue.sheet) == (FILE, "instances")
    assert issue.message == "the sheet has no instance rows, only its headers: nothing to scan"


def test_every_row_switched_off_is_a_warning_naming_the_column() -> None:
    result = run([row("a", enabled=False), row("b", enabled="no")])
    issue = only(result.issues)
    assert (issue.severity, issue.column) == ("warning", "enabled")
    assert issue.message == (
        "every row is switched off (2 row(s) say no in 'enabled'): nothing to scan"
    )


def test_rows_with_errors_only_say_their_errors() -> None:
    """No instance because every row is wrong: the rows' errors say it, nothing more."""
    result = run([row(None)])
    assert any(i.severity == "error" for i in result.issues)
    assert [i.message for i in result.issues if "nothing to scan" in i.message] == []


def test_a_bad_enabled_value_is_an_error_and_the_row_is_still_checked() -> None:
    result = run([row("a", "mysq", enabled="maybe")], cfg=settings(strict_db_types=False))
    assert [(i.severity, i.column) for i in result.issues] == [
        ("warning", "DB Type"),
        ("error", "enabled"),
    ]
    assert result.instances == ()


def test_missing_required_column_is_one_sheet_level_error() -> None:
    headers = {"Instance ID": "ins_id", "DB Tpye": "DB Tpye", "Region": "region"}
    result = run([{"ins_id": "a", "region": "cn north 4"}, {"ins_id": "b"}], headers=headers)
    sheet_level, region_error = result.issues
    assert sheet_level.ref is None and sheet_level.sheet == "instances" and sheet_level.file == FILE
    assert sheet_level.message == "the required column 'db_type' is missing"
    assert sheet_level.column == "db_type"
    assert sheet_level.hint == (
        "did you mean 'DB Tpye'? headers found: 'Instance ID', 'DB Tpye', 'Region'"
    )
    assert str(sheet_level).startswith("inputs/dbs.xlsx, sheet 'instances', column 'db_type'")
    assert region_error.ref is not None and region_error.ref.row == 2
    assert result.instances == ()


def test_blank_required_cells_are_errors_at_the_cell() -> None:
    result = run([row(None), row("b", None), row("c", "   ")])
    assert [(i.ref.row if i.ref else 0, i.column, i.message) for i in result.issues] == [
        (2, "Instance ID", "ins_id is blank"),
        (3, "DB Type", "db_type is blank"),
        (4, "DB Type", "db_type is blank"),
    ]
    assert result.issues[0].hint == "fill it in, or set enabled to FALSE to skip the row"


def test_task_longer_than_256_is_an_error() -> None:
    issue = only(run([row(task="t" * 257)]).issues)
    assert issue.column == "task" and "257 characters" in issue.message
    assert issue.value is not None and len(issue.value) == 80


def test_duplicates_are_warned_and_sent_once() -> None:
    rows = [
        row("a"),
        row("b"),
        row("a", "PostgreSQL"),  # same project, region and profile as row 2
        row("a", region="cn-north-1"),  # another region: not a duplicate
        row("a", project_id=OTHER_PROJECT),  # another project: not a duplicate
        row("a", task="other"),  # another task, same profile: a duplicate
    ]
    result = run(rows)
    assert [i.ref.row for i in result.instances] == [2, 3, 5, 6]
    first = RowRef(FILE, "instances", 2)
    assert result.duplicates == (
        (RowRef(FILE, "instances", 4), first),
        (RowRef(FILE, "instances", 7), first),
    )
    warnings = [i for i in result.issues if "repeats" in i.message]
    assert [w.ref.row for w in warnings if w.ref] == [4, 7]
    assert warnings[0].message == "instance 'a' repeats row 2 (same project, region and profile)"
    assert warnings[0].hint == "it is sent once, as 'MySQL' from row 2"
    assert not result.has_errors


def test_a_project_in_two_regions_is_warned_where_its_rarer_region_starts() -> None:
    rows = [
        row("a", region="cn-north-1"),
        row("b"),  # the region of --region, cn-north-4, as the project's other rows
        row("c"),
        row("d", region="cn-north-1"),
        row("e", region="ap-southeast-1"),
        row("f", project_id=OTHER_PROJECT, region="ap-southeast-1"),  # its own region: fine
        row("g"),
    ]
    result = run(rows)
    warnings = [i for i in result.issues if i.severity == "warning"]
    assert [(w.ref.row if w.ref else None, w.column, w.value) for w in warnings] == [
        (2, "Region", "cn-north-1"),
        (6, "Region", "ap-southeast-1"),
    ]
    assert warnings[0].message == (
        f"project '{PROJECT}' is in region 'cn-north-4' at row 3 and in region 'cn-north-1' "
        "here (2 row(s) with that region)"
    )
    assert "a project belongs to one region" in (warnings[0].hint or "")
    assert len(result.instances) == 7 and not result.has_errors  # a warning: all are sent


def test_an_instance_in_two_profiles_is_not_a_duplicate() -> None:
    profiles = [{"profile": "weekly", "schedule_type": "WEEK", "schedule_switch": True}]
    result = run([row("a"), row("a", profile="weekly")], profiles=profiles)
    assert len(result.instances) == 2 and result.duplicates == ()


def test_unknown_profile_lists_the_known_ones() -> None:
    profiles = [{"profile": "nightly-full"}, {"profile": "weekly", "schedule_switch": True}]
    result = run([row(profile="nightly")], profiles=profiles)
    issue = only(result.issues)
    assert issue.severity == "error" and issue.message == "profile 'nightly' is not defined"
    assert issue.hint == (
        "did you mean 'nightly-full'? known profiles: 'nightly-full', 'weekly', 'default'"
    )


def test_profile_names_match_case_insensitively() -> None:
    result = run([row(profile=" NIGHTLY ")], profiles=[{"profile": "Nightly"}])
    assert result.issues == () and result.instances[0].profile == "Nightly"


def test_issue_values_are_safe_one_line_text() -> None:
    issue = only(run([row(db_type="my\nsql\x07" + "x" * 200)]).issues)
    assert issue.value is not None
    assert "\n" not in issue.value and "\\n" in issue.value and len(issue.value) == 80


def test_ten_different_errors_are_all_reported_in_one_pass() -> None:
    profiles = [
        {"profile": "p1", "schedule_type": "yearly"},  # 1
        {"profile": "p2", "max_sources": 0},  # 2
        {"profile": "p3", "task_name": "{nope}"},  # 3
        {"profile": "p4", "start_now": "perhaps"},  # 4
    ]
    rows = [
        row(None),  # 5
        row("b", None),  # 6
        row("c", project_id="xyz"),  # 7
        row("d", region="cn/north"),  # 8
        row("e", profile="ghost"),  # 9
        row("f", enabled="sometimes"),  # 10
    ]
    result = validate(make_book(rows, profiles=profiles), settings(strict_db_types=True))
    errors = [i for i in result.issues if i.severity == "error"]
    assert len(errors) == 10, [str(i) for i in result.issues]
    assert [(e.sheet or (e.ref.sheet if e.ref else None)) for e in errors] == ["instances"] * 6 + [
        "profiles"
    ] * 4
    assert all(e.ref is not None and e.column and e.hint for e in errors)
    assert len({(e.ref, e.column) for e in errors}) == 10


def test_issues_come_in_row_then_column_order() -> None:
    result = run([row("a", "mysq", region="cn-nrth-4"), row(None, "orcle")])
    assert [(i.ref.row, i.column) for i in result.issues if i.ref] == [
        (2, "DB Type"),
        (2, "Region"),
        (3, "Instance ID"),
        (3, "DB Type"),
    ]


def test_rows_repeating_a_bad_cell_each_report_it() -> None:
    # Rows sharing their cells are parsed once, but only when they raise no issue.
    rows = [row(f"i{n}", "mysq", region="cn/north" if n % 2 else None) for n in range(4)]
    rows += [row("x", "mysq", region="cn/north", enabled="maybe")]
    result = run(rows, cfg=settings(strict_db_types=False))
    assert [(i.ref.row, i.column, i.severity) for i in result.issues if i.ref] == [
        (2, "DB Type", "warning"),
        (3, "DB Type", "warning"),
        (3, "Region", "error"),
        (4, "DB Type", "warning"),
        (5, "DB Type", "warning"),
        (5, "Region", "error"),
        (6, "DB Type", "warning"),
        (6, "Region", "error"),
        (6, "enabled", "error"),
    ]
    assert [i.ins_id for i in result.instances] == ["i0", "i2"]


def test_cells_that_compare_equal_across_types_are_each_read_as_written() -> None:
    # True == 1 == 1.0 in Python, yet the cells read differently as text.
    profiles = [{"profile": "TRUE"}, {"profile": "1"}]
    headers = {**INSTANCE_HEADERS, "Owner": "Owner"}
    rows = [
        row("a", profile=True, task=True, Owner=True, enabled=True),
        row("b", profile=1, task=1, Owner=1, enabled=1),
        row("c", profile=1.0, task=1.0, Owner=1.0, enabled=1.0),
        row("d", profile="true", task="TRUE", Owner="TRUE", enabled="yes"),
        row("e", enabled=False),
        row("f", enabled=0),
        row("g", enabled=0.0),
    ]
    result = validate(make_book(rows, headers=headers, profiles=profiles), settings())
    assert result.issues == ()
    got = [(i.ins_id, i.profile, i.task, i.extras) for i in result.instances]
    assert got == [
        ("a", "TRUE", "TRUE", (("Owner", "TRUE"),)),
        ("b", "1", "1", (("Owner", "1"),)),
        ("c", "1", "1", (("Owner", "1"),)),
        ("d", "TRUE", "TRUE", (("Owner", "TRUE"),)),
    ]
    assert [ref.row for ref in result.skipped] == [6, 7, 8]


def test_instances_made_for_speed_are_the_dataclass_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = run([row("a", task="t")]).instances[0]
    expected = Instance(
        RowRef(FILE, "instances", 2), "a", "MySQL", PROJECT, "cn-north-4", "default", "t"
    )
    assert (made, repr(made), hash(made)) == (expected, repr(expected), hash(expected))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.ins_id = "b"  # type: ignore[misc]
    assert validate_module._instance_maker() is not Instance
    monkeypatch.setattr(validate_module, "_INSTANCE_FIELDS", ("ref", "ins_id"))
    assert validate_module._instance_maker() is Instance  # a class of another shape


# --------------------------------------------------------------------------- profiles sheet


def test_without_a_profiles_sheet_the_default_profile_applies() -> None:
    result = run([row()])
    assert dict(result.profiles) == {"default": DEFAULT_PROFILE}


def test_a_full_profile_row_is_parsed() -> None:
    profiles = [
        {
            "profile": "weekly",
            "schedule_type": "week",
            "start_time": datetime(2024, 1, 1, 8),
            "start_now": "no",
            "schedule_switch": "yes",
            "delete_failed_meta": 1,
            "scan_column_constraints": False,
            "scan_comment": "n",
            "scan_privileges": "y",
            "scan_system_db": True,
            "scan_tables": "off",
            "scan_views": "on",
            "task_description": "weekly scan",
            "task_name": "wk-{region}-{seq:02}",
            "max_sources": 20.0,
        }
    ]
    cfg = settings(timezone="Asia/Shanghai")
    result = validate(make_book([row(profile="weekly")], profiles=profiles), cfg)
    assert result.issues == ()
    assert result.profiles["weekly"] == Profile(
        name="weekly",
        schedule_type="WEEK",
        start_time=JAN_1_2024,
        start_now=False,
        schedule_switch=True,
        delete_failed_meta=True,
        scan=ScanConfig(False, False, True, True, False, True),
        task_description="weekly scan",
        task_name="wk-{region}-{seq:02}",
        max_sources=20,
        ref=RowRef(FILE, "profiles", 2),
    )
    assert result.profiles["default"] == DEFAULT_PROFILE


def test_a_zone_less_start_time_is_read_in_the_profile_zone_first() -> None:
    naive, aware = "2030-03-01 02:00", "2030-03-01T02:00:00+01:00"
    profiles = [
        {"profile": "own", "start_time": naive, "timezone": "Asia/Shanghai"},
        {"profile": "offset", "start_time": aware, "timezone": "Asia/Shanghai"},
        {"profile": "given", "start_time": naive},
    ]
    result = validate(make_book([row()], profiles=profiles), settings(timezone="Europe/Paris"))
    assert result.issues == ()
    found = {name: p.start_time for name, p in result.profiles.items()}
    moment = datetime(2030, 3, 1, 2, 0)
    assert found["own"] == moment.replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert found["offset"] == datetime.fromisoformat(aware).timestamp()  # the offset wins
    assert found["given"] == moment.replace(tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert result.profiles["own"].timezone == "Asia/Shanghai"
    assert result.profiles["given"].timezone is None


def test_an_unknown_profile_zone_is_an_error_naming_its_cell() -> None:
    profiles = [{"profile": "p", "start_time": "2030-03-01 02:00", "timezone": "Asia/Shanghia"}]
    issue = only(run([row(profile="p")], profiles=profiles).issues, "error")
    assert (issue.ref, issue.column) == (RowRef(FILE, "profiles", 2), "timezone")
    assert "'Asia/Shanghia' is not a known time zone" in str(issue)
    assert "profiles" in str(issue) and "row 2" in str(issue)


def test_start_time_follows_the_wire_unit_setting() -> None:
    profiles = [{"profile": "p", "start_time": "2024-01-01T00:00:00Z"}]
    result = validate(make_book([row()], profiles=profiles), settings(start_time_unit="ms"))
    assert result.profiles["p"].start_time == JAN_1_2024 * 1000


def test_a_sheet_default_profile_replaces_the_built_in_one() -> None:
    result = run([row()], profiles=[{"profile": "default", "max_sources": 10}])
    assert list(result.profiles) == ["default"]
    assert result.profiles["default"].max_sources == 10
    assert result.profiles["default"].ref == RowRef(FILE, "profiles", 2)


def test_duplicate_profile_names_are_an_error_naming_both_rows() -> None:
    result = run([row()], profiles=[{"profile": "nightly"}, {"profile": "NIGHTLY"}])
    issue = only(result.issues)
    assert issue.severity == "error" and issue.ref == RowRef(FILE, "profiles", 3)
    assert issue.message == "profile 'NIGHTLY' is already defined at row 2"
    assert issue.column == "profile"


@pytest.mark.parametrize(
    ("cell", "value", "message"),
    [
        ("schedule_type", "yearly", "'yearly' is not a schedule type"),
        ("start_time", "soon", "'soon' is not a start time"),
        ("start_now", "perhaps", "is not a yes/no value"),
        ("scan_views", 2, "is not a yes/no value"),
        ("task_description", "d" * 1025, "the description is 1025 characters long"),
        ("task_name", "{name}-{seq}", "unknown placeholder {name}"),
        ("max_sources", 0, "0 is out of range"),
        ("max_sources", 501, "501 is out of range"),
        ("max_sources", "ten", "is not a whole number"),
    ],
)
def test_each_bad_profile_cell_is_an_error_at_that_cell(
    cell: str, value: object, message: str
) -> None:
    headers = {"Profile": "profile", cell.replace("_", " ").title(): cell}
    result = run(
        [row(profile="p")], profiles=[{"profile": "p", cell: value}], profile_headers=headers
    )
    issue = only(result.issues, "error")
    assert message in issue.message
    assert issue.ref == RowRef(FILE, "profiles", 2)
    assert issue.column == cell.replace("_", " ").title()
    assert "p" in result.profiles  # still defined, so rows naming it are not flagged too


def test_a_blank_profile_name_is_an_error() -> None:
    result = run([row()], profiles=[{"profile": None, "max_sources": 5}])
    issue = only(result.issues)
    assert issue.message == "the profile name is blank" and issue.ref is not None
    assert issue.ref.sheet == "profiles"


def test_a_profiles_sheet_without_a_name_column_is_reported_once() -> None:
    headers = {"schedule_type": "schedule_type"}
    result = run(
        [row(profile="p"), row("b")],
        profiles=[{"schedule_type": "DAY"}],
        profile_headers=headers,
    )
    issue = only(result.issues, "error")
    assert issue.ref is None and issue.sheet == "profiles"
    assert issue.message == "the required column 'profile' is missing"
    assert [i.ins_id for i in result.instances] == ["b"]


def test_unknown_profile_columns_are_ignored_with_a_warning() -> None:
    headers = {"profile": "profile", "Scan View": "scan_view", "colour": "colour"}
    result = run([row()], profiles=[{"profile": "p", "scan_view": False}], profile_headers=headers)
    first, second = result.issues
    assert (first.severity, first.column, first.message) == (
        "warning",
        "Scan View",
        "column 'Scan View' is ignored",
    )
    assert first.hint == "did you mean 'scan_views'?"
    assert second.hint == "it is not a profile setting"
    assert result.profiles["p"].scan.scan_views is True


def test_unlikely_schedules_are_warned() -> None:
    profiles = [
        {"profile": "off", "schedule_type": "WEEK"},
        {"profile": "never", "start_now": False},
        {"profile": "fine", "schedule_type": "DAY", "schedule_switch": True, "start_now": False},
    ]
    result = run([row()], profiles=profiles)
    first, second = result.issues
    assert first.severity == "warning" and first.ref == RowRef(FILE, "profiles", 2)
    assert first.message == "schedule_type is WEEK but schedule_switch is FALSE"
    assert first.column == "schedule_switch"
    assert second.ref == RowRef(FILE, "profiles", 3) and "would never run" in second.message
    assert not result.has_errors


def test_a_time_zone_name_too_long_for_a_path_is_a_cell_error() -> None:
    """zoneinfo looks a name up as a file: one longer than a path may be is not a crash."""
    from bulkscan.input.validate import parse_timezone

    with pytest.raises(CellError, match="is not a known time zone"):
        parse_timezone("x" * 1000)


def test_a_project_id_typed_as_a_number_is_an_error_not_the_digits_excel_kept() -> None:
    result = run([row("a", project_id=1.2345678901234569e31), row("b", project_id=True)])
    errors = [i for i in result.issues if i.severity == "error"]
    assert [(e.ref.row if e.ref else None, e.column) for e in errors] == [
        (2, "project_id"),
        (3, "project_id"),
    ]
    assert "a number of 16+ digits" in errors[0].message
    assert errors[0].hint == "format the column as Text and retype the value"
    assert not result.instances


def test_a_task_name_in_a_date_cell_is_warned_of() -> None:
    result = run([row("a", task=datetime(2025, 1, 2)), row("b", task="orders")])
    warning = only(result.issues, "warning")
    assert warning.ref == RowRef(FILE, "instances", 2) and warning.column == "task"
    assert "is a date cell" in warning.message
    assert [i.task for i in result.instances] == ["2025-01-02T00:00:00", "orders"]


def test_a_header_close_to_a_column_the_sheet_lacks_is_warned_of() -> None:
    extra = ("regions", "Scan profile name", "owner_region")
    headers = {"ins_id": "ins_id", "db_type": "db_type", **{h: h for h in extra}}
    result = run([row("a", regions="cn-east-3")], headers=headers)
    warnings = [i for i in result.issues if i.severity == "warning"]
    assert [(w.column, w.message) for w in warnings] == [
        ("regions", "column 'regions' is not read as 'region', only carried to the report"),
        (
            "Scan profile name",
            "column 'Scan profile name' is not read as 'profile', only carried to the report",
        ),
    ]
    assert warnings[0].hint == "rename it to 'region' if its cells are meant as that"
    assert result.instances[0].region == "cn-north-4"  # --region's, as the warning says
    with_region = {**headers, "region": "region"}  # the column is there: an extra is an extra
    messages = [i.message for i in run([row("a", region="cn-east-3")], headers=with_region).issues]
    assert messages == [
        "column 'Scan profile name' is not read as 'profile', only carried to the report"
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('="00123"', "'=\"00123\"' is a spreadsheet formula, not the id: Excel shows '00123'"),
        ("=A2&B2", "'=A2&B2' is a spreadsheet formula, not the id"),
        (
            "1.23457E+31",
            "'1.23457E+31' is a number in scientific notation: the id's digits are lost",
        ),
    ],
)
def test_what_a_spreadsheet_wrote_into_csv_text_instead_of_the_id_is_an_error(
    cell: str, message: str
) -> None:
    # twice: the second row takes the fast path of a row whose other cells were seen before
    book = dataclasses.replace(make_book([row("a"), row(cell), row(cell)]), fmt="csv")
    result = validate(book, settings())
    errors = [i for i in result.issues if i.severity == "error"]
    assert [(e.ref.row if e.ref else None, e.message) for e in errors] == [
        (3, message),
        (4, message),
    ]
    assert [i.ins_id for i in result.instances] == ["a"]
    in_a_workbook = run([row(cell)])  # a text cell shows as it is written: sent so
    assert [i.ins_id for i in in_a_workbook.instances] == [cell]
