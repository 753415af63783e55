"""Options of attack and defense entries: a small spec per entry, checked with one-line errors and did-you-mean."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from benchmark.config import parse_budget
from benchmark.errors import BenchmarkError

__all__ = ["Option", "read_options"]


@dataclass(frozen=True)
class Option:
    """One entry option: its default, its kind (int, float, bool, str, list), limits and a one-line doc."""

    default: Any
    kind: type
    doc: str = ""
    low: float | None = None  # inclusive lower limit for numbers
    above: float | None = None  # exclusive lower limit for numbers
    high: float | None = None  # inclusive upper limit for numbers
    choices: tuple = ()  # allowed values (for str) or allowed items (for list)


def _fail(where: str, key: str, what: str) -> BenchmarkError:
    return BenchmarkError(f"{where}.options.{key}: {what}")


def _value(where: str, key: str, opt: Option, value: Any) -> Any:
    if value is None:
        return None
    if opt.kind is bool:
        if not isinstance(value, bool):
            raise _fail(where, key, f"expected true or false, got {value!r}")
        return value
    if opt.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, key, f"expected a whole number, got {value!r}")
    elif opt.kind is float:
        try:
            value = parse_budget(value)  # numbers, or fractions such as "0.5/255"
        except ValueError:
            raise _fail(where, key, f"expected a number or a fraction like '0.5/255', got {value!r}") from None
        if not math.isfinite(value):
            raise _fail(where, key, f"expected a finite number, got {value!r}")
    elif opt.kind is str:
        if value not in opt.choices:
            raise _fail(where, key, f"expected one of {', '.join(map(repr, opt.choices))}, got {value!r}")
        return value
    elif opt.kind is list:
        if not isinstance(value, (list, tuple)) or not value or any(v not in opt.choices for v in value):
            raise _fail(where, key, f"expected a non-empty list of {', '.join(map(repr, opt.choices))}, "
                                   f"got {value!r}")
        return tuple(value)
    if opt.low is not None and value < opt.low:
        raise _fail(where, key, f"must be >= {opt.low:g}, got {value:g}")
    if opt.above is not None and value <= opt.above:
        raise _fail(where, key, f"must be > {opt.above:g}, got {value:g}")
    if opt.high is not None and value > opt.high:
        raise _fail(where, key, f"must be <= {opt.high:g}, got {value:g}")
    return value


def read_options(name: str, options: dict, spec: dict[str, Option], kind: str = "attacks") -> dict[str, Any]:
    """The options of entry `name` (of `kind`: attacks, defenses) checked against spec, defaults filled in."""
    where = f"{kind}.{name}"
    for key in options:
        if key not in spec:
            close = difflib.get_close_matches(str(key), list(spec), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(sorted(spec)) or "none"
            raise _fail(where, key, f"unknown option{hint} ({name} accepts: {known})")
    return {key: _value(where, key, opt, options.get(key, opt.default)) for key, opt in spec.items()}
