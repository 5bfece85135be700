"""No credential ever leaves bulkscan: not on screen, in a file it writes, or in an error.

Every command that can meet credentials (``validate``, ``plan``, ``run`` with faults, with a
fatal 401 and resumed, ``report``, ``audit``) runs as a real child process against a
simulator child process on 127.0.0.1, with known fake values in the environment (or a token
file).  Then stdout, stderr, ``events.jsonl``, the journal's bytes (``journal.sqlite`` and
its ``-wal``/``-shm``), every member of every workbook and the plan file are searched for
any 12-character piece of each value.

The secret key, the security token and the IAM token are secrets.  The access key id is
not, strictly (it names the key, like a user name), but bulkscan never shows it whole
either: messages show it masked (``AKFA…WN4R``), so it is searched for like the secrets.
"""

from __future__ import annotations

import asyncio
import json
import traceback
import urllib.request
import zipfile
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from test_hostile import PROJECT, REGION, write_inventory

from bulkscan import runner
from bulkscan.config import DispatchSettings, InputSettings
from bulkscan.dsc.client import DscClient, Endpoints
from bulkscan.dsc.credentials import AkSk, Token, resolve_credentials
from bulkscan.errors import BulkscanError, CredentialsError, RunFatalError
from bulkscan.run.states import TaskState
from bulkscan.run.store import Journal
from bulkscan.sim.server import Simulator
from tests.e2e._cli import clean_env, cli, simulator_process

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from bulkscan.events import Event

AK = "AKFAKE7QZ9LM2XV8WN4R"
SK = "SKfake3Jd8Pq1Rt6Yu0Io5Kl7Zx2Cv9Bn4Mm"
WRONG_SK = "SKwrong8Hh3Nn6Bb1Vv4Cc7Xx0Zz5Aa2Ss"
SECURITY_TOKEN = "STfake5Gh2Kj8Lp3Qw6Er1Ty4Ui9Op0As7Df" * 4  # real ones are long
IAM_TOKEN = "MIIfake2Wq7Ed4Rf9Tg6Yh1Uj8Ik3Ol0Pz5Xc" * 8
WRONG_TOKEN = "MIIwrong4Ty7Gh2Jk9Lz3Xc6Vb1Nm8Qw5Er0" * 8
WATCHED = {
    "access key": AK,
    "secret key": SK,
    "wrong secret key": WRONG_SK,
    "security token": SECURITY_TOKEN,
    "IAM token": IAM_TOKEN,
    "wrong IAM token": WRONG_TOKEN,
}
PIECE = 12
FAST = ["--rate", "100/s", "--connect-timeout", "2", "--read-timeout", "5"]


def leaks(text: str) -> list[str]:
    """Which watched values appear in ``text``, whole or as any 12-character piece."""
    found = []
    for name, value in WATCHED.items():
        pieces = {value[i : i + PIECE] for i in range(len(value) - PIECE + 1)}
        if any(piece in text for piece in pieces):
            found.append(name)
    return found


def _file_texts(path: Path) -> Iterator[tuple[str, str]]:
    """(name, text) of a file, or of every member of a workbook."""
    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                yield f"{path.name}:{member}", archive.read(member).decode("utf-8", "replace")
        return
    yield path.name, data.decode("latin-1")  # bytes as they are (SQLite pages, WAL frames)


def assert_nothing_leaked(*places: Path, outputs: tuple[str, ...] = ()) -> list[str]:
    """Search every file under ``places`` and the given outputs; returns the files searched."""
    searched = []
    for place in places:
        for path in sorted(p for p in place.rglob("*") if p.is_file()):
            for name, text in _file_texts(path):
                searched.append(name)
                assert not leaks(text), f"{leaks(text)} written into {path}: {name}"
    for n, text in enumerate(outputs):
        assert not leaks(text), f"{leaks(text)} printed (output {n}): {text[-2000:]}"
    return searched


