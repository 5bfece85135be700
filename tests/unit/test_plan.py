"""Planning: grouping, splitting, naming, bodies and keys; determinism as properties."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkscan import plan as plan_module
from bulkscan.config import InputSettings
from bulkscan.errors import InputError, UsageError
from bulkscan.i18n import set_language
from bulkscan.input import schema
from bulkscan.input.validate import Validated, validate
from bulkscan.models import (
    InputBook,
    Issue,
    Plan,
    Profile,
    RawRow,
    RowRef,
    Sheet,
    TaskRequest,
)
from bulkscan.plan import (
    PlanSource,
    SummaryRow,
    build_plan,
    content_digest,
    plan_hash,
    plan_summary,
    plan_to_json,
    read_saved_plan,
    serialise_body,
    start_time_text,
    start_zones,
    task_key,
)

FILE = "inputs/dbs.xlsx"
P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"
VECTORS = Path(__file__).with_name("signing_vectors.json")
INSTANCE_COLUMNS = tuple(c.name for c in schema.INSTANCE_COLUMNS)
PROFILE_COLUMNS = tuple(c.name for c in schema.PROFILE_COLUMNS)


def _body(task: TaskRequest) -> dict[str, Any]:
    """The request body, as the service reads it from the bytes sent."""
    body: dict[str, Any] = json.loads(task.body_bytes)
    return body


def make_sheet(name: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Sheet:
    raw = tuple(
        RawRow(RowRef(FILE, name, n), {k: v for k, v in row.items() if v is not None})
        for n, row in enumerate(rows, start=2)
    )
    return Sheet(FILE, name, columns, columns, raw)


def make_book(
    rows: list[dict[str, Any]], profiles: list[dict[str, Any]] | None = None
) -> InputBook:
    instances = make_sheet("instances", INSTANCE_COLUMNS, rows)
    sheet = None if profiles is None else make_sheet("profiles", PROFILE_COLUMNS, profiles)
    return InputBook(FILE, "0" * 64, instances, sheet, "xlsx")


def checked(rows: list[dict[str, Any]], profiles: list[dict[str, Any]] | None = None) -> Validated:
    # unknown types are warnings here (--any-db-type), so that plans carry validation issues
    settings = InputSettings(project_id=P1, region="cn-north-4", strict_db_types=False)
    return validate(make_book(rows, profiles), settings)


def plan_of(rows: list[dict[str, Any]], profiles: list[dict[str, Any]] | None = None) -> Plan:
    return build_plan(checked(rows, profiles))


def inst(ins_id: str, db_type: str = "MySQL", **cells: Any) -> dict[str, Any]:
    return {"ins_id": ins_id, "db_type": db_type, **cells}


def rows_of(plan: Plan) -> list[list[int]]:
    return [[r.row for r in t.rows] for t in plan.tasks]


def errors(plan: Plan) -> list[Issue]:
    return [i for i in plan.issues if i.severity == "error"]


# --------------------------------------------------------------------------- bodies and keys


def test_body_bytes_match_the_official_sdk_vector() -> None:
    vector = json.loads(VECTORS.read_text())["vectors"][0]["input"]
    plan = plan_of(
        [
            inst("ins-0001", "mysql", task="bulkscan-0001"),
            inst("ins-0002", "PostgreSQL", task="bulkscan-0001"),
        ]
    )
    (task,) = plan.tasks
    assert task.body_bytes == vector["body_utf8"].encode("utf-8")
    assert hashlib.sha256(task.body_bytes).hexdigest() == vector["body_sha256"]
    expected_key = hashlib.sha256(f"{P1}\ncn-north-4\n".encode() + task.body_bytes).hexdigest()
    assert task.key == expected_key == task_key(P1, "cn-north-4", task.body_bytes)
    assert (task.project_id, task.region, task.profile) == (P1, "cn-north-4", "default")


def test_body_carries_every_profile_setting() -> None:
    profiles = [
        {
            "profile": "weekly",
            "schedule_type": "WEEK",
            "schedule_switch": True,
            "start_now": False,
            "start_time": 1_704_067_200,
            "delete_failed_meta": True,
            "scan_privileges": True,
            "task_description": "每周扫描",
            "task_name": "wk-{seq}",
        }
    ]
    (task,) = plan_of([inst("a", profile="weekly")], profiles).tasks
    assert _body(task) == {
        "data_sources": [{"db_type": "MySQL", "ins_id": "a"}],
        "delete_failed_meta": True,
        "scan_config": {
            "scan_column_constraints": True,
            "scan_comment": True,
            "scan_privileges": True,
            "scan_system_db": False,
            "scan_tables": True,
            "scan_views": True,
        },
        "schedule_switch": True,
        "schedule_type": "WEEK",
        "start_now": False,
        "start_time": 1_704_067_200,
        "task_description": "每周扫描",
        "task_name": "wk-1",
    }
    assert "每周扫描".encode() in task.body_bytes  # UTF-8, not \u escapes
    assert task.body_bytes == serialise_body(_body(task))


# Control and invisible characters (tab, U+2028, \x01) are refused by validation in names and
# ids; a description may hold tabs and line breaks (see tests/unit/test_input_cells.py).
AWKWARD_TEXT = ['quote"d', "back\\slash", "中文-ñ", "</x>", "emoji-\U0001f600", "nbsp-\u00a0é"]


@pytest.mark.parametrize("text", AWKWARD_TEXT)
def test_bodies_are_serialised_as_serialise_body_does_for_any_text(text: str) -> None:
    # Planning writes the body bytes without a dictionary per source; they stay the bytes
    # serialise_body makes of the body, whose sources are DataSource.to_json() each.
    profiles = [{"profile": "p", "task_description": f"d {text}", "task_name": f"{text}-{{seq}}"}]
    rows = [
        inst(text, profile="p"),
        inst("b", f"{text}DB", profile="p"),
        inst("c", task=f"t {text}"),
        inst(f"{text}2", "PostgreSQL", task=f"t {text}"),
    ]
    plan = plan_of(rows, profiles)
    assert len(plan.tasks) == 2
    for task in plan.tasks:
        assert task.body_bytes == serialise_body(_body(task))
        assert _body(task)["data_sources"] == [s.to_json() for s in task.sources]
        assert list(_body(task)) == sorted(_body(task))


def test_body_settings_are_encoded_once_only_when_they_sort_between_sources_and_name() -> None:
    head = plan_module._head
    assert head({"data_sources": [], "e": [1, "é"], "task_name": "x"}) == '"e":[1,"é"],'
    assert head({"data_sources": [], "task_name": "x", "zone": 1}) == ""  # serialise_body used
    assert head({"a": 1, "data_sources": [], "task_name": "x"}) == ""


def test_keys_differ_by_project_and_region_even_for_equal_bodies() -> None:
    body = serialise_body({"task_name": "x"})
    keys = {task_key(P1, "cn-north-4", body), task_key(P2, "cn-north-4", body)}
    keys.add(task_key(P1, "cn-north-1", body))
    assert len(keys) == 3


# --------------------------------------------------------------------------- grouping and naming


def test_groups_in_first_appearance_order_and_numbers_per_scope() -> None:
    numbered = [{"profile": "default", "task_name": "bulkscan-{profile}-{region}-{seq:03}"}]
    plan = plan_of(
        [
            inst("a"),
            inst("b", region="cn-east-3"),
            inst("c"),
            inst("d", project_id=P2),
            inst("e", region="cn-east-3", db_type="DWS"),
        ],
        numbered,
    )
    assert rows_of(plan) == [[2, 4], [3, 6], [5]]
    # names are unique per project (DSC looks tasks up per project): no suffix needed
    assert [t.name for t in plan.tasks] == [
        "bulkscan-default-cn-north-4-001",
        "bulkscan-default-cn-east-3-001",
        "bulkscan-default-cn-north-4-001",
    ]
    assert plan.tasks[0].project_id != plan.tasks[2].project_id
    assert [[s.ins_id for s in t.sources] for t in plan.tasks] == [["a", "c"], ["b", "e"], ["d"]]
    assert errors(plan) == []


def test_a_large_group_is_split_in_input_order_with_a_sequence() -> None:
    profiles = [{"profile": "default", "max_sources": 2, "task_name": "{profile}-{seq:03}"}]
    plan = plan_of([inst(f"i{n}") for n in range(5)], profiles)
    assert rows_of(plan) == [[2, 3], [4, 5], [6]]
    assert [t.name for t in plan.tasks] == ["default-001", "default-002", "default-003"]
    assert [_body(t)["task_name"] for t in plan.tasks] == [t.name for t in plan.tasks]


def test_seq_counts_per_project_region_and_profile() -> None:
    profiles = [
        {"profile": "default", "max_sources": 1, "task_name": "{project}-{region}-{profile}-{seq}"},
        {"profile": "b", "max_sources": 1, "task_name": "b-{region}-{seq}"},
    ]
    plan = plan_of(
        [inst("x"), inst("y", profile="b"), inst("z"), inst("w", region="cn-east-3")], profiles
    )
    assert [t.name for t in plan.tasks] == [
        f"{P1}-cn-north-4-default-1",
        f"{P1}-cn-north-4-default-2",
        "b-cn-north-4-1",
        f"{P1}-cn-east-3-default-1",
    ]


def test_explicit_task_names_and_their_splits() -> None:
    profiles = [{"profile": "default", "max_sources": 2}]
    rows = [inst("a", task="payroll"), inst("b", task="payroll"), inst("c", task="payroll")]
    rows.append(inst("d", task="hr"))
    rows.append(inst("e"))
    plan = plan_of(rows, profiles)
    assert [t.name for t in plan.tasks] == [
        "payroll-01",
        "payroll-02",
        "hr",
        f"bulkscan-default-cn-north-4-{content_digest(P1, 'cn-north-4', [('MySQL', 'e')])}",
    ]
    assert rows_of(plan) == [[2, 3], [4], [5], [6]]


def test_a_pattern_with_task_fills_it_in() -> None:
    profiles = [{"profile": "default", "task_name": "{task}@{region}"}]
    plan = plan_of([inst("a", task="payroll"), inst("b")], profiles)
    assert [t.name for t in plan.tasks] == ["payroll@cn-north-4", "@cn-north-4"]


def test_db_type_placeholder_is_the_type_or_mixed() -> None:
    profiles = [{"profile": "default", "max_sources": 2, "task_name": "{db_type}-{seq}"}]
    plan = plan_of([inst("a"), inst("b"), inst("c", "DWS"), inst("d", "mysql")], profiles)
    assert [t.name for t in plan.tasks] == ["MySQL-1", "mixed-2"]


def test_a_pattern_without_seq_gets_numbered_suffixes() -> None:
    profiles = [{"profile": "default", "max_sources": 1, "task_name": "scan-{region}"}]
    plan = plan_of([inst("a"), inst("b"), inst("c", region="cn-east-3")], profiles)
    assert [t.name for t in plan.tasks] == [
        "scan-cn-north-4-01",
        "scan-cn-north-4-02",
        "scan-cn-east-3",
    ]
    assert errors(plan) == []


def test_a_name_still_repeated_after_suffixing_is_an_error_naming_both_rows() -> None:
    profiles = [{"profile": "default", "max_sources": 1}]
    plan = plan_of([inst("a", task="x"), inst("b", task="x"), inst("c", task="x-01")], profiles)
    assert [t.name for t in plan.tasks] == ["x-01", "x-02", "x-01"]
    (issue,) = errors(plan)
    assert issue.ref == RowRef(FILE, "instances", 4)
    assert issue.message == "task name 'x-01' is also the name of the task at row 2"
    assert issue.column == "task"
    assert plan.has_errors


def test_a_name_over_256_characters_is_an_error() -> None:
    profiles = [{"profile": "long", "task_name": "n" * 250 + "-{region}"}]
    plan = plan_of([inst("a", profile="long"), inst("b", task="t" * 256)], profiles)
    (issue,) = errors(plan)
    assert issue.ref == RowRef(FILE, "instances", 2)
    assert "261 characters long, over 256" in issue.message and issue.column is None
    assert issue.hint == "shorten the task_name pattern of profile 'long' (profiles sheet, row 2)"
    assert len(plan.tasks[1].name) == 256  # exactly at the limit is fine


def test_an_explicit_task_sent_as_several_is_one_warning_naming_them() -> None:
    profiles = [{"profile": "default", "max_sources": 2}]
    rows = [inst("a", task="x"), inst("b", task="x"), inst("c", task="x"), inst("d", task="y")]
    plan = plan_of([*rows, inst("e", task="x", region="cn-east-3")], profiles)
    assert [t.name for t in plan.tasks] == ["x-01", "x-02", "y", "x-03"]
    assert errors(plan) == []
    (warning,) = [i for i in plan.issues if i.severity == "warning" and "sent as" in i.message]
    assert warning.message == "task 'x' is sent as 3 tasks: 'x-01', 'x-02', 'x-03'"
    assert warning.ref == RowRef(FILE, "instances", 2) and warning.column == "task"


def test_an_explicit_task_split_over_the_limit_is_an_error() -> None:
    profiles = [{"profile": "default", "max_sources": 1}]
    plan = plan_of([inst("a", task="t" * 255), inst("b", task="t" * 255)], profiles)
    assert [len(t.name) for t in plan.tasks] == [258, 258]
    assert [i.ref.row for i in errors(plan) if i.ref] == [2, 3]


def test_an_empty_name_is_an_error() -> None:
    profiles = [{"profile": "default", "task_name": "{task}"}]
    (issue,) = errors(plan_of([inst("a")], profiles))
    assert issue.message == "the task name is empty"


def test_the_plan_carries_skipped_duplicates_and_validation_issues() -> None:
    validated = checked([inst("a"), inst("a"), inst("b", enabled=False), inst("c", "mysq")])
    plan = build_plan(validated)
    assert plan.skipped == (RowRef(FILE, "instances", 4),)
    assert plan.duplicates == ((RowRef(FILE, "instances", 3), RowRef(FILE, "instances", 2)),)
    assert plan.issues == validated.issues and len(plan.issues) == 2
    assert not plan.has_errors
    assert plan.instance_count == 2


def test_an_empty_input_makes_an_empty_plan() -> None:
    plan = plan_of([])
    assert plan.tasks == () and plan_hash(plan) == hashlib.sha256().hexdigest()


# --------------------------------------------------------------------------- summary and JSON


def test_plan_summary_counts_per_scope_and_estimates_time() -> None:
    profiles = [{"profile": "default", "max_sources": 2}, {"profile": "b"}]
    plan = plan_of(
        [inst("a"), inst("b"), inst("c"), inst("d", profile="b"), inst("e", enabled="no")], profiles
    )
    summary = plan_summary(plan, rate_per_s=0.5)
    assert summary.rows == (
        SummaryRow(P1, "cn-north-4", "default", 2, 3),
        SummaryRow(P1, "cn-north-4", "b", 1, 1),
    )
    assert (summary.tasks, summary.instances, summary.skipped) == (3, 4, 1)
    assert summary.estimated_seconds == 6.0
    with pytest.raises(UsageError, match="rate"):
        plan_summary(plan, rate_per_s=0)


def test_plan_to_json_shows_every_request_as_sent() -> None:
    plan = plan_of([inst("a", task="t1"), inst("b", enabled=False), inst("a"), inst("c", "mysq")])
    doc = plan_to_json(plan)
    assert doc["plan_hash"] == plan_hash(plan)
    assert doc["task_count"] == 2 and doc["instance_count"] == 2
    first = doc["tasks"][0]
    assert first["body"] == json.loads(plan.tasks[0].body_bytes)
    assert first["rows"] == [{"file": FILE, "sheet": "instances", "row": 2}]
    assert (first["name"], first["key"], first["project_id"]) == ("t1", plan.tasks[0].key, P1)
    assert doc["skipped"] == [{"file": FILE, "sheet": "instances", "row": 3}]
    assert doc["duplicates"] == [
        {
            "row": {"file": FILE, "sheet": "instances", "row": 4},
            "first": {"file": FILE, "sheet": "instances", "row": 2},
        }
    ]
    assert [i["severity"] for i in doc["issues"]] == ["warning", "warning"]
    # an issue has the form of a --json answer's: where as fields and as text, and the line
    for issue, said in zip(plan.issues, doc["issues"], strict=True):
        assert issue.ref is not None
        assert (said["file"], said["sheet"], said["row"]) == (FILE, "instances", issue.ref.row)
        assert said["text"] == str(issue) and said["where"] in said["text"]
        assert (said["message"], said["column"]) == (issue.message, issue.column)
    json.dumps(doc)  # serialisable as is


def test_a_plan_with_its_source_reads_back_for_applying() -> None:
    plan = plan_of([inst("a"), inst("b")])
    source = PlanSource(((FILE, "ab" * 32),), {"timezone": "Asia/Shanghai", "region": None})
    doc = json.loads(json.dumps(plan_to_json(plan, source)))
    assert doc["source"] == {
        "files": [{"path": FILE, "sha256": "ab" * 32}],
        "settings": {"timezone": "Asia/Shanghai", "region": None},
    }
    saved = read_saved_plan(doc, path="plan.json")
    expected = (plan_hash(plan), len(plan.tasks), source)
    assert (saved.plan_hash, saved.task_count, saved.source) == expected
    assert "source" not in plan_to_json(plan)


@pytest.mark.parametrize("broken", ["source", "plan_hash", "version"])
def test_a_plan_without_what_applying_needs_is_refused_naming_the_file(broken: str) -> None:
    source = PlanSource(((FILE, "ab" * 32),), {})
    doc = plan_to_json(plan_of([inst("a")]), source)
    doc[broken] = 99 if broken == "version" else None
    with pytest.raises(InputError, match=r"^plan\.json: .*re-run bulkscan plan --output"):
        read_saved_plan(doc, path="plan.json")


def test_start_times_are_shown_in_their_profile_zone_with_the_offset() -> None:
    body = serialise_body({"start_time": 1_900_000_000})
    assert start_time_text(body, zone="Asia/Shanghai") == "2030-03-18 01:46+08:00 (Asia/Shanghai)"
    ms = serialise_body({"start_time": 1_900_000_000_000})
    assert start_time_text(ms, zone="UTC", unit="ms") == "2030-03-17 17:46+00:00 (UTC)"
    assert start_time_text(serialise_body({"start_time": 0}), zone="UTC") == "now"
    set_language("zh")  # the conftest sets English back after each test
    assert start_time_text(serialise_body({"start_time": 0}), zone="UTC") == "立即"
    own = Profile(name="own", timezone="Europe/Paris")
    zones = start_zones({"own": own, "plain": Profile(name="plain")}, "Asia/Shanghai")
    assert zones == {"own": "Europe/Paris", "plain": "Asia/Shanghai"}


def test_plan_hash_changes_with_any_task() -> None:
    base = plan_hash(plan_of([inst("a"), inst("b")]))
    assert base == plan_hash(plan_of([inst("a"), inst("b")]))
    assert base != plan_hash(plan_of([inst("b"), inst("a")]))
    assert base != plan_hash(plan_of([inst("a"), inst("b", "DWS")]))


def test_default_names_carry_a_digest_of_the_content_stable_across_waves() -> None:
    wave1 = plan_of([inst("a"), inst("b", project_id=P2)])
    wave2 = plan_of([inst("c"), inst("d"), inst("b", project_id=P2)])  # rows in another order
    (a,) = [t for t in wave1.tasks if t.project_id == P1]
    (b1,) = [t for t in wave1.tasks if t.project_id == P2]
    (cd,) = [t for t in wave2.tasks if t.project_id == P1]
    (b2,) = [t for t in wave2.tasks if t.project_id == P2]
    digest = content_digest(P1, "cn-north-4", [("MySQL", "a")])
    assert a.name == f"bulkscan-default-cn-north-4-{digest}"
    assert b1.name == b2.name  # the same databases: the same name, found as "exists"
    assert cd.name != a.name  # other databases: never another task's name
    swapped = plan_of([inst("d"), inst("c")]).tasks[0]
    assert swapped.name == cd.name  # the order of rows does not matter


def test_a_digest_differs_by_project_region_type_and_instance() -> None:
    base = content_digest(P1, "cn-north-4", [("MySQL", "a"), ("MySQL", "b")])
    assert base == content_digest(P1, "cn-north-4", [("MySQL", "b"), ("MySQL", "a")])
    others = {
        content_digest(P2, "cn-north-4", [("MySQL", "a"), ("MySQL", "b")]),
        content_digest(P1, "cn-east-3", [("MySQL", "a"), ("MySQL", "b")]),
        content_digest(P1, "cn-north-4", [("DWS", "a"), ("MySQL", "b")]),
        content_digest(P1, "cn-north-4", [("MySQL", "a")]),
    }
    assert base not in others and len(others) == 4


# --------------------------------------------------------------------------- properties

PATTERNS = [
    "bulkscan-{profile}-{region}-{seq:03}",
    "{project}-{region}-{profile}-{seq}",
    "scan-{db_type}",
    "fixed",
    "{task}-{seq}",
    "{profile}-{digest}",
]

profile_rows = st.lists(
    st.fixed_dictionaries(
        {
            "profile": st.sampled_from(["default", "nightly", "weekly"]),
            "max_sources": st.integers(min_value=1, max_value=4),
            "task_name": st.sampled_from(PATTERNS),
        }
    ),
    max_size=3,
    unique_by=lambda p: p["profile"],
)
instance_rows = st.lists(
    st.fixed_dictionaries(
        {
            "ins_id": st.sampled_from([f"i{n}" for n in range(12)]),
            "db_type": st.sampled_from(["MySQL", "postgres", "DWS", "mysql"]),
            "project_id": st.sampled_from([P1, P2, None]),
            "region": st.sampled_from(["cn-north-4", "cn-east-3", None]),
            "profile": st.sampled_from([None, "default", "nightly", "weekly"]),
            "task": st.sampled_from([None, None, "alpha", "beta"]),
            "enabled": st.sampled_from([None, None, None, False]),
        }
    ),
    max_size=40,
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(instance_rows, profile_rows)
def test_every_valid_instance_lands_in_exactly_one_task(
    rows: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> None:
    validated = checked(rows, profiles)
    plan = build_plan(validated)
    planned = Counter(ref for task in plan.tasks for ref in task.rows)
    assert set(planned.values()) <= {1}
    assert set(planned) == {i.ref for i in validated.instances}
    by_ref = {i.ref: i for i in validated.instances}
    for task in plan.tasks:
        for ref, source in zip(task.rows, task.sources, strict=True):
            instance = by_ref[ref]
            assert (source.ins_id, source.db_type) == (instance.ins_id, instance.db_type)
            assert (task.project_id, task.region, task.profile) == (
                instance.project_id,
                instance.region,
                instance.profile,
            )
    identities = Counter(
        (t.project_id, t.region, t.profile, s.ins_id) for t in plan.tasks for s in t.sources
    )
    assert set(identities.values()) <= {1}


@PROPERTY
@given(instance_rows, profile_rows)
def test_no_task_exceeds_max_sources(
    rows: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> None:
    validated = checked(rows, profiles)
    for task in build_plan(validated).tasks:
        limit = validated.profiles[task.profile].max_sources
        assert 1 <= len(task.sources) <= limit
        assert len(_body(task)["data_sources"]) == len(task.sources)


@PROPERTY
@given(instance_rows, profile_rows)
def test_planning_is_deterministic(
    rows: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> None:
    first = build_plan(checked(rows, profiles))
    second = build_plan(checked(rows, profiles))
    assert plan_hash(first) == plan_hash(second)
    assert json.dumps(plan_to_json(first)) == json.dumps(plan_to_json(second))
    assert [t.body_bytes for t in first.tasks] == [t.body_bytes for t in second.tasks]


@PROPERTY
@given(instance_rows, profile_rows)
def test_names_are_unique_short_and_keys_match_bodies(
    rows: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> None:
    validated = checked(rows, profiles)
    plan = build_plan(validated)
    names = [(t.project_id, t.name) for t in plan.tasks]
    assert len(set(names)) == len(names)  # unique within each project
    assert all(0 < len(n) <= 256 for _, n in names)
    added = plan.issues[len(validated.issues) :]
    assert plan.issues[: len(validated.issues)] == validated.issues
    assert all(i.severity == "warning" and "is sent as" in i.message for i in added)  # no error
    for task in plan.tasks:
        assert _body(task)["task_name"] == task.name
        assert task.body_bytes == serialise_body(_body(task))
        assert task.key == task_key(task.project_id, task.region, task.body_bytes)
    assert len({t.key for t in plan.tasks}) == len(plan.tasks)
