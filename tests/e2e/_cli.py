"""The ``bulkscan`` command line in a child process, as a user runs it: one place for the tests.

* ``clean_env``: this environment without any credential or bulkscan setting, plus values;
  ``sim_env``: the same with the simulator's credentials (and a state directory).
* ``cli``: one command to its end, blocking (bounded in time, optionally in memory).
* ``start`` / ``finish`` / ``bulkscan``: the same from a test's event loop, so that a
  simulator running in that loop keeps answering while the command runs.
* ``simulator_process``: ``bulkscan simulate`` in a child process, stopped on exit.

bench/ uses ``clean_env`` too (through bench/_common.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from bulkscan.run.rundir import STATE_DIR_ENV
from bulkscan.sim.server import DEFAULT_AK, DEFAULT_SK

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

__all__ = [
    "LIMIT_S",
    "Done",
    "bulkscan",
    "clean_env",
    "cli",
    "finish",
    "no_traceback",
    "sim_env",
    "simulator_process",
    "start",
    "stop_process",
    "wait_for_url",
]

LIMIT_S = 120.0  # the longest any one command may take in a test

# Runs the command line in a child whose address space is capped (argv: the bulkscan options).
_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from bulkscan.cli import main
sys.exit(main(sys.argv[1:]))
"""


# The same with every file it writes capped in size, as a disk that fills would stop it
# (SIGXFSZ ignored: the write fails with EFBIG instead of killing the process).
_FILE_CAPPED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({cap}, {cap}))
from bulkscan.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Done(NamedTuple):
    """A finished command: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def no_traceback(*texts: str) -> None:
    """What a command wrote holds no Python traceback (nor an "Exception ignored" one)."""
    for text in texts:
        assert "Traceback" not in text, text
        assert 'File "' not in text, text


def clean_env(**values: str) -> dict[str, str]:
    """This environment without any credential or bulkscan setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUAWEICLOUD_", "BULKSCAN_"))}
    env.update(values)
    return env


def sim_env(*, state: Path | None = None, sk: str = DEFAULT_SK, **values: str) -> dict[str, str]:
    """``clean_env`` with the simulator's access key, ``sk`` and, if given, a state directory."""
    env = clean_env(HUAWEICLOUD_SDK_AK=DEFAULT_AK, HUAWEICLOUD_SDK_SK=sk, **values)
    if state is not None:
        env[STATE_DIR_ENV] = str(state)
    return env


def cli(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    memory_cap: int | None = None,
    file_size_cap: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``bulkscan ARGS`` in a child process, to its end (``env`` defaults to ``clean_env()``);
    ``memory_cap`` caps its address space, ``file_size_cap`` the size of each file it writes."""
    argv = [str(a) for a in args]
    if memory_cap is not None:
        command = [sys.executable, "-c", _CAPPED.format(cap=memory_cap), *argv]
    elif file_size_cap is not None:
        command = [sys.executable, "-c", _FILE_CAPPED.format(cap=file_size_cap), *argv]
    else:
        command = [sys.executable, "-m", "bulkscan", *argv]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else clean_env(),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


async def start(
    cwd: Path | None,
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    stdin: int = asyncio.subprocess.DEVNULL,
    stdout: int = asyncio.subprocess.PIPE,
    stderr: int = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """``bulkscan ARGS`` started in ``cwd`` (``env`` defaults to ``sim_env()``); output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulkscan", *(str(a) for a in args),
        cwd=cwd, env=dict(env) if env is not None else sim_env(),
        stdin=stdin, stdout=stdout, stderr=stderr,
    )  # fmt: skip


async def finish(
    proc: asyncio.subprocess.Process, limit_s: float = LIMIT_S, *, stdin: bytes | None = None
) -> Done:
    """Wait (bounded) for ``proc`` to end; killed if it does not."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), (err or b"").decode())


async def bulkscan(
    cwd: Path | None,
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    limit_s: float = LIMIT_S,
) -> Done:
    """``bulkscan ARGS`` to its end; ``stdin`` is typed in, else stdin is empty."""
    pipe = asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL
    return await finish(await start(cwd, *args, env=env, stdin=pipe), limit_s, stdin=stdin)


@contextlib.contextmanager
def simulator_process(
    folder: Path, *options: str, port: int = 0, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``bulkscan simulate`` in a child process: yields (its URL, the process)."""
    out = folder / f"simulator-{time.monotonic_ns()}.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bulkscan", "simulate", "--port", str(port), *options],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else clean_env(),
        )
    try:
        yield wait_for_url(proc, out), proc
    finally:
        stop_process(proc)


def wait_for_url(proc: subprocess.Popen[bytes], out: Path, timeout: float = 20) -> str:
    """The URL a starting simulator announces on its first line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = out.read_bytes().split(b"\n", 1)
        if len(first) == 2 and b"listening on" in first[0]:
            return first[0].split()[-1].decode()
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"the simulator did not start: {out.read_text(errors='replace')}")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it does not go within ten seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
