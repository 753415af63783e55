"""Options of entries (attacks, defenses, data sets, the GAN schedule, model recipes): one `Option` type, checked
with one-line errors and did-you-mean."""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.errors import BenchmarkError

__all__ = ["Option", "OptionValueError", "check_value", "check_options", "read_options", "read_dataset_options",
           "describe_range", "OPTION_KINDS"]

OPTION_KINDS = (int, float, bool, str, list)


@dataclass(frozen=True)
class Option:
    """One entry option: its default, its kind (int, float, bool, str, list), limits and a one-line doc.

    Numbers: `low`/`high` are inclusive limits, `above`/`below` exclusive ones. `choices` are the allowed values of a
    str, or the allowed items of a list. A list's items have type `item` (default str when choices are given) and,
    when numbers, obey the limits; `length` fixes a list's length. None is always accepted and means "unset".
    """

    default: Any
    kind: type
    doc: str = ""
    low: float | None = None  # inclusive lower limit for numbers (the items, for lists)
    above: float | None = None  # exclusive lower limit
    high: float | None = None  # inclusive upper limit
    choices: tuple = ()  # allowed values (for str) or allowed items (for list)
    below: float | None = None  # exclusive upper limit
    item: type | None = None  # item type of a list
    length: int | None = None  # exact length of a list

    @property
    def type(self) -> type:
        """The option's kind (int, float, bool, str, list)."""
        return self.kind

    def problems(self) -> list[str]:
        """What is wrong with this declaration itself (for cards): empty when it is well formed."""
        out = []
        if self.kind not in OPTION_KINDS:
            out.append(f"kind {getattr(self.kind, '__name__', self.kind)!r} is not one of int, float, bool, str, list")
        if self.item is not None and self.item not in (int, float, bool, str):
            out.append(f"item type {getattr(self.item, '__name__', self.item)!r} is not one of int, float, bool, str")
        if "\n" in self.doc:
            out.append("doc must be one line")
        if not out and self.default is not None:
            try:
                check_value(self, self.default)
            except OptionValueError as exc:
                out.append(f"default {self.default!r} is invalid: {exc.reason}")
        return out


class OptionValueError(ValueError):
    """A value an Option refuses; `reason` is the short phrase ("must be >= 1, got 0")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _name(kind: type | None) -> str:
    return {int: "whole number", float: "number", bool: "true or false", str: "string"}.get(kind, "value")


def _limits(opt: Option, value: float) -> None:
    if opt.low is not None and value < opt.low:
        raise OptionValueError(f"must be >= {opt.low:g}, got {value:g}")
    if opt.above is not None and value <= opt.above:
        raise OptionValueError(f"must be > {opt.above:g}, got {value:g}")
    if opt.high is not None and value > opt.high:
        raise OptionValueError(f"must be <= {opt.high:g}, got {value:g}")
    if opt.below is not None and value >= opt.below:
        raise OptionValueError(f"must be < {opt.below:g}, got {value:g}")


def _scalar(kind: type, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionValueError(f"expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)  # 10.0 from a TOML float is 10
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionValueError(f"expected a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool):
            raise OptionValueError(f"expected a number, got {value!r}")
        from benchmark.config import parse_budget  # lazily: config imports the recipes, which use Option

        try:
            value = parse_budget(value)  # numbers, or fractions such as "0.5/255"
        except ValueError:
            raise OptionValueError(f"expected a number or a fraction like '0.5/255', got {value!r}") from None
        if not math.isfinite(value):
            raise OptionValueError(f"expected a finite number, got {value!r}")
        return value
    if kind is str and not isinstance(value, str):
        raise OptionValueError(f"expected a string, got {value!r}")
    return value


def check_value(opt: Option, value: Any) -> Any:
    """value checked against opt (None passes as "unset"); the normalised value, or OptionValueError."""
    if value is None:
        return None
    if opt.kind is list:
        item = opt.item or (str if opt.choices else None)
        what = ", ".join(map(repr, opt.choices)) if opt.choices else f"{_name(item)}s" if item else "values"
        if not isinstance(value, (list, tuple)) or not value or \
                (opt.length is not None and len(value) != opt.length):
            size = f"{opt.length} " if opt.length is not None else "non-empty "
            raise OptionValueError(f"expected a {size}list of {what}, got {value!r}")
        out = []
        for v in value:
            if opt.choices and v not in opt.choices:
                raise OptionValueError(f"expected a non-empty list of {what}, got {value!r}")
            v = _scalar(item, v) if item is not None else v
            if item in (int, float):
                _limits(opt, v)
            out.append(v)
        return tuple(out)
    value = _scalar(opt.kind, value)
    if opt.kind is str:
        if opt.choices and value not in opt.choices:
            raise OptionValueError(f"expected one of {', '.join(map(repr, opt.choices))}, got {value!r}")
        return value
    if opt.kind in (int, float):
        _limits(opt, value)
    return value


def describe_range(opt: Option) -> str:
    """The option's limits or choices in a few characters, for tables: "[1, 16]", "(0, 1]", "'a', 'b'"."""
    if opt.choices:
        return ", ".join(map(repr, opt.choices))
    lo = f"[{opt.low:g}" if opt.low is not None else f"({opt.above:g}" if opt.above is not None else ""
    hi = f"{opt.high:g}]" if opt.high is not None else f"{opt.below:g})" if opt.below is not None else ""
    if not lo and not hi:
        return ""
    return f"{lo or '(-inf'}, {hi or 'inf)'}"


