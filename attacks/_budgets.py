"""Default budgets of the built-in attacks (the batch check, options and projection live in
benchmark/attacking/attack_call.py, the one wrapper every attack runs through)."""
from __future__ import annotations

__all__ = ["L2_BUDGETS", "LINF_BUDGETS"]

# Default budgets on the [0,1] intensity scale. The L2 ones equal the L-inf ones times sqrt(64 * 64), i.e. the same
# per-pixel size on the default 64 px matrix; give budgets explicitly for other resolutions.
LINF_BUDGETS = ("0.5/255", "1/255", "2/255", "4/255", "8/255")
L2_BUDGETS = ("0.125", "0.25", "0.5", "1", "2")
