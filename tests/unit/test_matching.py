"""The one rule for "this remote task's data source is this planned (or inventoried) one".

Reconcile, the lookup after an ambiguous create and the audit all use it; the end-to-end
tests of each (test_dispatch, test_audit) repeat the spelling cases against the simulator.
"""

from __future__ import annotations

import pytest

from bulkscan.models import DataSource
from bulkscan.run.remote import same_sources, source_matches

OURS = DataSource("PostgreSQL", "ins-1")

# (the service's data source, matches ours): every spelling case.
SPELLINGS = [
    (DataSource("PostgreSQL", "ins-1"), True),
    (DataSource("postgres", "ins-1"), True),  # an alias of the type
    (DataSource("POSTGRESQL", "ins-1"), True),  # another case
    (DataSource("", "ins-1"), True),  # the service left the type out
    (DataSource("  ", "ins-1"), True),  # ... or sent only spaces
    (DataSource("PostgreSQL", " ins-1 "), True),  # spaces around the id
    (DataSource("MySQL", "ins-1"), False),  # another type
    (DataSource("PostgreSQL", "ins-2"), False),  # another instance
    (DataSource("PostgreSQL", "INS-1"), False),  # ids are compared exactly
]


@pytest.mark.parametrize(("theirs", "expected"), SPELLINGS)
def test_one_source(theirs: DataSource, expected: bool) -> None:
    assert source_matches(OURS, theirs) is expected


@pytest.mark.parametrize(("theirs", "expected"), SPELLINGS)
def test_a_task_of_one_source_follows_the_same_rule(theirs: DataSource, expected: bool) -> None:
    assert same_sources((OURS,), (theirs,)) is expected


def test_an_unknown_type_is_compared_by_its_spelling_in_any_case() -> None:
    assert source_matches(DataSource("NewDB", "x"), DataSource("newdb", "x"))
    assert not source_matches(DataSource("NewDB", "x"), DataSource("OtherDB", "x"))


def test_sources_match_as_sets() -> None:
    a, b = DataSource("MySQL", "i1"), DataSource("PostgreSQL", "i2")
    assert same_sources((a, b), (b, a))
    assert same_sources((a, b), (DataSource("mysql", "i1"), DataSource("postgres", "i2")))
    assert not same_sources((a, b), (a,))  # one instance missing
    assert not same_sources((a,), (a, b))  # one instance more
    assert not same_sources((a, b), (a, DataSource("MySQL", "i2")))  # one type differs
