"""DSC's asset centre as the run sees it: what instances exist, and may each row be sent.

* ``read_catalog`` lists the asset centre once per (project, region, instance type): the
  database instances and the authorised databases, every page paced by the shared rate
  limiter and each listing retried by the one ``RetryPolicy``.
* ``resolve_row`` finds a row's ``ins_id`` from its ``ins_name`` (pure).
* ``check_instance`` says why an instance may not be sent, or None (pure): it must exist,
  be active, be reachable by DSC (authorised) and be of a type metadata tasks support.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from bulkscan.dsc.classify import dsc_not_enabled
from bulkscan.dsc.client import list_authorised_databases, list_database_instances
from bulkscan.errors import DscError
from bulkscan.i18n import _
from bulkscan.input.schema import canonical_db_type
from bulkscan.models import DataSource, Issue, Verdict
from bulkscan.run.remote import slow_down, source_matches

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from bulkscan.config import InputSettings
    from bulkscan.dsc.client import AssetInstance, AuthorisedDatabase, DscClient, RemoteTask
    from bulkscan.models import Instance, RawRow, RowRef
    from bulkscan.run.ratelimit import AdaptiveRate
    from bulkscan.run.retry import RetryPolicy

__all__ = [
    "INSTANCE_TYPES",
    "InstanceCheck",
    "Catalog",
    "Covered",
    "KnownInstance",
    "Resolution",
    "ResolvedRow",
    "check_instance",
    "check_instances",
    "check_known",
    "coverage",
    "project_missing",
    "read_catalog",
    "resolve_name",
    "resolve_rows",
    "row_scope",
    "type_disagrees",
    "with_asset_types",
]

#: ``instance_type`` values listed (ListDatabaseInstances names RDS, DDS, GaussDB,
#: GaussDB(for MySQL) and GaussDB(for OpenGauss)); each is one paged listing per scope.
INSTANCE_TYPES: tuple[str, ...] = (
    "RDS",
    "GaussDB",
    "GaussDB(for MySQL)",
    "GaussDB(for OpenGauss)",
    "DDS",
)
ACTIVE = "ACTIVE"
_SUGGESTIONS = 3

Scope = tuple[str, str]  # (project_id, region)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KnownInstance:
    """An instance of the asset centre with what DSC says of its authorisation.

    ``authorised`` is None when no authorised-database record names the instance.
    """

    project_id: str
    region: str
    ins_id: str
    ins_name: str
    ins_status: str
    ins_type: str
    db_type: str
    authorised: bool | None
    reason: str = ""

    @property
    def authorisation(self) -> str:
        """The authorisation as a workbook shows it."""
        if self.authorised:
            return "authorised"
        if self.authorised is None:
            return "not authorised"
        return f"not authorised: {self.reason}" if self.reason else "not authorised"


@dataclass(slots=True)
class Catalog:
    """What the asset centre listed, per (project, region); the errors of failed scopes."""

    instances: dict[Scope, tuple[KnownInstance, ...]] = field(default_factory=dict)
    errors: dict[Scope, DscError] = field(default_factory=dict)
    requests: int = 0

    def by_id(self, project_id: str, region: str, ins_id: str) -> KnownInstance | None:
        wanted = ins_id.strip()
        found = self.instances.get((project_id, region), ())
        return next((i for i in found if i.ins_id == wanted), None)

    def named(self, project_id: str, region: str, name: str) -> list[KnownInstance]:
        """Instances called ``name``: exactly, else ignoring case and surrounding spaces."""
        found = self.instances.get((project_id, region), ())
        exact = [i for i in found if i.ins_name == name]
        if exact:
            return exact
        key = name.strip().casefold()
        return [i for i in found if i.ins_name.strip().casefold() == key]

    def close_names(self, project_id: str, region: str, name: str) -> list[str]:
        names = sorted({i.ins_name for i in self.instances.get((project_id, region), ())})
        return difflib.get_close_matches(name, names, n=_SUGGESTIONS, cutoff=0.6)


# --------------------------------------------------------------------------- reading


def _merge(
    scope: Scope, instances: Iterable[AssetInstance], grants: Iterable[AuthorisedDatabase]
) -> list[KnownInstance]:
    by_id: dict[str, list[AuthorisedDatabase]] = {}
    for grant in grants:
        by_id.setdefault(grant.ins_id, []).append(grant)
    known = []
    for inst in instances:
        records = by_id.get(inst.ins_id, [])
        ok = any(r.authorized for r in records) if records else None
        reason = next((r.reason for r in records if not r.authorized and r.reason), "")
        known.append(
            KnownInstance(
                scope[0],
                scope[1],
                inst.ins_id,
                inst.ins_name,
                inst.ins_status,
                inst.ins_type,
                inst.db_type,
                ok,
                reason,
            )
        )
    return known


class _Reader:
    """One catalogue reading: the client, the shared limiter, the one retry policy."""

    def __init__(
        self,
        client: DscClient,
        limiter: AdaptiveRate,
        policy: RetryPolicy,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.policy = policy
        self.rng = rng
        self.sleep = sleep
        self.requests = 0
        self._grants: list[float] = []  # when each page of the current listing was sent

    async def _pace(self) -> None:
        self._grants.append(await self.limiter.acquire())
        self.requests += 1

    async def _listed(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()`` with the limiter slowed on a throttled answer (the policy retries);
        each page is told to the limiter with the time it was sent (the quota counts it)."""
        self._grants = []
        try:
            found = await read()
        except DscError as exc:
            if exc.verdict is Verdict.THROTTLED:
                slow_down(self.limiter, exc, sent_at=self._grants[-1] if self._grants else None)
            raise
        for sent in self._grants:
            self.limiter.on_success(sent_at=sent)
        return found

    async def _retried(self, read: Callable[[], Awaitable[T]]) -> T:
        budget = self.policy.start(rng=self.rng)
        got = await self.policy.call(lambda: self._listed(read), budget=budget, sleep=self.sleep)
        if isinstance(got, DscError):
            raise got
        return got

    async def scope(self, scope: Scope, types: Sequence[str]) -> list[KnownInstance]:
        project, region = scope
        known: list[KnownInstance] = []
        for kind in types:
            instances = await self._retried(
                lambda kind=kind: list_database_instances(  # type: ignore[misc]
                    self.client, project, region=region, instance_type=kind, before_page=self._pace
                )
            )
            if not instances:
                continue  # nothing of this type: no authorisation to read either
            grants = await self._retried(
                lambda kind=kind: list_authorised_databases(  # type: ignore[misc]
                    self.client, project, region=region, instance_type=kind, before_page=self._pace
                )
            )
            known.extend(_merge(scope, instances, grants))
        return known


