"""Write a file so that readers see the old content or the new, never half: a temp file renamed into place."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call write(fh) on a temp file next to target, then rename it over target (removed again on failure)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
