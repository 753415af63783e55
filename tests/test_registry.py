"""Registries: built-ins with sources, plugins through entry points, duplicate and unknown names."""
from __future__ import annotations

import pytest

from benchmark.errors import BenchmarkError
from benchmark.registry import get_component, get_registry, list_components, register_defense


def test_builtins_are_listed_with_doc_and_source() -> None:
    models = {e.name: e for e in list_components("models")}
    assert "resnet10t" in models and "resnet18" in models
    assert models["resnet18"].source == "built-in models/resnet.py"
    assert models["resnet18"].doc.startswith("ResNet-18")
    attacks = {e.name: e for e in list_components("attacks")}
    assert attacks["fgsm"].meta["threat"] == "linf"


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