def check_options(options: Mapping, spec: Mapping[str, Option], *,
                  unknown: Callable[[str, list[str]], BenchmarkError],
                  bad: Callable[[str, Any, str], BenchmarkError], fill: bool = True) -> dict[str, Any]:
    """options checked against spec, in the caller's own error wording: `unknown(key, close_matches)` for a key
    the spec lacks, `bad(key, value, reason)` for a refused value. With fill, defaults fill the missing keys."""
    for key in options:
        if key not in spec:
            raise unknown(str(key), difflib.get_close_matches(str(key), list(spec), n=1, cutoff=0.5))
    out = {}
    for key, opt in spec.items():
        if key not in options and not fill:
            continue
        value = options.get(key, opt.default)
        try:
            out[key] = check_value(opt, value)
        except OptionValueError as exc:
            raise bad(key, value, exc.reason) from None
    return out


def _fail(where: str, key: str, what: str) -> BenchmarkError:
    return BenchmarkError(f"{where}.options.{key}: {what}")


def read_options(name: str, options: dict, spec: Mapping[str, Option], kind: str = "attacks") -> dict[str, Any]:
    """The options of entry `name` (of `kind`: attacks, defenses) checked against spec, defaults filled in."""
    where = f"{kind}.{name}"

    def unknown(key: str, close: list[str]) -> BenchmarkError:
        hint = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(sorted(spec)) or "none"
        return _fail(where, key, f"unknown option{hint} ({name} accepts: {known})")

    return check_options(options, spec, unknown=unknown, bad=lambda key, _value, reason: _fail(where, key, reason))


def read_dataset_options(name: str, options: Mapping | None, spec: Mapping[str, Option]) -> dict[str, Any]:
    """A data set's options checked against spec, defaults filled in, in the data sets' wording:
    `dataset.options.<key> is not an option of <name>; ...` and `dataset.options.<key> = <value> is invalid for
    <name>: <reason>`."""
    def unknown(key: str, close: list[str]) -> BenchmarkError:
        hint = f"did you mean '{close[0]}'? " if close else ""
        return BenchmarkError(f"dataset.options.{key} is not an option of {name}; {hint}"
                              f"allowed: {', '.join(sorted(spec)) or 'none'}")

    def bad(key: str, value: Any, reason: str) -> BenchmarkError:
        return BenchmarkError(f"dataset.options.{key} = {value!r} is invalid for {name}: {reason}")

    return check_options(dict(options or {}), spec, unknown=unknown, bad=bad)