def test_the_search_finds_a_piece_planted_in_a_workbook_a_database_or_an_output(
    tmp_path: Path,
) -> None:
    import sqlite3

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["C7"] = f"note: {SK[3:17]}…"
    book.save(tmp_path / "book.xlsx")
    with pytest.raises(AssertionError, match=r"\['secret key'\] written into .*book.xlsx:xl/"):
        assert_nothing_leaked(tmp_path)
    (tmp_path / "book.xlsx").unlink()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", (json.dumps({"h": SECURITY_TOKEN[20:40]}),))
    conn.close()
    with pytest.raises(AssertionError, match="security token"):
        assert_nothing_leaked(tmp_path)
    with pytest.raises(AssertionError, match="access key"):
        assert_nothing_leaked(outputs=(f"key {AK[:12]}",))
    assert assert_nothing_leaked(outputs=("AKFA…WN4R", SK[:11])) == []


def _checked(done: subprocess.CompletedProcess[str], code: int) -> tuple[str, str]:
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout, done.stderr


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """What bulkscan writes (searched); the simulator's own output is kept apart."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def inventory(work: Path) -> Path:
    headers = ["Instance ID", "DB Type", "project_id", "region", "owner"]
    rows = [[f"ins-{i}", "MySQL", PROJECT, REGION, "dba team"] for i in range(6)]
    profiles: list[list[Any]] = [["profile", "max_sources"], ["default", 1]]
    return write_inventory(work / "inventory.xlsx", headers, rows, profiles)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A simulator that knows the AK/SK pair and the IAM token; yields its URL."""
    apart = tmp_path / "simulator"
    apart.mkdir()
    options = ["--ak", AK, "--sk", SK, "--token", IAM_TOKEN, "--seed", "7"]
    with simulator_process(apart, *options) as (url, _):
        yield url


