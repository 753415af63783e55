"""The one exception type for mistakes a user can fix; the CLI turns it into one line and exit code 2."""
from __future__ import annotations

__all__ = ["BenchmarkError", "StageFailed"]


class BenchmarkError(Exception):
    """A user-fixable problem: bad config, unknown name, unreadable file. The message is one line."""


class StageFailed(Exception):
    """A stage raised; carries the stage label so the summary can name the failing cell."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(f"{label}: {message}")
        self.label = label
        self.message = message
