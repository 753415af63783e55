"""Typed entry cards: what an attack, defense, model or data set declares, validated once at registration.

A card is built when an entry is registered (by decorator or when its entry point loads) from the decorator's
keywords and, failing those, the object's own attributes (`fn.threat = "linf"` on a bare entry-point function,
`options_spec` on a defense class). A bad declaration is a one-line BenchmarkError naming the entry and its source;
nothing is defaulted that changes what a result means (an attack's threat model must be declared).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from benchmark.entry_api import ACCESS, THREATS
from benchmark.errors import BenchmarkError

__all__ = ["NEEDS", "THREATS", "ACCESS", "AttackCard", "DefenseCard", "ModelCard", "DatasetCard", "Card",
           "make_card", "CardError"]

NEEDS = ("fakes", "masks")  # what the engine can hand an entry besides (model, x, y, eps)
_EMPTY: Mapping = MappingProxyType({})


class CardError(BenchmarkError):
    """A declaration that cannot be a card: raised at registration with the entry's kind, name and source."""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _needs(value: Any, fail: Callable[[str], CardError]) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        raise fail(f"needs = {value!r} must be a name or a list of names from {', '.join(NEEDS)}") from None
    unknown = sorted(str(n) for n in items if n not in NEEDS)
    if unknown:
        raise fail(f"needs '{unknown[0]}', which the engine cannot provide (it provides {', '.join(NEEDS)})")
    return frozenset(items)


def _options(value: Any, fail: Callable[[str], CardError], what: str = "options") -> Mapping:
    from benchmark.options import Option

    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise fail(f"{what} must be a dict of name -> benchmark.options.Option, got {type(value).__name__}")
    for key, opt in value.items():
        if not isinstance(key, str) or not key:
            raise fail(f"{what}: option name {key!r} must be a non-empty string")
        if not isinstance(opt, Option):
            raise fail(f"{what}.{key} must be a benchmark.options.Option, got {type(opt).__name__} "
                       f"(e.g. Option({opt!r}, {type(opt).__name__}, \"what it does\"))")
        problems = opt.problems()
        if problems:
            raise fail(f"{what}.{key}: {problems[0]}")
    return _frozen(value)


@dataclass(frozen=True)
class AttackCard:
    """An attack's declaration: threat model (required), access, default budgets, needs and options."""

    threat: str
    access: str = "white-box"
    budgets: tuple = ()  # as declared: numbers or fractions such as "1/255"
    needs: frozenset = frozenset()
    options: Mapping = field(default_factory=lambda: _EMPTY)
    minimal: bool = False  # minimises the perturbation instead of keeping a budget: the engine projects its result

    @property
    def budget_values(self) -> tuple[float, ...]:
        """The default budgets as floats on the [0,1] intensity scale."""
        from benchmark.config import parse_budget

        return tuple(parse_budget(b) for b in self.budgets)


@dataclass(frozen=True)
class DefenseCard:
    """A defense's declaration: what it needs, its options (class attribute options_spec), differentiable, claims."""

    needs: frozenset = frozenset()
    options: Mapping = field(default_factory=lambda: _EMPTY)
    differentiable: bool = True
    claims: tuple = ()


@dataclass(frozen=True)
class ModelCard:
    """A model's declaration: its own training defaults (`train`), its loss recipe, its options when declared."""

    train: Mapping = field(default_factory=lambda: _EMPTY)
    recipe: Mapping = field(default_factory=lambda: _EMPTY)
    options: Mapping | None = None  # None: not declared (the model checks its own keyword options)


@dataclass(frozen=True)
class DatasetCard:
    """A data set's declaration: whether it has lesion masks, its options, and a plan-time check of a config."""

    masks: Any = None  # True, False, None (not declared) or (option, default): masks exactly when that option is on
    options: Mapping = field(default_factory=lambda: _EMPTY)
    check_options: Callable | None = None  # check(DatasetSpec): root folders, cross-option rules; raises

    def has_masks(self, options: Mapping) -> bool | None:
        """Whether the data set yields lesion masks with these options; None when it does not declare it."""
        if self.masks is None or isinstance(self.masks, bool):
            return self.masks
        option, default = self.masks
        return bool(options.get(option, default))


Card = AttackCard | DefenseCard | ModelCard | DatasetCard
_KNOWN = {"attacks": ("threat", "access", "budgets", "needs", "options", "minimal"),
          "defenses": ("needs", "options_spec", "differentiable", "claims"),
          "models": ("train", "recipe", "options"),
          "datasets": ("masks", "options", "check_options")}