async def read_catalog(
    scopes: Iterable[Scope],
    client: DscClient,
    *,
    limiter: AdaptiveRate,
    policy: RetryPolicy,
    instance_types: Sequence[str] = INSTANCE_TYPES,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Catalog:
    """The asset centre of every (project, region): one paged listing per scope and instance
    type (and one of its authorised databases when it has any).  A scope whose listing fails
    is kept in ``errors`` (its rows cannot be checked); a run-fatal answer is raised."""
    reader = _Reader(client, limiter, policy, rng or random.Random(), sleep)
    catalog = Catalog()
    for scope in dict.fromkeys(scopes):
        try:
            catalog.instances[scope] = tuple(await reader.scope(scope, instance_types))
        except DscError as exc:
            if exc.verdict is Verdict.RUN_FATAL:
                raise
            catalog.errors[scope] = exc
    catalog.requests = reader.requests
    return catalog


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True, slots=True)
class Resolution:
    """A name looked up: the instance found, or why none was (with the candidates)."""

    instance: KnownInstance | None
    problem: str | None = None


def _scope_problem(catalog: Catalog, project_id: str, region: str) -> str | None:
    error = catalog.errors.get((project_id, region))
    if error is not None:
        return _(
            "DSC's asset centre of project {project} / region {region} could not be read: {error}"
        ).format(project=project_id, region=region, error=error)
    return None