def _set_faults(url: str, **faults: float) -> None:
    request = urllib.request.Request(
        f"{url}/_sim/faults", data=json.dumps(faults).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def _env(**values: str) -> dict[str, str]:
    return clean_env(HUAWEICLOUD_SDK_PROJECT_ID=PROJECT, **values)


TEMPORARY = {
    "HUAWEICLOUD_SDK_AK": AK,
    "HUAWEICLOUD_SDK_SK": SK,
    "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
}


def _run_dir(reports: Path) -> Path:
    (run_dir,) = (p for p in reports.iterdir() if p.is_dir())
    return run_dir


def _states(run_dir: Path) -> dict[TaskState, int]:
    with Journal.open(run_dir, readonly=True) as journal:
        return {s: n for s, n in journal.counts().items() if n}


# --------------------------------------------------------------------------- the commands


def test_validate_and_plan_show_no_credential(work: Path, inventory: Path) -> None:
    env = _env(**TEMPORARY, BULKSCAN_AUTH_TOKEN=IAM_TOKEN)
    outputs: list[str] = []
    for args in (
        ["validate", str(inventory)],
        ["validate", str(inventory), "--json"],
        ["plan", str(inventory), "--output", str(work / "plan.json")],
        ["plan", str(inventory), "--json"],
    ):
        outputs.extend(_checked(cli(*args, env=env, cwd=work), 0))
    assert (work / "plan.json").is_file()
    assert_nothing_leaked(work, outputs=tuple(outputs))


def test_a_run_through_faults_then_report_and_audit_show_no_credential(
    work: Path, inventory: Path, served: str
) -> None:
    """Temporary AK/SK with a security token; resets, 500s and 503s on the way."""
    _set_faults(served, http500=0.1, http503=0.1, reset_before=0.05, reset_after=0.05)
    env = _env(**TEMPORARY)
    reports = work / "reports"
    common = ["--endpoint", served, *FAST, "--reports-dir", str(reports)]
    command = ["run", str(inventory), *common, "--yes", "--settle", "0.5"]
    done = cli(*command, env=env)
    outputs = [done.stdout, done.stderr]
    for _ in range(10):  # an ambiguous failure leaves its task unknown (exit 3): resume it
        if done.returncode != 3:
            break
        assert "unknown" in done.stdout and "resume with:" in done.stdout, done.stdout
        done = cli(*command, "--resume", env=env)
        outputs += [done.stdout, done.stderr]
    _checked(done, 0)
    run_dir = _run_dir(reports)
    with Journal.open(run_dir, readonly=True) as journal:
        failed = [a for a in journal.attempts() if a.status is None or a.status >= 500]
        assert journal.meta().settings["auth_method"] == "temporary AK/SK"
    assert failed, "no fault was met: the test proves less than it says"
    assert _states(run_dir) == {TaskState.CREATED: 6}
    outputs += _checked(cli("report", str(run_dir), env=env), 0)
    outputs += _checked(cli("report", str(run_dir), "--json", env=env), 0)
    outputs += _checked(cli("audit", str(inventory), *common, "--json", env=env), 0)
    searched = assert_nothing_leaked(work, outputs=tuple(outputs))
    expected = {"events.jsonl", "journal.sqlite", "results.xlsx:xl/worksheets/sheet1.xml"}
    assert expected <= set(searched), searched
    assert any("-audit-" in name for name in searched)


def test_a_fatal_401_from_a_wrong_secret_key_then_a_resume_show_no_credential(
    work: Path, inventory: Path, served: str
) -> None:
    reports = work / "reports"
    common = ["--endpoint", served, *FAST, "--reports-dir", str(reports)]
    wrong = _env(**{**TEMPORARY, "HUAWEICLOUD_SDK_SK": WRONG_SK})
    # stopped at the asset-centre check, before any run directory...
    checked = _checked(cli("run", str(inventory), *common, "--yes", env=wrong), 3)
    assert "authentication failed" in checked[1] and not reports.exists()
    # ...and, without the check, at the run's first listing
    unchecked = ["run", str(inventory), *common, "--yes", "--no-remote-check"]
    out, err = _checked(cli(*unchecked, env=wrong), 3)
    assert "authentication failed" in err
    run_dir = _run_dir(reports)
    assert _states(run_dir) == {TaskState.PENDING: 6}
    outputs = [*checked, out, err]
    outputs += _checked(cli("audit", str(inventory), *common, env=wrong), 3)
    outputs += _checked(cli("report", str(run_dir), env=wrong), 3)  # unfinished: resume next
    resume = ["run", str(inventory), *common, "--resume", str(run_dir), "--yes"]
    outputs += _checked(cli(*resume, env=_env(**TEMPORARY)), 0)
    assert _states(run_dir) == {TaskState.CREATED: 6}
    assert_nothing_leaked(work, outputs=tuple(outputs))


def test_iam_tokens_from_the_environment_or_a_file_are_never_shown(
    work: Path, inventory: Path, served: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "simulator" / "token.txt"  # outside the searched folder
    token_file.write_text(WRONG_TOKEN + "\n")
    reports = work / "reports"
    common = ["--endpoint", served, *FAST, "--reports-dir", str(reports)]
    outputs = list(
        _checked(
            cli(
                "run",
                str(inventory),
                *common,
                "--yes",
                "--json",
                env=_env(BULKSCAN_AUTH_TOKEN=IAM_TOKEN),
            ),
            0,
        )
    )
    assert json.loads(outputs[0])["outcomes"] == {"created": 6}
    refused = cli("audit", str(inventory), *common, "--token-file", str(token_file), env=_env())
    outputs += _checked(refused, 3)
    assert "token" in refused.stderr
    assert_nothing_leaked(work, outputs=tuple(outputs))


def test_a_password_in_the_endpoint_url_is_refused_and_never_shown(
    work: Path, inventory: Path, served: str
) -> None:
    """A URL with user-info would put a password on screen and in the journal: refused."""
    with_password = served.replace("http://", f"http://operator:{SK}@")
    reports = work / "reports"
    for command, option in (("run", "--yes"), ("audit", "--json")):
        args = [command, str(inventory), "--endpoint", with_password, option]
        done = cli(*args, "--reports-dir", str(reports), env=_env(**TEMPORARY))
        _, err = _checked(done, 2)
        assert err.startswith("bulkscan: error: endpoint 'http://***@127.0.0.1:")
        assert "user name or password" in err and len(err.splitlines()) == 1
        assert not leaks(done.stdout + err)
    assert not reports.exists()


# --------------------------------------------------------------------------- exception texts


def _every_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback (causes and context included)."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@pytest.mark.parametrize(
    "env",
    [
        {"HUAWEICLOUD_SDK_SK": SK},
        {"HUAWEICLOUD_SDK_AK": AK},
        {"HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
        {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
        {"HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
    ],
    ids=["sk-alone", "ak-alone", "token-alone", "ak-and-token", "sk-and-token"],
)
def test_credential_errors_name_what_is_missing_without_the_values(env: Mapping[str, str]) -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(env=env)
    assert not leaks(_every_text(caught.value)), _every_text(caught.value)


def test_a_token_file_holding_something_else_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(IAM_TOKEN.encode() + b"\xff\xfe")  # not UTF-8: a key file by mistake?
    with pytest.raises(CredentialsError) as caught:
        resolve_credentials(token_file=str(path), env={})
    assert not leaks(_every_text(caught.value))


async def test_refused_credentials_raise_errors_that_hold_no_secret() -> None:
    async with (
        Simulator(credentials={AK: SK}, tokens=(IAM_TOKEN,)) as sim,
        aiohttp.ClientSession() as session,
    ):
        texts, refused = [], []
        for credentials in (AkSk(AK, WRONG_SK, SECURITY_TOKEN), Token(WRONG_TOKEN)):
            client = DscClient(session, credentials, endpoints=Endpoints(sim.url))
            texts.append(repr(client))
            for call in (
                client.create_task(PROJECT, b'{"task_name": "x"}', region=REGION),
                client.list_tasks(PROJECT, region=REGION),
            ):
                with pytest.raises(RunFatalError) as caught:
                    await call
                refused.append(caught.value)
    assert [e.status for e in refused] == [401] * 4
    texts += [_every_text(e) for e in refused]
    assert not leaks("\n".join(texts)), leaks("\n".join(texts))


async def test_a_library_run_refused_at_once_keeps_its_secrets(work: Path, inventory: Path) -> None:
    """``runner.run`` with a wrong key: the result, the journal facts and every event."""
    events: list[Event] = []

    def keep(event: Event) -> None:
        events.append(event)

    async with Simulator(credentials={AK: SK}) as sim:
        connection = runner.Connection(
            credentials=AkSk(AK, WRONG_SK, SECURITY_TOKEN), endpoints=Endpoints(sim.url)
        )
        prepared = runner.prepare(inventory, settings=InputSettings())
        result = await asyncio.wait_for(
            runner.run(
                prepared,
                connection=connection,
                dispatch_settings=DispatchSettings(rate_per_s=100.0),
                reports_dir=work / "reports",
                observer=keep,
            ),
            30,
        )
    assert result.dispatch.stop_reason == "fatal"
    with Journal.open(result.run_dir, readonly=True) as journal:
        facts = repr(journal.meta())
    texts = [result.dispatch.message, repr(result), repr(connection), facts, *map(repr, events)]
    assert not leaks("\n".join(texts))
    assert "AK/SK" in facts
    assert_nothing_leaked(work)


def test_every_error_class_keeps_credentials_out_of_its_constructor() -> None:
    """The error tree takes context as attributes; none of them is a credential."""
    import inspect

    from bulkscan import errors

    secret = {"credentials", "secret_key", "token", "headers", "access_key"}
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, BulkscanError)
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
        assert not params & secret
    context = set(errors.DscContext.__annotations__)  # a DscError's keyword fields
    assert context and not context & secret