def make_card(kind: str, name: str, obj: Any, source: str, declared: Mapping[str, Any]) -> Card:
    """The card of entry `name` from the decorator's keywords (`declared`) and, where those are silent, the object's
    own attributes; a CardError naming the entry and its source when a declaration is wrong."""
    label = f"{kind[:-1]} '{name}' ({source})"

    def fail(what: str) -> CardError:
        return CardError(f"{label}: {what}")

    unknown = sorted(set(declared) - set(_KNOWN[kind]) - ({"options"} if kind == "defenses" else set()))
    if unknown:
        raise fail(f"unknown declaration '{unknown[0]}'; a {kind[:-1]} declares {', '.join(_KNOWN[kind])}")

    def get(key: str, default: Any = None) -> Any:
        if key in declared:
            return declared[key]
        value = getattr(obj, key, default)
        return default if callable(value) and key != "check_options" and not isinstance(value, type) else value

    if kind == "attacks":
        return _attack_card(get, fail)
    if kind == "defenses":
        return _defense_card(get, declared, fail)
    if kind == "models":
        return _model_card(name, source, get, fail)
    return _dataset_card(get, fail)


def _attack_card(get: Callable, fail: Callable[[str], CardError]) -> AttackCard:
    from benchmark.config import parse_budget

    threat = get("threat")
    if threat is None:
        raise fail(f"no threat model declared; declare threat= one of {', '.join(THREATS)} "
                   "(@register_attack(..., threat=\"linf\"), or fn.threat = \"linf\" on an entry-point function)")
    if threat not in THREATS:
        raise fail(f"threat '{threat}' is not one of {', '.join(THREATS)}")
    access = get("access", "white-box")
    if access not in ACCESS:
        raise fail(f"access '{access}' is not one of {', '.join(ACCESS)}")
    budgets = get("budgets", ()) or ()
    if isinstance(budgets, (str, int, float)):
        budgets = (budgets,)
    budgets = tuple(budgets)
    if threat == "semantic" and budgets:
        raise fail("a semantic attack has no norm budget; remove budgets")
    for b in budgets:
        try:
            eps = parse_budget(b)
        except ValueError as exc:
            raise fail(f"budgets: {exc}") from None
        if not (math.isfinite(eps) and eps > 0) or (threat == "linf" and eps > 1):
            raise fail(f"budgets: {b!r} must be a positive number on the [0,1] intensity scale"
                       + (" (at most 1 for linf)" if threat == "linf" else ""))
    minimal = get("minimal", False)
    if not isinstance(minimal, bool):
        raise fail(f"minimal = {minimal!r}; declare True (the attack minimises the perturbation and the engine "
                   "projects its result onto the budget) or False")
    return AttackCard(threat, access, budgets, _needs(get("needs"), fail), _options(get("options"), fail), minimal)


def _defense_card(get: Callable, declared: Mapping, fail: Callable[[str], CardError]) -> DefenseCard:
    differentiable = get("differentiable", True)
    if not isinstance(differentiable, bool):
        raise fail(f"differentiable = {differentiable!r}; declare True or False (False makes every gradient "
                   "attack on it adaptive, BPDA/EOT)")
    claims = get("claims", ())
    claims = (claims,) if isinstance(claims, str) else tuple(claims or ())
    bad = [c for c in claims if c not in THREATS]
    if bad:
        raise fail(f"claims '{bad[0]}', not one of {', '.join(THREATS)}; fix its claims")
    spec = declared["options"] if "options" in declared else get("options_spec", None)
    return DefenseCard(_needs(get("needs"), fail), _options(spec, fail, "options_spec"), differentiable, claims)


def _model_card(name: str, source: str, get: Callable, fail: Callable[[str], CardError]) -> ModelCard:
    from benchmark.training.recipes import check_train_defaults

    train = get("train") or {}
    recipe = get("recipe") or {}
    if not isinstance(recipe, Mapping):
        raise fail(f"recipe= must be a dict, got {type(recipe).__name__}")
    options = get("options")
    return ModelCard(_frozen(check_train_defaults(name, source, train)), _frozen(recipe),
                     None if options is None else _options(options, fail))


def _dataset_card(get: Callable, fail: Callable[[str], CardError]) -> DatasetCard:
    masks = get("masks")
    if not (masks is None or isinstance(masks, bool)
            or (isinstance(masks, tuple) and len(masks) == 2 and isinstance(masks[0], str))):
        raise fail(f"masks = {masks!r}; declare True, False or (option name, its default)")
    check = get("check_options")
    if check is not None and not callable(check):
        raise fail("check_options must be a function check(dataset_spec) that raises BenchmarkError")
    return DatasetCard(masks, _options(get("options"), fail), check)
