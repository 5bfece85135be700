"""Write sample workbooks against the simulator and render them as a person would see them.

    python scripts/render_workbooks.py [OUT_DIR]

writes, under OUT_DIR (default ``build/render``):

* ``results.xlsx`` and ``retry.xlsx`` of a run with failures (a project the service does not
  know, 503s until bulkscan gives up) against a ``bulkscan simulate`` server;
* an audit workbook and its uncovered workbook (part of ``sample.xlsx`` created against a
  ``bulkscan simulate`` server, then the whole of it audited);
* the errors workbook of ``bulkscan validate sample-with-errors.xlsx --report``;

then converts each workbook to PDF with LibreOffice (``soffice --headless --convert-to
pdf``) and each PDF page to PNG (``pdftoppm -png``), under ``OUT_DIR/png``.  Look at the
pictures: a workbook that reads badly on paper reads badly on screen.  Needs ``soffice`` and
``pdftoppm`` on PATH (LibreOffice and poppler-utils); the PNGs are not committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import openpyxl

from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK

if TYPE_CHECKING:
    from collections.abc import Iterator

RENDER_TOOLS = ("soffice", "pdftoppm")
_TIMEOUT_S = 240
_PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
_UNKNOWN_PROJECT = "ffffffffffffffffffffffffffffffff"  # the simulator answers 404 for it
_ENV = {**os.environ, "HUAWEICLOUD_SDK_AK": DEFAULT_AK, "HUAWEICLOUD_SDK_SK": DEFAULT_SK}


def missing_tools() -> list[str]:
    """The render tools not on PATH (empty when the workbooks can be rendered)."""
    return [tool for tool in RENDER_TOOLS if shutil.which(tool) is None]


def _bulkscan(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bulkscan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        env=env,
        check=False,
    )
    if done.returncode not in (0, 1, 2):  # 1: some failed or uncovered, 2: input errors
        raise RuntimeError(f"bulkscan {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done.stdout


def _mixed_input(path: Path) -> Path:
    """An inventory whose run ends in every way a run commonly ends."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "instances"
    ws.append(["Instance ID", "Instance Name", "DB Type", "project_id", "region", "profile",
               "owner", "enabled"])  # fmt: skip
    kinds = ("MySQL", "PostgreSQL", "GaussDB")
    for n in range(1, 25):
        profile = "nightly" if n <= 6 else "default"
        enabled = "no" if n == 7 else None
        project = _UNKNOWN_PROJECT if n > 21 else _PROJECT
        ws.append([f"{n:02d}e4c3b2a1f0e9d8c7b6a5f4e3d2c1b0in01", f"orders-db-{n:02d}",
                   kinds[n % 3], project, "cn-north-4", profile, "payments", enabled])  # fmt: skip
    ws.append(["05e4c3b2a1f0e9d8c7b6a5f4e3d2c1b0in01", "orders-db-05 (again)", "PostgreSQL",
               _PROJECT, "cn-north-4", "default", "logistics", None])  # fmt: skip
    profiles = wb.create_sheet("profiles")
    profiles.append(["profile", "schedule_type", "start_time", "max_sources", "task_description"])
    profiles.append(["default", "ONCE", None, 3, "created by bulkscan"])
    profiles.append(["nightly", "ONCE", dt.datetime(2030, 1, 1, 2, 0), 2, "at 2 on New Year"])
    wb.save(path)
    return path


def _run_with_failures(work: Path, out: Path) -> list[Path]:
    mixed = _mixed_input(work / "mixed.xlsx")
    reports = work / "run-reports"
    faults = ("--project", _PROJECT, "--faults", "http503=0.3", "--seed", "3")
    with _simulator(work, *faults) as url:
        # without the asset-centre check: the workbook shows how tasks end (faults, a missing
        # project), not rows held back before sending
        _bulkscan("run", str(mixed), "--endpoint", url, "--attempts", "2", "--rate", "50/s",
                  "--yes", "--no-remote-check", "--reports-dir", str(reports), cwd=work,
                  env=_ENV)  # fmt: skip
    (run_dir,) = reports.iterdir()
    found = []
    for name in ("results.xlsx", "retry.xlsx"):
        if (run_dir / name).exists():
            found.append(Path(shutil.copy(run_dir / name, out / name)))
    return found


