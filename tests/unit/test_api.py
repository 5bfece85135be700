"""The public API is exactly ``bulkscan.__all__``: additions and removals are deliberate."""

from __future__ import annotations

import bulkscan

EXPECTED = {
    "__version__",
    "check",
    "prepare",
    "read_audit_inventory",
    "run",
    "write_report",
    "AkSk",
    "Connection",
    "DispatchSettings",
    "Endpoints",
    "InputLimits",
    "InputSettings",
    "SimulatorOptions",
    "Token",
    "resolve_credentials",
    "Issue",
    "Outcome",
    "Plan",
    "TaskRequest",
    "AmbiguousError",
    "BulkscanError",
    "CredentialsError",
    "DscError",
    "InputError",
    "InputLimitError",
    "JournalError",
    "ProjectPermanentError",
    "RunFatalError",
    "TaskPermanentError",
    "ThrottledError",
    "TransientError",
    "UsageError",
    "ValidationFailed",
}


def test_exported_members() -> None:
    assert set(bulkscan.__all__) == EXPECTED
    assert len(bulkscan.__all__) == len(EXPECTED)  # no name listed twice
    for name in bulkscan.__all__:
        assert hasattr(bulkscan, name), name


def test_every_exported_error_is_a_bulkscan_error() -> None:
    errors = [getattr(bulkscan, n) for n in bulkscan.__all__ if n.endswith(("Error", "Failed"))]
    assert errors
    for error in errors:
        assert issubclass(error, bulkscan.BulkscanError), error
