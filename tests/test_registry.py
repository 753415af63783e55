"""Registries: built-ins with sources, plugins through entry points, duplicate and unknown names."""
from __future__ import annotations

import re

import pytest

from benchmark.errors import BenchmarkError
from benchmark.registry import get_component, get_registry, list_components, register_defense


def test_builtins_are_listed_with_doc_and_source() -> None:
    models = {e.name: e for e in list_components("models")}
    assert "resnet10t" in models and "resnet18" in models
    assert models["resnet18"].source == "built-in models/resnet.py"
    assert models["resnet18"].doc.startswith("ResNet-18")
    attacks = {e.name: e for e in list_components("attacks")}
    assert attacks["fgsm"].card.threat == "linf" and attacks["fgsm"].card.access == "white-box"
    assert "fakes" in attacks["gan"].card.needs and attacks["lesion-pgd"].card.needs == frozenset({"masks"})


def test_entry_point_attacks_carry_their_card_as_attributes() -> None:
    entry = get_component("attacks", "broken")
    assert entry.card.threat == "linf" and entry.card.budgets == ("1/255",) and dict(entry.card.options) == {}
    assert set(get_component("defenses", "random-noise-eot").card.options) == {"sigma"}


def test_an_entry_point_attack_without_a_threat_is_refused_at_load() -> None:
    from importlib.metadata import EntryPoint

    from benchmark.registry import _load_entry_point

    list_components("attacks")
    ep = EntryPoint("threatless", "tinyplugin:threatless_attack", "benchmark.attacks")
    with pytest.raises(BenchmarkError) as err:
        _load_entry_point("attacks", ep)
    message = str(err.value)
    assert "\n" not in message and "attack 'threatless' (plugin tinyplugin (entry point threatless))" in message
    assert "no threat model declared" in message and "fn.threat" in message
    assert "threatless" not in get_registry("attacks").names()


@pytest.mark.parametrize("declared, message", [
    ({"threat": "linfinity"}, "threat 'linfinity' is not one of linf, l2, semantic"),
    ({"threat": "linf", "access": "grey-box"}, "access 'grey-box' is not one of"),
    ({"threat": "linf", "needs": ("fakes", "oracle")}, "needs 'oracle', which the engine cannot provide"),
    ({"threat": "linf", "budgets": ("2",)}, "budgets: '2' must be a positive number"),
    ({"threat": "semantic", "budgets": ("1/255",)}, "a semantic attack has no norm budget"),
    ({"threat": "linf", "options": {"steps": 10}}, "options.steps must be a benchmark.options.Option"),
    ({"threat": "linf", "thread": "linf"}, "unknown declaration 'thread'"),
])
def test_bad_attack_declarations_are_refused_at_registration(declared: dict, message: str) -> None:
    from benchmark.registry import register_attack

    def tmp_attack(model, x, y, eps, ctx):
        """A stand-in."""
        return x

    try:
        with pytest.raises(BenchmarkError, match=re.escape(message)) as err:
            register_attack("tmp-bad-card", **declared)(tmp_attack)
        assert "attack 'tmp-bad-card' (module test_registry)" in str(err.value)
        assert "tmp-bad-card" not in get_registry("attacks").names()
    finally:
        get_registry("attacks").remove("tmp-bad-card")


def test_needs_may_be_several() -> None:

    def tmp_attack(model, x, y, eps, ctx):
        """A stand-in."""
        return x

    try:
        entry = get_registry("attacks").add("tmp-two-needs", tmp_attack, threat="linf", needs=("fakes", "masks"))
        assert entry.card.needs == frozenset({"fakes", "masks"})
    finally:
        get_registry("attacks").remove("tmp-two-needs")


def test_entry_point_plugin_is_discovered_with_its_distribution() -> None:
    entry = get_component("datasets", "tiny-blobs")
    assert entry.source == "plugin tinyplugin (entry point tiny-blobs)"
    assert entry.doc == "Tiny test set: blocky noise; positives carry a bright disc."


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(BenchmarkError, match=r"unknown model 'resnet81'; did you mean 'resnet18'"):
        get_component("models", "resnet81")


def test_duplicate_name_names_both_sources() -> None:
    def other() -> None:
        """Another 'none'."""

    with pytest.raises(BenchmarkError) as err:
        register_defense("none")(other)
    message = str(err.value)
    assert "built-in defenses/none.py" in message and "module test_registry" in message


def test_code_version_changes_with_source() -> None:
    registry = get_registry("defenses")
    try:
        def variant_a() -> None:
            """A."""
        entry = registry.add("tmp-variant", variant_a)
        assert len(entry.version) == 12
    finally:
        registry.remove("tmp-variant")
    assert get_component("models", "resnet18").version == get_component("models", "resnet10t").version  # same file
    assert get_component("models", "resnet18").version != get_component("attacks", "fgsm").version
