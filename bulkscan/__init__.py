"""bulkscan: onboard hundreds of databases into Huawei Cloud DSC metadata scans in one run.

The public API is what ``__all__`` lists (pinned by a test); everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # seen by mypy and IDEs; at run time the names resolve on first use
    from bulkscan.config import DispatchSettings, InputLimits, InputSettings
    from bulkscan.dsc.credentials import AkSk, Token, resolve_credentials
    from bulkscan.dsc.endpoints import Endpoints
    from bulkscan.errors import (
        AmbiguousError,
        BulkscanError,
        CredentialsError,
        DscError,
        InputError,
        InputLimitError,
        JournalError,
        ProjectPermanentError,
        RunFatalError,
        TaskPermanentError,
        ThrottledError,
        TransientError,
        UsageError,
        ValidationFailed,
    )
    from bulkscan.models import Issue, Outcome, Plan, TaskRequest
    from bulkscan.runner import (
        Connection,
        SimulatorOptions,
        check,
        prepare,
        read_audit_inventory,
        write_report,
    )

__all__ = [
    "__version__",
    # entry points (the run is runner.run and the audit runner.audit: bulkscan.run and
    # bulkscan.audit are the run layer's package and the audit's module)
    "check",
    "prepare",
    "read_audit_inventory",
    "write_report",
    # settings and connection
    "AkSk",
    "Connection",
    "DispatchSettings",
    "Endpoints",
    "InputLimits",
    "InputSettings",
    "SimulatorOptions",
    "Token",
    "resolve_credentials",
    # values
    "Issue",
    "Outcome",
    "Plan",
    "TaskRequest",
    # errors
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
]

# Where each public name lives: importing ``bulkscan`` (every ``bulkscan`` command does) costs
# nothing until a name is used, so ``bulkscan --help`` never loads aiohttp or openpyxl (PEP 562).
_LAZY: dict[str, str] = {
    "DispatchSettings": "bulkscan.config",
    "InputLimits": "bulkscan.config",
    "InputSettings": "bulkscan.config",
    "Endpoints": "bulkscan.dsc.endpoints",
    "AkSk": "bulkscan.dsc.credentials",
    "Token": "bulkscan.dsc.credentials",
    "resolve_credentials": "bulkscan.dsc.credentials",
    "AmbiguousError": "bulkscan.errors",
    "BulkscanError": "bulkscan.errors",
    "CredentialsError": "bulkscan.errors",
    "DscError": "bulkscan.errors",
    "InputError": "bulkscan.errors",
    "InputLimitError": "bulkscan.errors",
    "JournalError": "bulkscan.errors",
    "ProjectPermanentError": "bulkscan.errors",
    "RunFatalError": "bulkscan.errors",
    "TaskPermanentError": "bulkscan.errors",
    "ThrottledError": "bulkscan.errors",
    "TransientError": "bulkscan.errors",
    "UsageError": "bulkscan.errors",
    "ValidationFailed": "bulkscan.errors",
    "Issue": "bulkscan.models",
    "Outcome": "bulkscan.models",
    "Plan": "bulkscan.models",
    "TaskRequest": "bulkscan.models",
    "Connection": "bulkscan.runner",
    "SimulatorOptions": "bulkscan.runner",
    "check": "bulkscan.runner",
    "prepare": "bulkscan.runner",
    "read_audit_inventory": "bulkscan.runner",
    "write_report": "bulkscan.runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once resolved, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
