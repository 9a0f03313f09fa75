"""A tiny progress interface so the library reports progress and notices without printing."""
from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, key: str, description: str, total: int) -> None: ...

    def advance(self, key: str, amount: int = 1) -> None: ...

    def finish(self, key: str) -> None: ...

    def notice(self, message: str) -> None:
        """One line the user should see now (e.g. "CUDA out of memory: batch size 64 → 32")."""
        ...


class SilentProgress:
    """The default: report nothing."""

    def start(self, key: str, description: str, total: int) -> None:
        pass

    def advance(self, key: str, amount: int = 1) -> None:
        pass

    def finish(self, key: str) -> None:
        pass

    def notice(self, message: str) -> None:
        pass


def describe_progress(progress: ProgressReporter | None, key: str, description: str) -> None:
    """Change the text of bar ``key`` (e.g. to show the running loss); reporters without ``describe`` are skipped."""
    describe = getattr(progress, "describe", None)
    if callable(describe):
        describe(key, description)


def notify(progress: ProgressReporter | None, message: str) -> None:
    """Send ``message`` to ``progress.notice``; a reporter written before notice() existed gets it as a
    RuntimeWarning instead, so that no notice is lost (None: nobody to tell)."""
    if progress is None:
        return
    notice = getattr(progress, "notice", None)
    if callable(notice):
        notice(message)
    else:
        import warnings

        warnings.warn(message, RuntimeWarning, stacklevel=2)
