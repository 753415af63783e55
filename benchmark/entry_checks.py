"""Plan-time option checks of every entry of a matrix, built-in or plugin, against its card (benchmark/cards.py).

`check_entry_options(config)` runs from the planner's input checks, before anything is written: a plugin
defense's typo in an option fails there, as one line naming the config, the entry and the key, rather than when
its train stage runs.
"""
from __future__ import annotations

from benchmark.config import MatrixConfig
from benchmark.errors import BenchmarkError
from benchmark.options import read_dataset_options, read_options
from benchmark.registry import get_component

__all__ = ["check_entry_options"]


def check_entry_options(config: MatrixConfig) -> None:
    """Every entry's options (data set, models, defenses, attacks) checked against its card; one-line
    BenchmarkError `<config>: <kind>.<name>.options.<key>: ...` on the first bad one."""
    try:
        dataset = get_component("datasets", config.dataset.name)
        read_dataset_options(dataset.name, config.dataset.options, dataset.card.options)
        for model in config.models:
            card = get_component("models", model.name).card
            if card.options is not None:  # models that declare no options check their own keywords
                read_options(model.name, dict(model.options), card.options, kind="models")
        for defense in config.defenses:
            read_options(defense.name, dict(defense.options), get_component("defenses", defense.name).card.options,
                         kind="defenses")
        for attack in config.attacks:
            read_options(attack.name, dict(attack.options), get_component("attacks", attack.name).card.options,
                         kind="attacks")
    except BenchmarkError as exc:
        raise BenchmarkError(f"{config.source}: {exc}") from None
