"""Shared fixtures: real workbooks written into ``tmp_path``.

* ``make_xlsx``: an .xlsx written by openpyxl from rows of values, optionally placed at an
  offset (leading blank rows and columns), as a user's spreadsheet would be.
* ``make_raw_xlsx``: an .xlsx assembled from hand-written sheet XML, for what openpyxl will
  not write (cached formula values, odd cell layouts, hostile content).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import zipfile
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from hypothesis import settings

from bulkscan.i18n import set_language

# Shared, noisy machines: no per-example deadline (speed is measured in bench/, never here).
# CI replays the same examples every run (derandomize) so that its verdict is reproducible;
# local runs keep exploring new ones.
settings.register_profile("bulkscan", deadline=None, derandomize=bool(os.environ.get("CI")))
settings.load_profile("bulkscan")


def pytest_configure(config: pytest.Config) -> None:
    """Commands started before any test runs (an environment built at import) keep their
    state (sending locks) in this session's folder, never in the developer's."""
    if hasattr(config, "workerinput"):
        return  # a parallel worker: it inherited the folder of the session that started it
    folder = tempfile.mkdtemp(prefix="bulkscan-tests-state-")
    os.environ["XDG_STATE_HOME"] = folder
    config.add_cleanup(functools.partial(shutil.rmtree, folder, ignore_errors=True))


@pytest.fixture(autouse=True)
def _no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads the developer's own bulkscan config file, config variables or locale
    (English unless a test asks for Chinese), each keeps its state (sending locks) to itself,
    so tests may run side by side, and no test leaves its language to the next."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
    for name in (
        "BULKSCAN_CONFIG",
        "BULKSCAN_CONFIG_PROFILE",
        "BULKSCAN_REGION",
        "BULKSCAN_STATE_DIR",
        "HUAWEICLOUD_SDK_REGION",
        # the terminal's size and colour wishes come from each test's own pty or pipe, not
        # from the runner (pytest-xdist's workers set COLUMNS=80 and LINES=24)
        "COLUMNS",
        "LINES",
        "NO_COLOR",
        "FORCE_COLOR",
        "BULKSCAN_LANG",
        "LC_ALL",
        "LC_MESSAGES",
        "LANG",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    set_language("en")


if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_SHEET_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_BOOK_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_SST_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"


class MakeXlsx(Protocol):
    def __call__(
        self,
        sheets: Mapping[str, Sequence[Sequence[Any]]],
        *,
        name: str = ...,
        origin: tuple[int, int] = ...,
    ) -> Path: ...


class MakeRawXlsx(Protocol):
    def __call__(
        self,
        sheets: Mapping[str, str],
        *,
        shared: Sequence[str] | str | None = ...,
        name: str = ...,
        extra: Mapping[str, bytes] | None = ...,
    ) -> Path: ...


@pytest.fixture
def make_xlsx(tmp_path: Path) -> MakeXlsx:
    """Write ``{sheet: rows}`` with openpyxl; ``origin`` = (row, column) of the first cell."""
    from openpyxl import Workbook

    def make(
        sheets: Mapping[str, Sequence[Sequence[Any]]],
        *,
        name: str = "book.xlsx",
        origin: tuple[int, int] = (1, 1),
    ) -> Path:
        book = Workbook()
        book.remove(book.active)  # type: ignore[arg-type]
        for title, rows in sheets.items():
            sheet = book.create_sheet(title)
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    if value is not None:
                        sheet.cell(row=origin[0] + r, column=origin[1] + c, value=value)
        path = tmp_path / name
        book.save(path)
        return path

    return make


@pytest.fixture
def make_raw_xlsx(tmp_path: Path) -> MakeRawXlsx:
    """Assemble an .xlsx from ``{sheet name: <sheetData> body}`` and shared strings.

    ``shared`` is a list of strings or a complete ``sharedStrings.xml`` text; ``extra`` adds
    members as they are (name → bytes).
    """

    def make(
        sheets: Mapping[str, str],
        *,
        shared: Sequence[str] | str | None = None,
        name: str = "raw.xlsx",
        extra: Mapping[str, bytes] | None = None,
    ) -> Path:
        members = _raw_members(sheets, shared)
        members.update(extra or {})
        path = tmp_path / name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        return path

    return make


def _raw_members(sheets: Mapping[str, str], shared: Sequence[str] | str | None) -> dict[str, bytes]:
    types = [
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>',
        '<Default Extension="xml" ContentType="application/xml"/>',
        f'<Override PartName="/xl/workbook.xml" ContentType="{_BOOK_CT}"/>',
    ]
    rels, entries, members = [], [], {}
    for i, (title, body) in enumerate(sheets.items(), start=1):
        types.append(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_SHEET_CT}"/>'
        )
        target = f"worksheets/sheet{i}.xml"
        rels.append(f'<Relationship Id="rId{i}" Type="{REL_NS}/worksheet" Target="{target}"/>')
        entries.append(f'<sheet name="{title}" sheetId="{i}" r:id="rId{i}"/>')
        members[f"xl/worksheets/sheet{i}.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN_NS}">'
            f"<sheetData>{body}</sheetData></worksheet>"
        ).encode()
    if shared is not None:
        types.append(f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_SST_CT}"/>')
        rels.append(
            f'<Relationship Id="rIdS" Type="{REL_NS}/sharedStrings" Target="sharedStrings.xml"/>'
        )
        if not isinstance(shared, str):
            items = "".join(f"<si><t>{s}</t></si>" for s in shared)
            shared = f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN_NS}">{items}</sst>'
        members["xl/sharedStrings.xml"] = shared.encode()
    members["[Content_Types].xml"] = f'<Types xmlns="{_CT_NS}">{"".join(types)}</Types>'.encode()
    members["_rels/.rels"] = (
        f'<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
        f'Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ).encode()
    members["xl/workbook.xml"] = (
        f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheets>{"".join(entries)}</sheets>'
        "</workbook>"
    ).encode()
    members["xl/_rels/workbook.xml.rels"] = (
        f'<Relationships xmlns="{_PKG_REL_NS}">{"".join(rels)}</Relationships>'
    ).encode()
    return members
