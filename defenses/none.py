"""The baseline: no defense."""
from __future__ import annotations

from benchmark.entry_api import Defense
from benchmark.registry import register_defense


@register_defense("none")
class NoDefense(Defense):
    """No defense: the undefended model, the baseline every defense is compared with."""

    claims = ()
    name = "none"
