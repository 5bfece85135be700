"""One exception tree for everything bulkscan can raise on purpose.

::

    BulkscanError                      every error a user can cause or meet
    ├── UsageError                     bad option or setting (rate, concurrency, paths)
    ├── InputError                     a file cannot be read as bulkscan input
    │   └── InputLimitError            a file exceeds a safety cap (size, unpacked size, rows)
    ├── ValidationFailed               the input was read but has errors (carries every Issue)
    ├── CredentialsError               no or unusable credentials
    ├── JournalError                   the run journal is missing, damaged, newer, busy or
    │                                  belongs to another input
    └── DscError                       a classified answer of the DSC service
        ├── TransientError             not applied: safe to resend after a wait
        │   └── ThrottledError         429 / 0308: the service asked us to slow down
        ├── AmbiguousError             may have been applied: look before resending
        ├── TaskPermanentError         this request is wrong (fix the row); others go on
        ├── ProjectPermanentError      this project cannot take tasks; other projects go on
        ├── UntrustedListingError      the project's task list cannot be read with certainty:
        │                              nothing is sent to it, nothing retried
        └── RunFatalError              authentication or wrong API: stop everything

Every error carries its context as attributes (file, sheet, row, column, task, HTTP status,
error code, request id) and its message says what to do next.  A ``DscError`` also carries
its ``verdict`` and whether it ``uses_attempt`` of a retry budget, both decided once by
``bulkscan.dsc.classify.error_for``; callers read them and never map a class back to a verdict.
An error raised directly by its class gets that class's verdict and uses an attempt (a
throttled answer excepted).  No message ever contains a
secret: credentials are never passed to an exception.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousError",
    "BulkscanError",
    "CredentialsError",
    "DscError",
    "InputError",
    "InputLimitError",
    "JournalError",
    "JournalWriteError",
    "ProjectPermanentError",
    "ReportError",
    "RunFatalError",
    "TaskPermanentError",
    "ThrottledError",
    "TransientError",
    "UntrustedListingError",
    "UsageError",
    "ValidationFailed",
]

from typing import TYPE_CHECKING, ClassVar, TypedDict, Unpack

from bulkscan.i18n import _
from bulkscan.models import Verdict, one_line

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from bulkscan.models import Issue


class BulkscanError(Exception):
    """Base of every error bulkscan raises on purpose; its str() is a user-facing message."""


class UsageError(BulkscanError):
    """An option or setting is out of its allowed range or malformed."""


class InputError(BulkscanError):
    """A file cannot be read as bulkscan input (missing, wrong format, corrupt, protected)."""

    def __init__(self, message: str, *, file: str, sheet: str | None = None) -> None:
        self.file = file
        self.sheet = sheet
        where = (
            file if sheet is None else _("{file}, sheet '{sheet}'").format(file=file, sheet=sheet)
        )
        super().__init__(
            one_line(_("{where}: {message}").format(where=where, message=message))
        )  # cells and names may hold newlines


class InputLimitError(InputError):
    """A file exceeds one of the safety caps; the message names the setting that raises it."""


class ValidationFailed(BulkscanError):
    """The input was read, but some cells are wrong.  ``issues`` holds every one of them."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        errors = [i for i in self.issues if i.severity == "error"]
        first = _(": {issue}").format(issue=errors[0]) if errors else ""
        more = _(" (and {count} more)").format(count=len(errors) - 1) if len(errors) > 1 else ""
        super().__init__(
            _("{count} error(s) in the input{first}{more}").format(
                count=len(errors), first=first, more=more
            )
        )


class CredentialsError(BulkscanError):
    """Credentials are missing or unusable.  Never carries the secret itself."""


class JournalError(BulkscanError):
    """The run journal cannot be used: missing, damaged, newer, in use, or of another input."""


class ReportError(BulkscanError):
    """A result workbook cannot be written (read-only file or directory, disk full)."""


class JournalWriteError(JournalError):
    """The journal could not store a step (disk full, read-only): stop, and resume later.

    ``run_dir``: the run whose journal it is (None when the run cannot be resumed)."""

    def __init__(self, message: str, *, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class DscContext(TypedDict, total=False):
    """What a ``DscError`` carries besides its message (each absent one is None)."""

    status: int | None  # the HTTP status, when there was an answer
    code: str | None  # the service's or the gateway's error code
    request_id: str | None
    task: str | None  # the task name the request was about
    retry_after: float | None  # seconds the service asked us to wait
    verdict: Verdict | None  # None: the class's default_verdict
    uses_attempt: bool | None  # None: every verdict but THROTTLED uses one
    what: str | None  # what happened, without the advice (None: the whole message)


class DscError(BulkscanError):
    """A classified answer from DSC (or from the network on the way to it).

    ``verdict`` says what it means for the request; ``uses_attempt`` is False for a failure
    that never reached the service or was throttled (such failures are bounded by the time
    budget alone, see ``bulkscan.run.retry``).
    """

    default_verdict: ClassVar[Verdict] = Verdict.AMBIGUOUS  # when raised by the class itself

    def __init__(self, message: str, **context: Unpack[DscContext]) -> None:
        self.status = context.get("status")
        self.code = context.get("code")
        self.request_id = context.get("request_id")
        self.task = context.get("task")
        self.retry_after = context.get("retry_after")
        verdict = context.get("verdict")
        self.verdict: Verdict = verdict if verdict is not None else self.default_verdict
        if self.verdict.ok:
            raise ValueError(f"verdict {self.verdict} is a success, not an error")
        uses_attempt = context.get("uses_attempt")
        if uses_attempt is None:
            uses_attempt = self.verdict is not Verdict.THROTTLED
        self.uses_attempt = uses_attempt
        # what happened, for a caller that gives its own advice (the message ends with ours)
        self.what: str = context.get("what") or message
        super().__init__(message)


class TransientError(DscError):
    """Nothing was applied; the same request may be sent again after a wait."""

    default_verdict = Verdict.TRANSIENT


class ThrottledError(TransientError):
    """The gateway throttled the request (429 / APIG.0308); ``limit_per_s`` if it said one."""

    default_verdict = Verdict.THROTTLED

    def __init__(
        self, message: str, *, limit_per_s: float | None = None, **context: Unpack[DscContext]
    ) -> None:
        self.limit_per_s = limit_per_s
        super().__init__(message, **({"status": 429} | context))


class AmbiguousError(DscError):
    """The request may have been applied (timeout, reset after sending, 500/502/504)."""

    default_verdict = Verdict.AMBIGUOUS


class TaskPermanentError(DscError):
    """The service refused this request for good (400, DSC codes): fix the row, do not resend."""

    default_verdict = Verdict.TASK_PERMANENT


class ProjectPermanentError(DscError):
    """The project cannot take tasks (404 project, 403): its tasks fail, others go on."""

    default_verdict = Verdict.PROJECT_PERMANENT


class UntrustedListingError(DscError):
    """The service's list answer cannot be trusted to show every task (no name, unreadable
    data sources, paging that cannot be completed): the project is not sent, not retried."""

    default_verdict = Verdict.UNTRUSTED


class RunFatalError(DscError):
    """Authentication or configuration is wrong: stop the whole run, never retry."""

    default_verdict = Verdict.RUN_FATAL
