"""Registries of models, attacks, defenses and data sets: decorators, entry points, close-match errors."""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar

from benchmark.cards import Card, make_card
from benchmark.errors import BenchmarkError
from benchmark.execution.code_version import object_version
from benchmark.names import NAME_PATTERN, NAME_RULE

__all__ = ["KINDS", "Component", "Registry", "get_registry", "register_model", "register_attack",
           "register_defense", "register_dataset", "load_all", "list_components", "get_component"]

KINDS = ("models", "attacks", "defenses", "datasets")
T = TypeVar("T")


@dataclass(frozen=True)
class Component:
    """One registered thing: its kind, public name, the object, a one-line doc, where it came from, a code version,
    and its card (benchmark/cards.py: what it declares, validated at registration)."""

    kind: str
    name: str
    obj: Any
    doc: str
    source: str
    version: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)  # the raw declaration, as given
    card: Card | None = field(default=None, compare=False, hash=False)


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no description)"


class Registry:
    """Name -> Component for one kind; duplicate names are an error naming both sources."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Component] = {}
        self.current_source: str | None = None  # set while a plugin module is being imported

    def add(self, name: str, obj: Any, source: str | None = None, **meta: Any) -> Component:
        """Register obj under name; raise if the name is taken by another object or is not a safe name."""
        source = source or self.current_source or _source_of(obj)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise BenchmarkError(f"{self.kind[:-1]} name {name!r} from {source} is not allowed: {NAME_RULE}")
        old = self._entries.get(name)
        if old is not None:
            if old.obj is obj or (getattr(old.obj, "__qualname__", None) == getattr(obj, "__qualname__", 0)
                                  and old.source == source):
                return old
            raise BenchmarkError(f"duplicate {self.kind[:-1]} name '{name}': registered by {old.source} "
                                 f"and by {source}; rename one of them")
        card = make_card(self.kind, name, obj, source, meta)  # a bad declaration fails here, naming the source
        entry = Component(self.kind, name, obj, _first_line(obj), source, object_version(obj), dict(meta), card)
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> Component:
        """The entry called name, or an error listing the closest names."""
        if name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        raise BenchmarkError(f"unknown {self.kind[:-1]} '{name}'{hint} (known: {known})")

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def entries(self) -> list[Component]:
        """All entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def remove(self, name: str) -> None:
        """Forget an entry (used by tests that register temporary entries)."""
        self._entries.pop(name, None)


_REGISTRIES = {kind: Registry(kind) for kind in KINDS}


def get_registry(kind: str) -> Registry:
    """The registry for one kind: models, attacks, defenses or datasets."""
    if kind not in _REGISTRIES:
        raise BenchmarkError(f"unknown kind '{kind}'; choose one of {', '.join(KINDS)}")
    return _REGISTRIES[kind]


def _source_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "?")
    if module.startswith("benchmark."):
        parts = module.split(".")
        return f"built-in {'/'.join(parts[1:])}.py"
    return f"module {module}"


def _decorator(kind: str) -> Callable[..., Any]:
    def register(name: str | Callable | None = None, **meta: Any) -> Any:
        def wrap(obj: T) -> T:
            public = name if isinstance(name, str) else obj.__name__.replace("_", "-")
            _REGISTRIES[kind].add(public, obj, **meta)
            return obj
        if callable(name):  # used bare: @register_model
            return wrap(name)
        return wrap
    register.__doc__ = f"Decorator: register a {kind[:-1]} under a name (default: the function name, _ as -)."
    return register


register_model = _decorator("models")
register_attack = _decorator("attacks")
register_defense = _decorator("defenses")
register_dataset = _decorator("datasets")

_loaded = False


def load_all() -> None:
    """Import the built-in entry folders and every installed package's `benchmark.<kind>` entry points, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for kind in KINDS:
        package = importlib.import_module(f"benchmark.{kind}")
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"benchmark.{kind}.{info.name}")
    for kind in KINDS:
        for ep in entry_points(group=f"benchmark.{kind}"):
            _load_entry_point(kind, ep)


def _load_entry_point(kind: str, ep: Any) -> None:
    registry = _REGISTRIES[kind]
    dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value.split(":")[0]
    registry.current_source = f"plugin {dist} (entry point {ep.name})"
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must say which plugin it is
        raise BenchmarkError(f"plugin {dist}: entry point '{ep.name}' in group benchmark.{kind} failed to "
                             f"load: {type(exc).__name__}: {exc}") from exc
    finally:
        registry.current_source = None
    if not inspect.ismodule(obj) and ep.name not in registry.names():
        registry.add(ep.name, obj, source=f"plugin {dist} (entry point {ep.name})")  # card from obj's attributes


def list_components(kind: str) -> list[Component]:
    """Every registered entry of one kind, built-in and plugin, sorted by name."""
    load_all()
    return get_registry(kind).entries()


def get_component(kind: str, name: str) -> Component:
    """Look up one entry by name; unknown names raise a BenchmarkError with close matches."""
    load_all()
    return get_registry(kind).get(name)
