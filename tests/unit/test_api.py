"""The public API is exactly ``bulkscan.__all__``: additions and removals are deliberate."""

from __future__ import annotations

import bulkscan

EXPECTED = {
    "__version__",
    "check",
    "prepare",
    "read_audit_inventory",
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


def test_no_exported_name_is_shadowed_by_a_module() -> None:
    """Importing a subpackage sets it as an attribute of ``bulkscan``: no public name may be
    one (``bulkscan.run`` is the run layer's package, so the run is ``runner.run``)."""
    import importlib
    import pkgutil
    import types

    for found in pkgutil.walk_packages(bulkscan.__path__, "bulkscan."):
        if found.name.count(".") == 1:
            assert found.name.split(".")[1] not in bulkscan.__all__, found.name
    importlib.import_module("bulkscan.runner")  # imports the run layer
    for name in bulkscan.__all__:
        assert not isinstance(getattr(bulkscan, name), types.ModuleType), name
