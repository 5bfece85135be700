"""The sample generators and the committed samples they produced (which must not drift)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulkscan.input import samples
from bulkscan.input.loader import load_input
from bulkscan.runner import check, prepare

INPUTS = Path(__file__).resolve().parents[2] / "inputs"


def cells(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    workbook = openpyxl.load_workbook(path)
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("samples")
    return {path.name: path for path in samples.write_samples(folder)}


@pytest.mark.parametrize("name", ["sample.xlsx", "sample-with-errors.xlsx"])
def test_committed_workbooks_match_the_generator(fresh: dict[str, Path], name: str):
    assert cells(INPUTS / name) == cells(fresh[name])


@pytest.mark.parametrize("name", ["sample-instances.csv", "sample-profiles.csv"])
def test_committed_csv_files_match_the_generator(fresh: dict[str, Path], name: str):
    assert (INPUTS / name).read_bytes() == fresh[name].read_bytes()


def test_generated_workbooks_are_byte_for_byte_reproducible(tmp_path: Path):
    first, second = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    samples.write_sample(first)
    samples.write_sample(second)
    assert first.read_bytes() == second.read_bytes()
    samples.write_sample(second, seed=8)
    assert first.read_bytes() != second.read_bytes()


def test_sample_plans_cleanly_over_projects_regions_and_profiles():
    prepared = prepare(INPUTS / "sample.xlsx")
    book, plan = prepared.book, prepared.plan
    assert book.instances.headers[:2] == ("Instance ID", "DB Type")  # aliases at work
    assert len(book.instances.rows) == 150
    assert prepared.validated.issues == ()
    tasks = plan.tasks
    assert {t.project_id for t in tasks} == set(samples.PROJECTS)
    assert {t.region for t in tasks} == set(samples.REGIONS)
    assert {t.profile for t in tasks} == {"nightly", "weekly", "once"}
    groups = {(t.project_id, t.region, t.profile) for t in tasks}
    assert len(tasks) > len(groups), "some groups are split by max_sources"
    assert len(plan.skipped) == 2
    assert plan.instance_count == 148
    instance = prepared.validated.instances[0]
    assert [name for name, _ in instance.extras] == ["owner", "environment", "notes"]


def test_sample_csv_pair_plans_cleanly():
    prepared = prepare(
        INPUTS / "sample-instances.csv", profiles_path=INPUTS / "sample-profiles.csv"
    )
    assert prepared.validated.issues == ()
    assert prepared.plan.instance_count == 20
    assert {t.profile for t in prepared.plan.tasks} <= {"nightly", "weekly", "once"}


# Each mistake of sample-with-errors.xlsx: (sheet, row, column header as written).
MISTAKES = {
    ("instances", 2, "DB Type"),  # 'mysq'
    ("instances", 3, "project_id"),  # 'abc'
    ("instances", 4, "region"),  # 'cn-nort-4'
    ("instances", 5, "profile"),  # 'nighly'
    ("instances", 6, "enabled"),  # 'maybe'
    ("instances", 7, "Instance ID"),  # blank
    ("instances", 14, "Instance ID"),  # the duplicate of row 13
    ("profiles", 2, "schedule_type"),  # 'HOURLY'
    ("profiles", 3, "start_time"),  # 'next tuesday'
    ("profiles", 4, "max_sources"),  # 0
    ("profiles", 4, "task_description"),  # too long
    ("profiles", 5, "profile"),  # a second 'once'
}


def test_sample_with_errors_has_a_dozen_mistakes_each_in_its_own_cell():
    issues = check(INPUTS / "sample-with-errors.xlsx").issues
    found = {(i.ref.sheet, i.ref.row, i.column) for i in issues if i.ref is not None}
    assert found == MISTAKES
    assert len(issues) == len(MISTAKES)
    assert sum(i.severity == "error" for i in issues) >= 8


def test_number_typed_ins_id_is_read_as_its_digits():
    book = load_input(INPUTS / "sample-with-errors.xlsx")
    row = next(r for r in book.instances.rows if r.ref.row == 8)
    assert row.values["ins_id"] == 12345


@pytest.mark.parametrize("name", ["sample.xlsx", "sample-with-errors.xlsx"])
def test_samples_hold_no_formulas(name: str):
    workbook = openpyxl.load_workbook(INPUTS / name)
    for sheet in workbook:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row)


def test_large_generators_give_valid_inventories(tmp_path: Path):
    workbook, text = tmp_path / "large.xlsx", tmp_path / "large.csv"
    samples.write_large_inventory(workbook, 400)
    samples.write_large_csv(text, 300)
    planned = prepare(workbook).plan
    assert planned.instance_count == 400
    assert max(len(t.sources) for t in planned.tasks) <= 50
    assert prepare(text).plan.instance_count == 300
