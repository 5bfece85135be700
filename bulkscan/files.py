"""Writing a file whole or not at all: the one way bulkscan replaces a file it writes.

Every workbook, the plan file, the template and the simulator's state go through
``write_atomically``: a temporary file next to the target, synced, then renamed over it, so
that a full disk, a Ctrl-C or a crash never leaves half a file under the name asked for.
A leaf: it imports nothing of bulkscan.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["write_atomically"]


def write_atomically(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, durable: bool = True
) -> Path:
    """``write`` a temporary file next to ``path``, then rename it over ``path``: a reader
    (or a full disk) never meets half a file, and a failed write leaves none.  ``durable``:
    sync the file and its folder, so that the new file survives a power loss too."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if durable:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        with contextlib.suppress(OSError):
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return target
