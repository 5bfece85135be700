"""bulkscan: onboard hundreds of databases into Huawei Cloud DSC metadata scans in one run.

The public API is what ``__all__`` lists (pinned by a test); everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from bulkscan.config import DispatchSettings, InputLimits, InputSettings
from bulkscan.dsc.client import Endpoints
from bulkscan.dsc.credentials import AkSk, Token, resolve_credentials
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
    run,
    write_report,
)

__all__ = [
    "__version__",
    # entry points (the audit is runner.audit: bulkscan.audit is its module)
    "check",
    "prepare",
    "read_audit_inventory",
    "run",
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
