"""TLS through the command line, against an HTTPS simulator with a self-signed certificate.

By default the certificate is refused, with one line that says what to do (exit 3, nothing
created); ``--ca-bundle`` trusts it; ``--insecure`` works and warns; a bundle that cannot be
used is refused before anything is read or sent (exit 2).  The certificates are made by the
``openssl`` command (the tests are skipped without it).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.request
from typing import TYPE_CHECKING

import pytest
from test_hostile import PROJECT, REGION, write_inventory

from bulkscan.run.store import Journal
from tests.e2e._cli import clean_env, cli, simulator_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

AK = "BULKSCANSIMULATORAK0"
SK = "bulkscan-simulator-sk-not-a-real-secret0"
ENV = clean_env(HUAWEICLOUD_SDK_AK=AK, HUAWEICLOUD_SDK_SK=SK)
FAST = ["--rate", "100/s", "--connect-timeout", "2", "--read-timeout", "5"]


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"),
            *("-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    return {name: _self_signed(folder, name) for name in ("server", "other")}


@pytest.fixture
def https(tmp_path: Path, certs: dict[str, tuple[Path, Path]]) -> Iterator[str]:
    cert, key = certs["server"]
    with simulator_process(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key)) as (url, _):
        assert url.startswith("https://127.0.0.1:")
        yield url


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    headers = ["ins_id", "db_type", "project_id", "region"]
    rows = [[f"ins-{i}", "MySQL", PROJECT, REGION] for i in range(3)]
    return write_inventory(tmp_path / "dbs.xlsx", headers, rows)


def _tasks(url: str, cafile: Path) -> list[dict[str, object]]:
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(f"{url}/_sim/tasks", context=context, timeout=10) as answer:
        tasks: list[dict[str, object]] = json.load(answer)
    return tasks


def _run(
    inventory: Path, url: str, reports: Path, *more: str, command: str = "run"
) -> subprocess.CompletedProcess[str]:
    extra = ["--yes"] if command == "run" else []
    done = cli(
        command,
        str(inventory),
        "--endpoint",
        url,
        *FAST,
        *extra,
        "--reports-dir",
        str(reports),
        *more,
        env=ENV,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def test_the_default_refuses_a_self_signed_certificate_in_one_clear_line(
    inventory: Path, https: str, tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    for command in ("run", "audit"):
        done = _run(inventory, https, tmp_path / command, command=command)
        assert done.returncode == 3, done.stderr[-3000:]
        stopped = [line for line in done.stderr.splitlines() if "stopped: " in line]
        assert len(stopped) == 1, done.stderr  # run: "stopped: ...", audit: "bulkscan: stopped:"
        assert "certificate of 127.0.0.1:" in stopped[0], stopped[0]
        assert "(self-signed certificate)" in stopped[0]
        assert "add its CA certificate with --ca-bundle" in stopped[0]
    assert _tasks(https, certs["server"][0]) == []


def test_ca_bundle_trusts_the_certificate(
    inventory: Path, https: str, tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert = str(certs["server"][0])
    done = _run(inventory, https, tmp_path / "r", "--ca-bundle", cert, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["outcomes"] == {"created": 1}
    assert "NOT verified" not in done.stderr
    audit = _run(inventory, https, tmp_path / "a", "--ca-bundle", cert, command="audit")
    assert audit.returncode == 0, audit.stderr[-3000:]
    assert len(_tasks(https, certs["server"][0])) == 1


def test_a_bundle_of_another_authority_still_refuses(
    inventory: Path, https: str, tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    done = _run(inventory, https, tmp_path / "r", "--ca-bundle", str(certs["other"][0]))
    assert done.returncode == 3
    assert "certificate of 127.0.0.1:" in done.stderr and "--ca-bundle" in done.stderr
    assert _tasks(https, certs["server"][0]) == []


def test_insecure_works_warns_and_is_recorded(
    inventory: Path, https: str, tmp_path: Path, certs: dict[str, tuple[Path, Path]]
) -> None:
    reports = tmp_path / "r"
    done = _run(inventory, https, reports, "--insecure")
    assert done.returncode == 0, done.stderr[-3000:]
    warning = "bulkscan: warning: TLS certificates are NOT verified (--insecure)"
    assert [line for line in done.stderr.splitlines() if line.startswith(warning)]
    (run_dir,) = reports.iterdir()
    with Journal.open(run_dir, readonly=True) as journal:
        assert journal.meta().settings["tls_verify"] is False
    audit = _run(inventory, https, tmp_path / "a", "--insecure", command="audit")
    assert audit.returncode == 0 and warning in audit.stderr
    assert len(_tasks(https, certs["server"][0])) == 1


@pytest.mark.parametrize(
    ("bundle", "message"),
    [("missing.pem", "does not exist"), ("junk.pem", "is not a PEM CA bundle")],
)
def test_an_unusable_ca_bundle_is_refused_before_anything_is_sent(
    inventory: Path, https: str, tmp_path: Path, bundle: str, message: str
) -> None:
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    reports = tmp_path / "r"
    done = _run(inventory, https, reports, "--ca-bundle", str(tmp_path / bundle))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == done.stderr.strip()  # one line
    assert done.stderr.startswith(f"bulkscan: error: --ca-bundle {tmp_path / bundle}")
    assert message in done.stderr
    assert not reports.exists()


def test_https_to_a_plain_http_server_stops_at_once(inventory: Path, tmp_path: Path) -> None:
    with simulator_process(tmp_path) as (url, _):
        done = _run(inventory, url.replace("http://", "https://"), tmp_path / "r")
    assert done.returncode == 3, done.stderr[-3000:]
    assert "TLS failed" in done.stderr
