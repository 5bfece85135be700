"""The service's tasks as the run sees them: one listing path and one matching rule.

* ``Lister`` lists a project's tasks (all, or by name) with every page paced by the shared
  rate limiter and the whole listing retried by the one ``RetryPolicy``.  Reconcile, the
  lookup after an ambiguous create and the audit all list through it.
* ``list_groups`` lists several (project, region) pairs through it, the first alone (wrong
  credentials then cost one request, not one per project), keeping each listing's tries and
  answer shape, so a run can reuse a listing made before it asked for confirmation.
* ``source_matches`` / ``same_sources`` decide whether a remote task's data source is a
  planned (or inventoried) one, and ``task_enabled`` whether a task covers what it names.
  The real service's ``data_source`` strings are not fully documented: change the rules
  here only.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkscan.config import DEFAULT_PAGE_SIZE
from bulkscan.errors import BulkscanError, DscError, ThrottledError
from bulkscan.events import local_now
from bulkscan.i18n import _
from bulkscan.input.schema import canonical_db_type
from bulkscan.models import Verdict

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from bulkscan.dsc.client import DscClient, RemoteTask
    from bulkscan.models import DataSource
    from bulkscan.run.ratelimit import AdaptiveRate
    from bulkscan.run.retry import RetryPolicy

__all__ = [
    "Listed",
    "Lister",
    "ListingAttempt",
    "fatal_answer",
    "group_text",
    "groups_text",
    "listing_error",
    "list_groups",
    "same_sources",
    "slow_down",
    "source_matches",
    "task_enabled",
    "tells_enabled",
]


def slow_down(
    limiter: AdaptiveRate, exc: DscError, *, sent_at: float | None, cap_s: float | None = None
) -> float | None:
    """A throttled answer to a request granted at ``sent_at``: pause and slow the limiter.

    A ``Retry-After`` longer than ``cap_s`` (what is left of the time budget) pauses only
    ``cap_s``; then the ``Retry-After`` asked is returned, for the caller to say so.
    """
    limit = exc.limit_per_s if isinstance(exc, ThrottledError) else None
    wait, asked = exc.retry_after, None
    if wait is not None and cap_s is not None and wait > cap_s:
        wait, asked = cap_s, wait
    limiter.on_throttle(limit, wait, sent_at=sent_at)
    return asked


# --------------------------------------------------------------------------- the matching rule


def _type_key(db_type: str) -> str:
    text = db_type.strip()
    return (canonical_db_type(text) or text).casefold()


def source_matches(ours: DataSource, theirs: DataSource) -> bool:
    """THE matching rule: the service's data source ``theirs`` is our ``ours``.

    Same ``ins_id`` (surrounding spaces ignored) and, when the service names a database
    type, the same type in any case or alias (``postgres`` is ``PostgreSQL``).
    """
    if theirs.ins_id.strip() != ours.ins_id.strip():
        return False
    return not theirs.db_type.strip() or _type_key(theirs.db_type) == _type_key(ours.db_type)


def same_sources(ours: Iterable[DataSource], theirs: Iterable[DataSource]) -> bool:
    """The same instances on both sides (as sets), each pair by ``source_matches``."""
    mine = {s.ins_id.strip(): s for s in ours}
    other = {s.ins_id.strip(): s for s in theirs}
    if mine.keys() != other.keys():
        return False
    return all(source_matches(mine[i], other[i]) for i in mine)


def task_enabled(task: RemoteTask) -> bool:
    """False only when the service says the task is disabled (``enabled`` false): a disabled
    task covers nothing it names.  Whether the listing says it at all: ``tells_enabled``."""
    value = task.raw.get(_ENABLED_KEY)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return value is not False and value != 0


def tells_enabled(task: RemoteTask) -> bool:
    """Whether the listing says if ``task`` is enabled.  The documented TaskDetail has no such
    key, so a task listed without one is taken as enabled: a caller that counts coverage
    says so."""
    return _ENABLED_KEY in task.raw


_ENABLED_KEY = "enabled"  # not documented: read where the service sends it


# --------------------------------------------------------------------------- the listing path


@dataclass(frozen=True, slots=True)
class ListingAttempt:
    """One try at listing a project's tasks: its error, or how many tasks it found."""

    project_id: str
    region: str
    task_name: str | None
    at: dt.datetime
    latency_s: float
    error: DscError | None = None
    found: int = 0
    pages: int = 0  # requests this try made


def _ignore(attempt: ListingAttempt) -> None:
    """A listing hook that does nothing."""