def _audit(work: Path, out: Path) -> list[Path]:
    sample = work / "sample.xlsx"
    reports = work / "audit-reports"
    with _simulator(work, "--seed", "1") as url:
        common = ("--endpoint", url, "--rate", "100/s")
        _bulkscan("run", str(sample), *common, "--limit", "9", "--yes",
                  "--reports-dir", str(work / "runs"), cwd=work, env=_ENV)  # fmt: skip
        _bulkscan("audit", str(sample), *common, "--reports-dir", str(reports), cwd=work,
                  env=_ENV)  # fmt: skip
    found = []
    for kind in ("audit", "uncovered"):
        for path in sorted(reports.glob(f"*-{kind}-*.xlsx")):
            found.append(Path(shutil.copy(path, out / f"{kind}.xlsx")))
    return found


@contextlib.contextmanager
def _simulator(work: Path, *options: str) -> Iterator[str]:
    """A ``bulkscan simulate`` server on a free local port; yields its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bulkscan", "simulate", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=work,
    )
    try:
        yield _served_url(server)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def _served_url(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    for line in server.stdout:
        match = re.search(r"https?://127\.0\.0\.1:\d+", line)
        if match:
            return match.group(0)
    raise RuntimeError("bulkscan simulate did not say where it listens")


def _errors(work: Path, out: Path) -> list[Path]:
    target = out / "errors.xlsx"
    _bulkscan("validate", str(work / "sample-with-errors.xlsx"), "--report", str(target),
              cwd=work)  # fmt: skip
    return [target]


def write_samples(out: Path) -> list[Path]:
    """The sample workbooks (results, retry, audit, uncovered, errors), written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulkscan-render-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "bulkscan.input.samples", str(work)],
                       check=True, capture_output=True, timeout=_TIMEOUT_S)  # fmt: skip
        return [*_run_with_failures(work, out), *_audit(work, out), *_errors(work, out)]


def render(workbooks: list[Path], out: Path, *, dpi: int = 70) -> dict[Path, list[Path]]:
    """Each workbook as PDF (LibreOffice, a private profile) and its pages as PNG files."""
    pdf_dir, png_dir = out / "pdf", out / "png"
    pdf_dir.mkdir(parents=True, exist_ok=True)
    png_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulkscan-lo-") as profile:
        subprocess.run(
            ["soffice", f"-env:UserInstallation={Path(profile).as_uri()}", "--headless",
             "--convert-to", "pdf", "--outdir", str(pdf_dir), *map(str, workbooks)],
            check=True, capture_output=True, timeout=_TIMEOUT_S,
        )  # fmt: skip
    pages: dict[Path, list[Path]] = {}
    for book in workbooks:
        pdf = pdf_dir / f"{book.stem}.pdf"
        for old in png_dir.glob(f"{book.stem}-*.png"):
            old.unlink()
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(png_dir / book.stem)],
                       check=True, capture_output=True, timeout=_TIMEOUT_S)  # fmt: skip
        pages[book] = sorted(png_dir.glob(f"{book.stem}-*.png"))
    return pages


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "build/render")
    missing = missing_tools()
    if missing:
        print(f"render-workbooks: {', '.join(missing)} not found (install LibreOffice and "
              "poppler-utils)", file=sys.stderr)  # fmt: skip
        return 2
    books = write_samples(out)
    for book, pngs in render(books, out).items():
        print(f"{book.name}: {len(pngs)} page(s): {pngs[0].parent if pngs else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
