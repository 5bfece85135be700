"""``bulkscan simulate``: run a local DSC simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import signal
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkscan.cli import EXIT_OK
from bulkscan.cli._console import console
from bulkscan.config import SIMULATOR_AK as DEFAULT_AK
from bulkscan.config import SIMULATOR_SK as DEFAULT_SK
from bulkscan.config import parse_duration
from bulkscan.errors import UsageError
from bulkscan.i18n import N_, _

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from bulkscan.sim.server import Assets, Faults, Simulator

__all__ = ["register"]

_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
_EXAMPLE_PROJECT = "0123456789abcdef0123456789abcdef"

DESCRIPTION = N_(
    "Serve a local stand-in for Huawei Cloud DSC behind its API gateway: create and list "
    "metadata task templates with the real shapes, SDK-HMAC-SHA256 or token auth, "
    "throttling and seeded faults. Point bulkscan (or any DSC client) at the URL it prints. "
    "Stop it with Ctrl-C or SIGTERM. Inspect it at /_sim/tasks and /_sim/stats."
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a local DSC simulator (for tests, demos and CI)",
        description=DESCRIPTION,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add(
        "--port",
        type=int,
        default=8080,
        help="port to listen on; 0 picks a free one (default: 8080)",
    )
    add(
        "--ak",
        help=_("access key the simulator accepts (default: {ak}); needs --sk").format(
            ak=DEFAULT_AK
        ),
    )
    add("--sk", help="secret key that goes with --ak")
    add(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="an X-Auth-Token value to accept (repeatable)",
    )
    add(
        "--project",
        action="extend",
        nargs="+",
        metavar="ID",
        help="project id(s) that exist (32 lowercase hex); default: every well-formed id",
    )
    add(
        "--quota",
        help="requests allowed per project and period, e.g. 30/min or 5/s (default: none)",
    )
    add(
        "--quota-unstated",
        action="store_true",
        help="answer 429 without naming the limit (only 'The throttling threshold has been "
        "reached.'), so a client must learn the quota's window from the refusals",
    )
    add(
        "--retry-after",
        action="store_true",
        help="send Retry-After with 429 answers (the real service does not)",
    )
    add("--latency", help="delay added to every API request, e.g. 50ms (default: 0)")
    add(
        "--faults",
        metavar="SPEC",
        help="fault probabilities, e.g. http500=0.05,http502=0.02,http503=0.02,http504=0.01,"
        "reset_before=0.02,reset_after=0.02,stall=0.01,http429=0.01 (also jitter=20ms, "
        "stall_s=30s; echo=P: a 400 that echoes the request's credentials; drip=P: a write "
        "acted on, its answer sent a byte at a time (drip_interval=1s); late_create=P: a "
        "create answered 504 "
        "at once and applied later (late_create_after=2s; late_answer=5s holds the 504 that "
        "long first); list_http429=P: listings refused 429; lists_answered=N: the next N task "
        "listings answered, later ones 503)",
    )
    add(
        "--list-shape",
        metavar="SPEC",
        help="how list answers look where DSC's documentation is silent, e.g. "
        "name=task_name|name|OTHER|none, sources=db_type:ins_id|ins_id, offset=ignored|honoured, "
        "page_cap=N|none, ids=number|uuid, total=true|short, create=normal|html|error-body|no-id "
        "(default: the documented shape, name=task_name, offset ignored)",
    )
    add(
        "--dsc-disabled",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="project id(s) where DSC is not enabled (answered 401 dsc.10000009)",
    )
    add(
        "--assets",
        type=Path,
        metavar="FILE",
        help='the asset centre\'s database instances, JSON {"instances": [{"project_id", '
        '"ins_id", "ins_name", "ins_type", "db_type", "ins_status", "authorized", '
        '"authorize_fail_reason"}]}; creates naming another ins_id are refused (400)',
    )
    add(
        "--assets-per-project",
        type=int,
        metavar="N",
        help="generate N seeded asset-centre instances in each --project instead of --assets",
    )
    add(
        "--seed",
        type=int,
        help="random seed, so faults repeat from run to run (a restart that keeps its --state "
        "draws on: the next faults, not the same ones again)",
    )
    add("--scan-seconds", type=float, default=1.0, metavar="S",
        help="how long each scan (task run) stays RUNNING (1)")  # fmt: skip
    add("--scan-failure", type=float, default=0.0, metavar="P",
        help="probability that a scan ends FAILED (0)")  # fmt: skip
    add("--state", type=Path, metavar="PATH", help="keep tasks in this JSON file across restarts")
    add("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate (chain)")
    add("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert, if not inside it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the simulator from parsed options and serve until a stop signal; returns 0."""
    options = simulator_options(args)
    return asyncio.run(_serve(options))