class Lister:
    """Lists the service's tasks through the shared limiter and the one retry policy.

    ``requests`` counts the pages asked for.  A throttled page pauses and slows the limiter;
    a run-fatal answer is raised; any other error is returned once the policy will not retry
    it (only throttled, transient and ambiguous answers are retried: a listing is a read).
    """

    def __init__(
        self,
        client: DscClient,
        *,
        limiter: AdaptiveRate,
        policy: RetryPolicy,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.policy = policy
        self.rng = rng or random.Random()
        self.clock = clock
        self.sleep = sleep
        self.page_size = page_size
        self.requests = 0

    async def list_tasks(
        self,
        project_id: str,
        region: str,
        *,
        task_name: str | None = None,
        first_wait: bool = False,
        on_attempt: Callable[[ListingAttempt], None] = _ignore,
    ) -> list[RemoteTask] | DscError:
        """Every task of the project (named ``task_name``, when given), or the last error.

        ``first_wait`` waits one backoff first (a lookup after an ambiguous create gives the
        service time to show the task); ``on_attempt`` sees every try.
        """

        async def once() -> list[RemoteTask]:
            return await self._list_once(project_id, region, task_name, on_attempt)

        budget = self.policy.start(clock=self.clock, rng=self.rng)
        return await self.policy.call(once, budget=budget, sleep=self.sleep, first_wait=first_wait)

    async def _list_once(
        self,
        project_id: str,
        region: str,
        task_name: str | None,
        on_attempt: Callable[[ListingAttempt], None],
    ) -> list[RemoteTask]:
        grants: list[float] = []

        async def pace() -> None:
            # every page waits for the shared limiter, so a long listing is no burst
            grants.append(await self.limiter.acquire())
            self.requests += 1

        at, started = local_now(), self.clock()
        try:
            found = await self.client.list_tasks(
                project_id,
                region=region,
                task_name=task_name,
                page_size=self.page_size,
                before_page=pace,
            )
        except DscError as exc:
            latency = self.clock() - started
            pages = len(grants)
            on_attempt(
                ListingAttempt(project_id, region, task_name, at, latency, error=exc, pages=pages)
            )
            if exc.verdict is Verdict.THROTTLED:
                sent_at = grants[-1] if grants else None
                slow_down(self.limiter, exc, sent_at=sent_at, cap_s=self.policy.max_seconds)
            raise
        for sent in grants:
            self.limiter.on_success(sent_at=sent)
        latency = self.clock() - started
        on_attempt(
            ListingAttempt(
                project_id, region, task_name, at, latency, found=len(found), pages=len(grants)
            )
        )
        return found


# --------------------------------------------------------------------------- several projects

_Group = tuple[str, str]  # (project_id, region)


@dataclass(frozen=True, slots=True)
class Listed:
    """One (project, region)'s tasks, or the error that stopped its listing; the tries made,
    the answer's shape (``ListingShape``) and when it ended (``time.monotonic``)."""

    answer: tuple[RemoteTask, ...] | DscError
    attempts: tuple[ListingAttempt, ...] = ()
    shape: object | None = None
    at: float = 0.0

    @property
    def tasks(self) -> tuple[RemoteTask, ...]:
        """The tasks listed (none when the listing failed)."""
        return () if isinstance(self.answer, DscError) else self.answer


def _no_news(group: _Group, listed: Listed) -> None:
    """A ``list_groups`` hook that does nothing."""


async def list_groups(
    lister: Lister,
    groups: Iterable[_Group],
    *,
    concurrency: int,
    on_listed: Callable[[_Group, Listed], None] = _no_news,
) -> dict[_Group, Listed]:
    """Every group's tasks (or the error that stopped its listing), in ``groups`` order.

    The first group is listed alone, the others ``concurrency`` at once.  A run-fatal answer
    (wrong credentials) is kept as the group's answer and lists nothing more: the groups not
    listed are left out.  A usage error (a region without endpoint) is raised.
    """
    order = list(dict.fromkeys(groups))
    gate = asyncio.Semaphore(max(1, concurrency))
    found: dict[_Group, Listed] = {}
    stop = asyncio.Event()

    async def one(group: _Group) -> None:
        tries: list[ListingAttempt] = []
        async with gate:
            if stop.is_set():
                return
            try:
                answer = await lister.list_tasks(*group, on_attempt=tries.append)
            except DscError as exc:  # run-fatal: not one more request
                stop.set()
                answer = exc
        tasks = answer if isinstance(answer, DscError) else tuple(answer)
        shape = lister.client.shapes.get(group)
        found[group] = Listed(tasks, tuple(tries), shape, lister.clock())
        on_listed(group, found[group])

    if order:
        await one(order[0])
    try:
        async with asyncio.TaskGroup() as tg:
            for group in order[1:]:
                tg.create_task(one(group))
    except* BulkscanError as failed:
        raise failed.exceptions[0] from None
    return {group: found[group] for group in order if group in found}


def group_text(project_id: str, region: str, text: str) -> str:
    """``text`` (a listing's error) said of its project and region, named once: a refusal
    of the listing's shape names them already."""
    named = f"project {project_id} / region {region}"  # how the client's refusals name them
    where = _("project {project} / region {region}").format(project=project_id, region=region)
    if text.startswith((where, named)):
        return text
    return _("{where}: {message}").format(where=where, message=text)


def listing_error(error: DscError) -> str:
    """A failed listing's error as said to the user: what happened, without the advice its
    message gives a create ("safe to send again after a wait"); a listing whose shape cannot
    be trusted keeps its own advice (record the answer with ``doctor``)."""
    return str(error) if error.verdict is Verdict.UNTRUSTED else error.what


def groups_text(failed: Sequence[tuple[_Group, DscError]]) -> str:
    """Why listings failed, in one line: the first group's error without its advice (the
    caller's advice fits its moment), and how many other groups failed too."""
    (project, region), first = failed[0]
    more = (
        _("; {count} other project/region group(s) too").format(count=len(failed) - 1)
        if len(failed) > 1
        else ""
    )
    return group_text(project, region, first.what) + more


def fatal_answer(listed: Mapping[_Group, Listed]) -> DscError | None:
    """The run-fatal answer one of the listings got, if any."""
    for item in listed.values():
        if isinstance(item.answer, DscError) and item.answer.verdict is Verdict.RUN_FATAL:
            return item.answer
    return None