def resolve_name(
    catalog: Catalog, project_id: str, region: str, name: str, ins_id: str | None = None
) -> Resolution:
    """The instance called ``name`` in the scope; a problem for none, several, or one whose
    ins_id is not the ``ins_id`` the row gives beside the name."""
    problem = _scope_problem(catalog, project_id, region)
    if problem is not None:
        return Resolution(None, problem)
    found = catalog.named(project_id, region, name)
    where = _("project {project} / region {region}").format(project=project_id, region=region)
    if not found:
        close = catalog.close_names(project_id, region, name)
        hint = (
            _(" (did you mean {names}?)").format(names=", ".join(repr(c) for c in close))
            if close
            else ""
        )
        return Resolution(
            None,
            _("no database instance named '{name}' in {where}{hint}").format(
                name=name, where=where, hint=hint
            ),
        )
    if len(found) > 1:
        ids = ", ".join(f"{i.ins_id} ({i.ins_type}, {i.ins_status})" for i in found)
        return Resolution(
            None,
            _(
                "{count} instances are named '{name}' in {where}: {ids}; "
                "give the row's ins_id to choose one"
            ).format(count=len(found), name=name, where=where, ids=ids),
        )
    if ins_id and ins_id.strip() != found[0].ins_id:
        return Resolution(
            None,
            _(
                "ins_id '{ins_id}' disagrees with the instance named '{name}', "
                "whose ins_id is {found}"
            ).format(ins_id=ins_id, name=name, found=found[0].ins_id),
        )
    return Resolution(found[0])


def check_instance(catalog: Catalog, project_id: str, region: str, ins_id: str) -> str | None:
    """Why the instance may not be sent (not found, not active, not authorised, a type
    metadata tasks cannot carry), or None."""
    problem = _scope_problem(catalog, project_id, region)
    if problem is not None:
        return problem
    known = catalog.by_id(project_id, region, ins_id)
    if known is None:
        named = catalog.named(project_id, region, ins_id)
        hint = (
            _(" ('{name}' is the name of {ins_id})").format(name=ins_id, ins_id=named[0].ins_id)
            if len(named) == 1
            else ""
        )
        where = _("project {project} / region {region}").format(project=project_id, region=region)
        return _("instance {ins_id} is not a database asset of DSC in {where}{hint}").format(
            ins_id=ins_id, where=where, hint=hint
        )
    return check_known(known)


def check_known(known: KnownInstance) -> str | None:
    """``check_instance`` for an instance that was found."""
    if known.ins_status.upper() != ACTIVE:
        return _("instance {ins_id} is {status}, not active").format(
            ins_id=known.ins_id, status=known.ins_status or _("of unknown status")
        )
    if not known.authorised:
        return _("DSC is {authorisation} to reach instance {ins_id}").format(
            authorisation=known.authorisation, ins_id=known.ins_id
        )
    if canonical_db_type(known.db_type) is None:
        return _(
            "instance {ins_id} is of type '{db_type}', which metadata tasks cannot carry"
        ).format(ins_id=known.ins_id, db_type=known.db_type)
    return None


def type_disagrees(stated: str, known: KnownInstance) -> bool:
    """The row's db_type names another type than the asset centre gives the instance."""
    ours, theirs = canonical_db_type(stated), canonical_db_type(known.db_type)
    return ours is not None and theirs is not None and ours != theirs


# --------------------------------------------------------------------------- resolving a sheet


@dataclass(frozen=True, slots=True)
class ResolvedRow:
    """One instances row after resolution: the instance found (if any) and the issues."""

    row: RawRow
    known: KnownInstance | None
    issues: tuple[Issue, ...] = ()

    @property
    def check(self) -> str:
        """``ok``, or the first error's message."""
        errors = [i for i in self.issues if i.severity == "error"]
        return errors[0].message if errors else "ok"


