"""Every workbook, rendered by LibreOffice as a person would see it (scripts/render_workbooks.py).

Runs only where ``soffice`` and ``pdftoppm`` exist (LibreOffice, poppler-utils); elsewhere it
is skipped with the reason.  The PDF's text is what LibreOffice drew, charts included, so the
checks read what is on the page: every outcome in the chart as well as in its table, the
audit's charts on its first page, the header row on every page of a long table.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from bulkscan.models import Outcome

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = "scripts/render_workbooks.py"
_MISSING = [tool for tool in ("soffice", "pdftoppm", "pdftotext") if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(_MISSING), reason=f"{', '.join(_MISSING)} not installed: cannot render workbooks"
    ),
]


def _script(root: Path) -> Any:
    spec = importlib.util.spec_from_file_location("render_workbooks", root / SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(pdf: Path, page: int | None = None, *, layout: bool = True) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    done = subprocess.run(
        ["pdftotext", *(["-layout"] if layout else []), *pages, str(pdf), "-"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def test_every_workbook_renders_and_reads_on_paper(tmp_path: Path, pytestconfig: Any) -> None:
    script = _script(pytestconfig.rootpath)
    books = script.write_samples(tmp_path)
    names = sorted(book.stem for book in books)
    assert names == ["audit", "errors", "results", "retry", "uncovered"]
    pages = script.render(books, tmp_path, dpi=30)
    for book, pngs in pages.items():
        assert pngs, f"{book.name}: no page rendered"
        assert all(png.stat().st_size > 1000 for png in pngs), book.name
    pdf = tmp_path / "pdf"

    summary = _text(pdf / "results.pdf", 1, layout=False)  # in drawing order
    table = summary.index("Tasks by outcome")
    chart = summary.index("Tasks by outcome", table + 1)  # the chart's title, then its text
    labels = "".join(summary[chart : summary.index("Errors by code", chart)].split())
    for outcome in Outcome:  # every label drawn, none dropped for lack of room
        assert str(outcome).replace(" ", "") in labels, (outcome, labels)
    assert "Settings (no secrets are kept)" not in summary[:chart]  # settings come later

    results = _text(pdf / "results.pdf")
    rows_pages = [p for p in results.split("\f") if "source row" in p]
    assert rows_pages and all(p.lstrip().startswith("source file") for p in rows_pages)

    audit = _text(pdf / "audit.pdf", 1)  # the charts on the first page, under the verdict
    assert "Instances by status" in audit and "% covered by db_type" in audit
    assert audit.index("verdict") < audit.index("Instances by status")

    retry = _text(pdf / "retry.pdf")
    assert "retry reason" in retry and "Rows to run again" in retry
    uncovered = _text(pdf / "uncovered.pdf")
    assert "why uncovered" in uncovered and "What to fix" in uncovered
    errors = _text(pdf / "errors.pdf")
    assert "severity" in errors and "not a known database type" in errors
