"""Deterministic sample inventories: the shipped examples, test inputs and benchmark files.

``python -m bulkscan.input.samples DIR`` (re)writes the committed samples into DIR:
``sample.xlsx``, ``sample-with-errors.xlsx``, ``sample-instances.csv`` and
``sample-profiles.csv``.  The same seed always gives the same cells and, for the workbooks,
the same bytes (fixed document timestamps and archive dates).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import re
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.input import schema

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "PROJECTS",
    "write_large_csv",
    "write_large_inventory",
    "write_sample",
    "write_sample_csv",
    "write_sample_with_errors",
    "write_samples",
]

REGIONS: tuple[str, str] = ("cn-north-4", "ap-southeast-1")
# Two projects in each region: a Huawei Cloud project belongs to one region.
_PROJECTS_IN: dict[str, tuple[str, str]] = {
    "cn-north-4": ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "5e4d3c2b1a0f9e8d7c6b5a4938271605"),
    "ap-southeast-1": ("7c1e9a2b5d8f40c6a3e1b7d9f2c4a6e8", "d4f6a8c0e2b4461d8f0a2c4e6b8d0f13"),
}
PROJECTS: tuple[str, ...] = tuple(p for pair in _PROJECTS_IN.values() for p in pair)
# The last two show that db_type matching ignores case and knows common aliases.
_DB_TYPES = (
    "MySQL", "PostgreSQL", "TDSQL", "GaussDB", "openGauss", "DM", "mysql", "postgres",
)  # fmt: skip
_OWNERS = ("payments", "logistics", "identity", "analytics", "marketing", "support")
_ENVIRONMENTS = ("prod", "prod", "prod", "staging", "dev")
_NOTES = ("", "", "", "migrated 2024", "read replica", "owner on leave", "PII: customer data")
_STAMP = dt.datetime(2025, 1, 1)  # document timestamps of every generated workbook
_ZIP_DATE = (2025, 1, 1, 0, 0, 0)

# Friendly headers for two columns show that aliases work; the rest are canonical names.
INSTANCE_HEADERS = (
    "Instance ID",
    "DB Type",
    "project_id",
    "region",
    "profile",
    "task",
    "enabled",
    "owner",
    "environment",
    "notes",
)
PROFILE_HEADERS = tuple(column.name for column in schema.PROFILE_COLUMNS)

# name, schedule, start, timezone (blank: --timezone), start_now, switch, delete_failed, six
# scan switches, description, pattern, max_sources: three profiles whose groups split into
# several tasks.
_PROFILES: tuple[tuple[Any, ...], ...] = (
    ("nightly", "DAY", dt.datetime(2025, 3, 1, 2, 0), None, False, True, False,
     True, True, False, False, True, True,
     "Nightly metadata scan of production databases",
     "{profile}-{region}-{project:.8}-{seq:03}", 20),
    ("weekly", "WEEK", "2025-03-02T03:00:00+08:00", None, False, True, True,
     True, True, True, False, True, False,
     "Weekly deep scan, privileges included",
     "{profile}-{region}-{project:.8}-{seq:03}", 10),
    ("once", "ONCE", None, None, True, False, False,
     True, True, False, False, True, True,
     "One-off scan after onboarding",
     "{profile}-{region}-{project:.8}-{seq:03}", 50),
)  # fmt: skip


def write_sample(path: str | os.PathLike[str], *, n_instances: int = 150, seed: int = 7) -> None:
    """The shipped sample: instances over 4 projects (2 per region) and 3 profiles, no errors."""
    rows = list(_sample_instances(n_instances, seed))
    _write_workbook(path, rows, list(_PROFILES))


def write_sample_csv(
    instances_path: str | os.PathLike[str],
    profiles_path: str | os.PathLike[str],
    *,
    n_instances: int = 20,
    seed: int = 7,
) -> None:
    """A small CSV pair (instances, profiles) with the sample's content, as text cells."""
    rows = [[_csv_text(v) for v in row] for row in _sample_instances(n_instances, seed)]
    _write_csv(instances_path, INSTANCE_HEADERS, rows)
    _write_csv(profiles_path, PROFILE_HEADERS, [[_csv_text(v) for v in p] for p in _PROFILES])


def write_sample_with_errors(path: str | os.PathLike[str]) -> None:
    """A workbook with a dozen realistic mistakes, each in a different cell (see the notes)."""
    rows = list(_sample_instances(12, 11))
    for row, (column, value, note) in zip(rows, _INSTANCE_MISTAKES, strict=False):
        if column is not None:
            row[INSTANCE_HEADERS.index(column)] = value
        row[INSTANCE_HEADERS.index("notes")] = note
    rows.append(list(rows[11]))  # the duplicate instance: same id, project and profile
    rows[-1][INSTANCE_HEADERS.index("notes")] = "mistake: the row above, listed twice"
    profiles = [list(p) for p in _PROFILES]
    at = PROFILE_HEADERS.index
    profiles[0][at("schedule_type")] = "HOURLY"
    profiles[1][at("start_time")] = "next tuesday"
    profiles[2][at("max_sources")] = 0
    profiles[2][at("task_description")] = "One-off scan. " * 80  # over 1024 characters
    clash = list(_PROFILES[2])
    clash[at("task_description")] = "mistake: a second profile named 'once'"
    profiles.append(clash)
    _write_workbook(path, rows, profiles)