def row_scope(row: RawRow, settings: InputSettings) -> Scope | None:
    """The (project, region) of a raw row (its cells, else the defaults), if both are known."""
    project = _text(row.values.get("project_id")) or settings.project_id
    region = _text(row.values.get("region")) or settings.region
    return (project, region) if project and region else None


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def resolve_rows(
    rows: Iterable[RawRow], catalog: Catalog, settings: InputSettings
) -> list[ResolvedRow]:
    """Every row matched to the asset centre: by name when it has one, else by ins_id."""
    return [_resolve_row(row, catalog, settings) for row in rows]


def _resolve_row(row: RawRow, catalog: Catalog, settings: InputSettings) -> ResolvedRow:
    scope = row_scope(row, settings)
    name, ins_id = _text(row.values.get("ins_name")), _text(row.values.get("ins_id"))
    if scope is None:
        why = _("no project_id or region (fill the cells, or give --project-id and --region)")
        return ResolvedRow(row, None, (_error(row, "project_id", why),))
    if not name and not ins_id:
        return ResolvedRow(
            row, None, (_error(row, "ins_name", _("ins_name and ins_id are blank")),)
        )
    if name:
        found = resolve_name(catalog, *scope, name, ins_id or None)
        column, known, problem = "ins_name", found.instance, found.problem
    else:
        column, known = "ins_id", catalog.by_id(*scope, ins_id)
        problem = check_instance(catalog, *scope, ins_id) if known is None else None
    if known is None:
        return ResolvedRow(row, None, (_error(row, column, str(problem)),))
    issues = _known_issues(row, known)
    if name and known.ins_name != name:  # found by the fallback of ``Catalog.named``
        issues += (_loose_match(row, name, known),)
    return ResolvedRow(row, known, issues)


def _loose_match(row: RawRow, name: str, known: KnownInstance) -> Issue:
    return Issue(
        "warning",
        _(
            "no instance is named '{name}' exactly; '{taken}' ({ins_id}) was taken, "
            "its name differing in case or spaces only"
        ).format(name=name, taken=known.ins_name, ins_id=known.ins_id),
        ref=row.ref,
        column="ins_name",
        hint=_("check that it is the instance meant, or write the name as DSC shows it"),
    )


def _known_issues(row: RawRow, known: KnownInstance) -> tuple[Issue, ...]:
    issues = []
    problem = check_known(known)
    if problem is not None:
        issues.append(_error(row, "ins_id", problem))
    stated = _text(row.values.get("db_type"))
    if stated and type_disagrees(stated, known):
        issues.append(
            Issue(
                "warning",
                _(
                    "db_type '{stated}' disagrees with DSC's asset centre, which gives "
                    "'{db_type}' for instance {ins_id}"
                ).format(stated=stated, db_type=known.db_type, ins_id=known.ins_id),
                ref=row.ref,
                column="db_type",
                hint=_("the asset centre's type is what is sent, unless dsc_db_type overrides it"),
            )
        )
    return tuple(issues)


def _error(row: RawRow, column: str, message: str) -> Issue:
    return Issue("error", message, ref=row.ref, column=column)


# --------------------------------------------------------------------------- checking a plan


@dataclass(frozen=True, slots=True)
class InstanceCheck:
    """The asset centre's word on validated instances: what to hold back, and why."""

    issues: tuple[Issue, ...]  # an error for every held-back row, warnings
    held: frozenset[RowRef]  # rows not to send
    wire_types: Mapping[tuple[str, str, str], str]  # (project, region, ins_id) → DSC's db_type
    unchecked: tuple[Scope, ...] = ()  # scopes whose asset centre listed no instance at all
    requests: int = 0
    unread: Mapping[Scope, DscError] = field(default_factory=dict)  # listings that failed


