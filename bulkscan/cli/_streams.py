"""The CLI's standard streams, guarded: a write that fails is said once, never a traceback.

stdout carries results: when a write to it fails (a full disk behind ``> out.txt``, a device
error), the command stops with ``StreamFailed``, which the CLI says on stderr (exit 1).
stderr carries progress and messages: when it cannot be written, it is silenced and the
command goes on (a run keeps sending and journaling: its journal and result workbook are
what count, and a run stopped halfway by its log would do more harm than the lost lines).
Either way the stream's descriptor is pointed at the null device, so that what Python still
holds for it is not written again at exit.  A closed pipe (``| head``) is not a failure:
``BrokenPipeError`` goes through as before, and the CLI stops quietly.

What a failed write leaves behind is closed later by the garbage collector, and Python says
each failure to close it as "Exception ignored in ..." with a traceback (openpyxl's sheet
streams after a workbook could not be written, say): ``cleanup_unsaid`` keeps those for
``--debug``, since the failure itself has been said already.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["StreamFailed", "cleanup_unsaid", "guarded_streams"]


class StreamFailed(Exception):
    """Writing the command's results to stdout failed."""

    def __init__(self, error: OSError) -> None:
        self.reason = error.strerror or str(error)
        super().__init__(self.reason)


class _Guarded:
    """``stream`` as it is, but for what a failed write does (see the module docstring)."""

    def __init__(self, stream: TextIO, *, results: bool) -> None:
        self._stream = stream
        self._results = results
        self._silenced = False

    def write(self, text: str) -> int:
        if self._silenced:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._silenced:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _failed(self, exc: OSError) -> None:
        self._silenced = True
        _to_null(self._stream)
        if self._results:
            raise StreamFailed(exc) from None


def _to_null(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at the null device (what it still buffers goes there)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)


@contextlib.contextmanager
def guarded_streams() -> Iterator[None]:
    """Within this block, ``sys.stdout`` and ``sys.stderr`` are guarded; whatever stdout still
    holds is flushed as the block ends (however it ends), so that a failure to write it is
    raised here rather than said by Python at exit."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = _Guarded(out, results=True)
    sys.stderr = _Guarded(err, results=False)
    try:
        yield
    finally:
        try:
            sys.stdout.flush()  # a failure here, even after --help, is still StreamFailed
        finally:
            sys.stdout, sys.stderr = out, err


@contextlib.contextmanager
def cleanup_unsaid(*, say: Callable[[], bool]) -> Iterator[None]:
    """Within this block (and for what it leaves to collect at its end), an exception raised
    while an object is cleaned up is said only when ``say()`` (``--debug``)."""
    hook = sys.unraisablehook

    def unraisable(failure: Any) -> None:
        if say():
            hook(failure)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        try:
            gc.collect()  # what the command left behind is collected while the hook holds
        finally:
            sys.unraisablehook = hook