# (column, wrong value, note) for the first rows of sample-with-errors.xlsx.
_INSTANCE_MISTAKES: tuple[tuple[str | None, Any, str], ...] = (
    ("DB Type", "mysq", "mistake: db_type 'mysq' (did you mean MySQL?)"),
    ("project_id", "abc", "mistake: project_id is not 32 hex characters"),
    ("region", "cn-nort-4", "mistake: region typo"),
    ("profile", "nighly", "mistake: no such profile"),
    ("enabled", "maybe", "mistake: not a yes/no value"),
    ("Instance ID", None, "mistake: ins_id left blank"),
    ("Instance ID", 12345, "fine: an ins_id typed as a number is read as '12345'"),
    ("DB Type", "PostgreSQL", "fine"),
    (None, None, "fine"),
    (None, None, "fine"),
    (None, None, "fine"),
    (None, None, "listed twice (see the next row)"),
)


def write_large_inventory(path: str | os.PathLike[str], n_rows: int, *, seed: int = 1) -> None:
    """A large valid workbook for benchmarks (streamed with openpyxl's write-only mode)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(schema.INSTANCES_SHEET)
    sheet.append(list(INSTANCE_HEADERS))
    for row in _sample_instances(n_rows, seed, disabled_every=0, tasks=False):
        sheet.append(row)
    profiles = book.create_sheet(schema.PROFILES_SHEET)
    profiles.append(list(PROFILE_HEADERS))
    for profile in _PROFILES:
        profiles.append(list(profile))
    book.properties.created = _STAMP
    book.save(os.fspath(path))


def write_large_csv(path: str | os.PathLike[str], n_rows: int, *, seed: int = 1) -> None:
    """A large valid instances CSV for benchmarks (the built-in default profile applies)."""
    columns = [h for h in INSTANCE_HEADERS if h not in ("profile", "task")]
    keep = [INSTANCE_HEADERS.index(h) for h in columns]
    rows = (
        [_csv_text(row[i]) for i in keep]
        for row in _sample_instances(n_rows, seed, disabled_every=0, tasks=False)
    )
    _write_csv(path, columns, rows)


def write_samples(folder: str | os.PathLike[str]) -> list[Path]:
    """Write the four committed samples into ``folder``; returns their paths."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / name for name in _SAMPLE_FILES]
    write_sample(paths[0])
    write_sample_with_errors(paths[1])
    write_sample_csv(paths[2], paths[3])
    return paths


_SAMPLE_FILES = (
    "sample.xlsx",
    "sample-with-errors.xlsx",
    "sample-instances.csv",
    "sample-profiles.csv",
)


# --------------------------------------------------------------------------- rows


def _sample_instances(
    n: int, seed: int, *, disabled_every: int = 75, tasks: bool = True
) -> Iterator[list[Any]]:
    """Instance rows (cells in ``INSTANCE_HEADERS`` order), deterministic for a seed.

    Every ``disabled_every``-th row has ``enabled = no``; with ``tasks``, some ``once`` rows
    name an explicit task.
    """
    rng = random.Random(seed)
    profiles = ("nightly",) * 6 + ("weekly",) * 3 + ("once",) * 2
    for i in range(n):
        profile = rng.choice(profiles)
        task = "payments-cutover-check" if tasks and profile == "once" and i % 5 == 0 else None
        enabled = "no" if disabled_every and i % disabled_every == disabled_every - 1 else None
        yield [
            f"{rng.getrandbits(128):032x}in{rng.choice(('01', '03', '14'))}",
            rng.choice(_DB_TYPES),
            *_project_region(rng.random() < 0.4, rng.random() < 0.35),
            profile,
            task,
            enabled if enabled else rng.choice((None, None, None, "yes", True)),
            rng.choice(_OWNERS),
            rng.choice(_ENVIRONMENTS),
            rng.choice(_NOTES) or None,
        ]


def _project_region(second_project: bool, second_region: bool) -> tuple[str, str]:
    region = REGIONS[second_region]
    return _PROJECTS_IN[region][second_project], region


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------- writers


def _write_workbook(
    path: str | os.PathLike[str], instances: Sequence[Sequence[Any]], profiles: Sequence[Any]
) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    for index, (title, headers, rows) in enumerate(
        (
            (schema.INSTANCES_SHEET, INSTANCE_HEADERS, instances),
            (schema.PROFILES_SHEET, PROFILE_HEADERS, profiles),
        )
    ):
        sheet = book.active if index == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        sheet.append(list(headers))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(list(row))
        sheet.freeze_panes = "A2"
        for column_cells in sheet.iter_cols(min_row=1, max_row=1):
            width = max(12, len(str(column_cells[0].value)) + 4)
            sheet.column_dimensions[column_cells[0].column_letter].width = width
    book.properties.created = _STAMP
    book.properties.creator = "bulkscan"
    book.save(os.fspath(path))
    freeze_workbook(path)


def freeze_workbook(path: str | os.PathLike[str]) -> None:
    """Make a saved .xlsx byte-for-byte reproducible: fixed modified time and archive dates."""
    target = Path(path)
    with zipfile.ZipFile(target) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    stamp = _STAMP.strftime("%Y-%m-%dT%H:%M:%SZ").encode("ascii")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            fixed = data
            if name == "docProps/core.xml":
                fixed = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, fixed)


def _write_csv(
    path: str | os.PathLike[str], headers: Sequence[str], rows: Iterable[Sequence[str]]
) -> None:
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bulkscan.input.samples [DIR]``: write the committed samples (``inputs``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    write_samples(args[0] if args else "inputs")


if __name__ == "__main__":
    main()