def check_instances(instances: Iterable[Instance], catalog: Catalog) -> InstanceCheck:
    """Each instance against the catalogue.  A scope whose asset centre lists nothing is
    not checked (a warning says so): the listing may be closed to these credentials.  A
    scope whose listing failed holds back its rows and, unless the project is missing, is
    named in ``unread``."""
    issues: list[Issue] = []
    held: set[RowRef] = set()
    wire: dict[tuple[str, str, str], str] = {}
    unchecked = {
        s for s, found in catalog.instances.items() if not found and s not in catalog.errors
    }
    for inst in instances:
        scope = (inst.project_id, inst.region)
        if scope in unchecked:
            continue
        problem = check_instance(catalog, *scope, inst.ins_id)
        if problem is not None:
            held.add(inst.ref)
            issues.append(
                Issue(
                    "error",
                    _("{problem}; not sent").format(problem=problem),
                    ref=inst.ref,
                    column="ins_id",
                )
            )
            continue
        known = catalog.by_id(*scope, inst.ins_id)
        assert known is not None  # checked above
        wire[(*scope, inst.ins_id)] = known.db_type
        if type_disagrees(inst.db_type, known):
            issues.append(_disagreement(inst, known))
    issues.extend(_unchecked_warning(scope) for scope in sorted(unchecked))
    unread = {s: e for s, e in catalog.errors.items() if not project_missing(e)}
    return InstanceCheck(
        tuple(issues), frozenset(held), wire, tuple(sorted(unchecked)), unread=unread
    )


def project_missing(error: DscError) -> bool:
    """The listing says the project itself is not there (404, or DSC not enabled in it): a
    fact about the rows that name it, which are held back like an unknown instance's; any
    other failure means the asset centre could not be read."""
    if error.verdict is not Verdict.PROJECT_PERMANENT:
        return False
    return error.status == 404 or dsc_not_enabled(error.status, error.code)


def _disagreement(inst: Instance, known: KnownInstance) -> Issue:
    return Issue(
        "warning",
        _(
            "db_type '{stated}' disagrees with DSC's asset centre, which gives "
            "'{db_type}' for instance {ins_id}; the row's type is sent"
        ).format(stated=inst.db_type, db_type=known.db_type, ins_id=known.ins_id),
        ref=inst.ref,
        column="db_type",
    )


def _unchecked_warning(scope: Scope) -> Issue:
    return Issue(
        "warning",
        _(
            "DSC's asset centre lists no database instance in project {project} / region "
            "{region}: its rows were not checked (may these credentials read the asset centre?)"
        ).format(project=scope[0], region=scope[1]),
    )


def with_asset_types(inst: Instance, wire: Mapping[tuple[str, str, str], str]) -> Instance:
    """``inst`` carrying DSC's own spelling of its type, unless the row chose its own
    (``dsc_db_type``, or a type bulkscan does not know) or names another type."""
    theirs = wire.get((inst.project_id, inst.region, inst.ins_id))
    ours = canonical_db_type(inst.db_type)
    if theirs is None or ours != inst.db_type or canonical_db_type(theirs) != ours:
        return inst
    return dataclasses.replace(inst, db_type=theirs)


# --------------------------------------------------------------------------- export


@dataclass(frozen=True, slots=True)
class Covered:
    """An instance of the asset centre and the names of the tasks that scan it today."""

    known: KnownInstance
    tasks: tuple[str, ...]


def coverage(catalog: Catalog, listed: Mapping[Scope, Sequence[RemoteTask]]) -> list[Covered]:
    """Every instance of the catalogue with the tasks covering it, by the one matching rule
    (``run.remote.source_matches``); tasks in order of their ids (as text)."""
    found = []
    for scope, instances in catalog.instances.items():
        tasks = sorted(listed.get(scope, ()), key=lambda t: (len(t.id), t.id))
        for known in instances:
            ours = DataSource(known.db_type, known.ins_id)
            names = tuple(
                t.name for t in tasks if any(source_matches(ours, s) for s in t.data_sources)
            )
            found.append(Covered(known, names))
    return found
