"""Entry names: what a model, defense, attack or data set may be called (names become file and folder names)."""
from __future__ import annotations

import re

__all__ = ["NAME_PATTERN", "NAME_RULE"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # no /, no .., no spaces, no markup
NAME_RULE = "use 1-64 letters, digits and - _ . @, starting with a letter or digit (names become file names)"