def simulator_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Simulator`` keyword arguments from the options; ``UsageError`` for bad values."""
    from bulkscan.sim.server import Faults, ListShape, parse_faults, parse_list_shape, parse_quota

    if (args.ak is None) != (args.sk is None):
        raise UsageError(_("--ak and --sk go together: give both or neither"))
    if not 0 <= args.port <= 65535:
        raise UsageError(_("--port must be between 0 and 65535, not {port}").format(port=args.port))
    for project in args.project or ():
        if not _PROJECT_ID.match(project):
            raise UsageError(
                _("--project '{project}' is not 32 lowercase hex characters").format(
                    project=project
                )
            )
    if not 0 <= args.scan_seconds <= 86_400 or not 0 <= args.scan_failure <= 1:
        raise UsageError(_("--scan-seconds must be 0 to 86400 and --scan-failure 0 to 1"))
    faults = parse_faults(args.faults) if args.faults else Faults()
    if args.latency is not None:
        faults = dataclasses.replace(faults, latency_s=parse_duration(args.latency))
    return {
        "host": args.host,
        "port": args.port,
        "credentials": {args.ak: args.sk} if args.ak is not None else None,
        "tokens": tuple(args.token),
        "projects": tuple(args.project) if args.project else None,
        "quota": parse_quota(args.quota) if args.quota else None,
        "retry_after": args.retry_after,
        "quota_stated": not args.quota_unstated,
        "faults": faults,
        "seed": args.seed,
        "state_path": args.state,
        "ssl_context": _tls(args.tls_cert, args.tls_key),
        "list_shape": parse_list_shape(args.list_shape) if args.list_shape else ListShape(),
        "dsc_disabled": tuple(args.dsc_disabled),
        "scan_s": args.scan_seconds,
        "scan_failure": args.scan_failure,
        "assets": _assets(args),
    }


def _assets(args: argparse.Namespace) -> Assets | None:
    from bulkscan.sim.server import generate_assets, load_assets

    if args.assets is not None and args.assets_per_project is not None:
        raise UsageError(_("--assets and --assets-per-project exclude each other: give one"))
    if args.assets is not None:
        return load_assets(args.assets)
    if args.assets_per_project is None:
        return None
    if not 1 <= args.assets_per_project <= 100_000 or not args.project:
        raise UsageError(_("--assets-per-project needs --project and a count from 1 to 100000"))
    return generate_assets(args.project, args.assets_per_project, seed=args.seed or 0)


def _tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None:
        if key is not None:
            raise UsageError(_("--tls-key needs --tls-cert"))
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            _("--tls-cert {cert}: cannot load the certificate and key ({error})").format(
                cert=cert, error=exc
            )
        ) from None
    return context


async def _serve(options: dict[str, Any]) -> int:
    from bulkscan.sim.server import Simulator

    stop = asyncio.Event()
    with _stop_on_signals(stop):
        sim = Simulator(**options)
        try:
            await sim.start()
        except OSError as exc:
            where = f"{options['host']}:{options['port']}"
            raise UsageError(
                _("cannot listen on {where} ({error}); try another --port").format(
                    where=where, error=exc.strerror
                )
            ) from None
        try:
            _announce(sim, options)
            await stop.wait()
        finally:
            await sim.stop()
    console.out(_("DSC simulator stopped"))
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _announce(sim: Simulator, options: dict[str, Any]) -> None:
    """First line: the URL, in English whatever the language (scripts read it); then the
    settings to use it with."""
    credentials = options["credentials"] or {DEFAULT_AK: DEFAULT_SK}
    access_key, secret_key = next(iter(credentials.items()))
    projects = options["projects"]
    quota = _quota_text(options["quota"], stated=options["quota_stated"])
    lines = [
        f"DSC simulator listening on {sim.url}",
        f"  export HUAWEICLOUD_SDK_AK={access_key}",
        f"  export HUAWEICLOUD_SDK_SK={secret_key}",
        f"  export HUAWEICLOUD_SDK_PROJECT_ID={projects[0] if projects else _EXAMPLE_PROJECT}",
        _("  projects: {projects}").format(
            projects=", ".join(projects) if projects else _("any 32-hex project id")
        ),
        _("  tokens accepted: {count}").format(count=len(options["tokens"])),
        _("  quota: {quota}; faults: {faults}").format(
            quota=quota, faults=_faults_text(options["faults"])
        ),
        _("  list shape: {shape}").format(shape=options["list_shape"].describe()),
        _("  state: {state}; inspect {url}/_sim/tasks").format(
            state=options["state_path"] or _("in memory"), url=sim.url
        ),
        _("  stop with Ctrl-C or SIGTERM"),
    ]
    console.out("\n".join(lines))


def _quota_text(quota: tuple[int, float] | None, *, stated: bool) -> str:
    if quota is None:
        return _("none")
    if stated:
        text = _("{count} per {seconds}s per project")
    else:
        text = _("{count} per {seconds}s per project, not stated in 429s")
    return text.format(count=quota[0], seconds=f"{quota[1]:g}")


def _faults_text(faults: Faults) -> str:
    from bulkscan.sim.server import Faults

    changed = {k: v for k, v in faults.as_dict().items() if v != getattr(Faults(), k)}
    return ", ".join(f"{k}={v:g}" for k, v in changed.items()) or _("none")
