"""A tiny progress interface so the library reports progress without printing."""
from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, key: str, description: str, total: int) -> None: ...

    def advance(self, key: str, amount: int = 1) -> None: ...

    def finish(self, key: str) -> None: ...


class SilentProgress:
    """The default: report nothing."""

    def start(self, key: str, description: str, total: int) -> None:
        pass

    def advance(self, key: str, amount: int = 1) -> None:
        pass

    def finish(self, key: str) -> None:
        pass
