"""Defense options: the shared entry-option checker, with errors that name defenses.<name>.options.<key>."""
from __future__ import annotations

from typing import Any

from benchmark.options import Option
from benchmark.options import read_options as _read

__all__ = ["Option", "read_options"]


def read_options(name: str, options: dict, spec: dict[str, Option]) -> dict[str, Any]:
    """The options of defense `name` checked against spec, defaults filled in; unknown keys are errors."""
    return _read(name, options, spec, kind="defenses")
